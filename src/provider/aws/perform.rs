//! Changing: one operation, one (or a few) SDK calls, each answer read
//! into the provider's terms.

use super::*;

impl AwsProvider {
    /// Performs one operation; its refs are concrete ids.
    pub(super) async fn change(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let none = Outcome::default();
        match op {
            Op::StopInstance {
                instance,
                hibernate,
            } => {
                self.ec2
                    .stop_instances()
                    .instance_ids(id(instance)?)
                    .hibernate(*hibernate)
                    .send()
                    .await
                    .map_err(err)?;
                self.wait_instance(&id(instance)?, InstanceState::Stopped)
                    .await?;
                Ok(none)
            }
            Op::StartInstance { instance } => {
                self.ec2
                    .start_instances()
                    .instance_ids(id(instance)?)
                    .send()
                    .await
                    .map_err(err)?;
                self.wait_instance(&id(instance)?, InstanceState::Running)
                    .await?;
                Ok(none)
            }
            Op::SetInstanceType {
                instance,
                instance_type,
            } => {
                self.ec2
                    .modify_instance_attribute()
                    .instance_id(id(instance)?)
                    .instance_type(ec2::AttributeValue::builder().value(instance_type).build())
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::CreateImage { instance, tags: t } => {
                let iid = id(instance)?;
                let name = format!(
                    "pare-{iid}-{}",
                    t.get("pare:step")
                        .map_or("backup", String::as_str)
                        .replace('/', "-")
                );
                let mut req = self
                    .ec2
                    .create_image()
                    .instance_id(&iid)
                    .name(name)
                    .no_reboot(true);
                if let Some(spec) = tag_spec(ec2::ResourceType::Image, t) {
                    req = req.tag_specifications(spec);
                }
                let out = req.send().await.map_err(err)?;
                Ok(Outcome {
                    created: out.image_id().map(str::to_string),
                })
            }
            Op::WaitImageAvailable { image } => {
                let iid = id(image)?;
                self.wait_for(
                    &format!("image {iid} to become available"),
                    self.image_timeout,
                    "image_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_images()
                            .image_ids(&iid)
                            .send()
                            .await
                            .map_err(err)?;
                        let state = out
                            .images()
                            .first()
                            .and_then(|i| i.state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "available" => Waited::Done,
                            "failed" | "error" | "invalid" | "deregistered" => {
                                Waited::Failed(state)
                            }
                            _ => Waited::Pending(state),
                        })
                    },
                )
                .await?;
                Ok(none)
            }
            Op::LaunchInstance { spec } => {
                let mut req = self
                    .ec2
                    .run_instances()
                    .image_id(id(&spec.image)?)
                    .instance_type(ec2::InstanceType::from(spec.instance_type.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .set_client_token(spec.client_token.clone())
                    .placement(
                        ec2::Placement::builder()
                            .availability_zone(&spec.zone)
                            .build(),
                    )
                    .monitoring(
                        ec2::RunInstancesMonitoringEnabled::builder()
                            .enabled(spec.monitoring == Monitoring::Detailed)
                            .build(),
                    );
                if spec.hibernation {
                    req = req.hibernation_options(
                        ec2::HibernationOptionsRequest::builder()
                            .configured(true)
                            .build(),
                    );
                }
                if spec.lifecycle == Lifecycle::Spot {
                    let mut spot = ec2::SpotMarketOptions::builder();
                    if let Some(p) = spec.max_price_usd_hour {
                        spot = spot.max_price(format!("{p}"));
                    }
                    req = req.instance_market_options(
                        ec2::InstanceMarketOptionsRequest::builder()
                            .market_type(ec2::MarketType::Spot)
                            .spot_options(spot.build())
                            .build(),
                    );
                }
                if let Some(t) = tag_spec(ec2::ResourceType::Instance, &spec.tags) {
                    req = req.tag_specifications(t);
                }
                let out = req.send().await.map_err(err)?;
                let new = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::Transport("RunInstances returned no instance".into())
                    })?;
                self.wait_instance(&new, InstanceState::Running).await?;
                for v in &spec.attach_volumes {
                    let device = self.free_device(&new).await?;
                    self.ec2
                        .attach_volume()
                        .volume_id(v)
                        .instance_id(&new)
                        .device(device)
                        .send()
                        .await
                        .map_err(err)?;
                }
                for a in &spec.associate_addresses {
                    self.ec2
                        .associate_address()
                        .allocation_id(a)
                        .instance_id(&new)
                        // Moving the address is the point; AWS disassociates it on
                        // termination, but do not depend on that having happened.
                        .allow_reassociation(true)
                        .send()
                        .await
                        .map_err(err)?;
                }
                if spec.stopped {
                    self.ec2
                        .stop_instances()
                        .instance_ids(&new)
                        .send()
                        .await
                        .map_err(err)?;
                    self.wait_instance(&new, InstanceState::Stopped).await?;
                }
                Ok(Outcome { created: Some(new) })
            }
            Op::TerminateInstance { instance } => {
                self.ec2
                    .terminate_instances()
                    .instance_ids(id(instance)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::ModifyVolume {
                volume,
                volume_type,
                iops,
                throughput_mbps,
            } => {
                let mut req = self
                    .ec2
                    .modify_volume()
                    .volume_id(id(volume)?)
                    .volume_type(ec2::VolumeType::from(volume_type.as_str()));
                if let Some(i) = iops
                    && volume_type != "gp2"
                {
                    req = req.iops(*i as i32);
                }
                if let Some(t) = throughput_mbps {
                    req = req.throughput(*t as i32);
                }
                req.send().await.map_err(err)?;
                // The new type is in effect once the modification is optimizing.
                let vid = id(volume)?;
                self.wait_for(
                    &format!("the modification of {vid} to take effect"),
                    self.volume_timeout,
                    "volume_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_volumes_modifications()
                            .volume_ids(&vid)
                            .send()
                            .await
                            .map_err(err)?;
                        let state = out
                            .volumes_modifications()
                            .iter()
                            .max_by_key(|m| m.start_time().map(|t| t.secs()))
                            .and_then(|m| m.modification_state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "optimizing" | "completed" => Waited::Done,
                            "failed" => Waited::Failed(state),
                            _ => Waited::Pending(state),
                        })
                    },
                )
                .await?;
                Ok(none)
            }
            Op::CreateSnapshot { volume, tags: t } => {
                let mut req = self.ec2.create_snapshot().volume_id(id(volume)?);
                if let Some(spec) = tag_spec(ec2::ResourceType::Snapshot, t) {
                    req = req.tag_specifications(spec);
                }
                let out = req.send().await.map_err(err)?;
                let sid = out.snapshot_id().map(str::to_string).ok_or_else(|| {
                    ProviderError::Transport("CreateSnapshot returned no snapshot id".into())
                })?;
                // A backup counts once it is complete: only then may the
                // next step delete what it backs up.
                self.wait_for(
                    &format!("snapshot {sid} to complete"),
                    self.snapshot_timeout,
                    "snapshot_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_snapshots()
                            .snapshot_ids(&sid)
                            .send()
                            .await
                            .map_err(err)?;
                        let snap = out.snapshots().first();
                        let state = snap
                            .and_then(|s| s.state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "completed" => Waited::Done,
                            "error" | "recoverable" => Waited::Failed(state),
                            _ => Waited::Pending(format!(
                                "{state}, {}",
                                snap.and_then(|s| s.progress()).unwrap_or("0%")
                            )),
                        })
                    },
                )
                .await?;
                Ok(Outcome { created: Some(sid) })
            }
            Op::AttachVolume { volume, instance } => {
                let iid = id(instance)?;
                let device = self.free_device(&iid).await?;
                self.ec2
                    .attach_volume()
                    .volume_id(id(volume)?)
                    .instance_id(iid)
                    .device(device)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::DetachVolume { volume, instance } => {
                let vid = id(volume)?;
                let described = self
                    .ec2
                    .describe_volumes()
                    .volume_ids(&vid)
                    .send()
                    .await
                    .map_err(err)?;
                let device = described
                    .volumes()
                    .first()
                    .and_then(|v| v.attachments().first())
                    .and_then(|a| a.device())
                    .unwrap_or("/dev/sdf")
                    .to_string();
                self.ec2
                    .detach_volume()
                    .volume_id(vid)
                    .instance_id(id(instance)?)
                    .device(device)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::AssociateAddress { address, instance } => {
                self.ec2
                    .associate_address()
                    .allocation_id(id(address)?)
                    .instance_id(id(instance)?)
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::DisassociateAddress { address, .. } => {
                let aid = id(address)?;
                let described = self
                    .ec2
                    .describe_addresses()
                    .allocation_ids(&aid)
                    .send()
                    .await
                    .map_err(err)?;
                if let Some(assoc) = described
                    .addresses()
                    .first()
                    .and_then(|a| a.association_id())
                {
                    self.ec2
                        .disassociate_address()
                        .association_id(assoc)
                        .send()
                        .await
                        .map_err(err)?;
                }
                Ok(none)
            }
            Op::DeleteVolume { volume } => {
                self.ec2
                    .delete_volume()
                    .volume_id(id(volume)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::CreateVolume { spec } => {
                let mut req = self
                    .ec2
                    .create_volume()
                    .set_client_token(spec.client_token.clone())
                    .snapshot_id(id(&spec.snapshot)?)
                    .availability_zone(&spec.zone)
                    .volume_type(ec2::VolumeType::from(spec.volume_type.as_str()))
                    .size(spec.size_gb as i32);
                if let Some(i) = spec.iops
                    && spec.volume_type != "gp2"
                {
                    req = req.iops(i as i32);
                }
                if let Some(t) = spec.throughput_mbps {
                    req = req.throughput(t as i32);
                }
                if let Some(t) = tag_spec(ec2::ResourceType::Volume, &spec.tags) {
                    req = req.tag_specifications(t);
                }
                let out = req.send().await.map_err(err)?;
                Ok(Outcome {
                    created: out.volume_id().map(str::to_string),
                })
            }
            Op::DeleteSnapshot { snapshot } => {
                self.ec2
                    .delete_snapshot()
                    .snapshot_id(id(snapshot)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::ReleaseAddress { address } => {
                self.ec2
                    .release_address()
                    .allocation_id(id(address)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::SetMonitoring { instance, detailed } => {
                if *detailed {
                    self.ec2
                        .monitor_instances()
                        .instance_ids(id(instance)?)
                        .send()
                        .await
                        .map_err(err)?;
                } else {
                    self.ec2
                        .unmonitor_instances()
                        .instance_ids(id(instance)?)
                        .send()
                        .await
                        .map_err(err)?;
                }
                Ok(none)
            }
            Op::UpdateGroup {
                group,
                min,
                max,
                desired,
            } => {
                self.asg
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(group)
                    .min_size(*min as i32)
                    .max_size(*max as i32)
                    .desired_capacity(*desired as i32)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::PurchaseReservation { offering, count } => {
                let out = self
                    .ec2
                    .purchase_reserved_instances_offering()
                    .reserved_instances_offering_id(offering)
                    .instance_count(*count as i32)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(Outcome {
                    created: out.reserved_instances_id().map(str::to_string),
                })
            }
        }
    }
}
