//! Rolling back: the one rollback planner, which `pare rollback` and the
//! automatic rollback of a failed apply both use, and the rollback run.
//!
//! The planner reads the apply run's journal and the journals of every
//! rollback of it, and decides:
//! - **what is already undone** — an undo names the forward step it undoes
//!   (its journal seq), so every undo runs at most once, whichever rollback
//!   made it (an automatic one, or a resumed one); an undo whose outcome
//!   was never written is resolved by reading the cloud;
//! - **what drifted** — each resource must still be as the run's last change
//!   to it left it (gone, if the run deleted it); every recommendation on a
//!   drifted resource is refused, the rest goes ahead;
//! - **what must wait** — AWS lets a volume be modified once every six
//!   hours: undoing a retype waits until then (`NOT YET … only from`).

use super::{Ending, EventsOut, Refusal, RunOutcome, Session, SessionError};
use crate::engine::{self, RollbackReport, Undo, verify};
use crate::provider::{Inventory, Provider, Query};
use crate::state::{Journal, Record, RunKind, RunRecord, RunStatus};
use crate::vocabulary::words::{clean, plural};
use crate::vocabulary::{Attributes, Inverse, Op, ResourceId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Which run to roll back.
#[derive(Debug, Clone)]
pub enum Target {
    /// The newest apply run not rolled back yet.
    Last,
    /// This run.
    Run(String),
}

/// What the planner decided.
#[derive(Debug, Default)]
pub struct UndoPlan {
    /// The forward steps to undo now, in forward order (run newest first).
    pub undos: Vec<Undo>,
    /// Undos AWS allows only later: "rec [1]: … only from <time>".
    pub waiting: Vec<String>,
    /// Refused for drift: "rec, rec: vol-… changed since the run: …".
    pub drift: Vec<String>,
    /// What earlier undos recreated: old id → new id.
    pub renamed: BTreeMap<String, String>,
    /// Undos done by earlier rollbacks of the run.
    pub already: usize,
    /// Recommendations with an undo done by an earlier rollback.
    pub resumed: BTreeSet<String>,
    /// Every forward step of the run: (recommendation, step, whether it has
    /// an undo to run, whether an earlier rollback ran it).
    pub all_forward: Vec<(String, usize, bool, bool)>,
    /// Decisions about steps whose outcome was never written, made now by
    /// reading the cloud: recorded before anything is undone.
    pub decisions: Vec<Record>,
}

impl UndoPlan {
    /// How many undos will call the cloud (irreversible ones are only named).
    pub fn reversible_count(&self) -> usize {
        self.undos
            .iter()
            .filter(|u| matches!(u.inverse, Inverse::Op { .. }))
            .count()
    }
}

/// The one rollback planner (see the module documentation). `journals`
/// holds the apply run's journal first, then those of its rollbacks.
pub async fn plan_undos(
    target: &str,
    journals: &[(String, Vec<Record>)],
    renamed_before: &BTreeMap<String, String>,
    provider: &dyn Provider,
    now: std::time::SystemTime,
) -> Result<UndoPlan, String> {
    let Some((_, apply_records)) = journals.first() else {
        return Ok(UndoPlan::default());
    };
    // What earlier rollbacks decided about steps whose outcome was never
    // written: honoured, never read again from a cloud they have changed since.
    let mut decided = engine::Decisions::new();
    let mut undo_decided = engine::Decisions::new();
    for (_, records) in journals {
        for r in records {
            if let Record::Resolved {
                seq,
                undo,
                ok,
                created,
                ..
            } = r
            {
                let map = if *undo {
                    &mut undo_decided
                } else {
                    &mut decided
                };
                map.entry(*seq).or_insert((*ok, created.clone()));
            }
        }
    }
    let (forward, new_decisions) =
        engine::forward_steps_deciding(apply_records, target, provider, &decided).await?;
    let mut decisions: Vec<Record> = new_decisions
        .into_iter()
        .map(|(seq, (ok, created))| Record::Resolved {
            seq,
            undo: false,
            ok,
            created,
            at: crate::clock::rfc3339(now),
        })
        .collect();
    let by_seq: BTreeMap<u64, &Undo> = forward.iter().map(|u| (u.seq, u)).collect();

    // What earlier undos did, wherever they are recorded.
    let mut done: BTreeSet<u64> = BTreeSet::new();
    let mut renamed = renamed_before.clone();
    let mut unknown = Vec::new();
    for (f, (ok, _)) in &undo_decided {
        if *ok {
            done.insert(*f);
        }
    }
    for (_, records) in journals {
        for s in crate::state::journal::steps(records) {
            let Some(f) = s.undoes else { continue };
            match &s.outcome {
                Some((true, created)) => {
                    done.insert(f);
                    if let (Some(new), Some(u)) = (created, by_seq.get(&f))
                        && let Some(old) = engine::recreates(&u.forward)
                    {
                        renamed.insert(old, new.clone());
                    }
                }
                Some((false, _)) => {}
                None => unknown.push(s),
            }
        }
    }
    // An undo whose outcome was never written: did it take effect? A
    // creation is simply made again: its client token is the same for
    // every rollback of the run, so the cloud makes it once.
    for s in unknown {
        let Some(f) = s.undoes else { continue };
        if done.contains(&f)
            || undo_decided.contains_key(&f)
            || matches!(s.op, Op::LaunchInstance { .. } | Op::CreateVolume { .. })
        {
            continue;
        }
        let inv = provider
            .describe(&verify::query(&s.op, None))
            .await
            .map_err(|e| format!("reading the account failed: {e}"))?;
        let ok = verify::effect_holds(&s.op, None, &inv).is_ok();
        if ok {
            done.insert(f);
        }
        undo_decided.insert(f, (ok, None));
        decisions.push(Record::Resolved {
            seq: f,
            undo: true,
            ok,
            created: None,
            at: crate::clock::rfc3339(now),
        });
    }
    let resumed: BTreeSet<String> = forward
        .iter()
        .filter(|u| done.contains(&u.seq))
        .map(|u| u.rec.clone())
        .collect();
    let all_forward = forward
        .iter()
        .map(|u| {
            (
                u.rec.clone(),
                u.step,
                matches!(u.inverse, Inverse::Op { .. }),
                done.contains(&u.seq),
            )
        })
        .collect();
    let already = done.len();
    let done_steps: BTreeMap<u64, (&str, Option<String>)> = forward
        .iter()
        .map(|u| {
            (
                u.seq,
                (u.rec.as_str(), u.created.get(u.step).cloned().flatten()),
            )
        })
        .collect();
    let left = left_as(apply_records, &done_steps);
    let mut undos: Vec<Undo> = forward
        .into_iter()
        .filter(|u| !done.contains(&u.seq))
        .collect();

    // Drift: one read for every resource the run left, and the volumes whose
    // retype is to be undone (their last modification time). Resources an
    // earlier rollback already restored are not checked.
    let left: BTreeMap<String, Left> = left
        .into_iter()
        .filter(|(_, l)| !l.recs.iter().any(|r| resumed.contains(r)))
        .collect();
    let retyped: Vec<(usize, String)> = undos
        .iter()
        .enumerate()
        .filter_map(|(k, u)| match (&u.forward, &u.inverse) {
            (Op::ModifyVolume { volume, .. }, Inverse::Op { .. }) => {
                let id = volume.known()?;
                Some((
                    k,
                    renamed.get(id).cloned().unwrap_or_else(|| id.to_string()),
                ))
            }
            _ => None,
        })
        .collect();
    let mut wanted: Vec<ResourceId> = left.values().map(|l| l.id.clone()).collect();
    wanted.extend(retyped.iter().map(|(_, v)| ResourceId::Volume(v.clone())));
    wanted.sort();
    wanted.dedup();
    let inv = if wanted.is_empty() {
        Inventory::default()
    } else {
        provider
            .describe(&Query {
                resources: wanted,
                ..Query::default()
            })
            .await
            .map_err(|e| format!("reading the account failed: {e}"))?
    };
    let mut drifted: BTreeSet<String> = BTreeSet::new();
    let mut drift = Vec::new();
    for (res, l) in &left {
        let now = inv.attributes(&l.id);
        let (held, expected) = match &l.expect {
            Expect::After(after) => (
                match after {
                    Some(after) => verify::matches_prediction(after, now.as_ref()).is_ok(),
                    // The run left it gone, and it must still be gone.
                    None => now.is_none(),
                },
                after.clone(),
            ),
            Expect::Detached(after) => (
                verify::matches_prediction(after, now.as_ref()).is_ok(),
                Some(after.clone()),
            ),
            Expect::Effect(op, made) => (
                verify::effect_holds(op, made.as_deref(), &inv).is_ok(),
                None,
            ),
        };
        if !held {
            drifted.extend(l.recs.iter().cloned());
            drift.push(format!(
                "{}: {} changed since the run: {}",
                l.recs.join(", "),
                clean(res),
                super::saved::describe_drift(expected.as_ref(), now.as_ref())
            ));
        }
    }
    // AWS's six-hour rule, from the later of the run's change and the
    // volume's last modification as AWS reports it.
    let mut waiting_at: BTreeMap<usize, String> = BTreeMap::new();
    for (k, volume) in &retyped {
        let u = &undos[*k];
        let last_change = [
            Some(u.done_at.as_str()),
            inv.volume_modified_at.get(volume).map(String::as_str),
        ]
        .into_iter()
        .flatten()
        .filter_map(crate::clock::volume_ready_at)
        .max();
        if let Some(ready) = last_change.filter(|r| now < *r) {
            waiting_at.insert(
                *k,
                format!(
                    "{}: {volume} was changed at {}; AWS allows changing it back only from {} (one modification per volume every six hours). Run `pare rollback --run {}` again after then",
                    u.label(),
                    u.done_at,
                    crate::clock::rfc3339(ready),
                    target
                ),
            );
        }
    }
    let mut waiting = Vec::new();
    let mut kept = Vec::new();
    for (k, u) in undos.into_iter().enumerate() {
        if drifted.contains(&u.rec) {
            continue;
        }
        if let Some(w) = waiting_at.remove(&k) {
            waiting.push(w);
            continue;
        }
        kept.push(u);
    }
    undos = kept;
    Ok(UndoPlan {
        undos,
        waiting,
        drift,
        renamed,
        already,
        resumed,
        all_forward,
        decisions,
    })
}

/// What a resource must look like for the run's undos to apply.
enum Expect {
    /// As the last recommendation about it left it (`None`: gone).
    After(Option<Attributes>),
    /// So, except what hangs it off an instance: a later recommendation
    /// terminated the instance it was attached to (or associated with).
    Detached(Attributes),
    /// A later recommendation's step changed it last: that effect holds.
    Effect(Op, Option<String>),
}

/// A resource the run left, what it must look like, and who changed it.
struct Left {
    id: ResourceId,
    expect: Expect,
    recs: Vec<String>,
}

/// What the run left each resource a recommendation was about as: walks the
/// journal in order, so a later step of another recommendation (a spot
/// replacement terminating an instance an earlier one rightsized, a
/// termination detaching a volume an earlier one retyped) decides.
/// `done` holds the forward steps that took effect (seq → recommendation,
/// what the step made).
fn left_as(
    records: &[Record],
    done: &BTreeMap<u64, (&str, Option<String>)>,
) -> BTreeMap<String, Left> {
    let mut out: BTreeMap<String, Left> = BTreeMap::new();
    for r in records {
        match r {
            Record::RecDone {
                rec,
                ok: true,
                resource: Some(res),
                after,
                ..
            } => {
                let Ok(id) = ResourceId::from_key(res) else {
                    continue;
                };
                let l = out.entry(res.clone()).or_insert_with(|| Left {
                    id,
                    expect: Expect::After(None),
                    recs: Vec::new(),
                });
                l.expect = Expect::After(after.clone());
                if !l.recs.contains(rec) {
                    l.recs.push(rec.clone());
                }
            }
            Record::Intent {
                seq,
                op,
                undoes: None,
                ..
            } => {
                let Some((rec, made)) = done.get(seq) else {
                    continue;
                };
                let note =
                    |out: &mut BTreeMap<String, Left>, key: String, expect: Option<Expect>| {
                        if let Some(l) = out.get_mut(&key) {
                            if let Some(e) = expect {
                                l.expect = e;
                            }
                            if !l.recs.iter().any(|r| r == rec) {
                                l.recs.push(rec.to_string());
                            }
                        }
                    };
                for t in op.touched(made.as_deref()) {
                    note(
                        &mut out,
                        t.key(),
                        Some(Expect::Effect(op.as_ref().clone(), made.clone())),
                    );
                }
                // A termination detaches the volumes attached to the instance
                // (deleting those that go with it) and disassociates its addresses.
                if let Op::TerminateInstance { instance } = op.as_ref()
                    && let Some(i) = instance.known()
                {
                    let on = |a: &Attributes, k: &str| a.get(k).and_then(|v| v.as_str()) == Some(i);
                    for l in out.values_mut() {
                        let (Expect::After(Some(a)) | Expect::Detached(a)) = &l.expect else {
                            continue;
                        };
                        if !(on(a, "attached_to") || on(a, "instance")) {
                            continue;
                        }
                        let goes =
                            a.get("delete_on_termination") == Some(&serde_json::Value::Bool(true));
                        let mut a = a.clone();
                        a.remove("attached_to");
                        a.remove("instance");
                        l.expect = if goes {
                            Expect::After(None)
                        } else {
                            Expect::Detached(a)
                        };
                        if !l.recs.iter().any(|r| r == rec) {
                            l.recs.push(rec.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// How a rollback (automatic or not) went, in the run record's words.
pub struct RollbackSummary {
    /// Each undo done: "rec [2]: start i-…".
    pub undone: Vec<String>,
    /// What is left, the failure first.
    pub left: Vec<String>,
    /// Recommendations whose every reversible step is now undone.
    pub completed: Vec<String>,
    pub failed: Vec<String>,
    /// Nothing failed, drifted or waits.
    pub finished: bool,
}

/// Puts a rollback's plan and report into words for the run record.
pub fn record_rollback(plan: &UndoPlan, rb: &RollbackReport, apply_run: &str) -> RollbackSummary {
    let undone: Vec<String> = rb
        .undone
        .iter()
        .map(|&k| {
            let u = &plan.undos[k];
            let what = u
                .op(apply_run, &rb.renamed)
                .and_then(Result::ok)
                .map_or_else(|| u.inverse.describe(), |op| op.describe());
            format!("{}: {what}", u.label())
        })
        .collect();
    let mut left = Vec::new();
    let mut failed = Vec::new();
    if let Some(f) = &rb.failed {
        left.push(format!("failed: {f}"));
        failed.push(f.clone());
    }
    if let Some(e) = &rb.journal {
        left.push(format!("stopped: {e}"));
    }
    if rb.cancelled {
        left.push(format!(
            "stopped by Ctrl-C: `pare rollback --run {apply_run}` undoes the rest"
        ));
    }
    left.extend(rb.left.iter().map(|l| format!("not attempted: {l}")));
    // What pare made and keeps (backup images, snapshots) costs money: say so.
    for u in &plan.undos {
        let (Inverse::Nothing { .. }, Some(Some(made))) = (&u.inverse, u.created.get(u.step))
        else {
            continue;
        };
        let what = match &u.forward {
            Op::CreateImage { .. } => "image",
            Op::CreateSnapshot { .. } => "snapshot",
            _ => continue,
        };
        left.push(format!(
            "kept: {what} {} (the backup made by {}); pare never deletes a backup, delete it when it is no longer needed",
            clean(made),
            u.label()
        ));
    }
    left.extend(
        rb.irreversible
            .iter()
            .map(|s| format!("not undone (irreversible): {s}")),
    );
    left.extend(
        plan.drift
            .iter()
            .map(|d| format!("not undone (drift): {d}")),
    );
    left.extend(
        plan.waiting
            .iter()
            .map(|w| format!("not undone yet (AWS six-hour rule): {w}")),
    );
    let now_done: BTreeSet<(String, usize)> = rb
        .undone
        .iter()
        .map(|&k| (plan.undos[k].rec.clone(), plan.undos[k].step))
        .collect();
    let mut by_rec: BTreeMap<&str, bool> = BTreeMap::new();
    for (rec, step, has_undo, before) in &plan.all_forward {
        let done = !*has_undo || *before || now_done.contains(&(rec.clone(), *step));
        *by_rec.entry(rec).or_insert(true) &= done;
    }
    let completed = by_rec
        .into_iter()
        .filter(|(_, all)| *all)
        .map(|(r, _)| r.to_string())
        .collect();
    let finished = rb.failed.is_none()
        && rb.journal.is_none()
        && !rb.cancelled
        && plan.drift.is_empty()
        && plan.waiting.is_empty();
    RollbackSummary {
        undone,
        left,
        completed,
        failed,
        finished,
    }
}

/// A rollback ready to run: the target, the planner's decisions, the provider.
pub struct RollbackPlan {
    pub target: RunRecord,
    pub undo: UndoPlan,
    provider: Arc<dyn Provider>,
    pub warnings: Vec<String>,
}

impl RollbackPlan {
    /// What will happen, newest first, for a person to confirm.
    pub fn describe(&self) -> String {
        let t = &self.target;
        let mut s = format!(
            "Rolling back run {} ({}, {}):",
            t.id,
            clean(&t.plan_path),
            t.started_at
        );
        if self.undo.already > 0 {
            s.push_str(&format!(
                "\n  ({} undone by an earlier rollback of this run; not done again)",
                plural(self.undo.already, "step")
            ));
        }
        for u in self.undo.undos.iter().rev() {
            let what = match &u.inverse {
                Inverse::Nothing { .. } => continue,
                Inverse::Irreversible { why } => {
                    format!("CANNOT UNDO {}: {why}", u.forward.describe())
                }
                Inverse::Op { op } => u
                    .op(&t.id, &self.undo.renamed)
                    .and_then(Result::ok)
                    .map_or_else(|| op.describe(), |o| o.describe()),
            };
            s.push_str(&format!("\n  {} {what}", u.label()));
        }
        for d in &self.undo.drift {
            s.push_str(&format!("\n  REFUSED (drift) {d}"));
        }
        for w in &self.undo.waiting {
            s.push_str(&format!("\n  NOT YET {w}"));
        }
        if self.undo.undos.is_empty() && self.undo.drift.is_empty() && self.undo.waiting.is_empty()
        {
            s.push_str("\n  nothing to undo");
        }
        s
    }
}

impl Session {
    /// The run `target` names, if it can be rolled back (or, with
    /// `accept`, accepted).
    pub fn rollback_target(
        &self,
        target: &Target,
        accept: bool,
    ) -> Result<RunRecord, SessionError> {
        let h = &self.history;
        let record = match target {
            Target::Run(id) => {
                let id = crate::state::parse_run_id(id)?;
                self.store.read_run(&id)?
            }
            Target::Last => {
                if let Some((id, why)) = h.damaged.first() {
                    return Err(Refusal::new(
                        "state::damaged-record",
                        format!("the record of run {id} cannot be read ({why}), so the newest run is not known"),
                        "name the run to roll back with `--run ID` (`pare history` lists them), or move the damaged run's folder aside",
                    )
                    .into());
                }
                match h.runs.iter().find(|r| {
                    r.kind == RunKind::Apply
                        && r.status != RunStatus::RolledBack
                        && !h.is_resolved(&r.id)
                }) {
                    Some(r) => r.clone(),
                    None => {
                        return Err(Refusal::new(
                            "rollback::nothing",
                            "no apply run is left to roll back",
                            "`pare history` lists the runs",
                        )
                        .into());
                    }
                }
            }
        };
        let accepting_a_rollback = accept && record.kind == RunKind::Rollback;
        if record.kind != RunKind::Apply && !accepting_a_rollback {
            return Err(Refusal::new(
                "rollback::not-an-apply",
                format!(
                    "run {} is a {} run; only apply runs are rolled back",
                    record.id,
                    record.kind.as_str()
                ),
                "to redo what a rollback undid, apply the plan again",
            )
            .into());
        }
        if record.status == RunStatus::RolledBack || h.is_resolved(&record.id) {
            return Err(Refusal::new(
                "rollback::already",
                format!("run {} is already rolled back (or accepted)", record.id),
                "`pare show RUN` shows what happened",
            )
            .into());
        }
        Ok(record)
    }

    /// The record of a new run that resolves `target` (a rollback or an
    /// accept of it): the same plan and provider.
    fn resolving(&self, id: &str, kind: RunKind, target: &RunRecord) -> RunRecord {
        RunRecord {
            resolves: Some(target.id.clone()),
            provider: target.provider.clone(),
            provider_spec: target.provider_spec.clone(),
            plan_path: target.plan_path.clone(),
            plan_sha256: target.plan_sha256.clone(),
            plan_name: target.plan_name.clone(),
            git_commit: target.git_commit.clone(),
            lineage: target.lineage.clone(),
            ..self.new_record(id, kind)
        }
    }

    /// Records that `target`'s changes are kept as they stand.
    pub fn accept(&mut self, target: &RunRecord) -> Result<RunOutcome, SessionError> {
        let open = matches!(
            target.status,
            RunStatus::Running
                | RunStatus::Interrupted
                | RunStatus::RollbackIncomplete
                | RunStatus::Incomplete
                | RunStatus::Failed
                | RunStatus::Cancelled
        );
        if !open {
            return Err(Refusal::new(
                "rollback::not-interrupted",
                format!(
                    "run {} is {}, not interrupted",
                    target.id,
                    target.status.as_str()
                ),
                "--accept is for interrupted, cancelled or unfinished runs",
            )
            .into());
        }
        let id = self.store.new_run_id()?.to_string();
        let mut record = self.resolving(&id, RunKind::Accept, target);
        drop(self.store.create_run(&record)?);
        record.status = RunStatus::Completed;
        record.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
        self.store.save_run(&record)?;
        self.history.runs.insert(0, record.clone());
        Ok(RunOutcome {
            record,
            ending: Ending::Done,
        })
    }

    /// Plans the rollback of `target`: opens its provider, reads its
    /// journal and those of its earlier rollbacks, and runs the planner.
    pub fn prepare_rollback(&self, target: RunRecord) -> Result<RollbackPlan, SessionError> {
        let Some(spec) = &target.provider_spec else {
            return Err(Refusal::new(
                "rollback::no-provider",
                format!("run {} does not record its provider", target.id),
                "roll it back by hand from `pare show`",
            )
            .into());
        };
        let (provider, warning) = super::open_provider(
            spec,
            std::path::Path::new(&target.plan_path),
            &self.store,
            &self.settings,
        )?;
        let provider: Arc<dyn Provider> = Arc::from(provider);
        let mut journals = vec![(
            target.id.clone(),
            self.store
                .journal(&crate::state::parse_run_id(&target.id)?)?,
        )];
        let mut renamed = target.renamed.clone();
        for earlier in self.history.rollbacks_of(&target.id) {
            renamed.extend(earlier.renamed.clone());
            let id = crate::state::parse_run_id(&earlier.id)?;
            journals.push((earlier.id.clone(), self.store.journal(&id)?));
        }
        let undo = super::runtime()
            .block_on(plan_undos(
                &target.id,
                &journals,
                &renamed,
                provider.as_ref(),
                crate::clock::now(),
            ))
            .map_err(|e| {
                Refusal::new(
                    "rollback::cannot-plan",
                    format!("cannot plan the rollback of run {}: {e}", target.id),
                    "check the provider (credentials, endpoint), then roll back again",
                )
            })?;
        Ok(RollbackPlan {
            target,
            undo,
            provider,
            warnings: warning.into_iter().collect(),
        })
    }

    /// Runs a planned rollback as a new run, recorded with what it undid,
    /// what failed and what is left.
    pub fn rollback(
        &mut self,
        plan: RollbackPlan,
        out: EventsOut,
    ) -> Result<RunOutcome, SessionError> {
        let RollbackPlan {
            target,
            undo,
            provider,
            ..
        } = plan;
        let id = self.store.new_run_id()?.to_string();
        let mut record = self.resolving(&id, RunKind::Rollback, &target);
        let log = self.store.create_run(&record)?;
        let journal = Arc::new(Journal::new(
            self.store.journal_name(&crate::state::parse_run_id(&id)?),
            log,
            0,
        ));
        // Decisions about unknown outcomes are on record before any undo.
        for d in &undo.decisions {
            journal
                .append(d, true)
                .map_err(|e| crate::state::StateError::io(self.store.location(), e))?;
        }
        let events = out.events(&id);
        let to_undo = undo.reversible_count();
        events.steps(to_undo);
        events.run_start("rollback", to_undo);
        events.rollback_start(to_undo);
        let mut engine_settings = super::engine_settings(&self.settings, &id);
        engine_settings.parallelism = 1;
        let cancel = engine::Cancel::default();
        let rb = super::runtime().block_on(async {
            let watch = super::watch_signals(
                cancel.clone(),
                "the undo under way finishes, no more start; run the same rollback again to go on",
            );
            let rb = engine::rollback(
                &undo.undos,
                &target.id,
                Arc::clone(&provider),
                journal,
                &events,
                &engine_settings,
                undo.renamed.clone(),
                &cancel,
            )
            .await;
            watch.abort();
            rb
        });
        let summary = record_rollback(&undo, &rb, &target.id);
        record.renamed = rb.renamed.clone();
        record.undone = summary.undone;
        record.completed = summary.completed;
        record.failed = summary.failed;
        record.left = summary.left;
        record.steps_done = rb.undone.len();
        let ending = if summary.finished {
            record.status = RunStatus::Completed;
            Ending::Done
        } else {
            record.status = RunStatus::Incomplete;
            Ending::Unfinished
        };
        self.finish(provider.as_ref(), &mut record, &events)?;
        Ok(RunOutcome { record, ending })
    }
}
