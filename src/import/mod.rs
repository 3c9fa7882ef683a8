//! `pare import`: AWS's own recommendations as reviewable plan files.
//!
//! The input is what the AWS CLI prints (`--output json`) for Cost
//! Optimization Hub's `list-recommendations` (and `get-recommendation`, for
//! the details a list item lacks) or Compute Optimizer's
//! `get-ec2-instance-recommendations`, `get-ebs-volume-recommendations`,
//! `get-auto-scaling-group-recommendations` and `get-idle-recommendations`,
//! and Compute Optimizer's CSV export of EC2 instance recommendations. Each recommendation becomes one of pare's actions, or is skipped with a
//! reason and counted; nothing is dropped silently. The plan written is
//! valid by construction (it is loaded again before it is written) and
//! byte-identical for the same input.

mod co;
mod coh;
mod csv;
#[cfg(feature = "aws")]
pub mod fetch;
mod write;

pub use write::{Written, render};

use crate::plan::Source;
use std::collections::BTreeMap;

/// The two services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    CostOptimizationHub,
    ComputeOptimizer,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::CostOptimizationHub => "cost-optimization-hub",
            Service::ComputeOptimizer => "compute-optimizer",
        }
    }
}

/// One of pare's actions, as imported.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    Rightsize {
        instance: String,
        to: String,
    },
    Stop {
        instance: String,
    },
    Terminate {
        instance: String,
    },
    Retype {
        volume: String,
        to: String,
        iops: Option<u32>,
        throughput: Option<u32>,
    },
    DeleteVolume {
        volume: String,
    },
    Reserve {
        instance_type: String,
        count: u32,
        term: &'static str,
        payment: &'static str,
        class: &'static str,
    },
    Autoscale {
        group: String,
        min: Option<u32>,
        max: Option<u32>,
        desired: Option<u32>,
    },
}

impl Act {
    pub fn action(&self) -> &'static str {
        match self {
            Act::Rightsize { .. } => "rightsize",
            Act::Stop { .. } => "hibernate",
            Act::Terminate { .. } => "terminate",
            Act::Retype { .. } | Act::DeleteVolume { .. } => "storage",
            Act::Reserve { .. } => "reserve",
            Act::Autoscale { .. } => "autoscale",
        }
    }

    fn resource(&self) -> &str {
        match self {
            Act::Rightsize { instance, .. }
            | Act::Stop { instance }
            | Act::Terminate { instance } => instance,
            Act::Retype { volume, .. } | Act::DeleteVolume { volume } => volume,
            Act::Reserve { instance_type, .. } => instance_type,
            Act::Autoscale { group, .. } => group,
        }
    }
}

/// A recommendation pare can act on.
#[derive(Debug, Clone)]
pub struct Imported {
    pub account: String,
    pub region: String,
    pub act: Act,
    /// The Name tag, where the service gave tags.
    pub name: Option<String>,
    pub tags: Vec<(String, String)>,
    pub savings: f64,
    pub reason: String,
    pub source: Source,
    pub effort: Option<Effort>,
    pub performance_risk: Option<f64>,
    pub restart_needed: Option<bool>,
    pub rollback_possible: Option<bool>,
}

/// A recommendation pare cannot act on, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// What kind of recommendation (`PurchaseSavingsPlans`, `Lambda`, …).
    pub kind: String,
    pub resource: String,
    pub why: String,
}

/// Implementation effort, as both services grade it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effort {
    VeryLow,
    Low,
    Medium,
    High,
    VeryHigh,
}

impl Effort {
    pub fn parse(s: &str) -> Option<Effort> {
        match s.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "verylow" => Some(Effort::VeryLow),
            "low" => Some(Effort::Low),
            "medium" => Some(Effort::Medium),
            "high" => Some(Effort::High),
            "veryhigh" => Some(Effort::VeryHigh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effort::VeryLow => "VeryLow",
            Effort::Low => "Low",
            Effort::Medium => "Medium",
            Effort::High => "High",
            Effort::VeryHigh => "VeryHigh",
        }
    }
}

