//! The primitive operations pare performs (steps), how each is undone, and
//! what one produced. Serialised in previews, saved plans and the journal.

use super::error::CloudError;
use super::resource::{Lifecycle, Monitoring, ResourceId, Tags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A resource id that may not exist yet: one created by an earlier step of
/// the same recommendation (known only when that step has run).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ref {
    Id(String),
    /// The resource created by step `step` (0-based) of this recommendation.
    Created {
        created_by_step: usize,
    },
}

impl Ref {
    pub fn id(id: impl Into<String>) -> Ref {
        Ref::Id(id.into())
    }

    /// The concrete id, if known.
    pub fn known(&self) -> Option<&str> {
        match self {
            Ref::Id(id) => Some(id),
            Ref::Created { .. } => None,
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Id(id) => f.write_str(id),
            Ref::Created { created_by_step } => write!(f, "(made by step {})", created_by_step + 1),
        }
    }
}

/// What a launched instance looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub image: Ref,
    pub instance_type: String,
    pub zone: String,
    pub lifecycle: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_usd_hour: Option<f64>,
    pub hibernation: bool,
    pub monitoring: Monitoring,
    pub tags: Tags,
    /// Leave the new instance stopped (it replaces one that was stopped).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// Existing data volumes to attach once the instance runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_volumes: Vec<String>,
    /// Elastic IPs (allocation ids) to associate once the instance runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub associate_addresses: Vec<String>,
    /// Makes the launch idempotent: the same token launches once (set by
    /// the engine from the run and step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// What a recreated volume looks like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub snapshot: Ref,
    pub volume_type: String,
    pub size_gb: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_mbps: Option<u32>,
    pub zone: String,
    pub tags: Tags,
    /// Makes the creation idempotent, as for launches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
}

/// One primitive cloud operation. Serialised in previews, saved plans and the
/// journal as `{"op": "...", "args": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Op {
    StopInstance {
        instance: Ref,
        hibernate: bool,
    },
    StartInstance {
        instance: Ref,
    },
    SetInstanceType {
        instance: Ref,
        instance_type: String,
    },
    CreateImage {
        instance: Ref,
        tags: Tags,
    },
    WaitImageAvailable {
        image: Ref,
    },
    LaunchInstance {
        spec: LaunchSpec,
    },
    TerminateInstance {
        instance: Ref,
    },
    ModifyVolume {
        volume: Ref,
        volume_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        iops: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        throughput_mbps: Option<u32>,
    },
    CreateSnapshot {
        volume: Ref,
        tags: Tags,
    },
    AttachVolume {
        volume: Ref,
        instance: Ref,
    },
    AssociateAddress {
        address: Ref,
        instance: Ref,
    },
    DisassociateAddress {
        address: Ref,
        instance: Ref,
    },
    DetachVolume {
        volume: Ref,
        instance: Ref,
    },
    DeleteVolume {
        volume: Ref,
    },
    CreateVolume {
        spec: VolumeSpec,
    },
    DeleteSnapshot {
        snapshot: Ref,
    },
    ReleaseAddress {
        address: Ref,
    },
    SetMonitoring {
        instance: Ref,
        detailed: bool,
    },
    UpdateGroup {
        group: String,
        min: u32,
        max: u32,
        desired: u32,
    },
    PurchaseReservation {
        offering: String,
        count: u32,
    },
}

impl Op {
    /// Every op's name, as [`Op::name`] gives it.
    pub const NAMES: [&'static str; 20] = [
        "stop_instance",
        "start_instance",
        "set_instance_type",
        "create_image",
        "wait_image_available",
        "launch_instance",
        "terminate_instance",
        "modify_volume",
        "create_snapshot",
        "attach_volume",
        "associate_address",
        "disassociate_address",
        "detach_volume",
        "delete_volume",
        "create_volume",
        "delete_snapshot",
        "release_address",
        "set_monitoring",
        "update_group",
        "purchase_reservation",
    ];

