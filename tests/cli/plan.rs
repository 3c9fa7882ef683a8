//! `pare plan`, `inventory` and `sandbox reset` on the embedded sandbox.

use super::{pare, root, workdir};
use std::path::Path;

const QUICKSTART: &str = "examples/quickstart/plan.yaml";

/// `pare` from the repository root with its own state directory.
fn in_repo(state: &Path) -> assert_cmd::Command {
    let mut cmd = pare(&root());
    cmd.arg("--state-dir").arg(state);
    cmd
}

fn stdout(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quickstart_text_preview() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) = stdout(in_repo(state.path()).args(["plan", QUICKSTART]));
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
}

#[test]
fn quickstart_markdown_preview() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) =
        stdout(in_repo(state.path()).args(["plan", QUICKSTART, "--format", "markdown"]));
    assert_eq!(code, 0, "{err}");
    insta::assert_snapshot!(out);
}

#[test]
fn quickstart_json_preview() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) =
        stdout(in_repo(state.path()).args(["plan", QUICKSTART, "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The keys the README's *The preview as JSON* promises.
    for key in [
        "format_version",
        "plan",
        "provider",
        "summary",
        "waves",
        "recommendations",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in [
        "recommendations",
        "changes",
        "no_change",
        "blocked",
        "by_action",
        "risk",
        "irreversible",
        "monthly_savings_usd",
        "estimated_duration_s",
    ] {
        assert!(json["summary"].get(key).is_some(), "summary misses {key}");
    }
    let rec = &json["recommendations"][1];
    for key in [
        "id",
        "action",
        "resource",
        "status",
        "risk",
        "risk_reasons",
        "reversible",
        "savings_monthly_usd",
        "depends_on",
        "blocked_by",
        "before",
        "after",
        "steps",
    ] {
        assert!(rec.get(key).is_some(), "recommendation misses {key}");
    }
    assert_eq!(rec["steps"][0]["op"], "stop_instance");
    assert_eq!(rec["steps"][0]["inverse"]["op"], "start_instance");
    insta::assert_snapshot!(out);
}

#[test]
fn plan_leaves_tracked_files_alone_and_state_private() {
    let dir = workdir(&[]);
    for f in ["plan.yaml", "account.yaml"] {
        std::fs::copy(
            root().join("examples/quickstart").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    let before = std::fs::read(dir.path().join("account.yaml")).unwrap();
    pare(dir.path())
        .args(["plan", "plan.yaml"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(dir.path().join("account.yaml")).unwrap(),
        before
    );
    let state = dir.path().join(".pare");
    assert!(state.join("sandbox.yaml").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(state.join("sandbox.yaml"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}

#[test]
fn detailed_exitcode() {
    let state = tempfile::tempdir().unwrap();
    in_repo(state.path())
        .args(["plan", QUICKSTART, "--detailed-exitcode"])
        .assert()
        .code(2);
    // A plan whose only recommendation is already satisfied: no changes, exit 0.
    let dir = workdir(&[
        (
            "account.yaml",
            &std::fs::read_to_string(root().join("examples/quickstart/account.yaml")).unwrap(),
        ),
        (
            "plan.yaml",
            "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - { id: a, action: rightsize, instance: i-0a1b2c3d4e5f60005, to: m5.large }\n",
        ),
    ]);
    let (code, out, _) =
        stdout(pare(dir.path()).args(["plan", "plan.yaml", "--detailed-exitcode"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("no change: i-0a1b2c3d4e5f60005 is already m5.large"),
        "{out}"
    );
}

#[test]
fn saved_plan_holds_steps_inverses_and_fingerprints() {
    let state = tempfile::tempdir().unwrap();
    let saved = state.path().join("q.plan.json");
    let (code, _, err) = stdout(
        in_repo(state.path())
            .args(["plan", QUICKSTART, "--out"])
            .arg(&saved)
            .env("PARE_FAKE_NOW", "2026-11-27T12:00:00Z"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Saved to"), "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(json["kind"], "pare-saved-plan");
    assert_eq!(json["saved_at"], "2026-11-27T12:00:00Z");
    assert_eq!(json["lineage"].as_str().unwrap().len(), 16);
    assert_eq!(json["plan"]["sha256"].as_str().unwrap().len(), 64);
    let fp = json["fingerprints"].as_object().unwrap();
    assert_eq!(
        fp["instance:i-0a1b2c3d4e5f60001"].as_str().unwrap().len(),
        64
    );
    assert_eq!(json["recommendations"].as_array().unwrap().len(), 10);
    // The saved steps parse back into the engine's vocabulary (typed ops
    // and inverses; the words are for people only).
    let preview: pare::preview::PlanJson = serde_json::from_value(json.clone()).unwrap();
    let steps: Vec<pare::vocabulary::Op> = preview.recommendations[1]
        .steps
        .iter()
        .map(|s| s.op.clone())
        .collect();
    assert_eq!(steps.len(), 3);
    assert!(preview.recommendations.iter().any(|r| {
        r.steps
            .iter()
            .any(|s| s.inverse.is_none() && !s.undo.is_empty() && !s.reversible)
    }));
}

#[test]
fn missing_resource_is_a_located_error() {
    let dir = workdir(&[
        ("account.yaml", "region: us-east-1\ninstances: []\n"),
        (
            "plan.yaml",
            "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - id: a\n    action: rightsize\n    instance: i-0a1b2c3d\n    to: m5.large\n",
        ),
    ]);
    let (code, out, err) = stdout(pare(dir.path()).args(["plan", "plan.yaml"]));
    assert_eq!(code, 1);
    assert!(out.is_empty(), "no preview on error: {out}");
    assert!(
        err.contains("instance i-0a1b2c3d does not exist in the sandbox account (us-east-1)"),
        "{err}"
    );
    assert!(err.contains("plan.yaml:6:15"), "{err}");
}

#[test]
fn invalid_seed_is_a_located_error() {
    let dir = workdir(&[
        (
            "account.yaml",
            "region: us-east-1\ninstances:\n  - { id: i-0a1b2c3d, type: m5.large, state: runing, zone: us-east-1a }\n",
        ),
        (
            "plan.yaml",
            "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations: []\n",
        ),
    ]);
    let (code, _, err) = stdout(pare(dir.path()).args(["plan", "plan.yaml"]));
    assert_eq!(code, 1);
    assert!(err.contains("account.yaml:3"), "{err}");
    assert!(err.contains("runing"), "{err}");
}

#[test]
fn blocked_by_policy_and_protected_tags() {
    let account = "region: us-east-1\ninstances:\n  - { id: i-0a1b2c3d, type: m5.xlarge, state: running, zone: us-east-1a, tags: { pare:protect: \"true\" } }\n  - { id: i-0a1b2c3e, type: m5.xlarge, state: running, zone: us-east-1a }\n";
    let dir = workdir(&[
        ("account.yaml", account),
        (
            "plan.yaml",
            "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - { id: a, action: hibernate, instance: i-0a1b2c3d, mode: stop }\n  - { id: b, action: terminate, instance: i-0a1b2c3e }\n",
        ),
    ]);
    let (code, out, _) = stdout(pare(dir.path()).args(["plan", "plan.yaml", "--format", "json"]));
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["blocked"], 2);
    assert!(
        json["recommendations"][0]["blocked_by"][0]
            .as_str()
            .unwrap()
            .contains("pare:protect=true")
    );
    assert!(
        json["recommendations"][1]["blocked_by"][0]
            .as_str()
            .unwrap()
            .contains("high risk needs an approval")
    );
}

#[cfg(feature = "aws")]
#[test]
fn an_unreachable_aws_endpoint_is_a_clear_error() {
    // Port 9 on loopback: nothing listens. Tests never reach beyond loopback.
    let dir = workdir(&[(
        "plan.yaml",
        "version: 1\nprovider: { aws: { region: us-east-1, endpoint_url: \"http://127.0.0.1:9\" } }\nrecommendations:\n  - { id: a, action: rightsize, instance: i-0a1b2c3d, to: m5.large }\n",
    )]);
    let (code, out, err) = stdout(
        pare(dir.path())
            .args(["plan", "plan.yaml"])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE"),
    );
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("reading the account failed"), "{err}");
}

#[test]
fn inventory_lists_named_resources() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) =
        stdout(in_repo(state.path()).args(["inventory", QUICKSTART, "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let resources = json["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 9, "every named resource once");
    let web1 = resources
        .iter()
        .find(|r| r["id"] == "i-0a1b2c3d4e5f60001")
        .unwrap();
    assert_eq!(web1["attributes"]["type"], "m5.xlarge");
    let (_, text, _) = stdout(in_repo(state.path()).args(["inventory", QUICKSTART]));
    assert!(
        text.contains("instance i-0a1b2c3d4e5f60001\n    hibernation: false"),
        "{text}"
    );
}

#[test]
fn sandbox_reset_reseeds() {
    let state = tempfile::tempdir().unwrap();
    in_repo(state.path())
        .args(["plan", QUICKSTART])
        .assert()
        .success();
    std::fs::write(state.path().join("sandbox.yaml"), "region: us-east-1\n").unwrap();
    let (code, _, err) = stdout(in_repo(state.path()).args(["sandbox", "reset", QUICKSTART]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("5 instances, 3 volumes, 1 snapshot, 1 address, 1 group"),
        "{err}"
    );
    let (_, out, _) = stdout(in_repo(state.path()).args(["plan", QUICKSTART, "--format", "json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["summary"]["changes"], 10);
}

#[test]
fn iam_policy_for_the_quickstart() {
    let (code, out, err) = stdout(pare(&root()).args(["iam-policy", QUICKSTART]));
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["Version"], "2012-10-17");
    insta::assert_snapshot!(out);
}
