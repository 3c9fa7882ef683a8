//! `pare inventory PLAN`: the live attributes of every resource the plan names.

use super::{ExitCode, GlobalArgs, Output, common};
use crate::planner::query;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// The plan file whose resources to read.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(serde::Serialize)]
struct Entry {
    kind: &'static str,
    id: String,
    exists: bool,
    attributes: Option<crate::vocabulary::Attributes>,
}

pub fn run(out: &Output, global: &GlobalArgs, args: InventoryArgs) -> miette::Result<ExitCode> {
    let settings = match super::settings(out, &global.overrides()) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let prepared = match common::prepare(out, settings, &args.plan) {
        Ok(p) => p,
        Err(code) => return Ok(code),
    };
    let q = query(&prepared.loaded);
    let inv = match common::runtime().block_on(prepared.provider.describe(&q)) {
        Ok(inv) => inv,
        Err(e) => {
            out.status(&format!("error: reading the account failed: {e}"));
            return Ok(ExitCode::Error);
        }
    };
    let entries: Vec<Entry> = q
        .resources
        .iter()
        .map(|r| {
            let attributes = inv.attributes(r);
            Entry {
                kind: r.kind(),
                id: r.id().to_string(),
                exists: attributes.is_some(),
                attributes,
            }
        })
        .collect();
    match args.format {
        Format::Json => {
            let doc = serde_json::json!({ "format_version": 1, "provider": prepared.provider.name(), "region": inv.region, "resources": entries });
            out.json(&serde_json::to_string_pretty(&doc).expect("inventory serialises"));
        }
        Format::Text => {
            let mut s = String::new();
            for e in &entries {
                s.push_str(&format!(
                    "{} {}\n",
                    e.kind,
                    crate::vocabulary::words::clean(&e.id)
                ));
                match &e.attributes {
                    None => s.push_str("    (does not exist)\n"),
                    Some(a) => {
                        for line in crate::preview::attribute_lines(Some(a)).lines() {
                            s.push_str(&format!("    {line}\n"));
                        }
                    }
                }
            }
            out.data(&s);
        }
    }
    Ok(ExitCode::Ok)
}
