//! The state directory: durable files written atomically.

pub mod atomic;
