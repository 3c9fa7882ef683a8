//! Running typed steps: the parallel scheduler, batching, verification,
//! retries, failure, cancel, and undoing from the journal.
//!
//! A recommendation starts as soon as everything it waits for is done and a
//! slot is free (no barrier between waves; among ready ones the longest path
//! ahead goes first). Its steps run in order; each intent is durable before
//! its call, each result is read back and checked (see [`group`]). A failed
//! step fails its recommendation and skips everything downstream;
//! independent branches run on. On cancel no recommendation starts, and one
//! already started finishes its steps. If the journal cannot be written,
//! nothing more is started at all.
//!
//! The engine takes typed steps (from the planner), never rendered preview
//! text, never sees clap, and speaks to the cloud only through the provider
//! trait. Deciding *what* to undo is the run logic's (`session`); this
//! module runs the undos it is given.

pub mod events;
mod group;
pub mod items;
mod rollback;
pub mod verify;

pub use events::Events;
pub use rollback::{
    Decisions, RollbackReport, Undo, forward_steps, forward_steps_deciding, recreates,
    resolve_unknown, rollback,
};

use crate::provider::Provider;
use crate::state::{Journal, JournalError, Record};
use crate::vocabulary::{Attributes, ResourceId, Step, resolve};
use group::{Ctx, Finish, GroupDone, Member, Seen, run_group, tag_created};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One recommendation to apply.
#[derive(Debug, Clone)]
pub struct Item {
    pub rec: String,
    pub resource: Option<ResourceId>,
    pub steps: Vec<Step>,
    /// The resource as the plan read it.
    pub before: Option<Attributes>,
    /// The predicted after-state of the resource (or of its replacement).
    pub after: Option<Attributes>,
    /// For replacements: the step whose result is the new resource.
    pub replaced_by_step: Option<usize>,
    /// Indices of the items it waits for.
    pub deps: Vec<usize>,
    /// The longest path ahead, for priority.
    pub urgency: Duration,
    pub savings: f64,
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub parallelism: usize,
    /// Attempts in all for a transient error (throttling, a flaky call),
    /// unless the provider retries itself.
    pub attempts: u32,
    pub backoff: Duration,
    pub run: String,
    /// Most steps sent to the cloud in one call (stop, start, terminate and
    /// monitoring of many instances).
    pub batch: usize,
}

/// How an apply went. Indices are into the items.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub completed: Vec<usize>,
    pub failed: Vec<(usize, String)>,
    /// Not started (upstream failed, cancelled, or the journal broke).
    pub skipped: Vec<(usize, String)>,
    pub cancelled: bool,
    /// Steps that completed (changed the cloud).
    pub steps_done: usize,
    /// The journal could not be written: nothing more was started.
    pub journal: Option<JournalError>,
}

