//! `storage`: change a volume's type, or delete it (after a snapshot by default).

use super::{Expansion, Facts, Savings, Step, named};
use crate::plan::Storage;
use crate::pricing::catalog;
use crate::provider::{Inventory, Op, Ref, Tags, VolumeSpec};
use crate::vocabulary::Risk;

pub fn expand(a: &Storage, inv: &Inventory, created: &Tags) -> Expansion {
    let Some(v) = inv.volume(&a.volume) else {
        if a.delete {
            return Expansion::NoChange {
                reason: format!(
                    "{} was not found: already deleted (or a wrong id)",
                    a.volume
                ),
            };
        }
        return Expansion::Missing;
    };
    let c = catalog();
    let cost_now = c.volume_month(&v.volume_type, v.size_gb, v.iops, v.throughput_mbps);
    let me = Ref::id(&v.id);
    if let Some(to) = a.to {
        let to = to.as_str();
        let same_iops = a.iops.is_none_or(|i| v.iops == Some(i));
        let same_tp = a
            .throughput_mbps
            .is_none_or(|t| v.throughput_mbps == Some(t));
        if v.volume_type == to && same_iops && same_tp {
            return Expansion::NoChange {
                reason: format!("{} is already {to}", v.id),
            };
        }
        if let Some(ready) = inv
            .volume_modified_at
            .get(&v.id)
            .and_then(|t| crate::clock::volume_cool_down(t))
        {
            return Expansion::Blocked {
                reason: format!(
                    "{} was modified at {}; AWS allows its next modification only six hours later, from {ready}",
                    v.id, inv.volume_modified_at[&v.id]
                ),
                help: format!("plan and apply this again after {ready}"),
            };
        }
        let iops = a.iops.or(if to == "gp3" { Some(3000) } else { None });
        let throughput = a
            .throughput_mbps
            .or(if to == "gp3" { Some(125) } else { None });
        let savings = match (cost_now, c.volume_month(to, v.size_gb, iops, throughput)) {
            (Some(now), Some(then)) => Savings::Usd(now - then),
            _ => Savings::Unknown(format!(
                "no catalog price for {} or {to} volumes",
                v.volume_type
            )),
        };
        return Expansion::Change {
            steps: vec![Step::new(
                Op::ModifyVolume { volume: me.clone(), volume_type: to.into(), iops, throughput_mbps: throughput },
                Op::ModifyVolume {
                    volume: me,
                    volume_type: v.volume_type.clone(),
                    iops: v.iops,
                    throughput_mbps: v.throughput_mbps,
                },
            )],
            facts: Facts {
                base_risk: Risk::Low,
                reasons: vec![
                    format!("changes {} from {} to {to} online, without detaching", named(&v.id, &v.tags), v.volume_type),
                    "AWS allows one modification per volume every 6 hours: the undo is possible only 6 hours after apply".into(),
                ],
                savings,
                replaced_by_step: None,
            },
        };
    }
    if let Some(i) = &v.attached_to {
        let who = inv
            .instance(i)
            .map_or_else(|| i.clone(), |inst| named(i, &inst.tags));
        return Expansion::Blocked {
            reason: format!("{} is attached to {who}; AWS refuses to delete an attached volume", v.id),
            help: "detach it first, or terminate the instance earlier in this plan (pare then orders the delete after it)".into(),
        };
    }
    let snapshot_cost = f64::from(v.size_gb) * c.extras.snapshot_gb_month;
    if a.snapshot {
        let recreate = VolumeSpec {
            snapshot: Ref::Created { created_by_step: 0 },
            volume_type: v.volume_type.clone(),
            size_gb: v.size_gb,
            iops: v.iops,
            throughput_mbps: v.throughput_mbps,
            zone: v.zone.clone(),
            tags: v.tags.clone(),
            client_token: None,
        };
        Expansion::Change {
            steps: vec![
                Step::keep(
                    Op::CreateSnapshot {
                        volume: me.clone(),
                        tags: created.clone(),
                    },
                    "the snapshot is kept",
                ),
                Step::new(
                    Op::DeleteVolume { volume: me },
                    Op::CreateVolume { spec: recreate },
                ),
            ],
            facts: Facts {
                base_risk: Risk::High,
                reasons: vec![format!(
                    "deletes {} ({} GB); a snapshot is kept to recreate it (${snapshot_cost:.2}/month)",
                    named(&v.id, &v.tags),
                    v.size_gb
                )],
                savings: cost_now.map_or_else(
                    || Savings::Unknown(format!("no catalog price for {} volumes", v.volume_type)),
                    |now| Savings::Usd(now - snapshot_cost),
                ),
                replaced_by_step: None,
            },
        }
    } else {
        Expansion::Change {
            steps: vec![Step::irreversible(
                Op::DeleteVolume { volume: me },
                "no snapshot (`snapshot: false`): the data is gone",
            )],
            facts: Facts {
                base_risk: Risk::Critical,
                reasons: vec![format!(
                    "deletes {} ({} GB) with no snapshot",
                    named(&v.id, &v.tags),
                    v.size_gb
                )],
                savings: cost_now.map_or_else(
                    || Savings::Unknown(format!("no catalog price for {} volumes", v.volume_type)),
                    Savings::Usd,
                ),
                replaced_by_step: None,
            },
        }
    }
}
