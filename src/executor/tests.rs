//! Each executor: change, no change and blocked; inverses checked by running
//! the steps and then their inverses on an inventory.

use super::*;
use crate::plan::*;
use crate::provider::fixtures;
use crate::provider::*;
use crate::vocabulary::resolve;
use std::collections::BTreeMap;

fn instance(id: &str, ty: &str, state: InstanceState) -> Instance {
    Instance {
        instance_type: ty.into(),
        state,
        tags: fixtures::named(&format!("name-{id}")),
        ..fixtures::instance(id)
    }
}

fn volume(id: &str, attached: Option<&str>) -> Volume {
    Volume {
        attached_to: attached.map(str::to_string),
        tags: fixtures::named("data"),
        ..fixtures::volume(id)
    }
}

const RUN: &str = "i-00000001";
const STOPPED: &str = "i-00000002";
const GONE: &str = "i-00000003";
const SPOT: &str = "i-00000004";
const HIB: &str = "i-00000005";

fn account() -> Inventory {
    let mut inv = Inventory::new("us-east-1");
    inv.insert_instance(instance(RUN, "m5.xlarge", InstanceState::Running));
    inv.insert_instance(instance(STOPPED, "m5.xlarge", InstanceState::Stopped));
    inv.insert_instance(instance(GONE, "m5.xlarge", InstanceState::Terminated));
    let mut spot = instance(SPOT, "c5.large", InstanceState::Running);
    spot.lifecycle = Lifecycle::Spot;
    inv.insert_instance(spot);
    let mut hib = instance(HIB, "m5.large", InstanceState::Running);
    hib.hibernation = true;
    hib.monitoring = Monitoring::Detailed;
    inv.insert_instance(hib);
    inv.insert_volume(volume("vol-00000001", Some(RUN)));
    inv.insert_volume(volume("vol-00000002", None));
    for id in ["snap-00000001", "snap-00000002"] {
        inv.snapshots.insert(id.into(), fixtures::snapshot(id));
    }
    inv.images.insert(
        "ami-00000001".into(),
        fixtures::image("ami-00000001", &["snap-00000002"]),
    );
    for (id, inst) in [
        ("eipalloc-00000001", None),
        ("eipalloc-00000002", Some(RUN)),
    ] {
        inv.addresses.insert(id.into(), fixtures::address(id, inst));
    }
    inv.auto_scaling_groups
        .insert("web".into(), fixtures::group("web", 2, 10, 4));
    inv.offerings.push(fixtures::offering("offer-1", 0.0614));
    inv.reindex();
    inv
}

fn rec(action: Action) -> Recommendation {
    Recommendation {
        id: "r".into(),
        reason: None,
        savings_monthly_usd: None,
        depends_on: vec![],
        source: None,
        action,
        spans: RecommendationSpans::default(),
    }
}

fn run(action: Action, inv: &Inventory) -> Expansion {
    expand(&rec(action), inv, &creation_tags("t", "r"))
}

fn steps(e: Expansion) -> (Vec<Step>, Facts) {
    match e {
        Expansion::Change { steps, facts } => (steps, facts),
        other => panic!("expected a change, got {other:?}"),
    }
}

fn ops(steps: &[Step]) -> Vec<&'static str> {
    steps.iter().map(|s| s.op.name()).collect()
}

fn no_change(e: Expansion) -> String {
    match e {
        Expansion::NoChange { reason } => reason,
        other => panic!("expected no change, got {other:?}"),
    }
}

fn blocked(e: Expansion) -> String {
    match e {
        Expansion::Blocked { reason, .. } => reason,
        other => panic!("expected blocked, got {other:?}"),
    }
}