/// A stop flag set by Ctrl-C (or the API): no new recommendation starts,
/// and those under way finish their steps.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `items`; see the module documentation.
pub async fn apply(
    items: Arc<Vec<Item>>,
    provider: Arc<dyn Provider>,
    journal: Arc<Journal>,
    events: &Events,
    settings: &Settings,
    cancel: Cancel,
) -> ApplyReport {
    let ctx = Arc::new(Ctx {
        provider,
        journal,
        events: events.clone(),
        settings: settings.clone(),
    });
    let n = items.len();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, item) in items.iter().enumerate() {
        for &d in &item.deps {
            dependents[d].push(i);
        }
    }
    let mut st = Sched {
        items: Arc::clone(&items),
        run: settings.run.clone(),
        waiting: items.iter().map(|i| i.deps.len()).collect(),
        dependents,
        next: vec![0; n],
        created: vec![Vec::new(); n],
        seen: vec![None; n],
        pending: vec![None; n],
        ready: BinaryHeap::new(),
        by_key: HashMap::new(),
        state: vec![ItemState::Waiting; n],
        report: ApplyReport::default(),
        failed_early: Vec::new(),
        cancel: cancel.clone(),
    };
    for i in 0..n {
        if st.waiting[i] == 0 {
            st.make_ready(&ctx, i);
        }
    }
    let mut running = tokio::task::JoinSet::new();
    let mut groups: HashMap<tokio::task::Id, Vec<usize>> = HashMap::new();
    let mut finished_groups = 0usize;
    loop {
        // Failures found while preparing steps (an unresolved reference).
        for (i, e) in std::mem::take(&mut st.failed_early) {
            st.fail(&ctx, i, e);
        }
        if cancel.is_set() {
            st.drop_unstarted(&ctx);
        }
        while running.len() < settings.parallelism.max(1) && st.report.journal.is_none() {
            let Some(group) = st.take_group(settings.batch.max(1)) else {
                break;
            };
            let members: Vec<Member> = group.iter().map(|&i| st.member(i)).collect();
            let ctx = Arc::clone(&ctx);
            let handle = running.spawn(async move { run_group(&ctx, &members).await });
            groups.insert(handle.id(), group);
        }
        if !st.failed_early.is_empty() {
            continue;
        }
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (group, done) = match joined {
            Ok((id, done)) => (groups.remove(&id).unwrap_or_default(), done),
            Err(e) => {
                // A panic in a task is a bug: its steps are recorded failed
                // (their outcome unknown: recovery reads the cloud), and
                // everything downstream is skipped.
                let group = groups.remove(&e.id()).unwrap_or_default();
                for i in group {
                    let msg = format!("internal error in pare (a bug; please report it): {e}");
                    let rec = st.items[i].rec.clone();
                    st.journal_note(ctx.journal.append(
                        &Record::RecDone {
                            rec,
                            ok: false,
                            resource: None,
                            after: None,
                            error: Some(msg.clone()),
                        },
                        false,
                    ));
                    st.fail(&ctx, i, msg);
                }
                continue;
            }
        };
        st.finish_group(&ctx, group, done);
        finished_groups += 1;
        crate::hooks::pause(&format!("after-group-{finished_groups}"));
    }
    // What never started: cancelled, or stopped by a broken journal.
    let why = if st.report.journal.is_some() {
        Some("not started: the journal could not be written")
    } else if cancel.is_set() {
        Some("cancelled")
    } else {
        None
    };
    if let Some(why) = why {
        for i in 0..n {
            if matches!(st.state[i], ItemState::Waiting | ItemState::Ready) {
                st.skip(&ctx, i, why.to_string());
            }
        }
    }
    st.report.cancelled = cancel.is_set();
    let mut report = std::mem::take(&mut st.report);
    if let Err(e) = ctx.journal.commit() {
        report.journal.get_or_insert(e);
    }
    report
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemState {
    /// Waiting for what it depends on.
    Waiting,
    /// Its next step is ready (its first step, if it has not started).
    Ready,
    /// A step is under way.
    Running,
    Completed,
    Failed,
    Skipped,
}

/// The scheduler's state: which step each item is at, and which are ready.
struct Sched {
    items: Arc<Vec<Item>>,
    run: String,
    waiting: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    next: Vec<usize>,
    created: Vec<Vec<Option<String>>>,
    seen: Vec<Option<Seen>>,
    /// The resolved op of each ready item's next step.
    pending: Vec<Option<crate::vocabulary::Op>>,
    /// Ready items, most urgent first (entries no longer ready are skipped).
    ready: BinaryHeap<(Duration, Reverse<usize>)>,
    /// Ready items by batch key, for gathering a group.
    by_key: HashMap<(&'static str, bool), Vec<usize>>,
    state: Vec<ItemState>,
    report: ApplyReport,
    /// Items whose next step could not be prepared.
    failed_early: Vec<(usize, String)>,
    cancel: Cancel,
}

impl Sched {
    fn journal_note(&mut self, r: Result<(), JournalError>) {
        if let Err(e) = r {
            self.report.journal.get_or_insert(e);
        }
    }

    fn make_ready(&mut self, ctx: &Ctx, i: usize) {
        let item = &self.items[i];
        let k = self.next[i];
        if k == 0 && (self.cancel.is_set() || self.report.journal.is_some()) {
            // Nothing new starts once cancelled (or once the journal broke).
            let why = if self.report.journal.is_some() {
                "not started: the journal could not be written"
            } else {
                "cancelled"
            };
            self.skip(ctx, i, why.into());
            return;
        }
        let mut op = match resolve(&item.steps[k].op, &self.created[i]) {
            Ok(op) => op,
            Err(e) => {
                self.failed_early.push((i, format!("step {}: {e}", k + 1)));
                return;
            }
        };
        let step = format!("{}/{}", item.rec, k + 1);
        tag_created(&mut op, &self.run, &step);
        op.set_client_token(&self.run, &step);
        if let Some(key) = op.batch_key() {
            self.by_key.entry(key).or_default().push(i);
        }
        self.pending[i] = Some(op);
        self.state[i] = ItemState::Ready;
        self.ready.push((item.urgency, Reverse(i)));
    }

    /// Cancelled: ready items that have not started are skipped.
    fn drop_unstarted(&mut self, ctx: &Ctx) {
        for i in 0..self.items.len() {
            if self.state[i] == ItemState::Ready && self.next[i] == 0 {
                self.pending[i] = None;
                self.skip(ctx, i, "cancelled".into());
            }
        }
    }

