//! Running steps: the parallel scheduler, verification, retries, failure
//! handling, and rollback from the journal.
//!
//! A recommendation starts as soon as everything it waits for is done and a
//! slot is free (no barrier between waves; among ready ones the longest path
//! ahead goes first). Its steps run in order; each intent is durable before
//! its call, each result is read back and checked. A failed step fails its
//! recommendation and skips everything downstream; independent branches run
//! on. The engine never sees clap, and speaks to the cloud only through the
//! provider trait.

pub mod events;
pub mod items;
pub mod verify;

pub use events::Events;

use crate::executor::Step;
use crate::planner::{Attributes, rename_ids, resolve};
use crate::provider::{Inverse, Op, Outcome, Provider, ProviderError, Query, ResourceId, Tags};
use crate::state::{Journal, Record};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// Attempts for a transient error (throttling, a flaky call).
    pub attempts: u32,
    pub backoff: Duration,
    pub run: String,
    /// Most steps sent to the cloud in one call (stop, start, terminate and
    /// monitoring of many instances).
    pub batch: usize,
}

/// How an apply went.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub completed: Vec<usize>,
    pub failed: Vec<(usize, String)>,
    pub skipped: Vec<(usize, String)>,
    pub cancelled: bool,
}

/// A stop flag set by Ctrl-C: no new work starts, work under way finishes.
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

struct Ctx {
    provider: Arc<dyn Provider>,
    journal: Arc<Journal>,
    events: Events,
    settings: Settings,
}

/// One step in a group: everything needed to journal, perform and check it.
struct Member {
    rec: String,
    step: usize,
    op: Op,
    inverse: Inverse,
    /// The resource as last read (the plan's refresh, or the read-back of
    /// the recommendation's previous step), for the journal.
    before: Option<Attributes>,
    /// Set when this is the recommendation's last step: check the whole
    /// recommendation against the preview.
    finish: Option<Finish>,
    /// Forward steps record how their recommendation ended; undos do not.
    records_rec: bool,
}

struct Finish {
    /// The resource the recommendation is about, if not replaced.
    resource: Option<ResourceId>,
    /// Replaced by what this step creates, or by what an earlier one did.
    replaced_by: Option<Result<Option<String>, ()>>,
    after: Option<Attributes>,
}

/// How one member went: what it created, or why it failed.
type MemberResult = Result<Option<String>, String>;

/// What a group read back, for the next steps' journal records.
type Seen = Arc<crate::provider::Inventory>;

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
    let mut waiting: Vec<usize> = items.iter().map(|i| i.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, item) in items.iter().enumerate() {
        for &d in &item.deps {
            dependents[d].push(i);
        }
    }
    let mut st = Sched {
        items: Arc::clone(&items),
        run: settings.run.clone(),
        next: vec![0; n],
        created: vec![Vec::new(); n],
        seen: vec![None; n],
        pending: vec![None; n],
        ready: BinaryHeap::new(),
        by_key: HashMap::new(),
        dead: vec![false; n],
        report: ApplyReport::default(),
        failed_early: Vec::new(),
    };
    for (i, _) in waiting.iter().enumerate().filter(|(_, w)| **w == 0) {
        st.make_ready(i);
    }
    let mut running = tokio::task::JoinSet::new();
    loop {
        // Failures found while preparing steps (an unresolved reference).
        for (i, e) in std::mem::take(&mut st.failed_early) {
            fail(&ctx, &mut st, &dependents, i, e);
        }
        while running.len() < settings.parallelism.max(1) && !cancel.is_set() {
            let Some(group) = st.take_group(settings.batch.max(1)) else {
                break;
            };
            let members: Vec<Member> = group.iter().map(|&i| st.member(i)).collect();
            let ctx = Arc::clone(&ctx);
            running.spawn(async move {
                let (results, seen) = run_group(&ctx, &members).await;
                (group, results, seen)
            });
        }
        if !st.failed_early.is_empty() {
            continue;
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (group, results, seen) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panic in a task is a bug; it must not take the run down unrecorded.
                st.report
                    .failed
                    .push((usize::MAX, format!("internal error: {e}")));
                continue;
            }
        };
        for (i, result) in group.into_iter().zip(results) {
            match result {
                Ok(created) => {
                    st.created[i].push(created);
                    st.next[i] += 1;
                    st.seen[i] = Some(Arc::clone(&seen));
                    if st.next[i] < items[i].steps.len() {
                        st.make_ready(i);
                        continue;
                    }
                    st.report.completed.push(i);
                    for &d in &dependents[i] {
                        waiting[d] -= 1;
                        if waiting[d] == 0 && !st.dead[d] {
                            st.make_ready(d);
                        }
                    }
                }
                Err(e) => {
                    let e = format!("step {}: {e}", st.next[i] + 1);
                    fail(&ctx, &mut st, &dependents, i, e)
                }
            }
        }
    }
    let mut report = std::mem::take(&mut st.report);
    if cancel.is_set() {
        report.cancelled = true;
        let mut finished = vec![false; n];
        for &i in report
            .completed
            .iter()
            .chain(report.failed.iter().map(|(i, _)| i))
            .chain(report.skipped.iter().map(|(i, _)| i))
        {
            if i < n {
                finished[i] = true;
            }
        }
        for i in (0..n).filter(|&i| !finished[i]) {
            events.step_skipped(&items[i].rec, None, "cancelled");
            let _ = ctx.journal.append(
                &Record::RecSkipped {
                    rec: items[i].rec.clone(),
                    why: "cancelled".into(),
                },
                false,
            );
            report.skipped.push((i, "cancelled".into()));
        }
    }
    let _ = ctx.journal.sync();
    report
}