/// How to choose among a recommendation's options, and what to do with an
/// idle instance.
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Compute Optimizer: the option with the lowest performance risk
    /// instead of its rank-1 option.
    pub lowest_risk: bool,
    /// Idle instances are terminated instead of stopped.
    pub terminate_idle: bool,
}

/// Which recommendations to keep.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub account: Option<String>,
    pub region: Option<String>,
    pub min_savings: Option<f64>,
    pub max_effort: Option<Effort>,
    pub max_performance_risk: Option<f64>,
    pub restart_needed: Option<bool>,
    pub rollback_possible: Option<bool>,
    pub tags: Vec<(String, String)>,
    pub actions: Vec<String>,
}

impl Filters {
    /// Why `r` is filtered out, if it is.
    fn rejects(&self, r: &Imported) -> Option<&'static str> {
        if self.account.as_ref().is_some_and(|a| a != &r.account) {
            return Some("--account");
        }
        if self.region.as_ref().is_some_and(|g| g != &r.region) {
            return Some("--region");
        }
        if self.min_savings.is_some_and(|m| r.savings < m) {
            return Some("--min-savings");
        }
        // Unknown is not known to be within the limit.
        if let Some(max) = self.max_effort
            && r.effort.is_none_or(|e| e > max)
        {
            return Some("--max-effort");
        }
        if let Some(max) = self.max_performance_risk
            && r.performance_risk.is_none_or(|p| p > max)
        {
            return Some("--max-performance-risk");
        }
        if let Some(want) = self.restart_needed
            && r.restart_needed != Some(want)
        {
            return Some("--restart-needed");
        }
        if let Some(want) = self.rollback_possible
            && r.rollback_possible != Some(want)
        {
            return Some("--rollback-possible");
        }
        if !self
            .tags
            .iter()
            .all(|(k, v)| r.tags.iter().any(|(tk, tv)| tk == k && tv == v))
        {
            return Some("--tag");
        }
        if !self.actions.is_empty() && !self.actions.iter().any(|a| a == r.act.action()) {
            return Some("--action");
        }
        None
    }
}

/// A located problem with an input file.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: String,
}

/// What an input file held.
#[derive(Debug, Default)]
pub struct Parsed {
    pub imported: Vec<Imported>,
    pub skipped: Vec<Skipped>,
}

/// Reads every input (`(file name, text)`) as `service`'s CLI output.
pub fn parse(
    service: Service,
    inputs: &[(String, String)],
    choices: &Choices,
) -> Result<Parsed, InputError> {
    let mut docs = Vec::new();
    let mut from_csv = Parsed::default();
    for (file, text) in inputs {
        // A byte-order mark is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if csv::looks_like_csv(text) {
            match service {
                Service::ComputeOptimizer => {
                    csv::parse(file, text, choices, &mut from_csv)?;
                    continue;
                }
                Service::CostOptimizationHub => {
                    return Err(InputError {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "{} is a CSV file: Cost Optimization Hub's recommendations are read as JSON",
                            crate::vocabulary::words::clean(file)
                        ),
                        help: format!(
                            "give what `aws {} … --output json` prints (a CSV export of Compute Optimizer's EC2 instance recommendations is read by `pare import compute-optimizer`)",
                            cli_name(service)
                        ),
                    });
                }
            }
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| InputError {
            file: file.clone(),
            line: e.line(),
            column: e.column(),
            message: format!(
                "{} is not JSON: {}",
                crate::vocabulary::words::clean(file),
                // The position is given once, before the message.
                crate::diagnostic::json_message(&e)
            ),
            help: format!(
                "give what `aws {} … --output json` prints",
                cli_name(service)
            ),
        })?;
        docs.push((file.clone(), value));
    }
    let mut parsed = match service {
        Service::CostOptimizationHub => coh::parse(docs, choices)?,
        Service::ComputeOptimizer => co::parse(&docs, choices)?,
    };
    parsed.imported.extend(from_csv.imported);
    parsed.skipped.extend(from_csv.skipped);
    Ok(checked(parsed))
}

