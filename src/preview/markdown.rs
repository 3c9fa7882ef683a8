//! The preview as a pull-request comment, read in ten seconds: a headline
//! (changes, savings, highest risk, irreversible and blocked counts), one
//! table row per recommendation, each change's reasons, diff and steps
//! under `<details>` (open for high and critical risk), the approvals
//! against what they cover, and the plan's sha256 and lineage.
//!
//! A comment on GitHub holds at most 65,536 characters. The preview never
//! exceeds [`BUDGET`] bytes (bytes bound characters from above), leaving
//! room for the marker and footer a CI script adds: past it, the diffs of
//! the lowest risks are left out first, then their rows, and what was left
//! out is counted ("… 412 more low-risk changes").

use super::{diff, duration, money, savings_text};
use crate::executor::Savings;
use crate::planner::{Planned, PlannedRec, Status};
use crate::vocabulary::words::{clean, plural};
use crate::vocabulary::{Attributes, Risk};
use std::fmt::Write;

/// GitHub's limit on a comment's length, in characters.
pub const COMMENT_LIMIT: usize = 65_536;

/// The most bytes the markdown preview takes: the comment limit less room
/// for what a CI script wraps it in (a marker naming the plan, a footer).
pub const BUDGET: usize = 60_000;

/// Whether a word would come alive on GitHub: a mention (`@someone`), a
/// link (`https://…`, `www.…`) or a reference (`#123`, `GH-5`). Such words
/// are shown as code, which GitHub neither links nor notifies from.
fn live(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    let reference = |marker: &str| {
        lower.match_indices(marker).any(|(i, m)| {
            lower[i + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
    };
    word.contains('@')
        || lower.contains("://")
        || lower.contains("www.")
        || reference("#")
        || reference("gh-")
}

/// `s` as a code span that nothing inside can close: fenced with more
/// backticks than any run in it; in a table, `|` escaped (GFM reads `\|`
/// inside a table's code span as a pipe).
fn code(s: &str, table: bool) -> String {
    let s = clean(s);
    let s = if table {
        s.replace('|', "\\|")
    } else {
        s.into_owned()
    };
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') || s.starts_with(' ') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// Text from outside pare (names, tags, reasons, approvers) in markdown:
/// control characters escaped, HTML escaped, markdown's punctuation
/// backslash-escaped, and words that GitHub would turn into a link, a
/// mention or a reference shown as code.
fn text(s: &str, table: bool) -> String {
    let s = clean(s);
    let mut out = String::with_capacity(s.len());
    for (k, word) in s.split(' ').enumerate() {
        if k > 0 {
            out.push(' ');
        }
        if live(word) {
            out.push_str(&code(word, table));
            continue;
        }
        for c in word.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '|' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '\\' | '!' | '$' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out
}

/// Text for inside an HTML element (a `<summary>`, a `<code>`).
fn html(s: &str) -> String {
    clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "&#124;")
        .replace('`', "&#96;")
}

/// At most `n` characters of `s`, with `…` when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A fence that the text inside cannot close: longer than any run of
/// backticks in it.
fn fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// How much a row matters to the reviewer: what is left out last.
fn weight(r: &PlannedRec) -> u8 {
    match (r.status, r.risk) {
        (Status::Blocked, _) => 5,
        (Status::NoChange, _) => 0,
        (Status::Change, Some(Risk::Critical)) => 4,
        (Status::Change, Some(Risk::High)) => 3,
        (Status::Change, Some(Risk::Medium) | None) => 2,
        (Status::Change, Some(Risk::Low)) => 1,
    }
}

/// What a change does, in a table cell: the attributes it changes
/// (`type: m5.xlarge → m5.large`), at most two, then how many more.
fn change_cell(r: &PlannedRec) -> String {
    if r.status == Status::NoChange {
        return "no change".into();
    }
    let flat = |a: Option<&Attributes>| -> Vec<(String, String)> {
        super::attribute_lines(a)
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    match (r.before.as_ref(), r.after.as_ref()) {
        (Some(_), None) => return "removed".into(),
        (None, Some(_)) => return "created".into(),
        (None, None) => return "–".into(),
        _ => {}
    }
    let (b, a) = (flat(r.before.as_ref()), flat(r.after.as_ref()));
    let old_of = |k: &str| b.iter().find(|(bk, _)| bk == k).map(|(_, v)| v.as_str());
    // Something deleted or terminated: that is the change.
    if let Some((_, st)) = a.iter().find(|(k, _)| k == "state")
        && matches!(st.as_str(), "deleted" | "terminated" | "released")
    {
        return match old_of("state") {
            Some(old) => text(&format!("state: {} → {st}", clip(old, 24)), true),
            None => st.clone(),
        };
    }
    // What a reviewer looks for first, then the rest in name order.
    const FIRST: [&str; 12] = [
        "type",
        "lifecycle",
        "state",
        "desired",
        "min",
        "max",
        "monitoring",
        "hibernation",
        "active_reservations",
        "iops",
        "throughput_mbps",
        "size_gb",
    ];
    let rank = |k: &str| FIRST.iter().position(|f| *f == k).unwrap_or(FIRST.len());
    let mut keys: Vec<&(String, String)> = a.iter().collect();
    keys.sort_by_key(|(k, _)| rank(k));
    let mut changed = Vec::new();
    for (k, new) in keys {
        let old = old_of(k);
        if old != Some(new.as_str()) {
            changed.push(format!(
                "{}: {} → {}",
                clip(k, 24),
                clip(old.unwrap_or("–"), 24),
                clip(new, 24)
            ));
        }
    }
    if changed.is_empty() {
        for (k, old) in &b {
            if !a.iter().any(|(ak, _)| ak == k) {
                changed.push(format!("{}: {} → –", clip(k, 24), clip(old, 24)));
            }
        }
    }
    let more = changed.len().saturating_sub(2);
    let mut cell: Vec<String> = changed.iter().take(2).map(|c| text(c, true)).collect();
    if more > 0 {
        cell.push(format!("+{more} more"));
    }
    if cell.is_empty() {
        "–".into()
    } else {
        cell.join("<br>")
    }
}

fn row(r: &PlannedRec) -> String {
    let mark = match r.status {
        Status::Change => "~",
        Status::NoChange => "=",
        Status::Blocked => "⛔",
    };
    let res = match &r.name {
        Some(n) => format!("{} ({})", code(&r.resource, true), text(&clip(n, 64), true)),
        None => code(&r.resource, true),
    };
    let risk = match (r.status, r.risk) {
        (Status::NoChange, _) | (_, None) => "–".to_string(),
        (_, Some(Risk::High | Risk::Critical)) => {
            format!("**{}**", r.risk.map_or("", |x| x.as_str()))
        }
        (_, Some(x)) => x.as_str().to_string(),
    };
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
    format!(
        "| {mark} | {} | {} | {res} | {} | {risk} | {undo} | {savings} |\n",
        code(&r.id, true),
        r.action,
        change_cell(r)
    )
}

/// A change's reasons, diff and steps, folded unless its risk is high.
fn details(r: &PlannedRec) -> String {
    let mut out = String::new();
    let open = matches!(r.risk, Some(Risk::High | Risk::Critical));
    let _ = writeln!(
        out,
        "<details{}><summary><code>{}</code> {} <code>{}</code>: {} risk, {}</summary>\n",
        if open { " open" } else { "" },
        html(&r.id),
        r.action,
        html(&r.resource),
        r.risk.map_or("?", |x| x.as_str()),
        html(&savings_text(&r.savings, r.savings_source))
    );
    for reason in &r.risk_reasons {
        let _ = writeln!(out, "- {}", text(reason, false));
    }
    let d = diff(r.before.as_ref(), r.after.as_ref());
    if !d.is_empty() {
        let f = fence(&d);
        let _ = writeln!(out, "\n{f}diff\n{d}{f}\n");
    }
    for (k, st) in r.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. {} — undo: {}",
            k + 1,
            text(&st.op.describe(), false),
            text(&st.inverse.describe(), false)
        );
    }
    let _ = writeln!(out, "\n</details>\n");
    out
}

fn headline(p: &Planned, lineage: Option<&str>) -> String {
    let s = &p.summary;
    let mut out = String::new();
    let title = p.name.as_deref().unwrap_or("unnamed plan");
    let _ = writeln!(out, "### pare plan: {}\n", code(&clip(title, 120), false));
    let highest = Risk::ALL
        .iter()
        .rev()
        .find(|r| s.risk.get(r.as_str()).copied().unwrap_or(0) > 0)
        .map_or("none".to_string(), |r| r.as_str().to_string());
    let savings = if s.monthly_savings_usd < 0.0 {
        format!("costs **{}/month** more", money(-s.monthly_savings_usd))
    } else {
        format!("saves **{}/month**", money(s.monthly_savings_usd))
    };
    let _ = writeln!(
        out,
        "**{}** · {savings}{} · highest risk **{highest}** · **{} irreversible** · **{} blocked**\n",
        plural(s.changes, "change"),
        super::unknown_savings(s),
        s.irreversible,
        s.blocked,
    );
    let _ = writeln!(
        out,
        "{} no change · ~{} at parallelism {} · provider `{}` · {}\n",
        s.no_change,
        duration(std::time::Duration::from_secs(s.estimated_duration_s)),
        s.parallelism,
        p.provider,
        text(&p.catalog, false)
    );
    let _ = writeln!(
        out,
        "{} · sha256 `{}`{}\n",
        code(&clip(&p.plan_path, 200), false),
        p.plan_sha256,
        lineage.map_or(String::new(), |l| format!(
            " · saved plan lineage `{}`",
            clean(l)
        ))
    );

    if s.blocked > 0 {
        let _ = writeln!(
            out,
            "> [!CAUTION]\n> **{} blocked: `pare apply` will refuse this plan.**",
            s.blocked
        );
        let reasons: Vec<String> = p
            .recs
            .iter()
            .filter(|r| r.status == Status::Blocked)
            .flat_map(|r| {
                r.blocked_by.iter().map(move |(why, help)| {
                    format!(
                        "> - {}: {}. {}",
                        code(&r.id, false),
                        text(why, false),
                        text(help, false)
                    )
                })
            })
            .collect();
        for line in reasons.iter().take(10) {
            let _ = writeln!(out, "{}", clip(line, 600));
        }
        if reasons.len() > 10 {
            let _ = writeln!(
                out,
                "> - … and {} more (`pare plan` lists them all)",
                reasons.len() - 10
            );
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
    out
}

/// The approvals, each against what it covers in this plan.
fn approvals(p: &Planned) -> String {
    let mut out = String::new();
    if p.approvals.is_empty() {
        return out;
    }
    let _ = writeln!(out, "**Approvals**\n");
    for a in p.approvals.iter().take(20) {
        let covered: Vec<&PlannedRec> = p.recs.iter().filter(|r| a.covers(&r.id)).collect();
        let what = if a.covers.iter().any(|c| c == "*") {
            format!("all {}", plural(p.recs.len(), "recommendation"))
        } else {
            let mut ids: Vec<String> = covered.iter().take(8).map(|r| code(&r.id, false)).collect();
            if covered.len() > 8 {
                ids.push(format!("{} more", covered.len() - 8));
            }
            let unknown = a
                .covers
                .iter()
                .filter(|c| !p.recs.iter().any(|r| &&r.id == c))
                .count();
            if unknown > 0 {
                ids.push(format!("{} not in this plan", plural(unknown, "id")));
            }
            ids.join(", ")
        };
        let high = covered
            .iter()
            .filter(|r| {
                r.status != Status::NoChange && matches!(r.risk, Some(Risk::High | Risk::Critical))
            })
            .count();
        let _ = writeln!(
            out,
            "- {} approves {what}{}{}",
            text(&clip(&a.by, 120), false),
            if high > 0 {
                format!(" ({high} of them high or critical risk)")
            } else {
                String::new()
            },
            a.reason.as_deref().map_or(String::new(), |r| format!(
                ": “{}”",
                text(&clip(r, 300), false)
            ))
        );
    }
    if p.approvals.len() > 20 {
        let _ = writeln!(out, "- … and {} more approvals", p.approvals.len() - 20);
    }
    out.push('\n');
    out
}

const TABLE_HEAD: &str = "| | recommendation | action | resource | change | risk | undo | $/month |\n|---|---|---|---|---|---|---|---:|\n";

/// What was left out, by weight, in words.
fn left_out(counts: &[usize; 6]) -> Vec<String> {
    let words = [
        "no-change recommendations",
        "low-risk changes",
        "medium-risk changes",
        "high-risk changes",
        "critical-risk changes",
        "blocked recommendations",
    ];
    (0..6)
        .rev()
        .filter(|&w| counts[w] > 0)
        .map(|w| format!("{} {}", counts[w], words[w]))
        .collect()
}

/// Renders the comment; `lineage` names the saved plan, when one was saved.
pub fn render(p: &Planned, lineage: Option<&str>) -> String {
    let head = headline(p, lineage);
    let approvals = approvals(p);
    let rows: Vec<String> = p.recs.iter().map(row).collect();
    let folds: Vec<Option<String>> = p
        .recs
        .iter()
        .map(|r| (r.status == Status::Change).then(|| details(r)))
        .collect();

    // Everything that may be left out, most important first: a row before
    // its own diff, blocked and critical before high, high before the rest,
    // and low-risk diffs last of all. A prefix of this order is shown.
    let mut order: Vec<(u8, bool, usize)> = Vec::new();
    for (i, r) in p.recs.iter().enumerate() {
        let w = weight(r);
        order.push((w * 2 + 1, false, i));
        if folds[i].is_some() {
            let rank = if w >= 3 { w * 2 } else { w };
            order.push((rank, true, i));
        }
    }
    order.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)).then(a.1.cmp(&b.1)));
    // Room for the notes about what was left out.
    const NOTES: usize = 1_200;
    let mut used = head.len() + approvals.len() + TABLE_HEAD.len() + NOTES;
    let mut show_row = vec![false; p.recs.len()];
    let mut show_fold = vec![false; p.recs.len()];
    for &(_, is_fold, i) in &order {
        let size = if is_fold {
            folds[i].as_ref().map_or(0, String::len)
        } else {
            rows[i].len()
        };
        if used + size > BUDGET {
            if is_fold {
                // One long diff does not push out the rows after it.
                continue;
            }
            break;
        }
        used += size;
        if is_fold {
            show_fold[i] = true;
        } else {
            show_row[i] = true;
        }
    }

    let mut out = head;
    out.push_str(TABLE_HEAD);
    let mut rows_left = [0usize; 6];
    for (i, r) in p.recs.iter().enumerate() {
        if show_row[i] {
            out.push_str(&rows[i]);
        } else {
            rows_left[weight(r) as usize] += 1;
        }
    }
    let omitted = left_out(&rows_left);
    if !omitted.is_empty() {
        let _ = writeln!(
            out,
            "\n… {} more {} not listed, to fit a comment: {}. The full preview is in the job summary (or run `pare plan {}`).",
            rows_left.iter().sum::<usize>(),
            if rows_left.iter().sum::<usize>() == 1 {
                "recommendation"
            } else {
                "recommendations"
            },
            omitted.join(", "),
            html(&clip(&p.plan_path, 200))
        );
    }
    out.push('\n');
    out.push_str(&approvals);
    let changes = folds.iter().filter(|f| f.is_some()).count();
    let shown = show_fold.iter().filter(|s| **s).count();
    if shown > 0 {
        let _ = writeln!(
            out,
            "**Changes** (diffs and steps; high and critical risk open)\n"
        );
    }
    for (i, f) in folds.iter().enumerate() {
        if let (Some(f), true) = (f, show_fold[i]) {
            out.push_str(f);
        }
    }
    if shown < changes {
        let _ = writeln!(
            out,
            "Diffs and steps of {} (the lowest risks first) are left out to fit a comment: the full preview is in the job summary.\n",
            plural(changes - shown, "change")
        );
    }
    // The order above keeps the total in the budget; names and reasons are
    // clipped, so this only holds if that reckoning was wrong.
    if out.len() > BUDGET {
        let mut cut = BUDGET - 200;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        let line = out[..cut].rfind('\n').unwrap_or(0);
        out.truncate(line);
        out.push_str("\n\n… the preview is cut here to fit a comment: the full preview is in the job summary.\n");
    }
    out
}
