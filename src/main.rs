//! The `pare` binary: parse the command line, run, exit with the command's code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = match pare::cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; a usage error exits 1 like
            // every other error (2 means "there are changes" for
            // `plan --detailed-exitcode`).
            let code = if e.use_stderr() { 1 } else { 0 };
            return std::process::ExitCode::from(code);
        }
    };
    pare::cli::logging::init(&args.global);
    let code = pare::cli::run(args);
    std::process::ExitCode::from(code as u8)
}
