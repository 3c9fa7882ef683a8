//! One recommendation at a time, in topological order: expand it against a
//! working copy of the account on which the earlier ones have already been
//! simulated, assess it, apply policy, and simulate its steps so the next
//! one sees its effects and the after-state is what the rules produce.

use super::permissions::Denied;
use super::protect::{label, tags_of, touched_by_change};
use super::{PlannedRec, Status};
use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::executor::{self, Expansion, Facts, Savings, resource_of};
use crate::graph::PlanGraph;
use crate::plan::{Action, LoadedPlan, Recommendation};
use crate::provider::{IdMode, Inventory, Provider};
use crate::risk;
use crate::vocabulary::{Attributes, Inverse, Op, Ref, ResourceId, Step, Tags, resolve};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The planner's walk over a plan.
pub(super) struct Walk<'a> {
    loaded: &'a LoadedPlan,
    graph: &'a PlanGraph,
    config: &'a Config,
    provider: &'a dyn Provider,
    observed: &'a Inventory,
    denied: &'a Denied,
    /// The account with the changes planned so far simulated on it.
    working: Inventory,
    plan_name: String,
    /// Resource id → the recommendation whose undo needs it.
    undo_needs: HashMap<String, String>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(
        loaded: &'a LoadedPlan,
        graph: &'a PlanGraph,
        config: &'a Config,
        provider: &'a dyn Provider,
        observed: &'a Inventory,
        denied: &'a Denied,
    ) -> Walk<'a> {
        let mut working = observed.clone();
        working.id_mode = IdMode::Placeholder;
        Walk {
            loaded,
            graph,
            config,
            provider,
            observed,
            denied,
            working,
            plan_name: loaded.plan.name.clone().unwrap_or_else(|| "unnamed".into()),
            undo_needs: HashMap::new(),
        }
    }

    /// Plans recommendation `i`; a resource that does not exist is a plan
    /// error, located at the field that names it.
    pub(super) fn plan(&mut self, i: usize) -> Result<PlannedRec, Box<Diagnostic>> {
        let recs = &self.loaded.plan.recommendations;
        let rec = &recs[i];
        let resource = resource_of(rec);
        let tags = executor::creation_tags(&self.plan_name, &rec.id);
        let expansion = match executor::expand(rec, &self.working, &tags) {
            // It exists, but an earlier recommendation of this plan removes it.
            Expansion::Missing
                if resource
                    .as_ref()
                    .is_some_and(|r| self.observed.attributes(r).is_some()) =>
            {
                Expansion::Blocked {
                    reason: format!(
                        "{} is removed by an earlier recommendation of this plan",
                        rec.action.resource()
                    ),
                    help: "drop one of the two recommendations".into(),
                }
            }
            other => other,
        };
        let before = resource
            .as_ref()
            .and_then(|r| self.working.attributes(r))
            .or_else(|| reserve_attrs(rec, &self.working));
        let rec_tags = resource
            .as_ref()
            .and_then(|r| tags_of(&self.working, r).cloned());
        let mut p = PlannedRec {
            id: rec.id.clone(),
            action: rec.action.name(),
            resource: rec.action.resource().to_string(),
            resource_kind: resource.as_ref().map_or("instance type", |r| r.kind()),
            name: rec_tags.as_ref().and_then(|t| t.get("Name").cloned()),
            status: Status::NoChange,
            note: None,
            risk: None,
            risk_reasons: Vec::new(),
            reversible: true,
            savings: Savings::Usd(0.0),
            savings_source: "catalog",
            depends_on: rec.depends_on.clone(),
            implicit_after: self
                .graph
                .implicit_predecessors(i)
                .into_iter()
                .map(|(j, why)| (recs[j].id.clone(), why))
                .collect(),
            blocked_by: Vec::new(),
            before: before.clone(),
            after: before,
            steps: Vec::new(),
            step_durations: Vec::new(),
            duration: Duration::ZERO,
        };
        match expansion {
            Expansion::Missing => return Err(Box::new(self.missing(rec, resource.as_ref()))),
            Expansion::NoChange { reason } => p.note = Some(reason),
            Expansion::Blocked { reason, help } => {
                p.status = Status::Blocked;
                p.blocked_by.push((reason, help));
            }
            Expansion::Change { steps, facts } => self.change(
                rec,
                &mut p,
                steps,
                facts,
                resource,
                rec_tags.unwrap_or_default(),
            ),
        }
        Ok(p)
    }

    /// "vol-… does not exist in the sandbox account (us-east-1)", at the field.
    fn missing(&self, rec: &Recommendation, resource: Option<&ResourceId>) -> Diagnostic {
        let (kind, id) =
            resource.map_or(("resource", rec.action.resource()), |r| (r.kind(), r.id()));
        Diagnostic::new(
            "plan::missing-resource",
            &self.loaded.source,
            rec.spans.resource,
            format!(
                "{kind} {id} does not exist in the {} account ({})",
                self.provider.name(),
                self.observed.region
            ),
            "not found",
        )
        .with_help("check the id; `pare inventory PLAN` lists what pare sees")
    }

    /// A change: its risk, savings and duration, what blocks it, and (if
    /// nothing does) its simulation on the working copy.
    fn change(
        &mut self,
        rec: &Recommendation,
        p: &mut PlannedRec,
        steps: Vec<Step>,
        facts: Facts,
        resource: Option<ResourceId>,
        rec_tags: Tags,
    ) {
        let a = risk::assess(&facts, &steps, Some(&rec_tags));
        p.risk = Some(a.risk);
        p.risk_reasons = a.reasons;
        p.risk_reasons.extend(self.age_reason(rec));
        p.reversible = a.reversible;
        p.savings = match rec.savings_monthly_usd {
            Some(declared) => {
                p.savings_source = "declared";
                Savings::Usd(declared)
            }
            None => facts.savings.clone(),
        };
        p.step_durations = steps
            .iter()
            .map(|s| self.provider.estimate(&s.op))
            .collect();
        p.duration = p.step_durations.iter().sum();
        let blocks = self.blocks(
            rec,
            &steps,
            resource.as_ref(),
            &rec_tags,
            a.risk,
            a.reversible,
        );
        p.steps = steps;
        if !blocks.is_empty() {
            p.status = Status::Blocked;
            p.blocked_by = blocks;
            return;
        }
        match self.working.simulate(&p.steps) {
            Ok(created) => {
                p.status = Status::Change;
                for id in needed_by_undo(&p.steps, &created) {
                    self.undo_needs.entry(id).or_insert_with(|| rec.id.clone());
                }
                let target = match facts.replaced_by_step {
                    Some(k) => created.get(k).cloned().flatten().map(ResourceId::Instance),
                    None => resource,
                };
                p.after = match &target {
                    Some(r) => self.working.attributes(r).or_else(|| Some(gone(r))),
                    None => reserve_attrs(rec, &self.working),
                };
            }
            Err((k, e)) => {
                p.status = Status::Blocked;
                p.blocked_by.push((
                    format!("step {} ({}) would fail: {e}", k + 1, p.steps[k].op.describe()),
                    "an earlier recommendation in this plan leaves the resource in a state this one cannot start from; reorder or split them".into(),
                ));
            }
        }
    }

    /// What blocks a change: policy (protected tags on anything it touches,
    /// approvals), a refused IAM permission, and destroying what an earlier
    /// change's undo needs.
    fn blocks(
        &self,
        rec: &Recommendation,
        steps: &[Step],
        resource: Option<&ResourceId>,
        rec_tags: &Tags,
        level: crate::vocabulary::Risk,
        reversible: bool,
    ) -> Vec<(String, String)> {
        let mut touched = vec![risk::Touched {
            label: String::new(),
            how: None,
            tags: rec_tags,
        }];
        for (r, how) in touched_by_change(steps, resource, &self.working) {
            if let Some(tags) = tags_of(&self.working, &r) {
                touched.push(risk::Touched {
                    label: label(&r, tags),
                    how: Some(how),
                    tags,
                });
            }
        }
        let mut blocks = risk::policy_blocks(
            &rec.id,
            level,
            &touched,
            self.config,
            &self.loaded.plan.approvals,
        );
        for action in crate::provider::iam::rec_actions(&rec.action).1 {
            if let Some(why) = self.denied.get(action) {
                blocks.push((
                    format!("missing IAM permission `{action}`: the dry run was refused ({why})"),
                    "grant it to the identity pare runs as (`pare iam-policy PLAN` prints every permission the plan needs, its undo included), then plan again".into(),
                ));
            }
        }
        blocks.extend(self.assumed_blocks(rec, resource));
        if !reversible && let Some(other) = resource.and_then(|r| self.undo_needs.get(r.id())) {
            blocks.push((
                format!(
                    "the undo of `{other}` needs {}, which this irreversible change would destroy",
                    rec.action.resource()
                ),
                format!("run `{}` in a later plan, once `{other}` is final", rec.id),
            ));
        }
        blocks
    }
}