    /// Records that item `i` did not start, and why.
    fn skip(&mut self, ctx: &Ctx, i: usize, why: String) {
        if matches!(
            self.state[i],
            ItemState::Completed | ItemState::Failed | ItemState::Skipped
        ) {
            return;
        }
        self.state[i] = ItemState::Skipped;
        let rec = self.items[i].rec.clone();
        ctx.events.step_skipped(&rec, None, &why);
        let r = ctx.journal.append(
            &Record::RecSkipped {
                rec,
                why: why.clone(),
            },
            false,
        );
        self.journal_note(r);
        self.report.skipped.push((i, why));
    }

    /// A failed recommendation: reported, and everything downstream skipped.
    fn fail(&mut self, ctx: &Ctx, i: usize, e: String) {
        if matches!(self.state[i], ItemState::Failed | ItemState::Completed) {
            return;
        }
        self.state[i] = ItemState::Failed;
        self.pending[i] = None;
        self.report.failed.push((i, e));
        let mut stack = self.dependents[i].clone();
        let why = format!("upstream failed: {}", self.items[i].rec);
        while let Some(d) = stack.pop() {
            if self.state[d] == ItemState::Waiting {
                self.skip(ctx, d, why.clone());
                stack.extend(self.dependents[d].iter().copied());
            }
        }
    }

    /// Takes in what a group did.
    fn finish_group(&mut self, ctx: &Ctx, group: Vec<usize>, done: GroupDone) {
        if let Some(e) = done.journal {
            self.report.journal.get_or_insert(e);
        }
        for (i, result) in group.into_iter().zip(done.results) {
            match result {
                Ok(created) => {
                    self.report.steps_done += 1;
                    self.created[i].push(created);
                    self.next[i] += 1;
                    self.seen[i] = Some(Arc::clone(&done.seen));
                    if self.next[i] < self.items[i].steps.len() {
                        if self.report.journal.is_some() {
                            self.fail(ctx, i, "stopped: the journal could not be written".into());
                        } else {
                            self.make_ready(ctx, i);
                        }
                        continue;
                    }
                    self.state[i] = ItemState::Completed;
                    self.report.completed.push(i);
                    for d in self.dependents[i].clone() {
                        self.waiting[d] -= 1;
                        if self.waiting[d] == 0 && self.state[d] == ItemState::Waiting {
                            self.make_ready(ctx, d);
                        }
                    }
                }
                Err(e) => {
                    let e = format!("step {}: {e}", self.next[i] + 1);
                    self.fail(ctx, i, e)
                }
            }
        }
    }

    /// The most urgent ready step, with every other ready step that can go
    /// to the cloud in the same call (same operation, other instances).
    fn take_group(&mut self, limit: usize) -> Option<Vec<usize>> {
        let first = loop {
            let (_, Reverse(i)) = self.ready.pop()?;
            if self.pending[i].is_some() {
                break i;
            }
        };
        let op = self.pending[first].as_ref().expect("ready");
        let mut group = vec![first];
        if let Some(key) = op.batch_key() {
            let mut instances: std::collections::HashSet<String> = op
                .batch_instance()
                .map(str::to_string)
                .into_iter()
                .collect();
            let list = self.by_key.entry(key).or_default();
            let mut keep = Vec::new();
            for j in std::mem::take(list) {
                if j == first {
                    continue;
                }
                let Some(other) = self.pending[j].as_ref() else {
                    continue;
                };
                let inst = other.batch_instance().map(str::to_string);
                if other.batch_key() != Some(key)
                    || group.len() >= limit
                    || group.contains(&j)
                    || inst.as_ref().is_none_or(|x| instances.contains(x))
                {
                    keep.push(j);
                    continue;
                }
                instances.extend(inst);
                group.push(j);
            }
            *list = keep;
        }
        for &i in &group {
            self.state[i] = ItemState::Running;
        }
        Some(group)
    }

    /// Takes item `i`'s ready step out as a group member.
    fn member(&mut self, i: usize) -> Member {
        let item = &self.items[i];
        let k = self.next[i];
        let op = self.pending[i].take().expect("ready");
        let primary = verify::touched(&op, None).into_iter().next();
        let before = match (&self.seen[i], &primary) {
            (Some(seen), Some(r)) => seen.attributes(r),
            (None, Some(r)) if item.resource.as_ref() == Some(r) => item.before.clone(),
            _ => None,
        };
        let finish = (k + 1 == item.steps.len()).then(|| Finish {
            resource: item.resource.clone(),
            replaced_by: item.replaced_by_step.map(|s| {
                if s == k {
                    Err(())
                } else {
                    Ok(self.created[i].get(s).cloned().flatten())
                }
            }),
            after: item.after.clone(),
        });
        Member {
            rec: item.rec.clone(),
            step: k,
            op,
            inverse: item.steps[k].inverse.clone(),
            before,
            finish,
            undoes: None,
        }
    }
}

#[cfg(test)]
mod tests;
