//! The preview as a pull-request comment: a summary line, savings and risk
//! tables, blocked items called out, and each change's diff folded away.

use super::{diff, duration, money, savings_text};
use crate::executor::Savings;
use crate::planner::{Planned, Status};
use crate::vocabulary::Risk;
use crate::vocabulary::words::clean;
use std::fmt::Write;

/// Text from outside pare (names, reasons, errors) in markdown: control
/// characters escaped, and nothing that could open HTML or break a table.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '|' => out.push_str("\\|"),
            c => out.push(c),
        }
    }
    out
}

/// A name from outside pare in markdown, where nothing may be markup.
fn md_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in md(s).chars() {
        match c {
            '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `s` as inline code: a code span when that is safe, else HTML `<code>`.
fn md_code(s: &str) -> String {
    let s = clean(s);
    if s.contains(['`', '|', '<', '>', '&']) {
        let escaped = s
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('|', "&#124;")
            .replace('`', "&#96;");
        format!("<code>{escaped}</code>")
    } else {
        format!("`{s}`")
    }
}

/// A fence that the text inside cannot close: longer than any run of
/// backticks in it.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

pub fn render(p: &Planned) -> String {
    let s = &p.summary;
    let mut out = String::new();
    let title = p.name.as_deref().unwrap_or("unnamed plan");
    let _ = writeln!(out, "### pare plan: {}\n", md_code(title));
    let unknown = super::unknown_savings(s);
    let _ = writeln!(
        out,
        "**{} to change, {} no change, {} blocked** · {}{unknown} · {} irreversible · ~{} at parallelism {}\n",
        s.changes,
        s.no_change,
        s.blocked,
        if s.monthly_savings_usd < 0.0 {
            format!("costs **{}/month** more", money(-s.monthly_savings_usd))
        } else {
            format!("saves **{}/month**", money(s.monthly_savings_usd))
        },
        s.irreversible,
        duration(std::time::Duration::from_secs(s.estimated_duration_s)),
        s.parallelism
    );
    let _ = writeln!(
        out,
        "{} · sha256 `{}` · provider `{}` · {}\n",
        md_code(&p.plan_path),
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
                let _ = writeln!(out, "> - `{}`: {}. {}", r.id, md(why), md(help));
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
            Some(n) => format!("{} ({})", md_code(&r.resource), md_name(n)),
            None => md_code(&r.resource),
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
            md(&r.resource),
            r.risk.map_or("?", |x| x.as_str()),
            md(&savings_text(&r.savings, r.savings_source))
        );
        for reason in &r.risk_reasons {
            let _ = writeln!(out, "- {}", md(reason));
        }
        let d = diff(r.before.as_ref(), r.after.as_ref());
        let f = fence(&d);
        let _ = writeln!(out, "\n{f}diff\n{d}{f}\n");
        for (k, st) in r.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "{}. {} — undo: {}",
                k + 1,
                md(&st.op.describe()),
                md(&st.inverse.describe())
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    out
}
