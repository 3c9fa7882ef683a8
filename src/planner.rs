//! Plan + live state → what will happen: steps, order, risk, savings.
//!
//! The planner reads every resource the plan names in one batched describe,
//! adds the implicit ordering edges, then walks the recommendations in a
//! deterministic topological order. Each one is expanded against a working
//! copy of the account on which the earlier ones have already been simulated,
//! so two recommendations on one resource see each other's effects, and the
//! predicted after-state is what the provider's own rules produce.

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::executor::{self, Expansion, Savings, Step, resource_of};
use crate::graph::PlanGraph;
use crate::plan::{Action, LoadedPlan, Recommendation};
use crate::provider::{IdMode, Inventory, Op, Provider, ProviderError, Query, Ref, ResourceId};
use crate::risk;
use crate::vocabulary::Risk;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// A recommendation's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Change,
    NoChange,
    Blocked,
}

pub use crate::vocabulary::{Attributes, fingerprint, hex, rename_ids, resolve};

/// One recommendation, planned.
#[derive(Debug, Clone)]
pub struct PlannedRec {
    pub id: String,
    pub action: &'static str,
    /// The resource it changes (for `reserve`, the instance type).
    pub resource: String,
    pub resource_kind: &'static str,
    /// The resource's Name tag, if any.
    pub name: Option<String>,
    pub status: Status,
    /// Why nothing changes, for `no_change`.
    pub note: Option<String>,
    pub risk: Option<Risk>,
    pub risk_reasons: Vec<String>,
    pub reversible: bool,
    pub savings: Savings,
    /// `declared` (in the plan) or `catalog`.
    pub savings_source: &'static str,
    pub depends_on: Vec<String>,
    /// Ordering pare added, with why.
    pub implicit_after: Vec<(String, String)>,
    /// Why it is blocked, each with what to do.
    pub blocked_by: Vec<(String, String)>,
    pub before: Option<Attributes>,
    pub after: Option<Attributes>,
    pub steps: Vec<Step>,
    pub duration: Duration,
}

/// Counts and totals over the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub recommendations: usize,
    pub changes: usize,
    pub no_change: usize,
    pub blocked: usize,
    pub by_action: BTreeMap<&'static str, usize>,
    pub risk: BTreeMap<&'static str, usize>,
    pub irreversible: usize,
    pub monthly_savings_usd: f64,
    /// Changes whose savings are unknown (not counted in the total).
    pub savings_unknown: usize,
    pub estimated_duration_s: u64,
    pub parallelism: usize,
    pub steps: usize,
    /// Cloud calls for the steps: fewer than steps when steps of one kind on
    /// many instances go in one call.
    pub calls: usize,
}

/// The whole plan, ready to preview, save or apply.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan_path: String,
    pub plan_sha256: String,
    pub name: Option<String>,
    pub provider: &'static str,
    pub recs: Vec<PlannedRec>,
    /// Waves of the changes, by index into `recs`, each in file order.
    pub waves: Vec<Vec<usize>>,
    pub summary: Summary,
    /// sha256 of each named resource's attributes as observed ("absent" if missing).
    pub fingerprints: BTreeMap<String, String>,
    /// Each named resource's attributes as observed (`None` if missing).
    pub observed: BTreeMap<String, Option<Attributes>>,
    /// The plan's provider block.
    pub provider_spec: crate::plan::Provider,
    /// What the price figures are based on.
    pub catalog: String,
    pub max_changes: usize,
}

/// Why planning failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("{} in {}", crate::plan::load::count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
    #[error("reading the account failed: {0}")]
    #[diagnostic(
        code(plan::provider_error),
        help("check the provider's credentials and endpoint, then plan again")
    )]
    Provider(#[from] ProviderError),
}

/// The query that reads everything a plan names.
pub fn query(loaded: &LoadedPlan) -> Query {
    let mut q = Query::default();
    for rec in &loaded.plan.recommendations {
        if let Some(r) = resource_of(rec) {
            q.resources.push(r);
        }
        match &rec.action {
            Action::Reserve(a) => q.offerings.push(executor::reserve_query(a)),
            Action::Rightsize(a) => q.instance_types.push(a.to.clone()),
            // What hangs off an instance goes with it or moves with it.
            Action::Terminate(_) | Action::Spot(_) => q.attachments = true,
            _ => {}
        }
    }
    q.resources.sort();
    q.resources.dedup();
    q.offerings.sort();
    q.offerings.dedup();
    q.instance_types.sort();
    q.instance_types.dedup();
    q
}

