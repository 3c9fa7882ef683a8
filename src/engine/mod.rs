//! Running typed steps: the parallel scheduler, batching, verification,
//! retries, failure, cancel, and undoing from the journal.
//!
//! A recommendation starts as soon as everything it waits for is done and a
//! slot is free (no barrier between waves; among ready ones the longest path
//! ahead goes first), and like steps ready together, or close together,
//! share one call (see [`sched`]). Its steps run in order; each intent is
//! durable before its call, each result is read back and checked (see
//! [`group`]). A failed
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
mod sched;
pub mod verify;

pub use events::Events;
pub use rollback::{
    Decisions, RollbackReport, Undo, forward_steps, forward_steps_deciding, recreates,
    resolve_unknown, rollback,
};

use crate::provider::Provider;
use crate::state::{Journal, JournalError};
use crate::vocabulary::{Attributes, ResourceId, Step};
use group::Ctx;
use sched::{Mode, Sched};
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
    /// How long a ready step may wait for like steps on their way (see
    /// [`sched`]); zero turns gathering off.
    pub gather: Duration,
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
    let mut sched = Sched::new(items, Mode::Apply, &ctx, cancel);
    sched.run(&ctx).await;
    std::mem::take(&mut sched.report)
}

#[cfg(test)]
mod tests;
