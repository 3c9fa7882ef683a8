use super::*;

fn fixture(name: &str) -> (String, String) {
    let path = format!(
        "{}/tests/fixtures/import/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    (name.to_string(), std::fs::read_to_string(path).unwrap())
}

fn coh(files: &[&str], choices: &Choices) -> Parsed {
    let inputs: Vec<_> = files.iter().map(|f| fixture(f)).collect();
    parse(Service::CostOptimizationHub, &inputs, choices).unwrap()
}

fn co(files: &[&str], choices: &Choices) -> Parsed {
    let inputs: Vec<_> = files.iter().map(|f| fixture(f)).collect();
    parse(Service::ComputeOptimizer, &inputs, choices).unwrap()
}

fn acts(p: &Parsed) -> Vec<Act> {
    let mut v: Vec<Act> = p.imported.iter().map(|r| r.act.clone()).collect();
    v.sort_by_key(|a| format!("{a:?}"));
    v
}

#[test]
fn cost_optimization_hub_maps_every_action_and_counts_every_skip() {
    let p = coh(
        &[
            "coh-list.json",
            "coh-get-volume.json",
            "coh-get-reservation.json",
        ],
        &Choices::default(),
    );
    let a = acts(&p);
    assert!(a.contains(&Act::Rightsize {
        instance: "i-0a1b2c3d4e5f60001".into(),
        to: "m5.large".into()
    }));
    assert!(a.contains(&Act::Stop {
        instance: "i-0a1b2c3d4e5f60002".into()
    }));
    assert!(a.contains(&Act::DeleteVolume {
        volume: "vol-0a1b2c3d4e5f60009".into()
    }));
    assert!(a.contains(&Act::Retype {
        volume: "vol-0a1b2c3d4e5f60001".into(),
        to: "gp3".into(),
        iops: Some(3000),
        throughput: Some(125)
    }));
    assert!(a.contains(&Act::Reserve {
        instance_type: "m5.large".into(),
        count: 1,
        term: "1y",
        payment: "no-upfront",
        class: "standard"
    }));
    assert_eq!(a.len(), 5);
    assert_eq!(
        skipped_summary(&p.skipped).unwrap(),
        "skipped 4: Ec2AutoScalingGroup 1, Ec2Instance 1, LambdaFunction 1, PurchaseSavingsPlans 1"
    );
    let graviton = p.skipped.iter().find(|s| s.kind == "Ec2Instance").unwrap();
    assert!(
        graviton.why.contains("changes the CPU architecture"),
        "{graviton:?}"
    );
    let web = p
        .imported
        .iter()
        .find(|r| matches!(r.act, Act::Rightsize { .. }))
        .unwrap();
    assert_eq!(web.name.as_deref(), Some("web-1"));
    assert_eq!(web.savings, 70.08);
    assert_eq!(web.effort, Some(Effort::Medium));
    assert_eq!(web.restart_needed, Some(true));
    assert_eq!(
        web.source.refreshed_at.as_deref(),
        Some("2026-11-26T06:12:45Z")
    );
    assert_eq!(web.source.assumed["type"], "m5.xlarge");
    assert!(
        web.reason.contains("Rightsize m5.xlarge → m5.large"),
        "{}",
        web.reason
    );
    // Without get-recommendation's details, what needs them is skipped, saying so.
    let p = coh(&["coh-list.json"], &Choices::default());
    assert_eq!(p.imported.len(), 3);
    assert!(
        p.skipped
            .iter()
            .any(|s| s.why.contains("only in `get-recommendation`'s output"))
    );
    // Stop becomes terminate when asked.
    let p = coh(
        &["coh-list.json"],
        &Choices {
            terminate_idle: true,
            ..Choices::default()
        },
    );
    assert!(acts(&p).contains(&Act::Terminate {
        instance: "i-0a1b2c3d4e5f60002".into()
    }));
}

#[test]
fn compute_optimizer_follows_the_chosen_option_and_skips_what_pare_cannot_do() {
    let files = ["co-ec2.json", "co-ebs.json", "co-asg.json", "co-idle.json"];
    let p = co(&files, &Choices::default());
    let a = acts(&p);
    assert!(a.contains(&Act::Rightsize {
        instance: "i-0a1b2c3d4e5f60001".into(),
        to: "t3.large".into()
    }));
    assert!(a.contains(&Act::Retype {
        volume: "vol-0a1b2c3d4e5f60001".into(),
        to: "gp3".into(),
        iops: Some(3000),
        throughput: Some(125)
    }));
    assert!(a.contains(&Act::Autoscale {
        group: "web-asg".into(),
        min: None,
        max: None,
        desired: Some(2)
    }));
    assert!(a.contains(&Act::Stop {
        instance: "i-0a1b2c3d4e5f60002".into()
    }));
    assert!(a.contains(&Act::DeleteVolume {
        volume: "vol-0a1b2c3d4e5f60009".into()
    }));
    assert_eq!(a.len(), 5);
    let why = |kind: &str| {
        p.skipped
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.why.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        why("Ec2Instance")
            .iter()
            .any(|w| w.contains("c5.2xlarge → c7g.xlarge changes the CPU architecture"))
    );
    assert!(
        why("Ec2Instance")
            .iter()
            .any(|w| w.contains("finding Optimized"))
    );
    assert!(why("Ec2AutoScalingGroup")[0].contains("instance type"));
    assert_eq!(why("RDSDBInstance").len(), 1);
    // The lowest-risk option instead of rank 1.
    let p = co(
        &files,
        &Choices {
            lowest_risk: true,
            ..Choices::default()
        },
    );
    assert!(acts(&p).contains(&Act::Rightsize {
        instance: "i-0a1b2c3d4e5f60001".into(),
        to: "m5.large".into()
    }));
    let web = p
        .imported
        .iter()
        .find(|r| matches!(r.act, Act::Rightsize { .. }))
        .unwrap();
    assert_eq!(web.savings, 70.08, "after discounts");
    assert_eq!(web.performance_risk, Some(1.0));
    assert_eq!(web.region, "us-east-1");
    assert_eq!(web.account, "111122223333");
    let asg = p
        .imported
        .iter()
        .find(|r| matches!(r.act, Act::Autoscale { .. }))
        .unwrap();
    assert_eq!(asg.source.assumed["desired"], 4);
}

#[test]
fn a_file_of_the_other_service_is_named() {
    let e = parse(
        Service::ComputeOptimizer,
        &[fixture("coh-list.json")],
        &Choices::default(),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("use `pare import cost-optimization-hub`"),
        "{e:?}"
    );
    let e = parse(
        Service::CostOptimizationHub,
        &[fixture("co-ec2.json")],
        &Choices::default(),
    )
    .unwrap_err();
    assert!(
        e.message.contains("use `pare import compute-optimizer`"),
        "{e:?}"
    );
    let e = parse(
        Service::CostOptimizationHub,
        &[(
            "plan.yaml".into(),
            "version: 1\nrecommendations: []\n".into(),
        )],
        &Choices::default(),
    )
    .unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("plan.yaml is not JSON"), "{e:?}");
}

