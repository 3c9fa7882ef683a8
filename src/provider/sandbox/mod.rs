//! The sandbox: a simulated account kept in the state directory.
//!
//! On first use the plan's seed file (confined to the plan's folder) is
//! copied into the state as `sandbox.yaml`; tracked files are never
//! changed. Each performed operation is appended, with its time, to the
//! state's `sandbox.log` and made durable before the call returns (the
//! simulated cloud has then "done" it); the log is replayed on open and
//! folded back into `sandbox.yaml` by [`Provider::checkpoint`], which only
//! the holder of the state lock calls. The account lives in whatever store
//! holds the state ([`DocStore`]), so it travels with it. Latency and
//! faults can be injected for tests and benchmarks (`faults:` in the
//! account file).

mod faults;

pub use faults::{Faults, OpFault};

use super::{CloudError, Inventory, Op, Outcome, Provider, ProviderError, Query};
use crate::diagnostic::{Diagnostic, SourceFile, Span};
use crate::durable::{AppendLog, DocStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the sandbox could not be opened.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("cannot read the sandbox seed {path}: {error}")]
    #[diagnostic(
        code(sandbox::seed),
        help("the seed path in the plan is relative to the plan file")
    )]
    Seed { path: PathBuf, error: String },
    #[error("the sandbox seed `{seed}` is outside the plan's folder {folder}{}", .target.as_ref().map_or(String::new(), |t| format!(" (it leads to {})", t.display())))]
    #[diagnostic(
        code("sandbox::seed-outside"),
        help(
            "a plan may only name a seed in its own folder or below (no absolute paths, no `..`, no links out): copy the account file next to the plan"
        )
    )]
    SeedOutside {
        seed: String,
        folder: PathBuf,
        target: Option<PathBuf>,
    },
    #[error("the sandbox account {} is not valid", .0.first().map_or("", |d| d.file.name.as_str()))]
    #[diagnostic(code(sandbox::invalid))]
    Invalid(Vec<Diagnostic>),
    #[error("sandbox state in {location}: {error}")]
    #[diagnostic(
        code(sandbox::state),
        help("`pare sandbox reset PLAN` starts the sandbox over from its seed")
    )]
    State { location: String, error: String },
    #[error("sandbox state {location} is damaged: {message}")]
    #[diagnostic(
        code(sandbox::damaged),
        help("`pare sandbox reset PLAN` starts the sandbox over from its seed")
    )]
    Damaged { location: String, message: String },
}

/// One line of the operation log.
#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    op: Op,
    outcome: Outcome,
    /// When it was performed (RFC 3339): replay keeps AWS's clocks (a
    /// volume's last modification) as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
}

pub struct SandboxProvider {
    store: Arc<dyn DocStore>,
    state: Mutex<State>,
    /// The log, written while `state` is locked (so its order is the order
    /// of the changes) and synced without it, so parallel calls share one
    /// sync. Locked after `state`, never before.
    log: Mutex<Log>,
    /// How far the log is known durable; held while a sync runs.
    synced: Mutex<u64>,
}

struct State {
    account: Inventory,
    /// Offerings were made from the price catalog: not written back.
    generated_offerings: bool,
    faults: faults::Injector,
    logged: usize,
    /// Set when the log could not be written: the account in memory is no
    /// longer what the store holds, so every later call fails.
    broken: Option<String>,
}

#[derive(Default)]
struct Log {
    file: Option<Box<dyn AppendLog>>,
    /// Lines written by this process (never reset).
    written: u64,
}

/// The seed file a plan names: `seed` relative to the plan's folder, and
/// inside it (or below). Absolute paths, `..` and links that lead out are
/// refused, so a plan from someone else's pull request cannot make pare
/// read (and echo) any other file.
pub fn seed_path(plan_path: &Path, seed: &str) -> Result<Seed, SandboxError> {
    let folder = plan_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let outside = |target: Option<PathBuf>| SandboxError::SeedOutside {
        seed: crate::vocabulary::words::clean(seed).into_owned(),
        folder: folder.to_owned(),
        target,
    };
    let rel = Path::new(seed);
    if !crate::durable::lexically_inside(seed) {
        return Err(outside(None));
    }
    let path = folder.join(rel);
    // Links: the real file must still be inside the real folder.
    let seed = Seed {
        path,
        folder: folder.to_owned(),
    };
    let (Ok(real_folder), Ok(real)) = (
        std::fs::canonicalize(folder),
        std::fs::canonicalize(&seed.path),
    ) else {
        return Ok(seed); // missing: reading it says so
    };
    if !real.starts_with(&real_folder) {
        return Err(outside(Some(real)));
    }
    Ok(seed)
}

