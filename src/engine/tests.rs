//! The engine's batching: one call for many instances, split when refused,
//! every step journaled on its own, and rollback batched the same way.

use super::*;
use crate::durable::FileLog;
use crate::provider::{Batch, Instance, Inventory, ProviderError, Query};
use crate::state::{Journal, Record};
use crate::vocabulary::{CloudError, InstanceState, Inverse, Op, Outcome, Ref, Step};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// An account that refuses, all or nothing, any call naming a `bad` instance,
/// and counts its calls.
struct Counting {
    account: Mutex<Inventory>,
    bad: BTreeSet<String>,
    /// Refuse the bad instances only in calls of this operation (any, if none).
    bad_op: Option<&'static str>,
    /// The size of every perform call, in order.
    calls: Mutex<Vec<usize>>,
    describes: Mutex<usize>,
}

#[async_trait::async_trait]
impl Provider for Counting {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn describe(&self, q: &Query) -> Result<Inventory, ProviderError> {
        *self.describes.lock().unwrap() += 1;
        Ok(self.account.lock().unwrap().subset(q))
    }
    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let mut b = self.perform_batch(std::slice::from_ref(op)).await;
        b.results.pop().unwrap()
    }
    async fn perform_batch(&self, ops: &[Op]) -> Batch {
        self.calls.lock().unwrap().push(ops.len());
        if let Some(bad) = ops
            .iter()
            .filter(|o| self.bad_op.is_none_or(|n| o.name() == n))
            .filter_map(Op::batch_instance)
            .find(|i| self.bad.contains(*i))
        {
            let e = ProviderError::from(CloudError::new(
                "OperationNotPermitted",
                format!("{bad} has stop protection"),
            ));
            return Batch {
                results: ops.iter().map(|_| Err(e.clone())).collect(),
                observed: None,
                refused: true,
            };
        }
        let mut account = self.account.lock().unwrap();
        Batch::one_by_one(
            ops.iter()
                .map(|op| account.apply(op).map_err(ProviderError::from))
                .collect(),
        )
    }
    fn estimate(&self, _: &Op) -> Duration {
        Duration::from_secs(1)
    }
}

fn account(n: usize) -> Inventory {
    let mut inv = Inventory::new("us-east-1");
    for k in 0..n {
        let id = format!("i-{k:08x}");
        inv.instances.insert(
            id.clone(),
            Instance {
                image: None,
                ..crate::provider::fixtures::instance(&id)
            },
        );
    }
    inv.reindex();
    inv
}

fn stop_items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|k| {
            let id = format!("i-{k:08x}");
            Item {
                rec: format!("stop-{k}"),
                resource: Some(ResourceId::Instance(id.clone())),
                steps: vec![Step {
                    op: Op::StopInstance {
                        instance: Ref::id(&id),
                        hibernate: false,
                    },
                    inverse: Inverse::Op {
                        op: Op::StartInstance {
                            instance: Ref::id(&id),
                        },
                    },
                }],
                before: None,
                after: None,
                replaced_by_step: None,
                deps: Vec::new(),
                urgency: Duration::from_secs(1),
                savings: 0.0,
            }
        })
        .collect()
}

fn settings() -> Settings {
    Settings {
        parallelism: 10,
        attempts: 2,
        backoff: Duration::from_millis(1),
        run: "r-test".into(),
        batch: 1000,
        gather: Duration::from_millis(20),
    }
}

