//! An account's resources, and the rules by which operations change them.
//!
//! The sandbox provider persists an `Inventory` and changes it with
//! [`Inventory::apply`]; the planner applies the same operations to a copy to
//! predict after-states. One implementation of the rules serves both, so what
//! `plan` predicts is what `apply` does on the sandbox. The rules are AWS's,
//! with AWS's error codes and wording, so executors meet here the constraints
//! they will meet in EC2.

use super::model::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How new resources are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMode {
    /// Real-looking, deterministic ids from a counter (the sandbox).
    #[default]
    Counter,
    /// Placeholders for predictions (`i-(new 1)`), never mistaken for real ids.
    Placeholder,
}

/// One account: the shape of the sandbox file (SPEC section 4).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub region: String,
    #[serde(default, with = "list_map")]
    pub instances: BTreeMap<String, Instance>,
    #[serde(default, with = "list_map")]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default, with = "list_map")]
    pub snapshots: BTreeMap<String, Snapshot>,
    #[serde(default, with = "list_map")]
    pub images: BTreeMap<String, Image>,
    #[serde(default, with = "list_map")]
    pub addresses: BTreeMap<String, Address>,
    #[serde(default, with = "list_map")]
    pub auto_scaling_groups: BTreeMap<String, Group>,
    #[serde(default)]
    pub reserved_instances: Vec<Reservation>,
    /// Reserved-instance offerings on sale; generated from the price catalog when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offerings: Vec<Offering>,
    /// Instance types the account may use; `None` accepts any well-formed type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_types: Option<BTreeSet<String>>,
    /// When each volume was last modified (RFC 3339): AWS allows the next
    /// modification of a volume six hours after the last one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volume_modified_at: BTreeMap<String, String>,
    /// Client tokens seen, and what each created: a launch or volume
    /// creation with a token seen before makes nothing new (as on AWS).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_tokens: BTreeMap<String, String>,
    /// Sandbox only: injected latency and faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<super::sandbox::Faults>,
    /// The counter behind generated ids.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_id: u64,
    /// Sandbox only: which operation log continues this file (bumped by
    /// every checkpoint, so a crash between writing the file and removing
    /// the old log never replays that log twice).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_generation: u64,
    #[serde(skip)]
    pub id_mode: IdMode,
    /// Who is attached to what, derived from the resources (see `reindex`).
    #[serde(skip)]
    links: Option<Links>,
}

/// Instance → attached volumes and associated addresses. Derived data: two
/// inventories with the same resources are equal whatever their index.
#[derive(Debug, Clone, Default)]
struct Links {
    volumes: std::collections::HashMap<String, BTreeSet<String>>,
    addresses: std::collections::HashMap<String, BTreeSet<String>>,
    /// Snapshot → the image it backs. Images pare creates back no listed
    /// snapshot, so this only changes when the inventory is rebuilt.
    images: std::collections::HashMap<String, String>,
}

impl PartialEq for Links {
    fn eq(&self, _: &Links) -> bool {
        true
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn not_found(kind: &str, code_kind: &str, id: &str) -> CloudError {
    CloudError::new(
        &format!("Invalid{code_kind}.NotFound"),
        format!("The {kind} ID '{id}' does not exist"),
    )
}

impl Inventory {
    /// An empty account in `region`.
    pub fn new(region: &str) -> Inventory {
        Inventory {
            region: region.to_string(),
            ..Inventory::default()
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        match self.id_mode {
            IdMode::Counter => format!("{prefix}e{:016x}", self.next_id),
            IdMode::Placeholder => format!("{prefix}(new {})", self.next_id),
        }
    }

    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.get(id)
    }
    pub fn volume(&self, id: &str) -> Option<&Volume> {
        self.volumes.get(id)
    }
    pub fn snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots.get(id)
    }
    pub fn image(&self, id: &str) -> Option<&Image> {
        self.images.get(id)
    }
    pub fn address(&self, id: &str) -> Option<&Address> {
        self.addresses.get(id)
    }
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.auto_scaling_groups.get(name)
    }

