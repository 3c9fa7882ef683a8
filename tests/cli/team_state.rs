//! Team state in S3, through the binary, against moto's S3 on loopback
//! (started by `scripts/test`, one request at a time so conditional writes
//! are atomic as they are on S3): the same scenarios on the local directory
//! and on S3, recovery from another runner, contention, a store that
//! throttles, fails or ignores conditions (a loopback proxy in front of S3).

use super::harness::{
    REVERSIBLE_PLAN, Sandbox, account_in, assert_restored, output, quickstart_account, renamed,
};
use pare::provider::Inventory;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(super) const BUCKET: &str = "pare-cli";

/// The S3 endpoint, or a failure that says how to get one. Never a skip.
pub(super) fn endpoint() -> String {
    std::env::var("PARE_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PARE_TEST_S3_ENDPOINT is not set: the team-state tests need the local S3 endpoint.\n\
             Run the whole suite with scripts/test, or start it with `scripts/moto start s3` and\n\
             export PARE_TEST_S3_ENDPOINT=<the URL it prints>"
        )
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client of the endpoint itself (never through a test's proxy).
fn s3() -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .force_path_style(true)
            .credentials_provider(creds)
            .http_client(pare::provider::aws::https_client())
            .build(),
    )
}

/// A prefix of its own for one test (and the bucket, made once).
pub(super) fn fresh_prefix(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let rt = rt();
    let _ = rt.block_on(s3().create_bucket().bucket(BUCKET).send());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every object under `prefix`: key → bytes.
fn objects(prefix: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let rt = rt();
    let c = s3();
    rt.block_on(async {
        let mut out = std::collections::BTreeMap::new();
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in page.contents() {
                let k = o.key().unwrap().to_string();
                let got = c.get_object().bucket(BUCKET).key(&k).send().await.unwrap();
                let bytes = got.body.collect().await.unwrap().into_bytes().to_vec();
                out.insert(k[prefix.len()..].to_string(), bytes);
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        out
    })
}

/// The sandbox account kept under `prefix`, its log replayed, read from
/// the objects themselves (as `account_in` reads a local state).
fn account_s3(prefix: &str) -> Inventory {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".pare");
    std::fs::create_dir_all(&state).unwrap();
    let mut logs: std::collections::BTreeMap<String, String> = Default::default();
    for (k, v) in objects(prefix) {
        if let Some(name) = k.strip_prefix("docs/") {
            std::fs::write(state.join(name), v).unwrap();
        } else if let Some(rest) = k.strip_prefix("logs/") {
            let name = rest.split('/').next().unwrap().to_string();
            logs.entry(name)
                .or_default()
                .push_str(&String::from_utf8(v).unwrap());
        }
    }
    for (name, text) in logs {
        std::fs::write(state.join(name), text).unwrap();
    }
    account_in(dir.path())
}

/// Run `id`'s journal under `prefix`, as written.
fn journal_s3(prefix: &str, id: &str) -> String {
    objects(&format!("{prefix}runs/{id}/journal/"))
        .into_values()
        .map(|b| String::from_utf8(b).unwrap())
        .collect()
}

/// Where a scenario keeps its state.
#[derive(Clone)]
enum Backend {
    Local,
    /// The prefix, and the endpoint pare is pointed at (S3's, or a proxy's).
    S3 {
        prefix: String,
        endpoint: String,
    },
}

impl Backend {
    fn s3(tag: &str) -> Backend {
        Backend::S3 {
            prefix: fresh_prefix(tag),
            endpoint: endpoint(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::S3 { .. } => "s3",
        }
    }
}

/// A sandbox plan in a directory, its state on `backend`.
struct Team {
    sandbox: Sandbox,
    backend: Backend,
}

impl Team {
    fn new(plan: &str, account: &str, backend: Backend) -> Team {
        let t = Team {
            sandbox: Sandbox::unseeded(plan, account),
            backend,
        };
        let (code, _, err) = t.run(&["sandbox", "reset", "plan.yaml"]);
        assert_eq!(code, 0, "{err}");
        t
    }

    /// Another runner: the plan and its seed only, the same state.
    fn elsewhere(&self) -> Team {
        let plan = std::fs::read_to_string(self.sandbox.path().join("plan.yaml")).unwrap();
        let account = std::fs::read_to_string(self.sandbox.path().join("account.yaml")).unwrap();
        Team {
            sandbox: Sandbox::unseeded(&plan, &account),
            backend: self.backend.clone(),
        }
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.sandbox.cmd(args);
        with_backend(&mut c, &self.backend);
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        output(&mut self.cmd(args))
    }

    fn run_at(&self, args: &[&str], hours: u64) -> (i32, String, String) {
        output(
            self.cmd(args)
                .env("PARE_FAKE_NOW", super::harness::at(hours)),
        )
    }

    fn account(&self) -> Inventory {
        match &self.backend {
            Backend::Local => self.sandbox.account(),
            Backend::S3 { prefix, .. } => account_s3(prefix),
        }
    }

    fn history(&self) -> Vec<serde_json::Value> {
        let (code, out, err) = self.run(&["history", "--format", "json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    }
}

fn with_backend(c: &mut assert_cmd::Command, backend: &Backend) {
    if let Backend::S3 { prefix, endpoint } = backend {
        c.env("PARE_STATE", format!("s3://{BUCKET}/{prefix}"))
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("AWS_PROFILE");
    }
}

/// The lock id a refusal names (`pare unlock l-…`), the lines of the
/// diagnostic joined (it wraps at spaces).
fn lock_id(err: &str) -> String {
    let joined = err
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let at = joined
        .find("pare unlock l-")
        .unwrap_or_else(|| panic!("no unlock command in: {err}"));
    let id: String = joined[at + "pare unlock ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    assert_eq!(id.len(), 18, "{err}");
    id
}

#[test]
fn apply_rollback_and_the_six_hour_rule_work_the_same_on_each_backend() {
    for backend in [Backend::Local, Backend::s3("lifecycle")] {
        let name = backend.name();
        let t = Team::new(REVERSIBLE_PLAN, &quickstart_account(), backend);
        let before = t.account();
        let (code, out, err) = t.run(&["apply", "plan.yaml", "--auto-approve"]);
        assert_eq!(code, 0, "{name}: {out}{err}");
        let apply_id = t.history()[0]["id"].as_str().unwrap().to_string();
        // A volume's retype is undone only six hours later: exit 4, then done.
        let (code, _, err) = t.run(&["rollback", "--last", "--auto-approve"]);
        assert_eq!(code, 4, "{name}: {err}");
        assert!(err.contains("NOT YET"), "{name}: {err}");
        let (code, _, err) = t.run_at(&["rollback", "--run", &apply_id, "--auto-approve"], 7);
        assert_eq!(code, 0, "{name}: {err}");
        let h = t.history();
        assert_eq!(h.len(), 3, "{name}: {h:#?}");
        assert_restored(&before, &t.account(), &renamed(&h[0]), &[]);
        // It is not undone twice, and a new run may start.
        let (code, _, err) = t.run_at(&["rollback", "--run", &apply_id, "--auto-approve"], 8);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains("rolled back"), "{name}: {err}");
        let (code, _, err) = t.run_at(&["plan", "plan.yaml"], 8);
        assert_eq!(code, 0, "{name}: {err}");
    }
}

#[test]
fn a_run_killed_on_one_runner_is_refused_and_rolled_back_from_another() {
    // How many records a whole run writes (on a probe state).
    let probe = Team::new(REVERSIBLE_PLAN, &quickstart_account(), Backend::s3("probe"));
    assert_eq!(probe.run(&["apply", "plan.yaml", "--auto-approve"]).0, 0);
    let Backend::S3 { prefix, .. } = &probe.backend else {
        unreachable!()
    };
    let id = probe.history()[0]["id"].as_str().unwrap().to_string();
    let total = journal_s3(prefix, &id).lines().count();
    assert!(total >= 30, "only {total} journal records");
    // At least ten points, spread over the whole run.
    let points: Vec<usize> = (1..=total).step_by((total / 12).max(1)).collect();
    assert!(points.len() >= 10, "{points:?}");
    for n in points {
        let a = Team::new(REVERSIBLE_PLAN, &quickstart_account(), Backend::s3("kill"));
        let before = a.account();
        let out = a
            .cmd(&["apply", "plan.yaml", "--auto-approve", "-q"])
            .env("PARE_TEST_KILL_AFTER_RECORD", n.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.code().is_none(),
            "run {n} should have been killed"
        );
        // Runner A is gone; runner B has the plan and nothing else.
        let b = a.elsewhere();
        // Its lock is still there, live as far as anyone can tell...
        let (code, _, err) = b.run(&["apply", "plan.yaml", "--auto-approve"]);
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(
            err.contains("holds the lock") && err.contains("--force"),
            "kill {n}: {err}"
        );
        // ...until its lease has passed without a heartbeat: expired, and
        // released without --force.
        let (code, _, err) = b.run_at(&["apply", "plan.yaml", "--auto-approve"], 1);
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(
            err.contains("expired") && err.contains("tester@testbox"),
            "kill {n}: {err}"
        );
        let lock = lock_id(&err);
        let (code, out, err) = b.run_at(&["unlock", &lock], 1);
        assert_eq!(code, 0, "kill {n}: {out}{err}");
        // Unlocking resolves nothing: the interrupted run still blocks.
        let (code, _, err) = b.run_at(&["apply", "plan.yaml", "--auto-approve"], 1);
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(
            err.contains("was interrupted") && err.contains("pare rollback --run"),
            "kill {n}: {err}"
        );
        let run = b.history()[0]["id"].as_str().unwrap().to_string();
        let (code, _, err) = b.run_at(&["rollback", "--run", &run, "--auto-approve"], 7);
        assert_eq!(code, 0, "kill {n}: rollback failed: {err}");
        let h = b.history();
        assert_restored(&before, &b.account(), &renamed(&h[0]), &[]);
        assert_eq!(b.run_at(&["plan", "plan.yaml"], 7).0, 0, "kill {n}");
    }
}

#[test]
fn twenty_applies_on_one_prefix_one_runs_the_others_are_told_who() {
    let account = format!("{}faults:\n  latency_ms: 60\n", quickstart_account());
    let first = Team::new(REVERSIBLE_PLAN, &account, Backend::s3("twenty"));
    let teams: Vec<Team> = (0..20).map(|_| first.elsewhere()).collect();
    let children: Vec<_> = teams
        .iter()
        .map(|t| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("pare"));
            c.current_dir(t.sandbox.path())
                .args(["apply", "plan.yaml", "--auto-approve", "-q"])
                .env("NO_COLOR", "1")
                .env("PARE_FAKE_NOW", super::harness::NOW)
                .env("PARE_FAKE_USER", "tester")
                .env("PARE_FAKE_HOST", "testbox")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if let Backend::S3 { prefix, endpoint } = &t.backend {
                c.env("PARE_STATE", format!("s3://{BUCKET}/{prefix}"))
                    .env("AWS_ENDPOINT_URL", endpoint)
                    .env("AWS_ACCESS_KEY_ID", "testing")
                    .env("AWS_SECRET_ACCESS_KEY", "testing")
                    .env("AWS_REGION", "us-east-1")
                    .env("AWS_EC2_METADATA_DISABLED", "true");
            }
            c.spawn().unwrap()
        })
        .collect();
    let mut ran = 0;
    let mut refused = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => ran += 1,
            Some(1) => {
                assert!(
                    err.contains("holds the lock") && err.contains("tester@testbox"),
                    "{err}"
                );
                refused += 1;
            }
            other => panic!("{other:?}: {err}"),
        }
    }
    assert_eq!((ran, refused), (1, 19));
    // The account is what one apply makes: one run, and nothing left to do.
    assert_eq!(first.history().len(), 1);
    let (code, out, err) = first.run(&["plan", "plan.yaml", "--detailed-exitcode"]);
    assert_eq!(code, 0, "nothing left to change: {out}{err}");
}

#[test]
fn a_state_moves_to_s3_and_back_and_its_runs_are_undone_there() {
    let t = Team::new(REVERSIBLE_PLAN, &quickstart_account(), Backend::Local);
    let before = t.account();
    assert_eq!(t.run(&["apply", "plan.yaml", "--auto-approve"]).0, 0);
    let prefix = fresh_prefix("migrate");
    let url = format!("s3://{BUCKET}/{prefix}");
    let s3 = Backend::S3 {
        prefix: prefix.clone(),
        endpoint: endpoint(),
    };
    let mut c = t.sandbox.cmd(&["state", "migrate", "--to", &url]);
    with_backend(&mut c, &s3);
    c.env_remove("PARE_STATE");
    let (code, out, err) = output(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("1 run"), "{err}");
    // A second migration to the same place is refused: it is not empty.
    let mut c = t.sandbox.cmd(&["state", "migrate", "--to", &url]);
    with_backend(&mut c, &s3);
    c.env_remove("PARE_STATE");
    let (code, _, err) = output(&mut c);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already holds a state"), "{err}");
    // The run is undone from the copy, on another machine.
    let b = Team {
        sandbox: Sandbox::unseeded(REVERSIBLE_PLAN, &quickstart_account()),
        backend: s3.clone(),
    };
    let (code, _, err) = b.run_at(&["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert_restored(&before, &b.account(), &renamed(&b.history()[0]), &[]);
    // And back to a directory: the same history, rollback included.
    let (code, out, err) = b.run(&["state", "migrate", "--to", "back"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = output(super::harness::pare_in(b.sandbox.path()).args([
        "--state-dir",
        "back",
        "history",
        "--format",
        "json",
    ]));
    assert_eq!(code, 0, "{err}");
    let h: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["status"], "completed");
}

#[test]
fn a_migration_waits_for_an_unresolved_run() {
    let t = Team::new(REVERSIBLE_PLAN, &quickstart_account(), Backend::Local);
    let out = t
        .cmd(&["apply", "plan.yaml", "--auto-approve", "-q"])
        .env("PARE_TEST_KILL_AFTER_RECORD", "5")
        .output()
        .unwrap();
    assert!(out.status.code().is_none());
    let (code, _, err) = t.run(&["state", "migrate", "--to", "elsewhere"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("was interrupted"), "{err}");
    assert!(
        !t.sandbox
            .path()
            .join("elsewhere/runs")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

/// A loopback proxy in front of the S3 endpoint: each request is passed
/// on or answered by `decide` (given the method, path and the number of
/// PUTs before it).
struct Proxy {
    url: String,
    puts: Arc<AtomicUsize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Forward,
    /// 503 SlowDown, as S3 throttles.
    SlowDown,
    /// Passed on, and then answered 503 anyway: a write that happened
    /// but whose answer was lost, so the client tries it again.
    DoneButSlowDown,
    /// Forwarded without its If-None-Match / If-Match: a store that
    /// ignores conditional writes.
    Unconditional,
}

impl Proxy {
    fn start(decide: impl Fn(&str, &str, usize) -> Answer + Send + Sync + 'static) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = endpoint().trim_start_matches("http://").to_string();
        let puts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&puts);
        let decide = Arc::new(decide);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (upstream, counted, decide) =
                    (upstream.clone(), Arc::clone(&counted), Arc::clone(&decide));
                std::thread::spawn(move || serve(conn, &upstream, &counted, decide.as_ref()));
            }
        });
        Proxy { url, puts }
    }
}

/// One request on `conn`, then the connection is closed.
fn serve(
    mut conn: TcpStream,
    upstream: &str,
    puts: &AtomicUsize,
    decide: &(dyn Fn(&str, &str, usize) -> Answer + Send + Sync),
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let before = if method == "PUT" {
        puts.fetch_add(1, Ordering::SeqCst)
    } else {
        puts.load(Ordering::SeqCst)
    };
    let answer = decide(method, path, before);
    let slow_down = |mut conn: TcpStream| {
        let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        let _ = write!(
            conn,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if answer == Answer::SlowDown {
        slow_down(conn);
        return;
    }
    let mut out = String::new();
    for line in head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if answer == Answer::Unconditional
            && (lower.starts_with("if-none-match:") || lower.starts_with("if-match:"))
        {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    if up.write_all(out.as_bytes()).is_err() || up.write_all(&buf[head_end..]).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    if answer == Answer::DoneButSlowDown {
        slow_down(conn);
        return;
    }
    let _ = conn.write_all(&response);
}

fn through(proxy: &Proxy, tag: &str) -> Backend {
    Backend::S3 {
        prefix: fresh_prefix(tag),
        endpoint: proxy.url.clone(),
    }
}

#[test]
fn a_throttling_store_slows_the_run_down_and_nothing_happens_twice() {
    // The first two PUTs of the run are answered 503 SlowDown; the next
    // two are made and answered 503 all the same, and so are the first
    // journal chunk and the first history write after them: each is tried
    // again by the SDK and meets its own earlier write.
    let armed = Arc::new(AtomicUsize::new(usize::MAX));
    let at = Arc::clone(&armed);
    let once = Arc::new(std::sync::Mutex::new((true, true)));
    let proxy = Proxy::start(move |method, path, puts| {
        let from = at.load(Ordering::SeqCst);
        if method != "PUT" {
            return Answer::Forward;
        }
        match puts.checked_sub(from) {
            None => Answer::Forward,
            Some(0..2) => Answer::SlowDown,
            Some(2..4) => Answer::DoneButSlowDown,
            Some(_) => {
                let mut once = once.lock().unwrap();
                if path.contains("/journal/") && once.0 {
                    once.0 = false;
                    Answer::DoneButSlowDown
                } else if path.contains("history.json") && once.1 {
                    once.1 = false;
                    Answer::DoneButSlowDown
                } else {
                    Answer::Forward
                }
            }
        }
    });
    let t = Team::new(
        REVERSIBLE_PLAN,
        &quickstart_account(),
        through(&proxy, "slowdown"),
    );
    armed.store(proxy.puts.load(Ordering::SeqCst), Ordering::SeqCst);
    let (code, out, err) = t.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 0, "{out}{err}");
    let h = t.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "applied");
    // Every record once: no intent, outcome or chunk written twice.
    let Backend::S3 { prefix, .. } = &t.backend else {
        unreachable!()
    };
    let journal = journal_s3(prefix, h[0]["id"].as_str().unwrap());
    let lines: Vec<&str> = journal.lines().collect();
    let unique: std::collections::BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), unique.len(), "a record written twice");
    let (code, out, err) = t.run(&["plan", "plan.yaml", "--detailed-exitcode"]);
    assert_eq!(code, 0, "the account is what one apply makes: {out}{err}");
}

#[test]
fn when_the_journal_cannot_be_written_the_run_stops_before_the_call() {
    // From the third journal chunk on, every PUT of the journal fails
    // (the SDK's retries included).
    let chunks = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&chunks);
    let proxy = Proxy::start(move |method, path, _| {
        if method == "PUT" && path.contains("/journal/") && seen.fetch_add(1, Ordering::SeqCst) >= 2
        {
            Answer::SlowDown
        } else {
            Answer::Forward
        }
    });
    let t = Team::new(
        REVERSIBLE_PLAN,
        &quickstart_account(),
        through(&proxy, "journal-fails"),
    );
    let before = t.account();
    let (code, out, err) = t.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("journal"), "{err}");
    // Every change the account shows has its intent in the journal.
    let Backend::S3 { prefix, .. } = &t.backend else {
        unreachable!()
    };
    let run = t.history()[0]["id"].as_str().unwrap().to_string();
    let journal = journal_s3(prefix, &run);
    let after = t.account();
    for (id, b) in &before.instances {
        let now = after.instance(id);
        if now != Some(b) {
            assert!(
                journal.contains(id.as_str()),
                "{id} changed without an intent on record"
            );
        }
    }
    for (id, b) in &before.volumes {
        if after.volume(id) != Some(b) {
            assert!(
                journal.contains(id.as_str()),
                "{id} changed without an intent on record"
            );
        }
    }
}

