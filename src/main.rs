//! The `pare` binary: parse the command line, run, exit with the command's code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = pare::cli::Args::parse();
    pare::cli::logging::init(&args.global);
    let code = pare::cli::run(args);
    std::process::ExitCode::from(code as u8)
}