/// Runs `steps` then their inverses, newest first, on a copy of `inv`;
/// returns (after apply, after rollback, old id → new id for recreated ones).
fn apply_and_undo(
    inv: &Inventory,
    steps: &[Step],
) -> (Inventory, Inventory, BTreeMap<String, String>) {
    let mut live = inv.clone();
    let created = live.simulate(steps).expect("steps apply");
    let applied = live.clone();
    let mut renamed = BTreeMap::new();
    // Seven hours later: AWS allows a volume's next modification only then.
    let later = crate::clock::now() + std::time::Duration::from_secs(7 * 3600);
    for (k, s) in steps.iter().enumerate().rev() {
        let Inverse::Op { op } = &s.inverse else {
            continue;
        };
        let op = resolve(op, &created).expect("inverse resolves");
        let outcome = live
            .apply_at(&op, later)
            .unwrap_or_else(|e| panic!("inverse of step {} fails: {e}", k + 1));
        if let (
            Some(new),
            Op::TerminateInstance { instance } | Op::DeleteVolume { volume: instance },
        ) = (outcome.created, resolve(&s.op, &created).unwrap())
        {
            renamed.insert(instance.known().unwrap().to_string(), new);
        }
    }
    (applied, live, renamed)
}

#[test]
fn rightsize_running_stops_sets_starts_and_undoes() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Rightsize(Rightsize {
            instance: RUN.into(),
            to: "m5.large".into(),
        }),
        &inv,
    ));
    assert_eq!(
        ops(&s),
        ["stop_instance", "set_instance_type", "start_instance"]
    );
    assert_eq!(facts.base_risk, Risk::Medium);
    assert_eq!(facts.savings, Savings::Usd((0.192 - 0.096) * 730.0));
    let (applied, undone, _) = apply_and_undo(&inv, &s);
    assert_eq!(applied.instance(RUN).unwrap().instance_type, "m5.large");
    assert_eq!(applied.instance(RUN).unwrap().state, InstanceState::Running);
    assert_eq!(undone.instance(RUN), inv.instance(RUN));
}

#[test]
fn rightsize_stopped_only_sets_the_type() {
    let inv = account();
    let (s, _) = steps(run(
        Action::Rightsize(Rightsize {
            instance: STOPPED.into(),
            to: "m5.large".into(),
        }),
        &inv,
    ));
    assert_eq!(ops(&s), ["set_instance_type"]);
    let (_, undone, _) = apply_and_undo(&inv, &s);
    assert_eq!(undone.instance(STOPPED), inv.instance(STOPPED));
}

#[test]
fn rightsize_no_change_and_blocked() {
    let inv = account();
    let same = run(
        Action::Rightsize(Rightsize {
            instance: RUN.into(),
            to: "m5.xlarge".into(),
        }),
        &inv,
    );
    assert!(no_change(same).contains("already m5.xlarge"));
    let arm = run(
        Action::Rightsize(Rightsize {
            instance: RUN.into(),
            to: "m6g.large".into(),
        }),
        &inv,
    );
    assert!(blocked(arm).contains("x86_64 but m6g.large is arm64"));
    let gone = run(
        Action::Rightsize(Rightsize {
            instance: GONE.into(),
            to: "m5.large".into(),
        }),
        &inv,
    );
    assert!(blocked(gone).contains("terminated"));
    let missing = run(
        Action::Rightsize(Rightsize {
            instance: "i-0000dead".into(),
            to: "m5.large".into(),
        }),
        &inv,
    );
    assert!(matches!(missing, Expansion::Missing));
    let mut restricted = inv.clone();
    restricted.instance_types = Some(["m5.large".to_string()].into());
    let unknown = run(
        Action::Rightsize(Rightsize {
            instance: RUN.into(),
            to: "m5.2xlarge".into(),
        }),
        &restricted,
    );
    assert!(blocked(unknown).contains("not an instance type offered"));
}

