//! `pare import`: AWS's recommendations (as the AWS CLI prints them) become
//! a plan file that validates, plans, applies and rolls back; `pare plan`
//! checks what an imported recommendation assumed.

use super::harness::{Sandbox, output, quickstart_account};
use super::{pare, root};
use std::path::Path;

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/import")
        .join(name)
        .display()
        .to_string()
}

fn import(dir: &Path, args: &[&str]) -> (i32, String, String) {
    output(pare(dir).arg("import").args(args))
}

/// An imported plan, made to run on the sandbox holding those resources
/// (the quickstart account is the fixtures' account).
fn on_sandbox(plan: &str) -> String {
    let out = plan.replace(
        "provider:\n  aws: { region: us-east-1 }",
        "provider:\n  sandbox: { seed: account.yaml }",
    );
    assert_ne!(out, plan);
    out.replace(
        "recommendations:\n",
        "approvals: [ { by: lead@example.com, covers: [\"*\"] } ]\nrecommendations:\n",
    )
}

#[test]
fn cost_optimization_hub_output_becomes_a_valid_plan_byte_for_byte_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "cost-optimization-hub",
        "--input",
        &fixture("coh-list.json"),
        "--input",
        &fixture("coh-get-volume.json"),
        "--input",
        &fixture("coh-get-reservation.json"),
        "--out",
        "plan.yaml",
    ];
    let (code, _, err) = import(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("skipped 4: Ec2AutoScalingGroup 1, Ec2Instance 1, LambdaFunction 1, PurchaseSavingsPlans 1"),
        "{err}"
    );
    assert!(err.contains("plan.yaml: 5 recommendations for account 111122223333 in us-east-1 (hibernate 1, reserve 1, rightsize 1, storage 2), $485.66/month"), "{err}");
    let first = std::fs::read(dir.path().join("plan.yaml")).unwrap();
    let (code, out, err) = output(pare(dir.path()).args(["validate", "plan.yaml"]));
    assert_eq!(code, 0, "{out}{err}");
    // Again, into the same file: the same bytes, and nothing changed.
    let (code, _, err) = import(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("added 0, changed 0, removed 0; kept 0 written by hand"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("plan.yaml")).unwrap(), first);
    // To stdout, the same plan.
    let (code, out, _) = import(dir.path(), &args[..7]);
    assert_eq!(code, 0);
    assert_eq!(out.as_bytes(), first.as_slice());
}

