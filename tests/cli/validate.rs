//! `pare validate`: exit codes, rendered diagnostics, JSON for editors.

use super::{pare, root, workdir};

const HEAD: &str = "version: 1\nprovider:\n  sandbox: { seed: account.yaml }\nrecommendations:\n";

#[test]
fn quickstart_is_valid() {
    pare(&root())
        .args(["validate", "examples/quickstart/plan.yaml"])
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "✓ examples/quickstart/plan.yaml: valid, 10 recommendations",
        ));
}

#[test]
fn several_files_report_each_and_fail_if_any_fails() {
    let dir = workdir(&[
        (
            "good.yaml",
            &format!("{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d }}\n"),
        ),
        (
            "bad.yaml",
            &format!("{HEAD}  - {{ id: a, action: terminate, instance: i-1 }}\n"),
        ),
    ]);
    let out = pare(dir.path())
        .args(["validate", "good.yaml", "bad.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✓ good.yaml: valid, 1 recommendation (terminate 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("✗ bad.yaml: 1 error"), "{stdout}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = workdir(&[]);
    let out = pare(dir.path())
        .args(["validate", "nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read plan file nope.yaml"),
        "{stderr}"
    );
}

/// The rendered diagnostics a person sees, for a plan with many mistakes.
#[test]
fn rendered_diagnostics() {
    let plan = format!(
        "{HEAD}  - id: rightsize-web\n    action: rightsise\n    instance: i-0a1b2c3d\n  - id: reserve-m5\n    action: reserve\n    instance_type: m5.large\n    count: two\n    term: 2y\n    payment: no-upfront\n  - id: scale\n    action: autoscale\n    group: web\n    min: 4\n    max: 2\n    depends_on: [reserve-m6]\n"
    );
    let dir = workdir(&[("plan.yaml", &plan)]);
    let out = pare(dir.path())
        .args(["validate", "plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rendered_cycle_and_duplicate() {
    let plan = format!(
        "{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d, depends_on: [b] }}\n  - {{ id: b, action: terminate, instance: i-0a1b2c3e, depends_on: [a] }}\n  - {{ id: b, action: terminate, instance: i-0a1b2c3f }}\n"
    );
    let dir = workdir(&[("plan.yaml", &plan)]);
    let out = pare(dir.path())
        .args(["validate", "plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rendered_yaml_syntax_error() {
    let dir = workdir(&[(
        "plan.yaml",
        "version: 1\nprovider:\n  sandbox: { seed: a.yaml\nrecommendations: []\n",
    )]);
    let out = pare(dir.path())
        .args(["validate", "plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}

#[test]
fn json_format_for_editors() {
    let dir = workdir(&[(
        "plan.yaml",
        &format!(
            "{HEAD}  - {{ id: a, action: terminate, instance: i-1 }}\n  - {{ id: b, action: hibernate, instance: i-0a1b2c3d, mode: nap }}\n"
        ),
    )]);
    let out = pare(dir.path())
        .args(["validate", "--format", "json", "plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], false);
    let diags = json["files"][0]["diagnostics"].as_array().unwrap();
    let located: Vec<(String, u64, u64, String)> = diags
        .iter()
        .map(|d| {
            (
                d["file"].as_str().unwrap().to_string(),
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        located,
        [
            (
                "plan.yaml".to_string(),
                5,
                43,
                "plan::resource-id".to_string()
            ),
            (
                "plan.yaml".to_string(),
                6,
                61,
                "plan::invalid-value".to_string()
            ),
        ]
    );
    assert!(
        diags[1]["help"]
            .as_str()
            .unwrap()
            .contains("`hibernate`, `stop`")
    );
    // Nothing on stderr in JSON mode: editors read stdout only.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_format_valid() {
    let out = pare(&root())
        .args([
            "validate",
            "--format",
            "json",
            "examples/quickstart/plan.yaml",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["files"][0]["recommendations"], 10);
}

#[test]
fn bad_config_is_located() {
    let dir = workdir(&[
        ("pare.toml", "[policy]\nrequire_approval_at = \"hihg\"\n"),
        (
            "plan.yaml",
            &format!("{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d }}\n"),
        ),
    ]);
    let out = pare(dir.path())
        .args(["validate", "plan.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`hihg` is not a risk level"), "{stderr}");
    assert!(stderr.contains("pare.toml:2:23"), "{stderr}");
}
