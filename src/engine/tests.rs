//! The engine's batching: one call for many instances, split when refused,
//! every step journaled on its own, and rollback batched the same way.

use super::*;
use crate::durable::FileLog;
use crate::provider::{Batch, Instance, Inventory, ProviderError, Query};
use crate::vocabulary::{
    CloudError, InstanceState, Inverse, Lifecycle, Monitoring, Op, Outcome, Ref, Step,
};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// An account that refuses, all or nothing, any call naming a `bad` instance,
/// and counts its calls.
struct Counting {
    account: Mutex<Inventory>,
    bad: BTreeSet<String>,
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
                id,
                instance_type: "m5.large".into(),
                state: InstanceState::Running,
                zone: "us-east-1a".into(),
                image: None,
                lifecycle: Lifecycle::OnDemand,
                hibernation: false,
                monitoring: Monitoring::Basic,
                tags: Default::default(),
                stop_reason: None,
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
