//! The typed plan, version 1: what a plan file means once it has been checked.
//!
//! The types mirror the YAML a person writes, field for field, so the JSON
//! Schema derived from them (`pare schema`) describes the file format. The
//! loader guarantees the invariants the types cannot express (exactly one of
//! `to`/`delete`, the target that matches a `fix`, ...). Positions in the
//! source are kept beside the values so later stages can point at them.

use crate::diagnostic::Span;
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::BTreeMap;

/// A plan file.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pare plan file, version 1")]
pub struct Plan {
    /// The plan format version. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// A short name shown in previews and the run history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the resources live: exactly one provider.
    pub provider: Provider,
    /// The approval record, reviewed together with the plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// The cost recommendations.
    #[schemars(with = "Vec<crate::plan::schema::RecommendationSchema>")]
    pub recommendations: Vec<Recommendation>,
}

/// Exactly one provider.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Provider {
    /// A simulated account kept in a file: the embedded default.
    Sandbox(SandboxProvider),
    /// Amazon EC2 through the AWS SDK.
    Aws(AwsProvider),
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Sandbox(_) => "sandbox",
            Provider::Aws(_) => "aws",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxProvider {
    /// The seed account file, relative to the plan file.
    pub seed: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsProvider {
    /// The region, e.g. `us-east-1`; else `AWS_REGION` or the profile's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A named profile from the AWS config files; else `AWS_PROFILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// An endpoint to use instead of AWS's, e.g. a local test endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Instance ids per describe call and per stop/start/terminate/monitor
    /// call (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// How long to wait for instances to stop or start, in seconds (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_timeout_s: Option<u32>,
    /// How long to wait for an image to become available, in seconds (default 1800).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_timeout_s: Option<u32>,
    /// How long to wait for a snapshot to complete, in seconds (default 3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_timeout_s: Option<u32>,
    /// How long to wait for a volume modification to take effect, in seconds (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_timeout_s: Option<u32>,
}

/// Who approved which recommendations, and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver, usually an e-mail address.
    pub by: String,
    /// Recommendation ids, or `["*"]` for all of them.
    pub covers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Approval {
    /// Whether this approval covers the recommendation `id`.
    pub fn covers(&self, id: &str) -> bool {
        self.covers.iter().any(|c| c == "*" || c == id)
    }
}

/// The most monthly savings one recommendation may declare, in USD: more
/// than any one change saves, and small enough that no plan's total can
/// overflow (a total of infinity cannot be kept in a run record).
pub const MAX_SAVINGS_MONTHLY_USD: f64 = 1_000_000_000.0;

/// The most a spot recommendation may offer per hour, in USD: far above the
/// dearest instance's on-demand price.
pub const MAX_PRICE_USD_HOUR: f64 = 100_000.0;

/// One recommendation: the fields every action shares, and the action.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savings_monthly_usd: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Where an imported recommendation came from (`pare import`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(flatten)]
    pub action: Action,
    /// Where things are in the source file.
    #[serde(skip)]
    pub spans: RecommendationSpans,
}

/// The services `pare import` reads.
pub const SOURCE_SERVICES: [&str; 2] = ["cost-optimization-hub", "compute-optimizer"];

/// What the resource was when an imported recommendation was made, by the
/// attribute names of `pare inventory`: what `pare plan` checks it still is.
pub const ASSUMED_KEYS: [&str; 8] = [
    "type",
    "size_gb",
    "iops",
    "throughput_mbps",
    "min",
    "max",
    "desired",
    "instance_type",
];

/// Where an imported recommendation came from, and what it assumed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `cost-optimization-hub` or `compute-optimizer`.
    pub service: String,
    /// The service's id (or ARN) of the recommendation.
    pub recommendation_id: String,
    /// When the service last refreshed it (RFC 3339): past
    /// `max_recommendation_age_days` (pare.toml), the preview flags it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<String>,
    /// The resource as the recommendation measured it (`type: m5.xlarge`,
    /// `size_gb: 500`, `min: 2`, …): if it is not so now, the
    /// recommendation is blocked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assumed: BTreeMap<String, serde_json::Value>,
}

/// Source positions of a recommendation's parts.
#[derive(Debug, Clone, Default)]
pub struct RecommendationSpans {
    /// The whole entry (its first key).
    pub entry: Span,
    pub id: Span,
    pub action: Span,
    /// The field naming the resource the action changes.
    pub resource: Span,
    /// One per `depends_on` entry, in order.
    pub depends_on: Vec<Span>,
}

/// What to do. Each variant's fields are exactly the YAML fields of that action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Terminate(Terminate),
    Rightsize(Rightsize),
    Hibernate(Hibernate),
    Spot(Spot),
    Reserve(Reserve),
    Autoscale(Autoscale),
    Storage(Storage),
    Config(Config),
}

impl Action {
    /// The action's name as written in plans.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Terminate(_) => "terminate",
            Action::Rightsize(_) => "rightsize",
            Action::Hibernate(_) => "hibernate",
            Action::Spot(_) => "spot",
            Action::Reserve(_) => "reserve",
            Action::Autoscale(_) => "autoscale",
            Action::Storage(_) => "storage",
            Action::Config(_) => "config",
        }
    }

    /// The id of the resource this action changes (for `reserve`, the instance type it buys).
    pub fn resource(&self) -> &str {
        match self {
            Action::Terminate(a) => &a.instance,
            Action::Rightsize(a) => &a.instance,
            Action::Hibernate(a) => &a.instance,
            Action::Spot(a) => &a.instance,
            Action::Reserve(a) => &a.instance_type,
            Action::Autoscale(a) => &a.group,
            Action::Storage(a) => &a.volume,
            Action::Config(a) => a.target(),
        }
    }
}

