//! `pare serve`: the execution API, for platforms that drive pare from their
//! own tools. The same session, state store and lock as the CLI: an
//! execution through the API and a run from the CLI exclude each other.
//!
//! HTTP/1.1 on hyper (already in the build for the AWS SDK's client), JSON
//! in and out, errors as `{"error": {"code", "message"}}`. Plans are read
//! only from the plans root, named by a relative path and the sha256 the
//! caller reviewed. Bearer tokens (see [`tokens`]) carry scopes; without a
//! tokens file the server listens on loopback only.

mod metrics;
pub mod openapi;
pub mod tokens;

use crate::engine::Cancel;
use crate::engine::events::EventSink;
use crate::session::apply::Verdict;
use crate::session::{EventsOut, Session, SessionError, Source};
use crate::settings::Settings;
use crate::state::{RunRecord, StateError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most a request body may hold.
pub const BODY_LIMIT: usize = 1 << 20;
/// How long a client may take to send its headers, and then its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the server was asked to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub plans_root: PathBuf,
    /// `None`: no authentication (loopback only).
    pub tokens: Option<tokens::Tokens>,
}

/// Why the server did not start.
pub fn check_config(c: &ServeConfig) -> Result<PathBuf, String> {
    if c.tokens.is_none() && !c.listen.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {} without authentication: give --tokens FILE (made by `pare serve token add`), or listen on 127.0.0.1",
            c.listen
        ));
    }
    let root = c.plans_root.canonicalize().map_err(|e| {
        format!(
            "the plans root {} cannot be used: {e}",
            crate::vocabulary::words::clean(&c.plans_root.display().to_string())
        )
    })?;
    if !root.is_dir() {
        return Err(format!(
            "the plans root {} is not a directory",
            crate::vocabulary::words::clean(&root.display().to_string())
        ));
    }
    Ok(root)
}

/// One execution this server started (an apply run), as it goes.
#[derive(Debug)]
struct Exec {
    id: String,
    /// `apply`, or `rollback`.
    kind: &'static str,
    plan: String,
    plan_sha256: String,
    status: &'static str,
    cancel: Cancel,
    cancel_asked: bool,
    started: Instant,
    started_at: String,
    finished_at: Option<String>,
    duration_s: Option<f64>,
    /// Every event, in order (the logs).
    /// Every event, in order (the logs): its name and its JSON line.
    events: Vec<(String, String)>,
    /// Bumped by every change, so a status is rendered once per change
    /// however many clients poll it.
    version: u64,
    rendered: Option<(u64, Bytes)>,
    /// Per recommendation: steps done, steps in all.
    progress: BTreeMap<String, (usize, usize)>,
    /// Steps started and not yet done or failed: (rec, step) → operation.
    current: BTreeMap<(String, u64), String>,
    planned_savings: f64,
    /// Steps in all, when the events say (a rollback's `rollback_start`).
    steps_hint: Option<usize>,
    record: Option<RunRecord>,
}

/// A reply: status, JSON body, and a `Location`.
#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    body: Value,
    location: Option<String>,
    /// A JSON body already rendered (a cached status).
    raw: Option<Bytes>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            location: None,
            raw: None,
        }
    }

    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: json!({ "error": { "code": code, "message": message.into() } }),
            location: None,
            raw: None,
        }
    }
}

/// The reply of the request that first used an idempotency key (the key's
/// request fingerprint beside it in the table).
type Once = Arc<tokio::sync::OnceCell<Reply>>;

struct App {
    settings: Settings,
    root: PathBuf,
    tokens: Option<tokens::Tokens>,
    execs: Mutex<HashMap<String, Exec>>,
    /// Idempotency keys → the reply of the request that first used the key.
    idempotent: Mutex<HashMap<String, (String, Once)>>,
    requests: AtomicU64,
    metrics: Mutex<metrics::Metrics>,
}

