//! An account's resources, and the rules by which operations change them.
//!
//! The sandbox provider persists an `Inventory` and changes it with
//! [`Inventory::apply`]; the planner applies the same operations to a copy to
//! predict after-states. One implementation of the rules serves both, so what
//! `plan` predicts is what `apply` does on the sandbox. The rules are AWS's,
//! with AWS's error codes and wording, so executors meet here the constraints
//! they will meet in EC2.

mod addresses;
mod capacity;
mod instances;
mod subset;
mod volumes;

use super::model::*;
use crate::vocabulary::resolve;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The concrete id of a reference (every ref is resolved before an op is applied).
fn known(r: &Ref) -> Result<String, CloudError> {
    r.known().map(str::to_string).ok_or_else(|| {
        CloudError::new("InvalidParameterValue", format!("unresolved reference {r}"))
    })
}

/// How new resources are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMode {
    /// Real-looking, deterministic ids from a counter (the sandbox).
    #[default]
    Counter,
    /// Placeholders for predictions (`i-(new 1)`), never mistaken for real ids.
    Placeholder,
}

/// One account: the shape of the sandbox file (the README's *The sandbox account*).
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

    /// Runs `steps` on `inv`, resolving references to what earlier steps made.
    /// On failure, undoes the steps that ran (by their inverses) and says which failed.
    pub fn simulate(&mut self, steps: &[Step]) -> Result<Vec<Option<String>>, (usize, CloudError)> {
        let inv = self;
        let mut created: Vec<Option<String>> = Vec::with_capacity(steps.len());
        for (k, step) in steps.iter().enumerate() {
            let op = resolve(&step.op, &created);
            match op
                .as_ref()
                .map_err(|e| e.clone())
                .and_then(|op| inv.apply(op))
            {
                Ok(outcome) => created.push(outcome.created),
                Err(e) => {
                    for (j, done) in steps[..k].iter().enumerate().rev() {
                        if let Inverse::Op { op } = &done.inverse
                            && let Ok(op) = resolve(op, &created[..j + 1])
                        {
                            let _ = inv.apply(&op);
                        }
                    }
                    return Err((k, e));
                }
            }
        }
        Ok(created)
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
        // One method per operation, beside the rules of its kind of resource
        // (instances.rs, volumes.rs, addresses.rs, capacity.rs).
        match op {
            Op::StopInstance {
                instance,
                hibernate,
            } => self.stop_instance(instance, hibernate),
            Op::StartInstance { instance } => self.start_instance(instance),
            Op::SetInstanceType {
                instance,
                instance_type,
            } => self.set_instance_type(instance, instance_type),
            Op::CreateImage { instance, tags } => self.create_image(instance, tags),
            Op::WaitImageAvailable { image } => self.wait_image_available(image),
            Op::LaunchInstance { spec } => self.launch_instance(spec),
            Op::TerminateInstance { instance } => self.terminate_instance(instance),
            Op::ModifyVolume {
                volume,
                volume_type,
                iops,
                throughput_mbps,
            } => self.modify_volume(volume, volume_type, iops, throughput_mbps, now),
            Op::CreateSnapshot { volume, tags } => self.create_snapshot(volume, tags),
            Op::AttachVolume { volume, instance } => self.attach_volume(volume, instance),
            Op::AssociateAddress { address, instance } => self.associate_address(address, instance),
            Op::DisassociateAddress { address, instance } => {
                self.disassociate_address(address, instance)
            }
            Op::DetachVolume { volume, instance } => self.detach_volume(volume, instance),
            Op::DeleteVolume { volume } => self.delete_volume(volume),
            Op::CreateVolume { spec } => self.create_volume(spec),
            Op::DeleteSnapshot { snapshot } => self.delete_snapshot(snapshot),
            Op::ReleaseAddress { address } => self.release_address(address),
            Op::SetMonitoring { instance, detailed } => self.set_monitoring(instance, detailed),
            Op::UpdateGroup {
                group,
                min,
                max,
                desired,
            } => self.update_group(group, min, max, desired),
            Op::PurchaseReservation { offering, count } => {
                self.purchase_reservation(offering, count)
            }
        }
    }
}

/// Resources keyed by id in memory, written as a list (the README's *The sandbox account*).
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

#[cfg(test)]
mod tests;
