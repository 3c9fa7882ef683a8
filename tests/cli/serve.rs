//! `pare serve`: the real server on loopback, driven by a real HTTP client
//! (hyper's), over the sandbox.

use super::harness::{
    REVERSIBLE_PLAN, Sandbox, assert_restored, output, quickstart_account, renamed,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `pare serve`, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    base: String,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(s: &Sandbox, extra: &[&str]) -> Server {
        Server::start_in(s.process(&[]), extra)
    }

    /// `pare serve` from `cmd` (a pare process, its directory and
    /// environment set).
    fn start_in(mut cmd: std::process::Command, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--plans-root", "."];
        args.extend_from_slice(extra);
        let mut child = cmd
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let base = first
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        // Keep reading stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// (status, headers, body) of one request.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, hyper::HeaderMap, String) {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(send(method, &url, token, headers, body.to_vec()))
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (code, _, body) = self.call("GET", path, token, &[], b"");
        (
            code,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let (code, _, text) = self.call("POST", path, token, &[], body.to_string().as_bytes());
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Starts an apply of plan.yaml (reviewed as `sha`); its id.
    fn start_run(&self, sha: &str) -> String {
        let (code, v) = self.post(
            "/api/v1/executions",
            None,
            &json!({ "plan": "plan.yaml", "sha256": sha }),
        );
        assert_eq!(code, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Polls an execution until it has finished.
    fn wait(&self, id: &str, token: Option<&str>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, v) = self.get(&format!("/api/v1/executions/{id}"), token);
            assert_eq!(code, 200, "{v}");
            if v["finished_at"].is_string() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "execution {id} never finished: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY-free: the pid is our child's.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, String) {
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn sha256(s: &Sandbox, file: &str) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(s.path().join(file)).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_execution_through_the_api_previews_applies_and_reports_like_the_cli() {
    let s = Sandbox::new(REVERSIBLE_PLAN, &quickstart_account());
    let server = Server::start(&s, &[]);
    let sha = sha256(&s, "plan.yaml");
    let (code, v) = server.get("/healthz", None);
    assert_eq!((code, v["status"].as_str()), (200, Some("ok")));

    // A dry run is the preview, and changes nothing.
    let before = s.account();
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": sha, "dry_run": true }),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["summary"]["changes"], 8, "{v}");
    assert_eq!(s.account(), before);

    // The sha256 reviewed must be the file's.
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": "0".repeat(64) }),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["error"]["code"], "serve::plan-changed");

    // The same Idempotency-Key, sent twice at once: one run.
    let body = json!({ "plan": "plan.yaml", "sha256": sha }).to_string();
    let replies: Vec<(u16, hyper::HeaderMap, String)> = server.rt.block_on(async {
        let url = format!("{}/api/v1/executions", server.base);
        let a = send(
            "POST",
            &url,
            None,
            &[("idempotency-key", "k-1")],
            body.clone().into_bytes(),
        );
        let b = send(
            "POST",
            &url,
            None,
            &[("idempotency-key", "k-1")],
            body.clone().into_bytes(),
        );
        let (a, b) = tokio::join!(a, b);
        vec![a, b]
    });
    for (code, _, text) in &replies {
        assert_eq!(*code, 202, "{text}");
    }
    let first: Value = serde_json::from_str(&replies[0].2).unwrap();
    let second: Value = serde_json::from_str(&replies[1].2).unwrap();
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(second["id"], first["id"]);
    assert_eq!(
        replies[0].1["location"].to_str().unwrap(),
        format!("/api/v1/executions/{id}")
    );
    let done = server.wait(&id, None);
    assert_eq!(done["status"], "applied", "{done}");
    assert_eq!(
        done["progress"]["steps_done"], done["progress"]["steps_total"],
        "{done}"
    );
    assert!(done["savings"]["realised_monthly_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(s.history().len(), 1, "one run, not two");

    // Its logs: every event, numbered; `after` pages.
    let (code, _, logs) = server.call(
        "GET",
        &format!("/api/v1/executions/{id}/logs"),
        None,
        &[],
        b"",
    );
    assert_eq!(code, 200);
    let events: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "run_start");
    assert_eq!(events.last().unwrap()["event"], "run_done");
    assert_eq!(events.last().unwrap()["seq"], events.len());
    let (_, _, rest) = server.call(
        "GET",
        &format!("/api/v1/executions/{id}/logs?after={}", events.len() - 2),
        None,
        &[],
        b"",
    );
    assert_eq!(rest.lines().count(), 2);

    // The list, newest first, filtered; a finished run cannot be cancelled.
    let (code, v) = server.get("/api/v1/executions?status=applied&kind=apply", None);
    assert_eq!(code, 200);
    assert_eq!(v["executions"][0]["id"], id.as_str());
    let (code, v) = server.post(&format!("/api/v1/executions/{id}/cancel"), None, &json!({}));
    assert_eq!(code, 409, "{v}");
    let (code, v) = server.get("/api/v1/executions/r20990101-000000", None);
    assert_eq!(code, 404, "{v}");
    let (code, _) = server.get("/api/v1/nothing", None);
    assert_eq!(code, 404);

    // The CLI sees the run, and can undo it.
    let (code, _, err) = s.run_at(&["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert!(server.stop().success());
}

#[test]
fn tokens_scopes_and_bad_requests_get_the_status_they_deserve() {
    let s = Sandbox::new(REVERSIBLE_PLAN, &quickstart_account());
    let add = |name: &str, scopes: &str| {
        let (code, out, err) = output(&mut s.cmd(&[
            "serve",
            "token",
            "add",
            name,
            "--scopes",
            scopes,
            "--tokens",
            "tokens.json",
        ]));
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let reader = add("dashboard", "read");
    let bot = add("bot", "read,plan,apply");
    let stored = std::fs::read_to_string(s.path().join("tokens.json")).unwrap();
    assert!(!stored.contains(&reader) && !stored.contains(&bot));
    s.write(
        "broken.yaml",
        "version: 1\nprovider: { sandbox: { seed: account.yaml } }\nrecommendations:\n  - { id: x, action: resize }\n",
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("p.yaml"), REVERSIBLE_PLAN).unwrap();
    std::os::unix::fs::symlink(outside.path().join("p.yaml"), s.path().join("link.yaml")).unwrap();
    let server = Server::start(&s, &["--tokens", "tokens.json"]);
    let sha = sha256(&s, "plan.yaml");
    let execute = json!({ "plan": "plan.yaml", "sha256": sha, "dry_run": true });

    let (code, v) = server.post("/api/v1/executions", None, &execute);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (401, Some("serve::unauthorised"))
    );
    let (code, _) = server.post("/api/v1/executions", Some("pare_not-a-token"), &execute);
    assert_eq!(code, 401);
    let (code, v) = server.post("/api/v1/executions", Some(&reader), &execute);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (403, Some("serve::forbidden"))
    );
    let (code, _) = server.get("/api/v1/executions", Some(&reader));
    assert_eq!(code, 200);
    let (code, v) = server.post("/api/v1/executions", Some(&bot), &execute);
    assert_eq!(code, 200, "{v}");
    let (code, _, _) = server.call(
        "GET",
        "/api/v1/executions",
        Some(&reader),
        &[("authorization", "Bearer x")],
        b"",
    );
    assert_eq!(code, 400, "two Authorization headers");
    // A token removed from the file is refused from the next request on.
    let mut file: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("tokens.json")).unwrap())
            .unwrap();
    file["tokens"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["name"] != "dashboard");
    std::fs::write(s.path().join("tokens.json"), file.to_string()).unwrap();
    let (code, _) = server.get("/api/v1/executions", Some(&reader));
    assert_eq!(code, 401, "a revoked token");
    let (code, _) = server.get("/api/v1/executions", Some(&bot));
    assert_eq!(code, 200);

    // Oversized, malformed, invalid plans, paths out of the plans root.
    let big = vec![b' '; (1 << 20) + 10];
    let (code, _, _) = server.call("POST", "/api/v1/executions", Some(&bot), &[], &big);
    assert_eq!(code, 413);
    let (code, _, text) = server.call("POST", "/api/v1/executions", Some(&bot), &[], b"{\"plan\":");
    assert_eq!(code, 422, "{text}");
    let (code, v) = server.post(
        "/api/v1/executions",
        Some(&bot),
        &json!({ "plan": "broken.yaml", "sha256": sha256(&s, "broken.yaml"), "dry_run": true }),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"]["code"], "plan::invalid");
    assert!(
        v["error"]["diagnostics"][0]["line"].as_u64().is_some(),
        "{v}"
    );
    for bad in [
        "../plan.yaml",
        "/etc/passwd",
        "link.yaml",
        "sub/../../x.yaml",
    ] {
        let (code, v) = server.post(
            "/api/v1/executions",
            Some(&bot),
            &json!({ "plan": bad, "sha256": sha, "dry_run": true }),
        );
        assert_eq!(code, 400, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "serve::outside-plans-root");
    }
    assert!(server.stop().success());

    // Anywhere but loopback, no tokens means no server.
    let (code, _, err) = s.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1);
    assert!(err.contains("without authentication"), "{err}");
}

#[test]
fn a_run_under_way_holds_the_lock_and_cancel_drains_it() {
    let account = format!("{}\nfaults: {{ latency_ms: 300 }}\n", quickstart_account());
    let s = Sandbox::new(REVERSIBLE_PLAN, &account);
    let server = Server::start(&s, &[]);
    let sha = sha256(&s, "plan.yaml");
    let before = s.account();
    let id = server.start_run(&sha);
    // Another execution, and the CLI, meet the lock.
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": sha }),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("state::locked")),
        "{v}"
    );
    let (code, _, err) = s.run(&["apply", "plan.yaml", "--auto-approve"]);
    assert_ne!(code, 0);
    assert!(err.contains("state::locked"), "{err}");
    // Cancel: no new steps; those under way finish; recorded cancelled.
    let (code, v) = server.post(&format!("/api/v1/executions/{id}/cancel"), None, &json!({}));
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["status"], "cancelling");
    let done = server.wait(&id, None);
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        done["progress"]["steps_done"].as_u64() < done["progress"]["steps_total"].as_u64(),
        "{done}"
    );
    assert!(done["current_steps"].as_array().unwrap().is_empty());
    // The CLI's rollback restores the account.
    let (code, _, err) = s.run_at(&["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
    assert_restored(&before, &s.account(), &renamed(&s.last_run()), &[]);
    assert!(server.stop().success());
}

const API_PLAN: &str = "version: 1
name: api
provider: { sandbox: { seed: account.yaml } }
approvals: [ { by: t@example.com, covers: [\"*\"] } ]
recommendations:
  - { id: sleep, action: hibernate, instance: i-0a1b2c3d4e5f60002 }
  - { id: asg, action: autoscale, group: web-asg, desired: 2, min: 2 }
";

#[test]
fn an_execution_is_rolled_back_through_the_api_and_a_restart_finds_a_dead_run_interrupted() {
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    let server = Server::start(&s, &[]);
    let sha = sha256(&s, "plan.yaml");
    let before = s.account();
    let id = server.start_run(&sha);
    assert_eq!(server.wait(&id, None)["status"], "applied");
    let path = format!("/api/v1/executions/{id}/rollback");
    let (code, v) = server.post(&path, None, &json!({ "dry_run": true }));
    assert_eq!(code, 200, "{v}");
    assert!(v["would_undo"].as_str().unwrap().contains("sleep"), "{v}");
    assert_ne!(s.account(), before, "a dry run changes nothing");
    let (code, _, text) = server.call("POST", &path, None, &[], b"");
    assert_eq!(code, 202, "{text}");
    let rb: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rb["kind"], "rollback");
    let rb_id = rb["id"].as_str().unwrap().to_string();
    let done = server.wait(&rb_id, None);
    assert_eq!(done["status"], "rolled_back", "{done}");
    assert_eq!(
        done["progress"]["steps_done"], done["progress"]["steps_total"],
        "{done}"
    );
    assert_restored(&before, &s.account(), &renamed(&s.last_run()), &[]);
    // The apply execution says it was rolled back, and by which run.
    let (_, v) = server.get(&format!("/api/v1/executions/{id}"), None);
    assert_eq!(v["status"], "rolled_back", "{v}");
    assert_eq!(v["rolled_back_by"], rb_id.as_str());
    let (_, v) = server.get("/api/v1/executions?kind=apply", None);
    assert_eq!(v["executions"][0]["status"], "rolled_back", "{v}");
    // A rollback cannot be cancelled.
    let (code, v) = server.post(
        &format!("/api/v1/executions/{rb_id}/cancel"),
        None,
        &json!({}),
    );
    assert_eq!(code, 409, "{v}");
    // Rolled back once is rolled back: again is refused, with the reason.
    let (code, v) = server.post(&path, None, &json!({}));
    assert_eq!(code, 409, "{v}");
    assert!(server.stop().success());

    // A server killed mid-run: the next one reports the run interrupted,
    // with the CLI's way out.
    let account = format!("{}\nfaults: {{ latency_ms: 400 }}\n", quickstart_account());
    let s = Sandbox::new(API_PLAN, &account);
    let mut server = Server::start(&s, &[]);
    let id = server.start_run(&sha);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = Server::start(&s, &[]);
    let (code, v) = server.get(&format!("/api/v1/executions/{id}"), None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "interrupted", "{v}");
    assert!(server.stop().success());
}

#[test]
fn the_api_describes_itself_measures_itself_and_streams_its_logs() {
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    let server = Server::start(&s, &[]);
    // The description served is the one committed, and names every route
    // the server answers.
    let (code, doc) = server.get("/api/v1/openapi.json", None);
    assert_eq!(code, 200);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(super::root().join("schemas/openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc, committed);
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path.replace("{id}", "r20990101-000000");
        let method = if path.ends_with("cancel") || path.ends_with("rollback") {
            "POST"
        } else {
            "GET"
        };
        let (code, _, text) = server.call(method, &concrete, None, &[], b"");
        assert!(
            code != 405 && !(code == 404 && text.contains("serve::not-found")),
            "{method} {path}: {code} {text}"
        );
    }
    // A run, followed live as server-sent events.
    let sha = sha256(&s, "plan.yaml");
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": sha }),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap();
    let (code, headers, stream) = server.call(
        "GET",
        &format!("/api/v1/executions/{id}/logs"),
        None,
        &[("accept", "text/event-stream")],
        b"",
    );
    assert_eq!(code, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(
        stream.starts_with("id: 1\nevent: run_start\ndata: {"),
        "{stream}"
    );
    assert!(stream.contains("event: run_done"), "{stream}");
    // The metrics count it, with no resource id as a label.
    let (code, _, metrics) = server.call("GET", "/metrics", None, &[], b"");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("pare_runs_total{kind=\"apply\",status=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pare_steps_total{action=\"hibernate\",result=\"done\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pare_run_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("i-0a1b"), "{metrics}");
    assert!(server.stop().success());
}

#[test]
fn pare_toml_serve_section_is_read_and_its_mistakes_located() {
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    s.write("pare.toml", "[serve]\nlisten = \"0.0.0.0:0\"\n");
    let (code, _, err) = s.run(&["serve"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
    s.write("pare.toml", "[serve]\nlisten = \"localhost\"\n");
    let (code, _, err) = s.run(&["serve"]);
    assert_eq!(code, 1);
    assert!(err.contains("config::invalid"), "{err}");
    assert!(err.contains("pare.toml:2:10"), "{err}");
    s.write(
        "pare.toml",
        "[serve]\nlisten = \"127.0.0.1:0\"\ntokens = \"none.json\"\n",
    );
    let (code, _, err) = s.run(&["serve"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read the tokens file none.json"),
        "{err}"
    );
}

#[test]
fn a_plan_lacking_the_approvals_it_needs_is_refused_with_what_is_missing() {
    let unapproved: String = REVERSIBLE_PLAN
        .lines()
        .filter(|l| !l.starts_with("approvals:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let s = Sandbox::new(&unapproved, &quickstart_account());
    let server = Server::start(&s, &[]);
    let before = s.account();
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": sha256(&s, "plan.yaml") }),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["error"]["code"], "apply::blocked", "{v}");
    let blocked = v["error"]["blocked"].as_array().unwrap();
    assert!(
        blocked
            .iter()
            .any(|b| b["id"] == "kill" && b.to_string().to_lowercase().contains("approv")),
        "{v}"
    );
    assert_eq!(s.account(), before);
    assert!(s.history().is_empty(), "no run is recorded");
    assert!(server.stop().success());
}

#[test]
fn a_saved_plan_is_proven_and_applied_once_and_a_reused_key_is_refused() {
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    let (code, _, err) = s.run(&["plan", "plan.yaml", "--out", "saved.json"]);
    assert_eq!(code, 0, "{err}");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path().join("saved.json")).unwrap())
            .unwrap();
    let server = Server::start(&s, &[]);
    let sha = sha256(&s, "plan.yaml");
    // The saved plan applies, once; its key is not for another request.
    let (code, _, text) = server.call(
        "POST",
        "/api/v1/executions",
        None,
        &[("idempotency-key", "k-9")],
        json!({ "saved": saved, "sha256": sha })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(code, 202, "{text}");
    let first: Value = serde_json::from_str(&text).unwrap();
    let done = server.wait(first["id"].as_str().unwrap(), None);
    assert_eq!(done["status"], "applied", "{done}");
    let (code, _, text) = server.call(
        "POST",
        "/api/v1/executions",
        None,
        &[("idempotency-key", "k-9")],
        json!({ "plan": "plan.yaml", "sha256": sha })
            .to_string()
            .as_bytes(),
    );
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("serve::idempotency-key-reused"), "{text}");
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "saved": saved, "sha256": sha }),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (409, Some("saved::already-applied")),
        "{v}"
    );
    // A saved plan naming a plan file out of the root is refused unread.
    let mut outside = saved.clone();
    outside["plan"]["path"] = json!("../plan.yaml");
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "saved": outside, "sha256": sha }),
    );
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (400, Some("serve::outside-plans-root")),
        "{v}"
    );
    let (code, v) = server.post("/api/v1/executions", None, &json!({ "sha256": sha }));
    assert_eq!(code, 422, "{v}");
    let pid = server.child.id();
    assert!(server.stop().success());
    // Nothing is left behind in the temporary directory.
    assert!(
        !std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("pare-serve-{pid}-"))),
    );
}

#[cfg(feature = "aws")]
#[test]
fn an_execution_through_the_api_applies_and_rolls_back_on_the_ec2_api() {
    use super::aws::{client, endpoint, instance, launch};
    let region = "ap-northeast-1";
    let c = client(region);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ids = rt.block_on(launch(
        &c,
        "ap-northeast-1a",
        aws_sdk_ec2::types::InstanceType::M5Xlarge,
        2,
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plan.yaml"),
        format!(
            "version: 1
name: api-aws
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
  - {{ id: size, action: rightsize, instance: {}, to: m5.large }}
  - {{ id: park, action: hibernate, instance: {}, mode: stop }}
",
            endpoint(),
            ids[0],
            ids[1]
        ),
    )
    .unwrap();
    let mut cmd = super::harness::process_in(dir.path());
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    let server = Server::start_in(cmd, &[]);
    let sha = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(dir.path().join("plan.yaml")).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let id = server.start_run(&sha);
    let done = server.wait(&id, None);
    assert_eq!(done["status"], "applied", "{done}");
    rt.block_on(async {
        assert_eq!(
            instance(&c, &ids[0])
                .await
                .instance_type()
                .unwrap()
                .as_str(),
            "m5.large"
        );
    });
    let (code, v) = server.post(
        &format!("/api/v1/executions/{id}/rollback"),
        None,
        &json!({}),
    );
    assert_eq!(code, 202, "{v}");
    let done = server.wait(v["id"].as_str().unwrap(), None);
    assert_eq!(done["status"], "rolled_back", "{done}");
    rt.block_on(async {
        let web = instance(&c, &ids[0]).await;
        assert_eq!(web.instance_type().unwrap().as_str(), "m5.xlarge");
        let parked = instance(&c, &ids[1]).await;
        assert_eq!(parked.state().unwrap().name().unwrap().as_str(), "running");
    });
    assert!(server.stop().success());
}

#[test]
fn what_a_hostile_client_sends_is_refused_and_the_server_stays_up() {
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    // A plan nested as deep as the loader refuses (a dry run needs only
    // `plan`): refused, not a stack overflow of the server.
    let deep: String = (1..200)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    s.write(
        "deep.yaml",
        &format!("version: 1\nprovider:\n  sandbox: {{seed: account.yaml}}\nname: x\nrecommendations:\n{deep}"),
    );
    let server = Server::start(&s, &[]);
    let sha = sha256(&s, "plan.yaml");
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "deep.yaml", "sha256": sha256(&s, "deep.yaml"), "dry_run": true }),
    );
    assert_eq!(code, 422, "{v}");
    let (code, _) = server.get("/healthz", None);
    assert_eq!(code, 200, "the server is up");
    // Browsers: a page's request (Origin), a name rebound to loopback
    // (Host), a form post (not JSON).
    let body = json!({ "plan": "plan.yaml", "sha256": sha }).to_string();
    for (headers, want, code_word) in [
        (
            vec![("origin", "http://evil.example")],
            403,
            "serve::cross-origin",
        ),
        (vec![("host", "evil.example:8080")], 403, "serve::bad-host"),
        (vec![("content-type", "text/plain")], 415, "serve::not-json"),
        (
            vec![("content-type", "application/json; charset=latin1")],
            415,
            "serve::not-json",
        ),
        (vec![("host", "127.0.0.1:99999")], 403, "serve::bad-host"),
    ] {
        let (code, _, text) = server.call(
            "POST",
            "/api/v1/executions",
            None,
            &headers,
            body.as_bytes(),
        );
        assert_eq!(code, want, "{headers:?}: {text}");
        assert!(text.contains(code_word), "{text}");
    }
    // Bodies: a key twice, an array for an object.
    for bad in [
        format!(
            "{{\"plan\":\"plan.yaml\",\"sha256\":\"{sha}\",\"dry_run\":true,\"dry_run\":false}}"
        ),
        format!("[\"plan.yaml\",\"{sha}\",false]"),
    ] {
        let (code, _, text) = server.call("POST", "/api/v1/executions", None, &[], bad.as_bytes());
        assert_eq!(code, 422, "{bad}: {text}");
    }
    for key in ["clé-1", ""] {
        let (code, _, text) = server.call(
            "POST",
            "/api/v1/executions",
            None,
            &[("idempotency-key", key)],
            body.as_bytes(),
        );
        assert_eq!(code, 400, "{key:?}: {text}");
    }
    let (code, _, text) = server.call("GET", "/api/v1/executions?status=bogus", None, &[], b"");
    assert_eq!(code, 400, "{text}");
    let (code, _, text) = server.call("GET", "/api/v1/executions?limit=%ff", None, &[], b"");
    assert_eq!(code, 400, "{text}");
    assert!(s.history().is_empty(), "nothing ran: {:?}", s.history());

    // An Idempotency-Key binds only a started run: a refusal can be fixed
    // and sent again with the same key...
    let key = [("idempotency-key", "deploy-1")];
    let wrong = json!({ "plan": "plan.yaml", "sha256": "0".repeat(64) }).to_string();
    let (code, _, _) = server.call("POST", "/api/v1/executions", None, &key, wrong.as_bytes());
    assert_eq!(code, 409);
    let (code, _, text) = server.call("POST", "/api/v1/executions", None, &key, body.as_bytes());
    assert_eq!(code, 202, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(server.wait(&id, None)["status"], "applied");
    let pid_gone = server.stop();
    assert!(pid_gone.success());
    // ...and a started run stays bound to it across a restart.
    let server = Server::start(&s, &[]);
    let (code, _, text) = server.call("POST", "/api/v1/executions", None, &key, body.as_bytes());
    assert_eq!(code, 202, "{text}");
    let again: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["status"], "applied");
    assert_eq!(s.history().len(), 1, "one run for one key");
    assert!(server.stop().success());
}

#[test]
fn the_list_is_newest_first_past_ten_runs_in_one_second() {
    // The clock is pinned: every run starts in the same second, so their
    // ids differ only by their sequence number (…-9, …-10, …-11).
    let s = Sandbox::new(API_PLAN, &quickstart_account());
    for _ in 0..6 {
        let (code, _, err) = s.run(&["apply", "plan.yaml", "--auto-approve"]);
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = s.run(&["rollback", "--last", "--auto-approve"]);
        assert_eq!(code, 0, "{err}");
    }
    let newest = s.last_run()["id"].as_str().unwrap().to_string();
    let server = Server::start(&s, &[]);
    let (code, v) = server.get("/api/v1/executions?limit=5", None);
    assert_eq!(code, 200);
    assert_eq!(v["executions"][0]["id"], newest.as_str(), "{v}");
    let mut ids: Vec<String> = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, v) = server.get(&format!("/api/v1/executions?limit=5{cursor}"), None);
        ids.extend(
            v["executions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let history: Vec<String> = s
        .history()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, history, "the same order as `pare history`");
    assert!(server.stop().success());
}

#[test]
fn sigterm_lets_the_running_execution_finish_its_steps_and_be_recorded() {
    let account = format!("{}\nfaults: {{ latency_ms: 300 }}\n", quickstart_account());
    let s = Sandbox::new(REVERSIBLE_PLAN, &account);
    let server = Server::start(&s, &[]);
    let (code, v) = server.post(
        "/api/v1/executions",
        None,
        &json!({ "plan": "plan.yaml", "sha256": sha256(&s, "plan.yaml") }),
    );
    assert_eq!(code, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    // SIGTERM: no new requests, the run starts no new step, finishes those
    // under way, is recorded, and the server exits 0.
    assert!(server.stop().success());
    let run = s.last_run();
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["status"], "cancelled", "{run}");
    // The next server reports it so; the CLI rolls it back.
    let server = Server::start(&s, &[]);
    let (_, v) = server.get(&format!("/api/v1/executions/{id}"), None);
    assert_eq!(v["status"], "cancelled", "{v}");
    assert!(server.stop().success());
    let (code, _, err) = s.run_at(&["rollback", "--last", "--auto-approve"], 7);
    assert_eq!(code, 0, "{err}");
}