/// Runs the server until SIGTERM or SIGINT: then it stops accepting, lets
/// the running execution finish its steps and be recorded, and returns.
/// `ready` is told the address it listens on.
pub fn serve(
    settings: Settings,
    config: ServeConfig,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let root = check_config(&config)?;
    // A run this server (or anything else) left `running` when it died is
    // recorded interrupted now, as the CLI's next run would: its status then
    // says what to do (`rollback`, or `rollback --accept`). If something
    // holds the lock, it is running, and its runs are left as they are.
    match Session::begin(settings.clone(), "serve: start") {
        Ok(session) => drop(session),
        Err(SessionError::State(StateError::Locked { .. })) => {}
        Err(e) => return Err(crate::vocabulary::words::clean(&e.to_string()).into_owned()),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let app = Arc::new(App {
        settings,
        root,
        tokens: config.tokens,
        execs: Mutex::new(HashMap::new()),
        idempotent: Mutex::new(HashMap::new()),
        requests: AtomicU64::new(0),
        metrics: Mutex::new(metrics::Metrics::default()),
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        ready(addr);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _peer)) = accepted else { continue };
                    let app = Arc::clone(&app);
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let service = hyper::service::service_fn(move |req| {
                            let app = Arc::clone(&app);
                            async move { Ok::<_, std::convert::Infallible>(handle(app, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(READ_TIMEOUT)
                            .serve_connection(io, service)
                            .await;
                    });
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        // As Ctrl-C does to `pare apply`: no new steps start, those under
        // way finish, and the run is recorded cancelled.
        if let Ok(mut execs) = app.execs.lock() {
            for e in execs.values_mut().filter(|e| e.finished_at.is_none()) {
                e.cancel.set();
                e.cancel_asked = true;
                e.version += 1;
            }
        }
        drop(listener);
        tracing::info!("stopping: no new requests; waiting for the running execution to finish");
        // A run's own Ctrl-C watch has stopped it starting new steps (on
        // SIGINT); on SIGTERM it finishes. Either way it records its end.
        while app.running().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    })
}

impl App {
    /// Takes the state's lock for a run, timed for the metrics.
    fn begin(&self, doing: &str) -> Result<Session, SessionError> {
        let t = Instant::now();
        let r = Session::begin(self.settings.clone(), doing);
        let conflict = matches!(r, Err(SessionError::State(StateError::Locked { .. })));
        if let Ok(mut m) = self.metrics.lock() {
            m.lock(t.elapsed().as_secs_f64(), conflict);
        }
        r
    }

    fn running(&self) -> Option<String> {
        self.execs
            .lock()
            .ok()?
            .values()
            .find(|e| e.finished_at.is_none())
            .map(|e| e.id.clone())
    }
}

/// The response to one request, whatever happens.
/// A response body: whole, or a stream of events.
type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let n = app.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("q-{n}");
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let wants_events = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let last_event = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut reply = route(&app, req).await;
    // Logs asked for as a stream: the same events, followed live.
    if wants_events
        && reply.status == StatusCode::OK
        && let Some(follow) = reply.body.get_mut("__follow")
    {
        if let Some(n) = last_event {
            follow["after"] = Value::from(n);
        }
        reply.body = json!({ "__sse": follow.clone() });
    }
    if let Ok(mut m) = app.metrics.lock() {
        m.request(reply.status.as_u16());
    }
    tracing::info!(
        request_id,
        method = %method,
        path = %crate::vocabulary::words::clean(&path),
        status = reply.status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    if let Some(follow) = reply.body.get("__sse") {
        let id = follow["id"].as_str().unwrap_or_default().to_string();
        let after = follow["after"].as_u64().unwrap_or(0) as usize;
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-store")
            .header("x-request-id", &request_id)
            .body(follow_events(app, id, after))
            .unwrap_or_default();
    }
    let (kind, text) = if let Some(raw) = reply.raw.clone() {
        ("application/json", raw)
    } else if let Some(text) = reply.body.get("__text").and_then(Value::as_str) {
        ("text/plain; version=0.0.4", Bytes::from(text.to_string()))
    } else if let Some(ndjson) = reply.body.get("__ndjson").and_then(Value::as_str) {
        ("application/x-ndjson", Bytes::from(ndjson.to_string()))
    } else {
        let mut text = serde_json::to_string_pretty(&reply.body).unwrap_or_default();
        text.push('\n');
        ("application/json", Bytes::from(text))
    };
    let mut b = Response::builder()
        .status(reply.status)
        .header("content-type", kind)
        .header("x-request-id", &request_id)
        .header("cache-control", "no-store");
    if let Some(l) = &reply.location {
        b = b.header("location", l);
    }
    b.body(Full::new(text).boxed()).unwrap_or_default()
}

/// A body fed by a channel: a live stream of server-sent events.
struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

/// An execution's events after `after`, as server-sent events, as they
/// come, until it has finished (or the client goes).
fn follow_events(app: Arc<App>, id: String, after: usize) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut next = after;
        let mut quiet = 0u32;
        loop {
            let (batch, finished) = match app.execs.lock() {
                Ok(execs) => match execs.get(&id) {
                    Some(e) => (
                        e.events.get(next..).unwrap_or_default().to_vec(),
                        e.finished_at.is_some(),
                    ),
                    None => return,
                },
                Err(_) => return,
            };
            for (name, ev) in &batch {
                next += 1;
                let frame = format!("id: {next}\nevent: {name}\ndata: {ev}\n\n");
                if tx.send(Bytes::from(frame)).await.is_err() {
                    return;
                }
            }
            if finished && batch.is_empty() {
                return;
            }
            if batch.is_empty() {
                quiet += 1;
                // A comment every 15 s keeps proxies from closing the stream.
                if quiet.is_multiple_of(150)
                    && tx
                        .send(Bytes::from_static(b": keep-alive\n\n"))
                        .await
                        .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            } else {
                quiet = 0;
            }
        }
    });
    Channel(rx).boxed()
}

/// The scopes of the request's token (every scope when the server has no
/// tokens), or 401.
fn scopes(app: &App, req: &Request<Incoming>) -> Result<Vec<String>, Reply> {
    let Some(tokens) = &app.tokens else {
        return Ok(tokens::SCOPES.iter().map(|s| s.to_string()).collect());
    };
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented.and_then(|p| tokens::find(tokens, p)) {
        Some(t) => Ok(t.scopes.clone()),
        None => Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            "serve::unauthorised",
            "give a valid token: `Authorization: Bearer TOKEN` (made by `pare serve token add`)",
        )),
    }
}