    fn instance_mut(&mut self, id: &str) -> Result<&mut Instance, CloudError> {
        self.instances
            .get_mut(id)
            .ok_or_else(|| not_found("instance", "InstanceID", id))
    }
    fn volume_mut(&mut self, id: &str) -> Result<&mut Volume, CloudError> {
        self.volumes
            .get_mut(id)
            .ok_or_else(|| not_found("volume", "Volume", id))
    }

    /// Adds (or replaces) resources; for building inventories in code.
    pub fn insert_instance(&mut self, i: Instance) {
        self.instances.insert(i.id.clone(), i);
    }
    pub fn insert_volume(&mut self, v: Volume) {
        self.volumes.insert(v.id.clone(), v);
        if self.links.is_some() {
            self.reindex();
        }
    }

    /// Data volumes attached to `instance`, in id order.
    pub fn attached_volumes(&self, instance: &str) -> Vec<&Volume> {
        match &self.links {
            Some(l) => l
                .volumes
                .get(instance)
                .into_iter()
                .flatten()
                .filter_map(|v| self.volumes.get(v))
                .collect(),
            None => self
                .volumes
                .values()
                .filter(|v| v.attached_to.as_deref() == Some(instance))
                .collect(),
        }
    }

    /// Elastic IPs associated with `instance`, in id order.
    pub fn associated_addresses(&self, instance: &str) -> Vec<&Address> {
        match &self.links {
            Some(l) => l
                .addresses
                .get(instance)
                .into_iter()
                .flatten()
                .filter_map(|a| self.addresses.get(a))
                .collect(),
            None => self
                .addresses
                .values()
                .filter(|a| a.instance.as_deref() == Some(instance))
                .collect(),
        }
    }

    /// The image a snapshot backs, if any.
    pub fn image_using(&self, snapshot: &str) -> Option<&Image> {
        match &self.links {
            Some(l) => l.images.get(snapshot).and_then(|i| self.images.get(i)),
            None => self
                .images
                .values()
                .find(|i| i.snapshots.iter().any(|s| s == snapshot)),
        }
    }

    /// Builds the attachment index, so lookups by instance stop scanning
    /// every volume and address (planning 100k recommendations needs it).
    pub fn reindex(&mut self) {
        let mut links = Links::default();
        for v in self.volumes.values() {
            if let Some(i) = &v.attached_to {
                links
                    .volumes
                    .entry(i.clone())
                    .or_default()
                    .insert(v.id.clone());
            }
        }
        for a in self.addresses.values() {
            if let Some(i) = &a.instance {
                links
                    .addresses
                    .entry(i.clone())
                    .or_default()
                    .insert(a.allocation_id.clone());
            }
        }
        for img in self.images.values() {
            for s in &img.snapshots {
                links.images.insert(s.clone(), img.id.clone());
            }
        }
        self.links = Some(links);
    }

    /// Attaches `volume` to `to` (or detaches it), keeping the index in step.
    fn link_volume(&mut self, volume: &str, to: Option<&str>) {
        let Some(v) = self.volumes.get_mut(volume) else {
            return;
        };
        let from = std::mem::replace(&mut v.attached_to, to.map(str::to_string));
        if let Some(l) = &mut self.links {
            if let Some(f) = from {
                l.volumes.entry(f).or_default().remove(volume);
            }
            if let Some(t) = to {
                l.volumes
                    .entry(t.to_string())
                    .or_default()
                    .insert(volume.to_string());
            }
        }
    }

    /// Associates `address` with `to` (or disassociates it), keeping the index in step.
    fn link_address(&mut self, address: &str, to: Option<&str>) {
        let Some(a) = self.addresses.get_mut(address) else {
            return;
        };
        let from = std::mem::replace(&mut a.instance, to.map(str::to_string));
        if let Some(l) = &mut self.links {
            if let Some(f) = from {
                l.addresses.entry(f).or_default().remove(address);
            }
            if let Some(t) = to {
                l.addresses
                    .entry(t.to_string())
                    .or_default()
                    .insert(address.to_string());
            }
        }
    }

