//! The state in S3 (`s3://bucket/prefix/`), shared by every machine that
//! names the same prefix: apply from one CI runner, roll back from another.
//!
//! ```text
//! <prefix>lock                          the lock: created with If-None-Match: *,
//!                                       renewed and released with If-Match
//! <prefix>history.json                  every run's record, replaced with
//!                                       If-Match on the version last read
//! <prefix>runs/<run>/journal/<n>        the journal: one immutable object per
//!                                       group commit, created with If-None-Match
//! <prefix>docs/<name>                   the sandbox account
//! <prefix>logs/<name>/<n>               its operation log, as the journal
//! ```
//!
//! Only S3's own mechanisms coordinate writers: conditional writes. Every
//! lock checks that the store honours them (a second conditional create of
//! the lock must be refused), since on a store that ignores them the lock
//! would silently exclude nobody. Every object is written with server-side
//! encryption requested; nothing written names a credential.
//!
//! The store's calls are made on a runtime of its own (two threads), so
//! they can be made from anywhere: synchronous code, or a task of the
//! engine's runtime, which then waits as it waits on a local fsync.

use super::{Holder, LockGuard, RunId, RunRecord, StateError, StateStore};
use crate::durable::{AppendLog, DocStore, Flusher};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Where shared state lives and how to reach it.
#[derive(Debug, Clone)]
struct S3Spec {
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
    url: String,
    /// How long the lock stands without a renewal.
    lease: Duration,
}

impl S3Spec {
    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Why a request to the store failed, as far as pare cares.
#[derive(Debug)]
enum S3Err {
    /// 412: a condition (If-None-Match, If-Match) was not met.
    Precondition,
    /// 404: no such key.
    NotFound,
    /// A log with a hole: this object is missing and later ones exist.
    Gap(String),
    Other(String),
}

impl std::fmt::Display for S3Err {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Err::Precondition => f.write_str("a conditional write was refused (412)"),
            S3Err::NotFound => f.write_str("not found (404)"),
            S3Err::Gap(k) => write!(
                f,
                "{k} is missing while later objects of the same log exist: a log with a hole cannot say what happened (restore that object's previous version, the bucket's versioning keeps it)"
            ),
            S3Err::Other(s) => f.write_str(s),
        }
    }
}

fn classify<E>(
    e: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> S3Err
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::SdkError;
    match &e {
        SdkError::DispatchFailure(d) => {
            let why = if d.is_timeout() {
                "it did not answer in time"
            } else if d.is_io() {
                "the connection failed (refused, reset or unreachable)"
            } else {
                "the request could not be sent"
            };
            return S3Err::Other(format!("cannot reach S3: {why}, after pare's retries"));
        }
        SdkError::TimeoutError(_) => {
            return S3Err::Other("S3 did not answer in time, after pare's retries".into());
        }
        _ => {}
    }
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    match (code.as_deref(), status) {
        (Some("NoSuchBucket"), _) => {
            return S3Err::Other("NoSuchBucket: the bucket does not exist (HTTP 404)".into());
        }
        (Some("PreconditionFailed"), _) | (_, Some(412)) => return S3Err::Precondition,
        (Some("NoSuchKey") | Some("NotFound"), _) | (_, Some(404)) => return S3Err::NotFound,
        _ => {}
    }
    // What S3 said, in one line; the whole context only when it said nothing.
    match (code, e.message(), status) {
        (Some(code), message, status) => S3Err::Other(format!(
            "{code}{}{}",
            message.map_or(String::new(), |m| format!(": {m}")),
            status.map_or(String::new(), |s| format!(" (HTTP {s})"))
        )),
        _ => S3Err::Other(DisplayErrorContext(&e).to_string()),
    }
}

/// A request that died inside the SDK.
fn sdk_failed() -> S3Err {
    S3Err::Other(
        "the request failed inside the AWS SDK (check the region and endpoint settings)".into(),
    )
}

/// An object's bytes and its ETag.
type Object = (Vec<u8>, Option<String>);

/// A condition on a write.
enum Cond {
    None,
    /// Create only: `If-None-Match: *`.
    Absent,
    /// Replace only this version: `If-Match: <etag>`.
    Version(String),
}

