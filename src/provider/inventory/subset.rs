//! Reading an account: the part of it a query names (what a provider's
//! batched describe returns), and a resource's attributes as pare compares
//! and shows them.

use super::*;

impl Inventory {
    /// Every resource in the account, by kind and id.
    pub fn resource_ids(&self) -> Vec<ResourceId> {
        let mut v: Vec<ResourceId> = Vec::new();
        v.extend(self.instances.keys().cloned().map(ResourceId::Instance));
        v.extend(self.volumes.keys().cloned().map(ResourceId::Volume));
        v.extend(self.snapshots.keys().cloned().map(ResourceId::Snapshot));
        v.extend(self.addresses.keys().cloned().map(ResourceId::Address));
        v.extend(
            self.auto_scaling_groups
                .keys()
                .cloned()
                .map(ResourceId::Group),
        );
        v
    }

    /// The resources of `ids` that exist, as a smaller inventory (what a
    /// provider's batched describe returns). Offerings and types come along.
    pub fn subset(&self, query: &Query) -> Inventory {
        let mut out = Inventory {
            region: self.region.clone(),
            instance_types: self.instance_types.clone(),
            ..Inventory::default()
        };
        fn pick<T: Clone>(all: &BTreeMap<String, T>, ids: &[&str]) -> BTreeMap<String, T> {
            ids.iter()
                .filter_map(|id| all.get(*id).map(|v| (id.to_string(), v.clone())))
                .collect()
        }
        let of = |kind: fn(&ResourceId) -> Option<&str>| -> Vec<&str> {
            query.resources.iter().filter_map(kind).collect()
        };
        out.instances = pick(
            &self.instances,
            &of(|r| match r {
                ResourceId::Instance(i) => Some(i),
                _ => None,
            }),
        );
        out.volumes = pick(
            &self.volumes,
            &of(|r| match r {
                ResourceId::Volume(i) => Some(i),
                _ => None,
            }),
        );
        // Volumes attached to a named instance matter to terminate and spot.
        if query.attachments && !out.instances.is_empty() {
            for v in self.volumes.values() {
                if v.attached_to
                    .as_deref()
                    .is_some_and(|i| out.instances.contains_key(i))
                {
                    out.volumes.insert(v.id.clone(), v.clone());
                }
            }
        }
        if query.attachments && !out.instances.is_empty() {
            for a in self.addresses.values() {
                if a.instance
                    .as_deref()
                    .is_some_and(|i| out.instances.contains_key(i))
                {
                    out.addresses.insert(a.allocation_id.clone(), a.clone());
                }
            }
        }
        out.volume_modified_at = self
            .volume_modified_at
            .iter()
            .filter(|(v, _)| out.volumes.contains_key(*v))
            .map(|(v, t)| (v.clone(), t.clone()))
            .collect();
        out.snapshots = pick(
            &self.snapshots,
            &of(|r| match r {
                ResourceId::Snapshot(i) => Some(i),
                _ => None,
            }),
        );
        if !out.snapshots.is_empty() {
            for img in self.images.values() {
                if img.snapshots.iter().any(|s| out.snapshots.contains_key(s)) {
                    out.images.insert(img.id.clone(), img.clone());
                }
            }
        }
        out.addresses.extend(pick(
            &self.addresses,
            &of(|r| match r {
                ResourceId::Address(i) => Some(i),
                _ => None,
            }),
        ));
        out.auto_scaling_groups = pick(
            &self.auto_scaling_groups,
            &of(|r| match r {
                ResourceId::Group(i) => Some(i),
                _ => None,
            }),
        );
        out.offerings = self
            .offerings
            .iter()
            .filter(|o| query.offerings.iter().any(|q| q.matches(o)))
            .cloned()
            .collect();
        let types: BTreeSet<&str> = query
            .offerings
            .iter()
            .map(|q| q.instance_type.as_str())
            .collect();
        out.reserved_instances = self
            .reserved_instances
            .iter()
            .filter(|r| types.contains(r.instance_type.as_str()))
            .cloned()
            .collect();
        if let Some((run, step)) = &query.created_by {
            let tagged =
                |t: &Tags| t.get("pare:run") == Some(run) && t.get("pare:step") == Some(step);
            for x in self.images.values().filter(|x| tagged(&x.tags)) {
                out.images.insert(x.id.clone(), x.clone());
            }
            for x in self.snapshots.values().filter(|x| tagged(&x.tags)) {
                out.snapshots.insert(x.id.clone(), x.clone());
            }
            for x in self.instances.values().filter(|x| tagged(&x.tags)) {
                out.instances.insert(x.id.clone(), x.clone());
            }
        }
        out.reindex();
        out
    }

    /// The attributes of one resource, for previews and fingerprints.
    pub fn attributes(&self, r: &ResourceId) -> Option<BTreeMap<String, serde_json::Value>> {
        let value = match r {
            ResourceId::Instance(id) => serde_json::to_value(self.instance(id)?),
            ResourceId::Volume(id) => serde_json::to_value(self.volume(id)?),
            ResourceId::Snapshot(id) => serde_json::to_value(self.snapshot(id)?),
            ResourceId::Address(id) => serde_json::to_value(self.address(id)?),
            ResourceId::Group(id) => serde_json::to_value(self.group(id)?),
        }
        .ok()?;
        let serde_json::Value::Object(map) = value else {
            return None;
        };
        Some(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
    }
}

impl OfferingQuery {
    pub fn matches(&self, o: &Offering) -> bool {
        o.instance_type == self.instance_type
            && o.term == self.term
            && o.payment == self.payment
            && o.offering_class == self.offering_class
            && o.zone == self.zone
    }
}
