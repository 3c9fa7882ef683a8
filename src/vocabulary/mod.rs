//! The words every floor speaks: risk levels, resource ids and attributes,
//! the primitive operations (steps) with their inverses, cloud errors, and
//! putting them into words safely. Imports nothing else of pare.

mod error;
mod op;
mod resource;
mod risk;
pub mod words;

pub use error::CloudError;
pub use op::{Inverse, LaunchSpec, Op, Outcome, Ref, Step, VolumeSpec, rename_ids, resolve};
pub use resource::{
    Attributes, InstanceState, Lifecycle, Monitoring, ResourceId, Tags, fingerprint, hex,
};
pub use risk::Risk;
