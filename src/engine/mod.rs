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
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One recommendation to apply.
#[derive(Debug, Clone)]
pub struct Item {
    pub rec: String,
    pub resource: Option<ResourceId>,
    pub steps: Vec<Step>,
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
    let mut dead = vec![false; n];
    let mut ready: BinaryHeap<(Duration, Reverse<usize>)> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(|i| (items[i].urgency, Reverse(i)))
        .collect();
    let mut running = tokio::task::JoinSet::new();
    let mut report = ApplyReport::default();
    loop {
        while running.len() < settings.parallelism.max(1) && !cancel.is_set() {
            let Some((_, Reverse(i))) = ready.pop() else {
                break;
            };
            let (ctx, items) = (Arc::clone(&ctx), Arc::clone(&items));
            running.spawn(async move { (i, run_item(&ctx, &items[i]).await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // A panic in a task is a bug; it must not take the run down unrecorded.
                report
                    .failed
                    .push((usize::MAX, format!("internal error: {e}")));
                continue;
            }
        };
        match result {
            Ok(()) => {
                report.completed.push(i);
                for &d in &dependents[i] {
                    waiting[d] -= 1;
                    if waiting[d] == 0 && !dead[d] {
                        ready.push((items[d].urgency, Reverse(d)));
                    }
                }
            }
            Err(e) => {
                report.failed.push((i, e));
                // Everything downstream is skipped.
                let mut stack = dependents[i].clone();
                while let Some(d) = stack.pop() {
                    if !dead[d] {
                        dead[d] = true;
                        let why = format!("upstream failed: {}", items[i].rec);
                        events.step_skipped(&items[d].rec, None, &why);
                        let _ = ctx.journal.append(
                            &Record::RecSkipped {
                                rec: items[d].rec.clone(),
                                why: why.clone(),
                            },
                            false,
                        );
                        report.skipped.push((d, why));
                        stack.extend(dependents[d].iter().copied());
                    }
                }
            }
        }
    }
    if cancel.is_set() {
        report.cancelled = true;
        let finished: Vec<usize> = report
            .completed
            .iter()
            .chain(report.failed.iter().map(|(i, _)| i))
            .chain(report.skipped.iter().map(|(i, _)| i))
            .copied()
            .collect();
        for i in 0..n {
            if !finished.contains(&i) {
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
    }
    let _ = ctx.journal.sync();
    report
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

async fn perform(ctx: &Ctx, rec: &str, k: usize, op: &Op) -> (Result<Outcome, ProviderError>, u32) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ctx.provider.perform(op).await {
            Err(e) if e.is_retryable() && attempt < ctx.settings.attempts => {
                ctx.events.retry(rec, k, attempt + 1, &e.to_string());
                let wait = ctx.settings.backoff * 2u32.saturating_pow(attempt - 1);
                tokio::time::sleep(wait.min(Duration::from_secs(20))).await;
            }
            other => return (other, attempt),
        }
    }
}

/// One step, journaled and checked; returns what it created.
async fn run_step(
    ctx: &Ctx,
    rec: &str,
    k: usize,
    op: Op,
    inverse: Inverse,
) -> Result<Option<String>, String> {
    let before_q = verify::query(&op, None);
    let before = if before_q.resources.is_empty() {
        None
    } else {
        let inv = read(ctx.provider.as_ref(), &before_q).await?;
        before_q.resources.first().and_then(|r| inv.attributes(r))
    };
    let seq = ctx.journal.next_seq();
    let intent = Record::Intent {
        seq,
        rec: rec.to_string(),
        step: k,
        op: Box::new(op.clone()),
        inverse,
        before,
        at: crate::clock::rfc3339(crate::clock::now()),
    };
    ctx.journal
        .append(&intent, true)
        .map_err(|e| format!("cannot write the journal: {e}"))?;
    ctx.events.step_start(rec, k, &op.describe());
    let started = Instant::now();
    let (result, attempts) = perform(ctx, rec, k, &op).await;
    let ms = started.elapsed().as_millis() as u64;
    let outcome = Record::Outcome {
        seq,
        ok: result.is_ok(),
        created: result.as_ref().ok().and_then(|o| o.created.clone()),
        error: result.as_ref().err().map(|e| e.to_string()),
        attempts,
        duration_ms: ms,
        at: crate::clock::rfc3339(crate::clock::now()),
    };
    ctx.journal
        .append(&outcome, false)
        .map_err(|e| format!("cannot write the journal: {e}"))?;
    let created = match result {
        Ok(o) => o.created,
        Err(e) => {
            let msg = e.to_string();
            ctx.events.step_failed(rec, k, &msg);
            return Err(msg);
        }
    };
    let q = verify::query(&op, created.as_deref());
    if !q.resources.is_empty() {
        let inv = read(ctx.provider.as_ref(), &q).await?;
        if let Err(what) = verify::effect_holds(&op, created.as_deref(), &inv) {
            let msg = format!("verification failed after `{}`: {what}", op.describe());
            ctx.events.step_failed(rec, k, &msg);
            return Err(msg);
        }
    }
    ctx.events.step_done(rec, k, ms, attempts);
    Ok(created)
}

async fn run_item(ctx: &Ctx, item: &Item) -> Result<(), String> {
    let mut created: Vec<Option<String>> = Vec::with_capacity(item.steps.len());
    for (k, step) in item.steps.iter().enumerate() {
        let mut op = resolve(&step.op, &created).map_err(|e| e.to_string())?;
        tag_created(
            &mut op,
            &ctx.settings.run,
            &format!("{}/{}", item.rec, k + 1),
        );
        match run_step(ctx, &item.rec, k, op, step.inverse.clone()).await {
            Ok(c) => created.push(c),
            Err(e) => {
                let _ = ctx.journal.append(
                    &Record::RecDone {
                        rec: item.rec.clone(),
                        ok: false,
                        resource: None,
                        after: None,
                        error: Some(e.clone()),
                    },
                    false,
                );
                return Err(format!("step {}: {e}", k + 1));
            }
        }
    }
    // The whole recommendation: the resource must now be what the preview said.
    let target = match item.replaced_by_step {
        Some(k) => created.get(k).cloned().flatten().map(ResourceId::Instance),
        None => item.resource.clone(),
    };
    let mut after_live = None;
    if let Some(r) = &target {
        let inv = read(
            ctx.provider.as_ref(),
            &Query {
                resources: vec![r.clone()],
                ..Query::default()
            },
        )
        .await?;
        after_live = inv.attributes(r);
        if let Some(predicted) = &item.after
            && let Err(what) = verify::matches_prediction(predicted, after_live.as_ref())
        {
            let msg = format!("{} does not match the preview: {what}", r.id());
            ctx.events
                .step_failed(&item.rec, item.steps.len().saturating_sub(1), &msg);
            let _ = ctx.journal.append(
                &Record::RecDone {
                    rec: item.rec.clone(),
                    ok: false,
                    resource: Some(r.id().into()),
                    after: after_live,
                    error: Some(msg.clone()),
                },
                false,
            );
            return Err(msg);
        }
    }
    let _ = ctx.journal.append(
        &Record::RecDone {
            rec: item.rec.clone(),
            ok: true,
            resource: target.map(|r| format!("{}:{}", r.kind(), r.id())),
            after: after_live,
            error: None,
        },
        false,
    );
    Ok(())
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
pub async fn rollback(
    undos: &[Undo],
    provider: Arc<dyn Provider>,
    journal: Arc<Journal>,
    events: &Events,
    settings: &Settings,
) -> RollbackReport {
    let ctx = Ctx {
        provider,
        journal,
        events: events.clone(),
        settings: settings.clone(),
    };
    let mut report = RollbackReport::default();
    for (n, u) in undos.iter().enumerate().rev() {
        if report.failed.is_some() {
            report.left.push(format!(
                "{} step {}: {}",
                u.rec,
                u.step + 1,
                u.inverse.describe()
            ));
            continue;
        }
        let op = match &u.inverse {
            Inverse::Nothing { .. } => continue,
            Inverse::Irreversible { why } => {
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
            Inverse::Op { op } => op,
        };
        let op = match resolve(op, &u.created) {
            Ok(op) => rename_ids(&op, &report.renamed),
            Err(e) => {
                report.failed = Some(format!("{} step {}: {e}", u.rec, u.step + 1));
                continue;
            }
        };
        let undo_of_undo = Inverse::Nothing {
            why: "an undo; apply the plan again to redo it".into(),
        };
        match run_step(&ctx, &u.rec, u.step, op, undo_of_undo).await {
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
                report.failed = Some(format!(
                    "{} step {} (undo: {}): {e}",
                    u.rec,
                    u.step + 1,
                    u.inverse.describe()
                ));
                let _ = n;
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