    /// Whether `t` may be launched here.
    pub fn knows_type(&self, t: &str) -> bool {
        self.instance_types
            .as_ref()
            .is_none_or(|set| set.contains(t))
    }

    /// Performs `op` now, whose refs must all be concrete ids.
    pub fn apply(&mut self, op: &Op) -> Result<Outcome, CloudError> {
        self.apply_at(op, crate::clock::now())
    }

    /// Performs `op` as if at `now` (AWS's clocks: a volume may be
    /// modified again only six hours after its last modification).
    pub fn apply_at(&mut self, op: &Op, now: std::time::SystemTime) -> Result<Outcome, CloudError> {
        // A token seen before answers with what it made, as on AWS.
        let token = op.client_token().map(str::to_string);
        if let Some(made) = token.as_ref().and_then(|t| self.client_tokens.get(t)) {
            return Ok(Outcome {
                created: Some(made.clone()),
            });
        }
        let outcome = self.apply_op(op, now)?;
        if let (Some(t), Some(made)) = (token, &outcome.created) {
            self.client_tokens.insert(t, made.clone());
        }
        Ok(outcome)
    }

    fn apply_op(&mut self, op: &Op, now: std::time::SystemTime) -> Result<Outcome, CloudError> {
        let id = |r: &Ref| -> Result<String, CloudError> {
            r.known().map(str::to_string).ok_or_else(|| {
                CloudError::new("InvalidParameterValue", format!("unresolved reference {r}"))
            })
        };
        match op {
            Op::StopInstance {
                instance,
                hibernate,
            } => {
                let i = self.instance_mut(&id(instance)?)?;
                match i.state {
                    InstanceState::Terminated | InstanceState::ShuttingDown => {
                        return Err(CloudError::new(
                            "IncorrectInstanceState",
                            format!(
                                "This instance '{}' is not in a state from which it can be stopped.",
                                i.id
                            ),
                        ));
                    }
                    InstanceState::Stopped => return Ok(Outcome::default()),
                    _ => {}
                }
                if *hibernate && !i.hibernation {
                    return Err(CloudError::new(
                        "UnsupportedHibernationConfiguration",
                        format!(
                            "The instance '{}' does not have hibernation configured.",
                            i.id
                        ),
                    ));
                }
                i.state = InstanceState::Stopped;
                i.stop_reason = hibernate.then(|| "hibernated".to_string());
                Ok(Outcome::default())
            }
            Op::StartInstance { instance } => {
                let i = self.instance_mut(&id(instance)?)?;
                match i.state {
                    InstanceState::Terminated | InstanceState::ShuttingDown => {
                        Err(CloudError::new(
                            "IncorrectInstanceState",
                            format!(
                                "The instance '{}' is not in a state from which it can be started.",
                                i.id
                            ),
                        ))
                    }
                    _ => {
                        i.state = InstanceState::Running;
                        i.stop_reason = None;
                        Ok(Outcome::default())
                    }
                }
            }
            Op::SetInstanceType {
                instance,
                instance_type,
            } => {
                if !self.knows_type(instance_type) {
                    return Err(CloudError::new(
                        "InvalidInstanceType",
                        format!(
                            "The instance type '{instance_type}' is not supported in {}.",
                            self.region
                        ),
                    ));
                }
                let i = self.instance_mut(&id(instance)?)?;
                if i.state != InstanceState::Stopped {
                    return Err(CloudError::new(
                        "IncorrectInstanceState",
                        format!("The instance '{}' is not in the 'stopped' state.", i.id),
                    ));
                }
                i.instance_type = instance_type.clone();
                Ok(Outcome::default())
            }
            Op::CreateImage { instance, tags } => {
                let source = id(instance)?;
                let i = self
                    .instance(&source)
                    .ok_or_else(|| not_found("instance", "InstanceID", &source))?;
                if i.state == InstanceState::Terminated {
                    return Err(CloudError::new(
                        "IncorrectInstanceState",
                        format!("The instance '{source}' is terminated."),
                    ));
                }
                let image_id = self.new_id("ami-");
                self.images.insert(
                    image_id.clone(),
                    Image {
                        id: image_id.clone(),
                        source_instance: Some(source),
                        state: "available".into(),
                        snapshots: Vec::new(),
                        tags: tags.clone(),
                    },
                );
                Ok(Outcome {
                    created: Some(image_id),
                })
            }
            Op::WaitImageAvailable { image } => {
                let image_id = id(image)?;
                match self.image(&image_id) {
                    Some(img) if img.state == "available" => Ok(Outcome::default()),
                    Some(img) => Err(CloudError::new(
                        "IncorrectState",
                        format!("The image '{image_id}' is {}.", img.state),
                    )),
                    None => Err(not_found("image", "AMIID", &image_id)),
                }
            }
            Op::LaunchInstance { spec } => {
                let image_id = id(&spec.image)?;
                if self.image(&image_id).is_none() {
                    return Err(not_found("image", "AMIID", &image_id));
                }
                if !self.knows_type(&spec.instance_type) {
                    return Err(CloudError::new(
                        "InvalidInstanceType",
                        format!(
                            "The instance type '{}' is not supported in {}.",
                            spec.instance_type, self.region
                        ),
                    ));
                }
                for v in &spec.attach_volumes {
                    let vol = self
                        .volume(v)
                        .ok_or_else(|| not_found("volume", "Volume", v))?;
                    if let Some(other) = &vol.attached_to {
                        return Err(CloudError::new(
                            "VolumeInUse",
                            format!("{v} is already attached to an instance ({other})"),
                        ));
                    }
                    if vol.zone != spec.zone {
                        return Err(CloudError::new(
                            "InvalidVolume.ZoneMismatch",
                            format!(
                                "The volume '{v}' is not in the same availability zone as instance"
                            ),
                        ));
                    }
                }
                for a in &spec.associate_addresses {
                    let addr = self.address(a).ok_or_else(|| {
                        CloudError::new(
                            "InvalidAllocationID.NotFound",
                            format!("The allocation ID '{a}' does not exist"),
                        )
                    })?;
                    if let Some(other) = &addr.instance {
                        return Err(CloudError::new(
                            "Resource.AlreadyAssociated",
                            format!("{a} is already associated with {other}"),
                        ));
                    }
                }
                let new_id = self.new_id("i-");
                self.instances.insert(
                    new_id.clone(),
                    Instance {
                        id: new_id.clone(),
                        instance_type: spec.instance_type.clone(),
                        state: if spec.stopped {
                            InstanceState::Stopped
                        } else {
                            InstanceState::Running
                        },
                        zone: spec.zone.clone(),
                        image: Some(image_id),
                        lifecycle: spec.lifecycle,
                        hibernation: spec.hibernation,
                        monitoring: spec.monitoring,
                        tags: spec.tags.clone(),
                        stop_reason: None,
                    },
                );
                for v in &spec.attach_volumes {
                    self.link_volume(v, Some(&new_id));
                }
                for a in &spec.associate_addresses {
                    self.link_address(a, Some(&new_id));
                }
                Ok(Outcome {
                    created: Some(new_id),
                })
            }
            Op::TerminateInstance { instance } => {
                let iid = id(instance)?;
                let i = self.instance_mut(&iid)?;
                i.state = InstanceState::Terminated;
                i.stop_reason = None;
                // Data volumes survive termination, detached (AWS's default for
                // volumes attached after launch); delete-on-termination ones (root
                // volumes) go with the instance.
                let volumes: Vec<(String, bool)> = self
                    .attached_volumes(&iid)
                    .iter()
                    .map(|v| (v.id.clone(), v.delete_on_termination))
                    .collect();
                for (v, goes) in volumes {
                    self.link_volume(&v, None);
                    if goes {
                        self.volumes.remove(&v);
                    }
                }
                // An Elastic IP is disassociated.
                let addresses: Vec<String> = self
                    .associated_addresses(&iid)
                    .iter()
                    .map(|a| a.allocation_id.clone())
                    .collect();
                for a in addresses {
                    self.link_address(&a, None);
                }
                Ok(Outcome::default())
            }
            Op::ModifyVolume {
                volume,
                volume_type,
                iops,
                throughput_mbps,
            } => {
                let vid = id(volume)?;
                self.volume_mut(&vid)?;
                // AWS: one modification per volume every six hours.
                if let Some(last) = self.volume_modified_at.get(&vid)
                    && crate::clock::volume_ready_at(last).is_some_and(|ready| now < ready)
                {
                    return Err(CloudError::new(
                        "VolumeModificationRateExceeded",
                        "You've reached the maximum modification rate per volume limit. Wait at least 6 hours between modifications per EBS volume.",
                    ));
                }
                let v = self.volume_mut(&vid)?;
                v.volume_type = volume_type.clone();
                v.iops = match volume_type.as_str() {
                    "gp3" => Some(iops.unwrap_or(3000)),
                    "io1" | "io2" => Some(iops.or(v.iops).unwrap_or(100)),
                    "gp2" => Some((v.size_gb * 3).clamp(100, 16000)),
                    _ => None,
                };
                v.throughput_mbps = match volume_type.as_str() {
                    "gp3" => Some(throughput_mbps.unwrap_or(125)),
                    _ => None,
                };
                self.volume_modified_at
                    .insert(vid, crate::clock::rfc3339(now));
                Ok(Outcome::default())
            }
            Op::CreateSnapshot { volume, tags } => {
                let vid = id(volume)?;
                let size_gb = self
                    .volume(&vid)
                    .ok_or_else(|| not_found("volume", "Volume", &vid))?
                    .size_gb;
                let snap_id = self.new_id("snap-");
                self.snapshots.insert(
                    snap_id.clone(),
                    Snapshot {
                        id: snap_id.clone(),
                        volume: Some(vid),
                        size_gb,
                        tags: tags.clone(),
                    },
                );
                Ok(Outcome {
                    created: Some(snap_id),
                })
            }
            Op::AttachVolume { volume, instance } => {
                let (vid, iid) = (id(volume)?, id(instance)?);
                let inst = self
                    .instance(&iid)
                    .ok_or_else(|| not_found("instance", "InstanceID", &iid))?;
                if inst.state == InstanceState::Terminated {
                    return Err(CloudError::new(
                        "IncorrectState",
                        format!("Instance '{iid}' is terminated."),
                    ));
                }
                let zone = inst.zone.clone();
                let v = self.volume_mut(&vid)?;
                if let Some(other) = &v.attached_to {
                    return Err(CloudError::new(
                        "VolumeInUse",
                        format!("{vid} is already attached to an instance ({other})"),
                    ));
                }
                if v.zone != zone {
                    return Err(CloudError::new(
                        "InvalidVolume.ZoneMismatch",
                        format!(
                            "The volume '{vid}' is not in the same availability zone as instance '{iid}'"
                        ),
                    ));
                }
                self.link_volume(&vid, Some(&iid));
                Ok(Outcome::default())
            }
            Op::AssociateAddress { address, instance } => {
                let (aid, iid) = (id(address)?, id(instance)?);
                let inst = self
                    .instance(&iid)
                    .ok_or_else(|| not_found("instance", "InstanceID", &iid))?;
                if inst.state == InstanceState::Terminated {
                    return Err(CloudError::new(
                        "IncorrectInstanceState",
                        format!("The instance '{iid}' is terminated."),
                    ));
                }
                let a = self.addresses.get_mut(&aid).ok_or_else(|| {
                    CloudError::new(
                        "InvalidAllocationID.NotFound",
                        format!("The allocation ID '{aid}' does not exist"),
                    )
                })?;
                if let Some(other) = &a.instance {
                    return Err(CloudError::new(
                        "Resource.AlreadyAssociated",
                        format!("{aid} is already associated with {other}"),
                    ));
                }
                self.link_address(&aid, Some(&iid));
                Ok(Outcome::default())
            }
            Op::DisassociateAddress { address, instance } => {
                let (aid, iid) = (id(address)?, id(instance)?);
                let a = self.addresses.get_mut(&aid).ok_or_else(|| {
                    CloudError::new(
                        "InvalidAllocationID.NotFound",
                        format!("The allocation ID '{aid}' does not exist"),
                    )
                })?;
                if a.instance.as_deref() != Some(iid.as_str()) {
                    return Err(CloudError::new(
                        "InvalidAssociationID.NotFound",
                        format!("{aid} is not associated with {iid}"),
                    ));
                }
                self.link_address(&aid, None);
                Ok(Outcome::default())
            }
            Op::DetachVolume { volume, instance } => {
                let (vid, iid) = (id(volume)?, id(instance)?);
                let v = self.volume_mut(&vid)?;
                if v.attached_to.as_deref() != Some(iid.as_str()) {
                    return Err(CloudError::new(
                        "IncorrectState",
                        format!("Volume '{vid}' is not attached to instance '{iid}'"),
                    ));
                }
                self.link_volume(&vid, None);
                Ok(Outcome::default())
            }
            Op::DeleteVolume { volume } => {
                let vid = id(volume)?;
                let v = self
                    .volume(&vid)
                    .ok_or_else(|| not_found("volume", "Volume", &vid))?;
                if let Some(i) = &v.attached_to {
                    return Err(CloudError::new(
                        "VolumeInUse",
                        format!("Volume {vid} is currently attached to {i}"),
                    ));
                }
                self.volumes.remove(&vid);
                Ok(Outcome::default())
            }
            Op::CreateVolume { spec } => {
                let sid = id(&spec.snapshot)?;
                let snap = self
                    .snapshot(&sid)
                    .ok_or_else(|| not_found("snapshot", "Snapshot", &sid))?;
                if spec.size_gb < snap.size_gb {
                    return Err(CloudError::new(
                        "InvalidParameterValue",
                        format!(
                            "Volume of {}GiB is smaller than snapshot '{sid}', which is {}GiB",
                            spec.size_gb, snap.size_gb
                        ),
                    ));
                }
                let vol_id = self.new_id("vol-");
                self.volumes.insert(
                    vol_id.clone(),
                    Volume {
                        id: vol_id.clone(),
                        volume_type: spec.volume_type.clone(),
                        size_gb: spec.size_gb,
                        delete_on_termination: false,
                        iops: spec.iops,
                        throughput_mbps: spec.throughput_mbps,
                        zone: spec.zone.clone(),
                        attached_to: None,
                        tags: spec.tags.clone(),
                    },
                );
                Ok(Outcome {
                    created: Some(vol_id),
                })
            }
            Op::DeleteSnapshot { snapshot } => {
                let sid = id(snapshot)?;
                if self.snapshot(&sid).is_none() {
                    return Err(not_found("snapshot", "Snapshot", &sid));
                }
                if let Some(img) = self.image_using(&sid) {
                    return Err(CloudError::new(
                        "InvalidSnapshot.InUse",
                        format!("The snapshot {sid} is currently in use by {}", img.id),
                    ));
                }
                self.snapshots.remove(&sid);
                Ok(Outcome::default())
            }
            Op::ReleaseAddress { address } => {
                let aid = id(address)?;
                let a = self.address(&aid).ok_or_else(|| {
                    CloudError::new(
                        "InvalidAllocationID.NotFound",
                        format!("The allocation ID '{aid}' does not exist"),
                    )
                })?;
                if let Some(i) = &a.instance {
                    return Err(CloudError::new(
                        "InvalidIPAddress.InUse",
                        format!("Address {} is in use (associated with {i})", a.public_ip),
                    ));
                }
                self.addresses.remove(&aid);
                Ok(Outcome::default())
            }
            Op::SetMonitoring { instance, detailed } => {
                let i = self.instance_mut(&id(instance)?)?;
                if i.state == InstanceState::Terminated {
                    return Err(CloudError::new(
                        "IncorrectInstanceState",
                        format!("The instance '{}' is terminated.", i.id),
                    ));
                }
                i.monitoring = if *detailed {
                    Monitoring::Detailed
                } else {
                    Monitoring::Basic
                };
                Ok(Outcome::default())
            }
            Op::UpdateGroup {
                group,
                min,
                max,
                desired,
            } => {
                if min > max || desired < min || desired > max {
                    return Err(CloudError::new(
                        "ValidationError",
                        format!(
                            "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
                        ),
                    ));
                }
                let g = self.auto_scaling_groups.get_mut(group).ok_or_else(|| {
                    CloudError::new(
                        "ValidationError",
                        format!("AutoScalingGroup name not found - {group}"),
                    )
                })?;
                (g.min, g.max, g.desired) = (*min, *max, *desired);
                Ok(Outcome::default())
            }
            Op::PurchaseReservation { offering, count } => {
                let o = self
                    .offerings
                    .iter()
                    .find(|o| &o.id == offering)
                    .cloned()
                    .ok_or_else(|| {
                        CloudError::new(
                            "InvalidReservedInstancesOfferingId",
                            format!("The offering '{offering}' does not exist"),
                        )
                    })?;
                let rid = self.new_id("ri-");
                self.reserved_instances.push(Reservation {
                    id: rid.clone(),
                    instance_type: o.instance_type,
                    count: *count,
                    term: o.term,
                    payment: o.payment,
                    offering_class: o.offering_class,
                    zone: o.zone,
                    state: "active".into(),
                });
                Ok(Outcome { created: Some(rid) })
            }
        }
    }

