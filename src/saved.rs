//! Saved plans (`pare plan --out FILE`): exactly what was previewed, as
//! readable JSON, so `apply` can run those steps and refuse if anything
//! changed since (each resource's observed fingerprint is kept).

use crate::planner::{Planned, hex};
use crate::preview::{PlanJson, to_json};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const KIND: &str = "pare-saved-plan";

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPlan {
    /// Always `pare-saved-plan`: how `apply` tells a saved plan from a plan file.
    pub kind: String,
    /// Identifies this saved plan (and the runs that apply it).
    pub lineage: String,
    pub saved_at: String,
    /// The settings that shaped it.
    pub parallelism: usize,
    pub state_dir: String,
    /// `kind:id` → sha256 of the resource's attributes when planned ("absent" if missing).
    pub fingerprints: BTreeMap<String, String>,
    /// `kind:id` → the attributes when planned, to name what changed since.
    pub observed: BTreeMap<String, Option<crate::planner::Attributes>>,
    /// The plan's provider block.
    pub provider_spec: crate::plan::Provider,
    #[serde(flatten)]
    pub preview: PlanJson,
}

impl SavedPlan {
    pub fn new(planned: &Planned, state_dir: &std::path::Path) -> SavedPlan {
        let now = crate::clock::now();
        let saved_at = crate::clock::rfc3339(now);
        let nanos = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!("{}:{}:{}", planned.plan_sha256, nanos, saved_at);
        let lineage = hex(&Sha256::digest(seed.as_bytes()))[..16].to_string();
        SavedPlan {
            kind: KIND.into(),
            lineage,
            saved_at,
            parallelism: planned.summary.parallelism,
            state_dir: state_dir.display().to_string(),
            fingerprints: planned.fingerprints.clone(),
            observed: planned.observed.clone(),
            provider_spec: planned.provider_spec.clone(),
            preview: to_json(planned),
        }
    }
}
