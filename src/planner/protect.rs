//! What a change touches besides its own resource, for the protection
//! check: terminating an instance detaches its volumes and disassociates its
//! addresses, a replacement attaches and associates them, and any other id a
//! step (or its undo) names is changed.

use crate::provider::Inventory;
use crate::vocabulary::{Inverse, Op, ResourceId, Step, Tags};

/// Everything a change's steps (and their undos) touch besides its own
/// resource, and how, for the protection check: terminating an instance
/// detaches its volumes and disassociates its addresses; a replacement
/// attaches and associates them; any other id a step names is changed.
pub(super) fn touched_by_change(
    steps: &[Step],
    own: Option<&ResourceId>,
    inv: &Inventory,
) -> Vec<(ResourceId, String)> {
    let mut out: Vec<(ResourceId, String)> = Vec::new();
    let mut add = |r: ResourceId, how: &str| {
        if Some(&r) != own && !r.id().is_empty() && !out.iter().any(|(x, _)| *x == r) {
            out.push((r, how.to_string()));
        }
    };
    let ops = steps.iter().flat_map(|s| {
        std::iter::once(&s.op).chain(match &s.inverse {
            Inverse::Op { op } => Some(op),
            _ => None,
        })
    });
    for op in ops {
        match op {
            Op::TerminateInstance { instance } => {
                if let Some(i) = instance.known() {
                    for v in inv.attached_volumes(i) {
                        let how = if v.delete_on_termination {
                            "deletes (with its instance)"
                        } else {
                            "detaches"
                        };
                        add(ResourceId::Volume(v.id.clone()), how);
                    }
                    for a in inv.associated_addresses(i) {
                        add(
                            ResourceId::Address(a.allocation_id.clone()),
                            "disassociates",
                        );
                    }
                }
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    "terminates",
                );
            }
            Op::LaunchInstance { spec } => {
                for v in &spec.attach_volumes {
                    add(ResourceId::Volume(v.clone()), "attaches");
                }
                for a in &spec.associate_addresses {
                    add(ResourceId::Address(a.clone()), "associates");
                }
            }
            Op::AttachVolume { volume, instance } | Op::DetachVolume { volume, instance } => {
                let how = if matches!(op, Op::AttachVolume { .. }) {
                    ("attaches", "attaches a volume to")
                } else {
                    ("detaches", "detaches a volume from")
                };
                add(
                    ResourceId::Volume(volume.known().unwrap_or("").into()),
                    how.0,
                );
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    how.1,
                );
            }
            Op::AssociateAddress { address, instance }
            | Op::DisassociateAddress { address, instance } => {
                let how = if matches!(op, Op::AssociateAddress { .. }) {
                    ("associates", "associates an address with")
                } else {
                    ("disassociates", "disassociates an address from")
                };
                add(
                    ResourceId::Address(address.known().unwrap_or("").into()),
                    how.0,
                );
                add(
                    ResourceId::Instance(instance.known().unwrap_or("").into()),
                    how.1,
                );
            }
            other => {
                for r in other.touched(None) {
                    add(r, "changes");
                }
            }
        }
    }
    out
}

/// A resource's tags in `inv`, if it is there.
pub(super) fn tags_of<'a>(inv: &'a Inventory, r: &ResourceId) -> Option<&'a Tags> {
    match r {
        ResourceId::Instance(id) => inv.instance(id).map(|x| &x.tags),
        ResourceId::Volume(id) => inv.volume(id).map(|x| &x.tags),
        ResourceId::Snapshot(id) => inv.snapshot(id).map(|x| &x.tags),
        ResourceId::Address(id) => inv.address(id).map(|x| &x.tags),
        ResourceId::Group(id) => inv.group(id).map(|x| &x.tags),
    }
}

/// "volume vol-0a1b… (data)".
pub(super) fn label(r: &ResourceId, tags: &Tags) -> String {
    let base = format!("{} {}", r.kind(), crate::vocabulary::words::clean(r.id()));
    match tags.get("Name") {
        Some(n) => format!("{base} ({})", crate::vocabulary::words::clean(n)),
        None => base,
    }
}
