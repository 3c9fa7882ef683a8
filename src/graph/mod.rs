//! The dependency graph of a plan's recommendations, built with petgraph.
//!
//! It owns ordering: which recommendation must finish before which, cycle
//! detection (named in order, located at the `depends_on` entries that close
//! it), a deterministic topological order and the waves shown in previews.
//! Ties are always broken by file order, so the same plan gives the same
//! order on every machine.

use crate::diagnostic::{Diagnostic, Span};
use crate::plan::LoadedPlan;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::{BTreeSet, HashMap};

/// Why one recommendation waits for another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edge {
    /// Written in the plan: `depends_on`, with the position of the entry.
    DependsOn(Span),
    /// Added by the planner, with the reason in words.
    Implicit(String),
}

/// Recommendations (by index in the plan) and the edges "must finish before".
#[derive(Debug, Clone)]
pub struct PlanGraph {
    graph: DiGraph<usize, Edge>,
}

impl PlanGraph {
    /// The graph of the plan's `depends_on` edges. Unknown ids are skipped
    /// here: the loader has already reported them.
    pub fn from_depends_on(loaded: &LoadedPlan) -> PlanGraph {
        let recs = &loaded.plan.recommendations;
        let mut graph = DiGraph::with_capacity(recs.len(), recs.len());
        let mut by_id: HashMap<&str, NodeIndex> = HashMap::with_capacity(recs.len());
        for (i, r) in recs.iter().enumerate() {
            let n = graph.add_node(i);
            by_id.entry(r.id.as_str()).or_insert(n);
        }
        for (i, r) in recs.iter().enumerate() {
            for (dep, sp) in r.depends_on.iter().zip(&r.spans.depends_on) {
                if let Some(&before) = by_id.get(dep.as_str()) {
                    graph.add_edge(before, NodeIndex::new(i), Edge::DependsOn(*sp));
                }
            }
        }
        PlanGraph { graph }
    }

    /// Adds "`before` must finish before `after`" unless that edge exists.
    pub fn add_implicit(&mut self, before: usize, after: usize, why: impl Into<String>) {
        let (b, a) = (NodeIndex::new(before), NodeIndex::new(after));
        if before != after && self.graph.find_edge(b, a).is_none() {
            self.graph.add_edge(b, a, Edge::Implicit(why.into()));
        }
    }

    /// Recommendations that must finish before `i`, by index, in file order.
    pub fn predecessors(&self, i: usize) -> Vec<usize> {
        let set: BTreeSet<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(|n| n.index())
            .collect();
        set.into_iter().collect()
    }

    /// How many edges lead into each node.
    fn indegrees(&self) -> Vec<usize> {
        (0..self.graph.node_count())
            .map(|i| {
                self.graph
                    .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                    .count()
            })
            .collect()
    }

    /// Whether an edge joins `a` and `b`, in either direction.
    pub fn has_edge_between(&self, a: usize, b: usize) -> bool {
        let (a, b) = (NodeIndex::new(a), NodeIndex::new(b));
        self.graph.find_edge(a, b).is_some() || self.graph.find_edge(b, a).is_some()
    }

    /// The implicit edges into `i`: (the recommendation it waits for, why).
    pub fn implicit_predecessors(&self, i: usize) -> Vec<(usize, String)> {
        let mut v: Vec<(usize, String)> = self
            .graph
            .edges_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .filter_map(|e| match e.weight() {
                Edge::Implicit(why) => {
                    Some((petgraph::visit::EdgeRef::source(&e).index(), why.clone()))
                }
                Edge::DependsOn(_) => None,
            })
            .collect();
        v.sort();
        v
    }

    /// The longest path (sum of durations) from each node to the end of the
    /// graph, itself included: how urgent it is to start it.
    pub fn remaining_path(&self, durations: &[std::time::Duration]) -> Vec<std::time::Duration> {
        let mut rest = durations.to_vec();
        for i in self.topological_order().into_iter().rev() {
            let tail = self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
                .map(|m| rest[m.index()])
                .max()
                .unwrap_or_default();
            rest[i] = durations[i] + tail;
        }
        rest
    }

    /// How long the whole graph takes with `parallelism` workers, each node
    /// taking `durations[i]`, every node starting as soon as its predecessors
    /// finish and a worker is free. Among ready nodes the one with the longest
    /// path still ahead goes first (ties by file order), as the engine does.
    pub fn schedule_length(
        &self,
        durations: &[std::time::Duration],
        parallelism: usize,
    ) -> std::time::Duration {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let n = self.graph.node_count();
        let urgency = self.remaining_path(durations);
        let mut indegree = self.indegrees();
        let mut ready: BinaryHeap<(std::time::Duration, Reverse<usize>)> = (0..n)
            .filter(|&i| indegree[i] == 0)
            .map(|i| (urgency[i], Reverse(i)))
            .collect();
        let mut running: BinaryHeap<Reverse<(std::time::Duration, usize)>> = BinaryHeap::new();
        let mut now = std::time::Duration::ZERO;
        loop {
            while running.len() < parallelism.max(1) {
                let Some((_, Reverse(i))) = ready.pop() else {
                    break;
                };
                running.push(Reverse((now + durations[i], i)));
            }
            let Some(Reverse((t, i))) = running.pop() else {
                break;
            };
            now = t;
            for m in self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            {
                indegree[m.index()] -= 1;
                if indegree[m.index()] == 0 {
                    ready.push((urgency[m.index()], Reverse(m.index())));
                }
            }
        }
        now
    }

