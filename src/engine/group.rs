//! Running one group of steps: a single step, or like steps on many
//! instances that share one cloud call. Each intent is durable before the
//! call, each outcome is journaled, each effect is read back and checked,
//! and a recommendation's last step checks the whole recommendation against
//! the preview. One read serves the whole group.

use super::{Events, Settings, verify};
use crate::provider::{Inventory, Provider, ProviderError, Query};
use crate::state::{Journal, JournalError, Record};
use crate::vocabulary::{Attributes, Inverse, Op, Outcome, ResourceId, Tags};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) struct Ctx {
    pub provider: Arc<dyn Provider>,
    pub journal: Arc<Journal>,
    pub events: Events,
    pub settings: Settings,
}

impl Ctx {
    /// Attempts for a transient error: the provider's own retries, or ours.
    fn attempts(&self) -> u32 {
        if self.provider.retries_itself() {
            1
        } else {
            self.settings.attempts.max(1)
        }
    }
}

/// One step in a group: everything needed to journal, perform and check it.
pub(super) struct Member {
    pub rec: String,
    pub step: usize,
    pub op: Op,
    pub inverse: Inverse,
    /// The resource as last read (the plan's refresh, or the read-back of
    /// the recommendation's previous step), for the journal.
    pub before: Option<Attributes>,
    /// Set when this is the recommendation's last step: check the whole
    /// recommendation against the preview.
    pub finish: Option<Finish>,
    /// For an undo: the forward step it undoes (its seq in the apply's journal).
    pub undoes: Option<u64>,
    /// Whether this step is read back and checked now; otherwise the next
    /// step of its chain checks its effect (`check_also` there).
    pub read_back: bool,
    /// Effects of earlier steps of the chain left to this step's read-back.
    pub check_also: Vec<(Op, Option<String>)>,
}

pub(super) struct Finish {
    /// The resource the recommendation is about, if not replaced.
    pub resource: Option<ResourceId>,
    /// Replaced by what this step creates, or by what an earlier one did.
    pub replaced_by: Option<Result<Option<String>, ()>>,
    pub after: Option<Attributes>,
}

/// How one member went: what it created, or why it failed.
pub(super) type MemberResult = Result<Option<String>, String>;

/// What a group read back, for the next steps' journal records.
pub(super) type Seen = Arc<Inventory>;

/// A group's results, what it read back, and whether the journal broke.
pub(super) struct GroupDone {
    pub results: Vec<MemberResult>,
    pub seen: Seen,
    pub journal: Option<JournalError>,
}