/// A plan's seed file and the folder it must stay in (checked again on the
/// file actually opened, so a link swapped in meanwhile cannot lead out).
#[derive(Debug, Clone)]
pub struct Seed {
    pub path: PathBuf,
    pub folder: PathBuf,
}

const FILE: &str = "sandbox.yaml";
const LOG: &str = "sandbox.log";

/// The operation log that continues an account file of generation `gen`.
fn log_name(generation: u64) -> String {
    if generation == 0 {
        LOG.to_string()
    } else {
        format!("{LOG}.{generation}")
    }
}

/// The log generation an account file's text names (a top-level key pare
/// writes itself), without parsing the whole account.
fn generation_in(text: &[u8]) -> u64 {
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|l| l.strip_prefix("log_generation:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
const SEEDED_FROM: &str = "sandbox.seed";

/// Where the account format is described.
const HELP: &str = "the account format is described in pare's README (\"The sandbox account\"); examples/quickstart/account.yaml is one";

/// What an account file looks like, for a file that does not.
const ACCOUNT_SHAPE: &str = "a sandbox account is a YAML mapping of `region`, `instances`, `volumes`, `snapshots`, `images`, `addresses`, `auto_scaling_groups` and `reserved_instances` (its lines are not shown, since this file may be something else); the format is described in pare's README (\"The sandbox account\"); examples/quickstart/account.yaml is one";

/// An account file's own top-level keys, by which a file is recognised as one.
const ACCOUNT_KEYS: [&str; 15] = [
    "region",
    "instances",
    "volumes",
    "snapshots",
    "images",
    "addresses",
    "auto_scaling_groups",
    "reserved_instances",
    "offerings",
    "instance_types",
    "volume_modified_at",
    "client_tokens",
    "faults",
    "next_id",
    "log_generation",
];

/// Whether YAML text is recognisably an account file: a mapping at the top
/// with at least one of the account's own keys. Only such a file is quoted
/// in an error; any other file a seed names may hold secrets.
fn looks_like_account(text: &str) -> bool {
    crate::plan::node::parse(text).is_ok_and(|root| {
        root.as_map().is_some_and(|entries| {
            entries
                .iter()
                .any(|(k, _)| k.as_str().is_some_and(|k| ACCOUNT_KEYS.contains(&k)))
        })
    })
}

/// The error for an account file that is not YAML at all (its lines are
/// never shown), or `None` if it is YAML.
fn not_yaml(name: &str, text: &str) -> Option<SandboxError> {
    if let Err(e) = crate::plan::node::parse(text) {
        let file = SourceFile::new(name, text);
        let offset = file.offset(e.pos.line, e.pos.column);
        return Some(SandboxError::Invalid(vec![
            Diagnostic::new(
                "sandbox::invalid-seed",
                &file,
                Span::new(offset, 0),
                format!(
                    "{name} is not a YAML account file (the YAML breaks at line {}, column {})",
                    e.pos.line, e.pos.column
                ),
                "here",
            )
            .with_help(HELP)
            .without_source(),
        ]));
    }
    None
}

/// Parses an account file, pointing at the problem if it is not one. The
/// account format is the sandbox's own, so it is read here rather than in
/// `plan::load`, which owns plan files only. A file that is not YAML at
/// all is never quoted (it may not be an account file: a seed pointing at
/// a secret must not print it); one that is YAML but not an account is
/// shown where it goes wrong.
pub fn parse_account(name: &str, text: &str) -> Result<Inventory, SandboxError> {
    let options = crate::plan::node::options(text, serde_saphyr::DuplicateKeyPolicy::Error);
    let parsed = serde_saphyr::from_str_with_options::<Inventory>(text, options).map(|mut inv| {
        inv.reindex();
        inv
    });
    if let Ok(inv) = &parsed
        && let Some(f) = &inv.faults
    {
        let unknown: Vec<&str> = f
            .ops
            .keys()
            .map(String::as_str)
            .filter(|k| !faults::op_names().any(|n| n == *k))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown_fault_ops(name, text, &unknown));
        }
    }
    parsed.map_err(|e| {
        // Not YAML at all? Then never show its lines.
        if let Some(err) = not_yaml(name, text) {
            return err;
        }
        let file = SourceFile::new(name, text);
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        let offset = file.offset(line, column);
        if !looks_like_account(text) {
            // YAML, but nothing says it is an account: neither its lines nor
            // the YAML reader's words about them (which quote keys and
            // values) are shown.
            return SandboxError::Invalid(vec![
                Diagnostic::new(
                    "sandbox::invalid-seed",
                    &file,
                    Span::new(offset, 0),
                    format!(
                        "{} is not a sandbox account (line {line}, column {column}): its top level is not a mapping with any of the account's keys",
                        file.name
                    ),
                    "here",
                )
                .with_help(ACCOUNT_SHAPE)
                .without_source(),
            ]);
        }
        let message = crate::plan::node::strip_location(&e.to_string());
        SandboxError::Invalid(vec![
            Diagnostic::new(
                "sandbox::invalid-seed",
                &file,
                Span::new(offset, 1),
                message,
                "here",
            )
            .with_help(HELP),
        ])
    })
}