    /// The op's name as serialised (`stop_instance`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Op::StopInstance { .. } => "stop_instance",
            Op::StartInstance { .. } => "start_instance",
            Op::SetInstanceType { .. } => "set_instance_type",
            Op::CreateImage { .. } => "create_image",
            Op::WaitImageAvailable { .. } => "wait_image_available",
            Op::LaunchInstance { .. } => "launch_instance",
            Op::TerminateInstance { .. } => "terminate_instance",
            Op::ModifyVolume { .. } => "modify_volume",
            Op::CreateSnapshot { .. } => "create_snapshot",
            Op::AttachVolume { .. } => "attach_volume",
            Op::AssociateAddress { .. } => "associate_address",
            Op::DisassociateAddress { .. } => "disassociate_address",
            Op::DetachVolume { .. } => "detach_volume",
            Op::DeleteVolume { .. } => "delete_volume",
            Op::CreateVolume { .. } => "create_volume",
            Op::DeleteSnapshot { .. } => "delete_snapshot",
            Op::ReleaseAddress { .. } => "release_address",
            Op::SetMonitoring { .. } => "set_monitoring",
            Op::UpdateGroup { .. } => "update_group",
            Op::PurchaseReservation { .. } => "purchase_reservation",
        }
    }

    /// Gives a launch or a volume creation its client token, so a call
    /// retried (by the SDK, or by the engine after a transient error) makes
    /// the thing once. Derived from the run and step: stable across retries.
    pub fn set_client_token(&mut self, run: &str, step: &str) {
        let token = match self {
            Op::LaunchInstance { spec } => &mut spec.client_token,
            Op::CreateVolume { spec } => &mut spec.client_token,
            _ => return,
        };
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{run}/{step}").as_bytes());
        let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        *token = Some(format!("pare-{hex}"));
    }

    /// The client token of a launch or volume creation, if it has one.
    pub fn client_token(&self) -> Option<&str> {
        match self {
            Op::LaunchInstance { spec } => spec.client_token.as_deref(),
            Op::CreateVolume { spec } => spec.client_token.as_deref(),
            _ => None,
        }
    }

    /// Ops with equal keys can go to the cloud in one call (EC2's
    /// multi-instance calls: stop, start, terminate, monitor); `None` for
    /// ops that name one resource per call.
    pub fn batch_key(&self) -> Option<(&'static str, bool)> {
        match self {
            Op::StopInstance { hibernate, .. } => Some(("stop_instance", *hibernate)),
            Op::StartInstance { .. } => Some(("start_instance", false)),
            Op::TerminateInstance { .. } => Some(("terminate_instance", false)),
            Op::SetMonitoring { detailed, .. } => Some(("set_monitoring", *detailed)),
            _ => None,
        }
    }

    /// The instance a batchable op names.
    pub fn batch_instance(&self) -> Option<&str> {
        match self {
            Op::StopInstance { instance, .. }
            | Op::StartInstance { instance }
            | Op::TerminateInstance { instance }
            | Op::SetMonitoring { instance, .. } => instance.known(),
            _ => None,
        }
    }

    /// The resources this op changes (with `created`, what it made), for
    /// reading them back and for protection checks.
    pub fn touched(&self, created: Option<&str>) -> Vec<ResourceId> {
        let id = |r: &Ref| r.known().unwrap_or("").to_string();
        match self {
            Op::StopInstance { instance, .. }
            | Op::StartInstance { instance }
            | Op::SetInstanceType { instance, .. }
            | Op::TerminateInstance { instance }
            | Op::SetMonitoring { instance, .. } => vec![ResourceId::Instance(id(instance))],
            Op::CreateImage { .. }
            | Op::WaitImageAvailable { .. }
            | Op::PurchaseReservation { .. } => {
                vec![]
            }
            Op::LaunchInstance { spec } => {
                let mut v: Vec<ResourceId> = created
                    .map(|c| ResourceId::Instance(c.to_string()))
                    .into_iter()
                    .collect();
                v.extend(
                    spec.attach_volumes
                        .iter()
                        .map(|x| ResourceId::Volume(x.clone())),
                );
                v.extend(
                    spec.associate_addresses
                        .iter()
                        .map(|x| ResourceId::Address(x.clone())),
                );
                v
            }
            Op::ModifyVolume { volume, .. } | Op::DeleteVolume { volume } => {
                vec![ResourceId::Volume(id(volume))]
            }
            Op::CreateSnapshot { .. } => created
                .map(|c| ResourceId::Snapshot(c.to_string()))
                .into_iter()
                .collect(),
            Op::AttachVolume { volume, .. } | Op::DetachVolume { volume, .. } => {
                vec![ResourceId::Volume(id(volume))]
            }
            Op::AssociateAddress { address, .. }
            | Op::DisassociateAddress { address, .. }
            | Op::ReleaseAddress { address } => {
                vec![ResourceId::Address(id(address))]
            }
            Op::CreateVolume { .. } => created
                .map(|c| ResourceId::Volume(c.to_string()))
                .into_iter()
                .collect(),
            Op::DeleteSnapshot { snapshot } => vec![ResourceId::Snapshot(id(snapshot))],
            Op::UpdateGroup { group, .. } => vec![ResourceId::Group(group.clone())],
        }
    }

    /// The refs this op reads, so `Created` ones can be resolved.
    pub fn refs_mut(&mut self) -> Vec<&mut Ref> {
        match self {
            Op::StopInstance { instance, .. }
            | Op::StartInstance { instance }
            | Op::SetInstanceType { instance, .. }
            | Op::CreateImage { instance, .. }
            | Op::TerminateInstance { instance }
            | Op::SetMonitoring { instance, .. } => vec![instance],
            Op::WaitImageAvailable { image } => vec![image],
            Op::LaunchInstance { spec } => vec![&mut spec.image],
            Op::ModifyVolume { volume, .. }
            | Op::CreateSnapshot { volume, .. }
            | Op::DeleteVolume { volume } => vec![volume],
            Op::CreateVolume { spec } => vec![&mut spec.snapshot],
            Op::AttachVolume { volume, instance } | Op::DetachVolume { volume, instance } => {
                vec![volume, instance]
            }
            Op::AssociateAddress { address, instance }
            | Op::DisassociateAddress { address, instance } => vec![address, instance],
            Op::DeleteSnapshot { snapshot } => vec![snapshot],
            Op::ReleaseAddress { address } => vec![address],
            Op::UpdateGroup { .. } | Op::PurchaseReservation { .. } => vec![],
        }
    }

    /// One line for people: "stop i-0a1b… (hibernate)". Ids and types that
    /// came from the cloud are shown escaped if they hold control characters.
    pub fn describe(&self) -> String {
        super::words::clean(&self.words()).into_owned()
    }

    fn words(&self) -> String {
        match self {
            Op::StopInstance {
                instance,
                hibernate,
            } => {
                if *hibernate {
                    format!("stop {instance} with hibernation")
                } else {
                    format!("stop {instance}")
                }
            }
            Op::StartInstance { instance } => format!("start {instance}"),
            Op::SetInstanceType {
                instance,
                instance_type,
            } => format!("set the type of {instance} to {instance_type}"),
            Op::CreateImage { instance, .. } => format!("create an image of {instance}"),
            Op::WaitImageAvailable { image } => format!("wait until image {image} is available"),
            Op::LaunchInstance { spec } => {
                let article = if spec.lifecycle == Lifecycle::OnDemand {
                    "an"
                } else {
                    "a"
                };
                let mut s = format!(
                    "launch {article} {} {} in {} from image {}",
                    spec.lifecycle.as_str(),
                    spec.instance_type,
                    spec.zone,
                    spec.image
                );
                if !spec.attach_volumes.is_empty() {
                    s.push_str(&format!(", attach {}", spec.attach_volumes.join(", ")));
                }
                if !spec.associate_addresses.is_empty() {
                    s.push_str(&format!(
                        ", associate {}",
                        spec.associate_addresses.join(", ")
                    ));
                }
                s
            }
            Op::TerminateInstance { instance } => format!("terminate {instance}"),
            Op::ModifyVolume {
                volume,
                volume_type,
                iops,
                throughput_mbps,
            } => {
                let mut s = format!("change {volume} to {volume_type}");
                if let Some(i) = iops {
                    s.push_str(&format!(", {i} IOPS"));
                }
                if let Some(t) = throughput_mbps {
                    s.push_str(&format!(", {t} MiB/s"));
                }
                s
            }
            Op::CreateSnapshot { volume, .. } => format!("snapshot {volume}"),
            Op::AttachVolume { volume, instance } => format!("attach {volume} to {instance}"),
            Op::AssociateAddress { address, instance } => {
                format!("associate {address} with {instance}")
            }
            Op::DisassociateAddress { address, instance } => {
                format!("disassociate {address} from {instance}")
            }
            Op::DetachVolume { volume, instance } => format!("detach {volume} from {instance}"),
            Op::DeleteVolume { volume } => format!("delete {volume}"),
            Op::CreateVolume { spec } => format!(
                "create a {} GB {} volume in {} from snapshot {}",
                spec.size_gb, spec.volume_type, spec.zone, spec.snapshot
            ),
            Op::DeleteSnapshot { snapshot } => format!("delete snapshot {snapshot}"),
            Op::ReleaseAddress { address } => format!("release address {address}"),
            Op::SetMonitoring { instance, detailed } => {
                if *detailed {
                    format!("enable detailed monitoring on {instance}")
                } else {
                    format!("disable detailed monitoring on {instance}")
                }
            }
            Op::UpdateGroup {
                group,
                min,
                max,
                desired,
            } => {
                format!("set {group} to min {min}, max {max}, desired {desired}")
            }
            Op::PurchaseReservation { offering, count } => {
                format!("buy {count} × reserved offering {offering}")
            }
        }
    }
}