    /// The resources of `ids` that exist, as a smaller inventory (what a
    /// provider's batched describe returns). Offerings and types come along.
    pub fn subset(&self, query: &Query) -> Inventory {
        let mut out = Inventory {
            region: self.region.clone(),
            instance_types: self.instance_types.clone(),
            ..Inventory::default()
        };
        fn pick<T: Clone>(all: &BTreeMap<String, T>, ids: &[&str]) -> BTreeMap<String, T> {
            ids.iter()
                .filter_map(|id| all.get(*id).map(|v| (id.to_string(), v.clone())))
                .collect()
        }
        let of = |kind: fn(&ResourceId) -> Option<&str>| -> Vec<&str> {
            query.resources.iter().filter_map(kind).collect()
        };
        out.instances = pick(
            &self.instances,
            &of(|r| match r {
                ResourceId::Instance(i) => Some(i),
                _ => None,
            }),
        );
        out.volumes = pick(
            &self.volumes,
            &of(|r| match r {
                ResourceId::Volume(i) => Some(i),
                _ => None,
            }),
        );
        // Volumes attached to a named instance matter to terminate and spot.
        if query.attachments && !out.instances.is_empty() {
            for v in self.volumes.values() {
                if v.attached_to
                    .as_deref()
                    .is_some_and(|i| out.instances.contains_key(i))
                {
                    out.volumes.insert(v.id.clone(), v.clone());
                }
            }
        }
        if query.attachments && !out.instances.is_empty() {
            for a in self.addresses.values() {
                if a.instance
                    .as_deref()
                    .is_some_and(|i| out.instances.contains_key(i))
                {
                    out.addresses.insert(a.allocation_id.clone(), a.clone());
                }
            }
        }
        out.volume_modified_at = self
            .volume_modified_at
            .iter()
            .filter(|(v, _)| out.volumes.contains_key(*v))
            .map(|(v, t)| (v.clone(), t.clone()))
            .collect();
        out.snapshots = pick(
            &self.snapshots,
            &of(|r| match r {
                ResourceId::Snapshot(i) => Some(i),
                _ => None,
            }),
        );
        if !out.snapshots.is_empty() {
            for img in self.images.values() {
                if img.snapshots.iter().any(|s| out.snapshots.contains_key(s)) {
                    out.images.insert(img.id.clone(), img.clone());
                }
            }
        }
        out.addresses.extend(pick(
            &self.addresses,
            &of(|r| match r {
                ResourceId::Address(i) => Some(i),
                _ => None,
            }),
        ));
        out.auto_scaling_groups = pick(
            &self.auto_scaling_groups,
            &of(|r| match r {
                ResourceId::Group(i) => Some(i),
                _ => None,
            }),
        );
        out.offerings = self
            .offerings
            .iter()
            .filter(|o| query.offerings.iter().any(|q| q.matches(o)))
            .cloned()
            .collect();
        let types: BTreeSet<&str> = query
            .offerings
            .iter()
            .map(|q| q.instance_type.as_str())
            .collect();
        out.reserved_instances = self
            .reserved_instances
            .iter()
            .filter(|r| types.contains(r.instance_type.as_str()))
            .cloned()
            .collect();
        if let Some((run, step)) = &query.created_by {
            let tagged =
                |t: &Tags| t.get("pare:run") == Some(run) && t.get("pare:step") == Some(step);
            for x in self.images.values().filter(|x| tagged(&x.tags)) {
                out.images.insert(x.id.clone(), x.clone());
            }
            for x in self.snapshots.values().filter(|x| tagged(&x.tags)) {
                out.snapshots.insert(x.id.clone(), x.clone());
            }
            for x in self.instances.values().filter(|x| tagged(&x.tags)) {
                out.instances.insert(x.id.clone(), x.clone());
            }
        }
        out.reindex();
        out
    }