#[test]
fn terminate_with_image_relaunches_and_reattaches() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Terminate(Terminate {
            instance: RUN.into(),
            backup: Backup::Image,
        }),
        &inv,
    ));
    assert_eq!(
        ops(&s),
        ["create_image", "wait_image_available", "terminate_instance"]
    );
    assert_eq!(facts.base_risk, Risk::High);
    let Inverse::Op {
        op: Op::LaunchInstance { spec },
    } = &s[2].inverse
    else {
        panic!("relaunch")
    };
    assert_eq!(spec.image, Ref::Created { created_by_step: 0 });
    assert_eq!(spec.attach_volumes, ["vol-00000001"]);
    let (applied, undone, renamed) = apply_and_undo(&inv, &s);
    assert_eq!(
        applied.instance(RUN).unwrap().state,
        InstanceState::Terminated
    );
    assert_eq!(applied.volume("vol-00000001").unwrap().attached_to, None);
    let new = &renamed[RUN];
    let (before, after) = (inv.instance(RUN).unwrap(), undone.instance(new).unwrap());
    assert_eq!(
        (
            &after.instance_type,
            after.state,
            &after.zone,
            &after.tags,
            after.monitoring
        ),
        (
            &before.instance_type,
            before.state,
            &before.zone,
            &before.tags,
            before.monitoring
        )
    );
    assert_eq!(
        undone
            .volume("vol-00000001")
            .unwrap()
            .attached_to
            .as_deref(),
        Some(new.as_str())
    );
    assert_eq!(applied.address("eipalloc-00000002").unwrap().instance, None);
    assert_eq!(
        undone
            .address("eipalloc-00000002")
            .unwrap()
            .instance
            .as_deref(),
        Some(new.as_str())
    );
}

#[test]
fn terminate_stopped_relaunches_stopped() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Terminate(Terminate {
            instance: STOPPED.into(),
            backup: Backup::Image,
        }),
        &inv,
    ));
    assert_eq!(
        facts.savings,
        Savings::Usd(0.0),
        "a stopped instance has no compute cost"
    );
    let (_, undone, renamed) = apply_and_undo(&inv, &s);
    assert_eq!(
        undone.instance(&renamed[STOPPED]).unwrap().state,
        InstanceState::Stopped
    );
}

#[test]
fn terminate_without_backup_is_irreversible_and_critical() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Terminate(Terminate {
            instance: RUN.into(),
            backup: Backup::None,
        }),
        &inv,
    ));
    assert_eq!(ops(&s), ["terminate_instance"]);
    assert!(s[0].inverse.is_irreversible());
    assert_eq!(facts.base_risk, Risk::Critical);
}

#[test]
fn terminate_no_change() {
    let inv = account();
    assert!(
        no_change(run(
            Action::Terminate(Terminate {
                instance: GONE.into(),
                backup: Backup::Image
            }),
            &inv
        ))
        .contains("already terminated")
    );
    assert!(
        no_change(run(
            Action::Terminate(Terminate {
                instance: "i-0000dead".into(),
                backup: Backup::Image
            }),
            &inv
        ))
        .contains("not found")
    );
}

#[test]
fn hibernate_change_no_change_blocked() {
    let inv = account();
    let (s, _) = steps(run(
        Action::Hibernate(Hibernate {
            instance: HIB.into(),
            mode: HibernateMode::Hibernate,
        }),
        &inv,
    ));
    assert_eq!(
        s[0].op,
        Op::StopInstance {
            instance: Ref::id(HIB),
            hibernate: true
        }
    );
    let (applied, undone, _) = apply_and_undo(&inv, &s);
    assert_eq!(
        applied.instance(HIB).unwrap().stop_reason.as_deref(),
        Some("hibernated")
    );
    assert_eq!(undone.instance(HIB), inv.instance(HIB));
    assert!(
        no_change(run(
            Action::Hibernate(Hibernate {
                instance: STOPPED.into(),
                mode: HibernateMode::Stop
            }),
            &inv
        ))
        .contains("already stopped")
    );
    let not_configured = run(
        Action::Hibernate(Hibernate {
            instance: RUN.into(),
            mode: HibernateMode::Hibernate,
        }),
        &inv,
    );
    assert!(blocked(not_configured).contains("does not have hibernation configured"));
    let (plain, _) = steps(run(
        Action::Hibernate(Hibernate {
            instance: RUN.into(),
            mode: HibernateMode::Stop,
        }),
        &inv,
    ));
    assert_eq!(
        plain[0].op,
        Op::StopInstance {
            instance: Ref::id(RUN),
            hibernate: false
        }
    );
}