/// Plans `loaded` against `provider`.
pub async fn plan(
    loaded: &LoadedPlan,
    graph: PlanGraph,
    config: &Config,
    provider: &dyn Provider,
) -> Result<Planned, PlanError> {
    let started = std::time::Instant::now();
    let observed = provider.describe(&query(loaded)).await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "described the named resources"
    );
    let denied = permissions(loaded, &observed, provider).await;
    let started = std::time::Instant::now();
    let planned = plan_with(loaded, graph, config, provider, observed, &denied);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
    planned
}

/// IAM actions refused, with the cloud's words.
pub type Denied = BTreeMap<&'static str, String>;

/// Asks the provider, once per IAM action the plan's changes and undos
/// need, whether it is allowed (EC2's `DryRun`): the refused ones, to block
/// the recommendations that need them before anyone approves the plan.
pub async fn permissions(
    loaded: &LoadedPlan,
    observed: &Inventory,
    provider: &dyn Provider,
) -> Denied {
    let mut asked: BTreeMap<&'static str, ()> = BTreeMap::new();
    let mut denied = Denied::new();
    for rec in &loaded.plan.recommendations {
        let (_, change) = crate::iam::rec_actions(&rec.action);
        for action in change {
            if asked.insert(action, ()).is_some() {
                continue;
            }
            match provider
                .may(action, resource_of(rec).as_ref(), observed)
                .await
            {
                crate::provider::Permission::Allowed => {
                    tracing::debug!("permission check: {action} allowed")
                }
                crate::provider::Permission::Denied(why) => {
                    denied.insert(action, why);
                }
                crate::provider::Permission::Unchecked(why) => {
                    tracing::info!("permission check: {action} not checked: {why}")
                }
            }
        }
    }
    denied
}

/// Most steps the engine sends to the cloud in one call.
pub const BATCH: usize = 1000;

