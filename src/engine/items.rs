//! Work items from a planned plan: its typed steps, each change waiting for
//! the changes it depends on. A fresh plan and a saved plan (once proven to
//! be the same) are applied by this one path, exactly as previewed.

use super::Item;
use crate::executor::Savings;
use crate::planner::{Planned, Status};
use crate::provider::Provider;
use crate::vocabulary::{Op, ResourceId};
use std::collections::HashMap;
use std::time::Duration;

/// The changes of `plan`, each waiting for the changes it depends on
/// (directly, or through recommendations that need no change).
pub fn items(plan: &Planned, provider: &dyn Provider) -> Vec<Item> {
    let recs = &plan.recs;
    let index: HashMap<&str, usize> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let is_change: Vec<bool> = recs.iter().map(|r| r.status == Status::Change).collect();
    let preds = |i: usize| -> Vec<usize> {
        let r = &recs[i];
        r.depends_on
            .iter()
            .map(String::as_str)
            .chain(r.implicit_after.iter().map(|(id, _)| id.as_str()))
            .filter_map(|id| index.get(id).copied())
            .collect()
    };
    let mut item_of: Vec<Option<usize>> = vec![None; recs.len()];
    let mut out: Vec<Item> = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        if !is_change[i] {
            continue;
        }
        item_of[i] = Some(out.len());
        let steps = r.steps.clone();
        let replaced_by_step = (r.action == "spot")
            .then(|| {
                steps
                    .iter()
                    .position(|s| matches!(s.op, Op::LaunchInstance { .. }))
            })
            .flatten();
        out.push(Item {
            rec: r.id.clone(),
            resource: ResourceId::from_parts(r.resource_kind, &r.resource).ok(),
            before: r.before.clone(),
            after: r.after.clone(),
            replaced_by_step,
            deps: Vec::new(),
            urgency: steps.iter().map(|s| provider.estimate(&s.op)).sum(),
            savings: match r.savings {
                Savings::Usd(x) => x,
                Savings::Unknown(_) => 0.0,
            },
            steps,
        });
    }
    // Dependencies, looking through recommendations that change nothing.
    for (i, _) in recs.iter().enumerate() {
        let Some(me) = item_of[i] else { continue };
        let mut deps = Vec::new();
        let mut stack = preds(i);
        let mut seen = vec![false; recs.len()];
        while let Some(p) = stack.pop() {
            if std::mem::replace(&mut seen[p], true) {
                continue;
            }
            match item_of[p] {
                Some(d) => deps.push(d),
                None => stack.extend(preds(p)),
            }
        }
        deps.sort();
        deps.dedup();
        out[me].deps = deps;
    }
    longest_paths(&mut out);
    out
}

/// Sets each item's urgency to the longest path ahead of it (its own work,
/// given as its urgency, included), in one pass over a topological order
/// (Kahn), latest first.
pub(super) fn longest_paths(out: &mut [Item]) {
    let own: Vec<Duration> = out.iter().map(|x| x.urgency).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); out.len()];
    let mut waiting: Vec<usize> = out.iter().map(|x| x.deps.len()).collect();
    for (i, x) in out.iter().enumerate() {
        for &d in &x.deps {
            dependents[d].push(i);
        }
    }
    let mut order = Vec::with_capacity(out.len());
    let mut ready: Vec<usize> = (0..out.len()).filter(|&i| waiting[i] == 0).collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(d);
            }
        }
    }
    let mut rest = own.clone();
    for &i in order.iter().rev() {
        let tail = dependents[i]
            .iter()
            .map(|&d| rest[d])
            .max()
            .unwrap_or_default();
        rest[i] = own[i] + tail;
    }
    for (x, r) in out.iter_mut().zip(rest) {
        x.urgency = r;
    }
}
