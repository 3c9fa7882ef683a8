//! Reading: instances by id (1,000 a call, following `NextToken`; ids that
//! do not exist are taken out and noted), volumes, snapshots, addresses and
//! groups with id filters, attachments when asked for.

use super::*;

impl AwsProvider {
    /// The reservations holding `ids`, following `NextToken`. Instance ids go
    /// in the `InstanceIds` parameter (no 200-value filter limit); ids that
    /// do not exist fail the call, so they are taken out and the call repeated,
    /// and a missing instance is simply absent from the answer.
    pub(super) async fn reservations(
        &self,
        ids: &[String],
    ) -> Result<Vec<ec2::Reservation>, ProviderError> {
        let mut ids = ids.to_vec();
        let mut out = Vec::new();
        while !ids.is_empty() {
            let mut pages = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .into_paginator()
                .send();
            let mut missing = Vec::new();
            let mut got = Vec::new();
            while let Some(page) = pages.next().await {
                match page.map_err(err) {
                    Ok(p) => got.extend(p.reservations().iter().cloned()),
                    Err(ProviderError::Cloud { error, .. })
                        if error.code.starts_with("InvalidInstanceID") =>
                    {
                        missing = named_instance_ids(&error.message);
                        missing.retain(|m| ids.contains(m));
                        if missing.is_empty() {
                            // Cannot tell which: fall back to filters, which skip unknown ids.
                            return self.reservations_by_filter(&ids).await;
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if missing.is_empty() {
                out.extend(got);
                break;
            }
            ids.retain(|i| !missing.contains(i));
        }
        Ok(out)
    }

    pub(super) async fn reservations_by_filter(
        &self,
        ids: &[String],
    ) -> Result<Vec<ec2::Reservation>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(filter("instance-id", chunk))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                out.extend(page.map_err(err)?.reservations().iter().cloned());
            }
        }
        Ok(out)
    }

    pub(super) async fn instances(
        &self,
        ids: &[String],
        out: &mut Inventory,
    ) -> Result<(), ProviderError> {
        self.instances_noting(ids, out, &mut Default::default())
            .await
    }

    /// Reads instances, and notes the volumes their block device mappings
    /// delete on termination (root volumes, usually).
    pub(super) async fn instances_noting(
        &self,
        ids: &[String],
        out: &mut Inventory,
        goes_with_instance: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        for chunk in ids.chunks(self.batch_size.max(1)) {
            let reservations = self.reservations(chunk).await?;
            {
                for r in &reservations {
                    for i in r.instances() {
                        let Some(iid) = i.instance_id() else { continue };
                        for b in i.block_device_mappings() {
                            if let Some(ebs) = b.ebs()
                                && ebs.delete_on_termination() == Some(true)
                                && let Some(v) = ebs.volume_id()
                            {
                                goes_with_instance.insert(v.to_string());
                            }
                        }
                        out.instances.insert(
                            iid.to_string(),
                            Instance {
                                id: iid.to_string(),
                                instance_type: i
                                    .instance_type()
                                    .map(|t| t.as_str().to_string())
                                    .unwrap_or_default(),
                                state: instance_state(i.state()),
                                zone: i
                                    .placement()
                                    .and_then(|p| p.availability_zone())
                                    .unwrap_or("")
                                    .to_string(),
                                image: i.image_id().map(str::to_string),
                                lifecycle: if i.instance_lifecycle().map(|l| l.as_str())
                                    == Some("spot")
                                {
                                    Lifecycle::Spot
                                } else {
                                    Lifecycle::OnDemand
                                },
                                hibernation: i
                                    .hibernation_options()
                                    .and_then(|h| h.configured())
                                    .unwrap_or(false),
                                monitoring: match i
                                    .monitoring()
                                    .and_then(|m| m.state())
                                    .map(|s| s.as_str())
                                {
                                    Some("enabled") | Some("pending") => Monitoring::Detailed,
                                    _ => Monitoring::Basic,
                                },
                                tags: tags(i.tags()),
                                stop_reason: None,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn volumes(
        &self,
        name: &str,
        values: &[String],
        out: &mut Inventory,
    ) -> Result<(), ProviderError> {
        for chunk in values.chunks(CHUNK) {
            let mut pages = self
                .ec2
                .describe_volumes()
                .filters(filter(name, chunk))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for v in page.map_err(err)?.volumes() {
                    let Some(vid) = v.volume_id() else { continue };
                    let attachment = v
                        .attachments()
                        .iter()
                        .find(|a| a.state().map(|s| s.as_str()) != Some("detached"));
                    out.volumes.insert(
                        vid.to_string(),
                        Volume {
                            id: vid.to_string(),
                            volume_type: v
                                .volume_type()
                                .map(|t| t.as_str().to_string())
                                .unwrap_or_default(),
                            size_gb: v.size().unwrap_or(0).max(0) as u32,
                            iops: v.iops().map(|x| x.max(0) as u32),
                            throughput_mbps: v.throughput().map(|x| x.max(0) as u32),
                            zone: v.availability_zone().unwrap_or("").to_string(),
                            attached_to: attachment
                                .and_then(|a| a.instance_id())
                                .filter(|i| !i.is_empty())
                                .map(str::to_string),
                            delete_on_termination: attachment
                                .and_then(|a| a.delete_on_termination())
                                .unwrap_or(false),
                            tags: tags(v.tags()),
                        },
                    );
                }
            }
        }
        Ok(())
    }

    /// Reads every resource the query names, in as few calls as possible.
    pub(super) async fn read(&self, query: &Query) -> Result<Inventory, ProviderError> {
        let mut out = Inventory::new(&self.region);
        let ids = |f: fn(&ResourceId) -> Option<&String>| -> Vec<String> {
            query.resources.iter().filter_map(f).cloned().collect()
        };
        let instance_ids = ids(|r| match r {
            ResourceId::Instance(i) => Some(i),
            _ => None,
        });
        let mut goes_with_instance = std::collections::BTreeSet::new();
        self.instances_noting(&instance_ids, &mut out, &mut goes_with_instance)
            .await?;
        let volume_ids = ids(|r| match r {
            ResourceId::Volume(i) => Some(i),
            _ => None,
        });
        self.volumes("volume-id", &volume_ids, &mut out).await?;
        // When each named volume was last modified: the six-hour rule.
        let found: Vec<String> = volume_ids
            .iter()
            .filter(|v| out.volumes.contains_key(*v))
            .cloned()
            .collect();
        for chunk in found.chunks(CHUNK) {
            let mods = self
                .ec2
                .describe_volumes_modifications()
                .set_volume_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(err)?;
            for m in mods.volumes_modifications() {
                let (Some(v), Some(t)) = (m.volume_id(), m.start_time()) else {
                    continue;
                };
                if m.modification_state().map(|s| s.as_str()) == Some("failed") {
                    continue;
                }
                let at = crate::clock::rfc3339(
                    std::time::UNIX_EPOCH + Duration::from_secs(t.secs().max(0) as u64),
                );
                let latest = out.volume_modified_at.entry(v.to_string()).or_default();
                if at > *latest {
                    *latest = at;
                }
            }
        }
        // Volumes attached to named instances matter to terminate and spot.
        let live: Vec<String> = if query.attachments {
            out.instances.keys().cloned().collect()
        } else {
            Vec::new()
        };
        self.volumes("attachment.instance-id", &live, &mut out)
            .await?;
        for v in out.volumes.values_mut() {
            if goes_with_instance.contains(&v.id) {
                v.delete_on_termination = true;
            }
        }
        let snapshot_ids = ids(|r| match r {
            ResourceId::Snapshot(i) => Some(i),
            _ => None,
        });
        for chunk in snapshot_ids.chunks(CHUNK) {
            let page = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(filter("snapshot-id", chunk))
                .send()
                .await
                .map_err(err)?;
            for s in page.snapshots() {
                let Some(sid) = s.snapshot_id() else { continue };
                out.snapshots.insert(
                    sid.to_string(),
                    Snapshot {
                        id: sid.to_string(),
                        volume: s.volume_id().map(str::to_string),
                        size_gb: s.volume_size().unwrap_or(0).max(0) as u32,
                        tags: tags(s.tags()),
                    },
                );
            }
            // Images a snapshot backs cannot lose it.
            // A pre-check only (AWS refuses to delete a snapshot an image uses):
            // an endpoint that does not implement this filter is tolerated.
            let images = match self
                .ec2
                .describe_images()
                .owners("self")
                .filters(filter("block-device-mapping.snapshot-id", chunk))
                .send()
                .await
                .map_err(err)
            {
                Ok(images) => images,
                Err(ProviderError::Cloud { error, .. }) if error.code == "NotImplemented" => {
                    tracing::warn!(
                        "the endpoint cannot list images by snapshot; relying on DeleteSnapshot's own check"
                    );
                    aws_sdk_ec2::operation::describe_images::DescribeImagesOutput::builder().build()
                }
                Err(e) => return Err(e),
            };
            for img in images.images().iter().filter_map(image) {
                out.images.insert(img.id.clone(), img);
            }
        }
        let address_ids = ids(|r| match r {
            ResourceId::Address(i) => Some(i),
            _ => None,
        });
        let mut address_filters = Vec::new();
        if !address_ids.is_empty() {
            address_filters.push(filter("allocation-id", &address_ids));
        }
        if !live.is_empty() {
            address_filters.push(filter("instance-id", &live));
        }
        for f in address_filters {
            let page = self
                .ec2
                .describe_addresses()
                .filters(f)
                .send()
                .await
                .map_err(err)?;
            for a in page.addresses() {
                let Some(aid) = a.allocation_id() else {
                    continue;
                };
                out.addresses.insert(
                    aid.to_string(),
                    Address {
                        allocation_id: aid.to_string(),
                        public_ip: a.public_ip().unwrap_or("").to_string(),
                        instance: a
                            .instance_id()
                            .filter(|i| !i.is_empty())
                            .map(str::to_string),
                        tags: tags(a.tags()),
                    },
                );
            }
        }
        let groups = ids(|r| match r {
            ResourceId::Group(i) => Some(i),
            _ => None,
        });
        for chunk in groups.chunks(50) {
            let page = self
                .asg
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(err)?;
            for g in page.auto_scaling_groups() {
                let name = g.auto_scaling_group_name().unwrap_or("").to_string();
                out.auto_scaling_groups.insert(
                    name.clone(),
                    Group {
                        name,
                        min: g.min_size().unwrap_or(0).max(0) as u32,
                        max: g.max_size().unwrap_or(0).max(0) as u32,
                        desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
                        instance_type: None,
                        tags: g
                            .tags()
                            .iter()
                            .filter_map(|t| {
                                Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                            })
                            .collect(),
                    },
                );
            }
        }
        if let Some((run, step)) = &query.created_by {
            let by_tag = vec![
                ec2::Filter::builder()
                    .name("tag:pare:run")
                    .values(run)
                    .build(),
                ec2::Filter::builder()
                    .name("tag:pare:step")
                    .values(step)
                    .build(),
            ];
            let imgs = self
                .ec2
                .describe_images()
                .owners("self")
                .set_filters(Some(by_tag.clone()))
                .send()
                .await
                .map_err(err)?;
            for img in imgs.images().iter().filter_map(image) {
                out.images.insert(img.id.clone(), img);
            }
            let snaps = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .set_filters(Some(by_tag.clone()))
                .send()
                .await
                .map_err(err)?;
            for s in snaps.snapshots() {
                if let Some(sid) = s.snapshot_id() {
                    out.snapshots.insert(
                        sid.to_string(),
                        Snapshot {
                            id: sid.to_string(),
                            volume: s.volume_id().map(str::to_string),
                            size_gb: 0,
                            tags: tags(s.tags()),
                        },
                    );
                }
            }
            let mut pages = self
                .ec2
                .describe_instances()
                .set_filters(Some(by_tag))
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                for r in page.map_err(err)?.reservations() {
                    found.extend(
                        r.instances()
                            .iter()
                            .filter_map(|i| i.instance_id().map(str::to_string)),
                    );
                }
            }
            self.instances(&found, &mut out).await?;
        }
        self.reservations_and_offerings(&query.offerings, &mut out)
            .await?;
        out.instance_types = None;
        out.reindex();
        Ok(out)
    }
}
