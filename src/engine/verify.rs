//! After a step, the resource is read back and checked: did the operation
//! do what it says? Also used to decide, after a crash, whether a step whose
//! outcome was never recorded took effect.

use crate::provider::{Inventory, Query};
use crate::vocabulary::{Attributes, InstanceState, Monitoring, Op, ResourceId};

/// The resources an op changes, for reading them back.
pub fn touched(op: &Op, created: Option<&str>) -> Vec<ResourceId> {
    op.touched(created)
}

pub fn query(op: &Op, created: Option<&str>) -> Query {
    Query {
        resources: touched(op, created),
        ..Query::default()
    }
}

/// Whether the read-back after `next` shows `op`'s effect too, so that `op`
/// (the step before it in its chain) need not be read back on its own: a new
/// instance type, then a start of the same instance, whose read-back sees
/// the type (nothing between them changes it).
pub fn read_back_by(op: Option<&Op>, next: &Op) -> bool {
    matches!(
        (op, next),
        (Some(Op::SetInstanceType { instance: a, .. }), Op::StartInstance { instance: b }) if a == b
    )
}

/// Whether `inv` (read after the op) shows the op's effect; `Err` says what differs.
pub fn effect_holds(op: &Op, created: Option<&str>, inv: &Inventory) -> Result<(), String> {
    let known = |r: &crate::provider::Ref| r.known().unwrap_or("").to_string();
    let instance = |id: &str| inv.instance(id).ok_or_else(|| format!("{id} is not there"));
    let check = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
    match op {
        Op::StopInstance { instance: i, .. } => {
            let x = instance(&known(i))?;
            check(
                x.state == InstanceState::Stopped,
                format!("{} is {}, not stopped", x.id, x.state.as_str()),
            )
        }
        Op::StartInstance { instance: i } => {
            let x = instance(&known(i))?;
            check(
                x.state == InstanceState::Running,
                format!("{} is {}, not running", x.id, x.state.as_str()),
            )
        }
        Op::SetInstanceType {
            instance: i,
            instance_type,
        } => {
            let x = instance(&known(i))?;
            check(
                &x.instance_type == instance_type,
                format!("{} is {}, not {instance_type}", x.id, x.instance_type),
            )
        }
        Op::TerminateInstance { instance: i } => match inv.instance(&known(i)) {
            None => Ok(()),
            Some(x) => check(
                matches!(
                    x.state,
                    InstanceState::Terminated | InstanceState::ShuttingDown
                ),
                format!("{} is {}, not terminated", x.id, x.state.as_str()),
            ),
        },
        Op::SetMonitoring {
            instance: i,
            detailed,
        } => {
            let x = instance(&known(i))?;
            let want = if *detailed {
                Monitoring::Detailed
            } else {
                Monitoring::Basic
            };
            check(
                x.monitoring == want,
                format!("{} has {} monitoring", x.id, x.monitoring.as_str()),
            )
        }
        Op::LaunchInstance { spec } => {
            let Some(id) = created else {
                return Err("the launch returned no instance id".into());
            };
            let x = instance(id)?;
            let want = if spec.stopped {
                InstanceState::Stopped
            } else {
                InstanceState::Running
            };
            check(
                x.state == want && x.instance_type == spec.instance_type,
                format!("{id} is a {} {}", x.state.as_str(), x.instance_type),
            )?;
            for v in &spec.attach_volumes {
                check(
                    inv.volume(v).and_then(|v| v.attached_to.as_deref()) == Some(id),
                    format!("{v} is not attached to {id}"),
                )?;
            }
            for a in &spec.associate_addresses {
                check(
                    inv.address(a).and_then(|a| a.instance.as_deref()) == Some(id),
                    format!("{a} is not associated with {id}"),
                )?;
            }
            Ok(())
        }
        Op::ModifyVolume {
            volume,
            volume_type,
            ..
        } => {
            let v = inv
                .volume(&known(volume))
                .ok_or("the volume is not there")?;
            check(
                &v.volume_type == volume_type,
                format!("{} is {}, not {volume_type}", v.id, v.volume_type),
            )
        }
        Op::DeleteVolume { volume } => check(
            inv.volume(&known(volume)).is_none(),
            format!("{} still exists", known(volume)),
        ),
        Op::CreateSnapshot { .. } | Op::CreateVolume { .. } => {
            let Some(id) = created else {
                return Err("nothing was created".into());
            };
            check(
                inv.snapshot(id).is_some() || inv.volume(id).is_some(),
                format!("{id} is not there"),
            )
        }
        Op::AttachVolume {
            volume,
            instance: i,
        } => check(
            inv.volume(&known(volume))
                .and_then(|v| v.attached_to.clone())
                == Some(known(i)),
            format!("{} is not attached to {}", known(volume), known(i)),
        ),
        Op::DetachVolume { volume, .. } => check(
            inv.volume(&known(volume))
                .is_some_and(|v| v.attached_to.is_none()),
            format!("{} is still attached", known(volume)),
        ),
        Op::AssociateAddress {
            address,
            instance: i,
        } => check(
            inv.address(&known(address))
                .and_then(|a| a.instance.clone())
                == Some(known(i)),
            format!("{} is not associated with {}", known(address), known(i)),
        ),
        Op::DisassociateAddress { address, .. } => check(
            inv.address(&known(address))
                .is_some_and(|a| a.instance.is_none()),
            format!("{} is still associated", known(address)),
        ),
        Op::ReleaseAddress { address } => check(
            inv.address(&known(address)).is_none(),
            format!("{} still exists", known(address)),
        ),
        Op::DeleteSnapshot { snapshot } => check(
            inv.snapshot(&known(snapshot)).is_none(),
            format!("{} still exists", known(snapshot)),
        ),
        Op::UpdateGroup {
            group,
            min,
            max,
            desired,
        } => {
            let g = inv.group(group).ok_or("the group is not there")?;
            check(
                (g.min, g.max, g.desired) == (*min, *max, *desired),
                format!(
                    "{group} is min {}, max {}, desired {}",
                    g.min, g.max, g.desired
                ),
            )
        }
        Op::CreateImage { .. } | Op::WaitImageAvailable { .. } | Op::PurchaseReservation { .. } => {
            Ok(())
        }
    }
}

/// Compares a predicted after-state with the live one. Placeholder values
/// (`(new …)`, what did not exist at plan time) and pare's own run tags are
/// not compared. `Err` lists the attributes that differ.
pub fn matches_prediction(predicted: &Attributes, live: Option<&Attributes>) -> Result<(), String> {
    let deleted = predicted.get("state").and_then(|v| v.as_str()) == Some("deleted");
    let Some(live) = live else {
        return if deleted {
            Ok(())
        } else {
            Err("the resource is gone".into())
        };
    };
    if deleted {
        return Err("the resource still exists".into());
    }
    let mut diffs = Vec::new();
    for (k, want) in predicted {
        if want.to_string().contains("(new") {
            continue;
        }
        let got = live.get(k);
        let same = match (want, got) {
            (serde_json::Value::Object(w), Some(serde_json::Value::Object(g))) => {
                let strip = |m: &serde_json::Map<String, serde_json::Value>| {
                    m.iter()
                        .filter(|(k, _)| !k.starts_with("pare:run") && !k.starts_with("pare:step"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Vec<_>>()
                };
                strip(w) == strip(g)
            }
            (w, g) => Some(w) == g,
        };
        if !same {
            diffs.push(format!(
                "{k}: expected {want}, found {}",
                got.map_or("nothing".into(), |g| g.to_string())
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}
