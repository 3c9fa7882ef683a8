//! The sandbox: a simulated account kept in the state directory.
//!
//! On first use the plan's seed file is copied to `<state>/sandbox.yaml`;
//! tracked files are never changed. Each performed operation is appended to
//! `<state>/sandbox.log` and flushed before the call returns (the simulated
//! cloud has then "done" it); the log is replayed on open and folded back
//! into `sandbox.yaml` by [`Provider::checkpoint`], which only the holder of
//! the state lock calls. Latency and faults can be injected for tests and
//! benchmarks (`faults:` in the account file).

mod faults;

pub use faults::{Faults, OpFault};

use super::{CloudError, Inventory, Op, Outcome, Provider, ProviderError, Query};
use crate::diagnostic::{Diagnostic, SourceFile, Span};
use crate::state::atomic;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Why the sandbox could not be opened.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    #[error("cannot read the sandbox seed {path}: {source}")]
    #[diagnostic(
        code(sandbox::seed),
        help("the seed path in the plan is relative to the plan file")
    )]
    Seed {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the sandbox account {} is not valid", .0.first().map_or("", |d| d.file.name.as_str()))]
    #[diagnostic(code(sandbox::invalid))]
    Invalid(Vec<Diagnostic>),
    #[error("sandbox state in {path}: {source}")]
    #[diagnostic(
        code(sandbox::state),
        help("`pare sandbox reset PLAN` starts the sandbox over from its seed")
    )]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox state {path} is damaged: {message}")]
    #[diagnostic(
        code(sandbox::damaged),
        help("`pare sandbox reset PLAN` starts the sandbox over from its seed")
    )]
    Damaged { path: PathBuf, message: String },
}

/// One line of the operation log.
#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    op: Op,
    outcome: Outcome,
}

pub struct SandboxProvider {
    dir: PathBuf,
    state: Mutex<State>,
    /// How many log lines are known durable.
    synced: Mutex<u64>,
}

struct State {
    account: Inventory,
    /// Offerings were made from the price catalog: not written back.
    generated_offerings: bool,
    faults: faults::Injector,
    log: Option<std::fs::File>,
    logged: usize,
    /// Lines appended by this process (never reset).
    appended: u64,
}

const FILE: &str = "sandbox.yaml";
const LOG: &str = "sandbox.log";
const SEEDED_FROM: &str = "sandbox.seed";

/// Parses an account file, pointing at the problem if it is not one. The
/// account format is the sandbox's own (SPEC section 4), so it is read here
/// rather than in `plan::load`, which owns plan files only.
pub fn parse_account(name: &str, text: &str) -> Result<Inventory, SandboxError> {
    let options = crate::plan::node::options(text, serde_saphyr::DuplicateKeyPolicy::Error);
    let parsed = serde_saphyr::from_str_with_options::<Inventory>(text, options).map(|mut inv| {
        inv.reindex();
        inv
    });
    parsed.map_err(|e| {
        let file = SourceFile::new(name, text);
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        let offset = file.offset(line, column);
        let message = crate::plan::node::strip_location(&e.to_string());
        SandboxError::Invalid(vec![
            Diagnostic::new(
                "sandbox::invalid-seed",
                &file,
                Span::new(offset, 1),
                message,
                "here",
            )
            .with_help(
                "see SPEC section 4 / examples/quickstart/account.yaml for the account format",
            ),
        ])
    })
}

impl SandboxProvider {
    /// Opens the sandbox in `state_dir`, seeding it from `seed` on first use.
    /// Returns the provider and, when the sandbox was seeded from another
    /// file than `seed`, a warning for the user.
    pub fn open(
        state_dir: &Path,
        seed: &Path,
    ) -> Result<(SandboxProvider, Option<String>), SandboxError> {
        let file = state_dir.join(FILE);
        let mut warning = None;
        if !file.exists() {
            Self::reset(state_dir, seed)?;
        } else if let Ok(previous) = std::fs::read_to_string(state_dir.join(SEEDED_FROM)) {
            let now = canonical(seed);
            if previous.trim() != now {
                warning = Some(format!(
                    "the sandbox in {} was seeded from {}, not {}; `pare sandbox reset PLAN` re-seeds it",
                    state_dir.display(),
                    previous.trim(),
                    now
                ));
            }
        }
        let state_err = |source| SandboxError::State {
            path: file.clone(),
            source,
        };
        let text = std::fs::read_to_string(&file).map_err(state_err)?;
        let mut account =
            parse_account(&file.display().to_string(), &text).map_err(|e| match e {
                SandboxError::Invalid(d) => SandboxError::Damaged {
                    path: file.clone(),
                    message: d.first().map(|d| d.message.clone()).unwrap_or_default(),
                },
                other => other,
            })?;
        let generated_offerings = account.offerings.is_empty();
        if generated_offerings {
            account.offerings = catalog_offerings(&account);
        }
        let logged = replay(&state_dir.join(LOG), &mut account)?;
        let faults = faults::Injector::new(account.faults.clone().unwrap_or_default());
        Ok((
            SandboxProvider {
                dir: state_dir.to_owned(),
                state: Mutex::new(State {
                    account,
                    faults,
                    log: None,
                    logged,
                    appended: 0,
                    generated_offerings,
                }),
                synced: Mutex::new(0),
            },
            warning,
        ))
    }