/// The bucket and the runtime the store's requests run on.
struct Io {
    client: aws_sdk_s3::Client,
    bucket: String,
    rt: Option<tokio::runtime::Runtime>,
    requests: AtomicU64,
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Requests to the state are tried at least this many times in all (with
/// the SDK's backoff): a journal write that finally fails stops the run.
const STATE_ATTEMPTS: u32 = 8;

/// 409 ConditionalRequestConflict (two conditional writes of one key at
/// once) is retried here; the SDK retries 500 and 503 SlowDown itself.
const CONFLICT_RETRIES: u32 = 5;

impl Io {
    /// Runs `fut` on the store's runtime and waits for it.
    fn call<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self.rt.as_ref()?;
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        // `None`: the request died inside the SDK (a panic there, on input
        // it cannot send): an error for the caller, never a crash.
        rx.recv().ok()
    }

    fn get(self: &Arc<Self>, key: &str) -> Result<Option<Object>, S3Err> {
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), key.to_string());
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.call(async move {
            match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => {
                    let etag = out.e_tag().map(str::to_string);
                    let bytes = out
                        .body
                        .collect()
                        .await
                        .map_err(|e| S3Err::Other(format!("reading the object: {e}")))?
                        .into_bytes()
                        .to_vec();
                    Ok(Some((bytes, etag)))
                }
                Err(e) => match classify(e) {
                    S3Err::NotFound => Ok(None),
                    e => Err(e),
                },
            }
        })
        .unwrap_or_else(|| Err(sdk_failed()))
    }

    /// Writes `body` at `key` under `cond`; the new version's ETag.
    fn put(self: &Arc<Self>, key: &str, body: &[u8], cond: &Cond) -> Result<String, S3Err> {
        let mut tries = 0;
        loop {
            let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), key.to_string());
            let body = body.to_vec();
            let (none, version) = match cond {
                Cond::None => (None, None),
                Cond::Absent => (Some("*".to_string()), None),
                Cond::Version(v) => (None, Some(v.clone())),
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let r = self
                .call(async move {
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(key)
                        .body(ByteStream::from(body))
                        .server_side_encryption(ServerSideEncryption::Aes256)
                        .set_if_none_match(none)
                        .set_if_match(version)
                        .send()
                        .await
                        .map(|o| o.e_tag().unwrap_or_default().to_string())
                        .map_err(|e| {
                            let conflict = e.code() == Some("ConditionalRequestConflict");
                            (classify(e), conflict)
                        })
                })
                .unwrap_or_else(|| Err((sdk_failed(), false)));
            match r {
                Ok(etag) => return Ok(etag),
                Err((_, true)) if tries < CONFLICT_RETRIES => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50 << tries));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn delete(self: &Arc<Self>, key: &str, version: Option<String>) -> Result<(), S3Err> {
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), key.to_string());
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.call(async move {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .set_if_match(version)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        })
        .unwrap_or_else(|| Err(sdk_failed()))
    }

    /// Every key under `prefix`, in order.
    fn list(self: &Arc<Self>, prefix: &str) -> Result<Vec<String>, S3Err> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (client, bucket, prefix) =
                (self.client.clone(), self.bucket.clone(), prefix.to_string());
            let t = token.clone();
            self.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .call(async move {
                    client
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(t)
                        .send()
                        .await
                        .map_err(classify)
                })
                .unwrap_or_else(|| Err(sdk_failed()))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Many objects at once (a journal's chunks), in the order of `keys`.
    fn get_many(self: &Arc<Self>, keys: Vec<String>) -> Result<Vec<Option<Vec<u8>>>, S3Err> {
        let n = keys.len();
        let mut out: Vec<Option<Vec<u8>>> = vec![None; n];
        // 16 requests in flight at a time.
        for (i, chunk) in keys.chunks(16).enumerate() {
            let handles: Vec<_> = chunk
                .iter()
                .map(|k| {
                    let io = Arc::clone(self);
                    let k = k.clone();
                    std::thread::spawn(move || io.get(&k))
                })
                .collect();
            for (j, h) in handles.into_iter().enumerate() {
                let got = h
                    .join()
                    .map_err(|_| S3Err::Other("a read of the state failed".into()))??;
                out[i * 16 + j] = got.map(|(b, _)| b);
            }
        }
        Ok(out)
    }
}

/// The state under one S3 prefix.
pub struct S3Store {
    io: Arc<Io>,
    spec: S3Spec,
    /// `history.json` as this process last read or wrote it, and its ETag.
    cache: Mutex<Option<(Index, Option<String>)>>,
    /// The lock this process holds on this state, if any.
    held: Mutex<Weak<LockShared>>,
}

/// The history index: every run's record by id (each parsed on its own, so
/// one damaged record does not hide the others).
#[derive(serde::Serialize, serde::Deserialize, Default, Clone)]
struct Index {
    runs: std::collections::BTreeMap<String, serde_json::Value>,
}

const HISTORY: &str = "history.json";
const LOCK: &str = "lock";

