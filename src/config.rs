//! `pare.toml`: state location, apply settings and policy (SPEC section 3).
//!
//! Loading reports problems as located diagnostics, like plan files. This
//! module only reads the file; the settings that combine it with the command
//! line live in `cli`.

use crate::diagnostic::{Diagnostic, SourceFile, Span};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A risk level, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub const ALL: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// One level up, saturating at critical.
    pub fn raised(self) -> Risk {
        match self {
            Risk::Low => Risk::Medium,
            Risk::Medium => Risk::High,
            Risk::High | Risk::Critical => Risk::Critical,
        }
    }
}

/// The settings of `pare.toml`, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the file was read from; `None` when there was none.
    pub path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub parallelism: usize,
    /// Most steps of one kind (stop, start, terminate, monitoring) sent in one call.
    pub batch_size: usize,
    pub rollback_on_failure: bool,
    /// `(key, value)` pairs; a resource with any of these tags is never changed.
    pub protected_tags: Vec<(String, String)>,
    /// Risk at or above which a recommendation needs an approval; `None` = never.
    pub require_approval_at: Option<Risk>,
    pub require_committed_plan: bool,
    pub max_changes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            path: None,
            state_dir: PathBuf::from(".pare"),
            parallelism: 10,
            batch_size: crate::planner::BATCH,
            rollback_on_failure: true,
            protected_tags: vec![("pare:protect".into(), "true".into())],
            require_approval_at: Some(Risk::High),
            require_committed_plan: false,
            max_changes: 50,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    apply: RawApply,
    #[serde(default)]
    policy: RawPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApply {
    parallelism: Option<Spanned<i64>>,
    batch_size: Option<Spanned<i64>>,
    rollback_on_failure: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    protected_tags: Option<Vec<Spanned<String>>>,
    require_approval_at: Option<Spanned<String>>,
    require_committed_plan: Option<bool>,
    max_changes: Option<Spanned<i64>>,
}

/// Why `pare.toml` could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    #[diagnostic(code(config::unreadable), help("check the path given to --config"))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} in {}", crate::plan::load::count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
}

impl Config {
    /// Reads `explicit` if given (it must exist), else `pare.toml` in `dir` if
    /// present, else the defaults.
    pub fn load(explicit: Option<&Path>, dir: &Path) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None => {
                let p = dir.join("pare.toml");
                if !p.exists() {
                    return Ok(Config::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let name = explicit.map_or_else(|| "pare.toml".to_string(), |p| p.display().to_string());
        let mut config = Config::parse(&name, text).map_err(ConfigError::Invalid)?;
        config.path = Some(path);
        Ok(config)
    }

    /// Parses config text; `name` is how messages refer to the file.
    pub fn parse(name: &str, text: String) -> Result<Config, Vec<Diagnostic>> {
        let file = SourceFile::new(name, text);
        let raw: RawConfig = match toml::from_str(&file.text) {
            Ok(raw) => raw,
            Err(e) => {
                let range = e.span().unwrap_or(0..0);
                let message = e.message().trim().to_string();
                return Err(vec![
                    Diagnostic::new("config::invalid", &file, Span::new(range.start, range.len()), message, "here")
                        .with_help("pare.toml has the sections [state] dir, [apply] parallelism, batch_size and rollback_on_failure, [policy] protected_tags, require_approval_at, require_committed_plan and max_changes"),
                ]);
            }
        };
        let mut diags = Vec::new();
        let mut config = Config::default();
        if let Some(dir) = raw.state.dir {
            config.state_dir = PathBuf::from(dir);
        }
        if let Some(p) = raw.apply.parallelism {
            match usize::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => config.parallelism = n,
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(p.span()),
                        "`parallelism` must be at least 1",
                        "out of range",
                    )
                    .with_help("set `parallelism` to how many steps may run at once, e.g. 10"),
                ),
            }
        }
        if let Some(p) = raw.apply.batch_size {
            match usize::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => config.batch_size = n,
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(p.span()),
                        "`batch_size` must be at least 1",
                        "out of range",
                    )
                    .with_help("set `batch_size` to how many like steps may share one call (1 turns batching off), e.g. 1000"),
                ),
            }
        }
        if let Some(b) = raw.apply.rollback_on_failure {
            config.rollback_on_failure = b;
        }
        if let Some(tags) = raw.policy.protected_tags {
            config.protected_tags.clear();
            for t in tags {
                match t.get_ref().split_once('=') {
                    Some((k, v)) if !k.is_empty() => {
                        config.protected_tags.push((k.to_string(), v.to_string()))
                    }
                    _ => diags.push(
                        Diagnostic::new(
                            "config::invalid-value",
                            &file,
                            to_span(t.span()),
                            format!("`{}` is not a key=value tag", t.get_ref()),
                            "expected key=value",
                        )
                        .with_help(
                            "write protected tags as `key=value`, e.g. \"pare:protect=true\"",
                        ),
                    ),
                }
            }
        }
        if let Some(level) = raw.policy.require_approval_at {
            let v = level.get_ref().as_str();
            match Risk::ALL.iter().find(|r| r.as_str() == v) {
                Some(r) => config.require_approval_at = Some(*r),
                None if v == "never" => config.require_approval_at = None,
                None => diags.push(
                    Diagnostic::new(
                        "config::invalid-value",
                        &file,
                        to_span(level.span()),
                        format!("`{v}` is not a risk level"),
                        "not a level",
                    )
                    .with_help("use one of low, medium, high, critical, never"),
                ),
            }
        }
        if let Some(b) = raw.policy.require_committed_plan {
            config.require_committed_plan = b;
        }
        if let Some(m) = raw.policy.max_changes {
            match usize::try_from(*m.get_ref()) {
                Ok(n) if n >= 1 => config.max_changes = n,
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(m.span()),
                        "`max_changes` must be at least 1",
                        "out of range",
                    )
                    .with_help("set `max_changes` to the most changes one run may make"),
                ),
            }
        }
        if diags.is_empty() {
            Ok(config)
        } else {
            Err(diags)
        }
    }
}