/// A failed recommendation: it is reported, and everything downstream skipped.
fn fail(ctx: &Ctx, st: &mut Sched, dependents: &[Vec<usize>], i: usize, e: String) {
    let items = Arc::clone(&st.items);
    st.report.failed.push((i, e));
    let mut stack = dependents[i].clone();
    while let Some(d) = stack.pop() {
        if !st.dead[d] {
            st.dead[d] = true;
            let why = format!("upstream failed: {}", items[i].rec);
            ctx.events.step_skipped(&items[d].rec, None, &why);
            let _ = ctx.journal.append(
                &Record::RecSkipped {
                    rec: items[d].rec.clone(),
                    why: why.clone(),
                },
                false,
            );
            st.report.skipped.push((d, why));
            stack.extend(dependents[d].iter().copied());
        }
    }
}

/// The scheduler's state: which step each item is at, and which are ready.
struct Sched {
    items: Arc<Vec<Item>>,
    run: String,
    next: Vec<usize>,
    created: Vec<Vec<Option<String>>>,
    seen: Vec<Option<Seen>>,
    /// The resolved op of each ready item's next step.
    pending: Vec<Option<Op>>,
    /// Ready items, most urgent first (entries of items no longer ready are skipped).
    ready: BinaryHeap<(Duration, Reverse<usize>)>,
    /// Ready items by batch key, for gathering a group.
    by_key: HashMap<(&'static str, bool), Vec<usize>>,
    dead: Vec<bool>,
    report: ApplyReport,
    /// Items whose next step could not be prepared.
    failed_early: Vec<(usize, String)>,
}

impl Sched {
    fn make_ready(&mut self, i: usize) {
        let item = &self.items[i];
        let k = self.next[i];
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
        self.ready.push((item.urgency, Reverse(i)));
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
            records_rec: true,
        }
    }
}

/// Adds the run and step to what a step creates, so that after a crash the
/// thing can be found again instead of being made twice.
fn tag_created(op: &mut Op, run: &str, step: &str) {
    let tags: Option<&mut Tags> = match op {
        Op::CreateImage { tags, .. } | Op::CreateSnapshot { tags, .. } => Some(tags),
        // Only launches pare makes forward (spot replacements), never a relaunch
        // that must come back exactly as it was.
        Op::LaunchInstance { spec } if spec.tags.contains_key("pare:recommendation") => {
            Some(&mut spec.tags)
        }
        _ => None,
    };
    if let Some(t) = tags {
        t.insert("pare:run".into(), run.into());
        t.insert("pare:step".into(), step.into());
    }
}

