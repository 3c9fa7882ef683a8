//! The plan file an import writes: deterministic (the same input gives the
//! same bytes), and checked by the loader before it is returned.
//!
//! Imported recommendations live after a marker line at the end of the
//! `recommendations` list. Importing into an existing plan keeps every byte
//! above the marker (its name, approvals, comments and hand-written
//! recommendations) and replaces what is below it.

use super::{Act, Group, Imported};
use crate::plan::Recommendation;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How the line that starts the imported recommendations begins.
pub const MARKER: &str = "  # --- imported by `pare import` for account ";

/// The line that starts the imported recommendations of `account`.
pub fn marker(account: &str) -> String {
    format!(
        "{MARKER}{account}: everything below this line is replaced by the next import; edit above it ---"
    )
}

/// A written plan, and how it differs from the one it replaces.
#[derive(Debug)]
pub struct Written {
    pub text: String,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub kept: usize,
}

/// A string as a YAML double-quoted scalar (JSON's escapes are YAML's),
/// with the characters that reorder, hide or break lines of text in a
/// reviewer's diff escaped too (C1 controls, NEL, zero-width characters,
/// bidi controls, line and paragraph separators).
fn q(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        let hidden = matches!(
            c,
            '\u{80}'..='\u{9f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        );
        if hidden {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(max).collect();
    out.trim_end_matches('-').to_string()
}

/// `rightsize-web-1-i-0abc…`: the action, the Name tag where known, the resource.
fn base_id(r: &Imported) -> String {
    let mut id = r.act.action().to_string();
    if let Some(n) = r
        .name
        .as_deref()
        .map(|n| slug(n, 30))
        .filter(|n| !n.is_empty())
    {
        id.push('-');
        id.push_str(&n);
    }
    let res = slug(r.act.resource(), 60);
    if !res.is_empty() {
        id.push('-');
        id.push_str(&res);
    }
    id
}

fn rec_yaml(id: &str, r: &Imported) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "  - id: {id}");
    let _ = writeln!(o, "    action: {}", r.act.action());
    match &r.act {
        Act::Rightsize { instance, to } => {
            let _ = writeln!(o, "    instance: {instance}\n    to: {to}");
        }
        Act::Stop { instance } => {
            let _ = writeln!(o, "    instance: {instance}\n    mode: stop");
        }
        Act::Terminate { instance } => {
            let _ = writeln!(o, "    instance: {instance}");
        }
        Act::Retype {
            volume,
            to,
            iops,
            throughput,
        } => {
            let _ = writeln!(o, "    volume: {volume}\n    to: {to}");
            if let Some(i) = iops {
                let _ = writeln!(o, "    iops: {i}");
            }
            if let Some(t) = throughput {
                let _ = writeln!(o, "    throughput_mbps: {t}");
            }
        }
        Act::DeleteVolume { volume } => {
            let _ = writeln!(o, "    volume: {volume}\n    delete: true");
        }
        Act::Reserve {
            instance_type,
            count,
            term,
            payment,
            class,
        } => {
            let _ = writeln!(
                o,
                "    instance_type: {instance_type}\n    count: {count}\n    term: {term}\n    payment: {payment}\n    offering_class: {class}"
            );
        }
        Act::Autoscale {
            group,
            min,
            max,
            desired,
        } => {
            let _ = writeln!(o, "    group: {}", q(group));
            for (k, v) in [("min", min), ("max", max), ("desired", desired)] {
                if let Some(v) = v {
                    let _ = writeln!(o, "    {k}: {v}");
                }
            }
        }
    }
    if !r.reason.is_empty() {
        let _ = writeln!(o, "    reason: {}", q(&r.reason));
    }
    let _ = writeln!(o, "    savings_monthly_usd: {:.2}", r.savings);
    let s = &r.source;
    let _ = writeln!(
        o,
        "    source:\n      service: {}\n      recommendation_id: {}",
        s.service,
        q(&s.recommendation_id)
    );
    if let Some(t) = &s.refreshed_at {
        let _ = writeln!(o, "      refreshed_at: {}", q(t));
    }
    if !s.assumed.is_empty() {
        let parts: Vec<String> = s
            .assumed
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(x) => format!("{k}: {}", q(x)),
                other => format!("{k}: {other}"),
            })
            .collect();
        let _ = writeln!(o, "      assumed: {{ {} }}", parts.join(", "));
    }
    o
}