/// The errors for operation names under `faults: ops:` that are not
/// operations (a typo would otherwise inject nothing, silently), each at its
/// key, with a "did you mean" and the names there are.
fn unknown_fault_ops(name: &str, text: &str, unknown: &[&str]) -> SandboxError {
    use crate::plan::node::{Node, Scalar, Value, parse};
    fn entry<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
        node.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    let file = SourceFile::new(name, text);
    let root = parse(text).ok();
    let ops = root
        .as_ref()
        .and_then(|r| entry(r, "faults"))
        .and_then(|f| entry(f, "ops"));
    // Where each name is written (a key YAML reads as a number is one too).
    let at = |op: &str| -> Span {
        let key = ops.and_then(Node::as_map).and_then(|entries| {
            entries.iter().map(|(k, _)| k).find(|k| match &k.value {
                Value::Scalar(Scalar::Str(s)) => s == op,
                Value::Scalar(Scalar::Int(i)) => i.to_string() == op,
                _ => false,
            })
        });
        match key.or(ops) {
            Some(n) => Span::new(n.pos.offset, n.pos.len),
            None => Span::new(0, 0),
        }
    };
    let list = faults::op_names().collect::<Vec<_>>().join(", ");
    let mut diags: Vec<Diagnostic> = unknown
        .iter()
        .map(|op| {
            let help = match crate::plan::ids::suggest(op, faults::op_names()) {
                Some(s) => format!("did you mean `{s}`? the operations are {list}"),
                None => format!("the operations are {list}"),
            };
            Diagnostic::new(
                "sandbox::unknown-op",
                &file,
                at(op),
                format!(
                    "unknown operation `{op}` under `faults: ops:` (no fault would ever be injected)"
                ),
                "unknown operation",
            )
            .with_help(help)
        })
        .collect();
    diags.sort_by_key(|d| d.primary.span.offset);
    SandboxError::Invalid(diags)
}