/// 403 unless `scopes` hold `scope`.
fn need(scopes: &[String], scope: &str) -> Result<(), Reply> {
    if scopes.iter().any(|s| s == scope) {
        Ok(())
    } else {
        Err(Reply::error(
            StatusCode::FORBIDDEN,
            "serve::forbidden",
            format!(
                "this token's scopes are {}; this needs `{scope}`",
                if scopes.is_empty() {
                    "none".to_string()
                } else {
                    scopes.join(", ")
                }
            ),
        ))
    }
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = req.method().clone();
    if parts.as_slice() == ["metrics"] {
        if method != Method::GET {
            return not_allowed();
        }
        if let Err(r) = scopes(app, &req).and_then(|s| need(&s, "read")) {
            return r;
        }
        let text = app.metrics.lock().map(|m| m.render()).unwrap_or_default();
        return Reply {
            status: StatusCode::OK,
            body: json!({ "__text": text }),
            location: None,
            raw: None,
        };
    }
    if parts.as_slice() == ["api", "v1", "openapi.json"] {
        return if method == Method::GET {
            Reply::ok(openapi::openapi())
        } else {
            not_allowed()
        };
    }
    if parts.as_slice() == ["healthz"] {
        return if method == Method::GET {
            Reply::ok(json!({ "status": "ok" }))
        } else {
            not_allowed()
        };
    }
    let ["api", "v1", "executions", rest @ ..] = parts.as_slice() else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "serve::not-found",
            "no such endpoint; the API is under /api/v1/executions",
        );
    };
    let scopes = match scopes(app, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let query = req.uri().query().unwrap_or("").to_string();
    let result = match (rest, &method) {
        ([], &Method::POST) => {
            // Checked before the body is read: a token that can do neither
            // does not make the server read a megabyte.
            need(&scopes, "plan").or_else(|_| need(&scopes, "apply"))
        }
        ([], &Method::GET) | ([_], &Method::GET) | ([_, "logs"], &Method::GET) => {
            need(&scopes, "read")
        }
        ([_, "cancel"], &Method::POST) => need(&scopes, "apply"),
        ([_, "rollback"], &Method::POST) => need(&scopes, "rollback"),
        ([], _) | ([_], _) | ([_, "cancel"], _) | ([_, "logs"], _) | ([_, "rollback"], _) => {
            Err(not_allowed())
        }
        _ => Err(Reply::error(
            StatusCode::NOT_FOUND,
            "serve::not-found",
            "no such endpoint",
        )),
    };
    if let Err(r) = result {
        return r;
    }
    match (rest, &method) {
        ([], &Method::POST) => {
            let key = req
                .headers()
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match read_json(req).await {
                Ok(body) => execute(app, &scopes, body, key).await,
                Err(r) => r,
            }
        }
        ([], _) => list(app, &query),
        ([id], _) => status(app, id),
        ([id, "cancel"], _) => cancel(app, id),
        ([id, "rollback"], _) => match read_json_or_empty(req).await {
            Ok(body) => rollback(app, id, body).await,
            Err(r) => r,
        },
        ([id, "logs"], _) => logs(app, id, &query),
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "serve::not-found",
            "no such endpoint",
        ),
    }
}

fn not_allowed() -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "serve::method-not-allowed",
        "this endpoint does not take that method",
    )
}

fn too_large() -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "serve::too-large",
        format!("a request body may hold at most {BODY_LIMIT} bytes"),
    )
}

/// Reads a JSON body: at most [`BODY_LIMIT`] bytes, within [`READ_TIMEOUT`].
async fn read_json(req: Request<Incoming>) -> Result<Value, Reply> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let body = req.into_body();
    let collected = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, BODY_LIMIT).collect())
        .await
        .map_err(|_| {
            Reply::error(
                StatusCode::REQUEST_TIMEOUT,
                "serve::slow-client",
                "the request body did not arrive in time",
            )
        })?;
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Err(e) => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "serve::bad-body",
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "serve::bad-json",
            format!("the body is not the JSON this endpoint takes: {e}"),
        )
    })
}

/// A JSON body, or `null` when there is none.
async fn read_json_or_empty(req: Request<Incoming>) -> Result<Value, Reply> {
    let empty = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == "0");
    if empty && req.headers().get("transfer-encoding").is_none() {
        return Ok(Value::Null);
    }
    read_json(req).await
}

/// What a POST to /executions carries.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    /// A plan file, relative to the plans root.
    #[serde(default)]
    plan: Option<String>,
    /// Or a plan saved by `pare plan --out` (its JSON), whose plan file is
    /// under the plans root.
    #[serde(default)]
    saved: Option<Value>,
    /// The sha256 of the plan file the caller reviewed.
    sha256: String,
    #[serde(default)]
    dry_run: bool,
}

/// What an execution runs: a plan file, or a saved plan written to a file
/// of its own for the session to prove (removed once read).
struct Target {
    path: PathBuf,
    label: String,
    scratch: bool,
}

static SAVED_SEQ: AtomicU64 = AtomicU64::new(0);

