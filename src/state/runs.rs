//! Runs and their records. Like jj's operation log, history is append-only:
//! a rollback is a new run that names the run it undoes, and no record is
//! ever rewritten except to record how its run ended.

use crate::plan::{Approval, Provider};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Apply,
    Rollback,
    /// An interrupted or unfinished run accepted as it stands.
    Accept,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Apply => "apply",
            RunKind::Rollback => "rollback",
            RunKind::Accept => "accept",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Under way (a process holds the lock).
    Running,
    /// Killed before it could record its end: found `running` by a later
    /// run that held the lock.
    Interrupted,
    /// Every change made.
    Applied,
    /// A step failed; nothing was rolled back (`rollback_on_failure = false`).
    Failed,
    /// A step failed and every completed step was undone.
    RolledBack,
    /// A step failed and the undo did not finish.
    RollbackIncomplete,
    /// Stopped by Ctrl-C (or the API): what had started finished, nothing new started.
    Cancelled,
    /// A rollback or accept run that finished.
    Completed,
    /// A rollback run that could not undo everything (yet).
    Incomplete,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Applied => "applied",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled_back",
            RunStatus::RollbackIncomplete => "rollback_incomplete",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Completed => "completed",
            RunStatus::Incomplete => "incomplete",
        }
    }
}

/// Where a run was started from, when it ran in CI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    /// `github-actions`, `gitlab-ci`, or `ci`.
    pub system: String,
    /// The CI job's URL, where the environment says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Who started the CI run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The commit the CI run is for (`GITHUB_SHA`, `CI_COMMIT_SHA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The pull request it belongs to: from `GITHUB_REF` (`refs/pull/N/…`)
    /// on a pull request, else `PARE_PULL_REQUEST` (a merge job sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// Who approved the pull request (`PARE_APPROVED_BY`, comma-separated,
    /// set by the merge job from the pull request's reviews).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
}

/// A value from the CI's environment as pare records it: printable, short.
fn ci_value(v: &str) -> Option<String> {
    let v = crate::vocabulary::words::clean(v.trim());
    let v: String = v.chars().take(200).collect();
    (!v.is_empty()).then_some(v)
}

/// The pull request number in `refs/pull/123/merge`.
fn pull_from_ref(r: &str) -> Option<u64> {
    r.strip_prefix("refs/pull/")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Everything recorded about one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Who ran it: `user@host`, or the CI actor (`alice@github-actions`).
    pub who: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Ci>,
    pub provider: String,
    /// The plan's provider block, to reopen the same account for a rollback.
    #[serde(default)]
    pub provider_spec: Option<Provider>,
    pub plan_path: String,
    pub plan_sha256: String,
    #[serde(default)]
    pub plan_name: Option<String>,
    #[serde(default)]
    pub git_commit: Option<String>,
    /// The saved plan's lineage, when a saved plan was applied.
    #[serde(default)]
    pub lineage: Option<String>,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// For rollback and accept runs: the run they resolve.
    #[serde(default)]
    pub resolves: Option<String>,
    /// Apply: recommendations completed. Rollback: recommendations whose
    /// every step is now undone.
    #[serde(default)]
    pub completed: Vec<String>,
    /// What failed, with the error (`rec: step 2: …`).
    #[serde(default)]
    pub failed: Vec<String>,
    /// Recommendations not started, and why.
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Rollback: each step undone, in words (`rec [2]: start i-…`).
    #[serde(default)]
    pub undone: Vec<String>,
    /// Steps that changed the cloud (apply: forward steps; rollback: undos).
    #[serde(default)]
    pub steps_done: usize,
    /// Monthly savings the plan's changes promised.
    #[serde(default)]
    pub savings_planned_monthly_usd: f64,
    /// Monthly savings the run realised: what its completed changes save,
    /// and nothing once they were rolled back.
    #[serde(default)]
    pub savings_monthly_usd: f64,
    /// Resources a rollback recreated: old id → new id.
    #[serde(default)]
    pub renamed: BTreeMap<String, String>,
    /// What is left to do, in words, when the run did not end cleanly.
    #[serde(default)]
    pub left: Vec<String>,
    /// The `Idempotency-Key` of the API request that started the run
    /// (`pare serve`), so a retry finds it even after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_key: Option<String>,
}

