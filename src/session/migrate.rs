//! `pare state migrate`: copies a whole state (every run's record and
//! journal, the sandbox account and its log) to another location, under
//! both locks, and proves the copy reads back the same.

use super::{Session, SessionError};
use crate::state::{Holder, StateError, StateStore};
use std::sync::Arc;

/// What a migration copied.
#[derive(Debug)]
pub struct Migrated {
    pub runs: usize,
    pub documents: usize,
    pub from: String,
    pub to: String,
}

/// Copies the state `session` holds to `target` (empty, locked here too).
/// Refused while a run is unresolved: it is resolved where it was made.
pub fn migrate(session: &Session, target: Arc<dyn StateStore>) -> Result<Migrated, SessionError> {
    let from = session.store.location();
    let to = target.location();
    if from == to {
        return Err(super::Refusal::new(
            "state::migrate-same",
            format!("the state is already in {to}"),
            "name another location with --to",
        )
        .into());
    }
    session.check_clear()?;
    let holder = Holder {
        who: session.who.clone(),
        pid: std::process::id(),
        doing: format!("state migrate from {from}"),
        since: crate::clock::rfc3339(crate::clock::now()),
        ..Holder::default()
    };
    let _target_lock = target.lock(&holder)?;
    let names = target.names().map_err(|e| StateError::io(&to, e))?;
    let runs = target.run_ids()?;
    if !names.is_empty() || !runs.is_empty() {
        return Err(super::Refusal::new(
            "state::migrate-not-empty",
            format!(
                "{to} already holds a state ({} and {}), and a migration never merges two histories",
                crate::vocabulary::words::plural(runs.len(), "run"),
                crate::vocabulary::words::plural(names.len(), "document"),
            ),
            "migrate to an empty location (a new prefix or directory)",
        )
        .into());
    }
    // Oldest first, each journal as one chunk: the copy is append-only too.
    let mut ids: Vec<_> = session
        .history
        .runs
        .iter()
        .filter_map(|r| crate::state::parse_run_id(&r.id).ok())
        .collect();
    ids.sort();
    for id in &ids {
        let record = session.store.read_run(id)?;
        let text = session.store.read_journal(id)?;
        let mut log = target.create_run(&record)?;
        log.write(text.as_bytes())
            .and_then(|()| log.sync())
            .map_err(|e| StateError::io(&to, e))?;
        let back = target.read_journal(id)?;
        if back != text {
            return Err(StateError::io(
                &to,
                format!("the journal of {id} did not read back as written; nothing was removed from {from}"),
            )
            .into());
        }
    }
    let source_names = session
        .store
        .names()
        .map_err(|e| StateError::io(&from, e))?;
    for name in &source_names {
        let io = |e: std::io::Error| StateError::io(&to, format!("{name}: {e}"));
        if crate::durable::is_log_name(name) {
            let text = session
                .store
                .read_log(name)
                .map_err(|e| StateError::io(&from, format!("{name}: {e}")))?
                .unwrap_or_default();
            let mut log = target.open_log(name).map_err(io)?;
            log.write(text.as_bytes())
                .and_then(|()| log.sync())
                .map_err(io)?;
        } else if let Some(bytes) = session
            .store
            .read_doc(name)
            .map_err(|e| StateError::io(&from, format!("{name}: {e}")))?
        {
            target.write_doc(name, &bytes).map_err(io)?;
        }
    }
    let copied = target.history()?;
    if copied.runs.len() != ids.len() || !copied.damaged.is_empty() {
        return Err(StateError::io(
            &to,
            format!(
                "the copy lists {} of {} runs; nothing was removed from {from}",
                copied.runs.len(),
                ids.len()
            ),
        )
        .into());
    }
    Ok(Migrated {
        runs: ids.len(),
        documents: source_names.len(),
        from,
        to,
    })
}