/// How a step is undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inverse {
    /// Run this op.
    Op {
        #[serde(flatten)]
        op: Op,
    },
    /// Nothing to undo (a read, a wait, or something deliberately kept, like a backup image).
    Nothing { why: String },
    /// Cannot be undone.
    Irreversible { why: String },
}

impl Inverse {
    pub fn is_irreversible(&self) -> bool {
        matches!(self, Inverse::Irreversible { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Inverse::Op {
                op: op @ Op::ModifyVolume { .. },
            } => format!(
                "{} (possible six hours after the change: AWS allows one modification per volume every six hours)",
                op.describe()
            ),
            Inverse::Op { op } => op.describe(),
            Inverse::Nothing { why } => format!("nothing to undo ({why})"),
            Inverse::Irreversible { why } => format!("IRREVERSIBLE: {why}"),
        }
    }
}

/// What an op produced: the id of anything it created.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// One step: an operation and how to undo it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub op: Op,
    pub inverse: Inverse,
}

impl Step {
    /// A step undone by `inverse`.
    pub fn new(op: Op, inverse: Op) -> Step {
        Step {
            op,
            inverse: Inverse::Op { op: inverse },
        }
    }

    /// A step with nothing to undo (a wait, or something deliberately kept).
    pub fn keep(op: Op, why: &str) -> Step {
        Step {
            op,
            inverse: Inverse::Nothing { why: why.into() },
        }
    }