/// A monthly amount as a run record keeps it: the sum of `amounts`,
/// rounded to cents, and always a finite number. JSON has no infinity or
/// NaN (serde_json would write `null`, and the record could then no longer
/// be read, nor its run undone), so a NaN amount counts as nothing, an
/// infinite one as the largest finite amount, and a sum beyond what an
/// `f64` holds stays at the largest finite amount.
pub fn usd_total(amounts: impl IntoIterator<Item = f64>) -> f64 {
    let sum = amounts
        .into_iter()
        .filter(|x| !x.is_nan())
        .map(|x| x.clamp(-f64::MAX, f64::MAX))
        .fold(0.0_f64, |acc, x| (acc + x).clamp(-f64::MAX, f64::MAX));
    let cents = (sum * 100.0).round() / 100.0;
    if cents.is_finite() { cents } else { sum }
}

/// A run id: `r20261127-174901`, then `-1`, `-2`, … for later runs started
/// in the same second. Ids sort by time, then by that sequence as a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId {
    stamp: (u32, u32),
    seq: u32,
}

impl RunId {
    /// Parses an id, refusing anything else (a path, a typo).
    pub fn parse(s: &str) -> Option<RunId> {
        let rest = s.strip_prefix('r')?;
        let mut parts = rest.split('-');
        let date = parts.next()?;
        let time = parts.next()?;
        let seq = match parts.next() {
            None => 0,
            Some(n) if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) => {
                let v: u32 = n.parse().ok()?;
                if v == 0 || n.starts_with('0') {
                    return None;
                }
                v
            }
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(date, 8) || !digits(time, 6) {
            return None;
        }
        Some(RunId {
            stamp: (date.parse().ok()?, time.parse().ok()?),
            seq,
        })
    }

    /// The id for `stamp` (`20261127-174901`) and sequence `seq`.
    pub fn new(stamp: &str, seq: u32) -> Option<RunId> {
        let mut id = RunId::parse(&format!("r{stamp}"))?;
        id.seq = seq;
        Some(id)
    }

    /// The next id in the same second.
    pub fn next(&self) -> RunId {
        RunId {
            stamp: self.stamp,
            seq: self.seq + 1,
        }
    }

    fn key(&self) -> (u32, u32, u32) {
        (self.stamp.0, self.stamp.1, self.seq)
    }
}

impl Ord for RunId {
    fn cmp(&self, other: &RunId) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for RunId {
    fn partial_cmp(&self, other: &RunId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{:08}-{:06}", self.stamp.0, self.stamp.1)?;
        if self.seq > 0 {
            write!(f, "-{}", self.seq)?;
        }
        Ok(())
    }
}

/// Every run record that could be read, newest first, and the ones that
/// could not (named, so one damaged record does not hide the others).
#[derive(Debug, Default)]
pub struct History {
    pub runs: Vec<RunRecord>,
    /// Run id → what is wrong with its record.
    pub damaged: Vec<(String, String)>,
}

impl History {
    /// The runs that resolve `target` and finished: completed rollbacks and accepts.
    fn resolved(&self) -> BTreeSet<&str> {
        let mut resolved: BTreeSet<&str> = self
            .runs
            .iter()
            .filter(|r| r.status == RunStatus::Completed)
            .filter_map(|r| r.resolves.as_deref())
            .collect();
        // Accepting an unfinished rollback accepts the run it was undoing.
        let by_id: BTreeMap<&str, &RunRecord> =
            self.runs.iter().map(|r| (r.id.as_str(), r)).collect();
        let accepted_rollbacks: Vec<&str> = resolved
            .iter()
            .filter_map(|id| by_id.get(id))
            .filter(|r| r.kind == RunKind::Rollback)
            .filter_map(|r| r.resolves.as_deref())
            .collect();
        resolved.extend(accepted_rollbacks);
        resolved
    }

