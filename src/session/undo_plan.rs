//! The one rollback planner, which `pare rollback` and the automatic
//! rollback of a failed apply both use.
//!
//! The planner reads the apply run's journal and the journals of every
//! rollback of it, and decides:
//! - **what is already undone** — an undo names the forward step it undoes
//!   (its journal seq), so every undo runs at most once, whichever rollback
//!   made it (an automatic one, or a resumed one); an undo whose outcome
//!   was never written is resolved by reading the cloud;
//! - **what drifted** — each resource must still be as the run's last change
//!   to it left it (gone, if the run deleted it); every recommendation on a
//!   drifted resource is refused, the rest goes ahead;
//! - **what must wait** — AWS lets a volume be modified once every six
//!   hours: undoing a retype waits until then (`NOT YET … only from`).

use crate::engine::{self, Undo, verify};
use crate::provider::{Inventory, Provider, Query};
use crate::state::Record;
use crate::vocabulary::words::clean;
use crate::vocabulary::{Attributes, Inverse, Op, ResourceId};
use std::collections::{BTreeMap, BTreeSet};

/// What the planner decided.
#[derive(Debug, Default)]
pub struct UndoPlan {
    /// The forward steps to undo now, in forward order (run newest first).
    pub undos: Vec<Undo>,
    /// Undos AWS allows only later: "rec [1]: … only from <time>".
    pub waiting: Vec<String>,
    /// Refused for drift: "rec, rec: vol-… changed since the run: …".
    pub drift: Vec<String>,
    /// What earlier undos recreated: old id → new id.
    pub renamed: BTreeMap<String, String>,
    /// Undos done by earlier rollbacks of the run.
    pub already: usize,
    /// Recommendations with an undo done by an earlier rollback.
    pub resumed: BTreeSet<String>,
    /// Every forward step of the run: (recommendation, step, whether it has
    /// an undo to run, whether an earlier rollback ran it).
    pub all_forward: Vec<(String, usize, bool, bool)>,
    /// Decisions about steps whose outcome was never written, made now by
    /// reading the cloud: recorded before anything is undone.
    pub decisions: Vec<Record>,
}

impl UndoPlan {
    /// How many undos will call the cloud (irreversible ones are only named).
    pub fn reversible_count(&self) -> usize {
        self.undos
            .iter()
            .filter(|u| matches!(u.inverse, Inverse::Op { .. }))
            .count()
    }
}

