//! `pare import SERVICE --input FILE…`: AWS's recommendations as a plan file.

use super::{ExitCode, Output};
use crate::import::{self, Choices, Effort, Filters, Service};
use crate::vocabulary::words::{clean, plural};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceArg {
    /// AWS Cost Optimization Hub (`list-recommendations`, `get-recommendation`).
    CostOptimizationHub,
    /// AWS Compute Optimizer (EC2, EBS, Auto Scaling group and idle recommendations).
    ComputeOptimizer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptionArg {
    /// The service's rank-1 option.
    Rank,
    /// The option with the lowest performance risk.
    LowestRisk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdleArg {
    /// `hibernate` with `mode: stop`.
    Stop,
    /// `terminate` (an image is kept).
    Terminate,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The service the recommendations come from.
    #[arg(value_enum)]
    pub service: ServiceArg,
    /// What the AWS CLI printed (`--output json`); repeat for several files
    /// (pages, `get-recommendation` outputs, several Compute Optimizer calls),
    /// or Compute Optimizer's CSV export of EC2 instance recommendations.
    /// Without it, pare calls the service itself (every page).
    #[arg(long, value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// Without --input: the AWS profile to call the service with (else the
    /// standard credential chain).
    #[arg(long, value_name = "NAME", conflicts_with = "input")]
    pub profile: Option<String>,
    /// Without --input: an endpoint to call instead of AWS's.
    #[arg(long, value_name = "URL", conflicts_with = "input")]
    pub endpoint_url: Option<String>,
    /// Write the plan here (an existing plan keeps its name, approvals and
    /// hand-written recommendations); else print it.
    #[arg(long, value_name = "PLAN", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,
    /// Write one plan per account and region here, `ACCOUNT-REGION.yaml`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Only this account's recommendations.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Only this region's recommendations.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Only recommendations saving at least this much a month.
    #[arg(long, value_name = "USD")]
    pub min_savings: Option<f64>,
    /// Only recommendations of at most this effort: VeryLow, Low, Medium, High, VeryHigh.
    #[arg(long, value_name = "EFFORT", value_parser = parse_effort)]
    pub max_effort: Option<Effort>,
    /// Only options of at most this performance risk (Compute Optimizer, 0 to 4).
    #[arg(long, value_name = "RISK")]
    pub max_performance_risk: Option<f64>,
    /// Only recommendations that do (true) or do not (false) need a restart (Cost Optimization Hub).
    #[arg(long, value_name = "BOOL")]
    pub restart_needed: Option<bool>,
    /// Only recommendations whose rollback is (true) or is not (false) possible (Cost Optimization Hub).
    #[arg(long, value_name = "BOOL")]
    pub rollback_possible: Option<bool>,
    /// Only resources tagged KEY=VALUE; repeat for several (all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tag: Vec<(String, String)>,
    /// Only these pare actions (rightsize, hibernate, terminate, storage, reserve, autoscale); repeatable.
    #[arg(long, value_name = "ACTION", value_parser = ["rightsize", "hibernate", "terminate", "storage", "reserve", "autoscale"])]
    pub action: Vec<String>,
    /// Which of Compute Optimizer's options to follow.
    #[arg(long, value_enum, default_value_t = OptionArg::Rank)]
    pub option: OptionArg,
    /// What an idle or stopped-recommended instance becomes.
    #[arg(long, value_enum, default_value_t = IdleArg::Stop)]
    pub idle_action: IdleArg,
}

fn parse_effort(s: &str) -> Result<Effort, String> {
    Effort::parse(s).ok_or_else(|| "use VeryLow, Low, Medium, High or VeryHigh".into())
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("write the tag as KEY=VALUE".into()),
    }
}

/// The most one input file may hold (10,000 recommendations are about 20 MB).
const INPUT_LIMIT: u64 = 256 << 20;

pub fn run(out: &Output, args: ImportArgs) -> miette::Result<ExitCode> {
    let service = match args.service {
        ServiceArg::CostOptimizationHub => Service::CostOptimizationHub,
        ServiceArg::ComputeOptimizer => Service::ComputeOptimizer,
    };
    if let Some(m) = args.min_savings
        && !(m.is_finite() && (0.0..=1.0e9).contains(&m))
    {
        out.status("error: --min-savings must be a number from 0 to 1,000,000,000");
        return Ok(ExitCode::Error);
    }
    let refuse = |why: &str| {
        out.status(&format!("error: {why}"));
        Ok(ExitCode::Error)
    };
    if let Some(r) = args.max_performance_risk
        && !(r.is_finite() && (0.0..=4.0).contains(&r))
    {
        return refuse("--max-performance-risk must be a number from 0 to 4");
    }
    let coh = service == Service::CostOptimizationHub;
    if !coh && (args.restart_needed.is_some() || args.rollback_possible.is_some()) {
        return refuse(
            "--restart-needed and --rollback-possible are Cost Optimization Hub's: Compute Optimizer does not say",
        );
    }
    if coh && (args.max_performance_risk.is_some() || args.option == OptionArg::LowestRisk) {
        return refuse(
            "--max-performance-risk and --option are Compute Optimizer's: Cost Optimization Hub gives one option, without a risk",
        );
    }
    if let Some(a) = &args.account
        && !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
    {
        return refuse(&format!(
            "--account `{}` is not an account id (12 digits)",
            clean(a)
        ));
    }
    if let Some(r) = &args.region
        && !crate::plan::ids::is_region(r)
    {
        return refuse(&format!(
            "--region `{}` is not a region name like us-east-1",
            clean(r)
        ));
    }
    if let Some(p) = &args.out
        && p.is_symlink()
    {
        return refuse(&format!(
            "{} is a link: give the plan file itself",
            clean(&p.display().to_string())
        ));
    }
    let mut inputs = Vec::new();
    if args.input.is_empty() {
        match call_service(service, &args) {
            Ok(pages) => inputs = pages,
            Err(why) => return refuse(&why),
        }
    }
    for path in &args.input {
        match crate::durable::read_given(path, INPUT_LIMIT, "a recommendations file") {
            Ok(text) => inputs.push((path.display().to_string(), text)),
            Err(e) => {
                out.status(&format!(
                    "error: cannot read {}: {e}\n  → give a file the AWS CLI wrote (`aws {} … --output json > FILE`)",
                    clean(&path.display().to_string()),
                    service.name()
                ));
                return Ok(ExitCode::Error);
            }
        }
    }
    let choices = Choices {
        lowest_risk: args.option == OptionArg::LowestRisk,
        terminate_idle: args.idle_action == IdleArg::Terminate,
    };
    let parsed = match import::parse(service, &inputs, &choices) {
        Ok(p) => p,
        Err(e) => {
            // The file is not quoted: it may not be what it was said to be.
            let text = inputs
                .iter()
                .find(|(f, _)| *f == e.file)
                .map_or("", |(_, t)| t.as_str());
            let file = crate::diagnostic::SourceFile::new(e.file.clone(), text);
            let offset = file.offset(e.line, e.column);
            let mut d = crate::diagnostic::Diagnostic::new(
                "import::unrecognised",
                &file,
                crate::diagnostic::Span::new(offset, 1),
                // The lines are not shown, so the position is said.
                format!("{}:{}:{}: {}", clean(&e.file), e.line, e.column, e.message),
                "here",
            )
            .with_help(e.help);
            d.hide_source = true;
            out.report(&d);
            return Ok(ExitCode::Error);
        }
    };
    let skipped = parsed.skipped.clone();
    let filters = Filters {
        account: args.account.clone(),
        region: args.region.clone(),
        min_savings: args.min_savings,
        max_effort: args.max_effort,
        max_performance_risk: args.max_performance_risk,
        restart_needed: args.restart_needed,
        rollback_possible: args.rollback_possible,
        tags: args.tag.clone(),
        actions: args.action.clone(),
    };
    let (groups, filtered) = import::select(parsed, &filters);
    if let Some(s) = import::skipped_summary(&skipped) {
        out.status(&clean(&s));
        for s in skipped.iter().take(20) {
            out.status(&format!(
                "  {} {}: {}",
                clean(&s.kind),
                clean(&s.resource),
                clean(&s.why)
            ));
        }
        if skipped.len() > 20 {
            out.status(&format!("  … and {} more", skipped.len() - 20));
        }
    }
    if !filtered.is_empty() {
        let parts: Vec<String> = filtered.iter().map(|(f, n)| format!("{f} {n}")).collect();
        out.status(&format!(
            "filtered out {}: {}",
            filtered.values().sum::<usize>(),
            parts.join(", ")
        ));
    }
    let groups = if groups.is_empty() {
        // Nothing to act on: still a plan, for the account and region asked.
        match (&args.account, &args.region) {
            (Some(a), Some(r)) => vec![import::Group {
                account: a.clone(),
                region: r.clone(),
                recs: Vec::new(),
            }],
            _ => {
                out.status(
                    "nothing to import: no recommendation pare can act on passed the filters",
                );
                return Ok(ExitCode::Ok);
            }
        }
    } else {
        groups
    };
    if groups.len() > 1 && args.out_dir.is_none() {
        let list: Vec<String> = groups
            .iter()
            .map(|g| format!("{} in {} ({})", g.account, g.region, g.recs.len()))
            .collect();
        out.status(&format!(
            "error: a plan is one account and one region; the input holds {}: {}\n  → choose one with --account and --region, or write one plan each with --out-dir DIR",
            groups.len(),
            clean(&list.join(", "))
        ));
        return Ok(ExitCode::Error);
    }
    // Every plan is rendered before any is written: an error in one (an
    // existing plan that cannot be merged into) leaves every file as it was.
    let mut rendered = Vec::with_capacity(groups.len());
    for g in &groups {
        let target = match (&args.out, &args.out_dir) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(d)) => Some(d.join(format!("{}-{}.yaml", file_part(&g.account), g.region))),
            (None, None) => None,
        };
        let existing = match &target {
            Some(p) if p.exists() => {
                match crate::durable::read_given(p, crate::durable::PLAN_LIMIT, "a plan file") {
                    Ok(t) => Some((p.display().to_string(), t)),
                    Err(e) => {
                        out.status(&format!(
                            "error: cannot read {}: {e}",
                            clean(&p.display().to_string())
                        ));
                        return Ok(ExitCode::Error);
                    }
                }
            }
            _ => None,
        };
        let written =
            match import::render(g, existing.as_ref().map(|(p, t)| (p.as_str(), t.as_str()))) {
                Ok(w) => w,
                Err(e) => {
                    out.status(&format!("error: {}", clean(&e)));
                    return Ok(ExitCode::Error);
                }
            };
        // An approval covers ids, not content: one whose recommendation the
        // import changes now covers a change nobody approved.
        let mut stale = Vec::new();
        if let Some((p, t)) = &existing
            && !written.changed.is_empty()
            && let Ok(old) = crate::plan::load_str(std::path::Path::new(p), p, t.clone())
        {
            for a in &old.plan.approvals {
                for id in written.changed.iter().filter(|id| a.covers(id)) {
                    stale.push(format!(
                        "warning: {id} changed, and the approval by {} covers it: that approval was given for the change before; have it given again for this one",
                        a.by
                    ));
                }
            }
        }
        rendered.push((g, target, existing.is_some(), written, stale));
    }
    for (g, target, existed, written, stale) in rendered {
        let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for r in &g.recs {
            *by.entry(r.act.action()).or_insert(0) += 1;
        }
        let by: Vec<String> = by.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let savings: f64 = g.recs.iter().map(|r| r.savings).sum();
        match &target {
            None => out.data(&written.text),
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::create_dir_all(dir);
                }
                if let Err(e) = crate::durable::write_atomic(p, written.text.as_bytes()) {
                    out.status(&format!(
                        "error: cannot write {}: {e}",
                        clean(&p.display().to_string())
                    ));
                    return Ok(ExitCode::Error);
                }
            }
        }
        let place = target.as_ref().map_or("stdout".to_string(), |p| {
            clean(&p.display().to_string()).into_owned()
        });
        out.status(&format!(
            "{place}: {} for account {} in {} ({}), {}/month",
            plural(g.recs.len(), "recommendation"),
            clean(&g.account),
            g.region,
            if by.is_empty() {
                "none".to_string()
            } else {
                by.join(", ")
            },
            crate::vocabulary::words::money(savings),
        ));
        if existed {
            out.status(&format!(
                "  added {}, changed {}, removed {}; kept {} written by hand{}",
                written.added.len(),
                written.changed.len(),
                written.removed.len(),
                written.kept,
                list_ids(&written)
            ));
        }
        for w in &stale {
            out.status(&clean(w));
        }
    }
    Ok(ExitCode::Ok)
}