    /// Whether `id` has been rolled back or accepted by a later run that finished.
    pub fn is_resolved(&self, id: &str) -> bool {
        self.resolved().contains(id)
    }

    /// The newest run that left the account in a partial state no later run
    /// resolved: interrupted, cancelled after changing something, or a
    /// rollback that did not finish.
    pub fn unresolved(&self) -> Option<&RunRecord> {
        let resolved = self.resolved();
        self.runs.iter().find(|r| {
            let partial = match r.status {
                RunStatus::Running
                | RunStatus::Interrupted
                | RunStatus::RollbackIncomplete
                | RunStatus::Incomplete => true,
                // A step failed and nothing was undone (rollback_on_failure off).
                RunStatus::Failed => r.steps_done > 0,
                RunStatus::Cancelled => r.steps_done > 0,
                _ => false,
            };
            partial
                && r.kind != RunKind::Accept
                && !resolved.contains(r.id.as_str())
                // An unfinished rollback is done once its target is resolved.
                && !(r.kind == RunKind::Rollback
                    && r.resolves.as_deref().is_some_and(|t| resolved.contains(t)))
        })
    }

    /// The run that resolved `id`, if one did.
    pub fn resolved_by(&self, id: &str) -> Option<&RunRecord> {
        self.runs
            .iter()
            .find(|r| r.status == RunStatus::Completed && r.resolves.as_deref() == Some(id))
    }

