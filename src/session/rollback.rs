//! The rollback run: which run to roll back, what a person confirms, the
//! run itself, and its record. What to undo is decided by the one rollback
//! planner in [`super::undo_plan`], which `pare rollback` and the automatic
//! rollback of a failed apply both use.

pub use super::undo_plan::{UndoPlan, plan_undos};
use super::{Ending, EventsOut, Refusal, RunOutcome, Session, SessionError};
use crate::engine::{self, RollbackReport};
use crate::provider::Provider;
use crate::state::{Journal, RunKind, RunRecord, RunStatus};
use crate::vocabulary::words::{clean, plural};
use crate::vocabulary::{Inverse, Op};
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
    for f in rb.failed.iter().chain(&rb.also_failed) {
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
                            "every apply run is rolled back or accepted",
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
        // Undos run `parallelism` at a time, as the changes did: the
        // scheduler keeps the journal's order where it matters.
        let engine_settings = super::engine_settings(&self.settings, &id);
        let cancel = engine::Cancel::default();
        let rb = super::runtime().block_on(async {
            let watch = super::watch_signals(
                cancel.clone(),
                "the undos under way finish, no more start; run the same rollback again to go on",
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
