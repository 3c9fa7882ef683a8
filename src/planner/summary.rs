//! The plan's totals: counts by status, action and risk, savings, the
//! waves, and the estimated duration and cloud calls (steps of one kind on
//! many instances share a call).

use super::{PlannedRec, Status, Summary};
use crate::config::Config;
use crate::executor::Savings;
use crate::graph::PlanGraph;
use crate::vocabulary::Risk;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The waves (changes only, each in file order) and the summary.
pub(super) fn summarise(
    recs: &[PlannedRec],
    graph: &PlanGraph,
    config: &Config,
) -> (Vec<Vec<usize>>, Summary) {
    let is_change: Vec<bool> = recs.iter().map(|p| p.status == Status::Change).collect();
    let waves: Vec<Vec<usize>> = graph
        .waves()
        .into_iter()
        .map(|w| w.into_iter().filter(|&i| is_change[i]).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect();
    let mut durations: Vec<Duration> = recs
        .iter()
        .map(|p| {
            if p.status == Status::Change {
                p.duration
            } else {
                Duration::ZERO
            }
        })
        .collect();
    // Steps of one kind on many instances go to the cloud in one call: in
    // a wave, recommendations made only of such steps, with the same kinds,
    // take the time (and the calls) of one per batch.
    let mut calls: usize = recs
        .iter()
        .filter(|p| p.status == Status::Change)
        .map(|p| p.steps.len())
        .sum();
    for wave in &waves {
        let mut groups: HashMap<Vec<(&'static str, bool)>, usize> = HashMap::new();
        for &i in wave {
            let keys: Option<Vec<(&'static str, bool)>> =
                recs[i].steps.iter().map(|s| s.op.batch_key()).collect();
            let Some(keys) = keys.filter(|k| !k.is_empty()) else {
                continue;
            };
            let n = groups.entry(keys).or_default();
            if !n.is_multiple_of(config.batch_size.max(1)) {
                durations[i] = Duration::ZERO;
                calls -= recs[i].steps.len();
            }
            *n += 1;
        }
    }
    let estimated = graph.schedule_length(&durations, config.parallelism);
    let mut summary = counts(recs, estimated, config.parallelism);
    summary.calls = calls;
    (waves, summary)
}

fn counts(recs: &[PlannedRec], estimated: Duration, parallelism: usize) -> Summary {
    let mut s = Summary {
        recommendations: recs.len(),
        changes: 0,
        no_change: 0,
        blocked: 0,
        by_action: BTreeMap::new(),
        risk: Risk::ALL.iter().map(|r| (r.as_str(), 0)).collect(),
        irreversible: 0,
        monthly_savings_usd: 0.0,
        savings_unknown: 0,
        estimated_duration_s: estimated.as_secs(),
        parallelism,
        steps: 0,
        calls: 0,
    };
    for p in recs {
        match p.status {
            Status::NoChange => s.no_change += 1,
            Status::Blocked => s.blocked += 1,
            Status::Change => {
                s.changes += 1;
                s.steps += p.steps.len();
                *s.by_action.entry(p.action).or_default() += 1;
                if let Some(r) = p.risk {
                    *s.risk.entry(r.as_str()).or_default() += 1;
                }
                if !p.reversible {
                    s.irreversible += 1;
                }
                match p.savings {
                    Savings::Usd(x) => s.monthly_savings_usd += x,
                    Savings::Unknown(_) => s.savings_unknown += 1,
                }
            }
        }
    }
    s.monthly_savings_usd = (s.monthly_savings_usd * 100.0).round() / 100.0;
    s
}
