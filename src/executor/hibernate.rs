//! `hibernate`: stop the instance, hibernating it by default.

use super::{Expansion, Facts, Step, monthly, named, unknown_price};
use crate::plan::{Hibernate, HibernateMode};
use crate::provider::{InstanceState, Inventory, Op, Ref};
use crate::vocabulary::Risk;

pub fn expand(a: &Hibernate, inv: &Inventory) -> Expansion {
    let Some(i) = inv.instance(&a.instance) else {
        return Expansion::Missing;
    };
    let hibernate = a.mode == HibernateMode::Hibernate;
    match i.state {
        InstanceState::Stopped => {
            return Expansion::NoChange {
                reason: format!("{} is already stopped", i.id),
            };
        }
        InstanceState::Terminated | InstanceState::ShuttingDown => {
            return Expansion::Blocked {
                reason: format!("{} is {}", i.id, i.state.as_str()),
                help: "remove this recommendation".into(),
            };
        }
        InstanceState::Running => {}
        other => {
            return Expansion::Blocked {
                reason: format!("{} is {}", i.id, other.as_str()),
                help: "plan again once the instance is running or stopped".into(),
            };
        }
    }
    if hibernate && !i.hibernation {
        return Expansion::Blocked {
            reason: format!("{} does not have hibernation configured", named(&i.id, &i.tags)),
            help: "use `mode: stop` for a plain stop (memory is lost); hibernation can only be enabled at launch".into(),
        };
    }
    let me = Ref::id(&i.id);
    let how = if hibernate { "hibernates" } else { "stops" };
    Expansion::Change {
        steps: vec![Step::new(
            Op::StopInstance {
                instance: me.clone(),
                hibernate,
            },
            Op::StartInstance { instance: me },
        )],
        facts: Facts {
            base_risk: Risk::Medium,
            reasons: vec![format!(
                "{how} running {}: it serves nothing until started again",
                named(&i.id, &i.tags)
            )],
            savings: monthly(crate::pricing::catalog().hourly(&i.instance_type), || {
                unknown_price(&i.instance_type)
            }),
            replaced_by_step: None,
        },
    }
}