fn to_span(r: std::ops::Range<usize>) -> Span {
    Span::new(r.start, r.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (String, usize, usize) {
        let d = Config::parse("pare.toml", text.into())
            .unwrap_err()
            .remove(0);
        let (l, c) = d.line_col();
        (d.code.to_string(), l, c)
    }

    #[test]
    fn defaults_and_full_file() {
        assert_eq!(
            Config::parse("pare.toml", String::new()).unwrap(),
            Config::default()
        );
        let c = Config::parse(
            "pare.toml",
            "[state]\ndir = \"st\"\n[apply]\nparallelism = 4\nbatch_size = 3\nrollback_on_failure = false\n[policy]\nprotected_tags = [\"a=b\"]\nrequire_approval_at = \"never\"\nrequire_committed_plan = true\nmax_changes = 7\n".into(),
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("st"));
        assert_eq!(c.parallelism, 4);
        assert_eq!(c.batch_size, 3);
        assert!(!c.rollback_on_failure);
        assert_eq!(c.protected_tags, vec![("a".into(), "b".into())]);
        assert_eq!(c.require_approval_at, None);
        assert!(c.require_committed_plan);
        assert_eq!(c.max_changes, 7);
    }

    #[test]
    fn located_errors() {
        let cases: &[(&str, (&str, usize, usize))] = &[
            ("[apply]\nparalelism = 3\n", ("config::invalid", 2, 1)),
            (
                "[apply]\nparallelism = 0\n",
                ("config::out-of-range", 2, 15),
            ),
            (
                "[policy]\nrequire_approval_at = \"hgh\"\n",
                ("config::invalid-value", 2, 23),
            ),
            (
                "[policy]\nprotected_tags = [\"nokv\"]\n",
                ("config::invalid-value", 2, 19),
            ),
            (
                "[policy]\nmax_changes = \"ten\"\n",
                ("config::invalid", 2, 15),
            ),
            ("[apply\n", ("config::invalid", 1, 7)),
        ];
        for (text, (code, line, col)) in cases {
            assert_eq!(err(text), (code.to_string(), *line, *col), "{text}");
        }
    }
}
