//! Undoing: the forward steps a journal records (a step whose outcome was
//! never written is resolved by reading the cloud), and running undos
//! newest first through the same scheduler, step runner and journal.

use super::group::{Ctx, read};
use super::sched::{Mode, Sched, Undoing};
use super::{Events, Item, Settings, verify};
use crate::provider::{Provider, Query};
use crate::state::journal::JournaledStep;
use crate::state::{Journal, JournalError, Record};
use crate::vocabulary::{Inverse, Op, Tags, rename_ids, resolve};
use std::cmp::Reverse;
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
    /// Where the forward step stands in its journal (see
    /// [`JournaledStep::span`]): what ran after it is undone before it.
    pub span: (usize, usize),
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
    /// The first undo that failed, if one did: its chain stops there, and
    /// so do the chains that must be undone after it.
    pub failed: Option<String>,
    /// Other undos that failed, in chains of their own.
    pub also_failed: Vec<String>,
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
///
/// The undos of one recommendation form a chain, newest first. A chain waits
/// for every chain whose forward steps all came after its own last one (the
/// journal's order: whatever ran after it, because it had to or by chance,
/// is undone before it); chains that ran side by side are undone side by
/// side, through the same scheduler as apply (parallel, batched, gathered).
/// An undo that fails stops its chain and every chain that must wait for
/// it (listed as left); chains independent of it are still undone.
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
    let (items, chains) = chains(undos, provider.as_ref());
    let ctx = Arc::new(Ctx {
        provider,
        journal,
        events: events.clone(),
        settings: settings.clone(),
    });
    let undoing = Undoing {
        undos: undos.to_vec(),
        chains,
        apply_run: apply_run.to_string(),
        renamed,
        undone: Vec::new(),
        irreversible: Vec::new(),
        failed: None,
        also_failed: Vec::new(),
        handled: vec![false; undos.len()],
    };
    let mut sched = Sched::new(
        Arc::new(items),
        Mode::Undo(Box::new(undoing)),
        &ctx,
        cancel.clone(),
    );
    sched.run(&ctx).await;
    let journal_error = sched.report.journal.take();
    let Mode::Undo(u) = std::mem::replace(&mut sched.mode, Mode::Apply) else {
        unreachable!("a rollback's scheduler undoes")
    };
    let mut left = Vec::new();
    for (x, v) in undos.iter().enumerate().rev() {
        if !u.handled[x] {
            left.push(format!(
                "{} step {}: {}",
                v.rec,
                v.step + 1,
                v.inverse.describe()
            ));
        }
    }
    let unfinished = u.handled.iter().any(|h| !h);
    RollbackReport {
        undone: u.undone,
        irreversible: u.irreversible,
        cancelled: cancel.is_set() && u.failed.is_none() && unfinished,
        failed: u.failed,
        also_failed: u.also_failed,
        left,
        renamed: u.renamed,
        journal: journal_error,
    }
}

/// The undos as chains, one per recommendation (newest first), each an item
/// waiting for the chains that must be undone before it (see [`rollback`]):
/// a chain's span runs from its first intent to its last outcome in the
/// journal, and a chain waits for those whose span began after its own ended.
fn chains(undos: &[Undo], provider: &dyn Provider) -> (Vec<Item>, Vec<Vec<usize>>) {
    let mut by_rec: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (x, u) in undos.iter().enumerate() {
        by_rec.entry(u.rec.as_str()).or_default().push(x);
    }
    let mut chains: Vec<Vec<usize>> = by_rec
        .into_values()
        .map(|mut c| {
            c.sort_by_key(|&x| Reverse(undos[x].seq));
            c
        })
        .collect();
    // The newest chain first: ties in urgency go to it.
    chains.sort_by_key(|c| Reverse(undos[c[0]].seq));
    let first = |c: &[usize]| c.iter().map(|&x| undos[x].span.0).min().unwrap_or(0);
    let last = |c: &[usize]| c.iter().map(|&x| undos[x].span.1).max().unwrap_or(0);
    // X waits for Y when Y began after X ended. Only the earliest-ending of
    // those, and the ones that overlap it, are needed: the rest follow.
    let mut by_first: Vec<usize> = (0..chains.len()).collect();
    by_first.sort_by_key(|&c| first(&chains[c]));
    let firsts: Vec<usize> = by_first.iter().map(|&c| first(&chains[c])).collect();
    let mut suffix_min_last = vec![usize::MAX; by_first.len() + 1];
    for p in (0..by_first.len()).rev() {
        suffix_min_last[p] = suffix_min_last[p + 1].min(last(&chains[by_first[p]]));
    }
    let mut items: Vec<Item> = chains
        .iter()
        .map(|c| {
            let u = &undos[c[0]];
            Item {
                rec: u.rec.clone(),
                resource: None,
                steps: Vec::new(),
                before: None,
                after: None,
                replaced_by_step: None,
                deps: Vec::new(),
                urgency: c
                    .iter()
                    .filter_map(|&x| match &undos[x].inverse {
                        Inverse::Op { op } => Some(provider.estimate(op)),
                        _ => None,
                    })
                    .sum(),
                savings: 0.0,
            }
        })
        .collect();
    for (x, c) in chains.iter().enumerate() {
        let from = firsts.partition_point(|&f| f <= last(c));
        let until = suffix_min_last[from];
        items[x].deps = by_first[from..]
            .iter()
            .zip(&firsts[from..])
            .take_while(|&(_, &f)| f <= until)
            .map(|(&y, _)| y)
            .collect();
    }
    super::items::longest_paths(&mut items);
    (items, chains)
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
                span: s.span,
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
