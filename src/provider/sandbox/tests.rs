//! The sandbox provider: seeding, the durable log, replay, checkpoint, faults.

use super::*;
use crate::provider::{InstanceState, Op, Ref};

const SEED: &str = "region: us-east-1\ninstances:\n  - { id: i-0a1b2c3d, type: m5.xlarge, state: running, zone: us-east-1a }\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn setup(seed: &str) -> (tempfile::TempDir, Seed, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("account.yaml");
    std::fs::write(&seed_path, seed).unwrap();
    let state = dir.path().join(".pare");
    let seed = Seed {
        path: seed_path,
        folder: dir.path().to_owned(),
    };
    (dir, seed, state)
}

fn docs(state: &std::path::Path) -> Arc<dyn DocStore> {
    Arc::new(crate::durable::DirDocs::open(state).unwrap())
}

fn stop() -> Op {
    Op::StopInstance {
        instance: Ref::id("i-0a1b2c3d"),
        hibernate: false,
    }
}

#[test]
fn performed_ops_survive_a_reopen_and_fold_into_the_file() {
    let (_dir, seed, state) = setup(SEED);
    let (p, warning) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert!(warning.is_none());
    rt().block_on(p.perform(&stop())).unwrap();
    assert!(
        state.join(LOG).exists(),
        "the op is logged before perform returns"
    );
    drop(p);
    // A new process sees the change through the log.
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert_eq!(
        p.snapshot().instance("i-0a1b2c3d").unwrap().state,
        InstanceState::Stopped
    );
    p.checkpoint().unwrap();
    assert!(!state.join(LOG).exists());
    let file = std::fs::read_to_string(state.join(FILE)).unwrap();
    assert!(file.contains("stopped"), "{file}");
    // The seed itself is never touched.
    assert_eq!(std::fs::read_to_string(&seed.path).unwrap(), SEED);
}

#[test]
fn a_torn_last_log_line_is_ignored() {
    let (_dir, seed, state) = setup(SEED);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    rt().block_on(p.perform(&stop())).unwrap();
    drop(p);
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(state.join(LOG))
        .unwrap();
    std::io::Write::write_all(&mut log, br#"{"op":"start_inst"#).unwrap();
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert_eq!(
        p.snapshot().instance("i-0a1b2c3d").unwrap().state,
        InstanceState::Stopped
    );
}

#[test]
fn a_damaged_log_is_refused_with_a_way_out() {
    let (_dir, seed, state) = setup(SEED);
    SandboxProvider::open(docs(&state), &seed).unwrap();
    std::fs::write(state.join(LOG), "not json\n").unwrap();
    let err = SandboxProvider::open(docs(&state), &seed).err().unwrap();
    assert!(matches!(err, SandboxError::Damaged { .. }), "{err}");
}

#[test]
fn the_rules_hold_and_failed_ops_change_nothing() {
    let (_dir, seed, state) = setup(SEED);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    let set = Op::SetInstanceType {
        instance: Ref::id("i-0a1b2c3d"),
        instance_type: "m5.large".into(),
    };
    let err = rt().block_on(p.perform(&set)).unwrap_err();
    assert!(err.to_string().contains("IncorrectInstanceState"), "{err}");
    assert!(!state.join(LOG).exists(), "a refused call is not logged");
}

#[test]
fn faults_and_latency_are_injected() {
    let seed_text = format!(
        "{SEED}faults:\n  latency_ms: 5\n  ops:\n    stop_instance: {{ fail_nth: [1], code: RequestLimitExceeded, retryable: true }}\n"
    );
    let (_dir, seed, state) = setup(&seed_text);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    let started = std::time::Instant::now();
    let err = rt().block_on(p.perform(&stop())).unwrap_err();
    assert!(started.elapsed() >= std::time::Duration::from_millis(5));
    assert!(err.is_retryable());
    assert!(err.to_string().contains("RequestLimitExceeded"), "{err}");
    rt().block_on(p.perform(&stop())).unwrap();
    assert_eq!(p.estimate(&stop()), std::time::Duration::from_millis(5));
}

#[test]
fn reseeding_from_another_file_warns() {
    let (dir, seed, state) = setup(SEED);
    SandboxProvider::open(docs(&state), &seed).unwrap();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, SEED).unwrap();
    let other = Seed {
        path: other,
        folder: dir.path().to_owned(),
    };
    let (_, warning) = SandboxProvider::open(docs(&state), &other).unwrap();
    assert!(warning.unwrap().contains("pare sandbox reset"));
}

#[test]
fn offerings_come_from_the_catalog_and_are_not_written_back() {
    let (_dir, seed, state) = setup(SEED);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert!(
        p.snapshot()
            .offerings
            .iter()
            .any(|o| o.instance_type == "m5.large" && o.zone.is_none())
    );
    rt().block_on(p.perform(&stop())).unwrap();
    p.checkpoint().unwrap();
    let file = std::fs::read_to_string(state.join(FILE)).unwrap();
    assert!(!file.contains("offerings"), "{file}");
}