impl S3Store {
    /// Connects to the prefix `state` names (no request is made yet);
    /// `attempts`: in all, for a request that fails transiently.
    pub fn open(state: &crate::config::S3State, attempts: u32) -> Result<S3Store, StateError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pare-s3")
            .enable_all()
            .build()
            .map_err(|e| StateError::io(state.url(), e))?;
        let sdk = crate::provider::aws::load_config(
            &rt,
            &crate::provider::aws::Connect {
                region: state.region.as_deref(),
                profile: state.profile.as_deref(),
                endpoint_url: state.endpoint_url.as_deref(),
                attempts: attempts.max(STATE_ATTEMPTS),
                attempt_timeout: Duration::from_secs(20),
                timeout: Duration::from_secs(90),
            },
        )
        .map_err(|region| StateError::Remote {
            location: state.url(),
            error: format!(
                "`{region}` (from AWS_REGION, AWS_DEFAULT_REGION or the profile) is not an AWS region name"
            ),
        })?;
        Ok(S3Store::with_config(rt, &sdk, state))
    }

    /// The store over an SDK configuration already loaded.
    fn with_config(
        rt: tokio::runtime::Runtime,
        sdk: &aws_config::SdkConfig,
        state: &crate::config::S3State,
    ) -> S3Store {
        let spec = S3Spec {
            bucket: state.bucket.clone(),
            prefix: state.prefix.clone(),
            url: state.url(),
            lease: Duration::from_secs(state.lease_s.max(1)),
        };
        let region_missing = sdk.region().is_none();
        let mut conf = aws_sdk_s3::config::Builder::from(sdk)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            // A local endpoint has no bucket subdomains.
            .force_path_style(state.endpoint_url.is_some() || sdk.endpoint_url().is_some());
        if region_missing {
            conf = conf.region(aws_config::Region::new("us-east-1"));
        }
        S3Store {
            io: Arc::new(Io {
                client: aws_sdk_s3::Client::from_conf(conf.build()),
                bucket: spec.bucket.clone(),
                rt: Some(rt),
                requests: AtomicU64::new(0),
            }),
            spec,
            cache: Mutex::new(None),
            held: Mutex::new(Weak::new()),
        }
    }

    /// A store on `endpoint` with fixed test credentials, its bucket made
    /// if missing (for the state suite's tests).
    #[cfg(test)]
    pub fn for_tests(endpoint: &str, bucket: &str, prefix: &str) -> S3Store {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .http_client(crate::provider::aws::https_client())
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"),
            ))
            .build();
        let mut state = crate::config::S3State::new(bucket, prefix).unwrap();
        state.endpoint_url = Some(endpoint.to_string());
        let store = S3Store::with_config(rt, &sdk, &state);
        let (client, b) = (store.io.client.clone(), bucket.to_string());
        let made = store
            .io
            .call(async move { client.create_bucket().bucket(b).send().await })
            .expect("the test's request ran");
        if let Err(e) = made {
            let code = e.code().unwrap_or_default().to_string();
            assert!(
                code.starts_with("BucketAlready"),
                "creating the test bucket: {}",
                DisplayErrorContext(&e)
            );
        }
        store
    }

    /// The lock this process holds on this state (dangling if none).
    fn held(&self) -> Weak<LockShared> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Refuses a write once this process's lock on the state is lost:
    /// another run may be writing it now.
    fn guard(&self) -> std::io::Result<()> {
        match self.held().upgrade() {
            Some(l) => {
                let st = l.state.lock().unwrap_or_else(|p| p.into_inner());
                match &st.lost {
                    Some(why) => Err(std::io::Error::other(why.clone())),
                    None => Ok(()),
                }
            }
            None => Ok(()),
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.spec.prefix)
    }

    fn err(&self, what: &str, e: S3Err) -> StateError {
        StateError::Remote {
            location: self.spec.url(),
            error: format!("{what}: {e}"),
        }
    }

    /// How many requests this store has made (for the benchmark and tests).
    pub fn requests(&self) -> u64 {
        self.io.requests.load(Ordering::Relaxed)
    }

    fn journal_prefix(&self, id: &RunId) -> String {
        self.key(&format!("runs/{id}/journal/"))
    }

    /// The index as stored, and its version (`None`: there is none yet).
    fn read_index(&self) -> Result<(Index, Option<String>), StateError> {
        let read = match self.io.get(&self.key(HISTORY)) {
            Ok(None) => (Index::default(), None),
            Ok(Some((bytes, etag))) => {
                let index: Index =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
                        id: "(every run)".into(),
                        message: format!("{}{HISTORY}: {e}", self.spec.url()),
                        location: self.spec.url(),
                    })?;
                (index, etag)
            }
            Err(e) => return Err(self.err(&format!("reading {HISTORY}"), e)),
        };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(read.clone());
        Ok(read)
    }

    /// The index as it stands: the copy this process last read or wrote
    /// while it holds the lock (nobody else writes then), else read anew.
    fn current_index(&self) -> Result<(Index, Option<String>), StateError> {
        let holding = self.held().upgrade().is_some_and(|l| {
            l.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .lost
                .is_none()
        });
        if holding && let Some(c) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        self.read_index()
    }

    /// Changes the index with `change` and writes it back, conditional on
    /// the version last read or written here; a write that meets a newer
    /// version (a retry already answered, or another writer) reads again
    /// and redoes the change.
    fn update_index(
        &self,
        change: impl Fn(&mut Index, bool) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.guard()
            .map_err(|e| self.err(&format!("writing {HISTORY}"), S3Err::Other(e.to_string())))?;
        let cached = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (mut index, mut etag) = match cached {
            Some(c) => c,
            None => self.read_index()?,
        };
        let mut attempt = 0;
        loop {
            change(&mut index, attempt > 0)?;
            let body = serde_json::to_vec_pretty(&index)
                .map_err(|e| self.err("history", S3Err::Other(e.to_string())))?;
            let cond = match &etag {
                Some(v) => Cond::Version(v.clone()),
                None => Cond::Absent,
            };
            match self.io.put(&self.key(HISTORY), &body, &cond) {
                Ok(new) => {
                    *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((index, Some(new)));
                    return Ok(());
                }
                Err(S3Err::Precondition) | Err(S3Err::NotFound) if attempt < 3 => {
                    attempt += 1;
                    (index, etag) = self.read_index()?;
                }
                Err(e) => return Err(self.err(&format!("writing {HISTORY}"), e)),
            }
        }
    }

    /// The lock as stored, and its version. What it says is checked, since
    /// anyone who may write the bucket may have written it: an id or run
    /// that is not one pare makes (and so might carry shell syntax into a
    /// command pare suggests) makes the lock *unreadable*, named by an id
    /// made from its ETag instead.
    fn read_lock(&self) -> Result<Option<(Holder, String)>, StateError> {
        match self.io.get(&self.key(LOCK)) {
            Ok(None) => Ok(None),
            Ok(Some((bytes, etag))) => {
                let etag = etag.unwrap_or_default();
                let holder = serde_json::from_slice::<Holder>(&bytes)
                    .ok()
                    .filter(|h| {
                        h.lock_id.as_deref().is_some_and(is_lock_id)
                            && h.run.as_deref().is_none_or(|r| RunId::parse(r).is_some())
                            && h.plan_sha256
                                .as_deref()
                                .is_none_or(|x| x.chars().all(|c| c.is_ascii_hexdigit()))
                    })
                    .unwrap_or_else(|| unreadable_lock(&etag));
                Ok(Some((holder, etag)))
            }
            Err(e) => Err(self.err("reading the lock", e)),
        }
    }

    /// Removes the lock at `version` (and only that version).
    fn remove_lock(&self, version: &str) -> Result<(), StateError> {
        match self.io.delete(&self.key(LOCK), Some(version.to_string())) {
            Ok(()) => Ok(()),
            Err(S3Err::Precondition) => Err(StateError::io(
                self.spec.url(),
                "the lock changed while it was being removed (its holder renewed it, or another run took it): look again with `pare unlock`",
            )),
            Err(S3Err::NotFound) => Ok(()),
            Err(e) => Err(self.err("removing the lock", e)),
        }
    }

    fn locked(&self, holder: Option<Holder>) -> StateError {
        let help = match &holder {
            Some(h) if h.is_unreadable() => format!(
                "nothing renews or releases a lock pare cannot read: once you have checked that no pare run is using this state (`pare history --state {url}`), remove it with `pare unlock {} --force --state {url}`",
                h.lock_id.as_deref().unwrap_or("LOCK_ID"),
                url = self.spec.url()
            ),
            Some(h) => {
                let id = h.lock_id.clone().unwrap_or_else(|| "LOCK_ID".into());
                let state = format!("--state {}", self.spec.url());
                if h.expired(crate::clock::now()) {
                    format!(
                        "the lock is expired: its holder stopped renewing it for longer than its lease ({} s), so it is most likely gone (a CI runner thrown away). Release it with `pare unlock {id} {state}`; that does not resolve the run it was making (`pare history {state}` shows it)",
                        h.lease_s.unwrap_or_default()
                    )
                } else {
                    format!(
                        "wait for it to finish (`pare history {state}` shows the runs). Only if you know its process is gone, take the lock with `pare unlock {id} --force {state}`"
                    )
                }
            }
            None => "try again: the lock was released while pare was looking at it".into(),
        };
        StateError::Locked {
            location: self.spec.url(),
            holder: holder.map(Box::new),
            help,
        }
    }

    /// The lock this store holds (tests).
    #[cfg(test)]
    pub(super) fn held_for_tests(&self) -> Option<LockHandle> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade()
            .map(LockHandle)
    }

    /// Writes (or with `None` removes) an object under the prefix, as
    /// someone with access to the bucket could (tests).
    #[cfg(test)]
    pub(super) fn tamper_for_tests(&self, rest: &str, bytes: Option<&[u8]>) {
        let key = self.key(rest);
        match bytes {
            Some(b) => drop(self.io.put(&key, b, &Cond::None).unwrap()),
            None => self.io.delete(&key, None).unwrap(),
        }
    }

    /// Replaces run `id`'s entry of the index with something unreadable (tests).
    #[cfg(test)]
    pub(super) fn damage_for_tests(&self, id: &str) {
        self.update_index(|index, _| {
            index
                .runs
                .insert(id.to_string(), serde_json::json!({"id": 7}));
            Ok(())
        })
        .unwrap();
    }

    fn refuse_unconditional(&self) -> StateError {
        StateError::Unconditional {
            location: self.spec.url(),
            error: "this store accepted a second create of the same object with If-None-Match: * (S3 refuses it with 412 Precondition Failed): it does not honour conditional writes, so pare's lock would exclude nobody and the state cannot be shared safely there".into(),
        }
    }
}

