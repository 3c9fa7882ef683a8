//! The scheduler behind both apply and rollback: which step goes next, and
//! with which others it shares a call.
//!
//! A chain of steps (a recommendation, or the undos of one) starts as soon
//! as everything it waits for is done and a slot is free: no barrier between
//! waves; among ready ones the longest path ahead goes first. Like steps on
//! other instances that are ready together go in one call. A ready step of
//! a batchable kind also waits, briefly, for like steps *on their way* (the
//! previous step of their chain is under way or about to be), so that a
//! chain such as stop → set type → start sends its starts in a handful of
//! calls instead of one each (group commit, as databases do for log
//! flushes). The wait ends when no more are on their way, when none has
//! joined for the gathering window, or after [`MAX_HOLD_WINDOWS`] windows;
//! a lone step never waits.
//!
//! A step whose effect the next step of its chain reads back anyway (a new
//! instance type, read back by the start that follows) is not read back on
//! its own: its effect is checked against the next step's read-back.

use super::group::{Ctx, Finish, GroupDone, Member, Seen, run_group, tag_created};
use super::rollback::{Undo, recreates};
use super::{ApplyReport, Cancel, Item, verify};
use crate::state::{JournalError, Record};
use crate::vocabulary::{Inverse, Op, resolve};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
// The runtime's clock, so that a test with a paused clock sees what waits.
use tokio::time::Instant;