#[test]
fn compute_optimizer_output_plans_applies_and_rolls_back_on_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = import(
        dir.path(),
        &[
            "compute-optimizer",
            "--input",
            &fixture("co-ec2.json"),
            "--input",
            &fixture("co-ebs.json"),
            "--input",
            &fixture("co-asg.json"),
            "--input",
            &fixture("co-idle.json"),
            "--option",
            "lowest-risk",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("skipped 4: Ec2AutoScalingGroup 1, Ec2Instance 2, RDSDBInstance 1"),
        "{err}"
    );
    let s = Sandbox::new(&on_sandbox(&out), &quickstart_account());
    let (code, preview, err) = s.run(&["plan", "plan.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        preview.contains("Summary: 5 recommendations: 5 to change, 0 no change, 0 blocked"),
        "{preview}"
    );
    let before = s.account();
    let (code, _, err) = s.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{err}");
    let after = s.account();
    assert_eq!(
        after.instances["i-0a1b2c3d4e5f60001"].instance_type,
        "m5.large"
    );
    // The gp3 retype's undo waits for AWS's six hours.
    let (code, _, err) = s.run_at(&["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    let back = s.account();
    assert_eq!(
        back.instances["i-0a1b2c3d4e5f60001"].instance_type,
        "m5.xlarge"
    );
    assert_eq!(back.auto_scaling_groups, before.auto_scaling_groups);
}

#[test]
fn plan_blocks_a_recommendation_whose_resource_changed_and_flags_an_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = import(
        dir.path(),
        &[
            "compute-optimizer",
            "--input",
            &fixture("co-ec2.json"),
            "--option",
            "lowest-risk",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // Since it was measured, someone resized web-1 by hand.
    let account = quickstart_account().replacen("type: m5.xlarge", "type: m5.2xlarge", 1);
    let s = Sandbox::new(&on_sandbox(&out), &account);
    let (code, preview, err) = s.run(&["plan", "plan.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        preview.contains("compute-optimizer measured i-0a1b2c3d4e5f60001 with type m5.xlarge; it has type m5.2xlarge now"),
        "{preview}"
    );
    assert!(preview.contains("1 blocked"), "{preview}");
    let (code, _, err) = s.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");

    // Refreshed 2026-11-26; the tests' clock says 2026-11-27, then 20 days on.
    let s = Sandbox::new(&on_sandbox(&out), &quickstart_account());
    let (_, preview, _) = s.run(&["plan", "plan.yaml"]);
    assert!(!preview.contains("days old"), "{preview}");
    let (_, preview, _) = s.run_at(&["plan", "plan.yaml"], 20 * 24);
    assert!(
        preview.contains("the recommendation is 21 days old (refreshed 2026-11-26T06:12:45Z), past max_recommendation_age_days = 14"),
        "{preview}"
    );
    s.write("pare.toml", "[policy]\nmax_recommendation_age_days = 30\n");
    let (_, preview, _) = s.run_at(&["plan", "plan.yaml"], 20 * 24);
    assert!(!preview.contains("days old"), "{preview}");
}

#[test]
fn a_file_that_is_not_the_services_output_is_refused_without_quoting_it() {
    let dir = super::workdir(&[
        (".env", "AWS_SECRET_ACCESS_KEY=hunter2-very-secret\n"),
        (
            "creds.json",
            "{\"SecretAccessKey\": \"hunter2-very-secret\"}",
        ),
    ]);
    for file in [".env", "creds.json"] {
        let (code, out, err) = import(dir.path(), &["cost-optimization-hub", "--input", file]);
        assert_eq!(code, 1, "{file}");
        assert!(err.contains("import::unrecognised"), "{err}");
        assert!(err.contains("list-recommendations"), "{err}");
        assert!(
            !err.contains("hunter2") && !out.contains("hunter2"),
            "{err}"
        );
    }
    let (code, _, err) = import(
        dir.path(),
        &["compute-optimizer", "--input", "/proc/self/environ"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /proc/self/environ"), "{err}");
    let (code, _, err) = import(
        dir.path(),
        &["compute-optimizer", "--input", &fixture("coh-list.json")],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("use `pare import cost-optimization-hub`"),
        "{err}"
    );
}

#[test]
fn several_accounts_need_a_choice_or_a_plan_each() {
    let text = std::fs::read_to_string(fixture("co-idle.json")).unwrap();
    // The same recommendations, for a second account in another region.
    let other = text
        .replace("111122223333", "444455556666")
        .replace("us-east-1", "eu-west-1");
    let dir = super::workdir(&[("a.json", &text), ("b.json", &other)]);
    let args = [
        "compute-optimizer",
        "--input",
        "a.json",
        "--input",
        "b.json",
    ];
    let (code, _, err) = import(dir.path(), &args);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "the input holds 2: 111122223333 in us-east-1 (2), 444455556666 in eu-west-1 (2)"
        ),
        "{err}"
    );
    let (code, out, err) = import(
        dir.path(),
        &[&args[..], &["--account", "444455556666"]].concat(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aws: { region: eu-west-1 }"), "{out}");
    let (code, _, err) = import(dir.path(), &[&args[..], &["--out-dir", "plans"]].concat());
    assert_eq!(code, 0, "{err}");
    for f in [
        "plans/111122223333-us-east-1.yaml",
        "plans/444455556666-eu-west-1.yaml",
    ] {
        let (code, out, err) = output(pare(dir.path()).args(["validate", f]));
        assert_eq!(code, 0, "{f}: {out}{err}");
    }
}

#[test]
fn filters_that_cannot_apply_and_hand_edited_sources_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let coh = fixture("coh-list.json");
    let co = fixture("co-ec2.json");
    for (args, why) in [
        (
            vec![
                "compute-optimizer",
                "--input",
                &co,
                "--max-performance-risk",
                "NaN",
            ],
            "from 0 to 4",
        ),
        (
            vec![
                "compute-optimizer",
                "--input",
                &co,
                "--restart-needed",
                "false",
            ],
            "are Cost Optimization Hub's",
        ),
        (
            vec![
                "cost-optimization-hub",
                "--input",
                &coh,
                "--max-performance-risk",
                "1",
            ],
            "are Compute Optimizer's",
        ),
        (
            vec![
                "cost-optimization-hub",
                "--input",
                &coh,
                "--account",
                "1111-2222-3333",
            ],
            "is not an account id",
        ),
        (
            vec![
                "cost-optimization-hub",
                "--input",
                &coh,
                "--region",
                "US-EAST-1",
            ],
            "is not a region name",
        ),
    ] {
        let (code, _, err) = import(dir.path(), &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    // A source block edited by hand: located errors with help.
    let plan = "version: 1
provider: { aws: { region: us-east-1 } }
recommendations:
  - id: a
    action: terminate
    instance: i-0a1b2c3d4e5f60001
    source:
      service: cost-optimization-hub
      recommendation_id: x
      refreshed_at: \"2026-02-30T00:00:00Z\"
      assumed: { desired: \"4\", type: 5, colour: red }
";
    let dir = super::workdir(&[("plan.yaml", plan)]);
    let (code, _, err) = output(pare(dir.path()).args(["validate", "plan.yaml"]));
    assert_eq!(code, 1);
    for want in [
        "plan.yaml:10:21",
        "is not an RFC 3339 time",
        "`desired` must be a whole number from 0",
        "`type` must be a name such as `m5.xlarge` or `gp2`",
        "`assumed` takes: type, size_gb",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn a_recommendation_without_a_refresh_time_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("co-ebs.json"))
        .unwrap()
        .replace(
            "\"lastRefreshTimestamp\": \"2026-11-26T06:12:45.381000+00:00\",",
            "",
        );
    std::fs::write(dir.path().join("ebs.json"), text).unwrap();
    let (code, out, err) = import(dir.path(), &["compute-optimizer", "--input", "ebs.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("refreshed_at"), "{out}");
    let s = Sandbox::new(&on_sandbox(&out), &quickstart_account());
    let (_, preview, _) = s.run(&["plan", "plan.yaml"]);
    assert!(
        preview.contains("the recommendation's age is unknown"),
        "{preview}"
    );
}

/// A loopback stand-in for Cost Optimization Hub: answers by `X-Amz-Target`.
#[cfg(feature = "aws")]
fn fake_hub(with_reservation: bool) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let epoch = |mut v: serde_json::Value| {
        v["lastRefreshTimestamp"] = serde_json::json!(1764137565.381);
        v
    };
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("coh-list.json")).unwrap()).unwrap();
    let items: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .map(epoch)
        .collect();
    let list = serde_json::json!({ "items": items }).to_string();
    let detail: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("coh-get-volume.json")).unwrap())
            .unwrap();
    let detail = epoch(detail).to_string();
    let reservation: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("coh-get-reservation.json")).unwrap(),
    )
    .unwrap();
    let reservation = epoch(reservation).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut target, mut length) = (String::new(), 0usize);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.trim().split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "x-amz-target" => target = v.trim().to_string(),
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let (status, answer) = match target.as_str() {
                "CostOptimizationHubService.ListRecommendations" => (200, list.clone()),
                "CostOptimizationHubService.GetRecommendation"
                    if with_reservation && String::from_utf8_lossy(&body).contains("X3JpX201") =>
                {
                    (200, reservation.clone())
                }
                "CostOptimizationHubService.GetRecommendation" if String::from_utf8_lossy(&body).contains("X2Vic191cGdyYWRl") => (200, detail.clone()),
                _ => (400, "{\"__type\":\"ResourceNotFoundException\",\"message\":\"no such recommendation\"}".to_string()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// `pare import cost-optimization-hub` calling the stand-in at `url`.
#[cfg(feature = "aws")]
fn from_hub(dir: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = pare(dir);
    cmd.args(["import", "cost-optimization-hub", "--endpoint-url", url])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    output(&mut cmd)
}

#[cfg(feature = "aws")]
#[test]
fn without_input_pare_calls_cost_optimization_hub_itself() {
    let url = fake_hub(false);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = from_hub(dir.path(), &url, &["--out", "plan.yaml"]);
    // The reservation's details could not be read: the whole import stops,
    // naming the call, rather than write a plan without it unsaid.
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("Cost Optimization Hub's GetRecommendation failed"),
        "{err}"
    );
    assert!(!dir.path().join("plan.yaml").exists());
}

#[cfg(feature = "aws")]
#[test]
fn the_plan_from_the_service_is_the_plan_from_its_files() {
    let url = fake_hub(true);
    let dir = tempfile::tempdir().unwrap();
    let (code, called, err) = from_hub(dir.path(), &url, &[]);
    assert_eq!(code, 0, "{err}");
    let (code, files, err) = import(
        dir.path(),
        &[
            "cost-optimization-hub",
            "--input",
            &fixture("coh-list.json"),
            "--input",
            &fixture("coh-get-volume.json"),
            "--input",
            &fixture("coh-get-reservation.json"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The API gives seconds since the epoch (a year earlier in the fake),
    // the CLI prints ISO 8601: otherwise the same plan.
    assert_eq!(
        called.replace("2025-11-26T06:12:45Z", "2026-11-26T06:12:45Z"),
        files
    );
}

#[test]
fn compute_optimizers_csv_export_becomes_the_same_plan_as_its_json() {
    let dir = tempfile::tempdir().unwrap();
    for option in ["rank", "lowest-risk"] {
        let (code, from_json, err) = import(
            dir.path(),
            &[
                "compute-optimizer",
                "--input",
                &fixture("co-ec2.json"),
                "--option",
                option,
            ],
        );
        assert_eq!(code, 0, "{err}");
        let (code, from_csv, err) = import(
            dir.path(),
            &[
                "compute-optimizer",
                "--input",
                &fixture("co-ec2.csv"),
                "--option",
                option,
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(from_csv, from_json, "{option}");
        // The Graviton option and the optimised instance are skipped, saying why.
        assert!(err.contains("skipped 2: Ec2Instance 2"), "{err}");
        assert!(err.contains("changes the CPU architecture"), "{err}");
    }
}

#[test]
fn a_csv_that_is_not_the_ec2_export_is_refused_where_it_is_wrong() {
    let header = std::fs::read_to_string(fixture("co-ec2.csv")).unwrap();
    let header = header.lines().next().unwrap().to_string();
    let width = header.split(',').count();
    let short_row = format!(
        "{header}\r\n111122223333,arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f60001\r\n"
    );
    let open_quote = format!("{header}\r\n\"111122223333{}\r\n", ",".repeat(width - 1));
    let dir = super::workdir(&[
        (
            "ebs.csv",
            "accountId,volumeArn,finding,currentConfiguration_volumeType\n111122223333,arn:aws:ec2:us-east-1:111122223333:volume/vol-1,NotOptimized,gp2\n",
        ),
        (
            "few.csv",
            "accountId,instanceArn,finding\n111122223333,arn:aws:ec2:us-east-1:111122223333:instance/i-1,Overprovisioned\n",
        ),
        ("short.csv", &short_row),
        ("open.csv", &open_quote),
    ]);
    let (code, _, err) = import(dir.path(), &["compute-optimizer", "--input", "ebs.csv"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("export of EBS volume recommendations"),
        "{err}"
    );
    assert!(err.contains("get-ebs-volume-recommendations"), "{err}");
    let (code, _, err) = import(dir.path(), &["compute-optimizer", "--input", "few.csv"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("CurrentInstanceType RecommendationOptionsInstanceType RecommendationOptionsEstimatedMonthlySavingsValue"),
        "{err}"
    );
    let (code, _, err) = import(dir.path(), &["compute-optimizer", "--input", "short.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("short.csv:2:1"), "{err}");
    assert!(
        err.contains(&format!("2 fields where the header names {width}")),
        "{err}"
    );
    let (code, _, err) = import(dir.path(), &["compute-optimizer", "--input", "open.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("open.csv:2:1"), "{err}");
    assert!(err.contains("never closed"), "{err}");
    // Cost Optimization Hub has no CSV input: say which command reads one.
    let (code, _, err) = import(dir.path(), &["cost-optimization-hub", "--input", "few.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("pare import compute-optimizer"), "{err}");
    // Nothing was written.
    assert!(!dir.path().join("plan.yaml").exists());
}

#[test]
fn savings_in_another_currency_are_skipped_not_read_as_dollars() {
    let csv = std::fs::read_to_string(fixture("co-ec2.csv"))
        .unwrap()
        .replace(",USD,79.5,", ",CNY,79.5,");
    let dir = super::workdir(&[("cny.csv", &csv)]);
    let (code, out, err) = import(dir.path(), &["compute-optimizer", "--input", "cny.csv"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("its savings are in CNY"), "{err}");
    assert!(!out.contains("i-0a1b2c3d4e5f60001"), "{out}");
}

#[test]
fn hostile_csv_values_are_refused_or_skipped_with_their_reason() {
    let base = std::fs::read_to_string(fixture("co-ec2.csv")).unwrap();
    let web1 = "i-0a1b2c3d4e5f60001";
    // (file, the edit, what stderr must say); web-1 is never imported.
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "risk.csv",
            base.replacen(",3.0,Low,", ",7,Low,", 1),
            "is not a number from 0 to 4",
        ),
        (
            "risk-word.csv",
            base.replacen(",3.0,Low,", ",High,Low,", 1),
            "is not a number from 0 to 4",
        ),
        (
            "effort.csv",
            base.replacen(",3.0,Low,", ",3.0,Trivial,", 1),
            "is not VeryLow, Low, Medium, High or VeryHigh",
        ),
        (
            "arch.csv",
            base.replacen(",3.0,Low,false,true,", ",3.0,Low,yes,true,", 1),
            "platform difference `\"Architecture=yes\"` is not one pare knows",
        ),
        (
            "error.csv",
            base.replacen("\",2,,\r\n", "\",2,AccessDenied,nope\r\n", 1),
            "made no recommendation for it (AccessDenied: nope)",
        ),
        (
            "rds.csv",
            base.replacen(
                &format!("arn:aws:ec2:us-east-1:111122223333:instance/{web1}"),
                &format!("arn:aws:rds:us-east-1:111122223333:db/{web1}"),
                1,
            ),
            "is not an EC2 instance's",
        ),
        (
            "partition.csv",
            base.replacen(
                &format!("arn:aws:ec2:us-east-1:111122223333:instance/{web1}"),
                &format!("arn:aws-cn:ec2:us-east-1:111122223333:instance/{web1}"),
                1,
            ),
            "is not an EC2 instance's",
        ),
        (
            "current.csv",
            base.replacen(",m5.xlarge,", ",\"m5.xlarge\u{200b}\",", 1),
            "is not an instance type",
        ),
    ];
    let files: Vec<(&str, &str)> = cases.iter().map(|(f, t, _)| (*f, t.as_str())).collect();
    let dir = super::workdir(&files);
    for (file, _, says) in &cases {
        let (code, out, err) = import(dir.path(), &["compute-optimizer", "--input", file]);
        assert!(code == 0 || code == 1, "{file}: {err}");
        assert!(err.contains(says), "{file}: {err}");
        assert!(!out.contains(web1), "{file}: {out}");
    }
    // A risk or an effort not given is not within a limit on it.
    let no_risk = base.replacen(",3.0,Low,", ",,,", 1);
    let dir = super::workdir(&[("no-risk.csv", &no_risk)]);
    for filter in [
        ["--max-performance-risk", "4"],
        ["--max-effort", "VeryHigh"],
    ] {
        let (code, out, err) = import(
            dir.path(),
            &[
                "compute-optimizer",
                "--input",
                "no-risk.csv",
                filter[0],
                filter[1],
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains(web1), "{filter:?}: {out}");
        assert!(err.contains(filter[0]), "{filter:?}: {err}");
    }
}

#[test]
fn a_header_naming_a_column_twice_is_refused_and_lone_carriage_returns_end_lines() {
    let base = std::fs::read_to_string(fixture("co-ec2.csv")).unwrap();
    let mut twice = String::new();
    for (i, line) in base.split("\r\n").filter(|l| !l.is_empty()).enumerate() {
        twice.push_str(line);
        twice.push_str(if i == 0 {
            ",INSTANCEARN\r\n"
        } else {
            ",arn:aws:ec2:us-east-1:111122223333:instance/i-0ffffffffffffffff\r\n"
        });
    }
    let cr_only = base.replace("\r\n", "\r");
    let dir = super::workdir(&[
        ("twice.csv", &twice),
        ("cr.csv", &cr_only),
        ("crlf.csv", &base),
    ]);
    let (code, out, err) = import(dir.path(), &["compute-optimizer", "--input", "twice.csv"]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("twice.csv:1:1"), "{err}");
    assert!(err.contains("`INSTANCEARN` is named twice"), "{err}");
    let (code, from_cr, err) = import(dir.path(), &["compute-optimizer", "--input", "cr.csv"]);
    assert_eq!(code, 0, "{err}");
    let (_, from_crlf, _) = import(dir.path(), &["compute-optimizer", "--input", "crlf.csv"]);
    assert_eq!(from_cr, from_crlf);
    assert!(from_cr.contains("i-0a1b2c3d4e5f60001"));
}

#[test]
fn a_reimport_that_changes_an_approved_recommendation_says_so_and_keeps_the_files_mode() {
    use std::os::unix::fs::PermissionsExt;
    let base = std::fs::read_to_string(fixture("co-ec2.csv")).unwrap();
    let bigger = base.replacen(",t3.large,", ",t3.medium,", 1);
    let dir = super::workdir(&[("ec2.csv", &base), ("bigger.csv", &bigger)]);
    let (code, _, err) = import(
        dir.path(),
        &[
            "compute-optimizer",
            "--input",
            "ec2.csv",
            "--out",
            "plan.yaml",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let plan = dir.path().join("plan.yaml");
    let text = std::fs::read_to_string(&plan).unwrap().replacen(
        "recommendations:\n",
        "approvals:\n  - { by: lead@example.com, covers: [\"*\"] }\nrecommendations:\n",
        1,
    );
    std::fs::write(&plan, text).unwrap();
    std::fs::set_permissions(&plan, std::fs::Permissions::from_mode(0o664)).unwrap();
    let (code, _, err) = import(
        dir.path(),
        &[
            "compute-optimizer",
            "--input",
            "bigger.csv",
            "--out",
            "plan.yaml",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("added 0, changed 1, removed 0"), "{err}");
    assert!(
        err.contains("warning: rightsize-web-1-i-0a1b2c3d4e5f60001 changed, and the approval by lead@example.com covers it"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777,
        0o664
    );
}

#[test]
fn out_dir_writes_no_plan_when_one_of_them_cannot_be_written() {
    let base = std::fs::read_to_string(fixture("co-ec2.csv")).unwrap();
    // A second account's row (its ARN agrees), and its plan already there, broken.
    let row = base
        .split("\r\n")
        .nth(1)
        .unwrap()
        .replace("111122223333", "444455556666");
    let two = format!("{base}{row}\r\n");
    let dir = super::workdir(&[
        ("two.csv", &two),
        ("plans/444455556666-us-east-1.yaml", "garbage: [\n"),
    ]);
    let (code, _, err) = import(
        dir.path(),
        &[
            "compute-optimizer",
            "--input",
            "two.csv",
            "--out-dir",
            "plans",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        !dir.path()
            .join("plans/111122223333-us-east-1.yaml")
            .exists()
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("plans/444455556666-us-east-1.yaml")).unwrap(),
        "garbage: [\n"
    );
}
