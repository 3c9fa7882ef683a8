//! Rendering a planned plan: text for terminals and logs, JSON for tools
//! (the README's *The preview as JSON*), markdown for pull-request comments. Output is
//! deterministic: the same plan and account give the same bytes.

mod json;
mod markdown;
pub(crate) mod text;

pub use json::{ImplicitJson, PlanJson, RecJson, StepJson, to_json};
pub use markdown::{BUDGET as MARKDOWN_BUDGET, COMMENT_LIMIT, render as markdown};
pub use text::render as text;

use crate::executor::Savings;
use crate::vocabulary::Attributes;
use crate::vocabulary::words::clean;
use serde_json::Value;
use std::time::Duration;

/// Attributes as sorted `key: value` lines; nested maps (tags) flattened to `tags.key`.
pub fn attribute_lines(attrs: Option<&Attributes>) -> String {
    let Some(attrs) = attrs else {
        return String::new();
    };
    let mut out = String::new();
    for (k, v) in attrs {
        let k = clean(k);
        match v {
            Value::Object(map) if map.is_empty() => out.push_str(&format!("{k}: {{}}\n")),
            Value::Object(map) => {
                for (kk, vv) in map {
                    out.push_str(&format!("{k}.{}: {}\n", clean(kk), clean(&scalar(vv))));
                }
            }
            other => out.push_str(&format!("{k}: {}\n", clean(&scalar(other)))),
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// " (+ 2 unknown)" after the savings total, when some savings are unknown.
pub fn unknown_savings(s: &crate::planner::Summary) -> String {
    if s.savings_unknown > 0 {
        format!(" (+ {} unknown)", s.savings_unknown)
    } else {
        String::new()
    }
}

/// A unified diff of two attribute sets.
pub fn diff(before: Option<&Attributes>, after: Option<&Attributes>) -> String {
    let (b, a) = (attribute_lines(before), attribute_lines(after));
    similar::TextDiff::from_lines(&b, &a)
        .unified_diff()
        .context_radius(50)
        .header("before", "after")
        .to_string()
}

pub use crate::vocabulary::words::money;

pub fn savings_text(s: &Savings, source: &str) -> String {
    match s {
        Savings::Usd(x) => format!(
            "{} ({source})",
            crate::vocabulary::words::monthly_savings(*x)
        ),
        Savings::Unknown(why) => format!("savings unknown ({})", clean(why)),
    }
}

/// `1h 2m`, `7m 30s`, `45s`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_durations() {
        assert_eq!(duration(Duration::from_secs(450)), "7m 30s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h 2m");
        assert_eq!(duration(Duration::from_secs(9)), "9s");
    }
}
