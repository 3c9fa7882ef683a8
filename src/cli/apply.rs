//! `pare apply PLAN|SAVED`: make the changes, journaled, verified, undoable.
//! The run itself is the session's; this file turns arguments into a
//! request and the outcome into output and an exit code.

use super::{ExitCode, GlobalArgs, Output, common};
use crate::engine::Cancel;
use crate::session::apply::Verdict;
use crate::session::{Ending, EventsOut, Session, Source};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan file, or a plan saved by `pare plan --out`.
    #[arg(value_name = "PLAN|SAVED")]
    pub plan: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// How many changes may run at once (default: pare.toml, else 10).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: Option<u16>,
}

/// The exit code of a run that ended this way.
pub(super) fn exit(ending: Ending) -> ExitCode {
    match ending {
        Ending::Done => ExitCode::Ok,
        Ending::RolledBack => ExitCode::RolledBack,
        Ending::Unfinished => ExitCode::RollbackIncomplete,
        Ending::CancelledClean => ExitCode::Error,
    }
}

pub fn run(out: &Output, global: &GlobalArgs, args: ApplyArgs) -> miette::Result<ExitCode> {
    let mut overrides = global.overrides();
    overrides.parallelism = args.parallelism.map(usize::from);
    let settings = match super::settings(out, &overrides) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let doing = format!("apply {}", args.plan.display());
    let mut session = match Session::begin(settings, &doing) {
        Ok(s) => s,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    if let Err(r) = session.check_clear() {
        return Ok(common::refused(out, &r));
    }
    let prepared = match session.prepare_apply(Source::File(&args.plan)) {
        Ok(p) => p,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    for w in &prepared.warnings {
        out.status(&format!("warning: {w}"));
    }
    match &prepared.lineage {
        None => out.data(&crate::preview::text(&prepared.planned, out.color_stdout)),
        Some(lineage) => out.status(&format!(
            "Applying saved plan {} (lineage {lineage}): it is what its plan file yields, and the account is as it was planned.",
            crate::vocabulary::words::clean(&args.plan.display().to_string())
        )),
    }
    let changes = match session.check_apply(&prepared) {
        Ok(Verdict::NothingToDo) => {
            out.status("Nothing to change: every recommendation is already satisfied.");
            return Ok(ExitCode::Ok);
        }
        Ok(Verdict::Changes(n)) => n,
        Err(r) => return Ok(common::refused(out, &r)),
    };
    if !args.auto_approve {
        let question = format!(
            "Apply {} to the {} account?",
            crate::vocabulary::words::plural(changes, "change"),
            prepared.provider.name()
        );
        if let Err(code) = common::confirm(out, &question, "the preview", "apply") {
            return Ok(code);
        }
    }
    let events = EventsOut {
        json: session.settings.json_events,
        quiet: out.quiet,
        sink: None,
    };
    let outcome = match session.apply(prepared, events, Cancel::default()) {
        Ok(o) => o,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    common::print_outcome(out, &outcome.record);
    let r = &outcome.record;
    if outcome.ending == Ending::Done {
        let sf = crate::vocabulary::words::state_flag();
        out.status(&format!(
            "{}. Undo with `pare rollback --last{sf}` (or `--run {}`).",
            crate::vocabulary::words::capitalise(&crate::vocabulary::words::monthly_savings(
                r.savings_monthly_usd
            )),
            r.id
        ));
    }
    Ok(exit(outcome.ending))
}
