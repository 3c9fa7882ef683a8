//! The one harness every integration test drives pare through: a working
//! directory of its own, and for every command the same pinned clock, user
//! and host (as jj's test environment does), colour off. Nothing sleeps to
//! wait for a running pare: tests pause it at a named point (see
//! `pare::hooks`) and wait for the file that says it got there.

use assert_cmd::Command;
use pare::provider::Inventory;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The time every command sees, unless a test moves it (`run_at`).
pub const NOW: &str = "2026-11-27T12:00:00Z";

/// The pinned time, `hours` later.
pub fn at(hours: u64) -> String {
    let base = pare::clock::parse_rfc3339(NOW).expect("NOW parses");
    pare::clock::rfc3339(base + Duration::from_secs(hours * 3600))
}

/// `pare` in `dir` with the pinned environment.
pub fn pare_in(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pare").expect("the pare binary is built");
    cmd.current_dir(dir)
        .env_remove("PARE_LOG")
        .env_remove("PARE_STATE_DIR")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("PARE_FAKE_NOW", NOW)
        .env("PARE_FAKE_USER", "tester")
        .env("PARE_FAKE_HOST", "testbox");
    cmd
}

/// `pare` in `dir` with the pinned environment, as a process to start and
/// signal (for tests that pause it at a hook).
pub fn process_in(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pare"));
    cmd.current_dir(dir)
        .env_remove("PARE_LOG")
        .env_remove("PARE_STATE_DIR")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("CI")
        .env("NO_COLOR", "1")
        .env("PARE_FAKE_NOW", NOW)
        .env("PARE_FAKE_USER", "tester")
        .env("PARE_FAKE_HOST", "testbox");
    cmd
}