/// The names of the eight actions, in the order the documentation lists them.
pub const ACTION_NAMES: [&str; 8] = [
    "terminate",
    "rightsize",
    "hibernate",
    "spot",
    "reserve",
    "autoscale",
    "storage",
    "config",
];

/// Terminate an instance, by default after imaging it so it can be relaunched.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Terminate {
    /// The instance id (`i-` and 8 or 17 hex digits).
    #[schemars(regex(pattern = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub instance: String,
    /// `image` (default) keeps an image to relaunch from; `none` is irreversible.
    #[serde(default)]
    pub backup: Backup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Backup {
    #[default]
    Image,
    None,
}

/// Change an instance's type (stop, set type, start if it was running).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rightsize {
    /// The instance id.
    #[schemars(regex(pattern = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub instance: String,
    /// The new instance type, `family.size`, e.g. `m5.large`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$"))]
    pub to: String,
}

/// Stop an instance, hibernating it by default.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hibernate {
    /// The instance id.
    #[schemars(regex(pattern = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub instance: String,
    /// `hibernate` (default; the instance must have hibernation configured) or `stop`.
    #[serde(default)]
    pub mode: HibernateMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HibernateMode {
    #[default]
    Hibernate,
    Stop,
}

/// Replace an on-demand instance by a spot instance of the same type and zone.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    /// The instance id.
    #[schemars(regex(pattern = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub instance: String,
    /// The most to pay per hour; else up to the on-demand price. At most 100,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = MAX_PRICE_USD_HOUR))]
    pub max_price_usd_hour: Option<f64>,
}

/// Buy reserved instances. Irreversible.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reserve {
    /// The instance type to reserve, e.g. `m5.large`.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9-]*$"))]
    pub instance_type: String,
    /// How many.
    #[schemars(range(min = 1))]
    pub count: u32,
    pub term: Term,
    pub payment: Payment,
    #[serde(default)]
    pub offering_class: OfferingClass,
    /// An availability zone for a zonal reservation; else regional.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum Term {
    #[serde(rename = "1y")]
    OneYear,
    #[serde(rename = "3y")]
    ThreeYears,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Payment {
    NoUpfront,
    PartialUpfront,
    AllUpfront,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OfferingClass {
    #[default]
    Standard,
    Convertible,
}

/// Change an auto-scaling group's size. At least one of `min`, `max`, `desired`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// The group's name.
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<u32>,
}

/// Change a volume's type, or delete it (by default after a snapshot).
/// Exactly one of `to` and `delete`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// The volume id (`vol-` and 8 or 17 hex digits).
    #[schemars(regex(pattern = r"^vol-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub volume: String,
    /// The new volume type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<VolumeType>,
    /// Provisioned IOPS (gp3: 3000–16000; io1: 100–64000; io2: 100–256000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    /// Throughput in MiB/s (gp3 only: 125–1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_mbps: Option<u32>,
    /// Delete the volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete: bool,
    /// With `delete`: take a snapshot first (default). `false` is irreversible.
    #[serde(default = "yes")]
    pub snapshot: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Gp2,
    Gp3,
    Io1,
    Io2,
    St1,
    Sc1,
    Standard,
}

impl VolumeType {
    pub const ALL: [(&'static str, VolumeType); 7] = [
        ("gp2", VolumeType::Gp2),
        ("gp3", VolumeType::Gp3),
        ("io1", VolumeType::Io1),
        ("io2", VolumeType::Io2),
        ("st1", VolumeType::St1),
        ("sc1", VolumeType::Sc1),
        ("standard", VolumeType::Standard),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("", |(s, _)| s)
    }
}

/// Fix a wasteful setting. The target field depends on `fix`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub fix: ConfigFix,
    /// With `disable-detailed-monitoring`: the instance id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub instance: Option<String>,
    /// With `release-address`: the Elastic IP's allocation id (`eipalloc-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^eipalloc-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub address: Option<String>,
    /// With `delete-snapshot`: the snapshot id (`snap-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^snap-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub snapshot: Option<String>,
}

impl Config {
    /// The resource the fix changes (the loader guarantees it is present).
    pub fn target(&self) -> &str {
        let target = match self.fix {
            ConfigFix::DisableDetailedMonitoring => &self.instance,
            ConfigFix::ReleaseAddress => &self.address,
            ConfigFix::DeleteSnapshot => &self.snapshot,
        };
        target.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigFix {
    DisableDetailedMonitoring,
    ReleaseAddress,
    DeleteSnapshot,
}

impl ConfigFix {
    pub const ALL: [(&'static str, ConfigFix); 3] = [
        (
            "disable-detailed-monitoring",
            ConfigFix::DisableDetailedMonitoring,
        ),
        ("release-address", ConfigFix::ReleaseAddress),
        ("delete-snapshot", ConfigFix::DeleteSnapshot),
    ];

    /// The field that names the fix's target.
    pub fn target_field(self) -> &'static str {
        match self {
            ConfigFix::DisableDetailedMonitoring => "instance",
            ConfigFix::ReleaseAddress => "address",
            ConfigFix::DeleteSnapshot => "snapshot",
        }
    }
}