async fn read(provider: &dyn Provider, q: &Query) -> Result<crate::provider::Inventory, String> {
    provider
        .describe(q)
        .await
        .map_err(|e| format!("reading back failed: {e}"))
}

/// Each op's result and attempts, and what the provider read back.
type Called = (
    Vec<(Result<Outcome, ProviderError>, u32)>,
    Option<crate::provider::Inventory>,
);
type CallFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Called> + Send + 'a>>;

/// Performs `ops` as one call, retrying the whole call on transient errors
/// and splitting it in halves when the cloud refuses it, so one bad op does
/// not stop the others. Returns each op's result and attempts, and what the
/// provider read back (only when the call was not split).
fn call<'a>(ctx: &'a Ctx, members: &'a [Member]) -> CallFuture<'a> {
    Box::pin(async move {
        let ops: Vec<Op> = members.iter().map(|m| m.op.clone()).collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batch = ctx.provider.perform_batch(&ops).await;
            if batch.refused {
                let e = batch.results.iter().find_map(|r| r.as_ref().err()).cloned();
                if let Some(e) = e {
                    if e.is_retryable() && attempt < ctx.settings.attempts {
                        for m in members {
                            ctx.events
                                .retry(&m.rec, m.step, attempt + 1, &e.to_string());
                        }
                        let wait = ctx.settings.backoff * 2u32.saturating_pow(attempt - 1);
                        tokio::time::sleep(wait.min(Duration::from_secs(20))).await;
                        continue;
                    }
                    if members.len() > 1 {
                        tracing::warn!(
                            "a call of {} `{}` steps was refused ({e}); splitting it to find the step it refuses, the others go ahead",
                            members.len(),
                            members[0].op.name()
                        );
                        let (a, b) = members.split_at(members.len() / 2);
                        let (mut ra, _) = call(ctx, a).await;
                        let (rb, _) = call(ctx, b).await;
                        for r in ra.iter_mut() {
                            r.1 += attempt;
                        }
                        ra.extend(rb.into_iter().map(|(r, n)| (r, n + attempt)));
                        return (ra, None);
                    }
                }
            }
            let results = batch.results.into_iter().map(|r| (r, attempt)).collect();
            return (results, batch.observed);
        }
    })
}

