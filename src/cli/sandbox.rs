//! `pare sandbox reset PLAN`: copy the plan's seed account into the state again.

use super::{ExitCode, GlobalArgs, Output, common};
use crate::plan::Provider;
use crate::provider::sandbox::{SandboxError, SandboxProvider, seed_path};
use crate::session::Session;
use crate::vocabulary::words::plural;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Discard the sandbox account and copy the plan's seed again.
    Reset {
        /// The plan whose `seed` account to copy.
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
    },
}

pub fn run(out: &Output, global: &GlobalArgs, cmd: SandboxCommand) -> miette::Result<ExitCode> {
    let SandboxCommand::Reset { plan } = cmd;
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let loaded = match crate::plan::load(&plan) {
        Ok(l) => l,
        Err(e) => {
            common::report_load(out, &e);
            return Ok(ExitCode::Error);
        }
    };
    let Provider::Sandbox(s) = &loaded.plan.provider else {
        out.status(&format!(
            "error: {} does not use the sandbox provider; there is nothing to reset",
            plan.display()
        ));
        return Ok(ExitCode::Error);
    };
    // A reset is a change to the state: one at a time, never under a run.
    let session = match Session::begin(settings, "sandbox reset") {
        Ok(s) => s,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    let reset = seed_path(&loaded.path, &s.seed)
        .and_then(|seed| SandboxProvider::reset(session.store.as_ref(), &seed).map(|i| (seed, i)));
    match reset {
        Ok((seed, inv)) => {
            out.status(&format!(
                "Sandbox in {} re-seeded from {}: {}, {}, {}, {}, {}.",
                session.store.location(),
                seed.path.display(),
                plural(inv.instances.len(), "instance"),
                plural(inv.volumes.len(), "volume"),
                plural(inv.snapshots.len(), "snapshot"),
                plural(inv.addresses.len(), "address"),
                plural(inv.auto_scaling_groups.len(), "group")
            ));
            Ok(ExitCode::Ok)
        }
        Err(SandboxError::Invalid(diags)) => {
            diags.iter().for_each(|d| out.report(d));
            Ok(ExitCode::Error)
        }
        Err(e) => {
            out.report(&e);
            Ok(ExitCode::Error)
        }
    }
}
