//! `pare validate PLAN…`: static checks, no provider calls.

use super::{ExitCode, Output};
use crate::plan::{LoadError, Plan};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Plan files to check.
    #[arg(required = true, value_name = "PLAN")]
    pub plans: Vec<PathBuf>,
    /// `text` for people, `json` for editors and CI.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Serialize)]
struct JsonReport {
    format_version: u32,
    valid: bool,
    files: Vec<JsonFile>,
}

#[derive(Serialize)]
struct JsonFile {
    path: String,
    valid: bool,
    recommendations: Option<usize>,
    diagnostics: Vec<crate::diagnostic::DiagnosticJson>,
}

pub fn run(
    out: &Output,
    global: &super::GlobalArgs,
    args: ValidateArgs,
) -> miette::Result<ExitCode> {
    // The settings file is checked too: a plan is only as valid as the policy it runs under.
    if let Err(err) = crate::settings::Settings::resolve(
        &global.overrides(),
        &std::env::current_dir().unwrap_or_else(|_| ".".into()),
        &crate::settings::Settings::env,
    ) {
        super::report_config_error(out, &err);
        return Ok(ExitCode::Error);
    }
    let mut all_valid = true;
    let mut files = Vec::new();
    for path in &args.plans {
        let shown = crate::vocabulary::words::clean(&path.display().to_string()).into_owned();
        match crate::validate::validate(path) {
            Ok((loaded, _)) => {
                if args.format == Format::Text {
                    out.data(&format!("✓ {shown}: valid, {}", describe(&loaded.plan)));
                }
                files.push(JsonFile {
                    path: shown,
                    valid: true,
                    recommendations: Some(loaded.plan.recommendations.len()),
                    diagnostics: Vec::new(),
                });
            }
            Err(LoadError::Invalid(diags)) => {
                all_valid = false;
                if args.format == Format::Text {
                    for d in &diags {
                        out.report(d);
                    }
                    out.data(&format!(
                        "✗ {shown}: {}",
                        crate::diagnostic::count_errors(diags.len())
                    ));
                }
                files.push(JsonFile {
                    path: shown,
                    valid: false,
                    recommendations: None,
                    diagnostics: diags.iter().map(|d| d.to_json()).collect(),
                });
            }
            Err(err @ LoadError::Io { .. }) => {
                all_valid = false;
                if args.format == Format::Text {
                    out.report(&err);
                }
                files.push(JsonFile {
                    path: shown.clone(),
                    valid: false,
                    recommendations: None,
                    diagnostics: vec![crate::diagnostic::DiagnosticJson {
                        file: shown,
                        line: 0,
                        column: 0,
                        code: "plan::unreadable",
                        severity: "error",
                        message: err.to_string(),
                        label: String::new(),
                        help: Some("check the path".into()),
                    }],
                });
            }
        }
    }
    if args.format == Format::Json {
        let report = JsonReport {
            format_version: 1,
            valid: all_valid,
            files,
        };
        out.json(&serde_json::to_string_pretty(&report).expect("report serialises"));
    }
    Ok(if all_valid {
        ExitCode::Ok
    } else {
        ExitCode::Error
    })
}

/// "12 recommendations (autoscale 1, rightsize 4, …), sandbox provider".
fn describe(plan: &Plan) -> String {
    let mut by_action: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &plan.recommendations {
        *by_action.entry(r.action.name()).or_default() += 1;
    }
    let n = plan.recommendations.len();
    let counts: Vec<String> = by_action.iter().map(|(a, c)| format!("{a} {c}")).collect();
    let noun = if n == 1 {
        "recommendation"
    } else {
        "recommendations"
    };
    if counts.is_empty() {
        format!("{n} {noun}, {} provider", plan.provider.name())
    } else {
        format!(
            "{n} {noun} ({}), {} provider",
            counts.join(", "),
            plan.provider.name()
        )
    }
}