fn run(provider: Arc<Counting>, items: Vec<Item>, dir: &std::path::Path) -> ApplyReport {
    let journal = journal_at(&dir.join("journal"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(apply(
        Arc::new(items),
        provider,
        journal,
        &Events::new("r-test", false, true),
        &settings(),
        Cancel::default(),
    ))
}

fn journal_at(path: &std::path::Path) -> Arc<Journal> {
    Arc::new(Journal::new(
        path.display().to_string(),
        Box::new(FileLog::open(path).unwrap()),
        0,
    ))
}

fn read_journal(path: &std::path::Path) -> Vec<Record> {
    crate::state::journal::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn counting(n: usize, bad: &[usize]) -> Arc<Counting> {
    Arc::new(Counting {
        account: Mutex::new(account(n)),
        bad: bad.iter().map(|k| format!("i-{k:08x}")).collect(),
        bad_op: None,
        calls: Mutex::new(Vec::new()),
        describes: Mutex::new(0),
    })
}

#[test]
fn ready_stops_go_in_one_call_and_one_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = counting(1000, &[]);
    let report = run(Arc::clone(&p), stop_items(1000), dir.path());
    assert_eq!(report.completed.len(), 1000);
    assert!(report.failed.is_empty());
    assert_eq!(*p.calls.lock().unwrap(), vec![1000]);
    assert_eq!(
        *p.describes.lock().unwrap(),
        1,
        "one read-back for the group"
    );
    let records = read_journal(&dir.path().join("journal"));
    let steps = crate::state::journal::steps(&records);
    assert_eq!(steps.len(), 1000, "every step keeps its own records");
    assert!(steps.iter().all(|s| matches!(s.outcome, Some((true, _)))));
    let account = p.account.lock().unwrap();
    assert!(
        account
            .instances
            .values()
            .all(|i| i.state == InstanceState::Stopped)
    );
}

#[test]
fn a_refused_batch_is_split_until_the_bad_instance_is_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = counting(64, &[37]);
    let mut items = stop_items(64);
    // Something that waits for the bad one is skipped; the rest go ahead.
    let mut after = stop_items(65).pop().unwrap();
    after.rec = "after-bad".into();
    after.deps = vec![37];
    p.account.lock().unwrap().instances.insert(
        "i-00000040".into(),
        account(65).instances["i-00000040"].clone(),
    );
    items.push(after);
    let report = run(Arc::clone(&p), items, dir.path());
    assert_eq!(report.completed.len(), 63);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 37);
    assert!(report.failed[0].1.contains("stop protection"), "{report:?}");
    assert_eq!(report.skipped.len(), 1);
    let calls = p.calls.lock().unwrap().clone();
    // 64 → 32 → 16 → 8 → 4 → 2 → 1: two calls a level, each half once.
    assert_eq!(calls[0], 64);
    assert!(calls.len() <= 1 + 2 * 6, "{calls:?}");
    assert_eq!(calls.iter().filter(|&&c| c == 1).count(), 2);
    let account = p.account.lock().unwrap();
    let stopped = account
        .instances
        .values()
        .filter(|i| i.state == InstanceState::Stopped)
        .count();
    assert_eq!(stopped, 63, "nothing done twice, the bad one untouched");
    assert_eq!(
        account.instances["i-00000025"].state,
        InstanceState::Running
    );
}