#[test]
fn filters_and_groups() {
    let p = co(
        &["co-ec2.json", "co-ebs.json", "co-asg.json", "co-idle.json"],
        &Choices::default(),
    );
    let f = Filters {
        min_savings: Some(100.0),
        ..Filters::default()
    };
    let (groups, filtered) = select(p, &f);
    assert_eq!(groups.len(), 1);
    assert!(groups[0].recs.iter().all(|r| r.savings >= 100.0));
    assert_eq!(filtered["--min-savings"], 2);
    let p = co(&["co-ec2.json", "co-idle.json"], &Choices::default());
    let f = Filters {
        actions: vec!["hibernate".into()],
        tags: vec![("Name".into(), "build-runner-2".into())],
        ..Filters::default()
    };
    let (groups, _) = select(p, &f);
    assert_eq!(groups[0].recs.len(), 1);
    let p = co(
        &["co-ec2.json"],
        &Choices {
            lowest_risk: true,
            ..Choices::default()
        },
    );
    let f = Filters {
        max_effort: Some(Effort::VeryLow),
        max_performance_risk: Some(0.5),
        ..Filters::default()
    };
    let (groups, filtered) = select(p, &f);
    assert!(groups.is_empty());
    assert_eq!(filtered["--max-performance-risk"], 1);
}