/// What every imported recommendation must be, whichever service said it:
/// a 12-digit account, savings given and plausible; and one recommendation
/// per resource (the one that saves most, then by id: the same whatever the
/// order of the input).
fn checked(parsed: Parsed) -> Parsed {
    let mut out = Parsed {
        imported: Vec::new(),
        skipped: parsed.skipped,
    };
    let mut by_resource: BTreeMap<String, Vec<Imported>> = BTreeMap::new();
    for r in parsed.imported {
        let why = if !(r.account.len() == 12 && r.account.bytes().all(|b| b.is_ascii_digit())) {
            Some(format!(
                "its account id `{}` is not 12 digits",
                clip(&r.account)
            ))
        } else if r.savings.is_nan() {
            Some("its monthly savings are not given".to_string())
        } else if r.savings < 0.0 {
            Some(format!(
                "it costs more than it saves ({:.2}/month)",
                r.savings
            ))
        } else if r.savings > crate::plan::MAX_SAVINGS_MONTHLY_USD {
            Some("its monthly savings are implausible (over 1,000,000,000)".to_string())
        } else {
            None
        };
        match why {
            Some(why) => out
                .skipped
                .push(skipped("Invalid", &r.source.recommendation_id, why)),
            None => {
                let key = match &r.act {
                    Act::Reserve { .. } => format!("{:?}", r.act),
                    other => other.resource().to_string(),
                };
                by_resource
                    .entry(format!("{}/{}/{key}", r.account, r.region))
                    .or_default()
                    .push(r);
            }
        }
    }
    for (_, mut recs) in by_resource {
        recs.sort_by(|a, b| {
            b.savings
                .total_cmp(&a.savings)
                .then_with(|| a.source.recommendation_id.cmp(&b.source.recommendation_id))
        });
        let mut recs = recs.into_iter();
        if let Some(best) = recs.next() {
            for other in recs {
                if other.act == best.act && other.source == best.source {
                    continue; // the same recommendation given twice
                }
                out.skipped.push(skipped(
                    other.act.action(),
                    other.act.resource(),
                    format!(
                        "another recommendation for the same resource saves more ({})",
                        clip(&best.source.recommendation_id)
                    ),
                ));
            }
            out.imported.push(best);
        }
    }
    out
}

/// At most 80 characters of text from the input, for a message.
fn clip(s: &str) -> String {
    let s = crate::vocabulary::words::clean(s);
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s.into_owned()
    }
}

fn cli_name(service: Service) -> &'static str {
    match service {
        Service::CostOptimizationHub => "cost-optimization-hub list-recommendations",
        Service::ComputeOptimizer => "compute-optimizer get-ec2-instance-recommendations",
    }
}

/// One plan's worth: an account and a region.
#[derive(Debug)]
pub struct Group {
    pub account: String,
    pub region: String,
    pub recs: Vec<Imported>,
}

/// The filtered recommendations by account and region (sorted), and how
/// many each filter removed.
pub fn select(parsed: Parsed, filters: &Filters) -> (Vec<Group>, BTreeMap<&'static str, usize>) {
    let mut filtered = BTreeMap::new();
    let mut groups: BTreeMap<(String, String), Vec<Imported>> = BTreeMap::new();
    for r in parsed.imported {
        match filters.rejects(&r) {
            Some(f) => *filtered.entry(f).or_insert(0) += 1,
            None => groups
                .entry((r.account.clone(), r.region.clone()))
                .or_default()
                .push(r),
        }
    }
    let groups = groups
        .into_iter()
        .map(|((account, region), mut recs)| {
            recs.sort_by(|a, b| {
                (
                    a.act.action(),
                    a.act.resource(),
                    &a.source.recommendation_id,
                )
                    .cmp(&(
                        b.act.action(),
                        b.act.resource(),
                        &b.source.recommendation_id,
                    ))
            });
            Group {
                account,
                region,
                recs,
            }
        })
        .collect();
    (groups, filtered)
}

/// "skipped 14: PurchaseSavingsPlans 3, Lambda 11".
pub fn skipped_summary(skipped: &[Skipped]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for s in skipped {
        *by.entry(s.kind.as_str()).or_insert(0) += 1;
    }
    let parts: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n}")).collect();
    Some(format!("skipped {}: {}", skipped.len(), parts.join(", ")))
}

