//! Table tests of the loader: input → the exact diagnostics (code, line, column).

use super::*;
use std::path::Path;

const HEAD: &str = "version: 1\nprovider:\n  sandbox: { seed: account.yaml }\nrecommendations:\n";

/// A named input and the diagnostics it must give, as (code, line, column).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, usize, usize)],
);

/// The diagnostics of `text` as (code, line, column), in order.
fn diags(text: &str) -> Vec<(&'static str, usize, usize)> {
    let (_, d) = check_str(Path::new("p.yaml"), "p.yaml", text.to_string());
    d.iter()
        .map(|d| {
            let (l, c) = d.line_col();
            (d.code, l, c)
        })
        .collect()
}

/// Same, for a plan that starts with `HEAD` (so recommendation lines start at 5).
fn rec_diags(recs: &str) -> Vec<(&'static str, usize, usize)> {
    diags(&format!("{HEAD}{recs}"))
}

fn graph_diags(text: &str) -> Vec<(&'static str, usize, usize, String)> {
    let (loaded, mut d) = check_str(Path::new("p.yaml"), "p.yaml", text.to_string());
    if let Some(loaded) = loaded {
        d.extend(crate::graph::PlanGraph::from_depends_on(&loaded).cycles(&loaded));
    }
    d.iter()
        .map(|d| {
            let (l, c) = d.line_col();
            (d.code, l, c, d.message.clone())
        })
        .collect()
}

#[test]
fn valid_plan_loads_with_defaults() {
    let text = format!(
        "{HEAD}  - {{ id: t, action: terminate, instance: i-0a1b2c3d }}\n  - {{ id: h, action: hibernate, instance: i-0a1b2c3d }}\n  - {{ id: r, action: reserve, instance_type: m5.large, count: 1, term: 1y, payment: all-upfront }}\n  - {{ id: s, action: storage, volume: vol-0a1b2c3d, delete: true }}\n"
    );
    let loaded = load_str(Path::new("p.yaml"), "p.yaml", text).unwrap();
    let recs = &loaded.plan.recommendations;
    assert_eq!(
        recs[0].action,
        Action::Terminate(Terminate {
            instance: "i-0a1b2c3d".into(),
            backup: Backup::Image
        })
    );
    assert_eq!(
        recs[1].action,
        Action::Hibernate(Hibernate {
            instance: "i-0a1b2c3d".into(),
            mode: HibernateMode::Hibernate
        })
    );
    let Action::Reserve(r) = &recs[2].action else {
        panic!()
    };
    assert_eq!(r.offering_class, OfferingClass::Standard);
    let Action::Storage(s) = &recs[3].action else {
        panic!()
    };
    assert!(s.delete && s.snapshot && s.to.is_none());
}