/// (exit code, stdout, stderr) of a finished command.
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("pare runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The quickstart's account file.
pub fn quickstart_account() -> String {
    std::fs::read_to_string(super::root().join("examples/quickstart/account.yaml")).unwrap()
}

/// A plan that only makes reversible changes, over the quickstart account.
pub const REVERSIBLE_PLAN: &str = "version: 1
name: reversible
provider: { sandbox: { seed: account.yaml } }
approvals: [ { by: t@example.com, covers: [\"*\"] } ]
recommendations:
  - { id: gp3, action: storage, volume: vol-0a1b2c3d4e5f60001, to: gp3 }
  - { id: size, action: rightsize, instance: i-0a1b2c3d4e5f60001, to: m5.large, depends_on: [gp3] }
  - { id: sleep, action: hibernate, instance: i-0a1b2c3d4e5f60002 }
  - { id: kill, action: terminate, instance: i-0a1b2c3d4e5f60003 }
  - { id: spot, action: spot, instance: i-0a1b2c3d4e5f60004, max_price_usd_hour: 0.2 }
  - { id: asg, action: autoscale, group: web-asg, desired: 2, min: 2 }
  - { id: scratch, action: storage, volume: vol-0a1b2c3d4e5f60009, delete: true }
  - { id: mon, action: config, fix: disable-detailed-monitoring, instance: i-0a1b2c3d4e5f60005, depends_on: [kill] }
";

/// A sandbox account and plan in a directory of their own.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// `plan` as plan.yaml and `account` as account.yaml, the sandbox seeded.
    pub fn new(plan: &str, account: &str) -> Sandbox {
        let s = Sandbox::unseeded(plan, account);
        let (code, _, err) = s.run(&["sandbox", "reset", "plan.yaml"]);
        assert_eq!(code, 0, "{err}");
        s
    }

    /// The files only: the sandbox is seeded by the first command.
    pub fn unseeded(plan: &str, account: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("account.yaml"), account).unwrap();
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file into the directory.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `pare ARGS` here.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = pare_in(self.path());
        c.args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        output(&mut self.cmd(args))
    }

    /// `run`, with the clock `hours` ahead: AWS allows a volume's next
    /// modification six hours after the last, so undoing a retype waits.
    pub fn run_at(&self, args: &[&str], hours: u64) -> (i32, String, String) {
        output(self.cmd(args).env("PARE_FAKE_NOW", at(hours)))
    }

    /// The sandbox account as it stands.
    pub fn account(&self) -> Inventory {
        account_in(self.path())
    }

    /// The runs, newest first, as `pare history --format json` gives them.
    pub fn history(&self) -> Vec<serde_json::Value> {
        history_in(self.path())
    }

    pub fn last_run(&self) -> serde_json::Value {
        self.history().remove(0)
    }

    /// `pare ARGS` here as a process to start (pinned environment).
    pub fn process(&self, args: &[&str]) -> std::process::Command {
        let mut c = process_in(self.path());
        c.args(args);
        c
    }
}

/// The sandbox account in `dir`'s state (replaying a log a killed run left,
/// each operation at the time it was made).
pub fn account_in(dir: &Path) -> Inventory {
    let text = std::fs::read_to_string(dir.join(".pare/sandbox.yaml")).unwrap();
    let mut inv = pare::provider::sandbox::parse_account("sandbox.yaml", &text).unwrap();
    let log = match inv.log_generation {
        0 => "sandbox.log".to_string(),
        n => format!("sandbox.log.{n}"),
    };
    if let Ok(log) = std::fs::read_to_string(dir.join(".pare").join(log)) {
        for line in log.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let op: pare::provider::Op = serde_json::from_value(v["op"].clone()).unwrap();
            let at = v["at"]
                .as_str()
                .and_then(pare::clock::parse_rfc3339)
                .unwrap_or_else(SystemTime::now);
            inv.apply_at(&op, at).unwrap();
        }
    }
    inv
}

/// The runs in `dir`'s state, newest first.
pub fn history_in(dir: &Path) -> Vec<serde_json::Value> {
    let (code, out, err) = output(pare_in(dir).args(["history", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The recreated ids a run recorded: old → new.
pub fn renamed(run: &serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_value(run["renamed"].clone()).unwrap_or_default()
}

/// Every resource of `before` is back in `after`, except `lost` ones;
/// recreated ones are found through `renamed` (old → new).
pub fn assert_restored(
    before: &Inventory,
    after: &Inventory,
    renamed: &BTreeMap<String, String>,
    lost: &[&str],
) {
    let current = |id: &str| renamed.get(id).cloned().unwrap_or_else(|| id.to_string());
    let back: BTreeMap<String, String> = renamed
        .iter()
        .map(|(o, n)| (n.clone(), o.clone()))
        .collect();
    let original = |id: String| back.get(&id).cloned().unwrap_or(id);
    for (id, b) in &before.instances {
        if lost.contains(&id.as_str()) {
            continue;
        }
        let mut now = after
            .instance(&current(id))
            .unwrap_or_else(|| panic!("{id} is gone"))
            .clone();
        if now.id != *id {
            now.image = b.image.clone(); // relaunched from its backup image
        }
        now.id = original(now.id);
        assert_eq!(&now, b, "instance {id} not restored");
    }
    for (id, b) in &before.volumes {
        if lost.contains(&id.as_str()) {
            continue;
        }
        let mut now = after
            .volume(&current(id))
            .unwrap_or_else(|| panic!("{id} is gone"))
            .clone();
        now.id = original(now.id);
        now.attached_to = now.attached_to.map(original);
        assert_eq!(&now, b, "volume {id} not restored");
    }
    for (id, b) in &before.addresses {
        if lost.contains(&id.as_str()) {
            continue;
        }
        let mut now = after
            .address(id)
            .unwrap_or_else(|| panic!("{id} is gone"))
            .clone();
        now.instance = now.instance.map(original);
        assert_eq!(&now, b, "address {id} not restored");
    }
    assert_eq!(after.auto_scaling_groups, before.auto_scaling_groups);
    for (id, b) in &before.snapshots {
        if !lost.contains(&id.as_str()) {
            assert_eq!(after.snapshot(id), Some(b), "snapshot {id}");
        }
    }
}

/// Waits (polling, at most a minute) until `path` exists: how a test knows
/// a paused pare got where it was asked to pause.
pub fn wait_for(path: &Path) {
    let started = std::time::Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