// ------------------------------------------------------------ shared parts

/// A JSON document's value at a path of keys.
fn at<'a>(v: &'a serde_json::Value, path: &[&str]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text(v: &serde_json::Value, path: &[&str]) -> Option<String> {
    at(v, path).and_then(|x| match x {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn number(v: &serde_json::Value, path: &[&str]) -> Option<f64> {
    at(v, path)
        .and_then(|x| match x {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|x: &f64| x.is_finite())
}

fn flag(v: &serde_json::Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(|x| match x {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// `[{key, value}]` (either case) as pairs.
fn tags(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .get("tags")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    let k = text(t, &["key"]).or_else(|| text(t, &["Key"]))?;
                    let v = text(t, &["value"])
                        .or_else(|| text(t, &["Value"]))
                        .unwrap_or_default();
                    Some((k, v))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// An AWS CLI timestamp (ISO 8601 with a fraction and an offset, or epoch
/// seconds) as RFC 3339 in UTC, to the second.
fn timestamp(v: &serde_json::Value, path: &[&str]) -> Option<String> {
    let x = at(v, path)?;
    let secs = match x {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => iso_seconds(s)?,
        _ => return None,
    };
    if !(0.0..4.0e9).contains(&secs) {
        return None;
    }
    Some(crate::clock::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64),
    ))
}

/// `2026-11-30T08:00:01.123000+00:00` → seconds since the epoch.
fn iso_seconds(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let (clock, offset) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, "Z"),
    };
    let clock = clock.split('.').next()?;
    let stamp = format!("{date}T{clock}Z");
    let base = crate::clock::parse_rfc3339(&stamp)?;
    // A real time: no 30 February, no second 60.
    if crate::clock::rfc3339(base) != stamp {
        return None;
    }
    let mut secs = base.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as f64;
    if offset != "Z" {
        let sign = if offset.starts_with('-') { 1.0 } else { -1.0 };
        let (h, m) = offset[1..].split_once(':').unwrap_or((&offset[1..], "0"));
        secs += sign * (h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0);
    }
    Some(secs)
}

/// `arn:aws:ec2:us-east-1:123456789012:instance/i-0abc` → (region, account, last part).
fn arn_parts(arn: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return None;
    }
    let last = parts[5].rsplit(['/', ':']).next()?.to_string();
    Some((parts[3].to_string(), parts[4].to_string(), last))
}

fn skipped(kind: &str, resource: &str, why: impl Into<String>) -> Skipped {
    Skipped {
        kind: clip(kind),
        resource: clip(resource),
        why: why.into(),
    }
}

fn instance_id(id: &str) -> Option<String> {
    crate::plan::ids::is_valid(crate::plan::ids::IdKind::Instance, id).then(|| id.to_string())
}

fn volume_id(id: &str) -> Option<String> {
    crate::plan::ids::is_valid(crate::plan::ids::IdKind::Volume, id).then(|| id.to_string())
}

/// The volume types `storage` takes; another is skipped, named.
fn volume_type(to: &str) -> Result<(), String> {
    if matches!(
        to,
        "gp2" | "gp3" | "io1" | "io2" | "st1" | "sc1" | "standard"
    ) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a volume type pare knows",
            crate::vocabulary::words::clean(to)
        ))
    }
}

fn instance_type(t: &str) -> Option<String> {
    crate::plan::ids::is_instance_type(t).then(|| t.to_string())
}

/// "overprovisioned; CPU max 11%; performance risk low; effort Low; restart needed".
/// "14-day lookback" (the services give the days as a number, `14.0`).
fn lookback(item: &serde_json::Value, key: &str) -> Option<String> {
    let days = match number(item, &[key]) {
        Some(d) if d.fract() == 0.0 && (0.0..1e6).contains(&d) => format!("{d:.0}"),
        Some(d) if (0.0..1e6).contains(&d) => format!("{d}"),
        _ => return None,
    };
    Some(format!("{days}-day lookback"))
}

fn words(parts: &[Option<String>]) -> String {
    parts
        .iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
