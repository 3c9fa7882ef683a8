//! The preview a person reads at a terminal or in a CI log.

use super::{diff, duration, money, savings_text};
use crate::planner::{Planned, PlannedRec, Status};
use crate::vocabulary::Risk;
use crate::vocabulary::words::clean;
use std::fmt::Write;

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.wrap("2", s)
    }
    fn risk(&self, r: Risk) -> String {
        let code = match r {
            Risk::Low => "32",
            Risk::Medium => "33",
            Risk::High => "31",
            Risk::Critical => "1;31",
        };
        self.wrap(code, r.as_str())
    }
    fn diff_line(&self, line: &str) -> String {
        match line.chars().next() {
            Some('+') if !line.starts_with("+++") => self.wrap("32", line),
            Some('-') if !line.starts_with("---") => self.wrap("31", line),
            Some('@') => self.wrap("36", line),
            _ => line.to_string(),
        }
    }
}

pub use crate::vocabulary::words::plural;

fn resource_label(r: &PlannedRec) -> String {
    match &r.name {
        Some(n) => format!("{} {} ({})", r.resource_kind, clean(&r.resource), clean(n)),
        None => format!("{} {}", r.resource_kind, clean(&r.resource)),
    }
}

/// Renders the whole preview.
pub fn render(p: &Planned, color: bool) -> String {
    let paint = Paint { on: color };
    let mut out = String::new();
    let title = clean(p.name.as_deref().unwrap_or("(unnamed plan)"));
    let _ = writeln!(out, "{} {title}", paint.bold("pare plan:"));
    let _ = writeln!(
        out,
        "  file: {} (sha256 {})",
        clean(&p.plan_path),
        &p.plan_sha256[..12]
    );
    let _ = writeln!(out, "  provider: {} · prices: {}", p.provider, p.catalog);
    out.push('\n');

    for r in &p.recs {
        match r.status {
            Status::Change => render_change(&mut out, r, &paint),
            Status::NoChange => {
                let _ = writeln!(
                    out,
                    "{} {}  {}  {}",
                    paint.dim("="),
                    paint.bold(&r.id),
                    r.action,
                    paint.dim(&format!(
                        "no change: {}",
                        clean(r.note.as_deref().unwrap_or("already done"))
                    ))
                );
                out.push('\n');
            }
            Status::Blocked => {
                let _ = writeln!(
                    out,
                    "{} {}  {}  {}",
                    paint.wrap("1;31", "!"),
                    paint.bold(&r.id),
                    r.action,
                    resource_label(r)
                );
                if let Some(risk) = r.risk {
                    let _ = writeln!(out, "    risk: {}", paint.risk(risk));
                }
                for (why, help) in &r.blocked_by {
                    let _ = writeln!(out, "    {} {}", paint.wrap("1;31", "BLOCKED:"), clean(why));
                    let _ = writeln!(out, "      → {}", clean(help));
                }
                out.push('\n');
            }
        }
    }

    if !p.waves.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint.bold(&format!(
                "Order ({}; independent changes run in parallel):",
                plural(p.waves.len(), "wave")
            ))
        );
        for (k, w) in p.waves.iter().enumerate() {
            let ids: Vec<&str> = w.iter().map(|&i| p.recs[i].id.as_str()).collect();
            let _ = writeln!(out, "  {}. {}", k + 1, ids.join(", "));
        }
        out.push('\n');
    }
    render_summary(&mut out, p, &paint);
    out
}

fn render_change(out: &mut String, r: &PlannedRec, paint: &Paint) {
    let _ = writeln!(
        out,
        "{} {}  {}  {}",
        paint.wrap("33", "~"),
        paint.bold(&r.id),
        r.action,
        resource_label(r)
    );
    let risk = r.risk.map_or_else(|| "?".to_string(), |x| paint.risk(x));
    let rev = if r.reversible {
        "reversible".to_string()
    } else {
        paint.wrap("1;31", "IRREVERSIBLE")
    };
    let _ = writeln!(
        out,
        "    risk {risk} · {} · {rev} · ~{}",
        savings_text(&r.savings, r.savings_source),
        duration(r.duration)
    );
    for reason in &r.risk_reasons {
        let _ = writeln!(out, "      - {}", clean(reason));
    }
    let mut waits: Vec<String> = r.depends_on.clone();
    waits.extend(
        r.implicit_after
            .iter()
            .map(|(id, why)| format!("{id} ({})", clean(why))),
    );
    if !waits.is_empty() {
        let _ = writeln!(out, "    after: {}", waits.join(", "));
    }
    let d = diff(r.before.as_ref(), r.after.as_ref());
    if !d.is_empty() {
        for line in d.lines() {
            let _ = writeln!(out, "    {}", paint.diff_line(line));
        }
    }
    let _ = writeln!(out, "    steps:");
    for (k, s) in r.steps.iter().enumerate() {
        let _ = writeln!(out, "      {}. {}", k + 1, s.op.describe());
        let undo = s.inverse.describe();
        let undo = if s.inverse.is_irreversible() {
            paint.wrap("1;31", &undo)
        } else {
            paint.dim(&undo)
        };
        let _ = writeln!(out, "         undo: {undo}");
    }
    out.push('\n');
}

fn render_summary(out: &mut String, p: &Planned, paint: &Paint) {
    let s = &p.summary;
    let _ = writeln!(
        out,
        "{} {}: {} to change, {} no change, {} blocked",
        paint.bold("Summary:"),
        plural(s.recommendations, "recommendation"),
        s.changes,
        s.no_change,
        s.blocked
    );
    if s.changes > 0 {
        let by: Vec<String> = s
            .by_action
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect();
        let _ = writeln!(out, "  changes by action: {}", by.join(", "));
        let risks: Vec<String> = Risk::ALL
            .iter()
            .filter(|r| s.risk.get(r.as_str()).copied().unwrap_or(0) > 0)
            .map(|r| format!("{} {}", paint.risk(*r), s.risk[r.as_str()]))
            .collect();
        let _ = writeln!(
            out,
            "  risk: {} · irreversible: {}",
            risks.join(", "),
            s.irreversible
        );
        let unknown = super::unknown_savings(s);
        if s.monthly_savings_usd < 0.0 {
            let _ = writeln!(
                out,
                "  savings: none; the changes cost {}/month more{unknown}",
                money(-s.monthly_savings_usd)
            );
        } else {
            let _ = writeln!(
                out,
                "  savings: {}/month{unknown}",
                money(s.monthly_savings_usd)
            );
        }
        let calls = if s.calls < s.steps {
            format!(
                " in {}: stops, starts, terminations and monitoring of many instances go in one call",
                plural(s.calls, "call")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  estimated duration: {} at parallelism {} ({}{calls})",
            duration(std::time::Duration::from_secs(s.estimated_duration_s)),
            s.parallelism,
            plural(s.steps, "step")
        );
    }
    if s.changes > p.max_changes {
        let _ = writeln!(
            out,
            "  {} {} changes exceed max_changes = {}: apply will refuse this plan",
            paint.wrap("1;31", "LIMIT:"),
            s.changes,
            p.max_changes
        );
    }
    if s.blocked > 0 {
        let _ = writeln!(
            out,
            "  {} apply refuses a plan with blocked recommendations:",
            paint.wrap("1;31", "BLOCKED:")
        );
        for r in p.recs.iter().filter(|r| r.status == Status::Blocked) {
            let why: Vec<&str> = r.blocked_by.iter().map(|(w, _)| w.as_str()).collect();
            let _ = writeln!(out, "    - {}: {}", r.id, clean(&why.join("; ")));
        }
    }
}