    /// A step that cannot be undone, and why.
    pub fn irreversible(op: Op, why: &str) -> Step {
        Step {
            op,
            inverse: Inverse::Irreversible { why: why.into() },
        }
    }
}

/// `op` with every `Created` reference replaced by the id that step made.
pub fn resolve(op: &Op, created: &[Option<String>]) -> Result<Op, CloudError> {
    let mut op = op.clone();
    for r in op.refs_mut() {
        if let Ref::Created { created_by_step } = r {
            let id = created
                .get(*created_by_step)
                .cloned()
                .flatten()
                .ok_or_else(|| {
                    CloudError::new(
                        "InvalidParameterValue",
                        format!("step {} made nothing to refer to", *created_by_step + 1),
                    )
                })?;
            *r = Ref::Id(id);
        }
    }
    Ok(op)
}

/// `op` with ids of resources that a rollback recreated (old → new) replaced,
/// so undoing an earlier change reaches the resource as it now exists.
pub fn rename_ids(op: &Op, renamed: &BTreeMap<String, String>) -> Op {
    let mut op = op.clone();
    if renamed.is_empty() {
        return op;
    }
    for r in op.refs_mut() {
        if let Ref::Id(id) = r
            && let Some(new) = renamed.get(id.as_str())
        {
            *id = new.clone();
        }
    }
    if let Op::LaunchInstance { spec } = &mut op {
        for id in spec
            .attach_volumes
            .iter_mut()
            .chain(spec.associate_addresses.iter_mut())
        {
            if let Some(new) = renamed.get(id.as_str()) {
                *id = new.clone();
            }
        }
    }
    op
}

#[cfg(test)]
mod tests {
    use super::Op;

    #[test]
    fn names_lists_every_op() {
        // serde names every variant when it meets an unknown one.
        let err = serde_json::from_str::<Op>(r#"{"op": "no_such_op", "args": {}}"#)
            .unwrap_err()
            .to_string();
        let listed: Vec<&str> = err
            .split("expected one of ")
            .nth(1)
            .expect("serde lists the variants")
            .split(", ")
            .map(|v| v.trim_matches(|c: char| c == '`' || !c.is_ascii_graphic()))
            .map(|v| v.split('`').next().unwrap())
            .collect();
        assert_eq!(listed, Op::NAMES, "{err}");
    }
}