/// A saved plan from a request: its plan file must be under the plans root
/// (as named from the server's working directory, where it was planned);
/// the session then proves the rest (content, lineage, state, account,
/// drift) as `pare apply SAVED` does.
fn saved_target(root: &Path, saved: &Value) -> Result<Target, Reply> {
    let Some(plan) = saved
        .pointer("/plan/path")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Err(Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "saved::unreadable",
            "`saved` is not a plan saved by `pare plan --out` (it names no plan file)",
        ));
    };
    let p = Path::new(&plan);
    let outside = |why: &str| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "serve::outside-plans-root",
            format!("the saved plan's plan file must be under the plans root: {why}"),
        )
    };
    if p.is_absolute()
        || plan.contains('\0')
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside("it is absolute or goes up"));
    }
    let real = std::env::current_dir()
        .map(|d| d.join(p))
        .and_then(|f| f.canonicalize())
        .map_err(|_| outside("it is not there"))?;
    if !real.starts_with(root) || !real.is_file() {
        return Err(outside("it is elsewhere"));
    }
    let n = SAVED_SEQ.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("pare-serve-{}-{n}.saved.json", std::process::id()));
    let text = serde_json::to_string(saved).unwrap_or_default();
    crate::durable::write_atomic(&path, text.as_bytes()).map_err(|e| {
        Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "serve::failed",
            format!("cannot keep the saved plan to prove it: {e}"),
        )
    })?;
    Ok(Target {
        path,
        label: plan,
        scratch: true,
    })
}

/// A plan path under the plans root: relative, no `..`, and (symlinks
/// resolved) still under the root.
fn resolve(root: &Path, plan: &str) -> Result<PathBuf, Reply> {
    let outside = |why: &str| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            "serve::outside-plans-root",
            format!("`plan` must name a file under the plans root: {why}"),
        )
    };
    let p = Path::new(plan);
    if plan.is_empty() || plan.contains('\0') {
        return Err(outside("it is empty"));
    }
    if p.is_absolute() {
        return Err(outside("it is an absolute path"));
    }
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(outside("it goes up (`..`)"));
    }
    let full = root.join(p);
    let real = full.canonicalize().map_err(|e| {
        Reply::error(
            StatusCode::NOT_FOUND,
            "serve::no-such-plan",
            format!(
                "no plan file {} under the plans root ({e})",
                crate::vocabulary::words::clean(plan)
            ),
        )
    })?;
    if !real.starts_with(root) {
        return Err(outside("it leads out of it through a link"));
    }
    if !real.is_file() {
        return Err(outside("it is not a regular file"));
    }
    Ok(real)
}

fn session_reply(e: &SessionError) -> Reply {
    match e {
        SessionError::Load(crate::plan::LoadError::Invalid(diags)) => Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": {
                    "code": "plan::invalid",
                    "message": crate::diagnostic::count_errors(diags.len()) + " in the plan",
                    "diagnostics": diags.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
                }
            }),
            location: None,
            raw: None,
        },
        SessionError::State(StateError::Locked { .. }) => Reply::error(
            StatusCode::CONFLICT,
            "state::locked",
            crate::vocabulary::words::clean(&e.to_string()),
        ),
        SessionError::Refused(r) => Reply::error(
            StatusCode::CONFLICT,
            r.code,
            format!("{} — {}", r.what, r.todo),
        ),
        other => {
            let code = miette::Diagnostic::code(other)
                .map_or("serve::failed".to_string(), |c| c.to_string());
            Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &code,
                crate::vocabulary::words::clean(&other.to_string()),
            )
        }
    }
}

async fn execute(app: &Arc<App>, scopes: &[String], body: Value, key: Option<String>) -> Reply {
    let body: ExecuteBody = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => {
            return Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "serve::bad-json",
                format!(
                    "the body must be {{\"plan\": PATH, \"sha256\": HEX, \"dry_run\": BOOL}}: {e}"
                ),
            );
        }
    };
    if let Err(r) = need(scopes, if body.dry_run { "plan" } else { "apply" }) {
        return r;
    }
    // What the request is, to tell a retry from another request that
    // reuses its key.
    let fingerprint = {
        use sha2::Digest;
        let text =
            serde_json::to_string(&(&body.plan, &body.saved, &body.sha256)).unwrap_or_default();
        crate::vocabulary::hex(&sha2::Sha256::digest(text.as_bytes()))
    };
    let target = match (&body.plan, &body.saved) {
        (Some(plan), None) => match resolve(&app.root, plan) {
            Ok(path) => Target {
                path,
                label: plan.clone(),
                scratch: false,
            },
            Err(r) => return r,
        },
        (None, Some(_)) if body.dry_run => {
            return Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "serve::bad-json",
                "a saved plan is a preview already: apply it, or dry-run its plan file (`plan`)",
            );
        }
        (None, Some(saved)) => match saved_target(&app.root, saved) {
            Ok(t) => t,
            Err(r) => return r,
        },
        _ => {
            return Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "serve::bad-json",
                "give one of `plan` (a plan file under the plans root) and `saved` (a saved plan)",
            );
        }
    };
    if body.dry_run {
        let settings = app.settings.clone();
        return in_thread(move |tx| {
            let _ = tx.send(dry_run(&settings, &target.path, &body.sha256));
        })
        .await;
    }
    match key {
        None => start(app, target, body).await,
        Some(key) => {
            let (first, cell) = {
                let Ok(mut map) = app.idempotent.lock() else {
                    return Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "serve::failed",
                        "the server's table of idempotency keys is unusable",
                    );
                };
                let entry = map
                    .entry(key)
                    .or_insert_with(|| (fingerprint.clone(), Arc::default()));
                (entry.0.clone(), Arc::clone(&entry.1))
            };
            if first != fingerprint {
                if target.scratch {
                    let _ = std::fs::remove_file(&target.path);
                }
                return Reply::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "serve::idempotency-key-reused",
                    "this Idempotency-Key was used for another request: a retry must send the same body; a new request needs a new key",
                );
            }
            let mut target = Some(target);
            let reply = cell
                .get_or_init(|| {
                    let t = target.take();
                    async move {
                        match t {
                            Some(t) => start(app, t, body).await,
                            None => Reply::error(
                                StatusCode::INTERNAL_SERVER_ERROR,
                                "serve::failed",
                                "the request was started already",
                            ),
                        }
                    }
                })
                .await
                .clone();
            if let Some(t) = target.filter(|t| t.scratch) {
                let _ = std::fs::remove_file(&t.path);
            }
            reply
        }
    }
}

