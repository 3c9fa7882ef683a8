//! `spot`: replace an on-demand instance with a spot one of the same type and zone.

use super::{Expansion, Facts, Savings, Step, named};
use crate::plan::Spot;
use crate::pricing::catalog;
use crate::provider::{InstanceState, Inventory, LaunchSpec, Lifecycle, Op, Ref, Tags};
use crate::vocabulary::Risk;

pub fn expand(a: &Spot, inv: &Inventory, created: &Tags) -> Expansion {
    let Some(i) = inv.instance(&a.instance) else {
        return Expansion::Missing;
    };
    if i.lifecycle == Lifecycle::Spot {
        return Expansion::NoChange {
            reason: format!("{} is already a spot instance", i.id),
        };
    }
    if matches!(
        i.state,
        InstanceState::Terminated | InstanceState::ShuttingDown
    ) {
        return Expansion::NoChange {
            reason: format!(
                "{} is {}: nothing left to move to spot (replaced already?)",
                i.id,
                i.state.as_str()
            ),
        };
    }
    if i.state != InstanceState::Running {
        return Expansion::Blocked {
            reason: format!("{} is {}, not running", i.id, i.state.as_str()),
            help: "spot replacement is for running instances; start it first or remove this recommendation".into(),
        };
    }
    let od = catalog().hourly(&i.instance_type);
    if let (Some(max), Some(od)) = (a.max_price_usd_hour, od)
        && max >= od
    {
        return Expansion::Blocked {
            reason: format!(
                "max_price_usd_hour {max} is not below the on-demand price {od} of {}",
                i.instance_type
            ),
            help: "set a lower maximum price, or leave the instance on demand".into(),
        };
    }
    let me = Ref::id(&i.id);
    let image = Ref::Created { created_by_step: 0 };
    let spot_instance = Ref::Created { created_by_step: 2 };
    let (volumes, addresses) = super::hanging_off(inv, &i.id);
    let mut spot_tags = i.tags.clone();
    spot_tags.extend(created.clone());
    // The engine tags what it creates with its run and step (to find it again
    // after a crash); the preview shows those tags too.
    spot_tags.insert("pare:run".into(), "(new run id)".into());
    spot_tags.insert(
        "pare:step".into(),
        format!(
            "{}/3",
            created
                .get("pare:recommendation")
                .map_or("", String::as_str)
        ),
    );
    let spot = LaunchSpec {
        image: image.clone(),
        instance_type: i.instance_type.clone(),
        zone: i.zone.clone(),
        lifecycle: Lifecycle::Spot,
        max_price_usd_hour: a.max_price_usd_hour,
        hibernation: false,
        monitoring: i.monitoring,
        tags: spot_tags,
        stopped: false,
        attach_volumes: Vec::new(),
        associate_addresses: Vec::new(),
        client_token: None,
    };
    let back = LaunchSpec {
        image: image.clone(),
        instance_type: i.instance_type.clone(),
        zone: i.zone.clone(),
        lifecycle: Lifecycle::OnDemand,
        max_price_usd_hour: None,
        hibernation: i.hibernation,
        monitoring: i.monitoring,
        tags: i.tags.clone(),
        stopped: false,
        attach_volumes: volumes.clone(),
        associate_addresses: addresses.clone(),
        client_token: None,
    };
    let mut steps = vec![
        Step::keep(
            Op::CreateImage {
                instance: me.clone(),
                tags: created.clone(),
            },
            "the image is kept",
        ),
        Step::keep(
            Op::WaitImageAvailable {
                image: image.clone(),
            },
            "a wait",
        ),
        Step::new(
            Op::LaunchInstance { spec: spot },
            Op::TerminateInstance {
                instance: spot_instance.clone(),
            },
        ),
        Step::new(
            Op::TerminateInstance { instance: me },
            Op::LaunchInstance { spec: back },
        ),
    ];
    for v in &volumes {
        steps.push(Step::new(
            Op::AttachVolume {
                volume: Ref::id(v),
                instance: spot_instance.clone(),
            },
            Op::DetachVolume {
                volume: Ref::id(v),
                instance: spot_instance.clone(),
            },
        ));
    }
    for a in &addresses {
        steps.push(Step::new(
            Op::AssociateAddress {
                address: Ref::id(a),
                instance: spot_instance.clone(),
            },
            Op::DisassociateAddress {
                address: Ref::id(a),
                instance: spot_instance.clone(),
            },
        ));
    }
    let savings = match (a.max_price_usd_hour, od) {
        (Some(max), Some(od)) => Savings::Usd((od - max) * catalog().meta.hours_per_month),
        (None, Some(_)) => {
            Savings::Unknown("spot prices vary; set max_price_usd_hour for a floor".into())
        }
        (_, None) => Savings::Unknown(super::unknown_price(&i.instance_type)),
    };
    Expansion::Change {
        steps,
        facts: Facts {
            base_risk: Risk::High,
            reasons: vec![
                format!(
                    "replaces {} with a spot instance: new id and private IP",
                    named(&i.id, &i.tags)
                ),
                "spot capacity can be reclaimed by AWS with two minutes' notice".into(),
            ],
            savings,
            replaced_by_step: Some(2),
        },
    }
}