/// Plans against an inventory already read; `denied` are the IAM actions
/// the permission check saw refused.
pub fn plan_with(
    loaded: &LoadedPlan,
    mut graph: PlanGraph,
    config: &Config,
    provider: &dyn Provider,
    observed: Inventory,
    denied: &Denied,
) -> Result<Planned, PlanError> {
    let recs = &loaded.plan.recommendations;
    let mut diags = Vec::new();

    let mut working = observed.clone();
    working.id_mode = IdMode::Placeholder;

    add_implicit_edges(recs, &observed, &mut graph);
    diags.extend(graph.cycles(loaded));
    if !diags.is_empty() {
        return Err(PlanError::Invalid(diags));
    }

    let plan_name = loaded.plan.name.clone().unwrap_or_else(|| "unnamed".into());
    // Resource id → the recommendation whose undo needs it.
    let mut undo_needs: HashMap<String, String> = HashMap::new();
    let mut planned: Vec<Option<PlannedRec>> = vec![None; recs.len()];
    for i in graph.topological_order() {
        let rec = &recs[i];
        let resource = resource_of(rec);
        let tags = executor::creation_tags(&plan_name, &rec.id);
        let expansion = executor::expand(rec, &working, &tags);
        // Missing resources are plan errors, located at the field that names them.
        let expansion = match expansion {
            // It exists, but an earlier recommendation of this plan removes it.
            Expansion::Missing
                if resource
                    .as_ref()
                    .is_some_and(|r| observed.attributes(r).is_some()) =>
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
        if let Expansion::Missing = expansion {
            let r = resource
                .clone()
                .expect("only resource actions report missing");
            diags.push(
                Diagnostic::new(
                    "plan::missing-resource",
                    &loaded.source,
                    rec.spans.resource,
                    format!(
                        "{} {} does not exist in the {} account ({})",
                        r.kind(),
                        r.id(),
                        provider.name(),
                        observed.region
                    ),
                    "not found",
                )
                .with_help("check the id; `pare inventory PLAN` lists what pare sees"),
            );
            continue;
        }
        let before = resource
            .as_ref()
            .and_then(|r| working.attributes(r))
            .or_else(|| reserve_attrs(rec, &working));
        let rec_tags = resource.as_ref().and_then(|r| resource_tags(&working, r));
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
            implicit_after: graph
                .implicit_predecessors(i)
                .into_iter()
                .map(|(j, why)| (recs[j].id.clone(), why))
                .collect(),
            blocked_by: Vec::new(),
            before: before.clone(),
            after: before,
            steps: Vec::new(),
            duration: Duration::ZERO,
        };
        match expansion {
            Expansion::Missing => unreachable!("handled above"),
            Expansion::NoChange { reason } => p.note = Some(reason),
            Expansion::Blocked { reason, help } => {
                p.status = Status::Blocked;
                p.blocked_by.push((reason, help));
            }
            Expansion::Change { steps, facts } => {
                let a = risk::assess(&facts, &steps, rec_tags.as_ref());
                p.risk = Some(a.risk);
                p.risk_reasons = a.reasons;
                p.reversible = a.reversible;
                p.savings = match rec.savings_monthly_usd {
                    Some(declared) => {
                        p.savings_source = "declared";
                        Savings::Usd(declared)
                    }
                    None => facts.savings.clone(),
                };
                p.duration = steps.iter().map(|s| provider.estimate(&s.op)).sum();
                let empty = crate::provider::Tags::new();
                let mut touched = vec![risk::Touched {
                    label: String::new(),
                    how: None,
                    tags: rec_tags.as_ref().unwrap_or(&empty),
                }];
                let moved = touched_by_change(&steps, resource.as_ref(), &working);
                for (r, how) in &moved {
                    if let Some(tags) = tags_of(&working, r) {
                        touched.push(risk::Touched {
                            label: label(r, tags),
                            how: Some(how.clone()),
                            tags,
                        });
                    }
                }
                let mut blocks =
                    risk::policy_blocks(&rec.id, a.risk, &touched, config, &loaded.plan.approvals);
                for action in crate::iam::rec_actions(&rec.action).1 {
                    if let Some(why) = denied.get(action) {
                        blocks.push((
                            format!("missing IAM permission `{action}`: the dry run was refused ({why})"),
                            "grant it to the identity pare runs as (`pare iam-policy PLAN` prints every permission the plan needs, its undo included), then plan again".into(),
                        ));
                    }
                }
                if !a.reversible
                    && let Some(other) = resource.as_ref().and_then(|r| undo_needs.get(r.id()))
                {
                    blocks.push((
                        format!(
                            "the undo of `{other}` needs {}, which this irreversible change would destroy",
                            p.resource
                        ),
                        format!("run `{}` in a later plan, once `{other}` is final", rec.id),
                    ));
                }
                p.steps = steps;
                if !blocks.is_empty() {
                    p.status = Status::Blocked;
                    p.blocked_by = blocks;
                } else {
                    match simulate(&p.steps, &mut working) {
                        Ok(created) => {
                            p.status = Status::Change;
                            for id in needed_by_undo(&p.steps, &created) {
                                undo_needs.entry(id).or_insert_with(|| rec.id.clone());
                            }
                            let target = match facts.replaced_by_step {
                                Some(k) => {
                                    created.get(k).cloned().flatten().map(ResourceId::Instance)
                                }
                                None => resource.clone(),
                            };
                            p.after = match &target {
                                Some(r) => working.attributes(r).or_else(|| Some(gone(r))),
                                None => reserve_attrs(rec, &working),
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
            }
        }
        planned[i] = Some(p);
    }
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.primary.span.offset);
        return Err(PlanError::Invalid(diags));
    }
    let recs_out: Vec<PlannedRec> = planned
        .into_iter()
        .map(|p| p.expect("every recommendation planned"))
        .collect();

    let is_change: Vec<bool> = recs_out
        .iter()
        .map(|p| p.status == Status::Change)
        .collect();
    let waves: Vec<Vec<usize>> = graph
        .waves()
        .into_iter()
        .map(|w| w.into_iter().filter(|&i| is_change[i]).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect();
    let durations: Vec<Duration> = recs_out
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
    let mut durations = durations;
    let mut calls: usize = recs_out
        .iter()
        .filter(|p| p.status == Status::Change)
        .map(|p| p.steps.len())
        .sum();
    for wave in &waves {
        let mut groups: HashMap<Vec<(&'static str, bool)>, usize> = HashMap::new();
        for &i in wave {
            let keys: Option<Vec<(&'static str, bool)>> =
                recs_out[i].steps.iter().map(|s| s.op.batch_key()).collect();
            let Some(keys) = keys.filter(|k| !k.is_empty()) else {
                continue;
            };
            let n = groups.entry(keys).or_default();
            if !n.is_multiple_of(config.batch_size.max(1)) {
                durations[i] = Duration::ZERO;
                calls -= recs_out[i].steps.len();
            }
            *n += 1;
        }
    }
    let estimated = graph.schedule_length(&durations, config.parallelism);

    let mut fingerprints = BTreeMap::new();
    let mut observed_attrs = BTreeMap::new();
    for rec in recs {
        if let Some(r) = resource_of(rec) {
            let key = format!("{}:{}", r.kind(), r.id());
            let attrs = observed.attributes(&r);
            fingerprints.insert(key.clone(), fingerprint(attrs.as_ref()));
            observed_attrs.insert(key, attrs);
        }
    }
    let mut summary = summarise(&recs_out, estimated, config.parallelism);
    summary.calls = calls;
    Ok(Planned {
        plan_path: loaded.path.display().to_string(),
        plan_sha256: hex(&Sha256::digest(loaded.source.text.as_bytes())),
        name: loaded.plan.name.clone(),
        provider: provider.name(),
        recs: recs_out,
        waves,
        summary,
        fingerprints,
        observed: observed_attrs,
        provider_spec: loaded.plan.provider.clone(),
        catalog: crate::pricing::catalog().describe(),
        max_changes: config.max_changes,
    })
}

fn summarise(recs: &[PlannedRec], estimated: Duration, parallelism: usize) -> Summary {
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

/// Runs `steps` on `inv`, resolving references to what earlier steps made.
/// On failure, undoes the steps that ran (by their inverses) and says which failed.
pub fn simulate(
    steps: &[Step],
    inv: &mut Inventory,
) -> Result<Vec<Option<String>>, (usize, crate::provider::CloudError)> {
    let mut created: Vec<Option<String>> = Vec::with_capacity(steps.len());
    for (k, step) in steps.iter().enumerate() {
        let op = resolve(&step.op, &created);
        match op
            .as_ref()
            .map_err(|e| e.clone())
            .and_then(|op| inv.apply(op))
        {
            Ok(outcome) => created.push(outcome.created),
            Err(e) => {
                for (j, done) in steps[..k].iter().enumerate().rev() {
                    if let crate::provider::Inverse::Op { op } = &done.inverse
                        && let Ok(op) = resolve(op, &created[..j + 1])
                    {
                        let _ = inv.apply(&op);
                    }
                }
                return Err((k, e));
            }
        }
    }
    Ok(created)
}

/// Everything a change's steps (and their undos) touch besides its own
/// resource, and how, for the protection check: terminating an instance
/// detaches its volumes and disassociates its addresses; a replacement
/// attaches and associates them; any other id a step names is changed.
fn touched_by_change(
    steps: &[Step],
    own: Option<&ResourceId>,
    inv: &Inventory,
) -> Vec<(ResourceId, String)> {
    let mut out: Vec<(ResourceId, String)> = Vec::new();
    let mut add = |r: ResourceId, how: &str| {
        if Some(&r) != own && !r.id().is_empty() && !out.iter().any(|(x, _)| *x == r) {
            out.push((r, how.to_string()));
        }
    };
    let ops = steps.iter().flat_map(|s| {
        std::iter::once(&s.op).chain(match &s.inverse {
            crate::provider::Inverse::Op { op } => Some(op),
            _ => None,
        })
    });
    for op in ops {
        match op {
            Op::TerminateInstance { instance } => {
                if let Some(i) = instance.known() {
                    for v in inv.attached_volumes(i) {
                        let how = if v.delete_on_termination {
                            "deletes (with its instance)"
                        } else {
                            "detaches"
                        };
                        add(ResourceId::Volume(v.id.clone()), how);
                    }
                    for a in inv.associated_addresses(i) {
                        add(
                            ResourceId::Address(a.allocation_id.clone()),
                            "disassociates",
                        );
                    }
                }
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    "terminates",
                );
            }
            Op::LaunchInstance { spec } => {
                for v in &spec.attach_volumes {
                    add(ResourceId::Volume(v.clone()), "attaches");
                }
                for a in &spec.associate_addresses {
                    add(ResourceId::Address(a.clone()), "associates");
                }
            }
            Op::AttachVolume { volume, instance } | Op::DetachVolume { volume, instance } => {
                let how = if matches!(op, Op::AttachVolume { .. }) {
                    ("attaches", "attaches a volume to")
                } else {
                    ("detaches", "detaches a volume from")
                };
                add(
                    ResourceId::Volume(volume.known().unwrap_or("").into()),
                    how.0,
                );
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    how.1,
                );
            }
            Op::AssociateAddress { address, instance }
            | Op::DisassociateAddress { address, instance } => {
                let how = if matches!(op, Op::AssociateAddress { .. }) {
                    ("associates", "associates an address with")
                } else {
                    ("disassociates", "disassociates an address from")
                };
                add(
                    ResourceId::Address(address.known().unwrap_or("").into()),
                    how.0,
                );
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    how.1,
                );
            }
            other => {
                for r in other.touched(None) {
                    add(r, "changes");
                }
            }
        }
    }
    out
}

/// A resource's tags in `inv`, if it is there.
fn tags_of<'a>(inv: &'a Inventory, r: &ResourceId) -> Option<&'a crate::provider::Tags> {
    match r {
        ResourceId::Instance(id) => inv.instance(id).map(|x| &x.tags),
        ResourceId::Volume(id) => inv.volume(id).map(|x| &x.tags),
        ResourceId::Snapshot(id) => inv.snapshot(id).map(|x| &x.tags),
        ResourceId::Address(id) => inv.address(id).map(|x| &x.tags),
        ResourceId::Group(id) => inv.group(id).map(|x| &x.tags),
    }
}

/// "volume vol-0a1b… (data)".
fn label(r: &ResourceId, tags: &crate::provider::Tags) -> String {
    let base = format!("{} {}", r.kind(), crate::vocabulary::words::clean(r.id()));
    match tags.get("Name") {
        Some(n) => format!("{base} ({})", crate::vocabulary::words::clean(n)),
        None => base,
    }
}

fn resource_tags(inv: &Inventory, r: &ResourceId) -> Option<crate::provider::Tags> {
    match r {
        ResourceId::Instance(id) => inv.instance(id).map(|x| x.tags.clone()),
        ResourceId::Volume(id) => inv.volume(id).map(|x| x.tags.clone()),
        ResourceId::Snapshot(id) => inv.snapshot(id).map(|x| x.tags.clone()),
        ResourceId::Address(id) => inv.address(id).map(|x| x.tags.clone()),
        ResourceId::Group(id) => inv.group(id).map(|x| x.tags.clone()),
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

/// The ids an undo would need to exist: every known ref of the inverses,
/// and the volumes and addresses a relaunch re-attaches.
fn needed_by_undo(steps: &[Step], created: &[Option<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for s in steps {
        let crate::provider::Inverse::Op { op } = &s.inverse else {
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

/// The planner's ordering rules beyond `depends_on` (SPEC section 2).
fn add_implicit_edges(recs: &[Recommendation], observed: &Inventory, graph: &mut PlanGraph) {
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
    let mut pairs: BTreeSet<(usize, usize, &str)> = BTreeSet::new();
    for (r, idx) in &owners {
        for (a, &i) in idx.iter().enumerate() {
            for &j in &idx[a + 1..] {
                pairs.insert((i.min(j), i.max(j), r));
            }
        }
    }
    for (i, j, r) in pairs {
        if !graph.has_edge_between(i, j) {
            graph.add_implicit(i, j, format!("both touch {r}; file order"));
        }
    }
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
