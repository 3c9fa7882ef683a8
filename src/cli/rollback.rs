//! `pare rollback [--last|--run ID]`: undo a run from its journal, newest
//! step first, as a new run. `--accept` instead records that an interrupted
//! run's changes are kept.

use super::apply::{describe_drift, runtime};
use super::{ExitCode, GlobalArgs, LogFormat, Output, common};
use crate::engine::{self, Events, verify};
use crate::provider::{Inverse, Provider, Query};
use crate::state::{Record, RunKind, RunRecord, RunStatus};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Undo the newest apply run that is not undone yet (the default).
    #[arg(long, conflicts_with = "run")]
    pub last: bool,
    /// Undo this run.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Show what would be undone, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep an interrupted run's changes instead: record it as resolved.
    #[arg(long, conflicts_with = "dry_run")]
    pub accept: bool,
}

pub fn run(out: &Output, global: &GlobalArgs, args: RollbackArgs) -> miette::Result<ExitCode> {
    let (settings, store, _lock) = match common::locked_store(out, global) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let runs = store.runs()?;
    let undone: BTreeSet<&str> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .filter_map(|r| r.resolves.as_deref())
        .collect();
    let target = match &args.run {
        Some(id) => store.run(id)?,
        None => match runs.iter().find(|r| {
            r.kind == RunKind::Apply
                && r.status != RunStatus::RolledBack
                && !undone.contains(r.id.as_str())
        }) {
            Some(r) => r.clone(),
            None => {
                return Ok(common::refuse(
                    out,
                    "no apply run is left to roll back",
                    "`pare history` lists the runs",
                ));
            }
        },
    };
    let accepting_a_rollback = args.accept && target.kind == RunKind::Rollback;
    if target.kind != RunKind::Apply && !accepting_a_rollback {
        return Ok(common::refuse(
            out,
            &format!(
                "run {} is a {:?} run; only apply runs are rolled back",
                target.id, target.kind
            )
            .to_lowercase(),
            "to redo what a rollback undid, apply the plan again",
        ));
    }
    if target.status == RunStatus::RolledBack || undone.contains(target.id.as_str()) {
        return Ok(common::refuse(
            out,
            &format!("run {} is already rolled back", target.id),
            "`pare show RUN` shows what happened",
        ));
    }
    let id = store.new_run_id();
    let mut record = RunRecord {
        id: id.clone(),
        kind: if args.accept {
            RunKind::Accept
        } else {
            RunKind::Rollback
        },
        status: RunStatus::Running,
        started_at: crate::clock::rfc3339(crate::clock::now()),
        finished_at: None,
        who: crate::state::runs::who(),
        provider: target.provider.clone(),
        provider_spec: target.provider_spec.clone(),
        plan_path: target.plan_path.clone(),
        plan_sha256: target.plan_sha256.clone(),
        plan_name: target.plan_name.clone(),
        git_commit: target.git_commit.clone(),
        lineage: target.lineage.clone(),
        approvals: vec![],
        resolves: Some(target.id.clone()),
        completed: vec![],
        failed: vec![],
        skipped: vec![],
        savings_monthly_usd: 0.0,
        renamed: Default::default(),
        left: vec![],
    };
    if args.accept {
        if !matches!(
            target.status,
            RunStatus::Running | RunStatus::RollbackIncomplete | RunStatus::Incomplete
        ) {
            return Ok(common::refuse(
                out,
                &format!(
                    "run {} is {}, not interrupted",
                    target.id,
                    target.status.as_str()
                ),
                "--accept is for interrupted runs",
            ));
        }
        store.create(&record)?;
        record.status = RunStatus::Completed;
        record.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
        store.save(&record)?;
        out.status(&format!(
            "Run {} is accepted as it stands (recorded as run {id}); new runs may start.",
            target.id
        ));
        return Ok(ExitCode::Ok);
    }
    let Some(spec) = &target.provider_spec else {
        return Ok(common::refuse(
            out,
            &format!("run {} does not record its provider", target.id),
            "roll it back by hand from `pare show`",
        ));
    };
    let (provider, warning) = match crate::provider::open(
        spec,
        std::path::Path::new(&target.plan_path),
        &settings.config.state_dir,
    ) {
        Ok(p) => p,
        Err(e) => {
            common::report_open(out, &e);
            return Ok(ExitCode::Error);
        }
    };
    if let Some(w) = warning {
        out.status(&format!("warning: {w}"));
    }
    let provider: Arc<dyn Provider> = Arc::from(provider);
    let records = crate::state::journal::read(&store.journal_path(&target.id))
        .map_err(|e| miette::miette!("the journal of run {}: {e}", target.id))?;
    let rt = runtime();
    let mut undos = rt
        .block_on(engine::undos_from_journal(
            &records,
            &target.id,
            provider.as_ref(),
        ))
        .map_err(|e| miette::miette!(e))?;

    // What an earlier, incomplete rollback of this run already undid is not
    // undone again, and its resources are not "drifted" for being restored.
    let mut already: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut renamed_before = std::collections::BTreeMap::new();
    for earlier in runs
        .iter()
        .filter(|r| r.kind == RunKind::Rollback && r.resolves.as_deref() == Some(&target.id))
    {
        renamed_before.extend(earlier.renamed.clone());
        if let Ok(recs) = crate::state::journal::read(&store.journal_path(&earlier.id)) {
            for s in crate::state::journal::steps(&recs) {
                if matches!(s.outcome, Some((true, _))) {
                    already.insert((s.rec, s.step));
                }
            }
        }
    }
    let resumed: BTreeSet<String> = already.iter().map(|(r, _)| r.clone()).collect();
    undos.retain(|u| !already.contains(&(u.rec.clone(), u.step)));

    // AWS's six-hour rule: a volume changed by the run cannot be changed back yet.
    let mut waiting = Vec::new();
    undos.retain(|u| {
        let (crate::provider::Op::ModifyVolume { volume, .. }, Inverse::Op { .. }) = (&u.forward, &u.inverse) else {
            return true;
        };
        let Some(ready) = crate::clock::volume_cool_down(&u.done_at) else {
            return true;
        };
        waiting.push(format!(
            "{} [{}]: {} was changed at {}; AWS allows changing it back only from {ready} (one modification per volume every six hours). Run `pare rollback --run {}` again after then",
            u.rec,
            u.step + 1,
            volume.known().unwrap_or("the volume"),
            u.done_at,
            target.id
        ));
        false
    });

    // Drift: each resource must still be as the run left it (one read for
    // all). What counts is the last recommendation of the run that changed
    // it; resources a resumed rollback already restored are not checked.
    let mut drifted: BTreeSet<String> = BTreeSet::new();
    let mut drift_lines = Vec::new();
    // resource key → (its id, the last after-state, the recommendations on it)
    let mut last: std::collections::BTreeMap<
        &String,
        (
            crate::provider::ResourceId,
            Option<&crate::planner::Attributes>,
            Vec<&String>,
        ),
    > = Default::default();
    for r in &records {
        let Record::RecDone {
            rec,
            ok: true,
            resource: Some(res),
            after,
            ..
        } = r
        else {
            continue;
        };
        let after = after.as_ref();
        let Some(r_id) = crate::provider::ResourceId::from_key(res) else {
            continue;
        };
        let entry = last.entry(res).or_insert((r_id, after, Vec::new()));
        entry.1 = after;
        entry.2.push(rec);
    }
    last.retain(|_, (_, _, recs)| !recs.iter().any(|r| resumed.contains(*r)));
    let inv = if last.is_empty() {
        crate::provider::Inventory::default()
    } else {
        rt.block_on(provider.describe(&Query {
            resources: last.values().map(|f| f.0.clone()).collect(),
            ..Query::default()
        }))
        .map_err(|e| miette::miette!("reading the account failed: {e}"))?
    };
    for (res, (r_id, after, recs)) in &last {
        let now = inv.attributes(r_id);
        // No after-state: the run left it gone, and it must still be gone.
        let held = match after {
            Some(after) => verify::matches_prediction(after, now.as_ref()).is_ok(),
            None => now.is_none(),
        };
        if !held {
            drifted.extend(recs.iter().map(|r| r.to_string()));
            let names: Vec<&str> = recs.iter().map(|r| r.as_str()).collect();
            drift_lines.push(format!(
                "{}: {res} changed since the run: {}",
                names.join(", "),
                describe_drift(*after, now.as_ref())
            ));
        }
    }
    if !drifted.is_empty() {
        undos.retain(|u| !drifted.contains(&u.rec));
    }

    // What will happen, newest first.
    let mut s = format!(
        "Rolling back run {} ({}, {}):",
        target.id, target.plan_path, target.started_at
    );
    for u in undos.iter().rev() {
        let what = match &u.inverse {
            Inverse::Nothing { .. } => continue,
            Inverse::Irreversible { why } => format!("CANNOT UNDO {}: {why}", u.forward.describe()),
            Inverse::Op { op } => crate::planner::resolve(op, &u.created)
                .map_or_else(|_| op.describe(), |o| o.describe()),
        };
        s.push_str(&format!("\n  {} [{}] {what}", u.rec, u.step + 1));
    }
    for d in &drift_lines {
        s.push_str(&format!("\n  REFUSED (drift) {d}"));
    }
    for w in &waiting {
        s.push_str(&format!("\n  NOT YET {w}"));
    }
    out.status(&s);
    if args.dry_run {
        out.status("Dry run: nothing was changed.");
        return Ok(ExitCode::Ok);
    }
    if !args.auto_approve
        && let Err(code) = common::confirm(out, "Roll back?", "the list above", "roll back")
    {
        return Ok(code);
    }
    let journal = Arc::new(store.create(&record)?);
    let events = Events::new(&id, settings.log_format == LogFormat::Json, out.quiet);
    // Steps with something to undo (irreversible ones are named as they come).
    let to_undo = undos
        .iter()
        .filter(|u| matches!(u.inverse, Inverse::Op { .. }))
        .count();
    events.steps(to_undo);
    let engine_settings = engine::Settings {
        parallelism: 1,
        attempts: 4,
        backoff: std::time::Duration::from_millis(50),
        run: id.clone(),
        batch: settings.config.batch_size,
    };
    events.run_start("rollback", to_undo);
    events.rollback_start(to_undo);
    let report = rt.block_on(engine::rollback(
        &undos,
        Arc::clone(&provider),
        journal,
        &events,
        &engine_settings,
        renamed_before,
    ));
    record.renamed = report.renamed;
    record.completed = undos
        .iter()
        .map(|u| u.rec.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    record.left = report
        .irreversible
        .iter()
        .map(|s| format!("not undone (irreversible): {s}"))
        .collect();
    record.left.extend(
        drift_lines
            .iter()
            .map(|d| format!("not undone (drift): {d}")),
    );
    record.left.extend(
        waiting
            .iter()
            .map(|w| format!("not undone yet (AWS six-hour rule): {w}")),
    );
    let code = if let Some(f) = report.failed {
        record.status = RunStatus::Incomplete;
        record.left.insert(0, format!("failed: {f}"));
        record.left.extend(
            report
                .left
                .into_iter()
                .map(|l| format!("not attempted: {l}")),
        );
        ExitCode::RollbackIncomplete
    } else if !drift_lines.is_empty() || !waiting.is_empty() {
        record.status = RunStatus::Incomplete;
        ExitCode::RollbackIncomplete
    } else {
        record.status = RunStatus::Completed;
        ExitCode::Ok
    };
    common::finish_run(out, provider.as_ref(), &store, &mut record, &events)?;
    let mut s = format!(
        "Run {id}: rollback of {} {}; {} undone.",
        target.id,
        record.status.as_str(),
        crate::preview::text::plural(report.undone, "step")
    );
    for (old, new) in &record.renamed {
        s.push_str(&format!("\n  recreated: {old} is now {new}"));
    }
    for l in &record.left {
        s.push_str(&format!("\n  {l}"));
    }
    out.status(&s);
    Ok(code)
}