/// Runs `f` on a thread of its own (the session blocks on a runtime of its
/// own) and waits for what it sends.
async fn in_thread(f: impl FnOnce(tokio::sync::oneshot::Sender<Reply>) + Send + 'static) -> Reply {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || f(tx));
    rx.await.unwrap_or_else(|_| {
        Reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "serve::failed",
            "the request's work stopped without an answer",
        )
    })
}

fn sha_mismatch(want: &str, have: &str) -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        "serve::plan-changed",
        format!(
            "the plan file's sha256 is {have}, not the {} that was reviewed: review the plan as it is now and send its sha256",
            crate::vocabulary::words::clean(want)
        ),
    )
}

/// The preview (the JSON `pare plan --format json` prints); nothing changes.
fn dry_run(settings: &Settings, path: &Path, sha256: &str) -> Reply {
    let (loaded, graph) = match crate::validate::validate(path) {
        Ok(x) => x,
        Err(e) => return session_reply(&SessionError::Load(e)),
    };
    let store = match crate::session::open_store(settings) {
        Ok(s) => s,
        Err(e) => return session_reply(&SessionError::State(e)),
    };
    let provider = match crate::session::open_provider(
        &loaded.plan.provider,
        &loaded.path,
        &store,
        settings,
    ) {
        Ok((p, _)) => p,
        Err(e) => return session_reply(&SessionError::Open(e)),
    };
    let planned = match crate::session::runtime().block_on(crate::planner::plan(
        &loaded,
        graph,
        &settings.config,
        provider.as_ref(),
    )) {
        Ok(p) => p,
        Err(e) => return session_reply(&SessionError::Plan(e)),
    };
    if !planned.plan_sha256.eq_ignore_ascii_case(sha256) {
        return sha_mismatch(sha256, &planned.plan_sha256);
    }
    Reply::ok(serde_json::to_value(crate::preview::to_json(&planned)).unwrap_or_default())
}

/// Starts an apply run: the checks the CLI makes, then the run on a thread
/// of its own. Answers 202 once the run has its id (refusals before that
/// are the answer: 409 for the lock or an unresolved run, 422 for a plan
/// that is invalid or blocked).
async fn start(app: &Arc<App>, target: Target, body: ExecuteBody) -> Reply {
    let shared = Arc::clone(app);
    in_thread(move |tx| {
        let app = shared;
        let tx = Arc::new(Mutex::new(Some(tx)));
        let answer = |r: Reply| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(r);
            }
        };
        // The session (and its lock) is dropped before any answer is
        // sent: a client that hears "refused" and asks again at once must
        // not meet this request's lock.
        let early = (|| -> Option<Reply> {
            let doing = format!("serve: apply {}", target.label);
            let mut session = match app.begin(&doing) {
                Ok(s) => s,
                Err(e) => return Some(session_reply(&e)),
            };
            if let Err(r) = session.check_clear() {
                return Some(session_reply(&SessionError::Refused(r)));
            }
            let prepared = session.prepare_apply(Source::File(&target.path));
            if target.scratch {
                let _ = std::fs::remove_file(&target.path);
            }
            let prepared = match prepared {
                Ok(p) => p,
                Err(e) => return Some(session_reply(&e)),
            };
            if !prepared
                .planned
                .plan_sha256
                .eq_ignore_ascii_case(&body.sha256)
            {
                return Some(sha_mismatch(&body.sha256, &prepared.planned.plan_sha256));
            }
            match session.check_apply(&prepared) {
                Ok(Verdict::NothingToDo) => {
                    return Some(Reply::ok(json!({
                        "id": null,
                        "status": "nothing_to_do",
                        "message": "every recommendation is already satisfied",
                    })));
                }
                Ok(Verdict::Changes(_)) => {}
                Err(r) => {
                    let blocked: Vec<Value> = prepared
                        .planned
                        .recs
                        .iter()
                        .filter(|r| r.status == crate::planner::Status::Blocked)
                        .map(|r| {
                            json!({
                                "id": r.id,
                                "why": r.blocked_by.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>(),
                                "note": r.note,
                            })
                        })
                        .collect();
                    let mut reply = Reply::error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        r.code,
                        format!("{} — {}", r.what, r.todo),
                    );
                    if !blocked.is_empty() {
                        reply.body["error"]["blocked"] = Value::Array(blocked);
                    }
                    return Some(reply);
                }
            }
            let totals: BTreeMap<String, (usize, usize)> = prepared
                .planned
                .recs
                .iter()
                .filter(|r| r.status == crate::planner::Status::Change)
                .map(|r| (r.id.clone(), (0, r.steps.len())))
                .collect();
            let launch = Launch {
                app: Arc::clone(&app),
                kind: "apply",
                plan: target.label.clone(),
                sha256: prepared.planned.plan_sha256.clone(),
                totals,
                planned_savings: prepared.planned.summary.monthly_savings_usd,
                cancel: Cancel::default(),
                answer: Arc::clone(&tx),
                actions: prepared
                    .planned
                    .recs
                    .iter()
                    .map(|r| (r.id.clone(), r.action.to_string()))
                    .collect(),
            };
            let (out, cancel) = (launch.events(), launch.cancel.clone());
            let result = session.apply(prepared, out, cancel);
            drop(session);
            launch.finish(result);
            None
        })();
        if let Some(r) = early {
            answer(r);
        }
    })
    .await
}

