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

/// The lineage of a saved plan: the first 16 hex digits of the sha256 of
/// its JSON with the lineage itself left empty.
fn content_lineage(v: &Value) -> String {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("lineage".into(), Value::from(""));
    }
    hex(&Sha256::digest(v.to_string().as_bytes()))[..16].to_string()
}

/// Where a state is, as a saved plan records it: an S3 location as is, a
/// directory as its absolute path (`.pare` in another directory is
/// another state).
pub fn state_identity(state: &str) -> String {
    if state.starts_with("s3://") {
        return state.to_string();
    }
    let path = Path::new(state);
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .map_or_else(|_| state.to_string(), |p| p.display().to_string())
}

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
    /// The account it was planned in (AWS's id), when the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `kind:id` → sha256 of the resource's attributes when planned ("absent" if missing).
    pub fingerprints: BTreeMap<String, String>,
    /// `kind:id` → the attributes when planned, to name what changed since.
    pub observed: BTreeMap<String, Option<Attributes>>,
    /// The plan's provider block.
    pub provider_spec: crate::plan::Provider,
    /// The plan's approvals, reviewed with it.
    #[serde(default)]
    pub approvals: Vec<crate::plan::Approval>,
    #[serde(flatten)]
    pub preview: PlanJson,
    /// The saved plan as read, for the proof (every key of it is compared).
    #[serde(skip)]
    pub raw: Option<Value>,
}