impl Walk<'_> {
    /// An imported recommendation whose resource is no longer what it was
    /// measured as (another type, size or count) is blocked, naming both.
    fn assumed_blocks(
        &self,
        rec: &Recommendation,
        resource: Option<&ResourceId>,
    ) -> Vec<(String, String)> {
        let (Some(src), Some(r)) = (&rec.source, resource) else {
            return Vec::new();
        };
        let Some(attrs) = self.observed.attributes(r) else {
            return Vec::new();
        };
        let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        let show = |v: &Value| match v {
            Value::String(s) => crate::vocabulary::words::clean(s).into_owned(),
            other => other.to_string(),
        };
        let mut out = Vec::new();
        for (k, want) in &src.assumed {
            let have = attrs.get(k);
            if have.is_some_and(|h| same(h, want)) {
                continue;
            }
            out.push((
                format!(
                    "{} measured {} with {k} {}; it has {k} {} now",
                    src.service,
                    r.id(),
                    show(want),
                    have.map_or("(none)".to_string(), show)
                ),
                "the recommendation is out of date: import it again (`pare import`), or drop it"
                    .into(),
            ));
        }
        out
    }

    /// "… 20 days old …" when an imported recommendation is older than
    /// `max_recommendation_age_days`.
    fn age_reason(&self, rec: &Recommendation) -> Option<String> {
        let source = rec.source.as_ref()?;
        let Some(at) = source.refreshed_at.as_deref() else {
            return Some(
                "the recommendation's age is unknown (its source gives no refreshed_at): what it measured may have changed".into(),
            );
        };
        let then = crate::clock::parse_rfc3339(at)?;
        let Ok(age) = crate::clock::now().duration_since(then) else {
            return Some(format!(
                "the recommendation says it was refreshed in the future ({at}): its age is unknown"
            ));
        };
        let days = age.as_secs() / 86_400;
        (days > u64::from(self.config.max_recommendation_age_days)).then(|| {
            format!(
                "the recommendation is {days} days old (refreshed {at}), past max_recommendation_age_days = {}: what it measured may have changed",
                self.config.max_recommendation_age_days
            )
        })
    }
}