/// What an execution's run thread needs to report to the server.
struct Launch {
    app: Arc<App>,
    kind: &'static str,
    plan: String,
    sha256: String,
    totals: BTreeMap<String, (usize, usize)>,
    planned_savings: f64,
    cancel: Cancel,
    answer: Arc<Mutex<Option<tokio::sync::oneshot::Sender<Reply>>>>,
    /// Each recommendation's action, for the step metrics.
    actions: BTreeMap<String, String>,
}

impl Launch {
    /// Events for the run: the first names it, which is then registered and
    /// answered (202); the rest are its progress and its logs.
    fn events(&self) -> EventsOut {
        let app = Arc::clone(&self.app);
        let (kind, plan, sha) = (self.kind, self.plan.clone(), self.sha256.clone());
        let cancel = self.cancel.clone();
        let answer = Arc::clone(&self.answer);
        let totals = Mutex::new(Some(self.totals.clone()));
        let planned_savings = self.planned_savings;
        let actions = self.actions.clone();
        let sink = EventSink(Arc::new(move |event: &Value| {
            let Some(run) = event.get("run").and_then(Value::as_str) else {
                return;
            };
            let Ok(mut execs) = app.execs.lock() else {
                return;
            };
            let exec = execs.entry(run.to_string()).or_insert_with(|| Exec {
                id: run.to_string(),
                kind,
                plan: plan.clone(),
                plan_sha256: sha.clone(),
                status: if kind == "rollback" {
                    "rolling_back"
                } else {
                    "running"
                },
                cancel: cancel.clone(),
                cancel_asked: false,
                started: Instant::now(),
                started_at: crate::clock::rfc3339(crate::clock::now()),
                finished_at: None,
                duration_s: None,
                events: Vec::new(),
                version: 0,
                rendered: None,
                progress: totals
                    .lock()
                    .ok()
                    .and_then(|mut t| t.take())
                    .unwrap_or_default(),
                current: BTreeMap::new(),
                planned_savings,
                steps_hint: None,
                record: None,
            });
            observe(exec, event);
            let result = match event.get("event").and_then(Value::as_str) {
                Some("step_done") => Some("done"),
                Some("step_failed") => Some("failed"),
                Some("step_skipped") => Some("skipped"),
                Some("step_retry") => Some("retried"),
                _ => None,
            };
            if let (Some(result), Ok(mut m)) = (result, app.metrics.lock()) {
                let rec = event.get("rec").and_then(Value::as_str).unwrap_or("");
                let action = if kind == "rollback" {
                    "undo"
                } else {
                    actions.get(rec).map_or("unknown", String::as_str)
                };
                m.step(action, result);
            }
            if let Some(tx) = answer.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(Reply {
                    status: StatusCode::ACCEPTED,
                    body: json!({ "id": run, "kind": kind, "status": exec.status }),
                    location: Some(format!("/api/v1/executions/{run}")),
                    raw: None,
                });
            }
        }));
        EventsOut {
            json: false,
            quiet: true,
            sink: Some(sink),
        }
    }

    /// Records how the run ended (or answers with why it did not start).
    fn finish(self, result: Result<crate::session::RunOutcome, SessionError>) {
        match result {
            Ok(outcome) => {
                let id = outcome.record.id.clone();
                if let Ok(mut execs) = self.app.execs.lock()
                    && let Some(e) = execs.get_mut(&id)
                {
                    e.status = status_word(self.kind, outcome.record.status);
                    e.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
                    e.duration_s = Some(e.started.elapsed().as_secs_f64());
                    if let Ok(mut m) = self.app.metrics.lock() {
                        m.run(
                            self.kind,
                            e.status,
                            e.started.elapsed().as_secs_f64(),
                            outcome.record.savings_monthly_usd,
                        );
                    }
                    e.current.clear();
                    e.record = Some(outcome.record);
                    e.version += 1;
                }
            }
            Err(e) => {
                if let Some(tx) = self.answer.lock().ok().and_then(|mut t| t.take()) {
                    let _ = tx.send(session_reply(&e));
                }
            }
        }
    }
}

/// The API's word for how a run ended: a rollback run that finished has
/// rolled its target back.
fn status_word(kind: &str, s: crate::state::RunStatus) -> &'static str {
    use crate::state::RunStatus;
    match (kind, s) {
        ("rollback", RunStatus::Completed) => "rolled_back",
        ("rollback", RunStatus::Incomplete) => "rollback_incomplete",
        ("rollback", RunStatus::Running) => "rolling_back",
        (_, s) => s.as_str(),
    }
}

/// What a POST to /executions/{id}/rollback may carry.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    dry_run: bool,
}