#[test]
fn every_error_kind_is_located() {
    let cases: &[Case] = &[
        (
            "yaml syntax",
            "version: 1\nprovider: [sandbox\n",
            &[("plan::yaml-syntax", 2, 11)],
        ),
        (
            "bad indentation",
            "version: 1\nprovider:\n  sandbox: {}\n bad: 1\n",
            &[("plan::yaml-syntax", 4, 2)],
        ),
        (
            "unsupported version",
            "version: 2\nprovider: {}\nrecommendations: []\n",
            &[("plan::version", 1, 10)],
        ),
        (
            "version as string",
            "version: \"1\"\n",
            &[("plan::version", 1, 10)],
        ),
        ("empty file", "", &[("plan::empty", 1, 1)]),
        ("not a mapping", "- a\n", &[("plan::not-a-plan", 1, 1)]),
        (
            "a mapping with no plan key",
            "\npassword: s3cr3t\n",
            &[("plan::not-a-plan", 2, 1)],
        ),
        (
            "not YAML, no plan key",
            "SECRET_TOKEN=hunter2\nfoo: bar\n",
            &[("plan::yaml-syntax", 2, 4)],
        ),
        (
            "unknown top-level key",
            "version: 1\nprovider:\n  sandbox: { seed: a.yaml }\nrecomendations: []\n",
            &[("plan::missing-field", 1, 1), ("plan::unknown-key", 4, 1)],
        ),
        (
            "duplicate key",
            "version: 1\nversion: 1\nprovider: { sandbox: { seed: a } }\nrecommendations: []\n",
            &[("plan::duplicate-key", 2, 1)],
        ),
        (
            "both providers",
            "version: 1\nprovider:\n  sandbox: { seed: a }\n  aws: { region: us-east-1 }\nrecommendations: []\n",
            &[("plan::provider", 4, 3)],
        ),
        (
            "neither provider",
            "version: 1\nprovider: {}\nrecommendations: []\n",
            &[("plan::provider", 2, 11)],
        ),
        (
            "unknown provider key",
            "version: 1\nprovider: { sandbox: { seed: a }, gcp: {} }\nrecommendations: []\n",
            &[("plan::unknown-key", 2, 35)],
        ),
        (
            "bad region",
            "version: 1\nprovider: { aws: { region: east } }\nrecommendations: []\n",
            &[("plan::invalid-value", 2, 28)],
        ),
        (
            "approval of unknown id",
            "version: 1\nprovider: { sandbox: { seed: a } }\napprovals:\n  - { by: a, covers: [ghost] }\nrecommendations: []\n",
            &[("plan::unknown-approval", 4, 23)],
        ),
        (
            "approval by nobody",
            "version: 1\nprovider: { sandbox: { seed: a } }\napprovals:\n  - { by: \"\", covers: [\"*\"] }\n  - { by: \"  \", covers: [\"*\"] }\n  - { by: \"\\u200b\", covers: [\"*\"] }\n  - { by: \"~\", covers: [\"*\"] }\n  - { by: \" - \", covers: [\"*\"] }\nrecommendations: []\n",
            &[
                ("plan::invalid-value", 4, 11),
                ("plan::invalid-value", 5, 11),
                ("plan::invalid-value", 6, 11),
                ("plan::invalid-value", 7, 11),
                ("plan::invalid-value", 8, 11),
            ],
        ),
        (
            "approval missing by",
            "version: 1\nprovider: { sandbox: { seed: a } }\napprovals:\n  - { covers: [\"*\"] }\nrecommendations: []\n",
            &[("plan::missing-field", 4, 5)],
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(diags(text), *want, "{name}");
    }
}

#[test]
fn recommendation_errors_are_located() {
    let cases: &[Case] = &[
        (
            "unknown action",
            "  - id: a\n    action: rightsise\n    instance: i-0a1b2c3d\n",
            &[("plan::unknown-action", 6, 13)],
        ),
        (
            "unknown field",
            "  - id: a\n    action: terminate\n    instance: i-0a1b2c3d\n    bakup: none\n",
            &[("plan::unknown-field", 8, 5)],
        ),
        (
            "missing field",
            "  - id: a\n    action: rightsize\n    instance: i-0a1b2c3d\n",
            &[("plan::missing-field", 6, 13)],
        ),
        (
            "missing id",
            "  - action: terminate\n    instance: i-0a1b2c3d\n",
            &[("plan::missing-field", 5, 5)],
        ),
        (
            "missing action",
            "  - id: a\n    instance: i-0a1b2c3d\n",
            &[("plan::missing-field", 5, 5)],
        ),
        (
            "wrong type",
            "  - id: a\n    action: reserve\n    instance_type: m5.large\n    count: two\n    term: 1y\n    payment: no-upfront\n",
            &[("plan::wrong-type", 8, 12)],
        ),
        (
            "invalid enum value",
            "  - id: a\n    action: reserve\n    instance_type: m5.large\n    count: 2\n    term: 2y\n    payment: no-upfront\n",
            &[("plan::invalid-value", 9, 11)],
        ),
        (
            "zero count",
            "  - { id: a, action: reserve, instance_type: m5.large, count: 0, term: 1y, payment: no-upfront }\n",
            &[("plan::out-of-range", 5, 63)],
        ),
        (
            "invalid id",
            "  - id: Web_1\n    action: terminate\n    instance: i-0a1b2c3d\n",
            &[("plan::invalid-id", 5, 9)],
        ),
        (
            "id not a string",
            "  - id: [a]\n    action: terminate\n    instance: i-0a1b2c3d\n",
            &[("plan::wrong-type", 5, 9)],
        ),
        (
            "duplicate id",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d }\n  - { id: a, action: terminate, instance: i-0a1b2c3e }\n",
            &[("plan::duplicate-id", 6, 11)],
        ),
        (
            "unknown depends_on",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, depends_on: [b] }\n",
            &[("plan::unknown-dependency", 5, 68)],
        ),
        (
            "self dependency",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, depends_on: [a] }\n",
            &[("plan::self-dependency", 5, 68)],
        ),
        (
            "instance id",
            "  - { id: a, action: terminate, instance: i-123 }\n",
            &[("plan::resource-id", 5, 43)],
        ),
        (
            "instance id with uppercase",
            "  - { id: a, action: terminate, instance: i-0A1B2C3D }\n",
            &[("plan::resource-id", 5, 43)],
        ),
        (
            "volume id",
            "  - { id: a, action: storage, volume: i-0a1b2c3d, to: gp3 }\n",
            &[("plan::resource-id", 5, 39)],
        ),
        (
            "snapshot id",
            "  - { id: a, action: config, fix: delete-snapshot, snapshot: snap-xyz }\n",
            &[("plan::resource-id", 5, 62)],
        ),
        (
            "address id",
            "  - { id: a, action: config, fix: release-address, address: eip-0a1b2c3d }\n",
            &[("plan::resource-id", 5, 61)],
        ),
        (
            "instance type",
            "  - { id: a, action: rightsize, instance: i-0a1b2c3d, to: large }\n",
            &[("plan::instance-type", 5, 59)],
        ),
        (
            "storage with both",
            "  - id: a\n    action: storage\n    volume: vol-0a1b2c3d\n    to: gp3\n    delete: true\n",
            &[("plan::storage-mode", 8, 9)],
        ),
        (
            "storage with neither",
            "  - id: a\n    action: storage\n    volume: vol-0a1b2c3d\n",
            &[("plan::storage-mode", 6, 13)],
        ),
        (
            "storage delete false",
            "  - { id: a, action: storage, volume: vol-0a1b2c3d, delete: false }\n",
            &[("plan::storage-mode", 5, 22)],
        ),
        (
            "gp3 iops out of range",
            "  - { id: a, action: storage, volume: vol-0a1b2c3d, to: gp3, iops: 100 }\n",
            &[("plan::out-of-range", 5, 68)],
        ),
        (
            "throughput on io1",
            "  - { id: a, action: storage, volume: vol-0a1b2c3d, to: io1, throughput_mbps: 200 }\n",
            &[("plan::field-conflict", 5, 79)],
        ),
        (
            "snapshot with retype",
            "  - { id: a, action: storage, volume: vol-0a1b2c3d, to: gp3, snapshot: false }\n",
            &[("plan::field-conflict", 5, 62)],
        ),
        (
            "autoscale min > max",
            "  - id: a\n    action: autoscale\n    group: web\n    min: 5\n    max: 2\n",
            &[("plan::autoscale-bounds", 8, 10)],
        ),
        (
            "autoscale desired > max",
            "  - { id: a, action: autoscale, group: web, max: 2, desired: 3 }\n",
            &[("plan::autoscale-bounds", 5, 62)],
        ),
        (
            "autoscale nothing",
            "  - { id: a, action: autoscale, group: web }\n",
            &[("plan::missing-field", 5, 22)],
        ),
        (
            "config wrong target",
            "  - { id: a, action: config, fix: release-address, address: eipalloc-0a1b2c3d, instance: i-0a1b2c3d }\n",
            &[("plan::field-conflict", 5, 80)],
        ),
        (
            "config unknown fix",
            "  - { id: a, action: config, fix: turn-off }\n",
            &[("plan::invalid-value", 5, 35)],
        ),
        (
            "negative savings",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: -3 }\n",
            &[("plan::out-of-range", 5, 76)],
        ),
        (
            "spot price zero",
            "  - { id: a, action: spot, instance: i-0a1b2c3d, max_price_usd_hour: 0 }\n",
            &[("plan::out-of-range", 5, 70)],
        ),
        (
            "savings beyond any bill",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 1.7e308 }\n",
            &[("plan::out-of-range", 5, 76)],
        ),
        (
            "savings just over the bound",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 1000000000.01 }\n",
            &[("plan::out-of-range", 5, 76)],
        ),
        // Non-finite numbers never reach the loader: the YAML reader refuses them.
        (
            "savings infinite",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: .inf }\n",
            &[("plan::yaml-syntax", 5, 76)],
        ),
        (
            "savings negative infinity",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: -.inf }\n",
            &[("plan::yaml-syntax", 5, 76)],
        ),
        (
            "savings not a number",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: .nan }\n",
            &[("plan::yaml-syntax", 5, 76)],
        ),
        (
            "savings as a huge integer",
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 99999999999999999999 }\n",
            &[("plan::out-of-range", 5, 76)],
        ),
        (
            "spot price beyond any price",
            "  - { id: a, action: spot, instance: i-0a1b2c3d, max_price_usd_hour: 1.7e308 }\n",
            &[("plan::out-of-range", 5, 70)],
        ),
        (
            "spot price not a number",
            "  - { id: a, action: spot, instance: i-0a1b2c3d, max_price_usd_hour: .nan }\n",
            &[("plan::yaml-syntax", 5, 70)],
        ),
        (
            "reserve bad zone",
            "  - { id: a, action: reserve, instance_type: m5.large, count: 1, term: 1y, payment: no-upfront, zone: east }\n",
            &[("plan::invalid-value", 5, 103)],
        ),
    ];
    for (name, recs, want) in cases {
        assert_eq!(rec_diags(recs), *want, "{name}");
    }
}