/// A run confirms it still holds its lock before storing an intent when
/// it last did so longer ago than this: about a round trip, so the renewal
/// that names a new run counts for its first intents (an attack showed
/// that a second's grace let a run whose lock was forced away journal and
/// make a change after the new holder's rollback had finished).
const CONFIRM_EVERY: Duration = Duration::from_millis(50);

/// What the lock's holder and its heartbeat share.
struct LockShared {
    io: Arc<Io>,
    key: String,
    /// The state's `s3://` location, for messages.
    url: String,
    lease: Duration,
    state: Mutex<LockState>,
}

struct LockState {
    holder: Holder,
    etag: String,
    /// When the last renewal was made (for the journal's freshness check).
    renewed: Instant,
    /// Why the lock is no longer ours, once it is not.
    lost: Option<String>,
}

impl LockShared {
    /// Writes the holder again (a heartbeat), conditional on the version
    /// we wrote last; a refusal means someone removed or replaced it.
    fn renew(&self, change: impl FnOnce(&mut Holder)) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.lost.is_some() {
            return;
        }
        change(&mut st.holder);
        st.holder.heartbeat = Some(crate::clock::rfc3339(crate::clock::now()));
        let Ok(body) = serde_json::to_vec(&st.holder) else {
            return;
        };
        let started = Instant::now();
        match self
            .io
            .put(&self.key, &body, &Cond::Version(st.etag.clone()))
        {
            Ok(etag) => {
                st.etag = etag;
                st.renewed = started;
            }
            Err(S3Err::Precondition) | Err(S3Err::NotFound) => {
                let why = "this run's lock on the state was removed or taken by another run (`pare unlock --force`)".to_string();
                tracing::error!("{why}: no further change is started");
                st.lost = Some(why);
            }
            Err(e) => tracing::warn!("could not renew the state's lock (will try again): {e}"),
        }
    }

    /// Whether the lock is still ours, checked with S3 itself when it was
    /// last confirmed more than a second ago (a conditional renewal): what
    /// a run does before storing an intent, so a run whose lock was taken
    /// (`pare unlock --force`) stores none, and so starts no change.
    fn check(&self) -> std::io::Result<()> {
        let stale = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.lost.is_none() && st.renewed.elapsed() >= CONFIRM_EVERY
        };
        if stale {
            self.renew(|_| {});
        }
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = &st.lost {
            return Err(std::io::Error::other(why.clone()));
        }
        if st.renewed.elapsed() > self.lease {
            return Err(std::io::Error::other(format!(
                "this run's lock on the state could not be renewed for longer than its lease ({} s), so another run may have taken it over: no further change is started",
                self.lease.as_secs()
            )));
        }
        Ok(())
    }
}

