//! `pare apply PLAN|SAVED`: make the changes, journaled, verified, undoable.

use super::{ExitCode, GlobalArgs, LogFormat, Output, Settings, common};
use crate::engine::{self, Cancel, Events};
use crate::preview::PlanJson;
use crate::provider::{Provider, Query};
use crate::saved::SavedPlan;
use crate::state::{RunKind, RunRecord, RunStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// A plan file, or a plan saved by `pare plan --out`.
    #[arg(value_name = "PLAN|SAVED")]
    pub plan: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// How many changes may run at once (default: pare.toml, else 10).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
}

/// What is about to be applied, however it was obtained.
struct Ready {
    preview: PlanJson,
    provider: Box<dyn Provider>,
    plan_path: PathBuf,
    lineage: Option<String>,
    approvals: Vec<crate::plan::Approval>,
    provider_spec: crate::plan::Provider,
}

pub fn run(out: &Output, global: &GlobalArgs, args: ApplyArgs) -> miette::Result<ExitCode> {
    let (settings, store, _lock) = match common::locked_store(out, global) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(r) = store.unresolved()? {
        let how = if r.status == RunStatus::Running {
            "was interrupted"
        } else {
            "did not finish rolling back"
        };
        // An unfinished rollback is finished by rolling back its apply run again.
        let undo = match (&r.kind, &r.resolves) {
            (RunKind::Rollback, Some(target)) => format!(
                "finish it with `pare rollback --run {target}` (it undoes only what is left)"
            ),
            _ => format!("undo it with `pare rollback --run {}`", r.id),
        };
        return Ok(common::refuse(
            out,
            &format!(
                "run {} ({} of {}, started {}) {how}; its changes are only partly made",
                r.id,
                kind(r.kind),
                r.plan_path,
                r.started_at
            ),
            &format!(
                "{undo}, or keep things as they are with `pare rollback --run {} --accept`",
                r.id
            ),
        ));
    }
    let ready = match load(out, global, &settings, &args.plan) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let summary = &ready.preview.summary;
    let changes = summary["changes"].as_u64().unwrap_or(0) as usize;
    let blocked: Vec<&str> = ready
        .preview
        .recommendations
        .iter()
        .filter(|r| r.status == "blocked")
        .map(|r| r.id.as_str())
        .collect();
    if !blocked.is_empty() {
        return Ok(common::refuse(
            out,
            &format!("{} blocked: {}", blocked.len(), blocked.join(", ")),
            "the preview says why for each; fix those (or remove them from the plan) and apply again",
        ));
    }
    if changes == 0 {
        out.status("Nothing to change: every recommendation is already satisfied.");
        return Ok(ExitCode::Ok);
    }
    if changes > settings.config.max_changes {
        return Ok(common::refuse(
            out,
            &format!(
                "{changes} changes exceed max_changes = {} (pare.toml)",
                settings.config.max_changes
            ),
            "split the plan, or raise max_changes on purpose",
        ));
    }
    if settings.config.require_committed_plan
        && let Err(why) = crate::state::runs::committed(&ready.plan_path)
    {
        return Ok(common::refuse(
            out,
            &format!("{why}, and pare.toml sets require_committed_plan"),
            "commit the plan (the reviewed plan is the approval record), then apply",
        ));
    }
    if !args.auto_approve {
        let question = format!(
            "Apply {changes} changes to the {} account?",
            ready.provider.name()
        );
        if let Err(code) = common::confirm(out, &question, "the preview", "apply") {
            return Ok(code);
        }
    }

    let parallelism = args
        .parallelism
        .unwrap_or(settings.config.parallelism)
        .max(1);
    let id = store.new_run_id();
    let mut record = RunRecord {
        id: id.clone(),
        kind: RunKind::Apply,
        status: RunStatus::Running,
        started_at: crate::clock::rfc3339(crate::clock::now()),
        finished_at: None,
        who: crate::state::runs::who(),
        provider: ready.provider.name().to_string(),
        provider_spec: Some(ready.provider_spec.clone()),
        plan_path: ready.plan_path.display().to_string(),
        plan_sha256: ready.preview.plan.sha256.clone(),
        plan_name: ready.preview.plan.name.clone(),
        git_commit: crate::state::runs::git_commit(&ready.plan_path),
        lineage: ready.lineage.clone(),
        approvals: ready.approvals.clone(),
        resolves: None,
        completed: vec![],
        failed: vec![],
        skipped: vec![],
        savings_monthly_usd: 0.0,
        renamed: Default::default(),
        left: vec![],
    };
    let journal = Arc::new(store.create(&record)?);
    let provider: Arc<dyn Provider> = Arc::from(ready.provider);
    let items = Arc::new(engine::items::items(&ready.preview, provider.as_ref()));
    let events = Events::new(&id, settings.log_format == LogFormat::Json, out.quiet);
    events.steps(items.iter().map(|i| i.steps.len()).sum());
    let engine_settings = engine::Settings {
        parallelism,
        attempts: 4,
        backoff: std::time::Duration::from_millis(50),
        run: id.clone(),
        batch: settings.config.batch_size,
    };
    events.run_start("apply", items.len());
    let rt = runtime();
    let cancel = Cancel::default();
    let report = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("Ctrl-C: no new changes start; waiting for the ones under way…");
                c.set();
            }
        });
        engine::apply(
            Arc::clone(&items),
            Arc::clone(&provider),
            Arc::clone(&journal),
            &events,
            &engine_settings,
            cancel.clone(),
        )
        .await
    });
    record.completed = report
        .completed
        .iter()
        .map(|&i| items[i].rec.clone())
        .collect();
    record.failed = report
        .failed
        .iter()
        .filter(|(i, _)| *i < items.len())
        .map(|(i, e)| format!("{}: {e}", items[*i].rec))
        .collect();
    record.skipped = report
        .skipped
        .iter()
        .map(|(i, why)| format!("{}: {why}", items[*i].rec))
        .collect();
    record.savings_monthly_usd = (report
        .completed
        .iter()
        .map(|&i| items[i].savings)
        .sum::<f64>()
        * 100.0)
        .round()
        / 100.0;

    let mut code = ExitCode::Ok;
    record.status = RunStatus::Applied;
    if !report.failed.is_empty() {
        if settings.config.rollback_on_failure {
            let records =
                crate::state::journal::read(journal.path()).map_err(|e| miette::miette!(e))?;
            let undos =
                match rt.block_on(engine::undos_from_journal(&records, &id, provider.as_ref())) {
                    Ok(u) => u,
                    Err(e) => {
                        return Err(miette::miette!(
                            "cannot read back the run to roll it back: {e}"
                        ));
                    }
                };
            events.rollback_start(
                undos
                    .iter()
                    .filter(|u| matches!(u.inverse, crate::provider::Inverse::Op { .. }))
                    .count(),
            );
            let rb = rt.block_on(engine::rollback(
                &undos,
                Arc::clone(&provider),
                Arc::clone(&journal),
                &events,
                &engine_settings,
                Default::default(),
            ));
            record.renamed = rb.renamed.clone();
            if let Some(f) = rb.failed {
                record.status = RunStatus::RollbackIncomplete;
                record.left = std::iter::once(format!("failed: {f}"))
                    .chain(rb.left)
                    .collect();
                code = ExitCode::RollbackIncomplete;
            } else {
                record.status = RunStatus::RolledBack;
                record.left = rb
                    .irreversible
                    .iter()
                    .map(|s| format!("not undone (irreversible): {s}"))
                    .collect();
                code = ExitCode::RolledBack;
            }
        } else {
            record.status = RunStatus::Failed;
            record.left = vec![format!(
                "rollback_on_failure is off: the completed changes stay; `pare rollback --run {id}` undoes them"
            )];
            code = ExitCode::RollbackIncomplete;
        }
    } else if report.cancelled {
        record.status = RunStatus::Cancelled;
        record.left = vec![format!(
            "cancelled: `pare rollback --run {id}` undoes what was done"
        )];
        code = ExitCode::Error;
    }
    common::finish_run(out, provider.as_ref(), &store, &mut record, &events)?;
    print_result(out, &record);
    Ok(code)
}

