//! The chaos run: random reversible plans over random sandbox accounts,
//! injected faults, a kill at a random journal record (of the apply, and of
//! the rollbacks that recover it), then recovery with the clock moved past
//! AWS's six-hour rule. Every resource must come back exactly once: as it
//! was, no copy left running, nothing lost.
//!
//! Seeded and bounded here (`PARE_CHAOS_CASES`, default 12;
//! `PARE_CHAOS_SEED` picks another sequence). The long run before resolving
//! an issue: `PARE_CHAOS_CASES=2000 cargo test --no-default-features --test cli
//! chaos -- --nocapture` (the sandbox needs no AWS SDK build; about 4 minutes).

use super::harness::{Sandbox, account_in, assert_restored, at, output, pare_in};
use pare::provider::Inventory;
use std::collections::BTreeMap;

/// Where a case keeps its state: the local directory, or S3
/// (`team_state.rs`), whose cases run the same way.
pub trait Where {
    /// Points a command at the state.
    fn prepare(&self, _cmd: &mut assert_cmd::Command) {}
    /// The sandbox account as it stands.
    fn account(&self, s: &Sandbox) -> Inventory {
        account_in(s.path())
    }
    /// The sandbox's faults removed (the cloud recovers), keeping its state.
    fn heal(&self, s: &Sandbox) {
        let path = s.path().join(".pare/sandbox.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, without_faults(&text)).unwrap();
    }
    /// After a run was killed: what its runner's successor does before
    /// going on (a local lock is released by the system; S3's is unlocked).
    fn after_kill(&self, _s: &Sandbox, _hours: u64) {}
}

/// The state in the sandbox's own `.pare/`.
pub struct Local;
impl Where for Local {}

/// xorshift64: one `u64` describes a whole case.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const TYPES: [&str; 4] = ["m5.large", "m5.xlarge", "c5.large", "t3.large"];

/// An account: `n` instances (some stopped), data volumes on some, a group.
fn account(rng: &mut Rng, n: u64) -> String {
    let mut s = String::from("region: us-east-1\ninstances:\n");
    let mut volumes = String::from("volumes:\n");
    for k in 0..n {
        let state = if rng.chance(25) { "stopped" } else { "running" };
        let ty = TYPES[rng.below(4) as usize];
        let mon = if rng.chance(50) { "detailed" } else { "basic" };
        s.push_str(&format!(
            "  - {{ id: i-{k:08x}, type: {ty}, state: {state}, zone: us-east-1a, image: ami-0c55b159, hibernation: false, monitoring: {mon}, tags: {{ Name: host-{k} }} }}\n"
        ));
        if rng.chance(50) {
            volumes.push_str(&format!(
                "  - {{ id: vol-{k:08x}, type: gp2, size_gb: 100, iops: 300, zone: us-east-1a, attached_to: i-{k:08x}, tags: {{ Name: data-{k} }} }}\n"
            ));
        }
        if rng.chance(30) {
            volumes.push_str(&format!(
                "  - {{ id: vol-1{k:07x}, type: gp2, size_gb: 50, iops: 150, zone: us-east-1a, tags: {{ Name: spare-{k} }} }}\n"
            ));
        }
    }
    if volumes.len() > "volumes:\n".len() {
        s.push_str(&volumes);
    }
    s.push_str("auto_scaling_groups:\n  - { name: web, min: 2, max: 10, desired: 4, instance_type: m5.large }\n");
    s
}

/// A plan of reversible recommendations, one per resource at most.
fn plan(rng: &mut Rng, n: u64, account: &str) -> String {
    let mut recs = Vec::new();
    for k in 0..n {
        let i = format!("i-{k:08x}");
        let body = match rng.below(7) {
            0 => format!(
                "action: rightsize, instance: {i}, to: {}",
                TYPES[rng.below(4) as usize]
            ),
            1 => format!("action: hibernate, instance: {i}, mode: stop"),
            2 => format!("action: terminate, instance: {i}"),
            3 if account.contains(&format!("{i}, type: m5.large, state: running"))
                || account.contains(&format!("{i}, type: m5.xlarge, state: running"))
                || account.contains(&format!("{i}, type: c5.large, state: running"))
                || account.contains(&format!("{i}, type: t3.large, state: running")) =>
            {
                format!("action: spot, instance: {i}, max_price_usd_hour: 0.01")
            }
            4 => format!("action: config, fix: disable-detailed-monitoring, instance: {i}"),
            _ => continue,
        };
        recs.push((format!("i{k}"), body));
        let v = format!("vol-{k:08x}");
        if account.contains(&v) && rng.chance(40) {
            // (An attached volume cannot be deleted: only retyped.)
            recs.push((
                format!("v{k}"),
                format!("action: storage, volume: {v}, to: gp3"),
            ));
        }
        let spare = format!("vol-1{k:07x}");
        if account.contains(&spare) && rng.chance(50) {
            recs.push((
                format!("s{k}"),
                format!("action: storage, volume: {spare}, delete: true"),
            ));
        }
    }
    if recs.is_empty() || rng.chance(50) {
        recs.push((
            "asg".into(),
            "action: autoscale, group: web, desired: 2, min: 2".into(),
        ));
    }
    let mut out = String::from(
        "version: 1\nname: chaos\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n",
    );
    for (k, (id, body)) in recs.iter().enumerate() {
        let dep = if k > 0 && rng.chance(20) {
            format!(", depends_on: [{}]", recs[rng.below(k as u64) as usize].0)
        } else {
            String::new()
        };
        out.push_str(&format!("  - {{ id: {id}, {body}{dep} }}\n"));
    }
    out
}

/// Faults on some operations: permanent on a given call, or transient.
fn faults(rng: &mut Rng) -> String {
    const OPS: [&str; 10] = [
        "stop_instance",
        "start_instance",
        "set_instance_type",
        "create_image",
        "launch_instance",
        "terminate_instance",
        "modify_volume",
        "create_snapshot",
        "delete_volume",
        "set_monitoring",
    ];
    let mut s = format!("faults:\n  seed: {}\n  ops:\n", rng.below(1000));
    let empty = s.len();
    for op in OPS {
        match rng.below(10) {
            0 => s.push_str(&format!(
                "    {op}: {{ fail_nth: [{}] }}\n",
                1 + rng.below(3)
            )),
            1 => s.push_str(&format!(
                "    {op}: {{ error_rate: 0.3, code: RequestLimitExceeded, retryable: true }}\n"
            )),
            _ => {}
        }
    }
    if s.len() == empty {
        s.push_str("    {}\n");
    }
    s
}

/// Runs `args` in the sandbox, killed after journal record `kill` if given;
/// whether it was killed.
fn run(w: &dyn Where, s: &Sandbox, args: &[&str], hours: u64, kill: Option<u64>) -> (bool, String) {
    let mut cmd = pare_in(s.path());
    w.prepare(&mut cmd);
    cmd.args(args).env("PARE_FAKE_NOW", at(hours));
    if let Some(k) = kill {
        cmd.env("PARE_TEST_KILL_AFTER_RECORD", k.to_string());
    }
    let (code, _, err) = output(&mut cmd);
    let killed = code == -1;
    if killed {
        w.after_kill(s, hours);
    }
    (killed, err)
}

/// The runs, newest first.
fn history(w: &dyn Where, s: &Sandbox) -> Vec<serde_json::Value> {
    let mut cmd = pare_in(s.path());
    w.prepare(&mut cmd);
    let (code, out, err) = output(cmd.args(["history", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// A sandbox account's text without its `faults:` section.
pub fn without_faults(text: &str) -> String {
    text.split_inclusive('\n')
        .scan(false, |skipping, line| {
            if line.starts_with("faults:") {
                *skipping = true;
            } else if !line.starts_with(' ') {
                *skipping = false;
            }
            Some(if *skipping {
                String::new()
            } else {
                line.to_string()
            })
        })
        .collect()
}

/// What a case went through, for the summary line.
#[derive(Default)]
pub struct Seen {
    pub applies: u64,
    pub killed: u64,
    pub rolled_back_by_apply: u64,
    pub rollbacks_killed: u64,
    pub undone: u64,
}

pub fn case(w: &dyn Where, seed: u64, seen: &mut Seen) {
    let mut rng = Rng(seed | 1);
    let n = 2 + rng.below(5);
    let acct = account(&mut rng, n);
    let plan_text = plan(&mut rng, n, &acct);
    let with_faults = format!("{acct}{}", faults(&mut rng));
    let s = Sandbox::unseeded(&plan_text, &with_faults);
    s.write("pare.toml", "[policy]\nrequire_approval_at = \"never\"\n");
    let (killed, err) = run(w, &s, &["sandbox", "reset", "plan.yaml"], 0, None);
    assert!(!killed, "{err}");
    let before = w.account(&s);
    let ctx = format!("seed {seed}\n{plan_text}{with_faults}");

    // The apply: maybe killed at a random record.
    let kill = rng.chance(60).then(|| 1 + rng.below(40));
    let (killed, err) = run(
        w,
        &s,
        &["apply", "plan.yaml", "--auto-approve", "-q"],
        0,
        kill,
    );
    seen.killed += u64::from(killed);
    let runs = history(w, &s);
    let Some(apply) = runs.iter().find(|r| r["kind"] == "apply") else {
        // Killed before its record, or nothing to do: nothing may have changed.
        assert_eq!(w.account(&s), before, "{ctx}\n{err}");
        return;
    };
    let apply_id = apply["id"].as_str().unwrap().to_string();
    seen.applies += 1;
    seen.rolled_back_by_apply += u64::from(apply["status"] == "rolled_back");

    // Recovery, seven hours later each time, the cloud healed after the
    // first attempt; the first rollbacks may be killed too.
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        assert!(attempt < 8, "no end to the recovery\n{ctx}");
        if attempt == 2 {
            w.heal(&s);
        }
        let kill = (attempt < 3 && rng.chance(50)).then(|| 1 + rng.below(12));
        let (killed, err) = run(
            w,
            &s,
            &["rollback", "--run", &apply_id, "--auto-approve"],
            7 * attempt,
            kill,
        );
        if killed {
            seen.rollbacks_killed += 1;
            continue;
        }
        if err.contains("already rolled back") {
            break;
        }
        let last = history(w, &s).remove(0);
        if last["kind"] == "rollback" && last["status"] == "completed" {
            break;
        }
    }
    let after = w.account(&s);
    seen.undone += history(w, &s)
        .iter()
        .filter_map(|r| r["steps_done"].as_u64().filter(|_| r["kind"] == "rollback"))
        .sum::<u64>();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for r in history(w, &s) {
        renamed.extend(super::harness::renamed(&r));
    }
    assert_restored(&before, &after, &renamed, &[]);
    // Exactly once: no copy left running, no volume made twice.
    let live = |inv: &pare::provider::Inventory| {
        inv.instances
            .values()
            .filter(|i| i.state != pare::provider::InstanceState::Terminated)
            .count()
    };
    assert_eq!(live(&after), live(&before), "instances\n{ctx}");
    assert_eq!(after.volumes.len(), before.volumes.len(), "volumes\n{ctx}");
}

#[test]
fn chaos() {
    let cases: u64 = std::env::var("PARE_CHAOS_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("PARE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a05);
    let mut rng = Rng(seed | 1);
    let mut seen = Seen::default();
    for _ in 0..cases {
        case(&Local, rng.next(), &mut seen);
    }
    eprintln!(
        "chaos: {cases} cases, {} applies ({} killed, {} rolled back by themselves), {} rollbacks killed, {} undos by rollbacks; every resource back once",
        seen.applies, seen.killed, seen.rolled_back_by_apply, seen.rollbacks_killed, seen.undone
    );
    assert!(
        seen.applies > cases / 2 && seen.undone > 0,
        "the cases exercise too little"
    );
}