impl SandboxProvider {
    /// Opens the sandbox kept in `store`, seeding it from `seed` on first
    /// use. Returns the provider and, when the sandbox was seeded from
    /// another file than `seed`, a warning for the user.
    pub fn open(
        store: Arc<dyn DocStore>,
        seed: &Seed,
    ) -> Result<(SandboxProvider, Option<String>), SandboxError> {
        let state_err = |e: std::io::Error| SandboxError::State {
            location: store.location(),
            error: e.to_string(),
        };
        let mut warning = None;
        let bytes = match store.read_doc(FILE).map_err(state_err)? {
            Some(b) => {
                if let Some(previous) = store.read_doc(SEEDED_FROM).ok().flatten() {
                    let previous = String::from_utf8_lossy(&previous).trim().to_string();
                    let now = canonical(&seed.path);
                    if previous != now {
                        warning = Some(format!(
                            "the sandbox in {} was seeded from {}, not {}; `pare sandbox reset PLAN` re-seeds it",
                            store.location(),
                            crate::vocabulary::words::clean(&previous),
                            crate::vocabulary::words::clean(&now)
                        ));
                    }
                }
                b
            }
            None => {
                Self::reset(store.as_ref(), seed)?;
                store.read_doc(FILE).map_err(state_err)?.unwrap_or_default()
            }
        };
        let name = format!("{}/{FILE}", store.location());
        let damaged = |message: String| SandboxError::Damaged {
            location: name.clone(),
            message,
        };
        let text = String::from_utf8(bytes).map_err(|e| damaged(e.to_string()))?;
        let mut account = parse_account(&name, &text).map_err(|e| match e {
            SandboxError::Invalid(d) => {
                damaged(d.first().map(|d| d.message.clone()).unwrap_or_default())
            }
            other => other,
        })?;
        let generated_offerings = account.offerings.is_empty();
        if generated_offerings {
            account.offerings = catalog_offerings(&account);
        }
        let logged = replay(store.as_ref(), &mut account)?;
        let faults = faults::Injector::new(account.faults.clone().unwrap_or_default());
        Ok((
            SandboxProvider {
                store,
                state: Mutex::new(State {
                    account,
                    faults,
                    logged,
                    broken: None,
                    generated_offerings,
                }),
                log: Mutex::new(Log::default()),
                synced: Mutex::new(0),
            },
            warning,
        ))
    }

    /// Copies `seed` into the store, discarding the current sandbox. The
    /// caller holds the state's lock.
    pub fn reset(store: &dyn DocStore, seed: &Seed) -> Result<Inventory, SandboxError> {
        let read = crate::durable::read_confined(
            &seed.path,
            &seed.folder,
            crate::durable::ACCOUNT_LIMIT,
            "an account file",
        )
        .and_then(crate::durable::text);
        let text = match read {
            Ok(t) => t,
            Err(crate::durable::ReadError::Outside(target, folder)) => {
                return Err(SandboxError::SeedOutside {
                    seed: crate::vocabulary::words::clean(&seed.path.display().to_string())
                        .into_owned(),
                    folder,
                    target: Some(target),
                });
            }
            Err(e) => {
                return Err(SandboxError::Seed {
                    path: seed.path.clone(),
                    error: e.to_string(),
                });
            }
        };
        let account = parse_account(&seed.path.display().to_string(), &text)?;
        let state_err = |e: std::io::Error| SandboxError::State {
            location: store.location(),
            error: e.to_string(),
        };
        let old = store.read_doc(FILE).map_err(state_err)?;
        store.write_doc(FILE, text.as_bytes()).map_err(state_err)?;
        store
            .remove_log(&log_name(account.log_generation))
            .map_err(state_err)?;
        if let Some(old) = old {
            store
                .remove_log(&log_name(generation_in(&old)))
                .map_err(state_err)?;
        }
        store
            .write_doc(SEEDED_FROM, canonical(&seed.path).as_bytes())
            .map_err(state_err)?;
        Ok(account)
    }