/// Runs a group of steps (one step, or steps that share one cloud call):
/// each intent is durable before the call, each outcome is journaled, each
/// effect is read back and checked, and a recommendation's last step also
/// checks the whole recommendation against the preview. One read serves
/// the whole group.
async fn run_group(ctx: &Ctx, members: &[Member]) -> (Vec<MemberResult>, Seen) {
    let empty = || Arc::new(crate::provider::Inventory::default());
    let mut seqs = Vec::with_capacity(members.len());
    for m in members {
        let seq = ctx.journal.next_seq();
        seqs.push(seq);
        let intent = Record::Intent {
            seq,
            rec: m.rec.clone(),
            step: m.step,
            op: Box::new(m.op.clone()),
            inverse: m.inverse.clone(),
            before: m.before.clone(),
            at: crate::clock::rfc3339(crate::clock::now()),
        };
        if let Err(e) = ctx.journal.append(&intent, false) {
            let msg = format!("cannot write the journal: {e}");
            return (members.iter().map(|_| Err(msg.clone())).collect(), empty());
        }
    }
    if let Err(e) = ctx.journal.sync() {
        // Nothing was called: the intents may or may not be on disk, and
        // recovery reads the cloud either way.
        let msg = format!("cannot write the journal: {e}");
        return (members.iter().map(|_| Err(msg.clone())).collect(), empty());
    }
    for m in members {
        ctx.events.step_start(&m.rec, m.step, &m.op.describe());
    }
    let started = Instant::now();
    let (results, observed) = call(ctx, members).await;
    let ms = started.elapsed().as_millis() as u64;
    let mut out: Vec<MemberResult> = Vec::with_capacity(members.len());
    for ((m, seq), (result, attempts)) in members.iter().zip(&seqs).zip(&results) {
        let outcome = Record::Outcome {
            seq: *seq,
            ok: result.is_ok(),
            created: result.as_ref().ok().and_then(|o| o.created.clone()),
            error: result.as_ref().err().map(|e| e.to_string()),
            attempts: *attempts,
            duration_ms: ms,
            at: crate::clock::rfc3339(crate::clock::now()),
        };
        if let Err(e) = ctx.journal.append(&outcome, false) {
            out.push(Err(format!("cannot write the journal: {e}")));
            continue;
        }
        out.push(match result {
            Ok(o) => Ok(o.created.clone()),
            Err(e) => {
                ctx.events.step_failed(&m.rec, m.step, &e.to_string());
                Err(e.to_string())
            }
        });
    }
    // Read back, once for the group: what the steps touched, and the
    // resources of recommendations that end here.
    let finals: Vec<Option<ResourceId>> = members
        .iter()
        .zip(&out)
        .map(|(m, r)| {
            let f = m.finish.as_ref()?;
            let created = r.as_ref().ok()?;
            match &f.replaced_by {
                Some(Err(())) => created.clone().map(ResourceId::Instance),
                Some(Ok(earlier)) => earlier.clone().map(ResourceId::Instance),
                None => f.resource.clone(),
            }
        })
        .collect();
    let mut wanted: Vec<ResourceId> = Vec::new();
    for ((m, r), fin) in members.iter().zip(&out).zip(&finals) {
        if let Ok(created) = r {
            wanted.extend(verify::touched(&m.op, created.as_deref()));
            wanted.extend(fin.clone());
        }
    }
    wanted.sort();
    wanted.dedup();
    let seen = match observed {
        Some(inv) if wanted.iter().all(|r| covers(&inv, r)) => Ok(inv),
        _ if wanted.is_empty() => Ok(crate::provider::Inventory::default()),
        _ => {
            read(
                ctx.provider.as_ref(),
                &Query {
                    resources: wanted,
                    ..Query::default()
                },
            )
            .await
        }
    };
    let seen = match seen {
        Ok(inv) => Arc::new(inv),
        Err(e) => {
            for (m, r) in members.iter().zip(out.iter_mut()) {
                if r.is_ok() {
                    ctx.events.step_failed(&m.rec, m.step, &e);
                    *r = Err(e.clone());
                }
            }
            empty()
        }
    };
    for (((m, r), fin), (_, attempts)) in members
        .iter()
        .zip(out.iter_mut())
        .zip(&finals)
        .zip(&results)
    {
        let Ok(created) = r else {
            rec_failed(
                ctx,
                m,
                r.as_ref().err().cloned().unwrap_or_default(),
                None,
                None,
            );
            continue;
        };
        if let Err(what) = verify::effect_holds(&m.op, created.as_deref(), &seen) {
            let msg = format!("verification failed after `{}`: {what}", m.op.describe());
            ctx.events.step_failed(&m.rec, m.step, &msg);
            rec_failed(ctx, m, msg.clone(), None, None);
            *r = Err(msg);
            continue;
        }
        if let Some(f) = &m.finish {
            // The whole recommendation: the resource must now be what the preview said.
            let now = fin.as_ref().and_then(|t| seen.attributes(t));
            if let (Some(t), Some(predicted)) = (fin, &f.after)
                && let Err(what) = verify::matches_prediction(predicted, now.as_ref())
            {
                let msg = format!("{} does not match the preview: {what}", t.id());
                ctx.events.step_failed(&m.rec, m.step, &msg);
                rec_failed(ctx, m, msg.clone(), Some(t.id().into()), now);
                *r = Err(msg);
                continue;
            }
            let _ = ctx.journal.append(
                &Record::RecDone {
                    rec: m.rec.clone(),
                    ok: true,
                    resource: fin.as_ref().map(|t| format!("{}:{}", t.kind(), t.id())),
                    after: now,
                    error: None,
                },
                false,
            );
        }
        ctx.events.step_done(&m.rec, m.step, ms, *attempts);
    }
    (out, seen)
}

fn rec_failed(
    ctx: &Ctx,
    m: &Member,
    error: String,
    resource: Option<String>,
    after: Option<Attributes>,
) {
    if !m.records_rec {
        return;
    }
    let _ = ctx.journal.append(
        &Record::RecDone {
            rec: m.rec.clone(),
            ok: false,
            resource,
            after,
            error: Some(error),
        },
        false,
    );
}

