//! `pare iam-policy PLAN`: the least-privilege IAM policy a plan needs.

use super::{ExitCode, Output, common};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct IamPolicyArgs {
    /// The plan file (read alone: no provider is called).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
}

pub fn run(out: &Output, args: IamPolicyArgs) -> miette::Result<ExitCode> {
    match crate::plan::load(&args.plan) {
        Ok(loaded) => {
            out.json(&crate::provider::iam::policy(&loaded.plan));
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            common::report_load(out, &e);
            Ok(ExitCode::Error)
        }
    }
}