#[test]
fn spot_replaces_and_undoes() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Spot(Spot {
            instance: RUN.into(),
            max_price_usd_hour: Some(0.1),
        }),
        &inv,
    ));
    assert_eq!(
        ops(&s),
        [
            "create_image",
            "wait_image_available",
            "launch_instance",
            "terminate_instance",
            "attach_volume",
            "associate_address"
        ]
    );
    assert_eq!(facts.replaced_by_step, Some(2));
    assert_eq!(facts.savings, Savings::Usd((0.192 - 0.1) * 730.0));
    let (applied, undone, renamed) = apply_and_undo(&inv, &s);
    let spot = applied
        .instances
        .values()
        .find(|i| i.lifecycle == Lifecycle::Spot && i.id != SPOT)
        .unwrap();
    assert_eq!(
        applied
            .volume("vol-00000001")
            .unwrap()
            .attached_to
            .as_deref(),
        Some(spot.id.as_str())
    );
    assert_eq!(
        applied
            .address("eipalloc-00000002")
            .unwrap()
            .instance
            .as_deref(),
        Some(spot.id.as_str())
    );
    assert_eq!(
        undone.instance(&spot.id).unwrap().state,
        InstanceState::Terminated
    );
    let back = undone.instance(&renamed[RUN]).unwrap();
    assert_eq!(
        (back.lifecycle, back.state, &back.tags),
        (
            Lifecycle::OnDemand,
            InstanceState::Running,
            &inv.instance(RUN).unwrap().tags
        )
    );
    assert_eq!(
        undone
            .volume("vol-00000001")
            .unwrap()
            .attached_to
            .as_deref(),
        Some(back.id.as_str())
    );
    assert_eq!(
        undone
            .address("eipalloc-00000002")
            .unwrap()
            .instance
            .as_deref(),
        Some(back.id.as_str())
    );
}

#[test]
fn spot_no_change_and_blocked() {
    let inv = account();
    assert!(
        no_change(run(
            Action::Spot(Spot {
                instance: SPOT.into(),
                max_price_usd_hour: None
            }),
            &inv
        ))
        .contains("already a spot")
    );
    assert!(
        blocked(run(
            Action::Spot(Spot {
                instance: STOPPED.into(),
                max_price_usd_hour: None
            }),
            &inv
        ))
        .contains("not running")
    );
    assert!(
        blocked(run(
            Action::Spot(Spot {
                instance: RUN.into(),
                max_price_usd_hour: Some(5.0)
            }),
            &inv
        ))
        .contains("not below the on-demand price")
    );
    let gone = run(
        Action::Spot(Spot {
            instance: GONE.into(),
            max_price_usd_hour: None,
        }),
        &inv,
    );
    assert!(no_change(gone).contains("nothing left to move"));
}

fn reserve(count: u32) -> Action {
    Action::Reserve(Reserve {
        instance_type: "m5.large".into(),
        count,
        term: Term::OneYear,
        payment: Payment::NoUpfront,
        offering_class: OfferingClass::Standard,
        zone: None,
    })
}

#[test]
fn reserve_buys_the_missing_count_irreversibly() {
    let mut inv = account();
    inv.reserved_instances.push(Reservation {
        id: "ri-1".into(),
        instance_type: "m5.large".into(),
        count: 1,
        term: "1y".into(),
        payment: "no-upfront".into(),
        offering_class: "standard".into(),
        zone: None,
        state: "active".into(),
    });
    let (s, facts) = steps(run(reserve(3), &inv));
    assert_eq!(
        s[0].op,
        Op::PurchaseReservation {
            offering: "offer-1".into(),
            count: 2
        }
    );
    assert!(s[0].inverse.is_irreversible());
    assert_eq!(facts.base_risk, Risk::Critical);
    assert!(
        no_change(run(reserve(1), &inv)).contains("1 matching reservation already active (ri-1)")
    );
    inv.offerings.clear();
    assert!(blocked(run(reserve(3), &inv)).contains("no regional 1y no-upfront standard offering"));
}