    /// The attributes of one resource, for previews and fingerprints.
    pub fn attributes(&self, r: &ResourceId) -> Option<BTreeMap<String, serde_json::Value>> {
        let value = match r {
            ResourceId::Instance(id) => serde_json::to_value(self.instance(id)?),
            ResourceId::Volume(id) => serde_json::to_value(self.volume(id)?),
            ResourceId::Snapshot(id) => serde_json::to_value(self.snapshot(id)?),
            ResourceId::Address(id) => serde_json::to_value(self.address(id)?),
            ResourceId::Group(id) => serde_json::to_value(self.group(id)?),
        }
        .ok()?;
        let serde_json::Value::Object(map) = value else {
            return None;
        };
        Some(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
    }
}

impl OfferingQuery {
    pub fn matches(&self, o: &Offering) -> bool {
        o.instance_type == self.instance_type
            && o.term == self.term
            && o.payment == self.payment
            && o.offering_class == self.offering_class
            && o.zone == self.zone
    }
}

#[cfg(test)]
mod tests {
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
}

/// Resources keyed by id in memory, written as a list (SPEC section 4).
pub trait Keyed {
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($t:ty => $f:ident),* $(,)?) => {
        $(impl Keyed for $t {
            fn key(&self) -> &str {
                &self.$f
            }
        })*
    };
}

keyed!(Instance => id, Volume => id, Snapshot => id, Image => id, Address => allocation_id, Group => name);

mod list_map {
    use super::Keyed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer, T: Serialize>(
        map: &BTreeMap<String, T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de> + Keyed>(
        d: D,
    ) -> Result<BTreeMap<String, T>, D::Error> {
        let list = Vec::<T>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for item in list {
            let key = item.key().to_string();
            if map.insert(key.clone(), item).is_some() {
                return Err(serde::de::Error::custom(format!("`{key}` is listed twice")));
            }
        }
        Ok(map)
    }
}
