//! `terminate`: image the instance (by default), then terminate it.

use super::{Expansion, Facts, Savings, Step, monthly, named, unknown_price};
use crate::plan::{Backup, Terminate};
use crate::provider::{InstanceState, Inventory, LaunchSpec, Op, Ref, Tags};
use crate::vocabulary::Risk;

pub fn expand(a: &Terminate, inv: &Inventory, created: &Tags) -> Expansion {
    let Some(i) = inv.instance(&a.instance) else {
        // Terminated instances vanish from the API after a while: gone is done.
        return Expansion::NoChange {
            reason: format!(
                "{} was not found: already terminated and gone (or a wrong id)",
                a.instance
            ),
        };
    };
    if matches!(
        i.state,
        InstanceState::Terminated | InstanceState::ShuttingDown
    ) {
        return Expansion::NoChange {
            reason: format!("{} is already {}", a.instance, i.state.as_str()),
        };
    }
    let me = Ref::id(&i.id);
    let running = i.state == InstanceState::Running;
    let savings = if running {
        monthly(crate::pricing::catalog().hourly(&i.instance_type), || {
            unknown_price(&i.instance_type)
        })
    } else {
        Savings::Usd(0.0)
    };
    let (volumes, addresses) = super::hanging_off(inv, &i.id);
    let mut reasons = Vec::new();
    if !addresses.is_empty() {
        reasons.push(format!(
            "its Elastic IPs ({}) are disassociated; the undo associates them again",
            addresses.join(", ")
        ));
    }
    if !volumes.is_empty() {
        reasons.push(format!(
            "its data volumes ({}) stay, detached",
            volumes.join(", ")
        ));
    }
    match a.backup {
        Backup::Image => {
            reasons.insert(
                0,
                format!(
                    "terminates {}; an image is kept to relaunch it",
                    named(&i.id, &i.tags)
                ),
            );
            let relaunch = LaunchSpec {
                image: Ref::Created { created_by_step: 0 },
                instance_type: i.instance_type.clone(),
                zone: i.zone.clone(),
                lifecycle: i.lifecycle,
                max_price_usd_hour: None,
                hibernation: i.hibernation,
                monitoring: i.monitoring,
                tags: i.tags.clone(),
                stopped: !running,
                attach_volumes: volumes,
                associate_addresses: addresses,
                client_token: None,
            };
            Expansion::Change {
                steps: vec![
                    Step::keep(
                        Op::CreateImage {
                            instance: me.clone(),
                            tags: created.clone(),
                        },
                        "the backup image is kept",
                    ),
                    Step::keep(
                        Op::WaitImageAvailable {
                            image: Ref::Created { created_by_step: 0 },
                        },
                        "a wait",
                    ),
                    Step::new(
                        Op::TerminateInstance { instance: me },
                        Op::LaunchInstance { spec: relaunch },
                    ),
                ],
                facts: Facts {
                    base_risk: Risk::High,
                    reasons,
                    savings,
                    replaced_by_step: None,
                },
            }
        }
        Backup::None => {
            reasons.insert(
                0,
                format!(
                    "terminates {} with no backup (`backup: none`)",
                    named(&i.id, &i.tags)
                ),
            );
            Expansion::Change {
                steps: vec![Step::irreversible(
                    Op::TerminateInstance { instance: me },
                    "no backup image (`backup: none`): the instance and its root disk are gone",
                )],
                facts: Facts {
                    base_risk: Risk::Critical,
                    reasons,
                    savings,
                    replaced_by_step: None,
                },
            }
        }
    }
}
