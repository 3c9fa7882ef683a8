//! The resources as pare sees them (instances, volumes, snapshots, images,
//! addresses, groups, reservations) and the queries that read them. Every
//! provider speaks this and the [`crate::vocabulary`]; AWS types never
//! appear here.

use serde::{Deserialize, Serialize};

pub use crate::vocabulary::{
    Attributes, CloudError, InstanceState, Inverse, LaunchSpec, Lifecycle, Monitoring, Op, Outcome,
    Ref, ResourceId, Step, Tags, VolumeSpec,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    #[serde(rename = "type")]
    pub instance_type: String,
    pub state: InstanceState,
    pub zone: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub lifecycle: Lifecycle,
    #[serde(default)]
    pub hibernation: bool,
    #[serde(default)]
    pub monitoring: Monitoring,
    #[serde(default)]
    pub tags: Tags,
    /// How the instance stopped last (`hibernated` after a hibernating stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub id: String,
    #[serde(rename = "type")]
    pub volume_type: String,
    pub size_gb: u32,
    #[serde(default)]
    pub iops: Option<u32>,
    #[serde(default)]
    pub throughput_mbps: Option<u32>,
    pub zone: String,
    #[serde(default)]
    pub attached_to: Option<String>,
    /// Deleted with the instance it is attached to (a root volume, usually).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_on_termination: bool,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub volume: Option<String>,
    pub size_gb: u32,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub id: String,
    /// The instance it was made from.
    #[serde(default)]
    pub source_instance: Option<String>,
    #[serde(default)]
    pub state: String,
    /// Snapshots that back the image (they cannot be deleted while it exists).
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub allocation_id: String,
    pub public_ip: String,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    /// The type the group launches, when known (for savings).
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// A reserved-instance offering that can be bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offering {
    pub id: String,
    pub instance_type: String,
    /// `1y` or `3y`.
    pub term: String,
    /// `no-upfront`, `partial-upfront`, `all-upfront`.
    pub payment: String,
    /// `standard` or `convertible`.
    pub offering_class: String,
    /// `None` for a regional reservation.
    #[serde(default)]
    pub zone: Option<String>,
    pub upfront_usd: f64,
    pub hourly_usd: f64,
}

/// Reserved instances bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub id: String,
    pub instance_type: String,
    pub count: u32,
    pub term: String,
    pub payment: String,
    pub offering_class: String,
    #[serde(default)]
    pub zone: Option<String>,
    /// `active`, `payment-pending`, `retired`.
    pub state: String,
}

/// What to look up for a reservation recommendation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OfferingQuery {
    pub instance_type: String,
    pub term: String,
    pub payment: String,
    pub offering_class: String,
    pub zone: Option<String>,
}

/// Everything a plan needs read, in one request, so providers can batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub resources: Vec<ResourceId>,
    pub offerings: Vec<OfferingQuery>,
    /// Instance types whose existence must be checked (rightsizing targets).
    pub instance_types: Vec<String>,
    /// Find what a run's step created: (run id, `rec/step`), matched on the
    /// `pare:run` and `pare:step` tags pare puts on what it creates.
    pub created_by: Option<(String, String)>,
    /// Also read the volumes and addresses attached to the named instances
    /// (terminate and spot move or keep them); costs extra calls on AWS.
    pub attachments: bool,
}