/// Whether an answer read back by the provider speaks for `r`.
fn covers(inv: &crate::provider::Inventory, r: &ResourceId) -> bool {
    match r {
        ResourceId::Instance(i) => inv.instance(i).is_some(),
        _ => false,
    }
}

/// A completed step to undo, as the journal recorded it.
#[derive(Debug, Clone)]
pub struct Undo {
    pub rec: String,
    pub step: usize,
    /// The forward operation, resolved.
    pub forward: Op,
    pub inverse: Inverse,
    /// What this recommendation's steps created, by step index, as far as known.
    pub created: Vec<Option<String>>,
    /// When the forward step was made (RFC 3339).
    pub done_at: String,
}

/// How a rollback went.
#[derive(Debug, Default)]
pub struct RollbackReport {
    pub undone: usize,
    /// Steps that could not be undone, in words.
    pub irreversible: Vec<String>,
    /// The undo that failed, if one did: the rollback stops there.
    pub failed: Option<String>,
    /// Undos not attempted after a failure, in words.
    pub left: Vec<String>,
    /// Recreated resources: old id → new id.
    pub renamed: BTreeMap<String, String>,
}

/// Undoes `undos` (in forward order) newest first, through the journal.
/// `renamed` holds what earlier rollbacks of the same run recreated
/// (old id → new id), so a resumed rollback finds it.
pub async fn rollback(
    undos: &[Undo],
    provider: Arc<dyn Provider>,
    journal: Arc<Journal>,
    events: &Events,
    settings: &Settings,
    renamed: BTreeMap<String, String>,
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
    let undo_op = |u: &Undo, renamed: &BTreeMap<String, String>| match &u.inverse {
        Inverse::Op { op } => Some(resolve(op, &u.created).map(|op| {
            let mut op = rename_ids(&op, renamed);
            op.set_client_token(&settings.run, &format!("{}/{}", u.rec, u.step + 1));
            op
        })),
        _ => None,
    };
    let mut pos = 0;
    while pos < order.len() {
        let u = &undos[order[pos]];
        pos += 1;
        if report.failed.is_some() {
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
        let op = match undo_op(u, &report.renamed) {
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
                let Some(Ok(next)) = undo_op(&undos[order[pos]], &report.renamed) else {
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
                records_rec: false,
            })
            .collect();
        let (results, _) = run_group(&ctx, &members).await;
        for ((k, _), result) in group.iter().zip(results) {
            let u = &undos[*k];
            match result {
                Ok(created) => {
                    report.undone += 1;
                    if let (
                        Some(new),
                        Op::TerminateInstance { instance: r } | Op::DeleteVolume { volume: r },
                    ) = (created, &u.forward)
                        && let Some(old) = r.known()
                    {
                        report.renamed.insert(old.to_string(), new);
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
    let _ = ctx.journal.sync();
    report
}

/// The completed steps of a journal, in forward order, ready to undo. A step
/// whose outcome was never written (the run was killed) is resolved by
/// reading the live resource: it counts as done if its effect is there.
pub async fn undos_from_journal(
    records: &[Record],
    run: &str,
    provider: &dyn Provider,
) -> Result<Vec<Undo>, String> {
    let steps = crate::state::journal::steps(records);
    let mut created_by: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut out = Vec::new();
    for s in steps {
        let created_list = created_by.entry(s.rec.clone()).or_default();
        let (ok, created) = match &s.outcome {
            Some((ok, created)) => (*ok, created.clone()),
            None => resolve_unknown(&s.op, run, &s.rec, s.step, provider).await?,
        };
        while created_list.len() < s.step {
            created_list.push(None);
        }
        created_list.push(created.clone());
        if ok {
            out.push(Undo {
                rec: s.rec.clone(),
                step: s.step,
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
    Ok(out)
}

/// Did a step whose outcome is unknown take effect? Reads the cloud.
async fn resolve_unknown(
    op: &Op,
    run: &str,
    rec: &str,
    step: usize,
    provider: &dyn Provider,
) -> Result<(bool, Option<String>), String> {
    let step_tag = format!("{rec}/{}", step + 1);
    match op {
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

#[cfg(test)]
mod tests;
