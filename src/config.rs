//! `pare.toml`: state location, apply settings and policy (the README's *`pare.toml`*).
//!
//! Loading reports problems as located diagnostics, like plan files. This
//! module only reads the file and fills in defaults; the settings module
//! combines it with the command line and the environment.

use crate::diagnostic::{Diagnostic, SourceFile, Span};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

use crate::vocabulary::Risk;

/// Most steps of one kind sent to the cloud in one call, unless configured.
pub const DEFAULT_BATCH: usize = 1000;

/// How long a ready step may wait for like steps on their way, unless
/// configured (milliseconds).
pub const DEFAULT_GATHER_MS: u64 = 100;

/// A gathering of like steps waits at most this many windows in all.
pub const GATHER_MAX_WINDOWS: u32 = 50;

/// The tag that always protects a resource, whatever pare.toml says:
/// `protected_tags` adds to it and cannot take it away.
pub const ALWAYS_PROTECTED: (&str, &str) = ("pare:protect", "true");

/// How long a shared state's lock stands without a renewal, unless configured.
pub const DEFAULT_LEASE_S: u64 = 60;

/// Team state in S3 (`[state] backend = "s3"`, `--state s3://…`, `PARE_STATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3State {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Seconds the lock stands without a renewal (renewed every quarter of it).
    pub lease_s: u64,
}

impl S3State {
    /// `s3://bucket/prefix/`: how messages, saved plans and `--state` name it.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Reads `s3://bucket[/prefix]`; `None` if `s` is not an S3 URL at all.
    pub fn parse_url(s: &str) -> Option<Result<S3State, String>> {
        let rest = s.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(S3State::new(bucket, prefix))
    }

    /// A location from its bucket and prefix, both checked.
    pub fn new(bucket: &str, prefix: &str) -> Result<S3State, String> {
        check_bucket(bucket)?;
        Ok(S3State {
            bucket: bucket.to_string(),
            prefix: check_prefix(prefix)?,
            region: None,
            profile: None,
            endpoint_url: None,
            lease_s: DEFAULT_LEASE_S,
        })
    }
}

/// Whether `r` looks like an AWS region name (`us-east-1`, `us-gov-west-1`):
/// lowercase letters, digits and hyphens. Anything else would go into a
/// request's signature, where the SDK cannot send it.
pub fn is_region_name(r: &str) -> bool {
    (1..=50).contains(&r.len())
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// S3's rules for bucket names (3–63 of a-z 0-9 . -, starting and ending
/// with a letter or digit).
fn check_bucket(b: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens)",
            crate::vocabulary::words::clean(b)
        ))
    }
}

/// A prefix as pare uses it: no leading `/`, no `.`/`..` segment, no
/// control characters, at most 512 bytes, and ending in `/` unless empty.
fn check_prefix(p: &str) -> Result<String, String> {
    let trimmed = p.trim_end_matches('/');
    let bad = p.starts_with('/')
        || p.len() > 512
        || p.chars().any(|c| c.is_control())
        || trimmed
            .split('/')
            .any(|seg| seg == "." || seg == ".." || (seg.is_empty() && !trimmed.is_empty()));
    if bad {
        return Err(format!(
            "`{}` is not a usable prefix: give path segments separated by `/` (like `prod-account/`), without `..`, empty segments or control characters",
            crate::vocabulary::words::clean(p)
        ));
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    })
}

/// The settings of `pare.toml`, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the file was read from; `None` when there was none.
    pub path: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Whether the file says where the state is (it then wins over the environment).
    pub state_dir_set: bool,
    /// Shared state in S3; `None`: the local directory `state_dir`.
    pub s3: Option<S3State>,
    pub parallelism: usize,
    /// Most steps of one kind (stop, start, terminate, monitoring) sent in one call.
    pub batch_size: usize,
    pub rollback_on_failure: bool,
    /// Attempts in all for a call that fails transiently (throttling): one
    /// policy, whether the provider (the AWS SDK) or the engine retries.
    pub attempts: u32,
    /// The first wait before a retry; it doubles each time (at most 20 s).
    pub retry_backoff: std::time::Duration,
    /// How long a ready step of a batchable kind may wait for like steps
    /// that are on their way (their recommendation's previous step is under
    /// way), so they share one call; zero turns gathering off.
    pub gather: std::time::Duration,
    /// `(key, value)` pairs pare.toml adds to [`ALWAYS_PROTECTED`]; a
    /// resource with any of these tags is never changed.
    pub protected_tags: Vec<(String, String)>,
    /// Risk at or above which a recommendation needs an approval; `None` = never.
    pub require_approval_at: Option<Risk>,
    pub require_committed_plan: bool,
    pub max_changes: usize,
    /// An imported recommendation refreshed longer ago than this is
    /// flagged in the preview.
    pub max_recommendation_age_days: u32,
    /// `[serve]`: what `pare serve` listens on, its plans root and tokens
    /// file (its flags win).
    pub serve: ServeSettings,
}