/// The plan for `group`; `existing` is the plan file it replaces, if any
/// (its path and text). An error says why it cannot be written.
pub fn render(group: &Group, existing: Option<(&str, &str)>) -> Result<Written, String> {
    let (head, old, taken) = match existing {
        None => {
            let mut h = String::new();
            let _ = writeln!(
                h,
                "# yaml-language-server: $schema=../schemas/plan.schema.json"
            );
            let _ = writeln!(h, "#");
            // The account is 12 digits and the region a region name (both
            // checked on import): nothing from the input is written raw.
            let _ = writeln!(
                h,
                "# Imported by `pare import` from AWS's recommendations for account {} in {}.\n# Review it in a pull request; add approvals for what needs them.",
                group.account, group.region
            );
            let _ = writeln!(h, "version: 1");
            let _ = writeln!(
                h,
                "name: {}",
                q(&format!("imported-{}-{}", group.account, group.region))
            );
            let _ = writeln!(h, "provider:\n  aws: {{ region: {} }}", group.region);
            let _ = writeln!(h, "recommendations:");
            (h, BTreeMap::new(), BTreeSet::new())
        }
        Some((path, text)) => split_existing(path, text, group)?,
    };
    let mut ids: BTreeSet<String> = taken.clone();
    let mut body = String::new();
    let mut mine = BTreeSet::new();
    for r in &group.recs {
        let base = base_id(r);
        let mut id = base.clone();
        let mut n = 2;
        while ids.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        ids.insert(id.clone());
        body.push_str(&rec_yaml(&id, r));
        mine.insert(id);
    }
    let mut text = head;
    if !group.recs.is_empty() || !old.is_empty() {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let _ = writeln!(text, "{}", marker(&group.account));
        text.push_str(&body);
    }
    if group.recs.is_empty() && text.trim_end().ends_with("recommendations:") {
        text = format!(
            "{}recommendations: []\n",
            text.trim_end().trim_end_matches("recommendations:")
        );
    }
    // Valid by construction, and checked: a plan pare cannot load is never written.
    let path = std::path::Path::new(existing.map_or("imported.yaml", |(p, _)| p));
    let loaded = crate::plan::load_str(path, &path.display().to_string(), text.clone()).map_err(
        |diags| {
            let first = diags.first().map(|d| d.message.clone()).unwrap_or_default();
            format!("the plan it would write does not load ({first}); nothing was written")
        },
    )?;
    // Added, changed and removed, compared as loaded (not as text).
    let new: BTreeMap<String, serde_json::Value> = loaded
        .plan
        .recommendations
        .iter()
        .filter(|r| mine.contains(&r.id))
        .map(|r| (r.id.clone(), serde_json::to_value(r).unwrap_or_default()))
        .collect();
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k.clone())
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    Ok(Written {
        text,
        added,
        changed,
        removed,
        kept: taken.len(),
    })
}

/// An existing plan split at the marker: the text above it (kept), the
/// recommendations below it (id → as loaded), and the ids above it.
type Split = (
    String,
    BTreeMap<String, serde_json::Value>,
    BTreeSet<String>,
);

fn split_existing(path: &str, text: &str, group: &Group) -> Result<Split, String> {
    let loaded = crate::plan::load_str(std::path::Path::new(path), path, text.to_string()).map_err(|d| {
        format!(
            "{path} is not a valid plan ({}): fix it (`pare validate {path}`) before importing into it",
            d.first().map(|d| d.message.clone()).unwrap_or_default()
        )
    })?;
    match &loaded.plan.provider {
        crate::plan::Provider::Aws(a) if a.region.as_deref().is_none_or(|r| r == group.region) => {}
        _ => {
            return Err(format!(
                "{path} is not an AWS plan for {}: import into a plan of that region, or into a new file",
                group.region
            ));
        }
    }
    let at = text.find(&format!("\n{MARKER}")).map(|i| i + 1);
    let (above, below) = match at {
        Some(i) => {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
            let account = text[i + MARKER.len()..end].split(':').next().unwrap_or("");
            if account != group.account {
                return Err(format!(
                    "{path} holds recommendations imported for account {}, not {}: import into a plan of that account, or into a new file",
                    crate::vocabulary::words::clean(account),
                    group.account
                ));
            }
            (&text[..i], &text[end..])
        }
        None => (text, ""),
    };
    // Below the marker there are only imported recommendations: anything
    // else would be lost by the next import.
    if let Some(line) = below
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']))
    {
        return Err(format!(
            "{path}: `{}` follows the imported recommendations; move it above the line `# --- imported by pare import …`",
            crate::vocabulary::words::clean(line.split(':').next().unwrap_or(line))
        ));
    }
    if at.is_none() && top_level_keys(above).last().map(String::as_str) != Some("recommendations") {
        return Err(format!(
            "{path}: `recommendations` must be the last key of the plan (a block list) so the imported ones can follow it"
        ));
    }
    if above.contains("recommendations: []") {
        return Err(format!(
            "{path}: write `recommendations:` as a block list (not `[]`) to import into it"
        ));
    }
    let old: BTreeMap<String, serde_json::Value> = crate::plan::load_str(
        std::path::Path::new(path),
        path,
        format!("version: 1\nprovider: {{ aws: {{}} }}\nrecommendations:\n{below}"),
    )
    .map(|l| {
        l.plan
            .recommendations
            .iter()
            .map(|r| (r.id.clone(), serde_json::to_value(r).unwrap_or_default()))
            .collect()
    })
    .unwrap_or_default();
    let taken: BTreeSet<String> = loaded
        .plan
        .recommendations
        .iter()
        .map(|r: &Recommendation| r.id.clone())
        .filter(|id| !old.contains_key(id))
        .collect();
    Ok((above.to_string(), old, taken))
}

/// The keys of the document's root mapping, in order (lines that start a
/// key at column one).
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, _)| k.trim().trim_matches(['"', '\'']).to_string())
        })
        .collect()
}