/// Adds the run and step to what a step creates, so that after a crash the
/// thing can be found again instead of being made twice.
pub(super) fn tag_created(op: &mut Op, run: &str, step: &str) {
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

pub(super) async fn read(provider: &dyn Provider, q: &Query) -> Result<Inventory, String> {
    provider
        .describe(q)
        .await
        .map_err(|e| format!("reading back failed: {e}"))
}

/// Each op's result and attempts, and what the provider read back.
type Called = (
    Vec<(Result<Outcome, ProviderError>, u32)>,
    Option<Inventory>,
);
type CallFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Called> + Send + 'a>>;

/// Performs the members' ops as one call, retrying the whole call on
/// transient errors and splitting it in halves when the cloud refuses it,
/// so one bad op does not stop the others. Returns each op's result and
/// attempts, and what the provider read back (only when not split).
fn call<'a>(ctx: &'a Ctx, members: &'a [Member]) -> CallFuture<'a> {
    Box::pin(async move {
        let ops: Vec<Op> = members.iter().map(|m| m.op.clone()).collect();
        let attempts = ctx.attempts();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batch = ctx.provider.perform_batch(&ops).await;
            if batch.refused
                && let Some(e) = batch.results.iter().find_map(|r| r.as_ref().err()).cloned()
            {
                if e.is_retryable() && attempt < attempts {
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
            let results = batch.results.into_iter().map(|r| (r, attempt)).collect();
            return (results, batch.observed);
        }
    })
}

/// Whether an answer read back by the provider speaks for `r`.
fn covers(inv: &Inventory, r: &ResourceId) -> bool {
    match r {
        ResourceId::Instance(i) => inv.instance(i).is_some(),
        _ => false,
    }
}

/// Runs a group; see the module documentation.
pub(super) async fn run_group(ctx: &Ctx, members: &[Member]) -> GroupDone {
    let empty = || Arc::new(Inventory::default());
    let broken = |e: JournalError| GroupDone {
        results: members.iter().map(|_| Err(e.to_string())).collect(),
        seen: empty(),
        journal: Some(e),
    };
    let mut seqs = Vec::with_capacity(members.len());
    for m in members {
        let seq = ctx.journal.next_seq();
        seqs.push(seq);
        let intent = Record::Intent {
            seq,
            rec: m.rec.clone(),
            step: m.step,
            op: Box::new(m.op.clone()),
            inverse: Box::new(m.inverse.clone()),
            before: m.before.clone(),
            at: crate::clock::rfc3339(crate::clock::now()),
            undoes: m.undoes,
        };
        if let Err(e) = ctx.journal.append(&intent, false) {
            return broken(e);
        }
    }
    // Nothing is called unless every intent of the group is durable.
    if let Err(e) = ctx.journal.commit() {
        return broken(e);
    }
    for m in members {
        ctx.events.step_start(&m.rec, m.step, &m.op.describe());
    }
    let started = Instant::now();
    let (results, observed) = call(ctx, members).await;
    let ms = started.elapsed().as_millis() as u64;
    let mut journal_error: Option<JournalError> = None;
    let mut note = |r: Result<(), JournalError>| {
        if let Err(e) = r {
            journal_error.get_or_insert(e);
        }
    };
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
        note(ctx.journal.append(&outcome, false));
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
            if m.read_back {
                wanted.extend(verify::touched(&m.op, created.as_deref()));
            }
            for (op, made) in &m.check_also {
                wanted.extend(verify::touched(op, made.as_deref()));
            }
            wanted.extend(fin.clone());
        }
    }
    wanted.sort();
    wanted.dedup();
    let seen = match observed {
        Some(inv) if wanted.iter().all(|r| covers(&inv, r)) => Ok(inv),
        _ if wanted.is_empty() => Ok(Inventory::default()),
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
            let e = r.as_ref().err().cloned().unwrap_or_default();
            note(rec_failed(ctx, m, e, None, None));
            continue;
        };
        let failed_check = m
            .read_back
            .then_some((&m.op, &*created))
            .into_iter()
            .chain(m.check_also.iter().map(|(op, made)| (op, made)))
            .find_map(|(op, made)| {
                verify::effect_holds(op, made.as_deref(), &seen)
                    .err()
                    .map(|what| format!("verification failed after `{}`: {what}", op.describe()))
            });
        if let Some(msg) = failed_check {
            ctx.events.step_failed(&m.rec, m.step, &msg);
            note(rec_failed(ctx, m, msg.clone(), None, None));
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
                note(rec_failed(ctx, m, msg.clone(), Some(t.key()), now));
                *r = Err(msg);
                continue;
            }
            note(ctx.journal.append(
                &Record::RecDone {
                    rec: m.rec.clone(),
                    ok: true,
                    resource: fin.as_ref().map(ResourceId::key),
                    after: now,
                    error: None,
                },
                false,
            ));
        }
        ctx.events.step_done(&m.rec, m.step, ms, *attempts);
    }
    GroupDone {
        results: out,
        seen,
        journal: journal_error,
    }
}

/// Records a forward recommendation that failed (undos record no recommendations).
fn rec_failed(
    ctx: &Ctx,
    m: &Member,
    error: String,
    resource: Option<String>,
    after: Option<Attributes>,
) -> Result<(), JournalError> {
    if m.undoes.is_some() {
        return Ok(());
    }
    ctx.journal.append(
        &Record::RecDone {
            rec: m.rec.clone(),
            ok: false,
            resource,
            after,
            error: Some(error),
        },
        false,
    )
}
