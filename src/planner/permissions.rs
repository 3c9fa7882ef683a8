//! The permission check during `plan`: each IAM action the plan's changes
//! and undos need is asked once (EC2's `DryRun`), so a refused one blocks
//! the recommendations that need it before anyone approves the plan.

use crate::executor::resource_of;
use crate::plan::LoadedPlan;
use crate::provider::{Inventory, Provider};
use std::collections::BTreeMap;

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
        let (_, change) = crate::provider::iam::rec_actions(&rec.action);
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