/// Rolls an execution back: a new run (its own execution, of kind
/// `rollback`), with the CLI's drift check and six-hour rule; with
/// `dry_run`, what would be undone.
async fn rollback(app: &Arc<App>, id: &str, body: Value) -> Reply {
    let body: RollbackBody = if body.is_null() {
        RollbackBody::default()
    } else {
        match serde_json::from_value(body) {
            Ok(b) => b,
            Err(e) => {
                return Reply::error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "serve::bad-json",
                    format!("the body must be {{\"dry_run\": BOOL}} or empty: {e}"),
                );
            }
        }
    };
    if crate::state::parse_run_id(id).is_err() {
        return unknown(id);
    }
    let app = Arc::clone(app);
    let id = id.to_string();
    in_thread(move |tx| {
        let tx = Arc::new(Mutex::new(Some(tx)));
        let answer = |r: Reply| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(r);
            }
        };
        // The session (and its lock) is dropped before any answer is
        // sent: a client that hears "refused" and asks again at once must
        // not meet this request's lock.
        let early = (|| -> Option<Reply> {
            let doing = format!("serve: rollback {id}");
            let mut session = match app.begin(&doing) {
                Ok(s) => s,
                Err(e) => return Some(session_reply(&e)),
            };
            if !session.history.runs.iter().any(|r| r.id == id) {
                return Some(unknown(&id));
            }
            let target =
                match session.rollback_target(&crate::session::Target::Run(id.clone()), false) {
                    Ok(t) => t,
                    Err(e) => return Some(session_reply(&e)),
                };
            let plan = match session.prepare_rollback(target) {
                Ok(p) => p,
                Err(e) => return Some(session_reply(&e)),
            };
            if body.dry_run {
                return Some(Reply::ok(json!({
                    "dry_run": true,
                    "execution": id,
                    "would_undo": plan.describe(),
                    "warnings": plan.warnings,
                })));
            }
            let launch = Launch {
                app: Arc::clone(&app),
                kind: "rollback",
                plan: plan.target.plan_path.clone(),
                sha256: plan.target.plan_sha256.clone(),
                totals: BTreeMap::new(),
                planned_savings: 0.0,
                cancel: Cancel::default(),
                answer: Arc::clone(&tx),
                actions: BTreeMap::new(),
            };
            let out = launch.events();
            let result = session.rollback(plan, out);
            drop(session);
            launch.finish(result);
            None
        })();
        if let Some(r) = early {
            answer(r);
        }
    })
    .await
}

/// Updates an execution's progress from one of its events.
fn observe(exec: &mut Exec, event: &Value) {
    let rec = event.get("rec").and_then(Value::as_str).unwrap_or("");
    let step = event.get("step").and_then(Value::as_u64).unwrap_or(0);
    match event.get("event").and_then(Value::as_str).unwrap_or("") {
        "step_start" => {
            let op = event.get("op").and_then(Value::as_str).unwrap_or("");
            exec.current.insert((rec.to_string(), step), op.to_string());
            if exec.kind == "rollback" {
                // A rollback's steps are known as they start.
                exec.progress.entry(rec.to_string()).or_insert((0, 0)).1 += 1;
            }
        }
        "step_done" => {
            exec.current.remove(&(rec.to_string(), step));
            if let Some(p) = exec.progress.get_mut(rec) {
                p.0 += 1;
            }
        }
        "step_failed" | "step_skipped" => {
            exec.current.remove(&(rec.to_string(), step));
        }
        "rollback_start" => {
            exec.status = "rolling_back";
            if exec.kind == "rollback" {
                exec.steps_hint = event
                    .get("steps")
                    .and_then(Value::as_u64)
                    .map(|n| n as usize);
            }
        }
        _ => {}
    }
    let mut e = event.clone();
    if let Some(o) = e.as_object_mut() {
        o.insert("seq".into(), Value::from(exec.events.len() + 1));
    }
    let name = e
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("event")
        .to_string();
    exec.events.push((name, e.to_string()));
    exec.version += 1;
}

fn exec_json(e: &Exec) -> Value {
    let done: usize = e.progress.values().map(|p| p.0).sum();
    let total: usize = e
        .steps_hint
        .unwrap_or_else(|| e.progress.values().map(|p| p.1).sum());
    let status = match (e.status, e.cancel_asked, &e.finished_at) {
        ("running", true, None) => "cancelling",
        (s, _, _) => s,
    };
    json!({
        "id": e.id,
        "kind": e.kind,
        "status": status,
        "plan": e.plan,
        "plan_sha256": e.plan_sha256,
        "progress": {
            "steps_done": e.record.as_ref().map_or(done, |r| r.steps_done.max(done)),
            "steps_total": total,
            "recommendations": e.progress.iter().map(|(id, (d, t))| json!({
                "id": id, "steps_done": d, "steps_total": t,
            })).collect::<Vec<_>>(),
        },
        "current_steps": e.current.iter().map(|((rec, step), op)| json!({
            "rec": rec, "step": step, "op": op,
        })).collect::<Vec<_>>(),
        "savings": {
            "planned_monthly_usd": e.planned_savings,
            "realised_monthly_usd": e.record.as_ref().map(|r| r.savings_monthly_usd),
        },
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "duration_s": e.duration_s,
        "left": e.record.as_ref().map_or(Vec::new(), |r| r.left.clone()),
    })
}