#[test]
fn a_store_that_ignores_conditional_writes_is_refused_before_anything_changes() {
    let proxy = Proxy::start(|_, _, _| Answer::Unconditional);
    let t = Team {
        sandbox: Sandbox::unseeded(REVERSIBLE_PLAN, &quickstart_account()),
        backend: through(&proxy, "unconditional"),
    };
    let (code, _, err) = t.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not honour conditional writes"), "{err}");
    let Backend::S3 { prefix, .. } = &t.backend else {
        unreachable!()
    };
    assert!(
        objects(prefix).is_empty(),
        "nothing left behind: {:?}",
        objects(prefix).keys()
    );
}

#[test]
fn state_settings_are_checked_with_their_place_in_pare_toml() {
    let t = Team {
        sandbox: Sandbox::unseeded(REVERSIBLE_PLAN, &quickstart_account()),
        backend: Backend::Local,
    };
    for (toml, needle) in [
        ("[state]\nbackend = \"s3\"\n", "needs a `bucket`"),
        (
            "[state]\nbackend = \"s3\"\nbucket = \"Bad_Bucket\"\n",
            "not an S3 bucket name",
        ),
        (
            "[state]\nbackend = \"s3\"\nbucket = \"ok-bucket\"\nprefix = \"a/../b\"\n",
            "not a usable prefix",
        ),
        (
            "[state]\nbucket = \"ok-bucket\"\n",
            "needs backend = \"s3\"",
        ),
        ("[state]\nbackend = \"ftp\"\n", "not a state backend"),
        (
            "[state]\nbackend = \"s3\"\nbucket = \"ok-bucket\"\nlease_s = 0\n",
            "between 1 and 86400",
        ),
    ] {
        t.sandbox.write("pare.toml", toml);
        let (code, _, err) = t.run(&["history"]);
        assert_eq!(code, 1, "{toml}: {err}");
        assert!(err.contains(needle), "{toml}: {err}");
        assert!(err.contains("pare.toml:"), "located: {err}");
    }
    std::fs::remove_file(t.sandbox.path().join("pare.toml")).unwrap();
    let (code, _, err) = t.run(&["--state", "s3://x/", "history"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not an S3 bucket name"), "{err}");
    // A typo of a URL never quietly becomes a directory on the runner.
    for typo in [
        "s3:/bucket/p/",
        "S3://bucket/p/",
        "gs://bucket/p/",
        "",
        "s3:x",
        "gs:bucket",
        "s3//bucket/p/",
        " s3://bucket/p/",
    ] {
        let (code, _, err) = t.run(&["--state", typo, "history"]);
        assert_eq!(code, 1, "{typo}: {err}");
        assert!(err.contains("config::bad-state"), "{typo}: {err}");
    }
    assert!(!t.sandbox.path().join("s3:").exists());
    t.sandbox.write(
        "pare.toml",
        "[state]\nbackend = \"s3\"\nbucket = \"ok-bucket\"\nregion = \"us-east-1\\n\"\n",
    );
    let (code, _, err) = t.run(&["history"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not an AWS region name") && err.contains("pare.toml:"),
        "{err}"
    );
}

/// The chaos run's cases, with the state in S3.
struct OnS3 {
    prefix: String,
}

impl super::chaos::Where for OnS3 {
    fn prepare(&self, cmd: &mut assert_cmd::Command) {
        with_backend(
            cmd,
            &Backend::S3 {
                prefix: self.prefix.clone(),
                endpoint: endpoint(),
            },
        );
    }

    fn account(&self, _: &Sandbox) -> Inventory {
        account_s3(&self.prefix)
    }

    fn heal(&self, _: &Sandbox) {
        let key = format!("{}docs/sandbox.yaml", self.prefix);
        let rt = rt();
        let c = s3();
        rt.block_on(async {
            let got = c
                .get_object()
                .bucket(BUCKET)
                .key(&key)
                .send()
                .await
                .unwrap();
            let text =
                String::from_utf8(got.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
            let healed = super::chaos::without_faults(&text);
            c.put_object()
                .bucket(BUCKET)
                .key(&key)
                .body(healed.into_bytes().into())
                .send()
                .await
                .unwrap();
        });
    }

    /// The killed run's lock stays behind; its successor unlocks it once
    /// its lease has passed (no --force), as the README says to.
    fn after_kill(&self, s: &Sandbox, hours: u64) {
        let Some(lock) = objects(&self.prefix).remove("lock") else {
            return;
        };
        let holder: serde_json::Value = serde_json::from_slice(&lock).unwrap();
        let id = holder["lock_id"].as_str().unwrap().to_string();
        let mut cmd = super::harness::pare_in(s.path());
        self.prepare(&mut cmd);
        let (code, out, err) = output(
            cmd.args(["unlock", &id])
                .env("PARE_FAKE_NOW", super::harness::at(hours + 1)),
        );
        assert_eq!(code, 0, "{out}{err}");
    }
}

#[test]
fn chaos_with_the_state_in_s3() {
    // Bounded here; the long run: PARE_CHAOS_S3_CASES=200 cargo test --test
    // cli chaos_with_the_state_in_s3 -- --nocapture (BENCHMARKS.md).
    let cases: u64 = std::env::var("PARE_CHAOS_S3_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut seed: u64 = std::env::var("PARE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_5300);
    let mut seen = super::chaos::Seen::default();
    for _ in 0..cases {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let w = OnS3 {
            prefix: fresh_prefix("chaos"),
        };
        super::chaos::case(&w, seed, &mut seen);
    }
    eprintln!(
        "chaos on S3: {cases} cases, {} applies ({} killed), {} rollbacks killed, {} undos; every resource back once",
        seen.applies, seen.killed, seen.rollbacks_killed, seen.undone
    );
    assert!(
        seen.applies > 0 && seen.undone > 0,
        "the cases exercise too little"
    );
}

#[test]
fn an_aws_run_killed_on_one_runner_is_rolled_back_from_another_exactly() {
    // The AWS provider on the local EC2 endpoint, the state on S3: runner A
    // applies and is killed after each journal record in turn; runner B, an
    // empty directory with the plan, finds the lock, unlocks it once
    // expired, is refused naming the interrupted run, and rolls it back.
    let (region, zone) = ("ap-southeast-2", "ap-southeast-2a");
    let c = super::aws::client(region);
    let rt = rt();
    let plan = |web: &str, dev: &str, batch: &str| {
        format!(
            "version: 1
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
  - {{ id: size, action: rightsize, instance: {web}, to: m5.large }}
  - {{ id: park, action: hibernate, instance: {dev}, mode: stop }}
  - {{ id: batch, action: rightsize, instance: {batch}, to: c5.xlarge, depends_on: [park] }}
",
            super::aws::endpoint()
        )
    };
    let runner = |plan: &str, prefix: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
        std::fs::write(
            dir.path().join("pare.toml"),
            format!(
                "[state]\nbackend = \"s3\"\nbucket = \"{BUCKET}\"\nprefix = \"{prefix}\"\nendpoint_url = \"{}\"\n",
                endpoint()
            ),
        )
        .unwrap();
        dir
    };
    let aws = |dir: &std::path::Path, args: &[&str], hours: u64| {
        let mut cmd = super::aws::aws_pare(dir);
        cmd.args(args)
            .env("PARE_FAKE_NOW", super::harness::at(hours));
        cmd
    };
    let described = |ids: &[&str]| -> Vec<(String, String, String)> {
        rt.block_on(async {
            let mut out = Vec::new();
            for id in ids {
                let i = super::aws::instance(&c, id).await;
                out.push((
                    i.instance_type().unwrap().as_str().to_string(),
                    i.state().unwrap().name().unwrap().as_str().to_string(),
                    i.instance_id().unwrap().to_string(),
                ));
            }
            out
        })
    };
    let mut n = 1;
    loop {
        let ids = rt.block_on(super::aws::launch(
            &c,
            zone,
            aws_sdk_ec2::types::InstanceType::M5Xlarge,
            3,
        ));
        let before = described(&[&ids[0], &ids[1], &ids[2]]);
        let prefix = fresh_prefix("aws-kill");
        let text = plan(&ids[0], &ids[1], &ids[2]);
        let a = runner(&text, &prefix);
        let out = aws(a.path(), &["apply", "plan.yaml", "--auto-approve", "-q"], 0)
            .env("PARE_TEST_KILL_AFTER_RECORD", n.to_string())
            .output()
            .unwrap();
        if out.status.code().is_some() {
            // The run wrote fewer than n records: every point was tried.
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(n > 10, "only {} kill points", n - 1);
            break;
        }
        drop(a);
        let b = runner(&text, &prefix);
        let (code, _, err) = output(&mut aws(
            b.path(),
            &["apply", "plan.yaml", "--auto-approve"],
            1,
        ));
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(err.contains("expired"), "kill {n}: {err}");
        let (code, out, err) = output(&mut aws(b.path(), &["unlock", &lock_id(&err)], 1));
        assert_eq!(code, 0, "kill {n}: {out}{err}");
        let (code, _, err) = output(&mut aws(
            b.path(),
            &["apply", "plan.yaml", "--auto-approve"],
            1,
        ));
        assert_eq!(code, 1, "kill {n}: {err}");
        assert!(err.contains("was interrupted"), "kill {n}: {err}");
        let (code, out, _) = output(&mut aws(b.path(), &["history", "--format", "json"], 1));
        assert_eq!(code, 0);
        let h: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let run = h[0]["id"].as_str().unwrap().to_string();
        let (code, _, err) = output(&mut aws(
            b.path(),
            &["rollback", "--run", &run, "--auto-approve"],
            1,
        ));
        assert_eq!(code, 0, "kill {n}: {err}");
        assert_eq!(
            described(&[&ids[0], &ids[1], &ids[2]]),
            before,
            "kill {n}: not restored exactly"
        );
        n += 1;
    }
}
