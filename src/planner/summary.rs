//! The plan's totals: counts by status, action and risk, savings, the
//! waves, and the estimated duration and cloud calls (steps of one kind on
//! many instances share a call).

use super::{PlannedRec, Status, Summary};
use crate::config::{Config, GATHER_MAX_WINDOWS};
use crate::executor::Savings;
use crate::graph::PlanGraph;
use crate::vocabulary::Risk;
use std::collections::BTreeMap;
use std::time::Duration;

/// The batch keys of a recommendation's steps, in order (`None` for a step
/// that goes alone).
type Signature = Vec<Option<(&'static str, bool)>>;

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
    // Steps of one kind on many instances go to the cloud in one call. In
    // a wave, recommendations whose steps are of the same kinds in the same
    // order share a call for each step of a batchable kind (the engine
    // gathers them even when they become ready at slightly different
    // times), and run their other steps side by side, `parallelism` at a
    // time. Without gathering, only recommendations made of batchable steps
    // alone share calls.
    let mut calls: usize = recs
        .iter()
        .filter(|p| p.status == Status::Change)
        .map(|p| p.steps.len())
        .sum();
    let batch = config.batch_size.max(1);
    let lanes = config.parallelism.max(1);
    for wave in &waves {
        let mut groups: BTreeMap<Signature, Vec<usize>> = BTreeMap::new();
        for &i in wave {
            let keys: Signature = recs[i].steps.iter().map(|s| s.op.batch_key()).collect();
            let all = keys.iter().all(Option::is_some);
            if keys.iter().any(Option::is_some) && (all || !config.gather.is_zero()) {
                groups.entry(keys).or_default().push(i);
            }
        }
        for (keys, members) in groups {
            let n = members.len();
            if n < 2 {
                continue;
            }
            let calls_a_step = n.div_ceil(batch);
            let rep = members[0];
            let took = |k: usize| recs[rep].step_durations.get(k).copied().unwrap_or_default();
            let mut span = Duration::ZERO;
            for (k, key) in keys.iter().enumerate() {
                let rounds = match key {
                    Some(_) => {
                        let shared = shared_calls(
                            n,
                            calls_a_step,
                            (k > 0 && keys[k - 1].is_none()).then(|| took(k - 1)),
                            lanes,
                            config.gather,
                        );
                        calls -= n - shared;
                        shared.div_ceil(lanes)
                    }
                    None => n.div_ceil(lanes),
                };
                span += took(k) * rounds as u32;
            }
            durations[rep] = span;
            for &m in &members[1..] {
                durations[m] = Duration::ZERO;
            }
        }
    }
    let estimated = graph.schedule_length(&durations, config.parallelism);
    let mut summary = counts(recs, estimated, config.parallelism);
    summary.calls = calls;
    (waves, summary)
}

/// How many calls `n` like steps take when each follows a step of its own
/// chain that takes `before` (run `lanes` at a time), gathered for at most
/// `window` between arrivals and [`GATHER_MAX_WINDOWS`] windows in all;
/// `ready` calls when they are ready together.
fn shared_calls(
    n: usize,
    ready: usize,
    before: Option<Duration>,
    lanes: usize,
    window: Duration,
) -> usize {
    let Some(before) = before else {
        return ready;
    };
    let rounds = n.div_ceil(lanes);
    if window.is_zero() || before / lanes as u32 >= window {
        // They arrive a round at a time, too far apart to wait for.
        return rounds.max(ready);
    }
    let spread = before.as_secs_f64() * rounds as f64;
    let longest = (window * GATHER_MAX_WINDOWS).as_secs_f64();
    ((spread / longest).ceil() as usize).clamp(ready, n)
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