#[test]
fn rollback_starts_consecutive_instances_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = counting(300, &[]);
    let report = run(Arc::clone(&p), stop_items(300), dir.path());
    assert_eq!(report.completed.len(), 300);
    let records = read_journal(&dir.path().join("journal"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let undos = rt
        .block_on(forward_steps(&records, "r-test", p.as_ref()))
        .unwrap();
    p.calls.lock().unwrap().clear();
    let journal = journal_at(&dir.path().join("journal2"));
    let mut s = settings();
    s.batch = 128;
    let rb = rt.block_on(rollback(
        &undos,
        "r-test",
        Arc::clone(&p) as Arc<dyn Provider>,
        journal,
        &Events::new("r-undo", false, true),
        &s,
        Default::default(),
        &Default::default(),
    ));
    assert_eq!(rb.undone.len(), 300);
    assert!(rb.failed.is_none());
    assert_eq!(*p.calls.lock().unwrap(), vec![128, 128, 44]);
    assert!(
        p.account
            .lock()
            .unwrap()
            .instances
            .values()
            .all(|i| i.state == InstanceState::Running)
    );
}

/// An account that can panic on an instance, cancel the run on its first
/// call, and counts its calls (for the scheduler's failure and cancel paths).
struct Scripted {
    account: Mutex<Inventory>,
    panic_on: BTreeSet<String>,
    fail_on: BTreeSet<String>,
    cancel_on_first: Option<Cancel>,
    calls: Mutex<Vec<Vec<String>>>,
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn describe(&self, q: &Query) -> Result<Inventory, ProviderError> {
        Ok(self.account.lock().unwrap().subset(q))
    }
    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let mut b = self.perform_batch(std::slice::from_ref(op)).await;
        b.results.pop().unwrap()
    }
    async fn perform_batch(&self, ops: &[Op]) -> Batch {
        let named: Vec<String> = ops
            .iter()
            .flat_map(|o| o.touched(None))
            .map(|r| r.id().to_string())
            .collect();
        let first = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(named.clone());
            calls.len() == 1
        };
        if first && let Some(c) = &self.cancel_on_first {
            c.set();
        }
        assert!(
            !named.iter().any(|i| self.panic_on.contains(i)),
            "a bug in a provider"
        );
        let mut account = self.account.lock().unwrap();
        Batch::one_by_one(
            ops.iter()
                .map(|op| {
                    if op
                        .touched(None)
                        .iter()
                        .any(|r| self.fail_on.contains(r.id()))
                    {
                        return Err(ProviderError::from(CloudError::new("InternalError", "no")));
                    }
                    account.apply(op).map_err(ProviderError::from)
                })
                .collect(),
        )
    }
    fn estimate(&self, _: &Op) -> Duration {
        Duration::from_secs(1)
    }
}

fn scripted(n: usize) -> Scripted {
    Scripted {
        account: Mutex::new(account(n)),
        panic_on: BTreeSet::new(),
        fail_on: BTreeSet::new(),
        cancel_on_first: None,
        calls: Mutex::new(Vec::new()),
    }
}

/// A rightsize chain on instance `k`: stop, set the type, start.
fn rightsize_item(k: usize, urgency: u64) -> Item {
    let id = format!("i-{k:08x}");
    let i = || Ref::id(&id);
    Item {
        rec: format!("rs-{k}"),
        resource: Some(ResourceId::Instance(id.clone())),
        steps: vec![
            Step::new(
                Op::StopInstance {
                    instance: i(),
                    hibernate: false,
                },
                Op::StartInstance { instance: i() },
            ),
            Step::new(
                Op::SetInstanceType {
                    instance: i(),
                    instance_type: "m5.xlarge".into(),
                },
                Op::SetInstanceType {
                    instance: i(),
                    instance_type: "m5.large".into(),
                },
            ),
            Step::new(
                Op::StartInstance { instance: i() },
                Op::StopInstance {
                    instance: i(),
                    hibernate: false,
                },
            ),
        ],
        before: None,
        after: None,
        replaced_by_step: None,
        deps: Vec::new(),
        urgency: Duration::from_secs(urgency),
        savings: 0.0,
    }
}

fn run_with(
    p: Arc<Scripted>,
    items: Vec<Item>,
    journal: Arc<Journal>,
    s: &Settings,
    cancel: Cancel,
) -> ApplyReport {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(apply(
        Arc::new(items),
        p,
        journal,
        &Events::new("r-test", false, true),
        s,
        cancel,
    ))
}

