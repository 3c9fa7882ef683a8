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
