//! Resources by kind and id, their attributes as pare compares them, and
//! the small enums every layer shares (instance states, lifecycles, tags).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Resource tags, sorted so everything serialised is deterministic.
pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    #[default]
    OnDemand,
    Spot,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::OnDemand => "on-demand",
            Lifecycle::Spot => "spot",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Monitoring {
    #[default]
    Basic,
    Detailed,
}

impl Monitoring {
    pub fn as_str(self) -> &'static str {
        match self {
            Monitoring::Basic => "basic",
            Monitoring::Detailed => "detailed",
        }
    }
}

/// A resource a plan names, by kind and id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum ResourceId {
    Instance(String),
    Volume(String),
    Snapshot(String),
    Address(String),
    Group(String),
}

impl ResourceId {
    pub fn id(&self) -> &str {
        match self {
            ResourceId::Instance(id)
            | ResourceId::Volume(id)
            | ResourceId::Snapshot(id)
            | ResourceId::Address(id)
            | ResourceId::Group(id) => id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ResourceId::Instance(_) => "instance",
            ResourceId::Volume(_) => "volume",
            ResourceId::Snapshot(_) => "snapshot",
            ResourceId::Address(_) => "address",
            ResourceId::Group(_) => "auto-scaling group",
        }
    }

    /// `kind:id`, the key of run records and saved plans.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind(), self.id())
    }

    /// The resource of a kind (as [`ResourceId::kind`] names it) and an id.
    pub fn from_parts(kind: &str, id: &str) -> Result<ResourceId, String> {
        let id = id.to_string();
        Ok(match kind {
            "instance" => ResourceId::Instance(id),
            "volume" => ResourceId::Volume(id),
            "snapshot" => ResourceId::Snapshot(id),
            "address" => ResourceId::Address(id),
            "auto-scaling group" => ResourceId::Group(id),
            other => return Err(format!("`{other}` is not a kind of resource pare knows")),
        })
    }

    /// The resource a `kind:id` key names (see [`ResourceId::key`]). The one
    /// parser of these keys: an unknown kind is an error, never a guess.
    pub fn from_key(key: &str) -> Result<ResourceId, String> {
        let (kind, id) = key
            .split_once(':')
            .ok_or_else(|| format!("`{key}` is not a `kind:id` resource key"))?;
        ResourceId::from_parts(kind, id)
    }
}

/// Attributes of a resource, sorted.
pub type Attributes = BTreeMap<String, serde_json::Value>;

/// Fingerprint of a resource's attributes: what `apply` of a saved plan compares.
pub fn fingerprint(attrs: Option<&Attributes>) -> String {
    match attrs {
        None => "absent".into(),
        Some(a) => {
            let json = serde_json::to_string(a).expect("attributes serialise");
            hex(&Sha256::digest(json.as_bytes()))
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_unknown_kinds_are_errors() {
        for r in [
            ResourceId::Instance("i-0a1b2c3d".into()),
            ResourceId::Group("web:asg".into()),
            ResourceId::Address("eipalloc-0a1b2c3d".into()),
        ] {
            assert_eq!(ResourceId::from_key(&r.key()), Ok(r));
        }
        assert!(ResourceId::from_key("bucket:x").is_err());
        assert!(ResourceId::from_key("nokey").is_err());
    }
}