/// `[serve]` of pare.toml.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeSettings {
    pub listen: Option<std::net::SocketAddr>,
    pub plans_root: Option<PathBuf>,
    pub tokens: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            path: None,
            state_dir: PathBuf::from(".pare"),
            state_dir_set: false,
            s3: None,
            parallelism: 10,
            batch_size: DEFAULT_BATCH,
            rollback_on_failure: true,
            attempts: 4,
            retry_backoff: std::time::Duration::from_millis(50),
            gather: std::time::Duration::from_millis(DEFAULT_GATHER_MS),
            protected_tags: Vec::new(),
            require_approval_at: Some(Risk::High),
            require_committed_plan: false,
            max_changes: 50,
            max_recommendation_age_days: 14,
            serve: ServeSettings::default(),
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
    #[serde(default)]
    serve: RawServe,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServe {
    listen: Option<Spanned<String>>,
    plans_root: Option<Spanned<String>>,
    tokens: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    bucket: Option<Spanned<String>>,
    prefix: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    endpoint_url: Option<Spanned<String>>,
    lease_s: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApply {
    parallelism: Option<Spanned<i64>>,
    batch_size: Option<Spanned<i64>>,
    rollback_on_failure: Option<bool>,
    attempts: Option<Spanned<i64>>,
    retry_backoff_ms: Option<Spanned<i64>>,
    gather_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    protected_tags: Option<Vec<Spanned<String>>>,
    require_approval_at: Option<Spanned<String>>,
    require_committed_plan: Option<bool>,
    max_changes: Option<Spanned<i64>>,
    max_recommendation_age_days: Option<Spanned<i64>>,
}

/// Why `pare.toml` could not be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    #[diagnostic(code(config::unreadable), help("check the path given to --config"))]
    Io { path: PathBuf, error: String },
    #[error("{} in {}", crate::diagnostic::count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
    #[error("{from}: {error}")]
    #[diagnostic(
        code("config::bad-state"),
        help("name the state as s3://bucket/prefix/ (team state in S3) or as a directory")
    )]
    Location { from: String, error: String },
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
        // The one found in the working directory must really be there (a
        // committed link to a secret is refused); one named by --config is
        // read where it is.
        let read = match explicit {
            Some(_) => crate::durable::read_text(&path, crate::durable::CONFIG_LIMIT, "pare.toml"),
            None => {
                crate::durable::read_confined(&path, dir, crate::durable::CONFIG_LIMIT, "pare.toml")
                    .and_then(crate::durable::text)
            }
        };
        let text = read.map_err(|e| ConfigError::Io {
            path: path.clone(),
            error: e.to_string(),
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
                        .with_help("pare.toml has the sections [state] dir (or backend = \"s3\", bucket, prefix, region, profile, endpoint_url, lease_s), [apply] parallelism, batch_size, gather_ms, rollback_on_failure, attempts and retry_backoff_ms, [policy] protected_tags, require_approval_at, require_committed_plan, max_changes and max_recommendation_age_days, [serve] listen, plans_root and tokens"),
                ]);
            }
        };
        let mut diags = Vec::new();
        let mut config = Config::default();
        state_section(&file, raw.state, &mut config, &mut diags);
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
        if let Some(a) = raw.apply.attempts {
            match u32::try_from(*a.get_ref()) {
                Ok(n) if (1..=20).contains(&n) => config.attempts = n,
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(a.span()),
                        "`attempts` must be between 1 and 20",
                        "out of range",
                    )
                    .with_help(
                        "set `attempts` to how many times a throttled call is tried in all, e.g. 4",
                    ),
                ),
            }
        }
        if let Some(g) = raw.apply.gather_ms {
            match u64::try_from(*g.get_ref()) {
                Ok(n) if n <= 5_000 => config.gather = std::time::Duration::from_millis(n),
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(g.span()),
                        "`gather_ms` must be between 0 and 5000",
                        "out of range",
                    )
                    .with_help(format!("set `gather_ms` to how long a ready step may wait for like steps on their way (0 turns gathering off), e.g. {DEFAULT_GATHER_MS}")),
                ),
            }
        }
        if let Some(b) = raw.apply.retry_backoff_ms {
            match u64::try_from(*b.get_ref()) {
                Ok(n) if n <= 60_000 => config.retry_backoff = std::time::Duration::from_millis(n),
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(b.span()),
                        "`retry_backoff_ms` must be between 0 and 60000",
                        "out of range",
                    )
                    .with_help("set `retry_backoff_ms` to the first wait before a retry, e.g. 50"),
                ),
            }
        }
        if let Some(tags) = raw.policy.protected_tags {
            for t in tags {
                match t.get_ref().split_once('=') {
                    Some((k, v)) if k != k.trim() || v != v.trim() => diags.push(
                        Diagnostic::new(
                            "config::invalid-value",
                            &file,
                            to_span(t.span()),
                            format!("`{}` has spaces around its key or value", t.get_ref()),
                            "spaces",
                        )
                        .with_help(
                            "write protected tags without spaces, e.g. \"env=prod\" (keys and values match ignoring case and surrounding spaces)",
                        ),
                    ),
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
                            "write protected tags as `key=value`, e.g. \"env=prod\" (pare:protect=true always protects; it need not be listed)",
                        ),
                    ),
                }
            }
        }
        if let Some(level) = raw.policy.require_approval_at {
            let v = level.get_ref().as_str();
            match Risk::parse(v) {
                Some(r) => config.require_approval_at = Some(r),
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
        if let Some(m) = raw.policy.max_recommendation_age_days {
            match u32::try_from(*m.get_ref()) {
                Ok(n) if (1..=3650).contains(&n) => config.max_recommendation_age_days = n,
                _ => diags.push(
                    Diagnostic::new(
                        "config::out-of-range",
                        &file,
                        to_span(m.span()),
                        "`max_recommendation_age_days` must be from 1 to 3650",
                        "out of range",
                    )
                    .with_help(
                        "set how many days an imported recommendation stays fresh (default 14)",
                    ),
                ),
            }
        }
        if let Some(l) = raw.serve.listen {
            match l.get_ref().trim().parse::<std::net::SocketAddr>() {
                Ok(a) => config.serve.listen = Some(a),
                Err(_) => diags.push(
                    Diagnostic::new(
                        "config::invalid",
                        &file,
                        to_span(l.span()),
                        "`listen` is not an address and port",
                        "not ADDRESS:PORT",
                    )
                    .with_help("give an IP address and a port, like \"127.0.0.1:8080\""),
                ),
            }
        }
        for (value, slot, key) in [
            (
                raw.serve.plans_root,
                &mut config.serve.plans_root,
                "plans_root",
            ),
            (raw.serve.tokens, &mut config.serve.tokens, "tokens"),
        ] {
            if let Some(v) = value {
                if v.get_ref().trim().is_empty() || v.get_ref().contains('\0') {
                    diags.push(
                        Diagnostic::new(
                            "config::invalid",
                            &file,
                            to_span(v.span()),
                            format!("`{key}` is not a path"),
                            "empty",
                        )
                        .with_help("give a path, relative to the working directory or absolute"),
                    );
                } else {
                    *slot = Some(PathBuf::from(v.get_ref()));
                }
            }
        }
        if diags.is_empty() {
            Ok(config)
        } else {
            Err(diags)
        }
    }
}