fn kind(k: RunKind) -> &'static str {
    match k {
        RunKind::Apply => "apply",
        RunKind::Rollback => "rollback",
        RunKind::Accept => "accept",
    }
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn print_result(out: &Output, r: &RunRecord) {
    let mut s = format!("Run {}: {}", r.id, r.status.as_str().replace('_', " "));
    s.push_str(&format!("; {} completed", r.completed.len()));
    if !r.failed.is_empty() {
        s.push_str(&format!(", {} failed", r.failed.len()));
    }
    if !r.skipped.is_empty() {
        s.push_str(&format!(", {} skipped", r.skipped.len()));
    }
    s.push('.');
    for f in &r.failed {
        s.push_str(&format!("\n  failed: {f}"));
    }
    for (old, new) in &r.renamed {
        s.push_str(&format!("\n  recreated: {old} is now {new}"));
    }
    for l in &r.left {
        s.push_str(&format!("\n  {l}"));
    }
    if r.status == RunStatus::Applied {
        s.push_str(&format!(
            "\nSaves about {}/month. Undo with `pare rollback --last` (or `--run {}`).",
            crate::preview::money(r.savings_monthly_usd),
            r.id
        ));
    }
    out.status(&s);
}

/// Plans a plan file, or checks a saved plan against the live account.
fn load(
    out: &Output,
    global: &GlobalArgs,
    settings: &Settings,
    path: &Path,
) -> Result<Ready, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        common::refuse(
            out,
            &format!("cannot read {}: {e}", path.display()),
            "check the path",
        )
    })?;
    if text.trim_start().starts_with('{') && text.contains(crate::saved::KIND) {
        let saved: SavedPlan = serde_json::from_str(&text).map_err(|e| {
            common::refuse(
                out,
                &format!("{} is not a readable saved plan: {e}", path.display()),
                "save it again with `pare plan PLAN --out FILE`",
            )
        })?;
        return load_saved(out, settings, saved);
    }
    let prepared = common::prepare(out, global, path)?;
    let planned = common::plan(out, &prepared)?;
    out.data(&crate::preview::text(&planned, out.color_stdout));
    Ok(Ready {
        preview: crate::preview::to_json(&planned),
        provider: prepared.provider,
        plan_path: prepared.loaded.path.clone(),
        lineage: None,
        approvals: prepared.loaded.plan.approvals.clone(),
        provider_spec: planned.provider_spec.clone(),
    })
}

