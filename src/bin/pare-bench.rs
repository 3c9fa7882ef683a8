//! `pare-bench`: benchmarks of the real `pare` binary, measured side by side.
//!
//! Never run by the test suite (timings on shared machines are noise there);
//! the commands and their last figures are in BENCHMARKS.md.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!(
        "usage:\n  pare-bench gen-plan N [--out FILE]     write a generated plan of N recommendations\n  pare-bench gen-account N [--out FILE]  write a sandbox account holding the resources of gen-plan N
  pare-bench gen-coh N [--out FILE]      write N Cost Optimization Hub recommendations (list-recommendations output)
  pare-bench gen-co-csv N [--out FILE]   write N EC2 instance rows of Compute Optimizer's CSV export
  pare-bench import [N] [--runs R] [--csv]
                                          time `pare import cost-optimization-hub` of N recommendations (default N=10000, R=5);
                                          with --csv, `pare import compute-optimizer` of N rows of its CSV export
  pare-bench validate [N] [--runs R]      time `pare validate` on a generated plan (default N=10000, R=10)
  pare-bench plan [N] [--runs R]          time `pare plan` of N recommendations over an N-resource sandbox (default R=5)
  pare-bench serve [N] [--runs R] [--clients C] [--latency-ms L] [--interval-ms I]
                                          a run of N recommendations through `pare serve`, alone and with C clients
                                          polling its status and logs every I ms (default N=1000, R=3, C=200, L=20,
                                          I=100), beside the CLI's
  pare-bench apply [N] [--runs R] [--latency-ms L] [--parallelism P] [--batch-size B]
                                          time `pare apply` of N independent recommendations, journal flushed
                                          and not, side by side; with L > 0, against the ideal bound
                                          (one call per step: pass --batch-size 1 to compare like with like)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let positional: Vec<&String> = {
        let mut v = Vec::new();
        let mut skip = false;
        for a in args.iter().skip(1) {
            if skip {
                skip = false;
            } else if a.starts_with("--") {
                skip = true;
            } else {
                v.push(a);
            }
        }
        v
    };
    let n = |default: usize| {
        positional
            .first()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("gen-plan") => emit(
            pare::generate::plan(n(10_000), "account.yaml"),
            flag("--out"),
        ),
        Some("gen-account") => emit(pare::generate::account(n(10_000)), flag("--out")),
        Some("gen-coh") => emit(
            pare::generate::coh_recommendations(n(10_000)),
            flag("--out"),
        ),
        Some("gen-co-csv") => emit(pare::generate::co_ec2_csv(n(10_000)), flag("--out")),
        Some("import") => {
            let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
            bench_import(n(10_000), runs, args.iter().any(|a| a == "--csv"))
        }
        Some("serve") => {
            let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(3);
            let clients = flag("--clients")
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            let latency = flag("--latency-ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(20);
            let interval = flag("--interval-ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(100);
            bench_serve(n(1000), runs, clients, latency, interval)
        }
        Some("apply") => {
            let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(3);
            let latency = flag("--latency-ms")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let parallelism = flag("--parallelism")
                .and_then(|s| s.parse().ok())
                .unwrap_or(10);
            let batch = flag("--batch-size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1000);
            bench_apply(n(10_000), runs, latency, parallelism, batch)
        }
        Some("plan") => {
            let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
            bench_plan(n(10_000), runs)
        }
        Some("validate") => {
            let runs = flag("--runs").and_then(|s| s.parse().ok()).unwrap_or(10);
            bench_validate(n(10_000), runs)
        }
        _ => usage(),
    }
}

/// Writes `text` to `out`, or to stdout.
fn emit(text: String, out: Option<String>) -> ExitCode {
    match out {
        Some(path) => std::fs::write(path, text).map_or(ExitCode::FAILURE, |_| ExitCode::SUCCESS),
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

/// The `pare` binary next to this one (same profile).
fn pare_binary() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name(format!("pare{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `cmd` once; wall time and the peak resident memory of the child, in bytes.
fn measure(cmd: &mut Command) -> (Duration, u64, bool) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our un-reaped child; the pointers are to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    // The child is reaped; keep std from waiting on it again.
    std::mem::forget(child.stdin.take());
    std::mem::forget(child);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (elapsed, usage.ru_maxrss as u64 * 1024, ok)
}

fn bench_validate(n: usize, runs: usize) -> ExitCode {
    let dir = tempdir();
    let plan = dir.join("plan.yaml");
    let text = pare::generate::plan(n, "account.yaml");
    std::fs::write(&plan, &text).expect("write plan");
    let pare = pare_binary();
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    // One warm-up run (page cache, binary loading), not counted.
    let (_, _, ok) = measure(Command::new(&pare).arg("validate").arg(&plan));
    if !ok {
        eprintln!("pare validate failed on the generated plan");
        return ExitCode::FAILURE;
    }
    for _ in 0..runs {
        let (t, rss, ok) = measure(Command::new(&pare).arg("validate").arg(&plan));
        assert!(ok);
        times.push(t);
        peak = peak.max(rss);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "validate: {n} recommendations, {:.1} MB plan, {runs} runs: median {:.3} s, min {:.3} s, max {:.3} s; peak RSS {:.1} MB",
        text.len() as f64 / 1e6,
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        peak as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

fn bench_import(n: usize, runs: usize, csv: bool) -> ExitCode {
    let dir = tempdir();
    let (service, file, text) = if csv {
        (
            "compute-optimizer",
            "ec2.csv",
            pare::generate::co_ec2_csv(n),
        )
    } else {
        (
            "cost-optimization-hub",
            "coh.json",
            pare::generate::coh_recommendations(n),
        )
    };
    std::fs::write(dir.join(file), &text).expect("write input");
    let pare = pare_binary();
    let cmd = || {
        let mut c = Command::new(&pare);
        c.current_dir(&dir)
            .args(["import", service, "--input", file, "--out"])
            .arg(format!("plan-{}.yaml", std::process::id()))
            .stderr(Stdio::null());
        c
    };
    let (_, _, ok) = measure(&mut cmd());
    if !ok {
        eprintln!("pare import failed on the generated recommendations");
        return ExitCode::FAILURE;
    }
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for _ in 0..runs {
        // Into a new file each time: a fresh import, not a merge.
        let _ = std::fs::remove_file(dir.join(format!("plan-{}.yaml", std::process::id())));
        let (t, rss, ok) = measure(&mut cmd());
        assert!(ok);
        times.push(t);
        peak = peak.max(rss);
    }
    times.sort();
    println!(
        "import ({service}): {n} recommendations, {:.1} MB of {}, {runs} runs: median {:.3} s, min {:.3} s, max {:.3} s; peak RSS {:.1} MB",
        text.len() as f64 / 1e6,
        if csv { "CSV" } else { "JSON" },
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        peak as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

fn bench_plan(n: usize, runs: usize) -> ExitCode {
    let dir = tempdir();
    let plan = dir.join("plan.yaml");
    std::fs::write(&plan, pare::generate::plan(n, "account.yaml")).expect("write plan");
    std::fs::write(dir.join("account.yaml"), pare::generate::account(n)).expect("write account");
    let pare = pare_binary();
    let cmd = || {
        let mut c = Command::new(&pare);
        c.current_dir(&dir).args(["plan", "plan.yaml"]);
        c
    };
    // The first run seeds the sandbox (copies the account into .pare/).
    let (first, first_rss, ok) = measure(&mut cmd());
    if !ok {
        eprintln!(
            "pare plan failed on the generated plan; run it by hand in {}",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for _ in 0..runs {
        let (t, rss, ok) = measure(&mut cmd());
        assert!(ok);
        times.push(t);
        peak = peak.max(rss);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "plan: {n} recommendations over {n} resources, {runs} runs: median {:.3} s, min {:.3} s, max {:.3} s; peak RSS {:.1} MB (first run, seeding the sandbox: {:.3} s, {:.1} MB)",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        peak as f64 / 1e6,
        first.as_secs_f64(),
        first_rss as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

fn bench_apply(
    n: usize,
    runs: usize,
    latency_ms: u64,
    parallelism: usize,
    batch: usize,
) -> ExitCode {
    let dir = tempdir();
    std::fs::write(
        dir.join("plan.yaml"),
        pare::generate::plan_with(n, "account.yaml", false),
    )
    .expect("write plan");
    let mut account = pare::generate::account(n);
    if latency_ms > 0 {
        // Latency on every change; reads are the sandbox's in-memory lookups.
        account.push_str(&format!(
            "faults:\n  latency_ms: {latency_ms}\n  ops:\n    describe: {{ delay_ms: 0 }}\n"
        ));
    }
    std::fs::write(dir.join("account.yaml"), account).expect("write account");
    std::fs::write(
        dir.join("pare.toml"),
        format!("[apply]\nbatch_size = {batch}\n[policy]\nrequire_approval_at = \"never\"\nmax_changes = 100000000\n"),
    )
    .expect("write pare.toml");
    let pare = pare_binary();
    let reset = || {
        let ok = Command::new(&pare)
            .current_dir(&dir)
            .args(["sandbox", "reset", "plan.yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_dir_all(dir.join(".pare/runs"));
        ok
    };
    let apply = |sync: bool| {
        let mut c = Command::new(&pare);
        c.current_dir(&dir).args([
            "apply",
            "plan.yaml",
            "--auto-approve",
            "-q",
            "--parallelism",
            &parallelism.to_string(),
        ]);
        if !sync {
            c.env("PARE_UNSAFE_NO_JOURNAL_SYNC", "1");
        }
        c
    };
    let steps = count_steps(&pare, &dir);
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for sync in [true, false] {
            if !reset() {
                eprintln!("sandbox reset failed in {}", dir.display());
                return ExitCode::FAILURE;
            }
            let (t, _, ok) = measure(&mut apply(sync));
            if !ok {
                eprintln!("pare apply failed; run it by hand in {}", dir.display());
                return ExitCode::FAILURE;
            }
            if sync { with.push(t) } else { without.push(t) }
        }
    }
    with.sort();
    without.sort();
    let (a, b) = (with[with.len() / 2], without[without.len() / 2]);
    println!(
        "apply: {n} independent recommendations ({} steps), parallelism {parallelism}, batch size {batch}, {latency_ms} ms per change, {runs} runs each: journal flushed median {:.3} s, not flushed {:.3} s; journal cost ratio {:.2}",
        steps.0,
        a.as_secs_f64(),
        b.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64()
    );
    if latency_ms > 0 {
        let per = Duration::from_millis(latency_ms);
        let critical = per * steps.1 as u32;
        let work = per * steps.0 as u32 / parallelism as u32;
        let ideal = critical.max(work);
        println!(
            "  ideal bound, one call per step: max(critical path {:.3} s, work / parallelism {:.3} s) = {:.3} s; measured / ideal = {:.3}",
            critical.as_secs_f64(),
            work.as_secs_f64(),
            ideal.as_secs_f64(),
            a.as_secs_f64() / ideal.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    ExitCode::SUCCESS
}

/// (total steps, steps of the longest recommendation) of the plan in `dir`.
fn count_steps(pare: &std::path::Path, dir: &std::path::Path) -> (usize, usize) {
    let out = Command::new(pare)
        .current_dir(dir)
        .args(["plan", "plan.yaml", "--format", "json"])
        .output()
        .expect("plan");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan json");
    let per: Vec<usize> = json["recommendations"].as_array().map_or(vec![], |r| {
        r.iter()
            .map(|r| r["steps"].as_array().map_or(0, Vec::len))
            .collect()
    });
    (per.iter().sum(), per.iter().copied().max().unwrap_or(0))
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pare-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// One HTTP/1.1 request on a connection of its own: (status, body, time).
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String, Duration)> {
    use std::io::{Read, Write};
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body, took))
}

fn field(body: &str, key: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get(key)
        .cloned()
}

/// `pare serve` under load: a run of `n` recommendations through the API,
/// alone and then with `clients` clients polling its status and logs,
/// side by side with the same run from the CLI.
fn bench_serve(
    n: usize,
    runs: usize,
    clients: usize,
    latency_ms: u64,
    interval_ms: u64,
) -> ExitCode {
    let dir = tempdir();
    std::fs::write(
        dir.join("plan.yaml"),
        pare::generate::plan_with(n, "account.yaml", false),
    )
    .expect("write plan");
    let mut account = pare::generate::account(n);
    account.push_str(&format!(
        "faults:\n  latency_ms: {latency_ms}\n  ops:\n    describe: {{ delay_ms: 0 }}\n"
    ));
    std::fs::write(dir.join("account.yaml"), account).expect("write account");
    std::fs::write(
        dir.join("pare.toml"),
        "[policy]\nrequire_approval_at = \"never\"\nmax_changes = 100000000\n",
    )
    .expect("write pare.toml");
    let sha = {
        use sha2::Digest;
        let bytes = std::fs::read(dir.join("plan.yaml")).expect("plan");
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let pare = pare_binary();
    let reset = || {
        let ok = Command::new(&pare)
            .current_dir(&dir)
            .args(["sandbox", "reset", "plan.yaml"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_dir_all(dir.join(".pare/runs"));
        let _ = std::fs::remove_file(dir.join(".pare/history.json"));
        ok
    };
    let mut server = Command::new(&pare)
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--plans-root", "."])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pare serve");
    let addr = {
        use std::io::BufRead;
        let mut line = String::new();
        let mut err = std::io::BufReader::new(server.stderr.take().expect("stderr"));
        let _ = err.read_line(&mut line);
        std::thread::spawn(move || for _ in err.lines() {});
        line.split("http://")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default()
            .to_string()
    };
    let body = format!("{{\"plan\":\"plan.yaml\",\"sha256\":\"{sha}\"}}");
    // One run through the API: (wall time from the POST to its end, the
    // status latencies and request count of the clients, errors).
    let api_run = |clients: usize| -> Option<(Duration, Vec<Duration>, usize, usize)> {
        if !reset() {
            return None;
        }
        let start = Instant::now();
        let (code, reply, _) = http(&addr, "POST", "/api/v1/executions", &body)?;
        if code != 202 {
            eprintln!("POST answered {code}: {reply}");
            return None;
        }
        let id = field(&reply, "id")?.as_str()?.to_string();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let (addr, id, done) = (addr.clone(), id.clone(), std::sync::Arc::clone(&done));
                std::thread::spawn(move || {
                    let (mut lat, mut requests, mut errors, mut after) = (Vec::new(), 0, 0, 0u64);
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        match http(&addr, "GET", &format!("/api/v1/executions/{id}"), "") {
                            Some((200, _, t)) => lat.push(t),
                            _ => errors += 1,
                        }
                        match http(
                            &addr,
                            "GET",
                            &format!("/api/v1/executions/{id}/logs?after={after}"),
                            "",
                        ) {
                            Some((200, b, _)) => after += b.lines().count() as u64,
                            _ => errors += 1,
                        }
                        requests += 2;
                        std::thread::sleep(Duration::from_millis(interval_ms));
                    }
                    (lat, requests, errors)
                })
            })
            .collect();
        // The bench's own poll, at a tenth of a second.
        let wall = loop {
            let (code, reply, _) = http(&addr, "GET", &format!("/api/v1/executions/{id}"), "")?;
            if code == 200 && field(&reply, "finished_at").is_some_and(|f| f.is_string()) {
                let status = field(&reply, "status");
                if status.as_ref().and_then(|s| s.as_str()) != Some("applied") {
                    eprintln!("the run ended {status:?}");
                    return None;
                }
                break start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut lat, mut requests, mut errors) = (Vec::new(), 0, 0);
        for w in workers {
            let (l, r, e) = w.join().ok()?;
            lat.extend(l);
            requests += r;
            errors += e;
        }
        Some((wall, lat, requests, errors))
    };
    let cli_run = || -> Option<Duration> {
        if !reset() {
            return None;
        }
        let (t, _, ok) = measure(Command::new(&pare).current_dir(&dir).args([
            "apply",
            "plan.yaml",
            "--auto-approve",
            "-q",
        ]));
        ok.then_some(t)
    };
    let (mut alone, mut loaded, mut cli, mut lat) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut requests, mut errors, mut loaded_time) = (0, 0, Duration::ZERO);
    for _ in 0..runs {
        let Some((a, _, _, _)) = api_run(0) else {
            eprintln!("the API run failed; see {}", dir.display());
            let _ = server.kill();
            let _ = server.wait();
            return ExitCode::FAILURE;
        };
        let Some((l, ls, r, e)) = api_run(clients) else {
            eprintln!("the loaded API run failed; see {}", dir.display());
            let _ = server.kill();
            let _ = server.wait();
            return ExitCode::FAILURE;
        };
        let Some(c) = cli_run() else {
            eprintln!("the CLI run failed; see {}", dir.display());
            let _ = server.kill();
            let _ = server.wait();
            return ExitCode::FAILURE;
        };
        alone.push(a);
        loaded.push(l);
        loaded_time += l;
        cli.push(c);
        lat.extend(ls);
        requests += r;
        errors += e;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    for v in [&mut alone, &mut loaded, &mut cli] {
        v.sort();
    }
    lat.sort();
    let median = |v: &Vec<Duration>| v[v.len() / 2].as_secs_f64();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "serve: {n} recommendations, {latency_ms} ms per change, {runs} runs of each, medians: API alone {:.3} s, API with {clients} clients polling every {interval_ms} ms {:.3} s (ratio {:.3}), CLI {:.3} s (API/CLI {:.3}); status latency under load p50 {:.1} ms, p99 {:.1} ms; {:.0} requests/s, {errors} errors",
        median(&alone),
        median(&loaded),
        median(&loaded) / median(&alone),
        median(&cli),
        median(&alone) / median(&cli),
        pct(0.50),
        pct(0.99),
        requests as f64 / loaded_time.as_secs_f64().max(1e-9),
    );
    let _ = std::fs::remove_dir_all(&dir);
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