/// The one rollback planner (see the module documentation). `journals`
/// holds the apply run's journal first, then those of its rollbacks.
pub async fn plan_undos(
    target: &str,
    journals: &[(String, Vec<Record>)],
    renamed_before: &BTreeMap<String, String>,
    provider: &dyn Provider,
    now: std::time::SystemTime,
) -> Result<UndoPlan, String> {
    let Some((_, apply_records)) = journals.first() else {
        return Ok(UndoPlan::default());
    };
    // What earlier rollbacks decided about the apply's steps whose outcome
    // was never written: honoured, never read again from a cloud they have
    // changed since.
    let mut decided = engine::Decisions::new();
    for (_, records) in journals {
        for r in records {
            if let Record::Resolved {
                seq,
                undo: false,
                ok,
                created,
                ..
            } = r
            {
                decided.entry(*seq).or_insert((*ok, created.clone()));
            }
        }
    }
    let (forward, new_decisions) =
        engine::forward_steps_deciding(apply_records, target, provider, &decided).await?;
    let mut decisions: Vec<Record> = new_decisions
        .into_iter()
        .map(|(seq, (ok, created))| Record::Resolved {
            seq,
            undo: false,
            ok,
            created,
            at: crate::clock::rfc3339(now),
        })
        .collect();
    let by_seq: BTreeMap<u64, &Undo> = forward.iter().map(|u| (u.seq, u)).collect();

    // What earlier undos did, wherever they are recorded, in the order the
    // rollbacks ran. A rollback's decisions (`resolved`, written before it
    // changes anything) are about the attempts of earlier rollbacks whose
    // outcome was never written; its own attempts come after them, and only
    // a later rollback can decide those.
    let mut done: BTreeSet<u64> = BTreeSet::new();
    let mut renamed = renamed_before.clone();
    // Forward seq → the latest attempt to undo it whose outcome is unknown.
    let mut unknown: BTreeMap<u64, crate::state::journal::JournaledStep> = BTreeMap::new();
    for (_, records) in journals {
        for r in records {
            if let Record::Resolved {
                seq: f,
                undo: true,
                ok,
                ..
            } = r
            {
                unknown.remove(f);
                if *ok {
                    done.insert(*f);
                }
            }
        }
        for s in crate::state::journal::steps(records) {
            let Some(f) = s.undoes else { continue };
            match &s.outcome {
                Some((true, created)) => {
                    unknown.remove(&f);
                    done.insert(f);
                    if let (Some(new), Some(u)) = (created, by_seq.get(&f))
                        && let Some(old) = engine::recreates(&u.forward)
                    {
                        renamed.insert(old, new.clone());
                    }
                }
                Some((false, _)) => {
                    unknown.remove(&f);
                }
                None => {
                    unknown.insert(f, s);
                }
            }
        }
    }
    // An undo whose outcome was never written: did it take effect? A
    // creation is simply made again: its client token is the same for
    // every rollback of the run, so the cloud makes it once.
    for (f, s) in unknown {
        if done.contains(&f) || matches!(s.op, Op::LaunchInstance { .. } | Op::CreateVolume { .. })
        {
            continue;
        }
        let inv = provider
            .describe(&verify::query(&s.op, None))
            .await
            .map_err(|e| format!("reading the account failed: {e}"))?;
        let ok = verify::effect_holds(&s.op, None, &inv).is_ok();
        if ok {
            done.insert(f);
        }
        decisions.push(Record::Resolved {
            seq: f,
            undo: true,
            ok,
            created: None,
            at: crate::clock::rfc3339(now),
        });
    }
    let resumed: BTreeSet<String> = forward
        .iter()
        .filter(|u| done.contains(&u.seq))
        .map(|u| u.rec.clone())
        .collect();
    let all_forward = forward
        .iter()
        .map(|u| {
            (
                u.rec.clone(),
                u.step,
                matches!(u.inverse, Inverse::Op { .. }),
                done.contains(&u.seq),
            )
        })
        .collect();
    let already = done.len();
    let done_steps: BTreeMap<u64, (&str, Option<String>)> = forward
        .iter()
        .map(|u| {
            (
                u.seq,
                (u.rec.as_str(), u.created.get(u.step).cloned().flatten()),
            )
        })
        .collect();
    let left = left_as(apply_records, &done_steps);
    let mut undos: Vec<Undo> = forward
        .into_iter()
        .filter(|u| !done.contains(&u.seq))
        .collect();

    // Drift: one read for every resource the run left, and the volumes whose
    // retype is to be undone (their last modification time). Resources an
    // earlier rollback already restored are not checked.
    let left: BTreeMap<String, Left> = left
        .into_iter()
        .filter(|(_, l)| !l.recs.iter().any(|r| resumed.contains(r)))
        .collect();
    // Volumes whose retype is to be undone: by their id now, and whether
    // the run deleted them (then the undo reaches a volume made again from
    // its snapshot, which AWS has never modified).
    let remade: BTreeSet<String> = undos
        .iter()
        .filter(|u| matches!(u.inverse, Inverse::Op { .. }))
        .filter_map(|u| engine::recreates(&u.forward))
        .collect();
    let retyped: Vec<(usize, String, bool)> = undos
        .iter()
        .enumerate()
        .filter_map(|(k, u)| match (&u.forward, &u.inverse) {
            (Op::ModifyVolume { volume, .. }, Inverse::Op { .. }) => {
                let id = volume.known()?;
                let new = renamed.get(id);
                Some((
                    k,
                    new.cloned().unwrap_or_else(|| id.to_string()),
                    new.is_some() || remade.contains(id),
                ))
            }
            _ => None,
        })
        .collect();
    let mut wanted: Vec<ResourceId> = left.values().map(|l| l.id.clone()).collect();
    wanted.extend(
        retyped
            .iter()
            .map(|(_, v, _)| ResourceId::Volume(v.clone())),
    );
    wanted.sort();
    wanted.dedup();
    let inv = if wanted.is_empty() {
        Inventory::default()
    } else {
        provider
            .describe(&Query {
                resources: wanted,
                ..Query::default()
            })
            .await
            .map_err(|e| format!("reading the account failed: {e}"))?
    };
    let mut drifted: BTreeSet<String> = BTreeSet::new();
    let mut drift = Vec::new();
    for (res, l) in &left {
        let now = inv.attributes(&l.id);
        let (held, expected) = match &l.expect {
            Expect::After(after) => (
                match after {
                    Some(after) => verify::matches_prediction(after, now.as_ref()).is_ok(),
                    // The run left it gone, and it must still be gone.
                    None => now.is_none(),
                },
                after.clone(),
            ),
            Expect::Detached(after) => (
                verify::matches_prediction(after, now.as_ref()).is_ok(),
                Some(after.clone()),
            ),
            Expect::Effect(op, made) => (
                verify::effect_holds(op, made.as_deref(), &inv).is_ok(),
                None,
            ),
        };
        if !held {
            drifted.extend(l.recs.iter().cloned());
            drift.push(format!(
                "{}: {} changed since the run: {}",
                l.recs.join(", "),
                clean(res),
                super::saved::describe_drift(expected.as_ref(), now.as_ref())
            ));
        }
    }
    // AWS's six-hour rule, from the later of the run's change and the
    // volume's last modification as AWS reports it.
    let mut waiting_at: BTreeMap<usize, String> = BTreeMap::new();
    for (k, volume, remade) in &retyped {
        let u = &undos[*k];
        // A volume made again was never modified by the run's retype.
        let run_change = (!remade).then_some(u.done_at.as_str());
        let last_change = [
            run_change,
            inv.volume_modified_at.get(volume).map(String::as_str),
        ]
        .into_iter()
        .flatten()
        .filter_map(crate::clock::volume_ready_at)
        .max();
        if let Some(ready) = last_change.filter(|r| now < *r) {
            waiting_at.insert(
                *k,
                format!(
                    "{}: {volume} was changed at {}; AWS allows changing it back only from {} (one modification per volume every six hours). Run `pare rollback --run {}{}` again after then",
                    u.label(),
                    u.done_at,
                    crate::clock::rfc3339(ready),
                    target,
                    crate::vocabulary::words::state_flag()
                ),
            );
        }
    }
    let mut waiting = Vec::new();
    let mut kept = Vec::new();
    for (k, u) in undos.into_iter().enumerate() {
        if drifted.contains(&u.rec) {
            continue;
        }
        if let Some(w) = waiting_at.remove(&k) {
            waiting.push(w);
            continue;
        }
        kept.push(u);
    }
    undos = kept;
    Ok(UndoPlan {
        undos,
        waiting,
        drift,
        renamed,
        already,
        resumed,
        all_forward,
        decisions,
    })
}

