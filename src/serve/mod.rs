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
    /// The tokens file and what it held at start (`None`: no
    /// authentication, loopback only). It is read again when it changes:
    /// a token removed from it is refused from the next request on.
    pub tokens: Option<(PathBuf, tokens::Tokens)>,
}

/// A file's modification time and size.
type Stamp = (std::time::SystemTime, u64);

/// The tokens file, read again whenever its size or time changes.
struct TokenSource {
    path: PathBuf,
    seen: Mutex<(Option<Stamp>, Result<tokens::Tokens, String>)>,
}

impl TokenSource {
    fn current(&self) -> Result<tokens::Tokens, String> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let Ok(mut seen) = self.seen.lock() else {
            return Err("the server's copy of the tokens file is unusable".into());
        };
        if stamp.is_none() || stamp != seen.0 {
            seen.0 = stamp;
            seen.1 = tokens::load(&self.path);
            if let Err(e) = &seen.1 {
                tracing::error!("{e}: every request is refused until it is fixed");
            }
        }
        seen.1.clone()
    }
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
    /// The rollback run that undid this apply run, and how it ended.
    resolved_by: Option<(String, &'static str)>,
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
    tokens: Option<TokenSource>,
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
        tokens: config.tokens.map(|(path, t)| TokenSource {
            seen: Mutex::new((
                std::fs::metadata(&path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len()))),
                Ok(t),
            )),
            path,
        }),
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
    let Some(source) = &app.tokens else {
        return Ok(tokens::SCOPES.iter().map(|s| s.to_string()).collect());
    };
    let tokens = source.current().map_err(|e| {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "serve::unauthorised",
            format!("no token is accepted while the tokens file cannot be read: {e}"),
        )
    })?;
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    match presented.and_then(|p| tokens::find(&tokens, p)) {
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

/// What a browser may not do: a page of another origin (or one that made
/// its name point at loopback) must not drive the API through the browser
/// of the person at the keyboard.
fn browser_check(app: &App, req: &Request<Incoming>) -> Result<(), Reply> {
    if req.headers().contains_key("origin") {
        return Err(Reply::error(
            StatusCode::FORBIDDEN,
            "serve::cross-origin",
            "requests from web pages (with an Origin header) are refused: the API is for programs",
        ));
    }
    let ambiguous = |h: &str| req.headers().get_all(h).iter().count() > 1;
    if ambiguous("host") || ambiguous("content-type") || ambiguous("authorization") {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "serve::ambiguous-request",
            "give each of Host, Content-Type and Authorization once",
        ));
    }
    if app.tokens.is_none() {
        // Without tokens the server is on loopback: its name must be too,
        // in the Host header and in a request target that names one.
        let loopback = |host: &str| {
            let name = match host.rsplit_once(':') {
                Some((n, port)) if port.parse::<u16>().is_ok() => n,
                // A port that is not one.
                Some((n, _)) if !n.contains(':') || n.ends_with(']') => return false,
                _ => host,
            };
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        let host = req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let target_ok = req.uri().authority().is_none_or(|a| loopback(a.as_str()));
        if !loopback(host) || !target_ok {
            return Err(Reply::error(
                StatusCode::FORBIDDEN,
                "serve::bad-host",
                "without tokens the server answers only requests addressed to a loopback name (127.0.0.1, localhost, [::1])",
            ));
        }
    }
    if req.method() == Method::POST {
        let has_body = req.headers().contains_key("transfer-encoding")
            || req
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() != "0");
        // application/json, in UTF-8 (the only charset JSON has).
        let json = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mut parts = v.split(';');
                parts
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
                    && parts.all(|p| {
                        p.split_once('=').is_none_or(|(k, v)| {
                            !k.trim().eq_ignore_ascii_case("charset")
                                || v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                        })
                    })
            });
        if has_body && !json {
            return Err(Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "serve::not-json",
                "send the body as `Content-Type: application/json`",
            ));
        }
    }
    Ok(())
}