/// A kind of step that many instances can share one call for.
type Key = (&'static str, bool);

use crate::config::GATHER_MAX_WINDOWS as MAX_HOLD_WINDOWS;

/// What the chains are: a plan's recommendations, or undos from a journal.
pub(super) enum Mode {
    Apply,
    Undo(Box<Undoing>),
}

/// What a rollback keeps while it runs.
pub(super) struct Undoing {
    pub undos: Vec<Undo>,
    /// Per item, the undo indices of its chain, newest first.
    pub chains: Vec<Vec<usize>>,
    pub apply_run: String,
    /// Old id → recreated id (given, plus what this rollback recreates).
    pub renamed: BTreeMap<String, String>,
    /// Undos done, in the order done.
    pub undone: Vec<usize>,
    /// Irreversible steps met, in words.
    pub irreversible: Vec<String>,
    /// The first undo that failed: its chain stops there, and so do the
    /// chains that must wait for it.
    pub failed: Option<String>,
    /// Other undos that failed (in chains of their own).
    pub also_failed: Vec<String>,
    /// Per undo: done, failed, or met as irreversible / nothing to undo.
    pub handled: Vec<bool>,
}

/// The scheduler's state: which step each chain is at, which are ready, and
/// which like steps are being gathered.
pub(super) struct Sched {
    pub items: Arc<Vec<Item>>,
    pub mode: Mode,
    run: String,
    waiting: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    next: Vec<usize>,
    created: Vec<Vec<Option<String>>>,
    seen: Vec<Option<Seen>>,
    /// The resolved op of each ready item's next step.
    pending: Vec<Option<Op>>,
    /// Ready items, most urgent first (entries no longer ready are skipped).
    ready: BinaryHeap<(Duration, Reverse<usize>)>,
    /// Ready items by batch key, for gathering a group.
    by_key: HashMap<Key, Vec<usize>>,
    /// Ready entries of a kind that is gathering, set aside until it ends.
    parked: HashMap<Key, Vec<(Duration, Reverse<usize>)>>,
    /// How many chains will have a step of this kind next (after the one
    /// they are at): like steps on their way.
    coming: HashMap<Key, usize>,
    /// What each chain counts in `coming`.
    announced: Vec<Option<Key>>,
    /// Per kind being gathered: when its first ready step arrived, and its
    /// latest.
    gathering: HashMap<Key, (Instant, Instant)>,
    /// Effects of earlier steps to check with the chain's next read-back.
    unchecked: Vec<Vec<(Op, Option<String>)>>,
    /// The op of each step under way whose read-back is left to the next step.
    deferred: Vec<Option<Op>>,
    state: Vec<ItemState>,
    pub report: ApplyReport,
    /// Items whose next step could not be prepared.
    failed_early: Vec<(usize, String)>,
    cancel: Cancel,
    window: Duration,
    batch: usize,
    parallelism: usize,
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

impl Sched {
    pub(super) fn new(items: Arc<Vec<Item>>, mode: Mode, ctx: &Ctx, cancel: Cancel) -> Sched {
        let n = items.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, item) in items.iter().enumerate() {
            for &d in &item.deps {
                dependents[d].push(i);
            }
        }
        let s = &ctx.settings;
        Sched {
            waiting: items.iter().map(|i| i.deps.len()).collect(),
            items,
            mode,
            run: s.run.clone(),
            dependents,
            next: vec![0; n],
            created: vec![Vec::new(); n],
            seen: vec![None; n],
            pending: vec![None; n],
            ready: BinaryHeap::new(),
            by_key: HashMap::new(),
            parked: HashMap::new(),
            coming: HashMap::new(),
            announced: vec![None; n],
            gathering: HashMap::new(),
            unchecked: vec![Vec::new(); n],
            deferred: vec![None; n],
            state: vec![ItemState::Waiting; n],
            report: ApplyReport::default(),
            failed_early: Vec::new(),
            cancel,
            // Gathering only makes sense where calls are shared.
            window: if s.batch > 1 {
                s.gather
            } else {
                Duration::ZERO
            },
            batch: s.batch.max(1),
            parallelism: s.parallelism.max(1),
        }
    }

    /// Runs every chain to its end (or until cancelled, halted by a failed
    /// undo, or stopped by a broken journal).
    pub(super) async fn run(&mut self, ctx: &Arc<Ctx>) {
        let n = self.items.len();
        for i in 0..n {
            // (A rollback's chain with nothing to call completes at once,
            // and may have made others ready already.)
            if self.waiting[i] == 0 && self.state[i] == ItemState::Waiting {
                self.make_ready(ctx, i);
            }
        }
        let mut running = tokio::task::JoinSet::new();
        let mut groups: HashMap<tokio::task::Id, Vec<usize>> = HashMap::new();
        let mut finished_groups = 0usize;
        loop {
            // Failures found while preparing steps (an unresolved reference).
            for (i, e) in std::mem::take(&mut self.failed_early) {
                self.fail(ctx, i, e);
            }
            if self.cancel.is_set() {
                self.drop_unstarted(ctx);
            }
            let mut hold_until = None;
            while running.len() < self.parallelism && self.may_start() {
                match self.take_group(Instant::now()) {
                    Take::Group(group) => {
                        let members: Vec<Member> = group.iter().map(|&i| self.member(i)).collect();
                        let ctx = Arc::clone(ctx);
                        let handle = running.spawn(async move { run_group(&ctx, &members).await });
                        groups.insert(handle.id(), group);
                    }
                    Take::Held(until) => {
                        hold_until = Some(until);
                        break;
                    }
                    Take::Nothing => break,
                }
            }
            if !self.failed_early.is_empty() {
                continue;
            }
            let joined = match hold_until {
                Some(until) if running.is_empty() => {
                    tokio::time::sleep_until(until).await;
                    continue;
                }
                Some(until) => tokio::select! {
                    j = running.join_next_with_id() => j,
                    () = tokio::time::sleep_until(until) => continue,
                },
                None => running.join_next_with_id().await,
            };
            let Some(joined) = joined else {
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
                        if matches!(self.mode, Mode::Apply) {
                            let rec = self.items[i].rec.clone();
                            let r = ctx.journal.append(
                                &Record::RecDone {
                                    rec,
                                    ok: false,
                                    resource: None,
                                    after: None,
                                    error: Some(msg.clone()),
                                },
                                false,
                            );
                            self.journal_note(r);
                        }
                        self.fail(ctx, i, msg);
                    }
                    continue;
                }
            };
            self.finish_group(ctx, group, done);
            finished_groups += 1;
            crate::hooks::pause(&format!("after-group-{finished_groups}"));
        }
        // What never started: cancelled, or stopped by a broken journal.
        let why = if self.report.journal.is_some() {
            Some("not started: the journal could not be written")
        } else if self.cancel.is_set() {
            Some("cancelled")
        } else {
            None
        };
        if let Some(why) = why {
            for i in 0..n {
                if matches!(self.state[i], ItemState::Waiting | ItemState::Ready) {
                    self.skip(ctx, i, why.to_string());
                }
            }
        }
        self.report.cancelled = self.cancel.is_set();
        if let Err(e) = ctx.journal.commit() {
            self.report.journal.get_or_insert(e);
        }
    }

    /// Whether any new step may start: not after the journal broke, nor
    /// (for a rollback) after Ctrl-C: undos under way finish, and the rest
    /// is left for the next rollback.
    fn may_start(&self) -> bool {
        if self.report.journal.is_some() {
            return false;
        }
        match &self.mode {
            Mode::Apply => true,
            Mode::Undo(_) => !self.cancel.is_set(),
        }
    }

    fn journal_note(&mut self, r: Result<(), JournalError>) {
        if let Err(e) = r {
            self.report.journal.get_or_insert(e);
        }
    }

    /// The batch key of item `i`'s step `k`, before it is resolved.
    fn key_of(&self, i: usize, k: usize) -> Option<Key> {
        self.step_op(i, k).and_then(Op::batch_key)
    }

    /// Item `i`'s step `k` as planned (references unresolved); for a
    /// rollback, the undo op (none for an irreversible step or one with
    /// nothing to undo).
    fn step_op(&self, i: usize, k: usize) -> Option<&Op> {
        match &self.mode {
            Mode::Apply => self.items[i].steps.get(k).map(|s| &s.op),
            Mode::Undo(u) => {
                let &x = u.chains[i].get(k)?;
                match &u.undos[x].inverse {
                    Inverse::Op { op } => Some(op),
                    _ => None,
                }
            }
        }
    }

    fn steps_of(&self, i: usize) -> usize {
        match &self.mode {
            Mode::Apply => self.items[i].steps.len(),
            Mode::Undo(u) => u.chains[i].len(),
        }
    }

    /// Counts chain `i`'s step after `k` as on its way.
    fn announce(&mut self, i: usize, k: usize) {
        self.retract(i);
        if let Some(key) = self.key_of(i, k + 1) {
            *self.coming.entry(key).or_default() += 1;
            self.announced[i] = Some(key);
        }
    }

    fn retract(&mut self, i: usize) {
        if let Some(key) = self.announced[i].take()
            && let Some(c) = self.coming.get_mut(&key)
        {
            *c = c.saturating_sub(1);
        }
    }

    /// Prepares item `i`'s next step and makes it ready.
    fn make_ready(&mut self, ctx: &Ctx, i: usize) {
        if self.next[i] == 0 && (self.cancel.is_set() || self.report.journal.is_some()) {
            // Nothing new starts once cancelled (or once the journal broke).
            let why = if self.report.journal.is_some() {
                "not started: the journal could not be written"
            } else {
                "cancelled"
            };
            self.skip(ctx, i, why.into());
            return;
        }
        // A rollback passes over what it cannot or need not undo.
        while let Mode::Undo(u) = &mut self.mode {
            let Some(&x) = u.chains[i].get(self.next[i]) else {
                break;
            };
            let v = &u.undos[x];
            match &v.inverse {
                Inverse::Op { .. } => break,
                Inverse::Irreversible { why } => {
                    let what = format!(
                        "{} step {} ({}): {why}",
                        v.rec,
                        v.step + 1,
                        v.forward.describe()
                    );
                    ctx.events
                        .step_skipped(&v.rec, Some(v.step), &format!("irreversible: {why}"));
                    u.irreversible.push(what);
                }
                Inverse::Nothing { .. } => {}
            }
            u.handled[x] = true;
            self.next[i] += 1;
        }
        if self.next[i] >= self.steps_of(i) {
            self.complete(ctx, i);
            return;
        }
        let k = self.next[i];
        let prepared = match &self.mode {
            Mode::Apply => resolve(&self.items[i].steps[k].op, &self.created[i])
                .map(|mut op| {
                    let step = format!("{}/{}", self.items[i].rec, k + 1);
                    tag_created(&mut op, &self.run, &step);
                    op.set_client_token(&self.run, &step);
                    op
                })
                .map_err(|e| format!("step {}: {e}", k + 1)),
            Mode::Undo(u) => {
                let v = &u.undos[u.chains[i][k]];
                match v.op(&u.apply_run, &u.renamed) {
                    Some(Ok(op)) => Ok(op),
                    Some(Err(e)) => Err(format!("{} step {}: {e}", v.rec, v.step + 1)),
                    None => Err(format!("{} step {}: nothing to undo", v.rec, v.step + 1)),
                }
            }
        };
        let op = match prepared {
            Ok(op) => op,
            Err(e) => {
                self.failed_early.push((i, e));
                return;
            }
        };
        if let Some(key) = op.batch_key() {
            self.by_key.entry(key).or_default().push(i);
            let now = Instant::now();
            self.gathering.entry(key).or_insert((now, now)).1 = now;
        }
        self.announce(i, k);
        self.pending[i] = Some(op);
        self.state[i] = ItemState::Ready;
        self.ready.push((self.items[i].urgency, Reverse(i)));
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
        self.pending[i] = None;
        self.retract(i);
        if matches!(self.mode, Mode::Apply) {
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
        }
        self.report.skipped.push((i, why));
    }

    /// A failed chain: reported, and everything downstream skipped.
    fn fail(&mut self, ctx: &Ctx, i: usize, e: String) {
        if matches!(self.state[i], ItemState::Failed | ItemState::Completed) {
            return;
        }
        self.state[i] = ItemState::Failed;
        self.pending[i] = None;
        self.retract(i);
        if let Mode::Undo(u) = &mut self.mode {
            // The failing undo is handled (reported as the failure).
            if let Some(&x) = u.chains[i].get(self.next[i]) {
                u.handled[x] = true;
            }
            if u.failed.is_none() {
                u.failed = Some(e.clone());
            } else {
                u.also_failed.push(e.clone());
            }
        }
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

    /// Item `i` has run its last step.
    fn complete(&mut self, ctx: &Ctx, i: usize) {
        self.state[i] = ItemState::Completed;
        self.retract(i);
        self.report.completed.push(i);
        for d in self.dependents[i].clone() {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 && self.state[d] == ItemState::Waiting {
                self.make_ready(ctx, d);
            }
        }
    }

    /// Takes in what a group did.
    fn finish_group(&mut self, ctx: &Ctx, group: Vec<usize>, done: GroupDone) {
        if let Some(e) = done.journal {
            self.report.journal.get_or_insert(e);
        }
        for (i, result) in group.into_iter().zip(done.results) {
            let deferred = self.deferred[i].take();
            match result {
                Ok(created) => {
                    self.report.steps_done += 1;
                    if let Mode::Undo(u) = &mut self.mode {
                        let x = u.chains[i][self.next[i]];
                        u.handled[x] = true;
                        u.undone.push(x);
                        if let (Some(new), Some(old)) = (&created, recreates(&u.undos[x].forward)) {
                            u.renamed.insert(old, new.clone());
                        }
                    }
                    match deferred {
                        // Checked with the next step's read-back; what was
                        // last read stays the chain's latest view.
                        Some(op) => self.unchecked[i].push((op, created.clone())),
                        None => self.seen[i] = Some(Arc::clone(&done.seen)),
                    }
                    self.created[i].push(created);
                    self.next[i] += 1;
                    if self.next[i] >= self.steps_of(i) {
                        self.complete(ctx, i);
                    } else if self.report.journal.is_some() {
                        self.fail(ctx, i, "stopped: the journal could not be written".into());
                    } else if !self.may_start() {
                        // A rollback stopped by Ctrl-C: the rest of this
                        // chain is left for the next rollback.
                        self.state[i] = ItemState::Skipped;
                        self.retract(i);
                    } else {
                        self.make_ready(ctx, i);
                    }
                }
                Err(e) => {
                    let e = match &self.mode {
                        Mode::Apply => format!("step {}: {e}", self.next[i] + 1),
                        Mode::Undo(u) => {
                            let v = &u.undos[u.chains[i][self.next[i]]];
                            format!(
                                "{} step {} (undo: {}): {e}",
                                v.rec,
                                v.step + 1,
                                v.inverse.describe()
                            )
                        }
                    };
                    self.fail(ctx, i, e)
                }
            }
        }
    }

    /// Whether steps of `key` are still being gathered at `now`, and until when.
    fn hold(&self, key: Key, now: Instant) -> Option<Instant> {
        if self.window.is_zero() || self.coming.get(&key).copied().unwrap_or(0) == 0 {
            return None;
        }
        if self.by_key.get(&key).map_or(0, Vec::len) >= self.batch {
            return None;
        }
        let &(first, last) = self.gathering.get(&key)?;
        let until = (last + self.window).min(first + self.window * MAX_HOLD_WINDOWS);
        (now < until).then_some(until)
    }

    /// The most urgent ready step that is not being gathered, with every
    /// other ready step that can go to the cloud in the same call (same
    /// operation, other instances).
    fn take_group(&mut self, now: Instant) -> Take {
        // Kinds whose gathering has ended go back to the queue.
        let ended: Vec<Key> = self
            .parked
            .keys()
            .copied()
            .filter(|k| self.hold(*k, now).is_none())
            .collect();
        for k in ended {
            for e in self.parked.remove(&k).unwrap_or_default() {
                self.ready.push(e);
            }
        }
        let first = loop {
            let Some(entry) = self.ready.pop() else {
                let until = self.parked.keys().filter_map(|k| self.hold(*k, now)).min();
                return until.map_or(Take::Nothing, Take::Held);
            };
            let (_, Reverse(i)) = entry;
            let Some(op) = self.pending[i].as_ref() else {
                continue;
            };
            if let Some(key) = op.batch_key()
                && self.hold(key, now).is_some()
            {
                self.parked.entry(key).or_default().push(entry);
                continue;
            }
            break i;
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
                    || group.len() >= self.batch
                    || group.contains(&j)
                    || inst.as_ref().is_none_or(|x| instances.contains(x))
                {
                    keep.push(j);
                    continue;
                }
                instances.extend(inst);
                group.push(j);
            }
            let left = !keep.is_empty();
            *list = keep;
            // What is left over starts a gathering of its own.
            if left {
                self.gathering.insert(key, (now, now));
            } else {
                self.gathering.remove(&key);
            }
        }
        for &i in &group {
            self.state[i] = ItemState::Running;
        }
        Take::Group(group)
    }

    /// Takes item `i`'s ready step out as a group member.
    fn member(&mut self, i: usize) -> Member {
        let k = self.next[i];
        let op = self.pending[i].take().expect("ready");
        // Left to the next step's read-back when that one sees its effect.
        let read_back = !self
            .step_op(i, k + 1)
            .is_some_and(|next| verify::read_back_by(self.step_op(i, k), next));
        if !read_back {
            self.deferred[i] = Some(op.clone());
        }
        let check_also = std::mem::take(&mut self.unchecked[i]);
        match &self.mode {
            Mode::Apply => {
                let item = &self.items[i];
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
                    read_back,
                    check_also,
                }
            }
            Mode::Undo(u) => {
                let v = &u.undos[u.chains[i][k]];
                Member {
                    rec: v.rec.clone(),
                    step: v.step,
                    op,
                    inverse: Inverse::Nothing {
                        why: "an undo; apply the plan again to redo it".into(),
                    },
                    before: None,
                    finish: None,
                    undoes: Some(v.seq),
                    read_back,
                    check_also,
                }
            }
        }
    }
}

/// What the scheduler can start next.
enum Take {
    Group(Vec<usize>),
    /// Nothing now: like steps are being gathered until then.
    Held(Instant),
    Nothing,
}
