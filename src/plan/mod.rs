//! Plan files: the model, the loader with located diagnostics, the JSON Schema.

pub mod ids;
pub mod load;
pub mod model;
pub mod node;
pub mod schema;

pub use load::{LoadError, LoadedPlan, check, check_str, load, load_str};
pub use model::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