#[test]
fn autoscale_change_no_change_blocked() {
    let inv = account();
    let (s, facts) = steps(run(
        Action::Autoscale(Autoscale {
            group: "web".into(),
            min: Some(1),
            max: None,
            desired: Some(2),
        }),
        &inv,
    ));
    assert_eq!(
        s[0].op,
        Op::UpdateGroup {
            group: "web".into(),
            min: 1,
            max: 10,
            desired: 2
        }
    );
    assert_eq!(
        s[0].inverse,
        Inverse::Op {
            op: Op::UpdateGroup {
                group: "web".into(),
                min: 2,
                max: 10,
                desired: 4
            }
        }
    );
    assert_eq!(facts.savings, Savings::Usd(2.0 * 0.096 * 730.0));
    let (_, undone, _) = apply_and_undo(&inv, &s);
    assert_eq!(undone.group("web"), inv.group("web"));
    assert!(
        no_change(run(
            Action::Autoscale(Autoscale {
                group: "web".into(),
                min: Some(2),
                max: None,
                desired: None
            }),
            &inv
        ))
        .contains("already")
    );
    let below = run(
        Action::Autoscale(Autoscale {
            group: "web".into(),
            min: None,
            max: None,
            desired: Some(1),
        }),
        &inv,
    );
    assert!(blocked(below).contains("min 2, max 10, desired 1"));
    assert!(matches!(
        run(
            Action::Autoscale(Autoscale {
                group: "nope".into(),
                min: Some(1),
                max: None,
                desired: None
            }),
            &inv
        ),
        Expansion::Missing
    ));
}

fn storage(volume: &str, to: Option<VolumeType>, delete: bool, snapshot: bool) -> Action {
    Action::Storage(Storage {
        volume: volume.into(),
        to,
        iops: None,
        throughput_mbps: None,
        delete,
        snapshot,
    })
}

#[test]
fn storage_retype_and_undo() {
    let inv = account();
    let (s, facts) = steps(run(
        storage("vol-00000001", Some(VolumeType::Gp3), false, true),
        &inv,
    ));
    assert_eq!(facts.base_risk, Risk::Low);
    let (applied, undone, _) = apply_and_undo(&inv, &s);
    let v = applied.volume("vol-00000001").unwrap();
    assert_eq!(
        (v.volume_type.as_str(), v.iops, v.throughput_mbps),
        ("gp3", Some(3000), Some(125))
    );
    assert_eq!(undone.volume("vol-00000001"), inv.volume("vol-00000001"));
    assert!(
        no_change(run(
            storage("vol-00000001", Some(VolumeType::Gp2), false, true),
            &inv
        ))
        .contains("already gp2")
    );
    assert!(matches!(
        run(
            storage("vol-0000dead", Some(VolumeType::Gp3), false, true),
            &inv
        ),
        Expansion::Missing
    ));
}

#[test]
fn a_volume_modified_less_than_six_hours_ago_is_blocked() {
    let mut inv = account();
    let ago = |h: u64| {
        crate::clock::rfc3339(
            std::time::SystemTime::now() - std::time::Duration::from_secs(h * 3600),
        )
    };
    inv.volume_modified_at.insert("vol-00000001".into(), ago(5));
    let why = blocked(run(
        storage("vol-00000001", Some(VolumeType::Gp3), false, true),
        &inv,
    ));
    assert!(why.contains("only six hours later"), "{why}");
    inv.volume_modified_at.insert("vol-00000001".into(), ago(7));
    steps(run(
        storage("vol-00000001", Some(VolumeType::Gp3), false, true),
        &inv,
    ));
}

#[test]
fn storage_delete_with_snapshot_recreates() {
    let inv = account();
    let (s, facts) = steps(run(storage("vol-00000002", None, true, true), &inv));
    assert_eq!(ops(&s), ["create_snapshot", "delete_volume"]);
    assert_eq!(facts.base_risk, Risk::High);
    let (applied, undone, renamed) = apply_and_undo(&inv, &s);
    assert!(applied.volume("vol-00000002").is_none());
    let mut back = undone.volume(&renamed["vol-00000002"]).unwrap().clone();
    back.id = "vol-00000002".into();
    assert_eq!(Some(&back), inv.volume("vol-00000002"));
}

#[test]
fn a_creation_retried_with_its_client_token_makes_one_thing() {
    let inv = account();
    let (s, _) = steps(run(storage("vol-00000002", None, true, true), &inv));
    let mut acct = inv.clone();
    let snap = acct.apply(&s[0].op).unwrap().created;
    acct.apply(&s[1].op).unwrap();
    let Inverse::Op { op } = &s[1].inverse else {
        panic!("a delete with a snapshot is undone by a creation")
    };
    let mut undo = crate::planner::resolve(op, &[snap, None]).unwrap();
    undo.set_client_token("r-1", "x/2");
    let first = acct.apply(&undo).unwrap().created;
    let count = acct.volumes.len();
    let again = acct.apply(&undo).unwrap().created;
    assert_eq!(first, again, "the same token answers with what it made");
    assert_eq!(acct.volumes.len(), count, "nothing made twice");
    undo.set_client_token("r-2", "x/2");
    assert_ne!(
        acct.apply(&undo).unwrap().created,
        first,
        "another run makes its own"
    );
}