async fn route(app: &Arc<App>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let method = req.method().clone();
    if parts.first() != Some(&"healthz")
        && let Err(r) = browser_check(app, &req)
    {
        return r;
    }
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
            need(&scopes, "plan")
                .or_else(|_| need(&scopes, "apply"))
                .map_err(|_| need(&scopes, "plan or apply").unwrap_err())
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
            let keys: Vec<_> = req.headers().get_all("idempotency-key").iter().collect();
            let key = match keys.as_slice() {
                [] => None,
                [k] => match k.to_str().ok().filter(|k| {
                    (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
                }) {
                    Some(k) => Some(k.to_string()),
                    None => {
                        return Reply::error(
                            StatusCode::BAD_REQUEST,
                            "serve::bad-idempotency-key",
                            "an Idempotency-Key is 1 to 255 visible ASCII characters",
                        );
                    }
                },
                _ => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "serve::bad-idempotency-key",
                        "give one Idempotency-Key header, not several",
                    );
                }
            };
            match read_json(req).await.and_then(|b| strict::<ExecuteBody>(&b)) {
                Ok(body) => execute(app, &scopes, body, key).await,
                Err(r) => r,
            }
        }
        ([], _) => list(app, &query),
        ([id], _) => status(app, id),
        ([id, "cancel"], _) => cancel(app, id),
        ([id, "rollback"], _) => match read_json_or_empty(req).await {
            Ok(None) => rollback(app, id, RollbackBody::default()).await,
            Ok(Some(b)) => match strict::<RollbackBody>(&b) {
                Ok(body) => rollback(app, id, body).await,
                Err(r) => r,
            },
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
async fn read_json(req: Request<Incoming>) -> Result<Bytes, Reply> {
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
    Ok(bytes)
}

/// A body as `T`: a JSON object, each key once, no key `T` does not take.
fn strict<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Reply> {
    let bad = |why: String| {
        Reply::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "serve::bad-json",
            format!("the body is not the JSON this endpoint takes: {why}"),
        )
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if !value.is_object() {
        return Err(bad("it must be a JSON object".into()));
    }
    // From the bytes, not the value: a key given twice is an error there.
    serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))
}