/// A held lock, for tests to renew at once.
#[cfg(test)]
pub(super) struct LockHandle(Arc<LockShared>);

#[cfg(test)]
impl LockHandle {
    pub(super) fn renew_for_tests(&self) {
        self.0.renew(|_| {});
    }
}

struct S3Lock {
    shared: Arc<LockShared>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    beat: Option<std::thread::JoinHandle<()>>,
}

impl LockGuard for S3Lock {}

impl Drop for S3Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        let st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.lost.is_some() {
            return;
        }
        // Only the version we wrote: never a lock someone else holds now.
        match self
            .shared
            .io
            .delete(&self.shared.key, Some(st.etag.clone()))
        {
            Ok(()) | Err(S3Err::NotFound) => {}
            Err(e) => tracing::warn!(
                "could not release the state's lock ({e}): it expires after its lease ({} s); then `pare unlock {} --state {}` releases it",
                self.shared.lease.as_secs(),
                st.holder.lock_id.as_deref().unwrap_or("LOCK_ID"),
                self.shared.url
            ),
        }
    }
}

/// Whether `s` is a lock id as pare makes them: `l-` and 16 hex digits.
fn is_lock_id(s: &str) -> bool {
    s.strip_prefix("l-")
        .is_some_and(|h| h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The holder of a lock object pare cannot read (not written by pare, or
/// damaged): never expired (nothing says when it was renewed), named by an
/// id made from its ETag so `pare unlock ID --force` removes exactly it.
fn unreadable_lock(etag: &str) -> Holder {
    let hex: String = etag
        .chars()
        .filter(char::is_ascii_hexdigit)
        .chain(std::iter::repeat('0'))
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    Holder {
        who: "an unreadable lock object (not written by pare, or damaged)".into(),
        doing: "unknown".into(),
        since: "unknown".into(),
        lock_id: Some(format!("l-{hex}")),
        ..Holder::default()
    }
}

fn new_lock_id() -> String {
    let mut bytes = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
    }
    format!(
        "l-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

impl DocStore for S3Store {
    fn location(&self) -> String {
        self.spec.url()
    }

    fn read_doc(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        plain(name)?;
        self.io
            .get(&self.key(&format!("docs/{name}")))
            .map(|o| o.map(|(b, _)| b))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn write_doc(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        plain(name)?;
        self.guard()?;
        self.io
            .put(&self.key(&format!("docs/{name}")), bytes, &Cond::None)
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn remove_doc(&self, name: &str) -> std::io::Result<()> {
        plain(name)?;
        self.guard()?;
        match self.io.delete(&self.key(&format!("docs/{name}")), None) {
            Ok(()) | Err(S3Err::NotFound) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    fn open_log(&self, name: &str) -> std::io::Result<Box<dyn AppendLog>> {
        plain(name)?;
        let prefix = self.key(&format!("logs/{name}/"));
        let keys = self
            .io
            .list(&prefix)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let next = keys
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1);
        Ok(Box::new(ChunkLog::new(
            Arc::clone(&self.io),
            prefix,
            next,
            self.held(),
        )))
    }

    fn read_log(&self, name: &str) -> std::io::Result<Option<String>> {
        plain(name)?;
        let prefix = self.key(&format!("logs/{name}/"));
        let text =
            read_chunks(&self.io, &prefix).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(text)
    }

    fn remove_log(&self, name: &str) -> std::io::Result<()> {
        plain(name)?;
        self.guard()?;
        let prefix = self.key(&format!("logs/{name}/"));
        let keys = self
            .io
            .list(&prefix)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Newest first: a removal cut short leaves a log missing its tail
        // (which readers tolerate), never one missing its beginning.
        for k in keys.iter().rev() {
            match self.io.delete(k, None) {
                Ok(()) | Err(S3Err::NotFound) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        Ok(())
    }

    fn names(&self) -> std::io::Result<Vec<String>> {
        let docs = self.key("docs/");
        let logs = self.key("logs/");
        let mut names = std::collections::BTreeSet::new();
        for (prefix, logs) in [(docs, false), (logs, true)] {
            let keys = self
                .io
                .list(&prefix)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            for k in keys {
                let rest = &k[prefix.len()..];
                let name = if logs {
                    rest.split('/').next().unwrap_or("")
                } else {
                    rest
                };
                if !name.is_empty() {
                    names.insert(name.to_string());
                }
            }
        }
        Ok(names.into_iter().collect())
    }
}

/// Names are plain file names, as for the local directory.
fn plain(name: &str) -> std::io::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "`{}` is not a plain file name",
                crate::vocabulary::words::clean(name)
            ),
        ))
    }
}

/// The text of a chunked log: its chunks in order. A missing tail (a
/// writer killed between two chunks) is simply not there; a missing chunk
/// with later ones present is a hole, and an error: what it held is
/// unknown. `None`: no chunk at all.
fn read_chunks(io: &Arc<Io>, prefix: &str) -> Result<Option<String>, S3Err> {
    let keys = io.list(prefix)?;
    let mut numbered: Vec<(u64, String)> = keys
        .into_iter()
        .filter_map(|k| Some((k.strip_prefix(prefix)?.parse::<u64>().ok()?, k)))
        .collect();
    if numbered.is_empty() {
        return Ok(None);
    }
    numbered.sort();
    for (i, (n, _)) in numbered.iter().enumerate() {
        let expected = i as u64 + 1;
        if *n != expected {
            return Err(S3Err::Gap(format!("{prefix}{expected:010}")));
        }
    }
    let keys: Vec<String> = numbered.into_iter().map(|(_, k)| k).collect();
    let bodies = io.get_many(keys.clone())?;
    let mut text = String::new();
    for (k, b) in keys.iter().zip(bodies) {
        let Some(b) = b else {
            return Err(S3Err::Gap(k.clone()));
        };
        text.push_str(
            &String::from_utf8(b)
                .map_err(|e| S3Err::Other(format!("{k} is not UTF-8 text: {e}")))?,
        );
    }
    Ok(Some(text))
}

/// An [`AppendLog`] as a series of immutable objects: each sync writes what
/// was appended since the last one as the next object, with If-None-Match,
/// and returns once S3 has acknowledged it.
struct ChunkLog {
    io: Arc<Io>,
    prefix: String,
    next: u64,
    pending: Vec<u8>,
    /// The lock the run holds: nothing is written once it is lost.
    lock: Weak<LockShared>,
}

impl ChunkLog {
    fn new(io: Arc<Io>, prefix: String, next: u64, lock: Weak<LockShared>) -> ChunkLog {
        ChunkLog {
            io,
            prefix,
            next,
            pending: Vec::new(),
            lock,
        }
    }
}

/// Writes chunk `n` of a log; a 412 whose object holds exactly these bytes
/// was our own earlier attempt (answered twice), anything else is an error.
fn write_chunk(
    io: &Arc<Io>,
    prefix: &str,
    n: u64,
    bytes: &[u8],
    lock: &Weak<LockShared>,
) -> std::io::Result<()> {
    if let Some(l) = lock.upgrade() {
        l.check()?;
    }
    let key = format!("{prefix}{n:010}");
    match io.put(&key, bytes, &Cond::Absent) {
        Ok(_) => Ok(()),
        Err(S3Err::Precondition) => match io.get(&key) {
            Ok(Some((b, _))) if b == bytes => Ok(()),
            _ => Err(std::io::Error::other(format!(
                "{key} already exists with other content: another writer appends to this log"
            ))),
        },
        Err(e) => Err(std::io::Error::other(format!("writing {key}: {e}"))),
    }
}

impl AppendLog for ChunkLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        write_chunk(&self.io, &self.prefix, self.next, &self.pending, &self.lock)?;
        self.pending.clear();
        self.next += 1;
        Ok(())
    }

    fn flusher(&mut self) -> std::io::Result<Option<Flusher>> {
        // The bytes leave the log now; their chunk number is theirs. Syncs
        // are made one at a time by the callers, so chunks land in order.
        let bytes = std::mem::take(&mut self.pending);
        if bytes.is_empty() {
            return Ok(Some(Box::new(|| Ok(()))));
        }
        let n = self.next;
        self.next += 1;
        let (io, prefix, lock) = (Arc::clone(&self.io), self.prefix.clone(), self.lock.clone());
        Ok(Some(Box::new(move || {
            write_chunk(&io, &prefix, n, &bytes, &lock)
        })))
    }
}

impl Drop for ChunkLog {
    fn drop(&mut self) {
        // What was appended and never synced (outcomes written without
        // waiting) is kept, as a local file keeps it once the process ends.
        if let Err(e) = self.sync() {
            tracing::warn!("could not write the end of a log in the state: {e}");
        }
    }
}

impl StateStore for S3Store {
    fn lock(&self, holder: &Holder) -> Result<Box<dyn LockGuard>, StateError> {
        let mut holder = holder.clone();
        holder.lock_id = Some(new_lock_id());
        holder.lease_s = Some(self.spec.lease.as_secs().max(1));
        holder.heartbeat = Some(holder.since.clone());
        let body = serde_json::to_vec(&holder).map_err(|e| StateError::io(self.spec.url(), e))?;
        let key = self.key(LOCK);
        let started = Instant::now();
        let etag = match self.io.put(&key, &body, &Cond::Absent) {
            Ok(etag) => etag,
            Err(S3Err::Precondition) => match self.read_lock()? {
                // Our own create, answered twice (a retry after a lost answer).
                Some((h, etag)) if h.lock_id == holder.lock_id => etag,
                other => return Err(self.locked(other.map(|(h, _)| h))),
            },
            Err(e) => return Err(self.err("taking the lock", e)),
        };
        // The self-test: the same create again must be refused.
        match self.io.put(&key, &body, &Cond::Absent) {
            Err(S3Err::Precondition) => {}
            Ok(_) => {
                let _ = self.io.delete(&key, None);
                return Err(self.refuse_unconditional());
            }
            Err(e) => {
                let _ = self.io.delete(&key, Some(etag));
                return Err(self.err("checking that the store honours conditional writes", e));
            }
        }
        let shared = Arc::new(LockShared {
            io: Arc::clone(&self.io),
            key,
            url: self.spec.url(),
            lease: self.spec.lease,
            state: Mutex::new(LockState {
                holder,
                etag,
                renewed: started,
                lost: None,
            }),
        });
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&shared);
        // What was read before the lock may have changed since: the first
        // read under it is made anew.
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = (self.spec.lease / 4).max(Duration::from_millis(250));
        let beating = Arc::clone(&shared);
        let beat = std::thread::Builder::new()
            .name("pare-lock-heartbeat".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    beating.renew(|_| {});
                }
            })
            .map_err(|e| StateError::io(self.spec.url(), e))?;
        Ok(Box::new(S3Lock {
            shared,
            stop: Some(stop),
            beat: Some(beat),
        }))
    }

    fn lock_holder(&self) -> Option<Holder> {
        self.read_lock().ok().flatten().map(|(h, _)| h)
    }

    fn run_ids(&self) -> Result<Vec<RunId>, StateError> {
        let (index, _) = self.current_index()?;
        Ok(index.runs.keys().filter_map(|k| RunId::parse(k)).collect())
    }

    fn read_run(&self, id: &RunId) -> Result<RunRecord, StateError> {
        let (index, _) = self.current_index()?;
        let value = index
            .runs
            .get(&id.to_string())
            .ok_or_else(|| StateError::UnknownRun(id.to_string()))?;
        serde_json::from_value(value.clone()).map_err(|e| StateError::Damaged {
            id: id.to_string(),
            message: format!("{}{HISTORY}, its entry: {e}", self.spec.url()),
            location: self.spec.url(),
        })
    }

    fn history_records(&self) -> Result<Vec<(RunId, Result<RunRecord, String>)>, StateError> {
        let (index, _) = self.current_index()?;
        Ok(index
            .runs
            .into_iter()
            .filter_map(|(k, v)| {
                let id = RunId::parse(&k)?;
                Some((id, serde_json::from_value(v).map_err(|e| e.to_string())))
            })
            .collect())
    }

    fn create_run(&self, record: &RunRecord) -> Result<Box<dyn AppendLog>, StateError> {
        let id = RunId::parse(&record.id).ok_or_else(|| StateError::BadRunId(record.id.clone()))?;
        let value = serde_json::to_value(record).map_err(|e| StateError::io(self.spec.url(), e))?;
        self.update_index(|index, retry| {
            match index.runs.get(&record.id) {
                // Our own write, answered twice (its answer was lost, and
                // the retry met the version it made).
                Some(v) if retry && *v == value => {}
                Some(_) => {
                    return Err(StateError::io(
                        self.spec.url(),
                        format!("run {} already exists", record.id),
                    ));
                }
                None => {
                    index.runs.insert(record.id.clone(), value.clone());
                }
            }
            Ok(())
        })?;
        let lock = self.held();
        if let Some(l) = lock.upgrade() {
            // The refusal names the run and its plan from now on.
            l.renew(|h| {
                h.run = Some(record.id.clone());
                h.plan = Some(record.plan_path.clone());
                h.plan_sha256 = Some(record.plan_sha256.clone()).filter(|s| !s.is_empty());
            });
        }
        Ok(Box::new(ChunkLog::new(
            Arc::clone(&self.io),
            self.journal_prefix(&id),
            1,
            lock,
        )))
    }

    fn save_run(&self, record: &RunRecord) -> Result<(), StateError> {
        RunId::parse(&record.id).ok_or_else(|| StateError::BadRunId(record.id.clone()))?;
        let value = serde_json::to_value(record).map_err(|e| StateError::io(self.spec.url(), e))?;
        self.update_index(|index, _| {
            index.runs.insert(record.id.clone(), value.clone());
            Ok(())
        })
    }

    fn read_journal(&self, id: &RunId) -> Result<String, StateError> {
        match read_chunks(&self.io, &self.journal_prefix(id)) {
            // A PUT is whole or absent: a chunk that ends mid-line was not
            // written by pare.
            Ok(Some(text)) if !text.is_empty() && !text.ends_with('\n') => {
                Err(StateError::Damaged {
                    id: id.to_string(),
                    message: format!(
                        "its journal's last object ({}) does not end with a whole line, which no write of pare leaves",
                        self.journal_name(id)
                    ),
                    location: self.spec.url(),
                })
            }
            Ok(text) => Ok(text.unwrap_or_default()),
            Err(e @ S3Err::Gap(_)) => Err(StateError::Damaged {
                id: id.to_string(),
                message: format!("its journal: {e}"),
                location: self.spec.url(),
            }),
            Err(e) => Err(self.err(&format!("reading the journal of {id}"), e)),
        }
    }

    fn unlock(&self, lock_id: &str, force: bool) -> Result<Option<Holder>, StateError> {
        let Some((h, etag)) = self.read_lock()? else {
            return Ok(None);
        };
        let state = format!("--state {}", self.spec.url());
        let id = h.lock_id.clone().unwrap_or_default();
        if id != lock_id {
            return Err(StateError::UnlockRefused {
                message: format!(
                    "the lock on {} has the id {}, not {}: it is held by {}",
                    self.spec.url(),
                    crate::vocabulary::words::clean(&id),
                    crate::vocabulary::words::clean(lock_id),
                    h.describe()
                ),
                help: format!(
                    "a lock is removed only by its own id, so a newer holder's lock is never removed by mistake; if this is the one you mean: `pare unlock {} {state}`",
                    crate::vocabulary::words::clean(&id)
                ),
            });
        }
        if !force && h.is_unreadable() {
            return Err(StateError::UnlockRefused {
                message: format!(
                    "the lock on {} is {}: pare cannot tell who holds it or whether it is live",
                    self.spec.url(),
                    h.who
                ),
                help: format!(
                    "check that no pare run is using this state (`pare history {state}`), then `pare unlock {lock_id} --force {state}`"
                ),
            });
        }
        if !force && !h.expired(crate::clock::now()) {
            return Err(StateError::UnlockRefused {
                message: format!(
                    "the lock on {} is live: {} renews it (lease {} s)",
                    self.spec.url(),
                    h.describe(),
                    h.lease_s.unwrap_or_default()
                ),
                help: format!(
                    "wait for that run to finish; only if you know its process is gone (its runner was thrown away), take the lock from it with `pare unlock {lock_id} --force {state}`"
                ),
            });
        }
        self.remove_lock(&etag)?;
        Ok(Some(h))
    }

    fn journal_name(&self, id: &RunId) -> String {
        format!("{}runs/{id}/journal/", self.spec.url())
    }
}