#[test]
fn amounts_up_to_the_bound_load_and_the_error_says_the_bound() {
    let text = format!(
        "{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 1000000000 }}\n  - {{ id: b, action: spot, instance: i-0a1b2c3e, max_price_usd_hour: 100000 }}\n"
    );
    let loaded = load_str(Path::new("p.yaml"), "p.yaml", text).unwrap();
    assert_eq!(
        loaded.plan.recommendations[0].savings_monthly_usd,
        Some(1e9)
    );
    let (_, d) = check_str(
        Path::new("p.yaml"),
        "p.yaml",
        format!(
            "{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d, savings_monthly_usd: 1.7e308 }}\n"
        ),
    );
    assert_eq!(
        d[0].message,
        "`savings_monthly_usd` is too large: at most 1,000,000,000 (USD a month), found 1.7e308"
    );
    assert_eq!(
        d[0].help.as_deref(),
        Some(
            "give `savings_monthly_usd` a number zero or more, at most 1,000,000,000 (USD a month)"
        )
    );
}

#[test]
fn an_approval_names_someone() {
    for by in ["alice@example.com", "7", "\"ö\"", "\" bob \""] {
        let text = format!(
            "version: 1\nprovider: {{ sandbox: {{ seed: a }} }}\napprovals:\n  - {{ by: {by}, covers: [\"*\"] }}\nrecommendations: []\n"
        );
        let loaded = load_str(Path::new("p.yaml"), "p.yaml", text);
        assert!(loaded.is_ok(), "{by}: {:?}", loaded.err());
    }
    let (_, d) = check_str(
        Path::new("p.yaml"),
        "p.yaml",
        "version: 1\nprovider: { sandbox: { seed: a } }\napprovals:\n  - { by: \"~\", covers: [\"*\"] }\nrecommendations: []\n".into(),
    );
    assert_eq!(
        d[0].message,
        "an approval must name who approved it, e.g. alice@example.com"
    );
    assert_eq!(d[0].primary.span.len, 3, "the label is on the `by` value");
}

