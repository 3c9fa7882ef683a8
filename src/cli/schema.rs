//! `pare schema`: the JSON Schema of plan files.

use super::{ExitCode, Output};

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

pub fn run(out: &Output, _args: SchemaArgs) -> miette::Result<ExitCode> {
    out.json(&crate::plan::schema::plan_schema_json());
    Ok(ExitCode::Ok)
}