    /// Copies `seed` into the state directory, discarding the current sandbox.
    pub fn reset(state_dir: &Path, seed: &Path) -> Result<Inventory, SandboxError> {
        let text = std::fs::read_to_string(seed).map_err(|source| SandboxError::Seed {
            path: seed.to_owned(),
            source,
        })?;
        let account = parse_account(&seed.display().to_string(), &text)?;
        let state_err = |source| SandboxError::State {
            path: state_dir.to_owned(),
            source,
        };
        atomic::create_private_dir(state_dir).map_err(state_err)?;
        atomic::write(&state_dir.join(FILE), text.as_bytes()).map_err(state_err)?;
        match std::fs::remove_file(state_dir.join(LOG)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(state_err(e)),
        }
        atomic::write(&state_dir.join(SEEDED_FROM), canonical(seed).as_bytes())
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

/// Re-applies logged operations; returns how many there were.
fn replay(log: &Path, account: &mut Inventory) -> Result<usize, SandboxError> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(SandboxError::State {
                path: log.to_owned(),
                source,
            });
        }
    };
    let mut n = 0;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        // A torn last line (a crash mid-append) was never acknowledged: drop it.
        if !line.ends_with('\n') && i == lines.len() - 1 {
            break;
        }
        let entry: LogEntry = serde_json::from_str(line).map_err(|e| SandboxError::Damaged {
            path: log.to_owned(),
            message: format!("line {}: {e}", i + 1),
        })?;
        let outcome = account
            .apply(&entry.op)
            .map_err(|e| SandboxError::Damaged {
                path: log.to_owned(),
                message: format!("line {} does not replay: {e}", i + 1),
            })?;
        if outcome != entry.outcome {
            return Err(SandboxError::Damaged {
                path: log.to_owned(),
                message: format!("line {} replays to a different result", i + 1),
            });
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
        for op in ops {
            let outcome = match st.account.apply(op) {
                Ok(o) => o,
                // Only a single op can fail here (a batch was tried first).
                Err(e) => return refuse(e.into()),
            };
            // The change counts only once it is durable, like an acknowledged API call.
            match serde_json::to_string(&LogEntry {
                op: op.clone(),
                outcome: outcome.clone(),
            }) {
                Ok(entry) => lines.push_str(&format!("{entry}\n")),
                Err(e) => return refuse(ProviderError::Transport(e.to_string())),
            }
            outcomes.push(outcome);
        }
        // Written in the order applied (under the lock), synced outside it.
        let path = self.dir.join(LOG);
        let io = |e: std::io::Error| {
            ProviderError::Transport(format!("sandbox log {}: {e}", path.display()))
        };
        let written = (|| {
            if st.log.is_none() {
                st.log = Some(atomic::open_append(&path).map_err(io)?);
            }
            let log = st.log.as_mut().expect("just opened");
            log.write_all(lines.as_bytes()).map_err(io)?;
            log.try_clone().map_err(io)
        })();
        let handle = match written {
            Ok(h) => h,
            Err(e) => return refuse(e),
        };
        st.logged += ops.len();
        st.appended += ops.len() as u64;
        let mine = st.appended;
        drop(st);
        // Group commit: one sync covers every line written before it, so
        // parallel calls do not queue behind each other's syncs.
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced < mine {
            let upto = self.lock().appended;
            if let Err(e) = handle.sync_data() {
                // Applied but not durable: the outcome is unknown, not refused.
                let mut b = refuse(io(e));
                b.refused = false;
                return b;
            }
            *synced = upto;
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
        if st.logged == 0 {
            return Ok(());
        }
        let file = self.dir.join(FILE);
        let io = |e: std::io::Error| {
            ProviderError::Transport(format!("sandbox {}: {e}", file.display()))
        };
        let mut account = st.account.clone();
        if st.generated_offerings {
            account.offerings.clear();
        }
        let text = serde_saphyr::to_string(&account)
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        atomic::write(&file, text.as_bytes()).map_err(io)?;
        st.log = None;
        std::fs::remove_file(self.dir.join(LOG)).map_err(io)?;
        st.logged = 0;
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
