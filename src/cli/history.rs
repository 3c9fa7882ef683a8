//! `pare history` and `pare show RUN`: the run log, newest first.

use super::{ExitCode, GlobalArgs, Output};
use crate::state::{Record, StateStore};
use crate::vocabulary::words::clean;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The run id (from `pare history`).
    #[arg(value_name = "RUN")]
    pub run: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn store(out: &Output, global: &GlobalArgs) -> Result<Arc<dyn StateStore>, ExitCode> {
    let settings = super::settings(out, &global.overrides())?;
    crate::session::open_store(&settings).map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })
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
    let history = store.history()?;
    warn_damaged(out, store.as_ref(), &history.damaged);
    let runs = &history.runs;
    if args.format == Format::Json {
        out.data(&serde_json::to_string_pretty(&runs).expect("runs serialise"));
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
            Some(by) if by.kind == crate::state::RunKind::Accept => {
                format!("{} (accepted by {})", r.status.as_str(), by.id)
            }
            Some(by) => format!("{} (rolled back by {})", r.status.as_str(), by.id),
            None => r.status.as_str().to_string(),
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
                " · {} (planned {})",
                crate::vocabulary::words::monthly_savings(r.savings_monthly_usd),
                crate::vocabulary::words::money(r.savings_planned_monthly_usd)
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

pub fn show(out: &Output, global: &GlobalArgs, args: ShowArgs) -> miette::Result<ExitCode> {
    let store = match store(out, global) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let record = match crate::state::parse_run_id(&args.run).and_then(|id| store.read_run(&id)) {
        Ok(r) => r,
        Err(e) => {
            out.report(&e);
            return Ok(ExitCode::Error);
        }
    };
    let id = crate::state::parse_run_id(&record.id)?;
    let (journal, damage) = match store.journal(&id) {
        Ok(j) => (j, None),
        Err(e) => {
            // Show the readable part, then say what is damaged.
            let text = store.read_journal(&id).unwrap_or_default();
            let good: Vec<Record> = crate::durable::whole_lines(&text)
                .map_while(|(_, l)| serde_json::from_str(l).ok())
                .collect();
            (good, Some(e))
        }
    };
    if args.format == Format::Json {
        let doc = serde_json::json!({
            "run": record,
            "journal": journal,
            "journal_damaged": damage.as_ref().map(|e| e.to_string()),
        });
        out.data(&serde_json::to_string_pretty(&doc).expect("run serialises"));
        return Ok(if damage.is_some() {
            ExitCode::Error
        } else {
            ExitCode::Ok
        });
    }
    let mut s = format!(
        "run {} ({}) {}\n  started {} by {}, finished {}\n  plan {} (sha256 {})\n",
        record.id,
        record.kind.as_str(),
        record.status.as_str(),
        record.started_at,
        clean(&record.who),
        record.finished_at.as_deref().unwrap_or("—"),
        clean(&record.plan_path),
        clean(&record.plan_sha256)
    );
    if let Some(url) = record.ci.as_ref().and_then(|c| c.url.as_deref()) {
        s.push_str(&format!("  CI run {}\n", clean(url)));
    }
    if let Some(t) = &record.resolves {
        s.push_str(&format!("  resolves run {t}\n"));
    }
    for a in &record.approvals {
        s.push_str(&format!(
            "  approved by {} for {}{}\n",
            clean(&a.by),
            clean(&a.covers.join(", ")),
            a.reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {}", clean(r)))
        ));
    }
    let steps = crate::state::journal::steps(&journal);
    let mut outcomes = std::collections::HashMap::new();
    for r in &journal {
        if let Record::Outcome {
            seq,
            duration_ms,
            attempts,
            error,
            ..
        } = r
        {
            outcomes.insert(*seq, (*duration_ms, *attempts, error.clone()));
        }
    }
    // What each recommendation's steps made, to show undos with real ids.
    let mut made: std::collections::HashMap<&str, Vec<Option<String>>> =
        std::collections::HashMap::new();
    for st in &steps {
        let list = made.entry(st.rec.as_str()).or_default();
        list.resize(st.step, None);
        list.push(st.outcome.as_ref().and_then(|(_, c)| c.clone()));
    }
    for st in &steps {
        let undo = match &st.inverse {
            crate::provider::Inverse::Op { op } => {
                let created = made.get(st.rec.as_str()).map_or(&[][..], Vec::as_slice);
                crate::vocabulary::resolve(op, created)
                    .map_or_else(|_| op.describe(), |o| o.describe())
            }
            other => other.describe(),
        };
        let status = match (&st.outcome, outcomes.get(&st.seq)) {
            (Some((true, created)), Some((ms, attempts, _))) => {
                let c = created
                    .as_deref()
                    .map_or(String::new(), |c| format!(", made {c}"));
                format!("done in {ms} ms, {attempts} attempt(s){c}")
            }
            (Some((false, _)), Some((_, _, err))) => {
                format!("FAILED: {}", clean(err.as_deref().unwrap_or("?")))
            }
            _ => "no outcome recorded (interrupted)".to_string(),
        };
        let what = if st.undoes.is_some() { "undo: " } else { "" };
        s.push_str(&format!(
            "  {} [{}] {what}{} — {status}\n      undo: {}\n",
            st.rec,
            st.step + 1,
            st.op.describe(),
            undo
        ));
    }
    for r in &journal {
        if let Record::RecSkipped { rec, why } = r {
            s.push_str(&format!("  {rec} skipped: {}\n", clean(why)));
        }
    }
    for (old, new) in &record.renamed {
        s.push_str(&format!("  recreated: {old} is now {new}\n"));
    }
    for l in &record.left {
        s.push_str(&format!("  {}\n", clean(l)));
    }
    out.data(&s);
    if let Some(e) = damage {
        out.report(&e);
        return Ok(ExitCode::Error);
    }
    Ok(ExitCode::Ok)
}