/// A run this server did not start (or started before a restart), from
/// its record.
fn record_json(r: &RunRecord) -> Value {
    json!({
        "id": r.id,
        "kind": r.kind.as_str(),
        "status": status_word(r.kind.as_str(), r.status),
        "plan": r.plan_path,
        "plan_sha256": r.plan_sha256,
        "progress": { "steps_done": r.steps_done },
        "current_steps": [],
        "savings": {
            "planned_monthly_usd": r.savings_planned_monthly_usd,
            "realised_monthly_usd": r.savings_monthly_usd,
        },
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "left": r.left,
    })
}

fn unknown(id: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "serve::unknown-execution",
        format!("no execution {}", crate::vocabulary::words::clean(id)),
    )
}

fn history(app: &App) -> Result<Vec<RunRecord>, Reply> {
    crate::session::open_store(&app.settings)
        .and_then(|s| s.history())
        .map(|h| h.runs)
        .map_err(|e| {
            Reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "state::io",
                crate::vocabulary::words::clean(&e.to_string()),
            )
        })
}

fn status(app: &App, id: &str) -> Reply {
    if crate::state::parse_run_id(id).is_err() {
        return unknown(id);
    }
    if let Ok(mut execs) = app.execs.lock()
        && let Some(e) = execs.get_mut(id)
    {
        let version = e.version;
        let bytes = match &e.rendered {
            Some((v, b)) if *v == version => b.clone(),
            _ => {
                let mut text = serde_json::to_string_pretty(&exec_json(e)).unwrap_or_default();
                text.push('\n');
                let b = Bytes::from(text);
                e.rendered = Some((version, b.clone()));
                b
            }
        };
        return Reply {
            status: StatusCode::OK,
            body: Value::Null,
            location: None,
            raw: Some(bytes),
        };
    }
    match history(app) {
        Ok(runs) => runs
            .iter()
            .find(|r| r.id == id)
            .map_or_else(|| unknown(id), |r| Reply::ok(record_json(r))),
        Err(r) => r,
    }
}

fn cancel(app: &App, id: &str) -> Reply {
    if crate::state::parse_run_id(id).is_err() {
        return unknown(id);
    }
    if let Ok(mut execs) = app.execs.lock()
        && let Some(e) = execs.get_mut(id)
    {
        if e.finished_at.is_some() {
            return Reply::error(
                StatusCode::CONFLICT,
                "serve::finished",
                format!(
                    "execution {id} has finished ({}): nothing to cancel",
                    e.status
                ),
            );
        }
        e.cancel.set();
        e.cancel_asked = true;
        e.version += 1;
        return Reply {
            status: StatusCode::ACCEPTED,
            body: exec_json(e),
            location: Some(format!("/api/v1/executions/{id}")),
            raw: None,
        };
    }
    match history(app) {
        Ok(runs) if runs.iter().any(|r| r.id == id) => Reply::error(
            StatusCode::CONFLICT,
            "serve::finished",
            format!("execution {id} is not running here: nothing to cancel"),
        ),
        Ok(_) => unknown(id),
        Err(r) => r,
    }
}

/// `key=value&…` into a map (values percent-decoded).
fn query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((k.to_string(), percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn bad_query(message: String) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "serve::bad-query", message)
}

fn logs(app: &App, id: &str, q: &str) -> Reply {
    if crate::state::parse_run_id(id).is_err() {
        return unknown(id);
    }
    let q = query(q);
    let after = match q.get("after").map(|a| a.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return bad_query("`after` is the seq of the last event read, a number".into());
        }
    };
    if let Ok(execs) = app.execs.lock()
        && let Some(e) = execs.get(id)
    {
        let mut text = String::new();
        for (_, ev) in e.events.get(after..).unwrap_or_default() {
            text.push_str(ev);
            text.push('\n');
        }
        return Reply::ok(json!({
            "__ndjson": text,
            "__follow": { "id": id, "after": after },
        }));
    }
    match history(app) {
        Ok(runs) if runs.iter().any(|r| r.id == id) => Reply::error(
            StatusCode::NOT_FOUND,
            "serve::no-logs",
            format!(
                "execution {id} was not started by this server since it started: its events are not kept; `pare show {id}` shows its record"
            ),
        ),
        Ok(_) => unknown(id),
        Err(r) => r,
    }
}

fn list(app: &App, q: &str) -> Reply {
    let q = query(q);
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return bad_query("`limit` is a number from 1 to 500".into()),
    };
    if let Some(c) = q.get("cursor")
        && crate::state::parse_run_id(c).is_err()
    {
        return bad_query("`cursor` is the `next_cursor` of the page before".into());
    }
    let runs = match history(app) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut all: BTreeMap<String, Value> = runs
        .iter()
        .map(|r| (r.id.clone(), record_json(r)))
        .collect();
    if let Ok(execs) = app.execs.lock() {
        for e in execs.values() {
            all.insert(e.id.clone(), exec_json(e));
        }
    }
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut page: Vec<Value> = Vec::new();
    let mut next = None;
    // Newest first: run ids sort by time.
    for (id, v) in all.iter().rev() {
        if q.get("cursor").is_some_and(|c| id.as_str() >= c.as_str()) {
            continue;
        }
        if ["status", "kind", "plan"]
            .iter()
            .any(|k| q.get(*k).is_some_and(|want| &field(v, k) != want))
        {
            continue;
        }
        if page.len() == limit {
            next = page.last().map(|p| field(p, "id"));
            break;
        }
        page.push(v.clone());
    }
    Reply::ok(json!({ "executions": page, "next_cursor": next }))
}
