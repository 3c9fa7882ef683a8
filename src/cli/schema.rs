//! `pare schema`: the JSON Schema of plan files (or, with `--openapi`, the
//! OpenAPI description of `pare serve`'s API).

use super::{ExitCode, Output};

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Print the OpenAPI description of `pare serve`'s API instead.
    #[arg(long)]
    pub openapi: bool,
}

pub fn run(out: &Output, args: SchemaArgs) -> miette::Result<ExitCode> {
    if args.openapi {
        let mut text =
            serde_json::to_string_pretty(&crate::serve::openapi::openapi()).unwrap_or_default();
        text.push('\n');
        out.json(&text);
    } else {
        out.json(&crate::plan::schema::plan_schema_json());
    }
    Ok(ExitCode::Ok)
}