    /// The whole account as it is now (for tests and `inventory`).
    pub fn snapshot(&self) -> Inventory {
        self.lock().account.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the inventory consistent
        // (apply validates before it mutates), so poisoning is not fatal.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reserved-instance offerings for every catalog type, regional and in each
/// zone the account uses, priced with the catalog's typical discounts.
fn catalog_offerings(account: &Inventory) -> Vec<super::Offering> {
    let c = crate::pricing::catalog();
    let mut zones: Vec<Option<String>> = vec![None];
    let mut seen: Vec<&str> = account
        .instances
        .values()
        .map(|i| i.zone.as_str())
        .collect();
    seen.extend(account.volumes.values().map(|v| v.zone.as_str()));
    seen.sort();
    seen.dedup();
    zones.extend(seen.into_iter().map(|z| Some(z.to_string())));
    let mut out = Vec::new();
    for t in c.instance_types() {
        let od = c.hourly(t).unwrap_or(0.0);
        for class in ["standard", "convertible"] {
            for (term, hours) in [("1y", 8760.0), ("3y", 26280.0)] {
                for payment in ["no-upfront", "partial-upfront", "all-upfront"] {
                    let Some(rate) = c.reservation_rate(class, term, payment) else {
                        continue;
                    };
                    let effective = od * rate;
                    let (upfront, hourly) = match payment {
                        "all-upfront" => (effective * hours, 0.0),
                        "partial-upfront" => (effective * hours / 2.0, effective / 2.0),
                        _ => (0.0, effective),
                    };
                    for zone in &zones {
                        out.push(super::Offering {
                            id: format!(
                                "offer-{t}-{class}-{term}-{payment}-{}",
                                zone.as_deref().unwrap_or("regional")
                            ),
                            instance_type: t.to_string(),
                            term: term.into(),
                            payment: payment.into(),
                            offering_class: class.into(),
                            zone: zone.clone(),
                            upfront_usd: (upfront * 100.0).round() / 100.0,
                            hourly_usd: (hourly * 10_000.0).round() / 10_000.0,
                        });
                    }
                }
            }
        }
    }
    out
}

fn canonical(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}

/// Re-applies logged operations, each at the time it was made; returns
/// how many there were.
fn replay(store: &dyn DocStore, account: &mut Inventory) -> Result<usize, SandboxError> {
    let name = log_name(account.log_generation);
    let location = format!("{}/{name}", store.location());
    let text = store.read_log(&name).map_err(|e| SandboxError::State {
        location: location.clone(),
        error: e.to_string(),
    })?;
    let Some(text) = text else {
        return Ok(0);
    };
    let damaged = |message: String| SandboxError::Damaged {
        location: location.clone(),
        message,
    };
    let mut n = 0;
    // A torn last line (a crash mid-append) was never acknowledged: dropped.
    for (line, l) in crate::durable::whole_lines(&text) {
        let entry: LogEntry =
            serde_json::from_str(l).map_err(|e| damaged(format!("line {line}: {e}")))?;
        let at = entry
            .at
            .as_deref()
            .and_then(crate::clock::parse_rfc3339)
            .unwrap_or_else(crate::clock::now);
        let outcome = account
            .apply_at(&entry.op, at)
            .map_err(|e| damaged(format!("line {line} does not replay: {e}")))?;
        if outcome != entry.outcome {
            return Err(damaged(format!(
                "line {line} replays to a different result"
            )));
        }
        n += 1;
    }
    Ok(n)
}

#[async_trait::async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn describe(&self, query: &Query) -> Result<Inventory, ProviderError> {
        let (delay, result) = {
            let mut st = self.lock();
            let delay = st.faults.latency("describe");
            let result = st
                .faults
                .check("describe")
                .map(|()| st.account.subset(query))
                .map_err(ProviderError::from);
            (delay, result)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        result
    }

    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let mut batch = self.perform_batch(std::slice::from_ref(op)).await;
        batch
            .results
            .pop()
            .unwrap_or_else(|| Err(ProviderError::Transport("no result".into())))
    }

