//! `pare sandbox reset PLAN`: copy the plan's seed account into the state directory again.

use super::{ExitCode, GlobalArgs, Output, Settings, common, report_config_error};
use crate::plan::Provider;
use crate::provider::sandbox::{SandboxError, SandboxProvider};
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Discard the sandbox account and copy the plan's seed again.
    Reset {
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
    },
}

pub fn run(out: &Output, global: &GlobalArgs, cmd: SandboxCommand) -> miette::Result<ExitCode> {
    let SandboxCommand::Reset { plan } = cmd;
    let settings = match Settings::resolve(global) {
        Ok(s) => s,
        Err(e) => {
            report_config_error(out, &e);
            return Ok(ExitCode::Error);
        }
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
    let seed = loaded
        .path
        .parent()
        .unwrap_or(std::path::Path::new(""))
        .join(&s.seed);
    match SandboxProvider::reset(&settings.config.state_dir, &seed) {
        Ok(inv) => {
            out.status(&format!(
                "Sandbox in {} re-seeded from {}: {} instances, {} volumes, {} snapshots, {} addresses, {} groups.",
                settings.config.state_dir.display(),
                seed.display(),
                inv.instances.len(),
                inv.volumes.len(),
                inv.snapshots.len(),
                inv.addresses.len(),
                inv.auto_scaling_groups.len()
            ));
            Ok(ExitCode::Ok)
        }
        Err(SandboxError::Invalid(diags)) => {
            diags.iter().for_each(|d| out.report(d));
            Ok(ExitCode::Error)
        }
        Err(e) => Err(e.into()),
    }
}
