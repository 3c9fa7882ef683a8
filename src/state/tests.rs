//! The guarantees of [`StateStore`], checked against every implementation:
//! append and durability, torn tails, atomic records, lock exclusion, run
//! ids, damaged records named apart, documents and logs.

use super::*;
use crate::state::runs::RunKind;

/// Every implementation, freshly made: (what it is, the store, a way to
/// tear the tail of a run's journal as a crash mid-write would).
type Make = fn(&std::path::Path) -> Box<dyn StateStore>;

fn local(dir: &std::path::Path) -> Box<dyn StateStore> {
    Box::new(LocalStore::open(&dir.join("state")).unwrap())
}

const IMPLEMENTATIONS: &[(&str, Make)] = &[("local", local)];

fn record(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        kind: RunKind::Apply,
        status: RunStatus::Running,
        started_at: "2026-11-27T17:49:01Z".into(),
        finished_at: None,
        who: "t@host".into(),
        ci: None,
        provider: "sandbox".into(),
        provider_spec: None,
        plan_path: "plan.yaml".into(),
        plan_sha256: "00".into(),
        plan_name: None,
        git_commit: None,
        lineage: None,
        approvals: vec![],
        resolves: None,
        completed: vec![],
        failed: vec![],
        skipped: vec![],
        undone: vec![],
        steps_done: 0,
        savings_planned_monthly_usd: 0.0,
        savings_monthly_usd: 0.0,
        renamed: Default::default(),
        left: vec![],
    }
}

fn holder(who: &str) -> Holder {
    Holder {
        who: who.into(),
        pid: 1,
        doing: "apply plan.yaml".into(),
        since: "2026-11-27T17:49:01Z".into(),
        ci_url: None,
        ..Holder::default()
    }
}

fn each(test: impl Fn(&str, &dyn StateStore)) {
    for (name, make) in IMPLEMENTATIONS {
        let dir = tempfile::tempdir().unwrap();
        let store = make(dir.path());
        test(name, store.as_ref());
    }
}

#[test]
fn journals_append_and_read_back_what_was_synced() {
    each(|name, store| {
        let id = RunId::parse("r20261127-174901").unwrap();
        let mut log = store.create_run(&record(&id.to_string())).unwrap();
        log.write(b"{\"record\":\"rec_skipped\",\"rec\":\"a\",\"why\":\"x\"}\n")
            .unwrap();
        log.sync().unwrap();
        log.write(b"{\"record\":\"rec_skipped\",\"rec\":\"b\",\"why\":\"y\"}\n")
            .unwrap();
        log.sync().unwrap();
        let records = (store as &dyn StateStore).journal(&id).unwrap();
        assert_eq!(records.len(), 2, "{name}");
        // A torn tail (a crash mid-write) is dropped, not an error.
        log.write(b"{\"record\":\"rec_sk").unwrap();
        log.sync().unwrap();
        assert_eq!(
            (store as &dyn StateStore).journal(&id).unwrap().len(),
            2,
            "{name}"
        );
    });
}

#[test]
fn the_journal_breaks_on_its_first_write_error_and_stays_broken() {
    struct Failing;
    impl crate::durable::AppendLog for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
            Err(std::io::Error::other("disk full"))
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let j = Journal::new("j".into(), Box::new(Failing), 0);
    let r = Record::RecSkipped {
        rec: "a".into(),
        why: "x".into(),
    };
    let e = j.append(&r, true).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    assert!(j.commit().is_err(), "every later call fails with it");
}

#[test]
fn records_are_created_once_and_replaced_whole() {
    each(|name, store| {
        let mut r = record("r20261127-174901");
        drop(store.create_run(&r).unwrap());
        assert!(store.create_run(&r).is_err(), "{name}: an id is used once");
        r.status = RunStatus::Applied;
        store.save_run(&r).unwrap();
        let back = store.read_run(&RunId::parse(&r.id).unwrap()).unwrap();
        assert_eq!(back.status, RunStatus::Applied, "{name}");
        assert!(matches!(
            store.read_run(&RunId::parse("r20261127-174902").unwrap()),
            Err(StateError::UnknownRun(_))
        ));
    });
}

#[test]
fn the_lock_has_one_holder_and_says_who() {
    each(|name, store| {
        let held = store.lock(&holder("alice@box")).unwrap();
        match store.lock(&holder("bob@box")) {
            Err(e @ StateError::Locked { .. }) => {
                assert!(e.to_string().contains("alice@box"), "{name}: {e}");
            }
            other => panic!("{name}: {:?}", other.err()),
        }
        drop(held);
        assert!(
            store.lock(&holder("bob@box")).is_ok(),
            "{name}: released on drop"
        );
    });
}

#[test]
fn run_ids_stay_in_order_past_ten_a_second() {
    each(|name, store| {
        let store: &dyn StateStore = store;
        // SAFETY of the test: the pinned clock is read by new_run_id only.
        let mut ids = Vec::new();
        for _ in 0..12 {
            let id = store.new_run_id().unwrap();
            drop(store.create_run(&record(&id.to_string())).unwrap());
            ids.push(id);
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "{name}");
        let h = store.history().unwrap();
        let newest: Vec<String> = ids.iter().rev().map(|i| i.to_string()).collect();
        let listed: Vec<String> = h.runs.iter().map(|r| r.id.clone()).collect();
        assert_eq!(listed, newest, "{name}: newest first, by number");
    });
}

