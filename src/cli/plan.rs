//! `pare plan PLAN`: refresh, expand, order, assess; print the preview.

use super::{ExitCode, GlobalArgs, Output, common};
use crate::session::saved::SavedPlan;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Save exactly what was previewed, for `pare apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// `text` for people, `json` for scripts, `markdown` for a pull-request comment.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 2 when there are changes (0 when there are none).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

pub fn run(out: &Output, global: &GlobalArgs, args: PlanArgs) -> miette::Result<ExitCode> {
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let prepared = match common::prepare(out, settings, &args.plan) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let planned = match common::plan(out, &prepared) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    // Saved before rendering, so the comment names the saved plan's lineage.
    let saved = args
        .out
        .as_ref()
        .map(|_| SavedPlan::new(&planned, &prepared.store.location()));
    let started = std::time::Instant::now();
    let text = match args.format {
        Format::Text => crate::preview::text(&planned, out.color_stdout),
        Format::Json => serde_json::to_string_pretty(&crate::preview::to_json(&planned))
            .expect("preview serialises"),
        Format::Markdown => {
            crate::preview::markdown(&planned, saved.as_ref().map(|s| s.lineage.as_str()))
        }
    };
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rendered"
    );
    match args.format {
        Format::Json => out.json(&text),
        _ => out.data(&text),
    }
    if let (Some(path), Some(saved)) = (&args.out, &saved) {
        let json = serde_json::to_string_pretty(&saved).expect("saved plan serialises");
        if let Err(e) = crate::durable::write_atomic(path, format!("{json}\n").as_bytes()) {
            out.status(&format!(
                "error: cannot write {}: {e}",
                crate::vocabulary::words::clean(&path.display().to_string())
            ));
            return Ok(ExitCode::Error);
        }
        out.status(&format!(
            "Saved to {} (lineage {}); apply it with `pare apply {}{}`.",
            crate::vocabulary::words::clean(&path.display().to_string()),
            saved.lineage,
            crate::vocabulary::words::clean(&path.display().to_string()),
            crate::vocabulary::words::state_flag()
        ));
    }
    Ok(if args.detailed_exitcode && planned.summary.changes > 0 {
        ExitCode::Changes
    } else {
        ExitCode::Ok
    })
}