#[test]
fn timestamps_of_either_cli_version() {
    let v = serde_json::json!({"a": "2026-11-26T06:12:45.381000+00:00", "b": 1764137565.381, "c": "2026-11-26T08:12:45+02:00", "d": "soon"});
    assert_eq!(
        timestamp(&v, &["a"]).as_deref(),
        Some("2026-11-26T06:12:45Z")
    );
    assert_eq!(
        timestamp(&v, &["b"]).as_deref(),
        Some("2025-11-26T06:12:45Z")
    );
    assert_eq!(
        timestamp(&v, &["c"]).as_deref(),
        Some("2026-11-26T06:12:45Z")
    );
    assert_eq!(timestamp(&v, &["d"]), None);
}

#[test]
fn graviton_is_told_apart() {
    for t in [
        "m6g.large",
        "c7gn.xlarge",
        "t4g.micro",
        "r8gd.2xlarge",
        "a1.large",
        "x2gd.xlarge",
    ] {
        assert!(coh::arm(t), "{t}");
    }
    for t in [
        "m5.large",
        "g4dn.xlarge",
        "c6i.large",
        "inf2.xlarge",
        "m7i-flex.large",
    ] {
        assert!(!coh::arm(t), "{t}");
    }
}

#[test]
fn the_plan_written_loads_is_the_same_twice_and_keeps_what_was_written_by_hand() {
    let p = coh(
        &[
            "coh-list.json",
            "coh-get-volume.json",
            "coh-get-reservation.json",
        ],
        &Choices::default(),
    );
    let (groups, _) = select(p, &Filters::default());
    let once = render(&groups[0], None).unwrap();
    let twice = render(&groups[0], None).unwrap();
    assert_eq!(once.text, twice.text);
    assert!(once.text.starts_with("# yaml-language-server: $schema="));
    let loaded =
        crate::plan::load_str(std::path::Path::new("p.yaml"), "p.yaml", once.text.clone()).unwrap();
    assert_eq!(loaded.plan.recommendations.len(), 5);
    assert!(
        loaded
            .plan
            .recommendations
            .iter()
            .all(|r| r.source.is_some())
    );

    // Someone names the plan, approves, writes a recommendation by hand and
    // edits an imported one; the next import keeps all of theirs.
    let edited = once
        .text
        .replace("name: \"imported-111122223333-us-east-1\"", "name: q4-from-aws")
        .replace(
            "recommendations:\n",
            "approvals:\n  - { by: lead@example.com, covers: [\"*\"] }\nrecommendations:\n  # mine\n  - { id: park-api, action: hibernate, instance: i-0a1b2c3d4e5f60005, mode: stop }\n",
        )
        .replace("savings_monthly_usd: 280.32", "savings_monthly_usd: 1.00");
    let p = coh(
        &["coh-list.json", "coh-get-volume.json"],
        &Choices::default(),
    );
    let (groups, _) = select(p, &Filters::default());
    let again = render(&groups[0], Some(("p.yaml", &edited))).unwrap();
    assert!(again.text.contains("name: q4-from-aws"));
    assert!(again.text.contains("  # mine\n  - { id: park-api,"));
    assert!(again.text.contains("lead@example.com"));
    assert_eq!(again.kept, 1);
    assert_eq!(
        again.removed,
        ["reserve-m5-large"],
        "its details were not given this time"
    );
    assert_eq!(
        again.changed,
        ["hibernate-build-runner-2-i-0a1b2c3d4e5f60002"],
        "the edit is undone"
    );
    assert!(again.added.is_empty());
    assert_eq!(again.text.matches(write::MARKER).count(), 1);
    assert!(again.text.contains(&write::marker("111122223333")));
    // And once more: nothing changes.
    let p = coh(
        &["coh-list.json", "coh-get-volume.json"],
        &Choices::default(),
    );
    let (groups, _) = select(p, &Filters::default());
    let third = render(&groups[0], Some(("p.yaml", &again.text))).unwrap();
    assert_eq!(third.text, again.text);
    assert!(third.added.is_empty() && third.changed.is_empty() && third.removed.is_empty());
}