#[test]
fn a_failure_skips_what_waits_for_it_and_the_rest_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = scripted(4);
    p.fail_on.insert("i-00000000".into());
    let mut items: Vec<Item> = (0..4).map(|k| rightsize_item(k, 3)).collect();
    items[1].deps = vec![0];
    items[2].deps = vec![1];
    let report = run_with(
        Arc::new(p),
        items,
        journal_at(&dir.path().join("j")),
        &settings(),
        Cancel::default(),
    );
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 0);
    let mut skipped: Vec<usize> = report.skipped.iter().map(|(i, _)| *i).collect();
    skipped.sort();
    assert_eq!(skipped, vec![1, 2], "{report:?}");
    assert!(
        report
            .skipped
            .iter()
            .all(|(_, why)| why == "upstream failed: rs-0")
    );
    assert_eq!(report.completed, vec![3]);
    assert_eq!(report.steps_done, 3, "the independent chain's three steps");
}

#[test]
fn a_panicking_task_fails_its_steps_and_skips_what_waits() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = scripted(3);
    p.panic_on.insert("i-00000000".into());
    let mut items = stop_items(3);
    items[1].deps = vec![0];
    let mut s = settings();
    s.batch = 1;
    let path = dir.path().join("j");
    let report = run_with(Arc::new(p), items, journal_at(&path), &s, Cancel::default());
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, 0);
    assert!(report.failed[0].1.contains("internal error"), "{report:?}");
    assert_eq!(
        report.skipped.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(report.completed, vec![2]);
    let records = read_journal(&path);
    assert!(records.iter().any(|r| matches!(r,
        Record::RecDone { rec, ok: false, error: Some(e), .. } if rec == "stop-0" && e.contains("internal error"))));
}

#[test]
fn cancel_lets_started_chains_finish_and_starts_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = Cancel::default();
    let mut p = scripted(3);
    p.cancel_on_first = Some(cancel.clone());
    // rs-0 is the most urgent and starts first; Ctrl-C comes with its first call.
    let mut items = vec![
        rightsize_item(0, 9),
        rightsize_item(1, 3),
        rightsize_item(2, 3),
    ];
    items[2].deps = vec![0];
    let mut s = settings();
    s.parallelism = 1;
    // One step a call: batching would start rs-1's stop in rs-0's call.
    s.batch = 1;
    let p = Arc::new(p);
    let report = run_with(
        Arc::clone(&p),
        items,
        journal_at(&dir.path().join("j")),
        &s,
        cancel,
    );
    assert!(report.cancelled);
    assert_eq!(
        report.completed,
        vec![0],
        "the started chain finished: {report:?}"
    );
    assert_eq!(report.steps_done, 3);
    let mut skipped: Vec<(usize, String)> = report.skipped.clone();
    skipped.sort();
    assert_eq!(
        skipped,
        vec![(1, "cancelled".into()), (2, "cancelled".into())]
    );
    let calls = p.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    assert!(
        calls.iter().all(|c| c == &vec!["i-00000000".to_string()]),
        "{calls:?}"
    );
    let acct = p.account.lock().unwrap();
    assert_eq!(acct.instances["i-00000000"].instance_type, "m5.xlarge");
    assert_eq!(acct.instances["i-00000000"].state, InstanceState::Running);
}

#[test]
fn a_journal_that_cannot_be_written_stops_all_new_work() {
    /// A log that breaks after `ok` writes.
    struct Breaking {
        ok: usize,
    }
    impl crate::durable::AppendLog for Breaking {
        fn write(&mut self, _: &[u8]) -> std::io::Result<()> {
            if self.ok == 0 {
                return Err(std::io::Error::other("No space left on device"));
            }
            self.ok -= 1;
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let p = Arc::new(scripted(4));
    // Intent, outcome, intent: the third record is the last that is written.
    let journal = Arc::new(Journal::new("j".into(), Box::new(Breaking { ok: 3 }), 0));
    let mut s = settings();
    s.parallelism = 1;
    s.batch = 1;
    let items: Vec<Item> = (0..4).map(|k| rightsize_item(k, 9 - k as u64)).collect();
    let report = run_with(Arc::clone(&p), items, journal, &s, Cancel::default());
    let e = report
        .journal
        .as_ref()
        .expect("the journal error is reported");
    assert!(e.to_string().contains("No space left on device"), "{e}");
    // Two steps had their intents written and were called; the second's
    // outcome could not be written, and nothing more was started.
    assert_eq!(p.calls.lock().unwrap().len(), 2, "{report:?}");
    assert!(report.completed.is_empty());
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].1.contains("journal could not be written"),
        "{report:?}"
    );
    assert_eq!(report.skipped.len(), 3, "{report:?}");
    assert!(
        report
            .skipped
            .iter()
            .all(|(_, why)| why.contains("journal could not be written"))
    );
}

