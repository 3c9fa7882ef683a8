//! pare: cloud cost changes as reviewed code.
//!
//! The library holds everything; `main.rs` only parses arguments, calls
//! [`cli::run`] and maps the outcome to an exit code.

pub mod cli;
pub mod clock;
pub mod config;
pub mod diagnostic;
pub mod durable;
pub mod engine;
pub mod executor;
pub mod generate;
pub mod graph;
pub mod hooks;
pub mod import;

pub mod plan;
pub mod planner;
pub mod preview;
pub mod pricing;
pub mod provider;
pub mod risk;
pub mod serve;
pub mod session;
pub mod settings;
pub mod state;
pub mod validate;
pub mod vocabulary;
