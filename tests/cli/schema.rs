//! `pare schema` and the committed `schemas/plan.schema.json`.

use super::{pare, root};

/// The committed schema must equal what `pare schema` prints. To refresh it
/// after a model change: `PARE_UPDATE_SCHEMA=1 cargo test --test cli schema`.
#[test]
fn committed_schema_is_current() {
    let out = pare(&root()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = root().join("schemas/plan.schema.json");
    if std::env::var_os("PARE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/plan.schema.json is stale; refresh it with: PARE_UPDATE_SCHEMA=1 cargo test --test cli schema"
    );
}

/// The committed OpenAPI description must equal what `pare schema
/// --openapi` prints (the server serves the same): refresh it with
/// `PARE_UPDATE_SCHEMA=1 cargo test --test cli schema`.
#[test]
fn committed_openapi_is_current() {
    let out = pare(&root())
        .args(["schema", "--openapi"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = root().join("schemas/openapi.json");
    if std::env::var_os("PARE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/openapi.json is stale; refresh it with: PARE_UPDATE_SCHEMA=1 cargo test --test cli schema"
    );
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/plan.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).unwrap()
}

/// Every plan we ship passes both the loader and the schema: the two agree.
#[test]
fn shipped_plans_conform_to_the_schema() {
    let v = schema();
    let mut checked = 0;
    for dir in ["plans", "examples/quickstart"] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("recommendations:") {
                continue; // a seed account, not a plan
            }
            let errors: Vec<String> = v
                .iter_errors(&yaml_to_json(&text))
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            pare(&root()).arg("validate").arg(&path).assert().success();
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected the quickstart and the sample plans, checked {checked}"
    );
}

/// Mistakes the loader rejects, the schema rejects too (editors see them).
#[test]
fn schema_rejects_what_the_loader_rejects() {
    let v = schema();
    let head = "version: 1\nprovider: { sandbox: { seed: a.yaml } }\nrecommendations:\n";
    for rec in [
        "  - { id: a, action: terminate, instance: i-0a1b2c3d, bakup: none }",
        "  - { id: a, action: rightsise, instance: i-0a1b2c3d }",
        "  - { id: a, action: terminate, instance: i-123 }",
        "  - { id: a, action: reserve, instance_type: m5.large, count: two, term: 1y, payment: no-upfront }",
        "  - { id: a, action: reserve, instance_type: m5.large, count: 1, term: 2y, payment: no-upfront }",
        "  - { id: Bad, action: terminate, instance: i-0a1b2c3d }",
        "  - { id: a, action: rightsize, instance: i-0a1b2c3d }",
        "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 1.7e308 }",
        "  - { id: a, action: spot, instance: i-0a1b2c3d, max_price_usd_hour: 100000.5 }",
    ] {
        let doc = yaml_to_json(&format!("{head}{rec}\n"));
        assert!(!v.is_valid(&doc), "schema accepted: {rec}");
    }
    let ok = yaml_to_json(&format!(
        "{head}  - {{ id: a, action: terminate, instance: i-0a1b2c3d }}\n"
    ));
    assert!(v.is_valid(&ok));
}
