//! The rules of the account, with AWS's error codes.

use super::*;

fn inv() -> Inventory {
    Inventory {
        region: "us-east-1".into(),
        instances: BTreeMap::from([(
            "i-0a1b2c3d".to_string(),
            Instance {
                id: "i-0a1b2c3d".into(),
                instance_type: "m5.xlarge".into(),
                state: InstanceState::Running,
                zone: "us-east-1a".into(),
                image: None,
                lifecycle: Lifecycle::OnDemand,
                hibernation: false,
                monitoring: Monitoring::Basic,
                tags: Tags::new(),
                stop_reason: None,
            },
        )]),
        volumes: BTreeMap::from([(
            "vol-0a1b2c3d".to_string(),
            Volume {
                id: "vol-0a1b2c3d".into(),
                volume_type: "gp2".into(),
                size_gb: 100,
                iops: Some(300),
                throughput_mbps: None,
                zone: "us-east-1a".into(),
                attached_to: Some("i-0a1b2c3d".into()),
                delete_on_termination: false,
                tags: Tags::new(),
            },
        )]),
        ..Inventory::default()
    }
}

fn i() -> Ref {
    Ref::id("i-0a1b2c3d")
}

#[test]
fn type_changes_only_while_stopped() {
    let mut inv = inv();
    let set = Op::SetInstanceType {
        instance: i(),
        instance_type: "m5.large".into(),
    };
    let err = inv.apply(&set).unwrap_err();
    assert_eq!(err.code, "IncorrectInstanceState");
    assert_eq!(
        err.message,
        "The instance 'i-0a1b2c3d' is not in the 'stopped' state."
    );
    inv.apply(&Op::StopInstance {
        instance: i(),
        hibernate: false,
    })
    .unwrap();
    inv.apply(&set).unwrap();
    assert_eq!(inv.instances["i-0a1b2c3d"].instance_type, "m5.large");
}

#[test]
fn hibernation_needs_configuration() {
    let mut inv = inv();
    let err = inv
        .apply(&Op::StopInstance {
            instance: i(),
            hibernate: true,
        })
        .unwrap_err();
    assert_eq!(err.code, "UnsupportedHibernationConfiguration");
    assert_eq!(inv.instances["i-0a1b2c3d"].state, InstanceState::Running);
}

#[test]
fn terminated_instances_cannot_start() {
    let mut inv = inv();
    inv.apply(&Op::TerminateInstance { instance: i() }).unwrap();
    assert_eq!(
        inv.volumes["vol-0a1b2c3d"].attached_to, None,
        "data volumes are detached"
    );
    let err = inv.apply(&Op::StartInstance { instance: i() }).unwrap_err();
    assert_eq!(err.code, "IncorrectInstanceState");
}

#[test]
fn attached_volumes_cannot_be_deleted() {
    let mut inv = inv();
    let err = inv
        .apply(&Op::DeleteVolume {
            volume: Ref::id("vol-0a1b2c3d"),
        })
        .unwrap_err();
    assert_eq!(err.code, "VolumeInUse");
    assert_eq!(inv.volumes.len(), 1);
}

#[test]
fn released_addresses_are_gone() {
    let mut inv = inv();
    inv.addresses.insert(
        "eipalloc-0a1b2c3d".into(),
        Address {
            allocation_id: "eipalloc-0a1b2c3d".into(),
            public_ip: "198.51.100.7".into(),
            instance: None,
            tags: Tags::new(),
        },
    );
    let op = Op::ReleaseAddress {
        address: Ref::id("eipalloc-0a1b2c3d"),
    };
    inv.apply(&op).unwrap();
    assert_eq!(
        inv.apply(&op).unwrap_err().code,
        "InvalidAllocationID.NotFound"
    );
}

#[test]
fn unresolved_refs_are_refused() {
    let mut inv = inv();
    let err = inv
        .apply(&Op::StartInstance {
            instance: Ref::Created { created_by_step: 0 },
        })
        .unwrap_err();
    assert_eq!(err.code, "InvalidParameterValue");
}

#[test]
fn a_volume_is_modified_at_most_once_every_six_hours() {
    let mut inv = inv();
    let t0 = crate::clock::parse_rfc3339("2026-11-27T12:00:00Z").unwrap();
    let retype = |t: &str| Op::ModifyVolume {
        volume: Ref::id("vol-0a1b2c3d"),
        volume_type: t.into(),
        iops: None,
        throughput_mbps: None,
    };
    inv.apply_at(&retype("gp3"), t0).unwrap();
    let soon = t0 + std::time::Duration::from_secs(5 * 3600 + 3599);
    let err = inv.apply_at(&retype("gp2"), soon).unwrap_err();
    assert_eq!(err.code, "VolumeModificationRateExceeded");
    assert!(err.message.contains("Wait at least 6 hours"), "{err}");
    assert_eq!(
        inv.volumes["vol-0a1b2c3d"].volume_type, "gp3",
        "nothing changed"
    );
    let later = t0 + crate::clock::VOLUME_COOL_DOWN;
    inv.apply_at(&retype("gp2"), later).unwrap();
    assert_eq!(
        inv.volume_modified_at["vol-0a1b2c3d"],
        "2026-11-27T18:00:00Z"
    );
}

#[test]
fn ids_are_deterministic() {
    let mut a = inv();
    let mut b = inv();
    let op = Op::CreateImage {
        instance: i(),
        tags: Tags::new(),
    };
    assert_eq!(a.apply(&op).unwrap(), b.apply(&op).unwrap());
    assert_eq!(
        a.apply(&op).unwrap().created.as_deref(),
        Some("ami-e0000000000000002")
    );
}