    /// The rollback runs of `target`, oldest first.
    pub fn rollbacks_of(&self, target: &str) -> Vec<&RunRecord> {
        let mut v: Vec<&RunRecord> = self
            .runs
            .iter()
            .filter(|r| r.kind == RunKind::Rollback && r.resolves.as_deref() == Some(target))
            .collect();
        v.reverse();
        v
    }
}

/// Who runs pare: the CI actor where the environment names one
/// (`GITHUB_ACTOR`, `GITLAB_USER_LOGIN`), else `user@host`; and the CI run.
pub fn who(env: &dyn Fn(&str) -> Option<String>) -> (String, Option<Ci>) {
    let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let host = nonempty("PARE_FAKE_HOST").unwrap_or_else(hostname);
    let user = nonempty("PARE_FAKE_USER")
        .or_else(|| nonempty("USER"))
        .or_else(|| nonempty("USERNAME"))
        .unwrap_or_else(|| "unknown".into());
    let ci = if nonempty("GITHUB_ACTIONS").is_some() {
        let url = match (
            nonempty("GITHUB_SERVER_URL"),
            nonempty("GITHUB_REPOSITORY"),
            nonempty("GITHUB_RUN_ID"),
        ) {
            (Some(s), Some(r), Some(id)) => {
                Some(format!("{}/{r}/actions/runs/{id}", s.trim_end_matches('/')))
            }
            _ => None,
        };
        Some(Ci {
            system: "github-actions".into(),
            url,
            actor: nonempty("GITHUB_ACTOR"),
            commit: nonempty("GITHUB_SHA").and_then(|v| ci_value(&v)),
            pull_request: nonempty("GITHUB_REF")
                .and_then(|r| pull_from_ref(&r))
                .or_else(|| nonempty("PARE_PULL_REQUEST").and_then(|n| n.trim().parse().ok())),
            approved_by: nonempty("PARE_APPROVED_BY")
                .map(|v| v.split(',').filter_map(ci_value).take(50).collect())
                .unwrap_or_default(),
        })
    } else if nonempty("GITLAB_CI").is_some() {
        Some(Ci {
            system: "gitlab-ci".into(),
            url: nonempty("CI_JOB_URL"),
            actor: nonempty("GITLAB_USER_LOGIN"),
            commit: nonempty("CI_COMMIT_SHA").and_then(|v| ci_value(&v)),
            pull_request: nonempty("CI_MERGE_REQUEST_IID").and_then(|n| n.trim().parse().ok()),
            approved_by: Vec::new(),
        })
    } else if nonempty("CI").is_some() {
        Some(Ci {
            system: "ci".into(),
            url: nonempty("BUILD_URL").or_else(|| nonempty("CI_JOB_URL")),
            actor: None,
            commit: None,
            pull_request: None,
            approved_by: Vec::new(),
        })
    } else {
        None
    };
    let who = match ci
        .as_ref()
        .and_then(|c| c.actor.clone().map(|a| (a, &c.system)))
    {
        Some((actor, system)) => format!("{actor}@{system}"),
        None => format!("{user}@{host}"),
    };
    (who, ci)
}

fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes at most that.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
            if !name.is_empty() {
                return name;
            }
        }
    }
    "localhost".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_parse_strictly_and_sort_by_time_then_number() {
        let mut ids: Vec<RunId> = [
            "r20261127-174901-10",
            "r20261127-174901-2",
            "r20261127-174901",
            "r20261126-235959-3",
        ]
        .iter()
        .map(|s| RunId::parse(s).unwrap())
        .collect();
        ids.sort();
        let shown: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            shown,
            [
                "r20261126-235959-3",
                "r20261127-174901",
                "r20261127-174901-2",
                "r20261127-174901-10"
            ]
        );
        for bad in [
            "../../x/y",
            "r20261127-174901/..",
            "r2026112-174901",
            "r20261127-174901-0",
            "r20261127-174901-01",
            "r20261127-174901-1-2",
            "",
            "r",
        ] {
            assert!(RunId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn savings_totals_are_always_finite_and_survive_a_round_trip() {
        assert_eq!(usd_total([52.404, 0.1, 0.2]), 52.7);
        assert_eq!(usd_total([1.7e308, 1.7e308]), f64::MAX);
        assert_eq!(usd_total([-1.7e308, -1.7e308]), -f64::MAX);
        assert_eq!(usd_total([f64::INFINITY, f64::NEG_INFINITY, 3.0]), 3.0);
        assert_eq!(usd_total([f64::NAN, 2.5]), 2.5);
        assert_eq!(usd_total([]), 0.0);
        // The totals of a record stay readable.
        let total = usd_total([1.7e308, 1.7e308]);
        let json = serde_json::to_string(&total).unwrap();
        assert!(!json.contains("null"), "{json}");
        assert_eq!(serde_json::from_str::<f64>(&json).unwrap(), total);
    }

    #[test]
    fn who_names_the_ci_actor_and_run() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let gh = env(&[
            ("USER", "runner"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "alice"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_REPOSITORY", "acme/infra"),
            ("GITHUB_RUN_ID", "42"),
            ("GITHUB_SHA", "0123abcd"),
            ("GITHUB_REF", "refs/pull/17/merge"),
            ("PARE_APPROVED_BY", "bob, \u{1b}[2Jcarol,,"),
        ]);
        let (who, ci) = super::who(&gh);
        assert_eq!(who, "alice@github-actions");
        let ci = ci.unwrap();
        assert_eq!(
            ci.url.as_deref(),
            Some("https://github.com/acme/infra/actions/runs/42")
        );
        assert_eq!(ci.commit.as_deref(), Some("0123abcd"));
        assert_eq!(ci.pull_request, Some(17));
        assert_eq!(ci.approved_by, ["bob", "\\u{1b}[2Jcarol"]);
        // On the merge commit's push, the merge job names the pull request.
        let merged = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REF", "refs/heads/main"),
            ("PARE_PULL_REQUEST", "17"),
        ]);
        assert_eq!(super::who(&merged).1.unwrap().pull_request, Some(17));
        let gl = env(&[
            ("GITLAB_CI", "true"),
            ("GITLAB_USER_LOGIN", "bob"),
            ("CI_JOB_URL", "https://gitlab.example/j/7"),
        ]);
        let (who, ci) = super::who(&gl);
        assert_eq!(who, "bob@gitlab-ci");
        assert_eq!(
            ci.unwrap().url.as_deref(),
            Some("https://gitlab.example/j/7")
        );
        let local = env(&[("USER", "carol"), ("PARE_FAKE_HOST", "box")]);
        assert_eq!(super::who(&local), ("carol@box".to_string(), None));
    }
}
