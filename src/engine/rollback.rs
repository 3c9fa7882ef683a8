//! Undoing: the forward steps a journal records (a step whose outcome was
//! never written is resolved by reading the cloud), and running undos
//! newest first through the same step runner and journal.

use super::group::{Ctx, Member, read, run_group};
use super::{Events, Settings, verify};
use crate::provider::{Provider, Query};
use crate::state::journal::JournaledStep;
use crate::state::{Journal, JournalError, Record};
use crate::vocabulary::{Inverse, Op, Tags, rename_ids, resolve};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A completed forward step to undo, as the journal of its apply recorded it.
#[derive(Debug, Clone)]
pub struct Undo {
    pub rec: String,
    pub step: usize,
    /// The forward step's seq in the apply's journal: an undo names it, so
    /// it runs at most once, whichever rollback makes it.
    pub seq: u64,
    /// The forward operation, resolved.
    pub forward: Op,
    pub inverse: Inverse,
    /// What this recommendation's steps created, by step index, as far as known.
    pub created: Vec<Option<String>>,
    /// When the forward step was made (RFC 3339).
    pub done_at: String,
}

impl Undo {
    /// The undo as it will be sent: references resolved, recreated ids
    /// followed, and a client token that is the same for every rollback of
    /// this step (so a repeated creation makes one thing).
    pub fn op(
        &self,
        apply_run: &str,
        renamed: &BTreeMap<String, String>,
    ) -> Option<Result<Op, String>> {
        let Inverse::Op { op } = &self.inverse else {
            return None;
        };
        Some(
            resolve(op, &self.created)
                .map(|op| {
                    let mut op = rename_ids(&op, renamed);
                    op.set_client_token(apply_run, &format!("undo/{}", self.seq));
                    op
                })
                .map_err(|e| e.to_string()),
        )
    }

    /// "rec [2]", for people.
    pub fn label(&self) -> String {
        format!("{} [{}]", self.rec, self.step + 1)
    }
}

/// How a rollback went.
#[derive(Debug, Default)]
pub struct RollbackReport {
    /// The undos done (indices into the undos given), in the order done.
    pub undone: Vec<usize>,
    /// Steps that could not be undone, in words.
    pub irreversible: Vec<String>,
    /// The undo that failed, if one did: the rollback stops there.
    pub failed: Option<String>,
    /// Undos not attempted after a failure, in words.
    pub left: Vec<String>,
    /// Recreated resources: old id → new id (what was given, plus this run's).
    pub renamed: BTreeMap<String, String>,
    /// The journal could not be written: nothing more was attempted.
    pub journal: Option<JournalError>,
    /// Stopped by Ctrl-C (or a signal): the undos under way finished, no more started.
    pub cancelled: bool,
}

/// Undoes `undos` (in forward order) newest first, through `journal`.
/// `renamed` holds what earlier undos of the same run recreated (old id →
/// new id), so undoing an earlier change reaches the resource as it now is.
/// `apply_run` is the run whose steps these undo.
#[allow(clippy::too_many_arguments)] // each is a different thing a rollback needs; a bag struct would hide none of them
pub async fn rollback(
    undos: &[Undo],
    apply_run: &str,
    provider: Arc<dyn Provider>,
    journal: Arc<Journal>,
    events: &Events,
    settings: &Settings,
    renamed: BTreeMap<String, String>,
    cancel: &super::Cancel,
) -> RollbackReport {
    let ctx = Ctx {
        provider,
        journal,
        events: events.clone(),
        settings: settings.clone(),
    };
    let mut report = RollbackReport {
        renamed,
        ..RollbackReport::default()
    };
    let order: Vec<usize> = (0..undos.len()).rev().collect();
    let mut pos = 0;
    while pos < order.len() {
        let u = &undos[order[pos]];
        pos += 1;
        if cancel.is_set() && report.failed.is_none() && !report.cancelled {
            report.cancelled = true;
        }
        if report.failed.is_some() || report.journal.is_some() || report.cancelled {
            report.left.push(format!(
                "{} step {}: {}",
                u.rec,
                u.step + 1,
                u.inverse.describe()
            ));
            continue;
        }
        if let Inverse::Irreversible { why } = &u.inverse {
            let what = format!(
                "{} step {} ({}): {why}",
                u.rec,
                u.step + 1,
                u.forward.describe()
            );
            events.step_skipped(&u.rec, Some(u.step), &format!("irreversible: {why}"));
            report.irreversible.push(what);
            continue;
        }
        let op = match u.op(apply_run, &report.renamed) {
            None => continue,
            Some(Ok(op)) => op,
            Some(Err(e)) => {
                report.failed = Some(format!("{} step {}: {e}", u.rec, u.step + 1));
                continue;
            }
        };
        // Consecutive undos of one kind on other instances go in one call.
        let mut group = vec![(order[pos - 1], op)];
        if let Some(key) = group[0].1.batch_key() {
            let mut instances: std::collections::HashSet<String> = group[0]
                .1
                .batch_instance()
                .map(str::to_string)
                .into_iter()
                .collect();
            while pos < order.len() && group.len() < settings.batch.max(1) {
                let Some(Ok(next)) = undos[order[pos]].op(apply_run, &report.renamed) else {
                    break;
                };
                match next.batch_instance() {
                    Some(i) if next.batch_key() == Some(key) && !instances.contains(i) => {
                        instances.insert(i.to_string());
                    }
                    _ => break,
                }
                group.push((order[pos], next));
                pos += 1;
            }
        }
        let members: Vec<Member> = group
            .iter()
            .map(|(k, op)| Member {
                rec: undos[*k].rec.clone(),
                step: undos[*k].step,
                op: op.clone(),
                inverse: Inverse::Nothing {
                    why: "an undo; apply the plan again to redo it".into(),
                },
                before: None,
                finish: None,
                undoes: Some(undos[*k].seq),
            })
            .collect();
        let done = run_group(&ctx, &members).await;
        if let Some(e) = done.journal {
            report.journal.get_or_insert(e);
        }
        for ((k, _), result) in group.iter().zip(done.results) {
            let u = &undos[*k];
            match result {
                Ok(created) => {
                    report.undone.push(*k);
                    if let (Some(new), Some(old)) = (created, recreates(&u.forward)) {
                        report.renamed.insert(old, new);
                    }
                }
                Err(e) => {
                    let what = format!(
                        "{} step {} (undo: {}): {e}",
                        u.rec,
                        u.step + 1,
                        u.inverse.describe()
                    );
                    if report.failed.is_none() {
                        report.failed = Some(what);
                    } else {
                        report.left.push(what);
                    }
                }
            }
        }
    }
    if let Err(e) = ctx.journal.commit() {
        report.journal.get_or_insert(e);
    }
    report
}