fn list_ids(w: &import::Written) -> String {
    let mut s = String::new();
    for (word, ids) in [
        ("added", &w.added),
        ("changed", &w.changed),
        ("removed", &w.removed),
    ] {
        if !ids.is_empty() && ids.len() <= 20 {
            s.push_str(&format!("\n  {word}: {}", ids.join(", ")));
        }
    }
    s
}

/// An account id as part of a file name.
fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

/// The service's answers, called with the standard credential chain (or
/// `--profile`); Compute Optimizer in `--region` (else the configured one).
#[cfg(feature = "aws")]
fn call_service(service: Service, args: &ImportArgs) -> Result<Vec<(String, String)>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let config = crate::provider::aws::load_config(
        &rt,
        &crate::provider::aws::Connect {
            region: args.region.as_deref(),
            profile: args.profile.as_deref(),
            endpoint_url: args.endpoint_url.as_deref(),
            attempts: 4,
            attempt_timeout: std::time::Duration::from_secs(30),
            timeout: std::time::Duration::from_secs(300),
        },
    )
    .map_err(|region| format!("`{region}` is not an AWS region name"))?;
    if service == Service::ComputeOptimizer && config.region().is_none() {
        return Err("no AWS region for Compute Optimizer: give --region, or set AWS_REGION".into());
    }
    crate::import::fetch::fetch(&rt, service, &config)
}

#[cfg(not(feature = "aws"))]
fn call_service(_: Service, _: &ImportArgs) -> Result<Vec<(String, String)>, String> {
    Err(
        "this pare was built without the AWS SDK: give what the AWS CLI printed with --input FILE"
            .into(),
    )
}
