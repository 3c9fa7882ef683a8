//! `pare unlock LOCK_ID` and `pare state migrate --to LOCATION`: the lock a
//! dead runner left, and moving a whole state (to S3, or back).

use super::{ExitCode, GlobalArgs, Output, common};
use crate::session::Session;
use crate::vocabulary::words::{clean, plural};

#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The lock's id, as the refusal printed it (`l-…`).
    #[arg(value_name = "LOCK_ID")]
    pub lock_id: String,
    /// Remove the lock even though its holder still renews it (only when
    /// you know that process is gone).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Copy every run, journal and the sandbox account to another (empty)
    /// location; the source is left as it was.
    Migrate {
        /// Where to: s3://bucket/prefix/ or a directory.
        #[arg(long, value_name = "LOCATION")]
        to: String,
    },
}

pub fn unlock(out: &Output, global: &GlobalArgs, args: UnlockArgs) -> miette::Result<ExitCode> {
    let store = match super::history::store(out, global) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let removed = match store.unlock(&args.lock_id, args.force) {
        Ok(r) => r,
        Err(e) => {
            out.report(&e);
            return Ok(ExitCode::Error);
        }
    };
    let Some(h) = removed else {
        out.status(&format!(
            "Nothing to unlock: the state in {} is not locked.",
            store.location()
        ));
        return Ok(ExitCode::Ok);
    };
    out.status(&format!(
        "Unlocked the state in {}: it was held by {}.",
        store.location(),
        h.describe()
    ));
    if let Some(run) = &h.run {
        let run = clean(run);
        let sf = format!(" --state {}", store.location());
        out.status(&format!(
            "Unlocking does not resolve run {run}: if it changed anything, the next apply refuses until you undo it (`pare rollback --run {run}{sf}`) or keep it (`pare rollback --run {run} --accept{sf}`)."
        ));
    }
    Ok(ExitCode::Ok)
}

pub fn run(out: &Output, global: &GlobalArgs, cmd: StateCommand) -> miette::Result<ExitCode> {
    let StateCommand::Migrate { to } = cmd;
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let target_s3 = match crate::config::S3State::parse_url(&to) {
        None => None,
        Some(Ok(mut s3)) => {
            // The same connection settings as the configured S3 state, if any.
            if let Some(from) = &settings.config.s3 {
                s3.region = from.region.clone();
                s3.profile = from.profile.clone();
                s3.endpoint_url = from.endpoint_url.clone();
                s3.lease_s = from.lease_s;
            }
            Some(s3)
        }
        Some(Err(e)) => {
            out.status(&format!("error: --to {}: {e}", clean(&to)));
            return Ok(ExitCode::Error);
        }
    };
    let mut target_settings = settings.clone();
    if target_s3.is_none() {
        target_settings.config.state_dir = std::path::PathBuf::from(&to);
    }
    let target = match crate::session::open_location(&target_settings, target_s3.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            out.report(&e);
            return Ok(ExitCode::Error);
        }
    };
    let session = match Session::begin(settings, "state migrate") {
        Ok(s) => s,
        Err(e) => return Ok(common::report_session(out, &e)),
    };
    match crate::session::migrate::migrate(&session, target) {
        Ok(m) => {
            out.status(&format!(
                "Copied the state in {} to {}: {} and {}. The source is left as it was; use the new state with `--state {}` (or PARE_STATE, or [state] in pare.toml).",
                m.from,
                m.to,
                plural(m.runs, "run"),
                plural(m.documents, "sandbox document"),
                m.to
            ));
            Ok(ExitCode::Ok)
        }
        Err(e) => Ok(common::report_session(out, &e)),
    }
}
