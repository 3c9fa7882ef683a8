//! What several commands share: load and check a plan, open its provider, plan it.

use super::{ExitCode, GlobalArgs, Output, Settings, report_config_error};
use crate::plan::{LoadError, LoadedPlan};
use crate::planner::{PlanError, Planned};
use crate::provider::sandbox::SandboxError;
use crate::provider::{OpenError, Provider};
use std::path::Path;

/// A plan loaded and checked, with its provider open.
pub struct Prepared {
    pub settings: Settings,
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

/// Settings, plan and provider, or the exit code after reporting why not.
pub fn prepare(out: &Output, global: &GlobalArgs, plan: &Path) -> Result<Prepared, ExitCode> {
    let settings = Settings::resolve(global).map_err(|e| {
        report_config_error(out, &e);
        ExitCode::Error
    })?;
    let started = std::time::Instant::now();
    let (loaded, graph) = crate::validate::validate(plan).map_err(|e| {
        report_load(out, &e);
        ExitCode::Error
    })?;
    let (provider, warning) = crate::provider::open(
        &loaded.plan.provider,
        &loaded.path,
        &settings.config.state_dir,
    )
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
    let rt = runtime();
    rt.block_on(crate::planner::plan(
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

/// Says why nothing was done and what to do instead.
pub fn refuse(out: &Output, what: &str, todo: &str) -> ExitCode {
    out.status(&format!("error: {what}\n  → {todo}\nNothing was changed."));
    ExitCode::Error
}

/// The settings, the state directory and its lock, for a run that changes things.
pub fn locked_store(
    out: &Output,
    global: &GlobalArgs,
) -> Result<(Settings, crate::state::Store, crate::state::Lock), ExitCode> {
    let settings = Settings::resolve(global).map_err(|e| {
        report_config_error(out, &e);
        ExitCode::Error
    })?;
    let store = crate::state::Store::open(&settings.config.state_dir).map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })?;
    let lock = store.lock().map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })?;
    Ok((settings, store, lock))
}

/// Asks for `yes` on a terminal; without one, only `--auto-approve` goes on.
pub fn confirm(out: &Output, question: &str, review: &str, doing: &str) -> Result<(), ExitCode> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(refuse(
            out,
            "no terminal to confirm on",
            &format!("review {review} and pass --auto-approve"),
        ));
    }
    eprint!("{question} Only `yes` is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(refuse(
            out,
            "not confirmed",
            &format!("answer `yes` to {doing}"),
        ))
    }
}

/// Ends a run, in this order: fold the provider's changes into its compact
/// form, stamp and save the run's record, then close the progress output.
pub fn finish_run(
    out: &Output,
    provider: &dyn Provider,
    store: &crate::state::Store,
    record: &mut crate::state::RunRecord,
    events: &crate::engine::Events,
) -> miette::Result<()> {
    if let Err(e) = provider.checkpoint() {
        out.status(&format!("warning: {e}"));
    }
    record.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
    store.save(record)?;
    events.finish();
    events.run_done(record.status.as_str());
    Ok(())
}
