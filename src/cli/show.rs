//! `pare show RUN`: one run, every step with its undo, status, timings,
//! errors and recreated ids; a damaged journal is shown as far as it reads,
//! then named.

use super::history::{Format, store};
use super::{ExitCode, GlobalArgs, Output};
use crate::state::Record;
use crate::vocabulary::words::clean;

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The run id (from `pare history`).
    #[arg(value_name = "RUN")]
    pub run: String,
    /// `text` for people, `json` for scripts (the record and its journal).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn show(out: &Output, global: &GlobalArgs, args: ShowArgs) -> miette::Result<ExitCode> {
    let store = match store(out, global) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let record = match crate::state::parse_run_id(&args.run).and_then(|id| store.read_run(&id)) {
        Ok(r) => store.as_found(r, super::history::holder_alive(store.as_ref())),
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
        out.json(&serde_json::to_string_pretty(&doc).expect("run serialises"));
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
    if let Some(ci) = &record.ci {
        if let Some(url) = &ci.url {
            s.push_str(&format!("  CI run {}\n", clean(url)));
        }
        if let Some(n) = ci.pull_request {
            s.push_str(&format!("  pull request #{n}\n"));
        }
        if let Some(c) = &ci.commit {
            s.push_str(&format!("  commit {}\n", clean(c)));
        }
        if !ci.approved_by.is_empty() {
            s.push_str(&format!(
                "  pull request approved by {}\n",
                clean(&ci.approved_by.join(", "))
            ));
        }
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
