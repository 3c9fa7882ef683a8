//! `pare apply` and `pare rollback` end to end on the sandbox: every action,
//! faults, crashes at many points, the lock, stale saved plans.

use super::harness::{
    REVERSIBLE_PLAN, account_in, assert_restored, at, copy_dir, history_in, output,
    quickstart_account, renamed, wait_for,
};
use super::{pare, root};
use pare::provider::Inventory;
use std::collections::BTreeMap;
use std::path::Path;

/// A working directory with the quickstart account and `plan` as plan.yaml.
fn setup(plan: &str, account: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("account.yaml"), account).unwrap();
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    output(pare(dir).args(args))
}

/// `run`, with the clock `hours` ahead: AWS allows a volume's next
/// modification six hours after the last, so undoing a retype waits.
fn run_at(dir: &Path, args: &[&str], hours: u64) -> (i32, String, String) {
    output(pare(dir).args(args).env("PARE_FAKE_NOW", at(hours)))
}

fn account(dir: &Path) -> Inventory {
    account_in(dir)
}

fn last_run(dir: &Path) -> serde_json::Value {
    history_in(dir).remove(0)
}

/// Compares the preview's after-state with the live resource (placeholders skipped).
fn assert_matches_after(after: &serde_json::Value, live: Option<&serde_json::Value>, what: &str) {
    if after["state"] == "deleted" {
        assert!(live.is_none_or(|l| l.is_null()), "{what} should be deleted");
        return;
    }
    let live = live.unwrap_or_else(|| panic!("{what} is missing"));
    for (k, v) in after.as_object().unwrap() {
        if v.to_string().contains("(new") {
            continue;
        }
        assert_eq!(Some(v), live.get(k), "{what}: {k}");
    }
}