/// What a resource must look like for the run's undos to apply.
enum Expect {
    /// As the last recommendation about it left it (`None`: gone).
    After(Option<Attributes>),
    /// So, except what hangs it off an instance: a later recommendation
    /// terminated the instance it was attached to (or associated with).
    Detached(Attributes),
    /// A later recommendation's step changed it last: that effect holds.
    Effect(Op, Option<String>),
}

/// A resource the run left, what it must look like, and who changed it.
struct Left {
    id: ResourceId,
    expect: Expect,
    recs: Vec<String>,
}

/// What the run left each resource a recommendation was about as: walks the
/// journal in order, so a later step of another recommendation (a spot
/// replacement terminating an instance an earlier one rightsized, a
/// termination detaching a volume an earlier one retyped) decides.
/// `done` holds the forward steps that took effect (seq → recommendation,
/// what the step made).
fn left_as(
    records: &[Record],
    done: &BTreeMap<u64, (&str, Option<String>)>,
) -> BTreeMap<String, Left> {
    let mut out: BTreeMap<String, Left> = BTreeMap::new();
    for r in records {
        match r {
            Record::RecDone {
                rec,
                ok: true,
                resource: Some(res),
                after,
                ..
            } => {
                let Ok(id) = ResourceId::from_key(res) else {
                    continue;
                };
                let l = out.entry(res.clone()).or_insert_with(|| Left {
                    id,
                    expect: Expect::After(None),
                    recs: Vec::new(),
                });
                l.expect = Expect::After(after.clone());
                if !l.recs.contains(rec) {
                    l.recs.push(rec.clone());
                }
            }
            Record::Intent {
                seq,
                op,
                undoes: None,
                ..
            } => {
                let Some((rec, made)) = done.get(seq) else {
                    continue;
                };
                let note =
                    |out: &mut BTreeMap<String, Left>, key: String, expect: Option<Expect>| {
                        if let Some(l) = out.get_mut(&key) {
                            if let Some(e) = expect {
                                l.expect = e;
                            }
                            if !l.recs.iter().any(|r| r == rec) {
                                l.recs.push(rec.to_string());
                            }
                        }
                    };
                for t in op.touched(made.as_deref()) {
                    note(
                        &mut out,
                        t.key(),
                        Some(Expect::Effect(op.as_ref().clone(), made.clone())),
                    );
                }
                // A termination detaches the volumes attached to the instance
                // (deleting those that go with it) and disassociates its addresses.
                if let Op::TerminateInstance { instance } = op.as_ref()
                    && let Some(i) = instance.known()
                {
                    let on = |a: &Attributes, k: &str| a.get(k).and_then(|v| v.as_str()) == Some(i);
                    for l in out.values_mut() {
                        let (Expect::After(Some(a)) | Expect::Detached(a)) = &l.expect else {
                            continue;
                        };
                        if !(on(a, "attached_to") || on(a, "instance")) {
                            continue;
                        }
                        let goes =
                            a.get("delete_on_termination") == Some(&serde_json::Value::Bool(true));
                        let mut a = a.clone();
                        a.remove("attached_to");
                        a.remove("instance");
                        l.expect = if goes {
                            Expect::After(None)
                        } else {
                            Expect::Detached(a)
                        };
                        if !l.recs.iter().any(|r| r == rec) {
                            l.recs.push(rec.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}
