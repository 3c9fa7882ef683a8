//! `config`: fix a wasteful setting (detailed monitoring, an idle address, an old snapshot).

use super::{Expansion, Facts, Savings, Step, named};
use crate::plan::{Config, ConfigFix};
use crate::pricing::catalog;
use crate::provider::{InstanceState, Inventory, Monitoring, Op, Ref};
use crate::vocabulary::Risk;

pub fn expand(a: &Config, inv: &Inventory) -> Expansion {
    let target = a.target();
    let c = catalog();
    match a.fix {
        ConfigFix::DisableDetailedMonitoring => {
            let Some(i) = inv.instance(target) else {
                return Expansion::Missing;
            };
            if i.state == InstanceState::Terminated {
                return Expansion::NoChange {
                    reason: format!("{} is terminated", i.id),
                };
            }
            if i.monitoring == Monitoring::Basic {
                return Expansion::NoChange {
                    reason: format!("{} already has basic monitoring", i.id),
                };
            }
            let me = Ref::id(&i.id);
            Expansion::Change {
                steps: vec![Step::new(
                    Op::SetMonitoring {
                        instance: me.clone(),
                        detailed: false,
                    },
                    Op::SetMonitoring {
                        instance: me,
                        detailed: true,
                    },
                )],
                facts: Facts {
                    base_risk: Risk::Low,
                    reasons: vec![format!(
                        "{} keeps 5-minute metrics instead of 1-minute ones",
                        named(&i.id, &i.tags)
                    )],
                    savings: Savings::Usd(c.extras.detailed_monitoring_instance_month),
                    replaced_by_step: None,
                },
            }
        }
        ConfigFix::ReleaseAddress => {
            let Some(addr) = inv.address(target) else {
                return Expansion::NoChange {
                    reason: format!("{target} was not found: already released (or a wrong id)"),
                };
            };
            if let Some(i) = &addr.instance {
                return Expansion::Blocked {
                    reason: format!("{} ({}) is associated with {i}", addr.allocation_id, addr.public_ip),
                    help: "releasing it would take the instance's public address; disassociate it first".into(),
                };
            }
            Expansion::Change {
                steps: vec![Step::irreversible(
                    Op::ReleaseAddress {
                        address: Ref::id(&addr.allocation_id),
                    },
                    "a released address returns to AWS's pool and cannot be claimed back",
                )],
                facts: Facts {
                    base_risk: Risk::Low,
                    reasons: vec![format!(
                        "releases {} ({}), associated with nothing",
                        addr.allocation_id, addr.public_ip
                    )],
                    savings: Savings::Usd(c.extras.idle_address_hour * c.meta.hours_per_month),
                    replaced_by_step: None,
                },
            }
        }
        ConfigFix::DeleteSnapshot => {
            let Some(s) = inv.snapshot(target) else {
                return Expansion::NoChange {
                    reason: format!("{target} was not found: already deleted (or a wrong id)"),
                };
            };
            if let Some(img) = inv.image_using(&s.id) {
                return Expansion::Blocked {
                    reason: format!("{} backs image {}", s.id, img.id),
                    help: "deregister the image first, or keep the snapshot".into(),
                };
            }
            Expansion::Change {
                steps: vec![Step::irreversible(
                    Op::DeleteSnapshot {
                        snapshot: Ref::id(&s.id),
                    },
                    "a deleted snapshot cannot be recovered",
                )],
                facts: Facts {
                    base_risk: Risk::Low,
                    reasons: vec![format!(
                        "deletes {} ({} GB)",
                        named(&s.id, &s.tags),
                        s.size_gb
                    )],
                    savings: Savings::Usd(f64::from(s.size_gb) * c.extras.snapshot_gb_month),
                    replaced_by_step: None,
                },
            }
        }
    }
}