/// A JSON body, or `null` when there is none.
async fn read_json_or_empty(req: Request<Incoming>) -> Result<Option<Bytes>, Reply> {
    let empty = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == "0");
    if empty && req.headers().get("transfer-encoding").is_none() {
        return Ok(None);
    }
    let bytes = read_json(req).await?;
    Ok((!bytes.iter().all(u8::is_ascii_whitespace)).then_some(bytes))
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
    if plan.is_empty() {
        return Err(outside("it is empty"));
    }
    if plan.contains('\0') {
        return Err(outside("it holds a NUL"));
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

async fn execute(
    app: &Arc<App>,
    scopes: &[String],
    body: ExecuteBody,
    key: Option<String>,
) -> Reply {
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
        None => start(app, target, body, None).await,
        Some(key) => {
            // A run a request with this key started, before a restart
            // perhaps: the same execution, never a second run.
            match history(app) {
                Ok(runs) => {
                    // Recorded as `KEY#FINGERPRINT` (the fingerprint is hex).
                    let split = |r: &RunRecord| {
                        r.request_key
                            .as_deref()
                            .and_then(|k| k.rsplit_once('#'))
                            .map(|(k, f)| (k.to_string(), f.to_string()))
                    };
                    if let Some((r, (_, f))) = runs
                        .iter()
                        .filter_map(|r| split(r).map(|kf| (r, kf)))
                        .find(|(_, (k, _))| *k == key)
                    {
                        if target.scratch {
                            let _ = std::fs::remove_file(&target.path);
                        }
                        if f != fingerprint {
                            return key_reused();
                        }
                        return replay(app, &r.id);
                    }
                }
                Err(r) => return r,
            }
            let (first, cell) = {
                let Ok(mut map) = app.idempotent.lock() else {
                    return Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "serve::failed",
                        "the server's table of idempotency keys is unusable",
                    );
                };
                let entry = map
                    .entry(key.clone())
                    .or_insert_with(|| (fingerprint.clone(), Arc::default()));
                (entry.0.clone(), Arc::clone(&entry.1))
            };
            if first != fingerprint {
                if target.scratch {
                    let _ = std::fs::remove_file(&target.path);
                }
                if !cell.initialized() {
                    // The other request may yet be refused, which frees the key.
                    return Reply::error(
                        StatusCode::CONFLICT,
                        "serve::idempotency-key-in-use",
                        "a request with this Idempotency-Key and another body is under way: wait for it; if it is refused, the key is free again",
                    );
                }
                return key_reused();
            }
            let mut target = Some(target);
            let k = format!("{key}#{fingerprint}");
            let reply = cell
                .get_or_init(|| {
                    let t = target.take();
                    async move {
                        match t {
                            Some(t) => start(app, t, body, Some(k)).await,
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
            if reply.status != StatusCode::ACCEPTED {
                // Only a started run binds the key: after a refusal, the
                // caller may fix what was wrong and try again with it.
                if let Ok(mut map) = app.idempotent.lock()
                    && map.get(&key).is_some_and(|(_, c)| Arc::ptr_eq(c, &cell))
                {
                    map.remove(&key);
                }
                return reply;
            }
            match reply.body.get("id").and_then(Value::as_str) {
                Some(id) => replay(app, id),
                None => reply,
            }
        }
    }
}

fn key_reused() -> Reply {
    Reply::error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "serve::idempotency-key-reused",
        "this Idempotency-Key was used for another request: a retry must send the same body; a new request needs a new key",
    )
}

/// The answer to a request whose run has started: 202, its `Location`,
/// and its status as it is now.
fn replay(app: &App, id: &str) -> Reply {
    let now = status(app, id);
    let current = match &now.raw {
        Some(b) => serde_json::from_slice::<Value>(b).unwrap_or_default(),
        None => now.body,
    };
    Reply {
        status: StatusCode::ACCEPTED,
        body: json!({
            "id": id,
            "kind": current.get("kind").cloned().unwrap_or(Value::from("apply")),
            "status": current.get("status").cloned().unwrap_or(Value::from("running")),
        }),
        location: Some(format!("/api/v1/executions/{id}")),
        raw: None,
    }
}

/// Where a run's thread sends its one answer (202 once the run has its id,
/// or why it did not start).
type Answer = Arc<Mutex<Option<tokio::sync::oneshot::Sender<Reply>>>>;

/// Runs `work` on a thread of its own and answers with what it sends, or
/// with the refusal it returns. The work's session (and its lock) is
/// dropped when it returns, before that refusal is sent: a client that
/// hears "refused" and asks again at once must not meet this request's
/// lock.
async fn answering(work: impl FnOnce(Answer) -> Option<Reply> + Send + 'static) -> Reply {
    in_thread(move |tx| {
        let tx: Answer = Arc::new(Mutex::new(Some(tx)));
        if let Some(r) = work(Arc::clone(&tx))
            && let Some(tx) = tx.lock().ok().and_then(|mut t| t.take())
        {
            let _ = tx.send(r);
        }
    })
    .await
}

/// Runs `f` on a thread of its own (the session blocks on a runtime of its
/// own) and waits for what it sends.
async fn in_thread(f: impl FnOnce(tokio::sync::oneshot::Sender<Reply>) + Send + 'static) -> Reply {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The plan loader's depth limits are sized for a main thread's stack:
    // the work of a request gets as much (a plan nested as deep as the
    // loader allows must be refused, not overflow the server's stack).
    let spawned = std::thread::Builder::new()
        .name("pare-serve-work".into())
        .stack_size(64 << 20)
        .spawn(move || f(tx));
    if let Err(e) = spawned {
        return Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serve::failed",
            format!("no thread for the request's work: {e}"),
        );
    }
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
async fn start(app: &Arc<App>, target: Target, body: ExecuteBody, key: Option<String>) -> Reply {
    let shared = Arc::clone(app);
    answering(move |tx| {
        let app = shared;
        let doing = format!("serve: apply {}", target.label);
        let mut session = match app.begin(&doing) {
            Ok(s) => s,
            Err(e) => return Some(session_reply(&e)),
        };
        session.request_key = key;
        if let Err(r) = session.check_clear() {
            return Some(session_reply(&SessionError::Refused(r)));
        }
        let prepared = session.prepare_apply(Source::File(&target.path));
        if target.scratch {
            let _ = std::fs::remove_file(&target.path);
        }
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let mut reply = session_reply(&e);
                if target.scratch
                    && let Some(m) = reply.body.pointer_mut("/error/message")
                    && let Some(text) = m.as_str()
                {
                    // The file the request's saved plan was kept in is the
                    // server's business: say "the saved plan".
                    let said = text.replace(&target.path.display().to_string(), "the saved plan");
                    *m = Value::from(said);
                }
                return Some(reply);
            }
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
            target: None,
        };
        let (out, cancel) = (launch.events(), launch.cancel.clone());
        let result = session.apply(prepared, out, cancel);
        drop(session);
        launch.finish(result);
        None
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
    answer: Answer,
    /// Each recommendation's action, for the step metrics.
    actions: BTreeMap<String, String>,
    /// A rollback's target run.
    target: Option<String>,
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
                resolved_by: None,
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
                    let word = e.status;
                    e.record = Some(outcome.record);
                    e.version += 1;
                    if let Some(t) = self.target.as_ref().and_then(|t| execs.get_mut(t)) {
                        t.resolved_by = Some((id.clone(), word));
                        t.version += 1;
                        // What it realised is no longer saved.
                        if word == "rolled_back"
                            && let (Some(r), Ok(mut m)) = (&t.record, self.app.metrics.lock())
                        {
                            m.undo_savings(r.savings_monthly_usd);
                        }
                    }
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
async fn rollback(app: &Arc<App>, id: &str, body: RollbackBody) -> Reply {
    if crate::state::parse_run_id(id).is_err() {
        return unknown(id);
    }
    let app = Arc::clone(app);
    let id = id.to_string();
    answering(move |tx| {
        let doing = format!("serve: rollback {id}");
        let mut session = match app.begin(&doing) {
            Ok(s) => s,
            Err(e) => return Some(session_reply(&e)),
        };
        if !session.history.runs.iter().any(|r| r.id == id) {
            return Some(unknown(&id));
        }
        let target = match session.rollback_target(&crate::session::Target::Run(id.clone()), false)
        {
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
            plan: plan_label(&app.root, &plan.target.plan_path),
            sha256: plan.target.plan_sha256.clone(),
            totals: BTreeMap::new(),
            planned_savings: 0.0,
            cancel: Cancel::default(),
            answer: Arc::clone(&tx),
            actions: BTreeMap::new(),
            target: Some(plan.target.id.clone()),
        };
        let out = launch.events();
        let result = session.rollback(plan, out);
        drop(session);
        launch.finish(result);
        None
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
    let status = match (e.status, e.cancel_asked, &e.finished_at, &e.resolved_by) {
        ("running", true, None, _) => "cancelling",
        (_, _, Some(_), Some((_, word))) => word,
        (s, _, _, _) => s,
    };
    json!({
        "rolled_back_by": e.resolved_by.as_ref().map(|(id, _)| id),
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

/// For each apply run a rollback run resolves: that run's id and its word.
fn resolutions(runs: &[RunRecord]) -> HashMap<String, (String, &'static str)> {
    let mut newest: HashMap<String, (crate::state::RunId, String, &'static str)> = HashMap::new();
    for r in runs {
        let (Some(target), Ok(id)) = (r.resolves.clone(), crate::state::parse_run_id(&r.id)) else {
            continue;
        };
        let word = match r.kind {
            crate::state::RunKind::Accept => "accepted",
            _ => status_word("rollback", r.status),
        };
        if newest.get(&target).is_none_or(|(n, _, _)| *n < id) {
            newest.insert(target, (id, r.id.clone(), word));
        }
    }
    newest
        .into_iter()
        .map(|(t, (_, id, word))| (t, (id, word)))
        .collect()
}

/// A plan path as the API names it: relative to the plans root when under it.
fn plan_label(root: &Path, path: &str) -> String {
    Path::new(path)
        .strip_prefix(root)
        .map_or_else(|_| path.to_string(), |p| p.display().to_string())
}

/// A run this server did not start (or started before a restart), from
/// its record.
fn record_json(
    root: &Path,
    r: &RunRecord,
    resolved: &HashMap<String, (String, &'static str)>,
) -> Value {
    let by = resolved.get(&r.id);
    json!({
        "id": r.id,
        "kind": r.kind.as_str(),
        "status": by.map_or_else(|| status_word(r.kind.as_str(), r.status), |(_, w)| *w),
        "rolled_back_by": by.map(|(id, _)| id),
        "plan": plan_label(root, &r.plan_path),
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
        Ok(runs) => runs.iter().find(|r| r.id == id).map_or_else(
            || unknown(id),
            |r| Reply::ok(record_json(&app.root, r, &resolutions(&runs))),
        ),
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
        if e.kind == "rollback" {
            return Reply::error(
                StatusCode::CONFLICT,
                "serve::not-cancellable",
                format!(
                    "execution {id} is a rollback: it undoes what it can, and stopping it halfway would leave more to undo"
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
fn query(q: &str) -> Result<HashMap<String, String>, Reply> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match percent_decode(v) {
                Some(v) => Ok((k.to_string(), v)),
                None => Err(bad_query(format!(
                    "the value of `{}` is not percent-encoded UTF-8",
                    crate::vocabulary::words::clean(k)
                ))),
            }
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
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
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
    let q = match query(q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => return bad_query("`limit` is a number from 1 to 500".into()),
    };
    let cursor = match q.get("cursor").map(|c| crate::state::parse_run_id(c)) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => {
            return bad_query("`cursor` is the `next_cursor` of the page before".into());
        }
    };
    const STATUSES: [&str; 12] = [
        "running",
        "applied",
        "failed",
        "cancelling",
        "cancelled",
        "rolling_back",
        "rolled_back",
        "rollback_incomplete",
        "interrupted",
        "completed",
        "incomplete",
        "accepted",
    ];
    if let Some(st) = q.get("status")
        && !STATUSES.contains(&st.as_str())
    {
        return bad_query(format!("`status` is one of {}", STATUSES.join(", ")));
    }
    if let Some(k) = q.get("kind")
        && !["apply", "rollback", "accept"].contains(&k.as_str())
    {
        return bad_query("`kind` is apply, rollback or accept".into());
    }
    let runs = match history(app) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let resolved = resolutions(&runs);
    let mut all: BTreeMap<crate::state::RunId, Value> = runs
        .iter()
        .filter_map(|r| {
            let id = crate::state::parse_run_id(&r.id).ok()?;
            Some((id, record_json(&app.root, r, &resolved)))
        })
        .collect();
    if let Ok(execs) = app.execs.lock() {
        for e in execs.values() {
            if let Ok(id) = crate::state::parse_run_id(&e.id) {
                let mut v = exec_json(e);
                // A rollback from the CLI resolves it too.
                if let (Some((by, word)), true) = (resolved.get(&e.id), e.finished_at.is_some()) {
                    v["status"] = Value::from(*word);
                    v["rolled_back_by"] = Value::from(by.clone());
                }
                all.insert(id, v);
            }
        }
    }
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut page: Vec<Value> = Vec::new();
    let mut next = None;
    // Newest first: run ids order by time, then by their sequence number.
    for (id, v) in all.iter().rev() {
        if cursor.as_ref().is_some_and(|c| id >= c) {
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
