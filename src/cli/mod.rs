//! The command line: clap arguments, resolved into settings, one file per command.
//!
//! Nothing below this module sees clap types. Each command returns an
//! [`ExitCode`] or an error that `main` renders.

mod apply;
mod common;
mod history;
mod iam_policy;
mod import;
mod inventory;
pub mod logging;
mod output;
mod plan;
mod rollback;
mod sandbox;
mod schema;
mod serve;
mod show;
mod state;
mod validate;

pub use output::Output;

use crate::config::ConfigError;
use crate::settings::{Overrides, Settings};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

/// Exit codes, as the README's *Commands and exit codes* fixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// An error, or a refusal before any change.
    Error = 1,
    /// `plan --detailed-exitcode`: there are changes.
    Changes = 2,
    /// A step failed and the run was rolled back.
    RolledBack = 3,
    /// A step failed and the rollback did not finish.
    RollbackIncomplete = 4,
}

#[derive(Debug, Parser)]
#[command(
    name = "pare",
    version,
    about = "Cloud cost changes as reviewed code: plan, apply, roll back.",
    propagate_version = true
)]
pub struct Args {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Read settings from this file instead of ./pare.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep state (journal, history, lock, sandbox account) here instead of .pare/.
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "state")]
    pub state_dir: Option<PathBuf>,
    /// Where the state is: s3://bucket/prefix/ (team state in S3) or a
    /// directory [env: PARE_STATE; pare.toml's [state] wins over it].
    #[arg(long, global = true, value_name = "LOCATION")]
    pub state: Option<String>,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour: auto (a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check plan files without calling any provider.
    Validate(validate::ValidateArgs),
    /// Read the live state and preview what applying the plan would do.
    Plan(plan::PlanArgs),
    /// Make the changes of a plan (or a saved plan), journaled and undoable.
    Apply(apply::ApplyArgs),
    /// Undo a run from its journal, newest step first.
    Rollback(rollback::RollbackArgs),
    /// The runs, newest first.
    History(history::HistoryArgs),
    /// One run: every step, its undo, status, timings, errors.
    Show(show::ShowArgs),
    /// Remove the lock a dead run left on the state (it names the lock's id).
    Unlock(state::UnlockArgs),
    /// Show the live attributes of every resource a plan names.
    Inventory(inventory::InventoryArgs),
    /// Print the least-privilege IAM policy a plan needs (its changes and their undo).
    IamPolicy(iam_policy::IamPolicyArgs),
    /// Manage the embedded sandbox account.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Move the state (runs, journals, sandbox account) to S3 or back.
    #[command(subcommand)]
    State(state::StateCommand),
    /// Print the JSON Schema of plan files.
    Schema(schema::SchemaArgs),
    /// Write AWS's own recommendations (Cost Optimization Hub, Compute Optimizer) as a plan file.
    Import(import::ImportArgs),
    /// Serve the execution API (HTTP, JSON) over the same engine, state and lock.
    Serve(serve::ServeArgs),
}

impl GlobalArgs {
    /// What the global flags say, for [`crate::settings::Settings::resolve`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            state_dir: self.state_dir.clone(),
            state: self.state.clone(),
            parallelism: None,
            json_events: self.log_format == LogFormat::Json,
            quiet: self.quiet,
        }
    }
}

/// Resolves the settings (flags > pare.toml > environment > defaults).
pub(crate) fn settings(out: &Output, overrides: &Overrides) -> Result<Settings, ExitCode> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = Settings::resolve(overrides, &cwd, &Settings::env).map_err(|e| {
        report_config_error(out, &e);
        ExitCode::Error
    })?;
    // Commands pare suggests name the state when pare.toml does not.
    let named_elsewhere = !settings.config.state_dir_set
        && (settings.config.s3.is_some() || settings.config.state_dir != Path::new(".pare"));
    crate::vocabulary::words::set_state_flag(named_elsewhere.then(|| settings.state_location()));
    Ok(settings)
}

/// Prints a config problem, every diagnostic of it.
pub(crate) fn report_config_error(out: &Output, err: &ConfigError) {
    match err {
        ConfigError::Invalid(diags) => diags.iter().for_each(|d| out.report(d)),
        other => out.report(other),
    }
}

/// Runs a parsed command line.
pub fn run(args: Args) -> ExitCode {
    let out = Output::new(args.global.color, args.global.quiet);
    let result = match args.command {
        Command::Validate(a) => validate::run(&out, &args.global, a),
        Command::Plan(a) => plan::run(&out, &args.global, a),
        Command::Inventory(a) => inventory::run(&out, &args.global, a),
        Command::Apply(a) => apply::run(&out, &args.global, a),
        Command::Rollback(a) => rollback::run(&out, &args.global, a),
        Command::History(a) => history::history(&out, &args.global, a),
        Command::Show(a) => show::show(&out, &args.global, a),
        Command::IamPolicy(a) => iam_policy::run(&out, &args.global, a),
        Command::Sandbox(c) => sandbox::run(&out, &args.global, c),
        Command::Unlock(a) => state::unlock(&out, &args.global, a),
        Command::State(c) => state::run(&out, &args.global, c),
        Command::Schema(a) => schema::run(&out, a),
        Command::Import(a) => import::run(&out, a),
        Command::Serve(a) => serve::run(&out, &args.global, a),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            out.report(report.as_ref());
            ExitCode::Error
        }
    }
}