#[test]
fn a_damaged_record_is_named_and_the_others_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state")).unwrap();
    drop(store.create_run(&record("r20261127-174901")).unwrap());
    drop(store.create_run(&record("r20261127-174902")).unwrap());
    std::fs::write(
        dir.path().join("state/runs/r20261127-174902/run.json"),
        "{ not json",
    )
    .unwrap();
    let h = (&store as &dyn StateStore).history().unwrap();
    assert_eq!(h.runs.len(), 1);
    assert_eq!(h.damaged.len(), 1);
    assert_eq!(h.damaged[0].0, "r20261127-174902");
}

#[test]
fn documents_and_logs_round_trip() {
    each(|name, store| {
        assert_eq!(store.read_doc("sandbox.yaml").unwrap(), None, "{name}");
        store.write_doc("sandbox.yaml", b"a: 1\n").unwrap();
        assert_eq!(store.read_doc("sandbox.yaml").unwrap().unwrap(), b"a: 1\n");
        let mut log = store.open_log("sandbox.log").unwrap();
        log.write(b"x\n").unwrap();
        log.sync().unwrap();
        assert_eq!(store.read_log("sandbox.log").unwrap().unwrap(), "x\n");
        store.remove_log("sandbox.log").unwrap();
        assert_eq!(store.read_log("sandbox.log").unwrap(), None);
        assert!(
            store.write_doc("../x", b"").is_err(),
            "{name}: plain names only"
        );
    });
}

#[cfg(unix)]
#[test]
fn the_local_state_is_private_and_never_followed_out() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = LocalStore::open(&state).unwrap();
    let guard = store.lock(&holder("a@b")).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("lock")), 0o600);
    drop(guard);
    // A symlinked lock is not followed.
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "keep").unwrap();
    std::fs::remove_file(state.join("lock")).unwrap();
    std::os::unix::fs::symlink(&target, state.join("lock")).unwrap();
    assert!(store.lock(&holder("a@b")).is_err());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
}

#[test]
fn an_intent_without_an_outcome_reads_as_unknown() {
    // A crash between a step's intent and its outcome: the journal reads
    // back, and the step's outcome is unknown (recovery reads the cloud).
    each(|name, store| {
        let id = RunId::parse("r20261127-174901").unwrap();
        let log = store.create_run(&record(&id.to_string())).unwrap();
        let j = Journal::new(store.journal_name(&id), log, 0);
        let op = crate::vocabulary::Op::StartInstance {
            instance: crate::vocabulary::Ref::id("i-0a1b2c3d"),
        };
        for (seq, done) in [(j.next_seq(), true), (j.next_seq(), false)] {
            j.append(
                &Record::Intent {
                    seq,
                    rec: "a".into(),
                    step: seq as usize - 1,
                    op: Box::new(op.clone()),
                    inverse: Box::new(crate::vocabulary::Inverse::Nothing { why: "x".into() }),
                    before: None,
                    at: "2026-11-27T17:49:01Z".into(),
                    undoes: None,
                },
                true,
            )
            .unwrap();
            if done {
                j.append(
                    &Record::Outcome {
                        seq,
                        ok: true,
                        created: None,
                        error: None,
                        attempts: 1,
                        duration_ms: 1,
                        at: "2026-11-27T17:49:02Z".into(),
                    },
                    true,
                )
                .unwrap();
            }
        }
        drop(j);
        let records = (store as &dyn StateStore).journal(&id).unwrap();
        let steps = crate::state::journal::steps(&records);
        assert_eq!(steps.len(), 2, "{name}");
        assert!(matches!(steps[0].outcome, Some((true, _))), "{name}");
        assert!(steps[1].outcome.is_none(), "{name}: unknown, not failed");
        assert_eq!(crate::state::journal::last_seq(&records), 2);
    });
}

#[test]
fn a_tally_counts_what_completed_failed_and_never_started_as_records_word_them() {
    let intent = |seq: u64, rec: &str, step: usize, undoes: Option<u64>| Record::Intent {
        seq,
        rec: rec.into(),
        step,
        op: Box::new(crate::vocabulary::Op::StartInstance {
            instance: crate::vocabulary::Ref::id("i-0a1b2c3d"),
        }),
        inverse: Box::new(crate::vocabulary::Inverse::Nothing { why: "x".into() }),
        before: None,
        at: "2026-11-27T17:49:01Z".into(),
        undoes,
    };
    let outcome = |seq: u64, ok: bool| Record::Outcome {
        seq,
        ok,
        created: None,
        error: None,
        attempts: 1,
        duration_ms: 1,
        at: "2026-11-27T17:49:02Z".into(),
    };
    let done = |rec: &str, ok: bool, error: Option<&str>| Record::RecDone {
        rec: rec.into(),
        ok,
        resource: None,
        after: None,
        error: error.map(Into::into),
    };
    let records = [
        intent(1, "a", 0, None),
        outcome(1, true),
        done("a", true, None),
        intent(2, "b", 0, None),
        outcome(2, true),
        intent(3, "b", 1, None),
        outcome(3, false),
        done("b", false, Some("InternalError: boom")),
        Record::RecSkipped {
            rec: "c".into(),
            why: "upstream failed: b".into(),
        },
        // The automatic rollback's undo of `a`, then a kill.
        intent(4, "a", 0, Some(1)),
    ];
    let t = crate::state::journal::tally(&records);
    assert_eq!(t.completed, ["a"]);
    assert_eq!(t.failed, ["b: step 2: InternalError: boom"]);
    assert_eq!(t.skipped, ["c: upstream failed: b"]);
    assert_eq!(t.steps_done, 2);
}
