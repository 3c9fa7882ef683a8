//! `pare rollback [--last|--run ID]`: undo a run from its journal, newest
//! step first, as a new run; `--accept` instead records that an interrupted
//! or unfinished run's changes are kept. The planning and the run are the
//! session's.

use super::apply::exit;
use super::{ExitCode, GlobalArgs, Output, common};
use crate::session::{EventsOut, Session, Target};

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Undo the newest apply run that is not undone yet (the default).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Undo this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Show what would be undone, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep an interrupted run's changes instead: record it as resolved.
    #[arg(long, conflicts_with = "dry_run")]
    pub accept: bool,
    /// How many undos may run at once (default: pare.toml, else 10).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
}

pub fn run(out: &Output, global: &GlobalArgs, args: RollbackArgs) -> miette::Result<ExitCode> {
    let mut overrides = global.overrides();
    overrides.parallelism = args.parallelism.map(usize::from);
    let settings = match super::settings(out, &overrides) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut session = match Session::begin(settings, "rollback") {
        Ok(s) => s,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    let target = match &args.run {
        Some(id) => Target::Run(id.clone()),
        None => Target::Last,
    };
    let target = match session.rollback_target(&target, args.accept) {
        Ok(t) => t,
        // Nothing left to undo is not an error: say so plainly.
        Err(crate::session::SessionError::Refused(r)) if r.code == "rollback::nothing" => {
            out.status(&format!(
                "Nothing to roll back: {}; no run was recorded. {}",
                r.what, "(`pare history` lists the runs.)"
            ));
            return Ok(ExitCode::Ok);
        }
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    if args.accept {
        return Ok(match session.accept(&target) {
            Ok(o) => {
                out.status(&format!(
                    "Run {} is accepted as it stands (recorded as run {}); new runs may start.",
                    target.id, o.record.id
                ));
                ExitCode::Ok
            }
            Err(e) => common::report_session(out, &e),
        });
    }
    let plan = match session.prepare_rollback(target) {
        Ok(p) => p,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    for w in &plan.warnings {
        out.status(&format!("warning: {w}"));
    }
    out.status(&plan.describe());
    if args.dry_run {
        out.status("Dry run: nothing was changed.");
        return Ok(ExitCode::Ok);
    }
    if !args.auto_approve
        && let Err(code) = common::confirm(out, "Roll back?", "the list above", "roll back")
    {
        return Ok(code);
    }
    let events = EventsOut {
        json: session.settings.json_events,
        quiet: out.quiet,
        sink: None,
    };
    let outcome = match session.rollback(plan, events) {
        Ok(o) => o,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    common::print_outcome(out, &outcome.record);
    Ok(exit(outcome.ending))
}
