//! Saved plans (`pare plan --out FILE`) and the proof `apply` makes before
//! running one.
//!
//! A saved plan is the reviewed artifact: exactly what was previewed, as
//! readable JSON, with each named resource's fingerprint. Its JSON is never
//! trusted to say what to do. At apply time pare proves that the steps it
//! is about to run are the steps the plan file (present, with the same
//! sha256) yields against the account as the saved plan recorded it: it
//! plans the file again, refuses if any resource changed since (stale), and
//! refuses if anything material differs from what was saved (an edited
//! step, target, after-state, order or status). The engine then runs the
//! freshly planned typed steps, and every policy check runs on them.

use super::Refusal;
use crate::planner::Planned;
use crate::preview::{PlanJson, to_json};
use crate::vocabulary::{Attributes, hex, words::clean};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

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
    /// Where the state was when it was planned.
    pub state_dir: String,
    /// `kind:id` → sha256 of the resource's attributes when planned ("absent" if missing).
    pub fingerprints: BTreeMap<String, String>,
    /// `kind:id` → the attributes when planned, to name what changed since.
    pub observed: BTreeMap<String, Option<Attributes>>,
    /// The plan's provider block.
    pub provider_spec: crate::plan::Provider,
    #[serde(flatten)]
    pub preview: PlanJson,
}

impl SavedPlan {
    pub fn new(planned: &Planned, state: &str) -> SavedPlan {
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
            state_dir: state.to_string(),
            fingerprints: planned.fingerprints.clone(),
            observed: planned.observed.clone(),
            provider_spec: planned.provider_spec.clone(),
            preview: to_json(planned),
        }
    }

    /// Whether `text` is a saved plan rather than a plan file.
    pub fn looks_saved(text: &str) -> bool {
        text.trim_start().starts_with('{') && text.contains(KIND)
    }

    /// Reads a saved plan; a refusal says why it cannot be one.
    pub fn parse(path: &Path, text: &str) -> Result<SavedPlan, Refusal> {
        let unreadable = |why: String| {
            Refusal::new(
                "saved::unreadable",
                format!("{} is not a readable saved plan: {why}", path.display()),
                "save it again with `pare plan PLAN --out FILE`, review it, and apply that",
            )
        };
        let saved: SavedPlan = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        if saved.kind != KIND {
            return Err(unreadable(format!("its kind is `{}`", clean(&saved.kind))));
        }
        Ok(saved)
    }

    /// The plan file this was saved from must be here, unchanged.
    pub fn check_plan_file(&self, text: &str) -> Result<(), Refusal> {
        let now = hex(&Sha256::digest(text.as_bytes()));
        if now != self.preview.plan.sha256 {
            return Err(Refusal::new(
                "saved::plan-changed",
                format!(
                    "the plan file {} has changed since the plan was saved (sha256 {} then, {} now)",
                    clean(&self.preview.plan.path),
                    short(&self.preview.plan.sha256),
                    short(&now)
                ),
                "a saved plan applies only the plan file it was made from: plan the file as it is now (`pare plan PLAN --out FILE`), review it, and apply that",
            ));
        }
        Ok(())
    }

    /// Proves that `replanned` (the plan file planned again, now) is what
    /// was saved: nothing changed in the account since, and every step,
    /// target, after-state, order and status is the same.
    pub fn prove(&self, replanned: &Planned) -> Result<(), Refusal> {
        if self.provider_spec != replanned.provider_spec {
            return Err(Refusal::new(
                "saved::differs",
                "the saved plan names another provider than its plan file",
                "save it again with `pare plan PLAN --out FILE`, review it, and apply that",
            ));
        }
        let stale = self.stale(replanned);
        if !stale.is_empty() {
            return Err(Refusal::new(
                "saved::stale",
                format!(
                    "the saved plan is stale; since it was saved ({}):\n    {}",
                    clean(&self.saved_at),
                    stale.join("\n    ")
                ),
                "plan again (`pare plan PLAN --out FILE`), review the new preview, and apply that",
            ));
        }
        let differences = differences(&self.preview, &to_json(replanned));
        if !differences.is_empty() {
            let shown: Vec<&str> = differences.iter().take(10).map(String::as_str).collect();
            let more = differences.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!("\n    … and {more} more")
            } else {
                String::new()
            };
            return Err(Refusal::new(
                "saved::differs",
                format!(
                    "the saved plan is not what its plan file yields (it was edited, or pare's policy changed since):\n    {}{more}",
                    shown.join("\n    ")
                ),
                "never edit a saved plan: plan again (`pare plan PLAN --out FILE`), review it, and apply that",
            ));
        }
        Ok(())
    }

    /// What changed in the account since it was saved, one line per resource.
    fn stale(&self, replanned: &Planned) -> Vec<String> {
        let mut keys: Vec<&String> = self
            .fingerprints
            .keys()
            .chain(replanned.fingerprints.keys())
            .collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            let then = self.fingerprints.get(key);
            let now = replanned.fingerprints.get(key);
            if then == now {
                continue;
            }
            let a = self.observed.get(key).cloned().flatten();
            let b = replanned.observed.get(key).cloned().flatten();
            let what = match (then, now) {
                (Some(_), Some(_)) => describe_drift(a.as_ref(), b.as_ref()),
                _ => "the plan does not name it the same way".into(),
            };
            out.push(format!("{}: {what}", clean(key)));
        }
        out
    }
}

