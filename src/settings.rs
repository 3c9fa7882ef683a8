//! Settings, resolved in one place: command-line flags over `pare.toml`
//! over the environment over defaults (as ripgrep turns its low-level
//! arguments into high-level settings). Nothing below this module knows
//! where a value came from, and nothing here knows clap.

use crate::config::{Config, ConfigError};
use std::path::{Path, PathBuf};

/// How providers are opened: what the settings say about talking to a cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Attempts for a call that fails transiently, in all (one retry policy:
    /// a provider that retries itself uses this, and the engine then does not).
    pub attempts: u32,
}

/// What the command line says, before anything is resolved.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--state-dir DIR`.
    pub state_dir: Option<PathBuf>,
    /// `--state LOCATION` (`s3://bucket/prefix`, or a directory).
    pub state: Option<String>,
    /// `--parallelism N` (apply).
    pub parallelism: Option<usize>,
    /// `--log-format json`: events as JSON lines.
    pub json_events: bool,
    /// `-q`.
    pub quiet: bool,
}

/// Everything a command needs to know about how to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `pare.toml` with the overrides applied: what the planner and the
    /// engine read.
    pub config: Config,
    /// Events as JSON lines on stderr.
    pub json_events: bool,
    pub quiet: bool,
}

/// Points the state at `loc`: an `s3://bucket/prefix` URL (keeping the
/// file's region, profile, endpoint and lease when it also names S3), or
/// a directory.
fn set_location(config: &mut Config, loc: &str, from: &str) -> Result<(), ConfigError> {
    let bad = |error: String| {
        Err(ConfigError::Location {
            from: from.to_string(),
            error,
        })
    };
    if loc.is_empty() {
        return bad("the location is empty".into());
    }
    if loc.trim() != loc {
        return bad(format!(
            "`{}` starts or ends with spaces",
            crate::vocabulary::words::clean(loc)
        ));
    }
    // `s3:/bucket`, `s3:x`, `S3://…`, `gs:bucket`, `s3//b/p`: a typo of a
    // URL must not quietly become a directory on a machine that is thrown
    // away. A scheme is two or more letters before a colon (one is a
    // Windows drive).
    let scheme = loc.split_once(':').map(|(s, _)| s);
    let lower = loc.to_ascii_lowercase();
    let looks_like_url = scheme.is_some_and(|s| {
        s.len() >= 2
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    }) || lower.starts_with("s3/")
        || lower.starts_with("s3\\");
    if !loc.starts_with("s3://") && looks_like_url {
        return bad(format!(
            "`{}` looks like a URL, and pare keeps state only in S3 (`s3://bucket/prefix/`) or in a directory",
            crate::vocabulary::words::clean(loc)
        ));
    }
    match crate::config::S3State::parse_url(loc) {
        Some(Ok(mut s3)) => {
            if let Some(file) = &config.s3 {
                s3.region = file.region.clone();
                s3.profile = file.profile.clone();
                s3.endpoint_url = file.endpoint_url.clone();
                s3.lease_s = file.lease_s;
            }
            config.s3 = Some(s3);
        }
        Some(Err(e)) => {
            return Err(ConfigError::Location {
                from: from.to_string(),
                error: e,
            });
        }
        None => {
            config.state_dir = PathBuf::from(loc);
            config.s3 = None;
        }
    }
    Ok(())
}

impl Settings {
    /// Resolves `overrides` over `pare.toml` (from `--config`, else in
    /// `cwd`) over the environment (`PARE_STATE_DIR`) over the defaults.
    pub fn resolve(
        overrides: &Overrides,
        cwd: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut config = Config::load(overrides.config.as_deref(), cwd)?;
        if !config.state_dir_set {
            if let Some(loc) = env("PARE_STATE").filter(|d| !d.is_empty()) {
                set_location(&mut config, &loc, "PARE_STATE")?;
            } else if let Some(dir) = env("PARE_STATE_DIR").filter(|d| !d.is_empty()) {
                config.state_dir = PathBuf::from(dir);
            }
        }
        if let Some(loc) = &overrides.state {
            set_location(&mut config, loc, "--state")?;
        }
        if let Some(dir) = &overrides.state_dir {
            config.state_dir = dir.clone();
            config.s3 = None;
        }
        if let Some(n) = overrides.parallelism {
            config.parallelism = n.max(1);
        }
        Ok(Settings {
            config,
            json_events: overrides.json_events,
            quiet: overrides.quiet,
        })
    }

    /// Where the state is, as messages and saved plans name it.
    pub fn state_location(&self) -> String {
        match &self.config.s3 {
            Some(s) => s.url(),
            None => self.config.state_dir.display().to_string(),
        }
    }

    /// The process's own environment, as [`Settings::resolve`] takes it.
    pub fn env(key: &str) -> Option<String> {
        std::env::var(key).ok()
    }

    /// How providers talk to the cloud.
    pub fn connection(&self) -> Connection {
        Connection {
            attempts: self.config.attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = |k: &str| (k == "PARE_STATE_DIR").then(|| "from-env".to_string());
        let s = Settings::resolve(&Overrides::default(), dir.path(), &env).unwrap();
        assert_eq!(s.config.state_dir, PathBuf::from("from-env"));
        std::fs::write(
            dir.path().join("pare.toml"),
            "[state]\ndir = \"from-file\"\n[apply]\nparallelism = 3\n",
        )
        .unwrap();
        let s = Settings::resolve(&Overrides::default(), dir.path(), &env).unwrap();
        assert_eq!(s.config.state_dir, PathBuf::from("from-file"));
        assert_eq!(s.config.parallelism, 3);
        let flags = Overrides {
            state_dir: Some("from-flag".into()),
            parallelism: Some(7),
            ..Overrides::default()
        };
        let s = Settings::resolve(&flags, dir.path(), &env).unwrap();
        assert_eq!(s.config.state_dir, PathBuf::from("from-flag"));
        assert_eq!(s.config.parallelism, 7);
    }
}
