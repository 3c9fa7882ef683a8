//! `pare iam-policy PLAN`: the least-privilege IAM policy a plan needs.

use super::{ExitCode, GlobalArgs, Output, common};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct IamPolicyArgs {
    /// The plan file (read alone: no provider is called). With the state in
    /// S3 (pare.toml, --state, PARE_STATE), the policy includes what the
    /// state needs on its bucket and prefix.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
}

pub fn run(out: &Output, global: &GlobalArgs, args: IamPolicyArgs) -> miette::Result<ExitCode> {
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match crate::plan::load(&args.plan) {
        Ok(loaded) => {
            out.json(&crate::provider::iam::policy(
                &loaded.plan,
                settings.config.s3.as_ref(),
            ));
            Ok(ExitCode::Ok)
        }
        Err(e) => {
            common::report_load(out, &e);
            Ok(ExitCode::Error)
        }
    }
}
