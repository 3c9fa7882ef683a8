//! The state directory: the lock, the runs and their journals, durable files
//! written atomically and readable by their owner only.

pub mod atomic;
pub mod journal;
pub mod runs;

pub use journal::{Journal, Record};
pub use runs::{Lock, RunKind, RunRecord, RunStatus, StateError, Store};
