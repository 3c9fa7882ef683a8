//! What several commands share: load and plan a plan file, report errors
//! that carry several diagnostics, refuse, confirm.

use super::{ExitCode, Output};
use crate::plan::{LoadError, LoadedPlan};
use crate::planner::{PlanError, Planned};
use crate::provider::sandbox::SandboxError;
use crate::provider::{OpenError, Provider};
use crate::session::{Refusal, SessionError};
use crate::settings::Settings;
use crate::state::StateStore;
use std::path::Path;
use std::sync::Arc;

/// A plan loaded and checked, with its provider open.
pub struct Prepared {
    pub settings: Settings,
    pub store: Arc<dyn StateStore>,
    pub loaded: LoadedPlan,
    pub graph: crate::graph::PlanGraph,
    pub provider: Box<dyn Provider>,
}

/// Reports an error that may carry several located diagnostics.
pub fn report_load(out: &Output, err: &LoadError) {
    match err {
        LoadError::Invalid(diags) => diags.iter().for_each(|d| out.report(d)),
        other => out.report(other),
    }
}

pub fn report_open(out: &Output, err: &OpenError) {
    match err {
        OpenError::Sandbox(SandboxError::Invalid(diags)) => {
            diags.iter().for_each(|d| out.report(d))
        }
        other => out.report(other),
    }
}

pub fn report_plan(out: &Output, err: &PlanError) {
    match err {
        PlanError::Invalid(diags) => diags.iter().for_each(|d| out.report(d)),
        other => out.report(other),
    }
}

/// Prints a refusal: what, what to do next, and that nothing changed.
pub fn refused(out: &Output, r: &Refusal) -> ExitCode {
    out.problem(&format!(
        "error: {}\n  → {}\nNothing was changed.",
        r.what, r.todo
    ));
    ExitCode::Error
}

/// Reports a session error in the right shape; the exit code for it.
pub fn report_session(out: &Output, err: &SessionError) -> ExitCode {
    match err {
        SessionError::Refused(r) => return refused(out, r),
        SessionError::Load(e) => report_load(out, e),
        SessionError::Plan(e) => report_plan(out, e),
        SessionError::Open(e) => report_open(out, e),
        SessionError::State(e) => out.report(e),
    }
    ExitCode::Error
}

/// Settings, plan and provider, or the exit code after reporting why not.
pub fn prepare(out: &Output, settings: Settings, plan: &Path) -> Result<Prepared, ExitCode> {
    let started = std::time::Instant::now();
    let (loaded, graph) = crate::validate::validate(plan).map_err(|e| {
        report_load(out, &e);
        ExitCode::Error
    })?;
    let store = crate::session::open_store(&settings).map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })?;
    let (provider, warning) =
        crate::session::open_provider(&loaded.plan.provider, &loaded.path, &store, &settings)
            .map_err(|e| {
                report_open(out, &e);
                ExitCode::Error
            })?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "plan loaded and provider opened"
    );
    if let Some(w) = warning {
        out.status(&format!("warning: {w}"));
    }
    Ok(Prepared {
        settings,
        store,
        loaded,
        graph,
        provider,
    })
}

/// A small runtime for commands that only read.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Plans a prepared plan.
pub fn plan(out: &Output, p: &Prepared) -> Result<Planned, ExitCode> {
    runtime()
        .block_on(crate::planner::plan(
            &p.loaded,
            p.graph.clone(),
            &p.settings.config,
            p.provider.as_ref(),
        ))
        .map_err(|e| {
            report_plan(out, &e);
            ExitCode::Error
        })
}

/// Asks for `yes` on a terminal; without one, only `--auto-approve` goes on.
pub fn confirm(out: &Output, question: &str, review: &str, doing: &str) -> Result<(), ExitCode> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(refused(
            out,
            &Refusal::new(
                "apply::no-terminal",
                "no terminal to confirm on",
                format!("review {review} and pass --auto-approve"),
            ),
        ));
    }
    eprint!("{question} Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(refused(
            out,
            &Refusal::new(
                "apply::not-confirmed",
                "not confirmed",
                format!("answer `yes` to {doing}"),
            ),
        ))
    }
}

/// The run's end in words: its summary line, then what was recreated and
/// what is left.
pub fn print_outcome(out: &Output, r: &crate::state::RunRecord) {
    let mut s = crate::session::apply::summary_line(r);
    for f in &r.failed {
        s.push_str(&format!("\n  failed: {f}"));
    }
    for (old, new) in &r.renamed {
        s.push_str(&format!("\n  recreated: {old} is now {new}"));
    }
    for l in &r.left {
        if !l.starts_with("failed: ") {
            s.push_str(&format!("\n  {l}"));
        }
    }
    // -q keeps quiet about success, never about what went wrong or is left.
    use crate::state::RunStatus;
    if matches!(r.status, RunStatus::Applied | RunStatus::Completed) {
        out.status(&s);
    } else {
        out.problem(&s);
    }
}
