//! The ordering pare adds beyond `depends_on`: two recommendations on one
//! resource run in file order; a volume change runs before its instance is
//! terminated and a delete after; anything touching overlapping resources
//! never runs concurrently.

use crate::executor::resource_of;
use crate::graph::PlanGraph;
use crate::plan::{Action, Recommendation};
use crate::provider::Inventory;
use crate::vocabulary::ResourceId;
use std::collections::{BTreeSet, HashMap};

/// The resources a recommendation can touch: its own, and for an instance
/// the volumes attached to it and the addresses associated with it.
fn touched_by(rec: &Recommendation, observed: &Inventory) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(r) = resource_of(rec) else {
        return out;
    };
    if let ResourceId::Instance(id) = &r {
        out.extend(observed.attached_volumes(id).iter().map(|v| v.id.clone()));
        out.extend(
            observed
                .associated_addresses(id)
                .iter()
                .map(|a| a.allocation_id.clone()),
        );
    }
    if let ResourceId::Volume(id) = &r
        && let Some(i) = observed.volume(id).and_then(|v| v.attached_to.clone())
    {
        out.insert(i);
    }
    if let ResourceId::Address(id) = &r
        && let Some(i) = observed.address(id).and_then(|a| a.instance.clone())
    {
        out.insert(i);
    }
    out.insert(r.id().to_string());
    out
}

/// The planner's ordering rules beyond `depends_on`.
pub(super) fn add_implicit_edges(
    recs: &[Recommendation],
    observed: &Inventory,
    graph: &mut PlanGraph,
) {
    // Two recommendations on the same resource run in file order.
    let mut by_resource: HashMap<ResourceId, Vec<usize>> = HashMap::new();
    for (i, rec) in recs.iter().enumerate() {
        if let Some(r) = resource_of(rec) {
            by_resource.entry(r).or_default().push(i);
        }
    }
    let mut keyed: Vec<(&ResourceId, &Vec<usize>)> =
        by_resource.iter().filter(|(_, v)| v.len() > 1).collect();
    keyed.sort();
    for (r, idx) in keyed {
        for pair in idx.windows(2) {
            graph.add_implicit(
                pair[0],
                pair[1],
                format!("both change {}; file order", r.id()),
            );
        }
    }
    // Volumes attached to an instance being terminated or replaced: a volume
    // change goes first (the instance is still there); a delete goes after
    // (termination detaches it, and AWS deletes only detached volumes).
    let mut ends: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, rec) in recs.iter().enumerate() {
        match &rec.action {
            Action::Terminate(a) => ends.entry(a.instance.as_str()).or_default().push(i),
            Action::Spot(a) => ends.entry(a.instance.as_str()).or_default().push(i),
            _ => {}
        }
    }
    for (i, rec) in recs.iter().enumerate() {
        if ends.is_empty() {
            break;
        }
        let Action::Storage(s) = &rec.action else {
            continue;
        };
        let Some(instance) = observed
            .volume(&s.volume)
            .and_then(|v| v.attached_to.as_deref())
        else {
            continue;
        };
        for &j in ends.get(instance).into_iter().flatten() {
            if s.delete {
                graph.add_implicit(
                    j,
                    i,
                    format!("{} is detached when {instance} is terminated", s.volume),
                );
            } else {
                graph.add_implicit(
                    i,
                    j,
                    format!(
                        "{} changes before its instance {instance} is terminated",
                        s.volume
                    ),
                );
            }
        }
    }
    // Anything else that touches overlapping resources (an instance and the
    // volumes and addresses hanging off it) runs in file order, so parallel
    // execution never races two changes to one thing.
    let touched: Vec<BTreeSet<String>> = recs.iter().map(|r| touched_by(r, observed)).collect();
    let mut owners: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, set) in touched.iter().enumerate() {
        for r in set {
            owners.entry(r.as_str()).or_default().push(i);
        }
    }
    // A chain in file order per resource (each waits for the one before):
    // ordered all the same, with edges linear in the plan, not quadratic.
    let mut pairs: BTreeSet<(usize, usize, &str)> = BTreeSet::new();
    for (r, idx) in &owners {
        for w in idx.windows(2) {
            pairs.insert((w[0], w[1], r));
        }
    }
    for (i, j, r) in pairs {
        if !graph.has_edge_between(i, j) {
            graph.add_implicit(i, j, format!("both touch {r}; file order"));
        }
    }
}