fn short(sha: &str) -> String {
    clean(sha.get(..12).unwrap_or(sha)).into_owned()
}

/// What a step of a recommendation is, for comparison: the operation, its
/// inverse and whether it can be undone (not the words describing them).
fn material(rec: &crate::preview::RecJson) -> Value {
    let steps: Vec<Value> = rec
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "op": serde_json::to_value(&s.op).unwrap_or(Value::Null),
                "inverse": s.inverse,
                "reversible": s.reversible,
            })
        })
        .collect();
    serde_json::json!({
        "action": rec.action,
        "resource": rec.resource,
        "resource_kind": rec.resource_kind,
        "status": rec.status,
        "risk": rec.risk,
        "reversible": rec.reversible,
        "depends_on": rec.depends_on,
        "implicit_after": rec.implicit_after.iter().map(|x| &x.id).collect::<Vec<_>>(),
        "blocked_by": rec.blocked_by,
        "before": rec.before,
        "after": rec.after,
        "steps": steps,
    })
}

/// Every material difference between what was saved and what was planned
/// now, one line each.
fn differences(saved: &PlanJson, now: &PlanJson) -> Vec<String> {
    let mut out = Vec::new();
    let ids = |p: &PlanJson| {
        p.recommendations
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
    };
    if ids(saved) != ids(now) {
        out.push(format!(
            "the recommendations differ: saved {}, planned now {}",
            clean(&ids(saved).join(", ")),
            ids(now).join(", ")
        ));
        return out;
    }
    for (a, b) in saved.recommendations.iter().zip(&now.recommendations) {
        let (ma, mb) = (material(a), material(b));
        if ma == mb {
            continue;
        }
        let fields: Vec<&str> = ma
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter(|k| ma.get(k.as_str()) != mb.get(k.as_str()))
            .map(String::as_str)
            .collect();
        out.push(format!("{}: {} differ", clean(&b.id), fields.join(", ")));
    }
    if saved.waves != now.waves {
        out.push("the order (waves) differs".into());
    }
    out
}

/// "type: m5.xlarge → m5.large; state: running → stopped".
pub fn describe_drift(then: Option<&Attributes>, now: Option<&Attributes>) -> String {
    match (then, now) {
        (None, None) => "unchanged".into(),
        (Some(_), None) => "it no longer exists".into(),
        (None, Some(_)) => "it exists now".into(),
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    let show =
                        |v: Option<&Value>| v.map_or("(none)".to_string(), |v| v.to_string());
                    clean(&format!("{k}: {} → {}", show(a.get(k)), show(b.get(k)))).into_owned()
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}