    /// Every cycle, one diagnostic each, naming the cycle in order.
    pub fn cycles(&self, loaded: &LoadedPlan) -> Vec<Diagnostic> {
        let recs = &loaded.plan.recommendations;
        let mut sccs: Vec<Vec<NodeIndex>> = kosaraju_scc(&self.graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        for c in &mut sccs {
            c.sort();
        }
        sccs.sort();
        sccs.iter()
            .map(|scc| {
                let cycle = self.cycle_through(scc);
                // `cycle[k]` depends on `cycle[k+1]`: read it as "a needs b needs c needs a".
                let names: Vec<&str> = cycle
                    .iter()
                    .chain(cycle.first())
                    .map(|n| recs[n.index()].id.as_str())
                    .collect();
                let mut spans = Vec::with_capacity(cycle.len());
                let mut implicit = false;
                for (k, &n) in cycle.iter().enumerate() {
                    let next = cycle[(k + 1) % cycle.len()];
                    let edge =
                        self.graph
                            .edges_connecting(next, n)
                            .find_map(|e| match e.weight() {
                                Edge::DependsOn(sp) => Some(*sp),
                                Edge::Implicit(_) => None,
                            });
                    implicit |= edge.is_none();
                    spans.push(edge.unwrap_or(recs[n.index()].spans.id));
                }
                let mut d = Diagnostic::new(
                    "plan::cycle",
                    &loaded.source,
                    spans[0],
                    format!("dependency cycle: {}", names.join(" → ")),
                    format!("`{}` waits for `{}`", names[0], names[1]),
                )
                .with_help(if implicit {
                    "no order can satisfy a cycle; part of it is the order pare adds itself (changes to one resource run in file order): remove a `depends_on` entry, or reorder the recommendations in the file"
                } else {
                    "no order can satisfy a cycle; remove one of these `depends_on` entries"
                });
                for (k, sp) in spans.iter().enumerate().skip(1) {
                    d.with_label(*sp, format!("`{}` waits for `{}`", names[k], names[k + 1]));
                }
                d
            })
            .collect()
    }

    /// A cycle within one strongly connected component, starting at its first
    /// node in file order and following "depends on" edges.
    fn cycle_through(&self, scc: &[NodeIndex]) -> Vec<NodeIndex> {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = scc[0];
        // Depth-first along "depends on" (incoming edges), deterministic by index.
        let mut path = vec![start];
        let mut on_path: BTreeSet<NodeIndex> = BTreeSet::from([start]);
        let mut iters: Vec<Vec<NodeIndex>> = vec![self.deps_in(start, &members)];
        while let Some(next_list) = iters.last_mut() {
            let Some(next) = next_list.pop() else {
                iters.pop();
                if let Some(n) = path.pop() {
                    on_path.remove(&n);
                }
                continue;
            };
            if next == start {
                return path;
            }
            if on_path.insert(next) {
                path.push(next);
                iters.push(self.deps_in(next, &members));
            }
        }
        scc.to_vec()
    }

    /// The recommendations `n` depends on, within `members`, highest index first (popped lowest first).
    fn deps_in(&self, n: NodeIndex, members: &BTreeSet<NodeIndex>) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Incoming)
            .filter(|m| members.contains(m))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.dedup();
        v
    }

    /// Waves: each recommendation in the first wave after all it waits for.
    /// Within a wave, file order. Call only on an acyclic graph.
    pub fn waves(&self) -> Vec<Vec<usize>> {
        let n = self.graph.node_count();
        let mut level = vec![0usize; n];
        for i in self.topological_order() {
            let l = self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
                .map(|p| level[p.index()] + 1)
                .max()
                .unwrap_or(0);
            level[i] = l;
        }
        let depth = level.iter().max().map_or(0, |m| m + 1);
        let mut waves = vec![Vec::new(); depth];
        for (i, l) in level.iter().enumerate() {
            waves[*l].push(i);
        }
        waves
    }

    /// A topological order that prefers file order among the ready ones (Kahn
    /// with a min-heap). Call only on an acyclic graph.
    pub fn topological_order(&self) -> Vec<usize> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let n = self.graph.node_count();
        let mut indegree = self.indegrees();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for m in self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            {
                indegree[m.index()] -= 1;
                if indegree[m.index()] == 0 {
                    ready.push(Reverse(m.index()));
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_chains_need_no_deep_stack() {
        // 20,000 recommendations, each depending on the one before, on a
        // test thread's small stack: nothing here may recurse per node.
        let mut text = String::from(
            "version: 1\nprovider: { sandbox: { seed: a.yaml } }\nrecommendations:\n  - { id: r0, action: autoscale, group: g, desired: 1 }\n",
        );
        for i in 1..20_000 {
            text.push_str(&format!(
                "  - {{ id: r{i}, action: autoscale, group: g, desired: 1, depends_on: [r{}] }}\n",
                i - 1
            ));
        }
        let loaded = crate::plan::load_str(std::path::Path::new("p.yaml"), "p.yaml", text).unwrap();
        let g = PlanGraph::from_depends_on(&loaded);
        assert!(g.cycles(&loaded).is_empty());
        assert_eq!(g.topological_order().len(), 20_000);
        assert_eq!(g.waves().len(), 20_000);
    }
}