#[test]
fn replay_keeps_the_time_each_operation_was_made() {
    let seed = "region: us-east-1\nvolumes:\n  - { id: vol-0a1b2c3d, type: gp2, size_gb: 10, zone: us-east-1a }\n";
    let (_dir, seed, state) = setup(seed);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    let retype = Op::ModifyVolume {
        volume: Ref::id("vol-0a1b2c3d"),
        volume_type: "gp3".into(),
        iops: None,
        throughput_mbps: None,
    };
    rt().block_on(p.perform(&retype)).unwrap();
    let made = p.snapshot().volume_modified_at["vol-0a1b2c3d"].clone();
    drop(p);
    // Reopened (replaying the log) a while later: the modification keeps its time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert_eq!(p.snapshot().volume_modified_at["vol-0a1b2c3d"], made);
}

#[test]
fn a_checkpoint_names_the_next_log_so_a_crash_never_replays_one_twice() {
    let (_dir, seed, state) = setup(SEED);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    rt().block_on(p.perform(&stop())).unwrap();
    let log = std::fs::read(state.join(LOG)).unwrap();
    p.checkpoint().unwrap();
    drop(p);
    // A crash between writing the account and removing the old log: the
    // old log is still there, but the account names the next one.
    std::fs::write(state.join(LOG), &log).unwrap();
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert_eq!(
        p.snapshot().instance("i-0a1b2c3d").unwrap().state,
        InstanceState::Stopped
    );
    // A start then goes to the new log and survives a reopen.
    rt().block_on(p.perform(&Op::StartInstance {
        instance: Ref::id("i-0a1b2c3d"),
    }))
    .unwrap();
    drop(p);
    let (p, _) = SandboxProvider::open(docs(&state), &seed).unwrap();
    assert_eq!(
        p.snapshot().instance("i-0a1b2c3d").unwrap().state,
        InstanceState::Running
    );
    assert!(state.join("sandbox.log.1").exists());
}

/// The one diagnostic of an account file that does not parse.
fn invalid(text: &str) -> Diagnostic {
    match parse_account("seed.yaml", text) {
        Err(SandboxError::Invalid(mut d)) => {
            assert_eq!(d.len(), 1, "{text}");
            d.remove(0)
        }
        other => panic!("{text}: {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_seed_is_quoted_only_when_it_is_recognisably_an_account() {
    for text in [
        "aws_secret_access_key: AKIAXXXXSECRET\npassword: s3cr3t\n",
        "SECRET_TOKEN=hunter2\n",
        "- s3cr3t\n",
        "SECRET_TOKEN=hunter2\nfoo: bar\n",
    ] {
        let d = invalid(text);
        assert!(d.hide_source, "{text}: the lines are not shown");
        for shown in [&d.message, &d.primary.text, d.help.as_ref().unwrap()] {
            for secret in ["AKIAXXXXSECRET", "s3cr3t", "hunter2", "aws_secret"] {
                assert!(!shown.contains(secret), "{text}: {shown}");
            }
        }
        assert!(d.message.contains("seed.yaml"), "{}", d.message);
    }
    let d = invalid("password: s3cr3t\n");
    assert_eq!(d.line_col(), (1, 1));
    assert!(
        d.message
            .starts_with("seed.yaml is not a sandbox account (line 1, column 1)"),
        "{}",
        d.message
    );
    assert!(d.help.unwrap().contains("`region`, `instances`, `volumes`"));
    // An account with a mistake is shown where it goes wrong.
    let d = invalid("region: us-east-1\ninstances: 3\n");
    assert!(!d.hide_source);
    assert_eq!(d.line_col().0, 2);
}

#[test]
fn unknown_fault_operations_are_located_with_a_did_you_mean() {
    let text = format!(
        "{SEED}faults:\n  ops:\n    stop_instance: {{ fail_nth: [1] }}\n    stop_instanse: {{ fail_from: 1 }}\n    reboot: {{ fail_from: 1 }}\n    describe: {{ delay_ms: 0 }}\n"
    );
    let Err(SandboxError::Invalid(d)) = parse_account("account.yaml", &text) else {
        panic!("unknown operations are refused")
    };
    let got: Vec<_> = d.iter().map(|d| (d.code, d.line_col())).collect();
    assert_eq!(
        got,
        [
            ("sandbox::unknown-op", (7, 5)),
            ("sandbox::unknown-op", (8, 5))
        ]
    );
    assert_eq!(
        d[0].message,
        "unknown operation `stop_instanse` under `faults: ops:` (no fault would ever be injected)"
    );
    let help = d[0].help.as_deref().unwrap();
    assert!(help.starts_with("did you mean `stop_instance`? the operations are describe, stop_instance, start_instance"), "{help}");
    assert!(
        help.ends_with("update_group, purchase_reservation"),
        "{help}"
    );
    assert!(
        d[1].help
            .as_deref()
            .unwrap()
            .starts_with("the operations are describe,")
    );
    // Every operation, and describe, is a name faults take.
    let all: String = faults::op_names()
        .map(|op| format!("    {op}: {{ fail_from: 1 }}\n"))
        .collect();
    parse_account("account.yaml", &format!("{SEED}faults:\n  ops:\n{all}")).unwrap();
}