#[test]
fn an_existing_plan_that_cannot_take_the_import_is_refused() {
    let p = coh(&["coh-list.json"], &Choices::default());
    let (groups, _) = select(p, &Filters::default());
    let sandbox = "version: 1\nprovider: { sandbox: { seed: a.yaml } }\nrecommendations: []\n";
    assert!(
        render(&groups[0], Some(("p.yaml", sandbox)))
            .unwrap_err()
            .contains("is not an AWS plan for us-east-1")
    );
    let other = "version: 1\nprovider: { aws: { region: eu-west-1 } }\nrecommendations: []\n";
    assert!(
        render(&groups[0], Some(("p.yaml", other)))
            .unwrap_err()
            .contains("is not an AWS plan for us-east-1")
    );
    let flow = "version: 1\nprovider: { aws: { region: us-east-1 } }\nrecommendations: []\n";
    assert!(
        render(&groups[0], Some(("p.yaml", flow)))
            .unwrap_err()
            .contains("block list")
    );
    let order = "version: 1\nrecommendations:\n  - { id: a, action: terminate, instance: i-0a1b2c3d4e5f60001 }\nprovider: { aws: { region: us-east-1 } }\n";
    assert!(
        render(&groups[0], Some(("p.yaml", order)))
            .unwrap_err()
            .contains("must be the last key")
    );
    let broken = "version: 1\nrecommendations: {\n";
    assert!(
        render(&groups[0], Some(("p.yaml", broken)))
            .unwrap_err()
            .contains("is not a valid plan")
    );
}

fn one_item(edit: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let (_, text) = fixture("coh-list.json");
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut item = doc["items"][2].clone(); // the volume deletion
    edit(&mut item);
    doc["items"] = serde_json::json!([item]);
    doc
}

fn parse_one(doc: &serde_json::Value) -> Parsed {
    parse(
        Service::CostOptimizationHub,
        &[("in.json".into(), doc.to_string())],
        &Choices::default(),
    )
    .unwrap()
}

