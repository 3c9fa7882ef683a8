//! Volumes and snapshots: retyping (a volume can be modified once every
//! six hours), snapshots, attaching, detaching, deleting, recreating.

use super::known as id;
use super::*;

impl Inventory {
    pub(super) fn modify_volume(
        &mut self,
        volume: &Ref,
        volume_type: &str,
        iops: &Option<u32>,
        throughput_mbps: &Option<u32>,
        now: std::time::SystemTime,
    ) -> Result<Outcome, CloudError> {
        let vid = id(volume)?;
        self.volume_mut(&vid)?;
        // AWS: one modification per volume every six hours.
        if let Some(last) = self.volume_modified_at.get(&vid)
            && crate::clock::volume_ready_at(last).is_some_and(|ready| now < ready)
        {
            return Err(CloudError::new(
                "VolumeModificationRateExceeded",
                "You've reached the maximum modification rate per volume limit. Wait at least 6 hours between modifications per EBS volume.",
            ));
        }
        let v = self.volume_mut(&vid)?;
        v.volume_type = volume_type.to_string();
        v.iops = match volume_type {
            "gp3" => Some(iops.unwrap_or(3000)),
            "io1" | "io2" => Some(iops.or(v.iops).unwrap_or(100)),
            "gp2" => Some((v.size_gb * 3).clamp(100, 16000)),
            _ => None,
        };
        v.throughput_mbps = match volume_type {
            "gp3" => Some(throughput_mbps.unwrap_or(125)),
            _ => None,
        };
        self.volume_modified_at
            .insert(vid, crate::clock::rfc3339(now));
        Ok(Outcome::default())
    }

    pub(super) fn create_snapshot(
        &mut self,
        volume: &Ref,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        let vid = id(volume)?;
        let size_gb = self
            .volume(&vid)
            .ok_or_else(|| not_found("volume", "Volume", &vid))?
            .size_gb;
        let snap_id = self.new_id("snap-");
        self.snapshots.insert(
            snap_id.clone(),
            Snapshot {
                id: snap_id.clone(),
                volume: Some(vid),
                size_gb,
                tags: tags.clone(),
            },
        );
        Ok(Outcome {
            created: Some(snap_id),
        })
    }

    pub(super) fn attach_volume(
        &mut self,
        volume: &Ref,
        instance: &Ref,
    ) -> Result<Outcome, CloudError> {
        let (vid, iid) = (id(volume)?, id(instance)?);
        let inst = self
            .instance(&iid)
            .ok_or_else(|| not_found("instance", "InstanceID", &iid))?;
        if inst.state == InstanceState::Terminated {
            return Err(CloudError::new(
                "IncorrectState",
                format!("Instance '{iid}' is terminated."),
            ));
        }
        let zone = inst.zone.clone();
        let v = self.volume_mut(&vid)?;
        if let Some(other) = &v.attached_to {
            return Err(CloudError::new(
                "VolumeInUse",
                format!("{vid} is already attached to an instance ({other})"),
            ));
        }
        if v.zone != zone {
            return Err(CloudError::new(
                "InvalidVolume.ZoneMismatch",
                format!(
                    "The volume '{vid}' is not in the same availability zone as instance '{iid}'"
                ),
            ));
        }
        self.link_volume(&vid, Some(&iid));
        Ok(Outcome::default())
    }

    pub(super) fn detach_volume(
        &mut self,
        volume: &Ref,
        instance: &Ref,
    ) -> Result<Outcome, CloudError> {
        let (vid, iid) = (id(volume)?, id(instance)?);
        let v = self.volume_mut(&vid)?;
        if v.attached_to.as_deref() != Some(iid.as_str()) {
            return Err(CloudError::new(
                "IncorrectState",
                format!("Volume '{vid}' is not attached to instance '{iid}'"),
            ));
        }
        self.link_volume(&vid, None);
        Ok(Outcome::default())
    }

    pub(super) fn delete_volume(&mut self, volume: &Ref) -> Result<Outcome, CloudError> {
        let vid = id(volume)?;
        let v = self
            .volume(&vid)
            .ok_or_else(|| not_found("volume", "Volume", &vid))?;
        if let Some(i) = &v.attached_to {
            return Err(CloudError::new(
                "VolumeInUse",
                format!("Volume {vid} is currently attached to {i}"),
            ));
        }
        self.volumes.remove(&vid);
        Ok(Outcome::default())
    }

    pub(super) fn create_volume(&mut self, spec: &VolumeSpec) -> Result<Outcome, CloudError> {
        let sid = id(&spec.snapshot)?;
        let snap = self
            .snapshot(&sid)
            .ok_or_else(|| not_found("snapshot", "Snapshot", &sid))?;
        if spec.size_gb < snap.size_gb {
            return Err(CloudError::new(
                "InvalidParameterValue",
                format!(
                    "Volume of {}GiB is smaller than snapshot '{sid}', which is {}GiB",
                    spec.size_gb, snap.size_gb
                ),
            ));
        }
        let vol_id = self.new_id("vol-");
        self.volumes.insert(
            vol_id.clone(),
            Volume {
                id: vol_id.clone(),
                volume_type: spec.volume_type.clone(),
                size_gb: spec.size_gb,
                delete_on_termination: false,
                iops: spec.iops,
                throughput_mbps: spec.throughput_mbps,
                zone: spec.zone.clone(),
                attached_to: None,
                tags: spec.tags.clone(),
            },
        );
        Ok(Outcome {
            created: Some(vol_id),
        })
    }

    pub(super) fn delete_snapshot(&mut self, snapshot: &Ref) -> Result<Outcome, CloudError> {
        let sid = id(snapshot)?;
        if self.snapshot(&sid).is_none() {
            return Err(not_found("snapshot", "Snapshot", &sid));
        }
        if let Some(img) = self.image_using(&sid) {
            return Err(CloudError::new(
                "InvalidSnapshot.InUse",
                format!("The snapshot {sid} is currently in use by {}", img.id),
            ));
        }
        self.snapshots.remove(&sid);
        Ok(Outcome::default())
    }
}
