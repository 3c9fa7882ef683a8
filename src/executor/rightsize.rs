//! `rightsize`: stop if running, set the type, start if it was running.

use super::{Expansion, Facts, Savings, Step, monthly, named, unknown_price};
use crate::plan::Rightsize;
use crate::pricing::{catalog, is_arm};
use crate::provider::{InstanceState, Inventory, Op, Ref};
use crate::vocabulary::Risk;

pub fn expand(a: &Rightsize, inv: &Inventory) -> Expansion {
    let Some(i) = inv.instance(&a.instance) else {
        return Expansion::Missing;
    };
    let arch = |t: &str| if is_arm(t) { "arm64" } else { "x86_64" };
    if i.instance_type == a.to {
        return Expansion::NoChange {
            reason: format!("{} is already {}", i.id, a.to),
        };
    }
    if matches!(
        i.state,
        InstanceState::Terminated | InstanceState::ShuttingDown
    ) {
        return Expansion::Blocked {
            reason: format!("{} is {}", i.id, i.state.as_str()),
            help: "remove this recommendation; a terminated instance cannot be resized".into(),
        };
    }
    if !inv.knows_type(&a.to) {
        return Expansion::Blocked {
            reason: format!("{} is not an instance type offered in {}", a.to, inv.region),
            help: "check the type's spelling and that the region offers it".into(),
        };
    }
    if arch(&i.instance_type) != arch(&a.to) {
        return Expansion::Blocked {
            reason: format!(
                "{} is {} but {} is {}: the instance's image would not boot",
                i.instance_type,
                arch(&i.instance_type),
                a.to,
                arch(&a.to)
            ),
            help: format!(
                "choose an {} type, or rebuild the image for {}",
                arch(&i.instance_type),
                arch(&a.to)
            ),
        };
    }
    let me = Ref::id(&i.id);
    let set = Op::SetInstanceType {
        instance: me.clone(),
        instance_type: a.to.clone(),
    };
    let unset = Op::SetInstanceType {
        instance: me.clone(),
        instance_type: i.instance_type.clone(),
    };
    let c = catalog();
    let (steps, reasons, savings) = match i.state {
        InstanceState::Running => (
            vec![
                Step::new(Op::StopInstance { instance: me.clone(), hibernate: false }, Op::StartInstance { instance: me.clone() }),
                Step::new(set, unset),
                Step::new(Op::StartInstance { instance: me.clone() }, Op::StopInstance { instance: me, hibernate: false }),
            ],
            vec![
                format!("changes {} from {} to {}", named(&i.id, &i.tags), i.instance_type, a.to),
                "the instance is running: it is stopped and started again (a few minutes of downtime)".to_string(),
            ],
            monthly(
                c.hourly(&i.instance_type).zip(c.hourly(&a.to)).map(|(old, new)| old - new),
                || unknown_price(if c.hourly(&i.instance_type).is_none() { &i.instance_type } else { &a.to }),
            ),
        ),
        InstanceState::Stopped => (
            vec![Step::new(set, unset)],
            vec![format!("changes stopped {} from {} to {}", named(&i.id, &i.tags), i.instance_type, a.to)],
            Savings::Usd(0.0),
        ),
        other => {
            return Expansion::Blocked {
                reason: format!("{} is {}", i.id, other.as_str()),
                help: "plan again once the instance is running or stopped".into(),
            };
        }
    };
    Expansion::Change {
        steps,
        facts: Facts {
            base_risk: Risk::Medium,
            reasons,
            savings,
            replaced_by_step: None,
        },
    }
}