#[test]
fn an_account_id_that_is_not_twelve_digits_is_skipped_and_never_written() {
    let doc = one_item(|i| {
        i["accountId"] =
            "111122223333\napprovals:\n  - by: mallory@example.com\n    covers: [\"*\"]\n#".into();
        i["resourceArn"] = serde_json::Value::Null;
    });
    let p = parse_one(&doc);
    assert!(p.imported.is_empty());
    assert!(
        p.skipped[0].why.contains("is not 12 digits"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn savings_that_are_missing_negative_or_absurd_are_skipped() {
    for (value, why) in [
        (serde_json::json!(-20.0), "it costs more than it saves"),
        (serde_json::json!("NaN"), "not given"),
        (serde_json::Value::Null, "not given"),
        (serde_json::json!(1e300), "implausible"),
    ] {
        let doc = one_item(|i| i["estimatedMonthlySavings"] = value.clone());
        let p = parse_one(&doc);
        assert!(p.imported.is_empty(), "{value}");
        assert!(p.skipped[0].why.contains(why), "{value}: {:?}", p.skipped);
    }
}

#[test]
fn one_recommendation_per_resource_whatever_the_order() {
    let files = ["coh-list.json", "coh-get-volume.json"];
    let forward: Vec<_> = files.iter().map(|f| fixture(f)).collect();
    let backward: Vec<_> = files.iter().rev().map(|f| fixture(f)).collect();
    // The same file twice is the same recommendations, once.
    let twice: Vec<_> = ["coh-list.json", "coh-list.json"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    let render_of = |inputs: &[(String, String)]| {
        let p = parse(Service::CostOptimizationHub, inputs, &Choices::default()).unwrap();
        let (groups, _) = select(p, &Filters::default());
        render(&groups[0], None).unwrap().text
    };
    assert_eq!(render_of(&forward), render_of(&backward));
    assert_eq!(render_of(&twice), render_of(&twice[..1]));
    // A stop and a rightsize of one instance: the one that saves more.
    let p = co(&["co-ec2.json", "co-idle.json"], &Choices::default());
    let web2: Vec<_> = p
        .imported
        .iter()
        .filter(|r| r.act.resource() == "i-0a1b2c3d4e5f60002")
        .collect();
    assert_eq!(web2.len(), 1);
    // The same id saying two things is refused.
    let (_, text) = fixture("coh-list.json");
    let changed = text.replacen("\"m5.large\"", "\"t3.medium\"", 1);
    let e = parse(
        Service::CostOptimizationHub,
        &[fixture("coh-list.json"), ("b.json".into(), changed)],
        &Choices::default(),
    )
    .unwrap_err();
    assert!(e.message.contains("is given twice, differently"), "{e:?}");
}

#[test]
fn a_resource_id_that_disagrees_with_its_arn_is_skipped() {
    let doc = one_item(|i| i["resourceId"] = "vol-0a1b2c3d4e5f60001".into());
    let p = parse_one(&doc);
    assert!(
        p.skipped[0].why.contains("name different resources"),
        "{:?}",
        p.skipped
    );
}

#[test]
fn hidden_characters_are_escaped_in_the_plan() {
    let doc = one_item(|i| {
        i["recommendationId"] = "scratch\u{202e}txt.exe\u{2028}x\u{85}".into();
    });
    let (groups, _) = select(parse_one(&doc), &Filters::default());
    let text = render(&groups[0], None).unwrap().text;
    assert!(!text.contains('\u{202e}') && !text.contains('\u{2028}') && !text.contains('\u{85}'));
    assert!(text.contains("\\u202e"), "{text}");
}

#[test]
fn an_import_never_loses_what_follows_it_nor_mixes_accounts() {
    let p = coh(&["coh-list.json"], &Choices::default());
    let (groups, _) = select(p, &Filters::default());
    let first = render(&groups[0], None).unwrap().text;
    let appended = format!("{first}approvals:\n  - by: alice@example.com\n    covers: [\"*\"]\n");
    let e = render(&groups[0], Some(("p.yaml", &appended))).unwrap_err();
    assert!(
        e.contains("`approvals` follows the imported recommendations"),
        "{e}"
    );
    let other = first.replace(
        &write::marker("111122223333"),
        &write::marker("444455556666"),
    );
    let e = render(&groups[0], Some(("p.yaml", &other))).unwrap_err();
    assert!(
        e.contains("imported for account 444455556666, not 111122223333"),
        "{e}"
    );
    // A flow-style recommendation added below is counted as removed.
    let flow =
        format!("{first}  - {{ id: hand, action: terminate, instance: i-0a1b2c3d4e5f60003 }}\n");
    let again = render(&groups[0], Some(("p.yaml", &flow))).unwrap();
    assert_eq!(again.removed, ["hand"]);
    assert!(again.changed.is_empty(), "{:?}", again.changed);
}