#[test]
fn a_rollback_stops_at_the_first_failed_undo_and_says_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(scripted(3));
    let items: Vec<Item> = (0..3).map(|k| rightsize_item(k, 3)).collect();
    let mut s = settings();
    s.batch = 1;
    s.parallelism = 1;
    let path = dir.path().join("j");
    let report = run_with(
        Arc::clone(&p),
        items,
        journal_at(&path),
        &s,
        Cancel::default(),
    );
    assert_eq!(report.completed.len(), 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut undos = rt
        .block_on(forward_steps(&read_journal(&path), "r-test", p.as_ref()))
        .unwrap();
    assert_eq!(undos.len(), 9);
    // The oldest change cannot be undone; the newest undo fails.
    undos[0].inverse = Inverse::Irreversible {
        why: "bought".into(),
    };
    let newest = undos.last().unwrap().forward.touched(None)[0]
        .id()
        .to_string();
    let mut failing = scripted(0);
    failing.account = Mutex::new(p.account.lock().unwrap().clone());
    failing.fail_on.insert(newest);
    let failing = Arc::new(failing);
    let rb = rt.block_on(rollback(
        &undos,
        "r-test",
        Arc::clone(&failing) as Arc<dyn Provider>,
        journal_at(&dir.path().join("j2")),
        &Events::new("r-undo", false, true),
        &s,
        Default::default(),
        &Cancel::default(),
    ));
    let f = rb.failed.expect("the first undo fails");
    assert!(f.starts_with(&format!("{} step 3", undos[8].rec)), "{f}");
    assert!(rb.undone.is_empty(), "nothing after a failure");
    assert_eq!(
        rb.left.len(),
        8,
        "every other undo is named as left: {:?}",
        rb.left
    );
    assert_eq!(
        failing.calls.lock().unwrap().len(),
        1,
        "no call after the failure"
    );
}

/// The operations of every call a counting provider saw, by name, in order;
/// each call takes a moment (others run meanwhile), and `slow` makes one
/// operation on one instance take as long as given.
struct Named(
    Counting,
    Mutex<Vec<&'static str>>,
    Option<(&'static str, &'static str, Duration)>,
);

#[async_trait::async_trait]
impl Provider for Named {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn describe(&self, q: &Query) -> Result<Inventory, ProviderError> {
        self.0.describe(q).await
    }
    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let mut b = self.perform_batch(std::slice::from_ref(op)).await;
        b.results.pop().unwrap()
    }
    async fn perform_batch(&self, ops: &[Op]) -> Batch {
        self.1.lock().unwrap().push(ops[0].name());
        let wait = match self.2 {
            Some((name, instance, d))
                if ops[0].name() == name && ops[0].touched(None)[0].id() == instance =>
            {
                d
            }
            _ => Duration::from_millis(2),
        };
        tokio::time::sleep(wait).await;
        self.0.perform_batch(ops).await
    }
    fn estimate(&self, _: &Op) -> Duration {
        Duration::from_secs(1)
    }
}

fn named(n: usize, bad: &[usize], bad_op: Option<&'static str>) -> Arc<Named> {
    let c = Arc::try_unwrap(counting(n, bad)).ok().unwrap();
    Arc::new(Named(
        Counting { bad_op, ..c },
        Mutex::new(Vec::new()),
        None,
    ))
}

