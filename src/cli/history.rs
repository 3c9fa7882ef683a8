//! `pare history`: the runs, newest first, and who resolved each.

use super::{ExitCode, GlobalArgs, Output};
use crate::state::StateStore;
use crate::vocabulary::words::clean;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// `text` for people, `json` for scripts (every run record, newest first).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub(super) fn store(out: &Output, global: &GlobalArgs) -> Result<Arc<dyn StateStore>, ExitCode> {
    let settings = super::settings(out, &global.overrides())?;
    crate::session::open_store(&settings).map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })
}

/// Whether a live process holds the state's lock (a run is under way).
pub(super) fn holder_alive(store: &dyn StateStore) -> bool {
    store.lock_holder().is_some_and(|h| {
        if h.lease_s.is_some() {
            // A shared lock's holder is elsewhere: alive while it renews.
            !h.expired(crate::clock::now())
        } else {
            alive(h.pid)
        }
    })
}

/// Whether process `pid` is alive on this machine.
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Says which run records cannot be read, and how to go on without them.
fn warn_damaged(out: &Output, store: &dyn StateStore, damaged: &[(String, String)]) {
    for (id, why) in damaged {
        out.status(&format!(
            "warning: the record of run {id} cannot be read ({}); it is left out. Move its folder out of {}/runs/ once you have looked at it.",
            clean(why),
            store.location()
        ));
    }
}

pub fn history(out: &Output, global: &GlobalArgs, args: HistoryArgs) -> miette::Result<ExitCode> {
    let store = match store(out, global) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let mut history = store.history()?;
    warn_damaged(out, store.as_ref(), &history.damaged);
    // A run still marked running whose process is gone was interrupted (the
    // next run that takes the lock records it so): shown so, counted from
    // its journal, in text and JSON alike.
    let holder_alive = holder_alive(store.as_ref());
    let found_interrupted: std::collections::BTreeSet<String> = history
        .runs
        .iter()
        .filter(|r| r.status == crate::state::RunStatus::Running && !holder_alive)
        .map(|r| r.id.clone())
        .collect();
    history.runs = std::mem::take(&mut history.runs)
        .into_iter()
        .map(|r| store.as_found(r, holder_alive))
        .collect();
    let runs = &history.runs;
    if args.format == Format::Json {
        out.json(&serde_json::to_string_pretty(&runs).expect("runs serialise"));
        return Ok(ExitCode::Ok);
    }
    if runs.is_empty() {
        out.data("No runs yet.");
        return Ok(ExitCode::Ok);
    }
    let mut s = String::new();
    for r in runs {
        let what = match &r.resolves {
            Some(t) => format!("{} of {t}", r.kind.as_str()),
            None => r.kind.as_str().to_string(),
        };
        let status = match history.resolved_by(&r.id) {
            _ if found_interrupted.contains(&r.id) => {
                "interrupted (no process holds the lock)".to_string()
            }
            Some(by) if by.kind == crate::state::RunKind::Accept => {
                format!("{} (accepted by {})", r.status.as_str(), by.id)
            }
            Some(by) => format!("{} (rolled back by {})", r.status.as_str(), by.id),
            None => match history
                .rollbacks_of(&r.id)
                .into_iter()
                .find_map(|rb| history.resolved_by(&rb.id).map(|a| (rb, a)))
            {
                Some((rb, a)) => format!(
                    "{} (rollback {} unfinished, accepted by {})",
                    r.status.as_str(),
                    rb.id,
                    a.id
                ),
                None => r.status.as_str().to_string(),
            },
        };
        let done = match r.kind {
            crate::state::RunKind::Rollback => format!(
                "{} undone, {} failed",
                crate::vocabulary::words::plural(r.steps_done, "step"),
                r.failed.len()
            ),
            _ => format!(
                "{} completed, {} failed, {} skipped",
                r.completed.len(),
                r.failed.len(),
                r.skipped.len()
            ),
        };
        let savings = match r.kind {
            crate::state::RunKind::Apply => format!(
                " · {} (planned: {})",
                crate::vocabulary::words::monthly_savings(r.savings_monthly_usd),
                crate::vocabulary::words::monthly_savings(r.savings_planned_monthly_usd)
            ),
            _ => String::new(),
        };
        let ci =
            r.ci.as_ref()
                .and_then(|c| c.url.as_deref())
                .map_or(String::new(), |u| format!(" ({})", clean(u)));
        s.push_str(&format!(
            "{}  {:<28} {:<20} {}  {}{ci}\n    plan {} (sha256 {}{}) · {done}{savings}\n",
            r.id,
            what,
            status,
            r.started_at,
            clean(&r.who),
            clean(&r.plan_path),
            clean(r.plan_sha256.get(..12).unwrap_or(&r.plan_sha256)),
            r.git_commit.as_deref().map_or(String::new(), |c| format!(
                ", commit {}",
                clean(c.get(..12).unwrap_or(c))
            )),
        ));
    }
    out.data(&s);
    Ok(ExitCode::Ok)
}