    /// Like one of AWS's multi-instance calls: one delay for the call, and
    /// all or nothing — if any op would fail (an injected fault, or AWS's
    /// rules), none is performed and every op gets that error.
    async fn perform_batch(&self, ops: &[Op]) -> crate::provider::Batch {
        let refuse = |e: ProviderError| crate::provider::Batch {
            results: ops.iter().map(|_| Err(e.clone())).collect(),
            observed: None,
            refused: true,
        };
        let delay = {
            let st = self.lock();
            ops.iter()
                .map(|op| st.faults.latency(op.name()))
                .max()
                .unwrap_or_default()
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut st = self.lock();
        if let Some(e) = &st.broken {
            return refuse(ProviderError::Transport(e.clone()));
        }
        for op in ops {
            if let Err(e) = st.faults.check(op.name()) {
                return refuse(e.into());
            }
        }
        if ops.len() > 1 {
            // Try the whole call on a copy of what it touches first.
            let mut scratch = st.account.subset(&Query {
                resources: ops
                    .iter()
                    .filter_map(|o| o.batch_instance())
                    .map(|i| crate::provider::ResourceId::Instance(i.to_string()))
                    .collect(),
                attachments: true,
                ..Query::default()
            });
            for op in ops {
                if let Err(e) = scratch.apply(op) {
                    return refuse(e.into());
                }
            }
        }
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut lines = String::new();
        let now = crate::clock::now();
        let at = crate::clock::rfc3339(now);
        for op in ops {
            let outcome = match st.account.apply_at(op, now) {
                Ok(o) => o,
                // Only a single op can fail here (a batch was tried first).
                Err(e) => return refuse(e.into()),
            };
            // The change counts only once it is durable, like an acknowledged API call.
            match serde_json::to_string(&LogEntry {
                op: op.clone(),
                outcome: outcome.clone(),
                at: Some(at.clone()),
            }) {
                Ok(entry) => lines.push_str(&format!("{entry}\n")),
                Err(e) => return refuse(ProviderError::Transport(e.to_string())),
            }
            outcomes.push(outcome);
        }
        let location = format!(
            "{}/{}",
            self.store.location().trim_end_matches('/'),
            log_name(st.account.log_generation)
        );
        let io =
            |e: std::io::Error| ProviderError::Transport(format!("sandbox log {location}: {e}"));
        // Written in the order applied (under the state's lock).
        let mine = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let written = (|| {
                if log.file.is_none() {
                    log.file = Some(self.store.open_log(&log_name(st.account.log_generation))?);
                }
                log.file
                    .as_mut()
                    .expect("just opened")
                    .write(lines.as_bytes())
            })();
            if let Err(e) = written {
                let e = io(e);
                st.broken = Some(e.to_string());
                let mut b = refuse(e);
                b.refused = false;
                return b;
            }
            log.written += ops.len() as u64;
            log.written
        };
        st.logged += ops.len();
        drop(st);
        // Group commit: one sync covers every line written before it, and
        // runs without the log's lock, so other calls go on writing.
        {
            let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
            if *synced < mine {
                let (upto, flush) = {
                    let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                    let flush = log.file.as_mut().map(|l| l.flusher());
                    (log.written, flush)
                };
                let done = match flush {
                    Some(Ok(Some(f))) => f(),
                    Some(Ok(None)) => {
                        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                        log.file.as_mut().map_or(Ok(()), |l| l.sync())
                    }
                    Some(Err(e)) => Err(e),
                    None => Ok(()),
                };
                if let Err(e) = done {
                    // Applied but not durable: the outcome is unknown, not refused.
                    let mut b = refuse(io(e));
                    b.refused = false;
                    return b;
                }
                *synced = upto;
            }
        }
        crate::provider::Batch {
            results: outcomes.into_iter().map(Ok).collect(),
            observed: None,
            refused: false,
        }
    }

    fn estimate(&self, op: &Op) -> Duration {
        self.lock().faults.nominal(op.name())
    }

    fn checkpoint(&self) -> Result<(), ProviderError> {
        let mut st = self.lock();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if st.logged == 0 || st.broken.is_some() {
            return Ok(());
        }
        let location = self.store.location();
        let io =
            |e: std::io::Error| ProviderError::Transport(format!("sandbox in {location}: {e}"));
        // The new file names the next log: a crash before the old log is
        // removed leaves it orphaned, never replayed twice.
        let old_log = log_name(st.account.log_generation);
        let mut account = st.account.clone();
        account.log_generation += 1;
        if st.generated_offerings {
            account.offerings.clear();
        }
        let text = serde_saphyr::to_string(&account)
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        self.store.write_doc(FILE, text.as_bytes()).map_err(io)?;
        st.account.log_generation += 1;
        log.file = None;
        st.logged = 0;
        self.store.remove_log(&old_log).map_err(io)?;
        Ok(())
    }
}

impl From<faults::Injected> for ProviderError {
    fn from(i: faults::Injected) -> ProviderError {
        ProviderError::Cloud {
            error: CloudError::new(&i.code, i.message),
            retryable: i.retryable,
        }
    }
}

#[cfg(test)]
mod tests;