/// The id a forward step removed, when its undo recreates it (under a new id).
pub fn recreates(forward: &Op) -> Option<String> {
    match forward {
        Op::TerminateInstance { instance: r } | Op::DeleteVolume { volume: r } => {
            r.known().map(str::to_string)
        }
        _ => None,
    }
}

/// The forward steps of a journal that took effect, in the order they were
/// made, ready to undo. A step whose outcome was never written (the run was
/// killed) is resolved by reading the cloud: it counts as done if its effect
/// is there. Undo records (written by a rollback into the same journal) are
/// not forward steps.
/// A decision about a step whose outcome was never written: seq → (took
/// effect, what it created).
pub type Decisions = BTreeMap<u64, (bool, Option<String>)>;

/// [`forward_steps`], also returning the decisions it made by reading the
/// cloud, for the caller to record before changing anything. `decided`
/// holds what earlier rollbacks decided: those are not read again.
pub async fn forward_steps_deciding(
    records: &[Record],
    run: &str,
    provider: &dyn Provider,
    decided: &Decisions,
) -> Result<(Vec<Undo>, Decisions), String> {
    let steps = crate::state::journal::steps(records);
    let mut created_by: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut new = Decisions::new();
    for s in steps.iter().filter(|s| s.undoes.is_none()) {
        let created_list = created_by.entry(s.rec.clone()).or_default();
        let (ok, created) = match (&s.outcome, decided.get(&s.seq)) {
            (Some((ok, created)), _) => (*ok, created.clone()),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                let d = resolve_unknown(s, run, provider).await?;
                new.insert(s.seq, d.clone());
                d
            }
        };
        while created_list.len() < s.step {
            created_list.push(None);
        }
        created_list.push(created.clone());
        if ok {
            out.push(Undo {
                rec: s.rec.clone(),
                step: s.step,
                seq: s.seq,
                forward: s.op.clone(),
                inverse: s.inverse.clone(),
                created: Vec::new(),
                done_at: s.at.clone(),
            });
        }
    }
    for u in &mut out {
        u.created = created_by.get(&u.rec).cloned().unwrap_or_default();
    }
    Ok((out, new))
}

/// The completed forward steps of a journal, in the order they were made,
/// ready to undo (see [`forward_steps_deciding`]).
pub async fn forward_steps(
    records: &[Record],
    run: &str,
    provider: &dyn Provider,
) -> Result<Vec<Undo>, String> {
    Ok(
        forward_steps_deciding(records, run, provider, &Decisions::new())
            .await?
            .0,
    )
}

/// Did a forward step whose outcome is unknown take effect? Reads the cloud:
/// what it would have created is found by the `pare:run`/`pare:step` tags.
pub async fn resolve_unknown(
    s: &JournaledStep,
    run: &str,
    provider: &dyn Provider,
) -> Result<(bool, Option<String>), String> {
    let step_tag = format!("{}/{}", s.rec, s.step + 1);
    match &s.op {
        Op::CreateImage { .. } | Op::CreateSnapshot { .. } | Op::LaunchInstance { .. } => {
            let q = Query {
                created_by: Some((run.to_string(), step_tag.clone())),
                ..Query::default()
            };
            let inv = read(provider, &q).await?;
            let tagged = |t: &Tags| {
                t.get("pare:run").map(String::as_str) == Some(run)
                    && t.get("pare:step") == Some(&step_tag)
            };
            let found = inv
                .images
                .values()
                .find(|i| tagged(&i.tags))
                .map(|i| i.id.clone())
                .or_else(|| {
                    inv.snapshots
                        .values()
                        .find(|s| tagged(&s.tags))
                        .map(|s| s.id.clone())
                })
                .or_else(|| {
                    inv.instances
                        .values()
                        .find(|i| tagged(&i.tags))
                        .map(|i| i.id.clone())
                });
            Ok((found.is_some(), found))
        }
        Op::WaitImageAvailable { .. } | Op::PurchaseReservation { .. } => Ok((false, None)),
        other => {
            let q = verify::query(other, None);
            let inv = read(provider, &q).await?;
            Ok((verify::effect_holds(other, None, &inv).is_ok(), None))
        }
    }
}