fn load_saved(out: &Output, settings: &Settings, saved: SavedPlan) -> Result<Ready, ExitCode> {
    let plan_path = PathBuf::from(&saved.preview.plan.path);
    let (provider, warning) =
        crate::provider::open(&saved.provider_spec, &plan_path, &settings.config.state_dir)
            .map_err(|e| {
                common::report_open(out, &e);
                ExitCode::Error
            })?;
    if let Some(w) = warning {
        out.status(&format!("warning: {w}"));
    }
    // Stale? Read every resource it names and compare with what was planned.
    let resources: Vec<_> = saved
        .fingerprints
        .keys()
        .filter_map(|k| {
            let r = crate::provider::ResourceId::from_key(k)?;
            Some((k.clone(), r))
        })
        .collect();
    let q = Query {
        resources: resources.iter().map(|(_, r)| r.clone()).collect(),
        ..Query::default()
    };
    let inv = common::runtime()
        .block_on(provider.describe(&q))
        .map_err(|e| {
            common::refuse(
                out,
                &format!("reading the account failed: {e}"),
                "check the provider, then apply again",
            )
        })?;
    let mut stale = Vec::new();
    for (key, r) in &resources {
        let now = inv.attributes(r);
        if crate::planner::fingerprint(now.as_ref()) != saved.fingerprints[key] {
            let then = saved.observed.get(key).cloned().flatten();
            stale.push(format!(
                "{key}: {}",
                describe_drift(then.as_ref(), now.as_ref())
            ));
        }
    }
    if !stale.is_empty() {
        return Err(common::refuse(
            out,
            &format!(
                "the saved plan is stale; since it was saved ({}):\n    {}",
                saved.saved_at,
                stale.join("\n    ")
            ),
            "plan again (`pare plan PLAN --out FILE`), review the new preview, and apply that",
        ));
    }
    out.status(&format!(
        "Applying saved plan {} (lineage {}, saved {}); the account is as it was planned.",
        saved.preview.plan.path, saved.lineage, saved.saved_at
    ));
    Ok(Ready {
        approvals: Vec::new(),
        provider,
        plan_path,
        lineage: Some(saved.lineage),
        provider_spec: saved.provider_spec,
        preview: saved.preview,
    })
}

/// "type: m5.xlarge → m5.large; state: running → stopped".
pub(super) fn describe_drift(
    then: Option<&crate::planner::Attributes>,
    now: Option<&crate::planner::Attributes>,
) -> String {
    match (then, now) {
        (None, None) => "unchanged".into(),
        (Some(_), None) => "it no longer exists".into(),
        (None, Some(_)) => "it exists now".into(),
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    let show = |v: Option<&serde_json::Value>| {
                        v.map_or("(none)".to_string(), |v| v.to_string())
                    };
                    format!("{k}: {} → {}", show(a.get(k)), show(b.get(k)))
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}