/// How many calls of each operation.
fn by_op(p: &Named) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for op in p.1.lock().unwrap().iter() {
        *m.entry(*op).or_default() += 1;
    }
    m
}

/// Applies `items` on `rt` (a paused clock), journaled under `dir`.
fn apply_paused(
    rt: &tokio::runtime::Runtime,
    p: Arc<dyn Provider>,
    items: Vec<Item>,
    dir: &std::path::Path,
    s: &Settings,
) -> ApplyReport {
    rt.block_on(apply(
        Arc::new(items),
        p,
        journal_at(&dir.join("journal")),
        &Events::new("r-test", false, true),
        s,
        Cancel::default(),
    ))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn rightsize_chains_gather_their_starts_and_read_back_once_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let p = named(500, &[], None);
    let items: Vec<Item> = (0..500).map(|k| rightsize_item(k, 3)).collect();
    let rt = paused_runtime();
    let report = apply_paused(
        &rt,
        Arc::clone(&p) as Arc<dyn Provider>,
        items,
        dir.path(),
        &settings(),
    );
    assert_eq!(report.completed.len(), 500, "{report:?}");
    let calls = by_op(&p);
    assert_eq!(calls["stop_instance"], 1, "{calls:?}");
    assert_eq!(calls["set_instance_type"], 500, "one instance a call");
    assert!(calls["start_instance"] <= 3, "starts gathered: {calls:?}");
    let groups = calls.values().sum::<usize>() - calls["set_instance_type"];
    assert!(
        *p.0.describes.lock().unwrap() <= groups,
        "one read-back per stop or start group, none for the types (the start reads them): {} describes, {calls:?}",
        p.0.describes.lock().unwrap()
    );
    let account = p.0.account.lock().unwrap();
    assert!(
        account
            .instances
            .values()
            .all(|i| { i.state == InstanceState::Running && i.instance_type == "m5.xlarge" })
    );
    drop(account);

    // The rollback is the same chain backwards, gathered the same way.
    let records = read_journal(&dir.path().join("journal"));
    let undos = rt
        .block_on(forward_steps(&records, "r-test", p.as_ref()))
        .unwrap();
    p.1.lock().unwrap().clear();
    let rb = rt.block_on(rollback(
        &undos,
        "r-test",
        Arc::clone(&p) as Arc<dyn Provider>,
        journal_at(&dir.path().join("journal2")),
        &Events::new("r-undo", false, true),
        &settings(),
        Default::default(),
        &Default::default(),
    ));
    assert_eq!(rb.undone.len(), 1500, "{:?}", rb.failed);
    let calls = by_op(&p);
    assert!(calls["stop_instance"] <= 3, "{calls:?}");
    assert_eq!(calls["set_instance_type"], 500);
    assert!(calls["start_instance"] <= 3, "{calls:?}");
    assert!(
        p.0.account
            .lock()
            .unwrap()
            .instances
            .values()
            .all(|i| i.state == InstanceState::Running && i.instance_type == "m5.large")
    );
}

#[test]
fn a_lone_chain_never_waits_to_gather() {
    let dir = tempfile::tempdir().unwrap();
    let p = named(1, &[], None);
    let mut s = settings();
    s.gather = Duration::from_secs(10);
    let rt = paused_runtime();
    let started = tokio::time::Instant::now();
    let report = apply_paused(
        &rt,
        Arc::clone(&p) as Arc<dyn Provider>,
        vec![rightsize_item(0, 3)],
        dir.path(),
        &s,
    );
    assert_eq!(report.completed.len(), 1);
    // The paused clock moves only for what the run waited: three calls.
    let waited = rt.block_on(async { started.elapsed() });
    assert!(waited < Duration::from_millis(100), "waited {waited:?}");
}