/// `[state]`: the local directory, or S3 with its bucket and prefix.
fn state_section(
    file: &std::sync::Arc<SourceFile>,
    raw: RawState,
    config: &mut Config,
    diags: &mut Vec<Diagnostic>,
) {
    let mut bad = |span: std::ops::Range<usize>, message: String, label: &str, help: &str| {
        diags.push(
            Diagnostic::new("config::invalid-value", file, to_span(span), message, label)
                .with_help(help),
        )
    };
    let s3 = match &raw.backend {
        None => false,
        Some(b) if b.get_ref() == "local" => false,
        Some(b) if b.get_ref() == "s3" => true,
        Some(b) => {
            bad(
                b.span(),
                format!(
                    "`{}` is not a state backend",
                    crate::vocabulary::words::clean(b.get_ref())
                ),
                "unknown backend",
                "set `backend` to \"local\" (a directory, the default) or \"s3\" (with `bucket` and `prefix`)",
            );
            return;
        }
    };
    if !s3 {
        let s3_only = [
            &raw.bucket,
            &raw.prefix,
            &raw.region,
            &raw.profile,
            &raw.endpoint_url,
        ];
        if let Some(k) = s3_only.into_iter().flatten().next() {
            bad(
                k.span(),
                "this setting is for state in S3".into(),
                "needs backend = \"s3\"",
                "add `backend = \"s3\"` to [state] to keep the state in S3, or remove the S3 settings",
            );
            return;
        }
        if let Some(l) = &raw.lease_s {
            bad(
                l.span(),
                "`lease_s` is for state in S3".into(),
                "needs backend = \"s3\"",
                "a local lock needs no lease: the system releases it when its process ends",
            );
            return;
        }
        if let Some(dir) = raw.dir {
            config.state_dir = PathBuf::from(dir.into_inner());
            config.state_dir_set = true;
        }
        return;
    }
    if let Some(d) = &raw.dir {
        bad(
            d.span(),
            "`dir` is for a local state, and this one is in S3".into(),
            "not with backend = \"s3\"",
            "remove `dir`, or set backend = \"local\"",
        );
        return;
    }
    let Some(bucket) = &raw.bucket else {
        let at = raw.backend.as_ref().map_or(0..0, |b| b.span());
        bad(
            at,
            "state in S3 needs a `bucket`".into(),
            "no bucket",
            "add `bucket = \"your-state-bucket\"` (and `prefix = \"account-name/\"`) to [state]",
        );
        return;
    };
    let mut state = match S3State::new(
        bucket.get_ref(),
        raw.prefix.as_ref().map_or("", |p| p.get_ref().as_str()),
    ) {
        Ok(s) => s,
        Err(e) => {
            let at = match (&raw.prefix, bucket) {
                (Some(p), _) if check_bucket(bucket.get_ref()).is_ok() => p.span(),
                _ => bucket.span(),
            };
            bad(
                at,
                e,
                "here",
                "an S3 location is `bucket` (its name only) and `prefix` (like `prod-account/`)",
            );
            return;
        }
    };
    if let Some(r) = &raw.region
        && !is_region_name(r.get_ref())
    {
        bad(
            r.span(),
            format!(
                "`{}` is not an AWS region name",
                crate::vocabulary::words::clean(r.get_ref())
            ),
            "not a region",
            "give the bucket's region as AWS names it, like `us-east-1`, or leave it out",
        );
        return;
    }
    state.region = raw.region.map(Spanned::into_inner);
    state.profile = raw.profile.map(Spanned::into_inner);
    if let Some(u) = raw.endpoint_url {
        if !(u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://")) {
            bad(
                u.span(),
                "`endpoint_url` must be an http:// or https:// URL".into(),
                "not a URL",
                "leave it out for AWS itself; set it only for an S3-compatible endpoint",
            );
            return;
        }
        state.endpoint_url = Some(u.into_inner());
    }
    if let Some(l) = raw.lease_s {
        match u64::try_from(*l.get_ref()) {
            Ok(n) if (1..=86_400).contains(&n) => state.lease_s = n,
            _ => {
                bad(
                    l.span(),
                    "`lease_s` must be between 1 and 86400 seconds".into(),
                    "out of range",
                    "how long the lock stands when its holder stops renewing it; the default is 60",
                );
                return;
            }
        }
    }
    config.s3 = Some(state);
    config.state_dir_set = true;
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
                "[policy]\nprotected_tags = [\"pare:protect= true\"]\n",
                ("config::invalid-value", 2, 19),
            ),
            ("[apply]\nattempts = 0\n", ("config::out-of-range", 2, 12)),
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