impl SavedPlan {
    pub fn new(planned: &Planned, state: &str) -> SavedPlan {
        let saved_at = crate::clock::rfc3339(crate::clock::now());
        let mut saved = SavedPlan {
            kind: KIND.into(),
            lineage: String::new(),
            saved_at,
            parallelism: planned.summary.parallelism,
            state_dir: state_identity(state),
            account: planned.account.clone(),
            fingerprints: planned.fingerprints.clone(),
            observed: planned.observed.clone(),
            provider_spec: planned.provider_spec.clone(),
            approvals: planned.approvals.clone(),
            preview: to_json(planned),
            raw: None,
        };
        saved.lineage = content_lineage(&serde_json::to_value(&saved).unwrap_or(Value::Null));
        saved
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
        // A key given twice would let one value be reviewed and another read.
        serde::Deserializer::deserialize_any(
            &mut serde_json::Deserializer::from_str(text),
            NoDuplicateKeys,
        )
        .map_err(|e| unreadable(e.to_string()))?;
        let raw: Value = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        let mut saved: SavedPlan =
            serde_json::from_value(raw.clone()).map_err(|e| unreadable(e.to_string()))?;
        saved.raw = Some(raw);
        if saved.kind != KIND {
            return Err(unreadable(format!("its kind is `{}`", clean(&saved.kind))));
        }
        let lineage_ok =
            saved.lineage.len() == 16 && saved.lineage.bytes().all(|b| b.is_ascii_hexdigit());
        if !lineage_ok || crate::clock::parse_rfc3339(&saved.saved_at).is_none() {
            return Err(unreadable(
                "its lineage or time is not one pare writes".into(),
            ));
        }
        if !(1..=65_535).contains(&saved.parallelism) {
            return Err(unreadable("its parallelism is not from 1 to 65535".into()));
        }
        // The lineage names the content: a changed time, parallelism or
        // lineage is an edited saved plan.
        if saved.raw.as_ref().map(content_lineage).as_deref() != Some(saved.lineage.as_str()) {
            return Err(unreadable(
                "its lineage does not match its content (it was edited)".into(),
            ));
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

    /// A saved plan applies only against the state it was planned against.
    pub fn check_state(&self, state: &str) -> Result<(), Refusal> {
        let state = state_identity(state);
        if self.state_dir != state {
            return Err(Refusal::new(
                "saved::other-state",
                format!(
                    "the saved plan was made against the state in {}; this apply uses the state in {}",
                    clean(&self.state_dir),
                    clean(&state)
                ),
                "apply it with the state it was planned against (`--state-dir`, or the same [state] settings), or plan again against this one",
            ));
        }
        Ok(())
    }

    /// A saved plan applies only in the account it was planned in.
    pub fn check_account(&self, account: &Option<String>) -> Result<(), Refusal> {
        if &self.account != account {
            let name = |a: &Option<String>| {
                a.as_deref().map_or("no account".to_string(), |a| {
                    format!("account {}", clean(a))
                })
            };
            return Err(Refusal::new(
                "saved::other-account",
                format!(
                    "the saved plan was made in {}; these credentials act in {}",
                    name(&self.account),
                    name(account)
                ),
                "apply it with the credentials of the account it was planned in, or plan again in this one",
            ));
        }
        Ok(())
    }

    /// Proves that `replanned` (the plan file planned again, now) is what
    /// was saved: nothing changed in the account since, and every step,
    /// target, after-state, order and status is the same.
    pub fn prove(&self, replanned: &Planned, state: &str) -> Result<(), Refusal> {
        self.check_state(state)?;
        self.check_account(&replanned.account)?;
        if self.provider_spec != replanned.provider_spec {
            return Err(Refusal::new(
                "saved::differs",
                "the saved plan names another provider than its plan file",
                "save it again with `pare plan PLAN --out FILE`, review it, and apply that",
            ));
        }
        let stale = self.stale(replanned);
        let stale = if stale.is_empty() && self.observed_mismatch() {
            vec!["its recorded attributes are not what its fingerprints say (the saved plan was edited)".into()]
        } else {
            stale
        };
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
        // What pare would save now, with this one's name and time: every
        // key must be the same (only the estimates that depend on the
        // parallelism apply runs with may differ).
        let expected = SavedPlan {
            kind: KIND.into(),
            lineage: self.lineage.clone(),
            saved_at: self.saved_at.clone(),
            parallelism: self.parallelism,
            state_dir: self.state_dir.clone(),
            account: replanned.account.clone(),
            fingerprints: replanned.fingerprints.clone(),
            observed: replanned.observed.clone(),
            provider_spec: replanned.provider_spec.clone(),
            approvals: replanned.approvals.clone(),
            preview: to_json(replanned),
            raw: None,
        };
        let mut want = serde_json::to_value(&expected).unwrap_or(Value::Null);
        let mut have = self
            .raw
            .clone()
            .unwrap_or_else(|| serde_json::to_value(self).unwrap_or(Value::Null));
        for v in [&mut want, &mut have] {
            if let Some(summary) = v.get_mut("summary").and_then(Value::as_object_mut) {
                summary.remove("parallelism");
                summary.remove("estimated_duration_s");
            }
        }
        let mut differences = Vec::new();
        diff_paths(&have, &want, &mut String::new(), &mut differences);
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

    /// Whether a recorded attribute set does not give its recorded fingerprint.
    fn observed_mismatch(&self) -> bool {
        self.fingerprints.iter().any(|(k, f)| {
            self.observed
                .get(k)
                .is_none_or(|a| &crate::vocabulary::fingerprint(a.as_ref()) != f)
        })
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
                (Some(_), Some(_)) if a == b => {
                    "its fingerprint is not the one its recorded attributes give (the saved plan was edited?)".into()
                }
                (Some(_), Some(_)) => describe_drift(a.as_ref(), b.as_ref()),
                (Some(_), None) => "the saved plan names it; the account or plan does not now".into(),
                (None, _) => "it is read now, and was not then".into(),
            };
            if out.len() == 20 {
                out.push("… and more".into());
                break;
            }
            out.push(format!("{}: {what}", clean(key)));
        }
        out
    }
}

fn short(sha: &str) -> String {
    clean(sha.get(..12).unwrap_or(sha)).into_owned()
}

/// Every path at which `have` (the saved plan) differs from `want` (what
/// pare would save now), at most 1,000.
fn diff_paths(have: &Value, want: &Value, at: &mut String, out: &mut Vec<String>) {
    if out.len() >= 1000 || have == want {
        return;
    }
    let len = at.len();
    match (have, want) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                at.push_str(&format!(".{}", clean(k)));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_paths(x, y, at, out),
                    (Some(_), None) => out.push(format!("{}: not something pare saves", &at[1..])),
                    (None, _) => out.push(format!("{}: missing", &at[1..])),
                }
                at.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                // Recommendations are named by id.
                let name = y
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or(String::new(), |id| format!(" ({})", clean(id)));
                at.push_str(&format!("[{i}]{name}"));
                diff_paths(x, y, at, out);
                at.truncate(len);
            }
        }
        _ => out.push(format!(
            "{}: {} saved, {} planned now",
            at.get(1..).unwrap_or("the document"),
            short_value(have),
            short_value(want)
        )),
    }
}

fn short_value(v: &Value) -> String {
    let s = v.to_string();
    let s = if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    };
    clean(&s).into_owned()
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

/// Walks a JSON document and refuses any object that gives a key twice.
struct NoDuplicateKeys;

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoDuplicateKeys)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key `{}` is given twice",
                    clean(&key)
                )));
            }
            map.next_value_seed(NoDuplicateKeys)?;
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}
