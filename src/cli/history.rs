//! `pare history` and `pare show RUN`: the run log, newest first.

use super::{ExitCode, GlobalArgs, Output, Settings, report_config_error};
use crate::state::{Record, Store};

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

fn store(out: &Output, global: &GlobalArgs) -> Result<Store, ExitCode> {
    let settings = Settings::resolve(global).map_err(|e| {
        report_config_error(out, &e);
        ExitCode::Error
    })?;
    Store::open(&settings.config.state_dir).map_err(|e| {
        out.report(&e);
        ExitCode::Error
    })
}

pub fn history(out: &Output, global: &GlobalArgs, args: HistoryArgs) -> miette::Result<ExitCode> {
    let store = match store(out, global) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let runs = store.runs()?;
    if args.format == Format::Json {
        out.data(&serde_json::to_string_pretty(&runs).expect("runs serialise"));
        return Ok(ExitCode::Ok);
    }
    if runs.is_empty() {
        out.data("No runs yet.");
        return Ok(ExitCode::Ok);
    }
    let mut s = String::new();
    for r in &runs {
        let what = match &r.resolves {
            Some(t) => format!("{:?} of {t}", r.kind).to_lowercase(),
            None => format!("{:?}", r.kind).to_lowercase(),
        };
        s.push_str(&format!(
            "{}  {:<28} {:<20} {}  {}\n    plan {} (sha256 {}{}) · {} completed, {} failed, {} skipped · saves {}/month\n",
            r.id,
            what,
            r.status.as_str(),
            r.started_at,
            r.who,
            r.plan_path,
            &r.plan_sha256.get(..12).unwrap_or(&r.plan_sha256),
            r.git_commit.as_deref().map_or(String::new(), |c| format!(", commit {}", &c[..c.len().min(12)])),
            r.completed.len(),
            r.failed.len(),
            r.skipped.len(),
            crate::preview::money(r.savings_monthly_usd)
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
    let record = match store.run(&args.run) {
        Ok(r) => r,
        Err(e) => {
            out.report(&e);
            return Ok(ExitCode::Error);
        }
    };
    let journal = crate::state::journal::read(&store.journal_path(&record.id)).unwrap_or_default();
    if args.format == Format::Json {
        let doc = serde_json::json!({ "run": record, "journal": journal });
        out.data(&serde_json::to_string_pretty(&doc).expect("run serialises"));
        return Ok(ExitCode::Ok);
    }
    let mut s = format!(
        "run {} ({}) {}\n  started {} by {}, finished {}\n  plan {} (sha256 {})\n",
        record.id,
        format!("{:?}", record.kind).to_lowercase(),
        record.status.as_str(),
        record.started_at,
        record.who,
        record.finished_at.as_deref().unwrap_or("—"),
        record.plan_path,
        record.plan_sha256
    );
    if let Some(t) = &record.resolves {
        s.push_str(&format!("  resolves run {t}\n"));
    }
    for a in &record.approvals {
        s.push_str(&format!(
            "  approved by {} for {}{}\n",
            a.by,
            a.covers.join(", "),
            a.reason
                .as_deref()
                .map_or(String::new(), |r| format!(": {r}"))
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
                crate::planner::resolve(op, created)
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
                format!("FAILED: {}", err.as_deref().unwrap_or("?"))
            }
            _ => "no outcome recorded (interrupted)".to_string(),
        };
        s.push_str(&format!(
            "  {} [{}] {} — {status}\n      undo: {}\n",
            st.rec,
            st.step + 1,
            st.op.describe(),
            undo
        ));
    }
    for r in &journal {
        if let Record::RecSkipped { rec, why } = r {
            s.push_str(&format!("  {rec} skipped: {why}\n"));
        }
    }
    for (old, new) in &record.renamed {
        s.push_str(&format!("  recreated: {old} is now {new}\n"));
    }
    for l in &record.left {
        s.push_str(&format!("  {l}\n"));
    }
    out.data(&s);
    Ok(ExitCode::Ok)
}
