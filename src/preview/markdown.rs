//! The preview as a pull-request comment: a summary line, savings and risk
//! tables, blocked items called out, and each change's diff folded away.

use super::{diff, duration, money, savings_text};
use crate::config::Risk;
use crate::executor::Savings;
use crate::planner::{Planned, Status};
use std::fmt::Write;

pub fn render(p: &Planned) -> String {
    let s = &p.summary;
    let mut out = String::new();
    let title = p.name.as_deref().unwrap_or("unnamed plan");
    let _ = writeln!(out, "### pare plan: `{title}`\n");
    let unknown = super::unknown_savings(s);
    let _ = writeln!(
        out,
        "**{} to change, {} no change, {} blocked** · saves **{}/month**{unknown} · {} irreversible · ~{} at parallelism {}\n",
        s.changes,
        s.no_change,
        s.blocked,
        money(s.monthly_savings_usd),
        s.irreversible,
        duration(std::time::Duration::from_secs(s.estimated_duration_s)),
        s.parallelism
    );
    let _ = writeln!(
        out,
        "`{}` · sha256 `{}` · provider `{}` · {}\n",
        p.plan_path,
        &p.plan_sha256[..12],
        p.provider,
        p.catalog
    );

    if s.blocked > 0 {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} blocked: `pare apply` will refuse this plan.**",
            s.blocked
        );
        for r in p.recs.iter().filter(|r| r.status == Status::Blocked) {
            for (why, help) in &r.blocked_by {
                let _ = writeln!(out, "> - `{}`: {why}. {help}", r.id);
            }
        }
        out.push('\n');
    }
    if s.changes > p.max_changes {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> {} changes exceed `max_changes = {}`: `pare apply` will refuse this plan.\n",
            s.changes, p.max_changes
        );
    }

    let _ = writeln!(
        out,
        "| | recommendation | action | resource | risk | monthly savings | undo |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---:|---|");
    for r in &p.recs {
        let mark = match r.status {
            Status::Change => "~",
            Status::NoChange => "=",
            Status::Blocked => "⛔",
        };
        let res = match &r.name {
            Some(n) => format!("`{}` ({n})", r.resource),
            None => format!("`{}`", r.resource),
        };
        let risk = r.risk.map_or("–".to_string(), |x| x.as_str().to_string());
        let savings = match (&r.savings, r.status) {
            (_, Status::NoChange) => "–".to_string(),
            (Savings::Usd(x), _) => money(*x),
            (Savings::Unknown(_), _) => "unknown".to_string(),
        };
        let undo = match r.status {
            Status::NoChange => "–",
            _ if r.reversible => "yes",
            _ => "**irreversible**",
        };
        let _ = writeln!(
            out,
            "| {mark} | `{}` | {} | {res} | {risk} | {savings} | {undo} |",
            r.id, r.action
        );
    }
    out.push('\n');

    let _ = writeln!(out, "| risk | changes |\n|---|---:|");
    for r in Risk::ALL {
        let _ = writeln!(
            out,
            "| {} | {} |",
            r.as_str(),
            s.risk.get(r.as_str()).copied().unwrap_or(0)
        );
    }
    out.push('\n');

    for r in p.recs.iter().filter(|r| r.status == Status::Change) {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> {} <code>{}</code>: {} risk, {}</summary>\n",
            r.id,
            r.action,
            r.resource,
            r.risk.map_or("?", |x| x.as_str()),
            savings_text(&r.savings, r.savings_source)
        );
        for reason in &r.risk_reasons {
            let _ = writeln!(out, "- {reason}");
        }
        let _ = writeln!(
            out,
            "\n```diff\n{}```\n",
            diff(r.before.as_ref(), r.after.as_ref())
        );
        for (k, st) in r.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. {} — undo: {}",
                k + 1,
                st.op.describe(),
                st.inverse.describe()
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    out
}
