//! `validate`: the static checks of a plan file, composed. No provider calls.
//!
//! `plan::check` finds shape problems; the graph finds cycles among the
//! recommendations that could be read. Both are reported together.

use crate::graph::PlanGraph;
use crate::plan::{self, LoadError, LoadedPlan};
use std::path::Path;

/// Loads `path` and checks its shape and its dependency graph, reporting
/// every problem at once.
pub fn validate(path: &Path) -> Result<(LoadedPlan, PlanGraph), LoadError> {
    let (loaded, mut diags) = plan::check(path)?;
    let Some(loaded) = loaded else {
        return Err(LoadError::Invalid(diags));
    };
    let graph = PlanGraph::from_depends_on(&loaded);
    diags.extend(graph.cycles(&loaded));
    if diags.is_empty() {
        Ok((loaded, graph))
    } else {
        diags.sort_by_key(|d| d.primary.span.offset);
        Err(LoadError::Invalid(diags))
    }
}