#[test]
fn storage_delete_blocked_when_attached_and_critical_without_snapshot() {
    let inv = account();
    assert!(
        blocked(run(storage("vol-00000001", None, true, true), &inv))
            .contains("attached to i-00000001")
    );
    let (s, facts) = steps(run(storage("vol-00000002", None, true, false), &inv));
    assert!(s[0].inverse.is_irreversible());
    assert_eq!(facts.base_risk, Risk::Critical);
    assert!(
        no_change(run(storage("vol-0000dead", None, true, true), &inv)).contains("already deleted")
    );
}

fn config(fix: ConfigFix, target: &str) -> Action {
    let mut c = Config {
        fix,
        instance: None,
        address: None,
        snapshot: None,
    };
    match fix {
        ConfigFix::DisableDetailedMonitoring => c.instance = Some(target.into()),
        ConfigFix::ReleaseAddress => c.address = Some(target.into()),
        ConfigFix::DeleteSnapshot => c.snapshot = Some(target.into()),
    }
    Action::Config(c)
}

#[test]
fn config_monitoring() {
    let inv = account();
    let (s, _) = steps(run(config(ConfigFix::DisableDetailedMonitoring, HIB), &inv));
    let (_, undone, _) = apply_and_undo(&inv, &s);
    assert_eq!(undone.instance(HIB), inv.instance(HIB));
    assert!(
        no_change(run(config(ConfigFix::DisableDetailedMonitoring, RUN), &inv))
            .contains("basic monitoring")
    );
}

#[test]
fn config_release_address() {
    let inv = account();
    let (s, _) = steps(run(
        config(ConfigFix::ReleaseAddress, "eipalloc-00000001"),
        &inv,
    ));
    assert!(s[0].inverse.is_irreversible());
    assert!(
        blocked(run(
            config(ConfigFix::ReleaseAddress, "eipalloc-00000002"),
            &inv
        ))
        .contains("associated with i-00000001")
    );
    assert!(
        no_change(run(
            config(ConfigFix::ReleaseAddress, "eipalloc-0000dead"),
            &inv
        ))
        .contains("already released")
    );
}

#[test]
fn config_delete_snapshot() {
    let inv = account();
    let (s, facts) = steps(run(
        config(ConfigFix::DeleteSnapshot, "snap-00000001"),
        &inv,
    ));
    assert!(s[0].inverse.is_irreversible());
    assert_eq!(facts.savings, Savings::Usd(2.5));
    assert!(
        blocked(run(
            config(ConfigFix::DeleteSnapshot, "snap-00000002"),
            &inv
        ))
        .contains("backs image ami-00000001")
    );
    assert!(
        no_change(run(
            config(ConfigFix::DeleteSnapshot, "snap-0000dead"),
            &inv
        ))
        .contains("already deleted")
    );
}

#[test]
fn a_root_volume_goes_with_its_instance_and_is_not_reattached() {
    let mut inv = account();
    let mut root = volume("vol-0000000f", Some(RUN));
    root.delete_on_termination = true;
    inv.insert_volume(root);
    let (s, _) = steps(run(
        Action::Terminate(Terminate {
            instance: RUN.into(),
            backup: Backup::Image,
        }),
        &inv,
    ));
    let Inverse::Op {
        op: Op::LaunchInstance { spec },
    } = &s[2].inverse
    else {
        panic!("relaunch")
    };
    assert_eq!(
        spec.attach_volumes,
        ["vol-00000001"],
        "the root volume comes back from the image, not re-attached"
    );
    let (applied, undone, _) = apply_and_undo(&inv, &s);
    assert!(
        applied.volume("vol-0000000f").is_none(),
        "deleted with the instance"
    );
    assert!(undone.volume("vol-00000001").unwrap().attached_to.is_some());
}
