//! Plan + live state → what will happen: steps, order, risk, savings.
//!
//! The planner reads every resource the plan names in one batched describe,
//! adds the implicit ordering edges, then walks the recommendations in a
//! deterministic topological order. Each one is expanded against a working
//! copy of the account on which the earlier ones have already been simulated,
//! so two recommendations on one resource see each other's effects, and the
//! predicted after-state is what the provider's own rules produce.

mod order;
mod permissions;
mod protect;
mod summary;
mod walk;

pub use permissions::{Denied, permissions};

use crate::config::Config;
use crate::diagnostic::Diagnostic;
use crate::executor::{self, Savings, resource_of};
use crate::graph::PlanGraph;
use crate::plan::{Action, LoadedPlan};
use crate::provider::{Inventory, Provider, ProviderError, Query};
use crate::vocabulary::{Risk, Step};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use walk::Walk;

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
    /// The estimated time of each step.
    pub step_durations: Vec<Duration>,
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
    /// The plan's approvals, as reviewed with it.
    pub approvals: Vec<crate::plan::Approval>,
    /// The account the provider acted in when planned (AWS's id), if it has one.
    pub account: Option<String>,
}

/// Why planning failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    #[error("{} in {}", crate::diagnostic::count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
    #[error("reading the account failed: {0}")]
    #[diagnostic(
        code("plan::provider-error"),
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
    let account = provider.account().await?;
    let denied = permissions(loaded, &observed, provider).await;
    let started = std::time::Instant::now();
    let planned = plan_with(loaded, graph, config, provider, observed, &denied);
    tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "planned");
    planned.map(|p| Planned { account, ..p })
}

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
    order::add_implicit_edges(recs, &observed, &mut graph);
    let cycles = graph.cycles(loaded);
    if !cycles.is_empty() {
        return Err(PlanError::Invalid(cycles));
    }
    let mut walk = Walk::new(loaded, &graph, config, provider, &observed, denied);
    let mut diags = Vec::new();
    let mut planned: Vec<Option<PlannedRec>> = vec![None; recs.len()];
    for i in graph.topological_order() {
        match walk.plan(i) {
            Ok(p) => planned[i] = Some(p),
            Err(d) => diags.push(*d),
        }
    }
    if !diags.is_empty() {
        diags.sort_by_key(|d| d.primary.span.offset);
        return Err(PlanError::Invalid(diags));
    }
    let recs_out: Vec<PlannedRec> = planned.into_iter().flatten().collect();
    let (waves, summary) = summary::summarise(&recs_out, &graph, config);
    let mut fingerprints = BTreeMap::new();
    let mut observed_attrs = BTreeMap::new();
    // Every resource the plan named and everything read with them (the
    // volumes and addresses a terminate or a spot replacement moves): a
    // saved plan is stale if any of it changed.
    let mut named: Vec<crate::vocabulary::ResourceId> =
        recs.iter().filter_map(resource_of).collect();
    named.extend(observed.resource_ids());
    named.sort();
    named.dedup();
    for r in named {
        let attrs = observed.attributes(&r);
        fingerprints.insert(r.key(), fingerprint(attrs.as_ref()));
        observed_attrs.insert(r.key(), attrs);
    }
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
        approvals: loaded.plan.approvals.clone(),
        account: None,
    })
}

#[cfg(test)]
mod tests;
