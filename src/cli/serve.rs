//! `pare serve`: the execution API (see `crate::serve`), and `pare serve
//! token add` for its bearer tokens.

use super::{ExitCode, GlobalArgs, Output};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServeArgs {
    #[command(subcommand)]
    pub command: Option<ServeCommand>,
    /// The address to listen on; any but a loopback address needs --tokens
    /// [default: pare.toml's [serve] listen, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The folder whose plan files the API may run (none outside it)
    /// [default: pare.toml's [serve] plans_root, else the working directory].
    #[arg(long, value_name = "DIR")]
    pub plans_root: Option<PathBuf>,
    /// The bearer tokens file (`pare serve token add` writes it); without
    /// it, every request may do everything, so only loopback is allowed
    /// [default: pare.toml's [serve] tokens].
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// Manage the API's bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token: printed once; only its sha256 is stored.
    Add {
        /// A name for it (who or what uses it).
        name: String,
        /// What it may do: read, plan, apply, rollback (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The tokens file.
        #[arg(long, value_name = "FILE", default_value = "pare-tokens.json")]
        tokens: PathBuf,
    },
}

pub fn run(out: &Output, global: &GlobalArgs, args: ServeArgs) -> miette::Result<ExitCode> {
    if let Some(ServeCommand::Token(TokenCommand::Add {
        name,
        scopes,
        tokens,
    })) = args.command
    {
        return Ok(match crate::serve::tokens::add(&tokens, &name, &scopes) {
            Ok(token) => {
                out.data(&token);
                out.status(&format!(
                    "token {name} ({}) added to {}: this is the only time it is shown; keep it in your secret store",
                    scopes.join(", "),
                    crate::vocabulary::words::clean(&tokens.display().to_string())
                ));
                ExitCode::Ok
            }
            Err(e) => {
                out.status(&format!("error: {e}"));
                ExitCode::Error
            }
        });
    }
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let serve = settings.config.serve.clone();
    let listen = args
        .listen
        .or(serve.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let plans_root = args
        .plans_root
        .or(serve.plans_root)
        .unwrap_or_else(|| PathBuf::from("."));
    let tokens = match args.tokens.as_ref().or(serve.tokens.as_ref()) {
        None => None,
        Some(p) => match crate::serve::tokens::load(p) {
            Ok(t) => Some((p.clone(), t)),
            Err(e) => {
                out.status(&format!("error: {e}"));
                return Ok(ExitCode::Error);
            }
        },
    };
    let count = tokens.as_ref().map(|(_, t)| t.tokens.len());
    let root = crate::vocabulary::words::clean(&plans_root.display().to_string()).into_owned();
    let config = crate::serve::ServeConfig {
        listen,
        plans_root,
        tokens,
    };
    let result = crate::serve::serve(settings, config, |addr| {
        out.status(&format!(
            "pare serve: listening on http://{addr} (plans from {root}; {})",
            match count {
                None => "no tokens: loopback only, every request may do everything".to_string(),
                Some(n) => crate::vocabulary::words::plural(n, "token"),
            }
        ));
    });
    match result {
        Ok(()) => Ok(ExitCode::Ok),
        Err(e) => {
            out.status(&format!("error: {e}"));
            Ok(ExitCode::Error)
        }
    }
}