#[test]
fn gathering_waits_no_longer_than_its_window() {
    // Two chains: one reaches its start at once, the other's type change
    // takes a minute. The first start waits one window, not a minute.
    let dir = tempfile::tempdir().unwrap();
    // Type changes of instance 1 take a minute.
    let c = Arc::try_unwrap(counting(2, &[])).ok().unwrap();
    let p = Arc::new(Named(
        c,
        Mutex::new(Vec::new()),
        Some(("set_instance_type", "i-00000001", Duration::from_secs(60))),
    ));
    let mut s = settings();
    s.gather = Duration::from_millis(300);
    let rt = paused_runtime();
    let started = tokio::time::Instant::now();
    let report = apply_paused(
        &rt,
        Arc::clone(&p) as Arc<dyn Provider>,
        vec![rightsize_item(0, 3), rightsize_item(1, 3)],
        dir.path(),
        &s,
    );
    assert_eq!(report.completed.len(), 2);
    assert_eq!(
        by_op(&p)["start_instance"],
        2,
        "not gathered past the window"
    );
    let waited = rt.block_on(async { started.elapsed() });
    assert!(waited >= Duration::from_secs(60), "{waited:?}");
    assert!(waited < Duration::from_secs(61), "{waited:?}");
}

#[test]
fn a_refused_start_in_gathered_chains_fails_only_its_own_recommendation() {
    let dir = tempfile::tempdir().unwrap();
    let p = named(64, &[37], Some("start_instance"));
    let items: Vec<Item> = (0..64).map(|k| rightsize_item(k, 3)).collect();
    let rt = paused_runtime();
    let report = apply_paused(
        &rt,
        Arc::clone(&p) as Arc<dyn Provider>,
        items,
        dir.path(),
        &settings(),
    );
    assert_eq!(report.completed.len(), 63, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, 37);
    assert!(report.failed[0].1.starts_with("step 3:"), "{report:?}");
    let account = p.0.account.lock().unwrap();
    let running = account
        .instances
        .values()
        .filter(|i| i.state == InstanceState::Running)
        .count();
    assert_eq!(running, 63, "every other start went ahead, once");
}

#[test]
fn a_failed_undo_stops_its_chain_not_the_independent_ones() {
    // Three rightsizes made side by side; undoing one of them fails.
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(scripted(3));
    let items: Vec<Item> = (0..3).map(|k| rightsize_item(k, 3)).collect();
    let path = dir.path().join("j");
    let report = run_with(
        Arc::clone(&p),
        items,
        journal_at(&path),
        &settings(),
        Cancel::default(),
    );
    assert_eq!(report.completed.len(), 3);
    let rt = paused_runtime();
    let undos = rt
        .block_on(forward_steps(&read_journal(&path), "r-test", p.as_ref()))
        .unwrap();
    let mut failing = scripted(0);
    failing.account = Mutex::new(p.account.lock().unwrap().clone());
    failing.fail_on.insert("i-00000001".into());
    let failing = Arc::new(failing);
    let rb = rt.block_on(rollback(
        &undos,
        "r-test",
        Arc::clone(&failing) as Arc<dyn Provider>,
        journal_at(&dir.path().join("j2")),
        &Events::new("r-undo", false, true),
        &settings(),
        Default::default(),
        &Cancel::default(),
    ));
    let f = rb.failed.expect("rs-1's first undo fails");
    assert!(f.starts_with("rs-1 step 3"), "{f}");
    assert_eq!(rb.undone.len(), 6, "the other two chains are undone");
    assert_eq!(rb.left.len(), 2, "the rest of rs-1's chain: {:?}", rb.left);
    let account = failing.account.lock().unwrap();
    for (id, ty) in [
        ("i-00000000", "m5.large"),
        ("i-00000001", "m5.xlarge"),
        ("i-00000002", "m5.large"),
    ] {
        assert_eq!(account.instances[id].instance_type, ty, "{id}");
        assert_eq!(account.instances[id].state, InstanceState::Running, "{id}");
    }
}
