//! The eight actions, each turned into steps with their inverses.
//!
//! An executor looks at one recommendation and the resources as they will be
//! when it runs (the planner's working copy) and says: nothing to do, blocked
//! (why, and what to do), the resource is missing, or the ordered steps, each
//! with the inverse computed from the state just before it. Executors never
//! call a provider; they only read the inventory they are given.

mod autoscale;
mod config;
mod hibernate;
mod reserve;
mod rightsize;
mod spot;
mod storage;
mod terminate;

use crate::plan::{Action, Recommendation};
use crate::provider::{Inventory, ResourceId, Tags};
use crate::vocabulary::Risk;
pub use crate::vocabulary::Step;

pub use reserve::{active as active_reservations, query as reserve_query};

/// Monthly savings: a figure, or unknown with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Savings {
    Usd(f64),
    Unknown(String),
}

/// What feeds risk and savings for a change.
#[derive(Debug, Clone)]
pub struct Facts {
    pub base_risk: Risk,
    /// Why, in words (the base risk's reason first).
    pub reasons: Vec<String>,
    pub savings: Savings,
    /// For actions that replace the resource: the step that creates the replacement.
    pub replaced_by_step: Option<usize>,
}

/// What an executor decided.
#[derive(Debug, Clone)]
pub enum Expansion {
    /// The live resource already satisfies the recommendation.
    NoChange {
        reason: String,
    },
    /// It cannot be done as things are.
    Blocked {
        reason: String,
        help: String,
    },
    /// The resource does not exist (a plan error for actions that change it).
    Missing,
    Change {
        steps: Vec<Step>,
        facts: Facts,
    },
}

/// The resource a recommendation changes, if it changes one (reserve does not).
pub fn resource_of(rec: &Recommendation) -> Option<ResourceId> {
    use crate::plan::ConfigFix;
    let id = rec.action.resource().to_string();
    Some(match &rec.action {
        Action::Terminate(_) | Action::Rightsize(_) | Action::Hibernate(_) | Action::Spot(_) => {
            ResourceId::Instance(id)
        }
        Action::Storage(_) => ResourceId::Volume(id),
        Action::Autoscale(_) => ResourceId::Group(id),
        Action::Reserve(_) => return None,
        Action::Config(c) => match c.fix {
            ConfigFix::DisableDetailedMonitoring => ResourceId::Instance(id),
            ConfigFix::ReleaseAddress => ResourceId::Address(id),
            ConfigFix::DeleteSnapshot => ResourceId::Snapshot(id),
        },
    })
}

/// Tags put on everything pare creates, so it can be found again.
pub fn creation_tags(plan_name: &str, rec_id: &str) -> Tags {
    Tags::from([
        ("pare:plan".to_string(), plan_name.to_string()),
        ("pare:recommendation".to_string(), rec_id.to_string()),
    ])
}

/// Expands `rec` against `inv`. `created` tags go on anything it creates.
pub fn expand(rec: &Recommendation, inv: &Inventory, created: &Tags) -> Expansion {
    match &rec.action {
        Action::Terminate(a) => terminate::expand(a, inv, created),
        Action::Rightsize(a) => rightsize::expand(a, inv),
        Action::Hibernate(a) => hibernate::expand(a, inv),
        Action::Spot(a) => spot::expand(a, inv, created),
        Action::Reserve(a) => reserve::expand(a, inv),
        Action::Autoscale(a) => autoscale::expand(a, inv),
        Action::Storage(a) => storage::expand(a, inv, created),
        Action::Config(a) => config::expand(a, inv),
    }
}

fn monthly(hourly_diff: Option<f64>, why_unknown: impl FnOnce() -> String) -> Savings {
    match hourly_diff {
        Some(h) => Savings::Usd(h * crate::pricing::catalog().meta.hours_per_month),
        None => Savings::Unknown(why_unknown()),
    }
}

fn unknown_price(t: &str) -> String {
    format!("no catalog price for {t}")
}

/// The data volumes attached to an instance and the Elastic IPs associated
/// with it: what a replacement must take over, by id.
fn hanging_off(inv: &Inventory, instance: &str) -> (Vec<String>, Vec<String>) {
    // A delete-on-termination (root) volume goes with the instance; the
    // backup image recreates it, so it is not re-attached.
    let volumes = inv
        .attached_volumes(instance)
        .iter()
        .filter(|v| !v.delete_on_termination)
        .map(|v| v.id.clone())
        .collect();
    let addresses = inv
        .associated_addresses(instance)
        .iter()
        .map(|a| a.allocation_id.clone())
        .collect();
    (volumes, addresses)
}

/// "i-0a1b2c3d (web-1)" when the resource has a Name tag.
fn named(id: &str, tags: &Tags) -> String {
    match tags.get("Name") {
        Some(n) => format!("{id} ({n})"),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests;
