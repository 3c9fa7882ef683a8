//! The plan as JSON (the README's *The preview as JSON*). Keys may be added; none are removed or renamed.

use crate::executor::Savings;
use crate::planner::{Attributes, Planned, Status, Summary};
use crate::vocabulary::Step;
use crate::vocabulary::{Inverse, Op};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanJson {
    pub format_version: u32,
    pub plan: PlanRef,
    pub provider: String,
    pub prices: String,
    pub summary: serde_json::Value,
    pub waves: Vec<Vec<String>>,
    pub recommendations: Vec<RecJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PlanRef {
    pub path: String,
    pub sha256: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RecJson {
    pub id: String,
    pub action: String,
    pub resource: String,
    pub resource_kind: String,
    pub resource_name: Option<String>,
    pub status: String,
    pub note: Option<String>,
    pub risk: Option<String>,
    pub risk_reasons: Vec<String>,
    pub reversible: bool,
    pub savings_monthly_usd: Option<f64>,
    pub savings_source: Option<String>,
    pub savings_unknown_reason: Option<String>,
    pub depends_on: Vec<String>,
    pub implicit_after: Vec<ImplicitJson>,
    pub blocked_by: Vec<String>,
    pub blocked_help: Vec<String>,
    pub before: Option<Attributes>,
    pub after: Option<Attributes>,
    pub estimated_duration_s: u64,
    pub steps: Vec<StepJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImplicitJson {
    pub id: String,
    pub why: String,
}

/// A step: `op` and `args` as the provider vocabulary serialises them, the
/// inverse likewise (or null), and the undo in words.
#[derive(Debug, Serialize, Deserialize)]
pub struct StepJson {
    #[serde(flatten)]
    pub op: Op,
    pub description: String,
    pub inverse: Option<Op>,
    pub reversible: bool,
    pub undo: String,
}

impl StepJson {
    pub fn from_step(s: &Step) -> StepJson {
        StepJson {
            op: s.op.clone(),
            description: s.op.describe(),
            inverse: match &s.inverse {
                Inverse::Op { op } => Some(op.clone()),
                _ => None,
            },
            reversible: !s.inverse.is_irreversible(),
            undo: s.inverse.describe(),
        }
    }
}

fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::to_value(s).expect("summary serialises")
}

pub fn to_json(p: &Planned) -> PlanJson {
    let recommendations = p
        .recs
        .iter()
        .map(|r| RecJson {
            id: r.id.clone(),
            action: r.action.to_string(),
            resource: r.resource.clone(),
            resource_kind: r.resource_kind.to_string(),
            resource_name: r.name.clone(),
            status: match r.status {
                Status::Change => "change",
                Status::NoChange => "no_change",
                Status::Blocked => "blocked",
            }
            .into(),
            note: r.note.clone(),
            risk: r.risk.map(|x| x.as_str().to_string()),
            risk_reasons: r.risk_reasons.clone(),
            reversible: r.reversible,
            savings_monthly_usd: match (&r.savings, r.status) {
                (Savings::Usd(x), Status::Change | Status::Blocked) => {
                    Some((x * 100.0).round() / 100.0)
                }
                _ => None,
            },
            savings_source: matches!(r.savings, Savings::Usd(_))
                .then(|| r.savings_source.to_string()),
            savings_unknown_reason: match &r.savings {
                Savings::Unknown(why) => Some(why.clone()),
                Savings::Usd(_) => None,
            },
            depends_on: r.depends_on.clone(),
            implicit_after: r
                .implicit_after
                .iter()
                .map(|(id, why)| ImplicitJson {
                    id: id.clone(),
                    why: why.clone(),
                })
                .collect(),
            blocked_by: r.blocked_by.iter().map(|(w, _)| w.clone()).collect(),
            blocked_help: r.blocked_by.iter().map(|(_, h)| h.clone()).collect(),
            before: r.before.clone(),
            after: r.after.clone(),
            estimated_duration_s: r.duration.as_secs(),
            steps: r.steps.iter().map(StepJson::from_step).collect(),
        })
        .collect();
    PlanJson {
        format_version: 1,
        plan: PlanRef {
            path: p.plan_path.clone(),
            sha256: p.plan_sha256.clone(),
            name: p.name.clone(),
        },
        provider: p.provider.to_string(),
        prices: p.catalog.clone(),
        summary: summary_json(&p.summary),
        waves: p
            .waves
            .iter()
            .map(|w| w.iter().map(|&i| p.recs[i].id.clone()).collect())
            .collect(),
        recommendations,
    }
}