#[test]
fn files_that_are_not_plans_are_never_quoted() {
    for text in [
        "aws_secret_access_key: AKIAXXXXSECRET\npassword: s3cr3t\n",
        "SECRET_TOKEN=hunter2\n",
        "root:x:0:0:root:/root:/bin/bash\nSECRET_TOKEN=hunter2\n",
        "SECRET_TOKEN=hunter2\nfoo: bar\n",
        "- SECRET_TOKEN=hunter2\n- s3cr3t\n",
        "{ token: hunter2, [\n",
    ] {
        let (loaded, d) = check_str(Path::new("p.yaml"), "p.yaml", text.to_string());
        assert!(loaded.is_none(), "{text}");
        assert_eq!(d.len(), 1, "{text}");
        assert!(d[0].hide_source, "{text}: the lines are not shown");
        for shown in [
            &d[0].message,
            &d[0].primary.text,
            d[0].help.as_ref().unwrap(),
        ] {
            for secret in ["AKIAXXXXSECRET", "s3cr3t", "hunter2", "root:x"] {
                assert!(!shown.contains(secret), "{text}: {shown}");
            }
        }
        assert!(
            d[0].message.starts_with("p.yaml is not a plan file"),
            "{}",
            d[0].message
        );
    }
    // A plan, even a broken one, is shown where it goes wrong.
    for text in [
        "version: 1\nprovider:\n  sandbox: { seed: a.yaml\nrecommendations: []\n",
        "recommendations: []\npassword: s3cr3t\n",
        "version: 2\n",
    ] {
        let (_, d) = check_str(Path::new("p.yaml"), "p.yaml", text.to_string());
        assert!(!d.is_empty() && !d[0].hide_source, "{text}: {d:?}");
    }
}