/// The attributes of a deleted resource.
fn gone(r: &ResourceId) -> Attributes {
    BTreeMap::from([
        ("id".to_string(), Value::from(r.id())),
        ("state".to_string(), Value::from("deleted")),
    ])
}

/// For `reserve`: how many matching reservations are active.
fn reserve_attrs(rec: &Recommendation, inv: &Inventory) -> Option<Attributes> {
    let Action::Reserve(a) = &rec.action else {
        return None;
    };
    let q = executor::reserve_query(a);
    let active: u32 = executor::active_reservations(&q, inv)
        .iter()
        .map(|r| r.count)
        .sum();
    Some(BTreeMap::from([
        ("instance_type".to_string(), Value::from(q.instance_type)),
        ("term".to_string(), Value::from(q.term)),
        ("payment".to_string(), Value::from(q.payment)),
        ("offering_class".to_string(), Value::from(q.offering_class)),
        (
            "scope".to_string(),
            Value::from(q.zone.unwrap_or_else(|| "regional".into())),
        ),
        ("active_reservations".to_string(), Value::from(active)),
    ]))
}

/// The ids an undo would need to exist: every known ref of the inverses,
/// and the volumes and addresses a relaunch re-attaches.
fn needed_by_undo(steps: &[Step], created: &[Option<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps {
        let Inverse::Op { op } = &s.inverse else {
            continue;
        };
        let Ok(mut op) = resolve(op, created) else {
            continue;
        };
        for r in op.refs_mut() {
            if let Ref::Id(id) = r {
                out.push(id.clone());
            }
        }
        if let Op::LaunchInstance { spec } = &op {
            out.extend(spec.attach_volumes.iter().cloned());
            out.extend(spec.associate_addresses.iter().cloned());
        }
    }
    out
}