#[test]
fn every_action_applies_as_previewed_and_rolls_back() {
    let dir = setup(
        &std::fs::read_to_string(root().join("examples/quickstart/plan.yaml")).unwrap(),
        &quickstart_account(),
    );
    let d = dir.path();
    assert_eq!(run(d, &["sandbox", "reset", "plan.yaml"]).0, 0);
    let before = account(d);
    let (_, preview, _) = run(d, &["plan", "plan.yaml", "--format", "json"]);
    let preview: serde_json::Value = serde_json::from_str(&preview).unwrap();

    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("applied; 10 completed"), "{err}");

    // Every resource is what the preview said.
    let (_, inv, _) = run(d, &["inventory", "plan.yaml", "--format", "json"]);
    let inv: serde_json::Value = serde_json::from_str(&inv).unwrap();
    let live: BTreeMap<String, serde_json::Value> = inv["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["attributes"].clone(),
            )
        })
        .collect();
    for rec in preview["recommendations"].as_array().unwrap() {
        let id = rec["resource"].as_str().unwrap();
        match rec["action"].as_str().unwrap() {
            "reserve" => assert_eq!(account(d).reserved_instances.len(), 1),
            "spot" => {
                assert_eq!(live[id]["state"], "terminated");
                let now = account(d);
                let spot = now
                    .instances
                    .values()
                    .find(|i| i.lifecycle == pare::provider::Lifecycle::Spot)
                    .unwrap();
                assert_matches_after(
                    &rec["after"],
                    Some(&serde_json::to_value(spot).unwrap()),
                    "the spot replacement",
                );
            }
            _ => assert_matches_after(&rec["after"], live.get(id), id),
        }
    }

    // Applying the same plan again changes nothing.
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Nothing to change"), "{err}");

    // At once, everything but the volume retype is undone: AWS allows the
    // volume's next change only six hours after the last.
    let (code, _, err) = run(d, &["rollback", "--last", "--auto-approve"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("not undone (irreversible): reserve-m5-large"),
        "{err}"
    );
    assert!(
        err.contains("NOT YET gp3-web-1 [1]")
            && err.contains("AWS allows changing it back only from"),
        "{err}"
    );
    let rb = last_run(d);
    assert_eq!(rb["kind"], "rollback");
    assert_eq!(rb["status"], "incomplete");
    assert_eq!(
        renamed(&rb).len(),
        3,
        "two instances and a volume were recreated: {rb}"
    );
    let first_renames = renamed(&rb);
    // Until it is finished (or accepted), nothing new is applied, and the
    // refusal says how to finish it.
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");
    let applied = rb["resolves"].as_str().unwrap().to_string();
    assert!(
        err.contains(&format!("finish it with `pare rollback --run {applied}`")),
        "{err}"
    );
    // Seven hours later the same command finishes the job: only the retype
    // is left, and what the first rollback restored is not called drift.
    let (code, _, err) = run_at(d, &["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("drift"), "{err}");
    assert!(err.contains("gp3-web-1 [1] change"), "{err}");
    assert_eq!(last_run(d)["status"], "completed");
    assert_restored(&before, &account(d), &first_renames, &["eipalloc-0a1b2c3d"]);

    // History keeps both runs; nothing is left to roll back.
    let (_, hist, _) = run(d, &["history"]);
    assert!(
        hist.contains("rollback of r") && hist.contains("apply"),
        "{hist}"
    );
    // Nothing is left to roll back: said plainly, not an error.
    let (code, _, err) = run(d, &["rollback", "--last", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("Nothing to roll back"), "{err}");
    // The finished rollback resolves the incomplete one: applying works again
    // (once the volume changed back at +7 h may be modified again).
    let (code, _, err) = run_at(d, &["apply", "plan.yaml", "--auto-approve"], 14);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_permanent_failure_skips_dependents_and_rolls_back() {
    // `size` fails after stopping its instance; `mon` waits for it.
    let plan = REVERSIBLE_PLAN.replace("depends_on: [kill]", "depends_on: [size]");
    let account_text = format!(
        "{}faults:\n  ops:\n    set_instance_type: {{ fail_from: 1, code: InternalError }}\n",
        quickstart_account()
    );
    let dir = setup(&plan, &account_text);
    let d = dir.path();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    let before = account(d);
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    // Everything is undone at once except the volume retype: AWS lets the
    // volume change back only six hours after it changed, so the automatic
    // rollback leaves it for later, as `pare rollback` would.
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("mon skipped: upstream failed: size"), "{err}");
    assert!(
        err.contains("not undone yet (AWS six-hour rule): gp3 [1]") && err.contains("only from"),
        "{err}"
    );
    let r = last_run(d);
    assert_eq!(r["status"], "rollback_incomplete");
    assert_eq!(r["failed"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(
        r["completed"].as_array().unwrap().len(),
        6,
        "independent branches finish: {r}"
    );
    // Until it is finished, nothing new is applied.
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");
    // Seven hours later, rolling the run back finishes only what is left:
    // what the automatic rollback undid is not undone again.
    let id = r["id"].as_str().unwrap();
    let (code, _, err) = run_at(d, &["rollback", "--run", id, "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("gp3 [1] change vol-0a1b2c3d4e5f60001 to gp2"),
        "{err}"
    );
    assert!(err.contains("undone by an earlier rollback"), "{err}");
    assert!(
        !err.contains("spot [4] launch"),
        "nothing undone twice: {err}"
    );
    assert_restored(&before, &account(d), &renamed(&r), &[]);
    // The run is resolved: a new apply may start (and fails the same way),
    // once the volume changed back at +7 h may be modified again.
    assert_eq!(
        run_at(d, &["apply", "plan.yaml", "--auto-approve"], 14).0,
        4
    );
}

#[test]
fn an_undo_that_fails_leaves_a_run_to_resolve() {
    // Every terminate fails: the spot replacement fails, and so does undoing its launch.
    let account_text = format!(
        "{}faults:\n  ops:\n    terminate_instance: {{ fail_from: 1, code: InternalError }}\n",
        quickstart_account()
    );
    let dir = setup(REVERSIBLE_PLAN, &account_text);
    let d = dir.path();
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 4, "{err}");
    let r = last_run(d);
    assert_eq!(r["status"], "rollback_incomplete");
    let left = r["left"].as_array().unwrap();
    assert!(
        left[0].as_str().unwrap().starts_with("failed: spot step 3"),
        "{r}"
    );
    // New runs are refused until it is resolved, and say how.
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("did not finish rolling back") && err.contains("--accept"),
        "{err}"
    );
    let id = r["id"].as_str().unwrap();
    assert_eq!(run(d, &["rollback", "--run", id, "--accept"]).0, 0);
    assert_eq!(run(d, &["plan", "plan.yaml"]).0, 0);
    assert_ne!(
        run(d, &["apply", "plan.yaml", "--auto-approve"]).0,
        1,
        "no longer refused"
    );
}

#[test]
fn transient_faults_are_retried() {
    let account_text = format!(
        "{}faults:\n  ops:\n    start_instance: {{ fail_nth: [1], code: RequestLimitExceeded, retryable: true }}\n    modify_volume: {{ fail_nth: [1, 2], code: RequestLimitExceeded, retryable: true }}\n",
        quickstart_account()
    );
    let dir = setup(REVERSIBLE_PLAN, &account_text);
    let d = dir.path();
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("transient error, retrying"), "{err}");
    let id = last_run(d)["id"].as_str().unwrap().to_string();
    let (_, show, _) = run(d, &["show", &id, "--format", "json"]);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    let attempts: Vec<u64> = show["journal"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["record"] == "outcome")
        .map(|r| r["attempts"].as_u64().unwrap())
        .collect();
    assert!(
        attempts.contains(&3) && attempts.contains(&2),
        "{attempts:?}"
    );
    // Nothing happened twice: one volume modification, one start.
    let intents = |op: &str| {
        show["journal"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["record"] == "intent" && r["op"] == op)
            .count()
    };
    assert_eq!(
        (intents("modify_volume"), intents("start_instance")),
        (1, 1)
    );
}

#[test]
fn killed_at_any_point_rollback_restores_everything() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let base = dir.path();
    run(base, &["sandbox", "reset", "plan.yaml"]);
    let before = account(base);
    let pristine = base.join("pristine");
    copy_dir(&base.join(".pare"), &pristine);
    // Count the records a full run writes.
    let probe = base.join("probe");
    copy_dir(&pristine, &probe.join(".pare"));
    for f in ["plan.yaml", "account.yaml"] {
        std::fs::copy(base.join(f), probe.join(f)).unwrap();
    }
    assert_eq!(run(&probe, &["apply", "plan.yaml", "--auto-approve"]).0, 0);
    let id = last_run(&probe)["id"].as_str().unwrap().to_string();
    let total = std::fs::read_to_string(probe.join(".pare/runs").join(id).join("journal.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(total >= 30, "only {total} journal records");

    for n in 1..=total {
        let d = base.join(format!("kill-{n}"));
        copy_dir(&pristine, &d.join(".pare"));
        for f in ["plan.yaml", "account.yaml"] {
            std::fs::copy(base.join(f), d.join(f)).unwrap();
        }
        let out = pare(&d)
            .args(["apply", "plan.yaml", "--auto-approve", "-q"])
            .env("PARE_TEST_KILL_AFTER_RECORD", n.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.code().is_none(),
            "run {n} should have been killed"
        );
        // The interrupted run blocks new ones, with the way out.
        let (code, _, err) = run(&d, &["apply", "plan.yaml", "--auto-approve"]);
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(
            err.contains("was interrupted") && err.contains("pare rollback --run"),
            "kill {n}: {err}"
        );
        // The journal is readable.
        let (code, _, err) = run(&d, &["show", last_run(&d)["id"].as_str().unwrap()]);
        assert_eq!(code, 0, "kill {n}: {err}");
        let (code, _, err) = run_at(&d, &["rollback", "--last", "--auto-approve"], 7);
        assert_eq!(code, 0, "kill {n}: rollback failed: {err}");
        assert_restored(&before, &account(&d), &renamed(&last_run(&d)), &[]);
        // And a new run may start.
        assert_eq!(run(&d, &["plan", "plan.yaml"]).0, 0);
    }
}

#[test]
fn two_concurrent_applies_one_runs() {
    let account_text = format!("{}faults:\n  latency_ms: 100\n", quickstart_account());
    let dir = setup(REVERSIBLE_PLAN, &account_text);
    let d = dir.path();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    let spawn = || {
        super::harness::process_in(d)
            .args(["apply", "plan.yaml", "--auto-approve", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert_eq!(
        codes,
        [0, 1],
        "{} / {}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let loser = if a.status.code() == Some(1) { a } else { b };
    assert!(String::from_utf8_lossy(&loser.stderr).contains("another pare run holds the lock"));
}

#[test]
fn a_stale_saved_plan_is_refused_and_a_fresh_one_applies() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let d = dir.path();
    assert_eq!(run(d, &["plan", "plan.yaml", "--out", "saved.json"]).0, 0);
    // Someone changes a resource the plan names.
    let other = "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - { id: x, action: hibernate, instance: i-0a1b2c3d4e5f60005, mode: stop }\n";
    std::fs::write(d.join("other.yaml"), other).unwrap();
    std::fs::write(
        d.join("pare.toml"),
        "[policy]\nrequire_approval_at = \"never\"\n",
    )
    .unwrap();
    assert_eq!(run(d, &["apply", "other.yaml", "--auto-approve"]).0, 0);
    let (code, _, err) = run(d, &["apply", "saved.json", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("stale")
            && err.contains("instance:i-0a1b2c3d4e5f60005: state: \"running\" → \"stopped\""),
        "{err}"
    );
    // Plan again, and the saved plan applies exactly.
    assert_eq!(run(d, &["plan", "plan.yaml", "--out", "saved.json"]).0, 0);
    let (code, _, err) = run(d, &["apply", "saved.json", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(last_run(d)["lineage"].is_string());
}

#[test]
fn without_a_terminal_apply_needs_auto_approve() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let (code, _, err) = run(dir.path(), &["apply", "plan.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("pass --auto-approve") && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join(".pare/runs")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "no run was recorded"
    );
}

#[test]
fn blocked_plans_and_blast_radius_are_refused() {
    let dir = setup(
        REVERSIBLE_PLAN
            .replace(
                "approvals: [ { by: t@example.com, covers: [\"*\"] } ]\n",
                "",
            )
            .as_str(),
        &quickstart_account(),
    );
    let (code, _, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("blocked:") && err.contains("Nothing was changed"),
        "{err}"
    );
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    std::fs::write(dir.path().join("pare.toml"), "[policy]\nmax_changes = 3\n").unwrap();
    let (code, _, err) = run(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(err.contains("8 changes exceed max_changes = 3"), "{err}");
}

/// `pare --log-format json apply plan.yaml --auto-approve` in `dir`; must
/// succeed; its events.
fn json_events(dir: &Path) -> Vec<serde_json::Value> {
    let (code, _, err) = run(
        dir,
        &[
            "--log-format",
            "json",
            "apply",
            "plan.yaml",
            "--auto-approve",
        ],
    );
    assert_eq!(code, 0, "{err}");
    err.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn json_events_for_ci_logs() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let events = json_events(dir.path());
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_start"));
    assert_eq!(kinds.last(), Some(&"run_done"));
    assert_eq!(kinds.iter().filter(|k| **k == "step_start").count(), 16);
    assert_eq!(kinds.iter().filter(|k| **k == "step_done").count(), 16);
    for e in &events {
        assert!(e["run"].is_string() && e["at"].is_string(), "{e}");
    }
}

#[test]
fn rollback_dry_run_changes_nothing_and_drift_is_refused() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let d = dir.path();
    assert_eq!(run(d, &["apply", "plan.yaml", "--auto-approve"]).0, 0);
    let first = last_run(d)["id"].as_str().unwrap().to_string();
    let applied = account(d);

    let (code, _, err) = run(d, &["rollback", "--last", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("size [3] stop i-0a1b2c3d4e5f60001")
            && err.contains("Dry run: nothing was changed."),
        "{err}"
    );
    assert_eq!(account(d), applied);

    // Someone resizes the group after the run.
    std::fs::write(
        d.join("pare.toml"),
        "[policy]\nrequire_approval_at = \"never\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("other.yaml"),
        "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - { id: grow, action: autoscale, group: web-asg, desired: 5 }\n",
    )
    .unwrap();
    assert_eq!(run(d, &["apply", "other.yaml", "--auto-approve"]).0, 0);

    let (code, _, err) = run(d, &["rollback", "--run", &first, "--auto-approve"]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains(
            "REFUSED (drift) asg: auto-scaling group:web-asg changed since the run: desired: 2 → 5"
        ),
        "{err}"
    );
    let now = account(d);
    assert_eq!(
        now.group("web-asg").unwrap().desired,
        5,
        "the drifted group is left alone"
    );
    assert_eq!(
        now.instance("i-0a1b2c3d4e5f60001").unwrap().instance_type,
        "m5.xlarge",
        "the rest is undone"
    );
    assert_eq!(last_run(d)["status"], "incomplete");
}

#[test]
fn require_committed_plan_checks_git() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let d = dir.path();
    std::fs::write(
        d.join("pare.toml"),
        "[policy]\nrequire_committed_plan = true\n",
    )
    .unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(d)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(err.contains("plan.yaml is not tracked by git"), "{err}");
    git(&["add", "plan.yaml"]);
    git(&["commit", "-q", "-m", "plan"]);
    std::fs::write(d.join("plan.yaml"), format!("{REVERSIBLE_PLAN}# edited\n")).unwrap();
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(err.contains("plan.yaml has uncommitted changes"), "{err}");
    git(&["commit", "-q", "-am", "edit"]);
    assert_eq!(run(d, &["apply", "plan.yaml", "--auto-approve"]).0, 0);
    assert_eq!(last_run(d)["git_commit"].as_str().unwrap().len(), 40);
}

#[cfg(unix)]
#[test]
fn ctrl_c_lets_started_recommendations_finish_and_leaves_the_run_to_resolve() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let d = dir.path();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    let before = account(d);
    let hooks = tempfile::tempdir().unwrap();
    // Pause after the first step of the run (the most urgent chain, `spot`,
    // has started), press Ctrl-C there, and let it go on.
    let child = super::harness::process_in(d)
        .args(["apply", "plan.yaml", "--auto-approve", "--parallelism", "1"])
        .env("PARE_TEST_PAUSE_AT", "after-group-1")
        .env("PARE_TEST_PAUSE_DIR", hooks.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&hooks.path().join("after-group-1.paused"));
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    wait_for(&hooks.path().join("ctrl-c.seen"));
    std::fs::write(hooks.path().join("after-group-1.go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Changes were made and are not undone: the run is left to resolve.
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("Ctrl-C: no new changes start"), "{err}");
    let r = last_run(d);
    assert_eq!(r["status"], "cancelled");
    // Every recommendation either finished all its steps or never started.
    let id = r["id"].as_str().unwrap();
    let journal =
        std::fs::read_to_string(d.join(format!(".pare/runs/{id}/journal.jsonl"))).unwrap();
    let records: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(!skipped.is_empty(), "{r}");
    assert!(skipped.iter().all(|s| s.ends_with(": cancelled")), "{r}");
    let completed: Vec<&str> = r["completed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(completed.contains(&"spot"), "the started one finished: {r}");
    for s in &skipped {
        let rec = s.trim_end_matches(": cancelled");
        assert!(
            !records
                .iter()
                .any(|x| x["record"] == "intent" && x["rec"] == rec),
            "{rec} was recorded skipped but has steps"
        );
    }
    // A cancelled run that changed something blocks new applies until resolved.
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("was cancelled") && err.contains("--accept"),
        "{err}"
    );
    // Rolling it back restores everything it touched, the spot replacement too.
    let (code, _, err) = run_at(d, &["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    let rb = last_run(d);
    assert_restored(&before, &account(d), &renamed(&rb), &[]);
    let spots = account(d)
        .instances
        .values()
        .filter(|i| {
            i.lifecycle == pare::provider::Lifecycle::Spot
                && i.state != pare::provider::InstanceState::Terminated
        })
        .count();
    assert_eq!(spots, 0, "no orphaned spot instance");
}

#[test]
fn ordering_holds_through_recommendations_that_change_nothing() {
    let plan = "version: 1
provider: { sandbox: { seed: account.yaml } }
approvals: [ { by: t@example.com, covers: [\"*\"] } ]
recommendations:
  - { id: c, action: config, fix: disable-detailed-monitoring, instance: i-0a1b2c3d4e5f60002, depends_on: [b] }
  - { id: b, action: rightsize, instance: i-0a1b2c3d4e5f60005, to: m5.large, depends_on: [a] }
  - { id: a, action: rightsize, instance: i-0a1b2c3d4e5f60001, to: m5.large }
";
    let dir = setup(plan, &quickstart_account());
    let events = json_events(dir.path());
    let pos = |event: &str, rec: &str, step: u64| {
        events
            .iter()
            .position(|e| e["event"] == event && e["rec"] == rec && e["step"] == step)
            .unwrap_or_else(|| panic!("{event} {rec} {step}"))
    };
    assert!(
        pos("step_done", "a", 3) < pos("step_start", "c", 1),
        "c waits for a through b"
    );
    assert!(!events.iter().any(|e| e["rec"] == "b"), "b changes nothing");
}

#[test]
fn an_unfinished_rollback_can_be_accepted_as_it_stands() {
    let dir = setup(REVERSIBLE_PLAN, &quickstart_account());
    let d = dir.path();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    assert_eq!(run(d, &["apply", "plan.yaml", "--auto-approve"]).0, 0);
    // The volume retype cannot be undone yet: the rollback stops short.
    let (code, _, err) = run(d, &["rollback", "--last", "--auto-approve"]);
    assert_eq!(code, 4, "{err}");
    let unfinished = last_run(d)["id"].as_str().unwrap().to_string();
    assert_eq!(run(d, &["apply", "plan.yaml", "--auto-approve"]).0, 1);
    // Keeping things as they are resolves it; applying works again.
    let (code, _, err) = run(d, &["rollback", "--run", &unfinished, "--accept"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_resumed_rollback_follows_what_the_first_one_recreated() {
    // Retype a volume, then delete it (with a snapshot). Rolling back
    // recreates it under a new id; a rollback stopped right there (killed)
    // is resumed, and must change the new volume back. AWS's six-hour rule
    // does not hold it up: the new volume was never modified.
    let plan = "version: 1
name: retype-then-delete
provider: { sandbox: { seed: account.yaml } }
approvals: [ { by: t@example.com, covers: [drop] } ]
recommendations:
  - { id: retype, action: storage, volume: vol-0a1b2c3d4e5f60009, to: gp3 }
  - { id: drop, action: storage, volume: vol-0a1b2c3d4e5f60009, delete: true, depends_on: [retype] }
";
    let dir = setup(plan, &quickstart_account());
    let d = dir.path();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    let before = account(d);
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    // Killed after the recreation's outcome (its intent, then its outcome).
    let out = pare(d)
        .args(["rollback", "--last", "--auto-approve"])
        .env("PARE_TEST_KILL_AFTER_RECORD", "2")
        .output()
        .unwrap();
    assert!(out.status.code().is_none(), "killed");
    let new = account(d)
        .volumes
        .keys()
        .find(|v| v.starts_with("vol-e"))
        .cloned()
        .expect("the volume was made again");
    assert_eq!(account(d).volumes[&new].volume_type, "gp3");
    let runs = history_in(d);
    let apply = runs.iter().find(|r| r["kind"] == "apply").unwrap();
    let id = apply["id"].as_str().unwrap();
    let (code, _, err) = run(d, &["rollback", "--run", id, "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("change {new} to gp2")), "{err}");
    assert!(!err.contains("NOT YET"), "{err}");
    let renames = renamed(&last_run(d));
    assert_eq!(renames["vol-0a1b2c3d4e5f60009"], new);
    assert_restored(&before, &account(d), &renames, &[]);
}

#[test]
fn a_resource_changed_again_by_a_later_recommendation_is_not_drift() {
    // The volume is retyped, then its instance terminated (which detaches
    // it); the instance is rightsized, then moved to spot (which terminates
    // it). Each resource's last change decides what it must look like.
    let plan = "version: 1
provider: { sandbox: { seed: account.yaml } }
recommendations:
  - { id: retype, action: storage, volume: vol-0a1b2c3d4e5f60003, to: gp3 }
  - { id: kill, action: terminate, instance: i-0a1b2c3d4e5f60003, depends_on: [retype] }
  - { id: size, action: rightsize, instance: i-0a1b2c3d4e5f60004, to: c5.xlarge }
  - { id: spot, action: spot, instance: i-0a1b2c3d4e5f60004, depends_on: [size] }
";
    let dir = setup(plan, &quickstart_account());
    let d = dir.path();
    std::fs::write(
        d.join("pare.toml"),
        "[policy]\nrequire_approval_at = \"never\"\n",
    )
    .unwrap();
    run(d, &["sandbox", "reset", "plan.yaml"]);
    let before = account(d);
    let (code, _, err) = run(d, &["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_at(d, &["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("drift"), "{err}");
    assert_restored(&before, &account(d), &renamed(&last_run(d)), &[]);
}