#[test]
fn all_errors_are_reported_at_once() {
    let got = rec_diags(
        "  - { id: a, action: terminate, instance: i-1 }\n  - { id: b, action: rightsize, instance: i-0a1b2c3d, to: big }\n  - { id: c, action: hibernate, instance: i-0a1b2c3d, mode: sleep }\n",
    );
    assert_eq!(
        got,
        [
            ("plan::resource-id", 5, 43),
            ("plan::instance-type", 6, 59),
            ("plan::invalid-value", 7, 61)
        ]
    );
}

#[test]
fn a_bad_recommendation_does_not_cascade() {
    // `b` depends on `a`, whose instance id is bad: only the id is reported.
    let got = rec_diags(
        "  - { id: a, action: terminate, instance: i-1 }\n  - { id: b, action: terminate, instance: i-0a1b2c3d, depends_on: [a] }\n",
    );
    assert_eq!(got, [("plan::resource-id", 5, 43)]);
}

#[test]
fn suggestions_in_help() {
    let (_, d) = check_str(
        Path::new("p.yaml"),
        "p.yaml",
        format!(
            "{HEAD}  - {{ id: a, action: terminate, instnace: i-0a1b2c3d }}\n  - {{ id: b, action: rightsise }}\n"
        ),
    );
    let helps: Vec<String> = d.iter().filter_map(|d| d.help.clone()).collect();
    assert!(
        helps.iter().any(|h| h.contains("did you mean `instance`?")),
        "{helps:?}"
    );
    assert!(
        helps
            .iter()
            .any(|h| h.contains("did you mean `rightsize`?")),
        "{helps:?}"
    );
}

#[test]
fn cycles_are_named_in_order() {
    let got = graph_diags(&format!(
        "{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d, depends_on: [b] }}\n  - {{ id: b, action: terminate, instance: i-0a1b2c3e, depends_on: [c] }}\n  - {{ id: c, action: terminate, instance: i-0a1b2c3f, depends_on: [a] }}\n  - {{ id: d, action: terminate, instance: i-0a1b2c40 }}\n"
    ));
    assert_eq!(
        got,
        [(
            "plan::cycle",
            5,
            68,
            "dependency cycle: a → b → c → a".to_string()
        )]
    );
}

#[test]
fn two_cycles_two_diagnostics() {
    let got = graph_diags(&format!(
        "{HEAD}  - {{ id: a, action: terminate, instance: i-0a1b2c3d, depends_on: [b] }}\n  - {{ id: b, action: terminate, instance: i-0a1b2c3e, depends_on: [a] }}\n  - {{ id: c, action: terminate, instance: i-0a1b2c3f, depends_on: [d] }}\n  - {{ id: d, action: terminate, instance: i-0a1b2c40, depends_on: [c] }}\n"
    ));
    let messages: Vec<&str> = got.iter().map(|g| g.3.as_str()).collect();
    assert_eq!(
        messages,
        ["dependency cycle: a → b → a", "dependency cycle: c → d → c"]
    );
}

#[test]
fn yes_and_no_are_strings_not_booleans() {
    // YAML 1.1 would read `n` as false; plan keys and values are YAML 1.2.
    let got = rec_diags("  - { id: a, action: hibernate, instance: i-0a1b2c3d, mode: no }\n");
    assert_eq!(got, [("plan::invalid-value", 5, 61)]);
}
