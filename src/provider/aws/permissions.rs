//! Permission checks: each IAM action a plan needs, tried with `DryRun`.

use super::*;

/// What a `DryRun` call's answer says about permission.
pub(super) fn permission(
    answer: Result<(), ProviderError>,
    action: &str,
) -> crate::provider::Permission {
    use crate::provider::Permission;
    match answer {
        Ok(()) => {
            tracing::warn!("the endpoint ignored DryRun for {action} and performed it");
            Permission::Allowed
        }
        Err(ProviderError::Cloud { error, .. }) => match error.code.as_str() {
            "DryRunOperation" => Permission::Allowed,
            // AWS says UnauthorizedOperation; other endpoints say AccessDenied.
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                Permission::Denied(format!("{}: {}", error.code, error.message))
            }
            _ => Permission::Unchecked(format!("{}: {}", error.code, error.message)),
        },
        Err(e) => Permission::Unchecked(e.to_string()),
    }
}

impl AwsProvider {
    /// Asks EC2 with `DryRun` whether `action` would be allowed, using the
    /// plan's own resource where there is one (permissions can be scoped by
    /// resource) and a well-formed stand-in id otherwise.
    pub(super) async fn dry_run(
        &self,
        action: &str,
        target: Option<&ResourceId>,
        inv: &Inventory,
    ) -> crate::provider::Permission {
        let instance = match target {
            Some(ResourceId::Instance(i)) => i.clone(),
            _ => "i-00000000000000000".to_string(),
        };
        let volume = match target {
            Some(ResourceId::Volume(v)) => v.clone(),
            _ => "vol-00000000000000000".to_string(),
        };
        let zone = inv
            .instances
            .values()
            .map(|i| i.zone.clone())
            .chain(inv.volumes.values().map(|v| v.zone.clone()))
            .next()
            .unwrap_or_else(|| format!("{}a", self.region));
        let e = &self.ec2;
        let placeholder = |kind: &str| format!("{kind}-00000000000000000");
        let answer = match action {
            "ec2:StopInstances" => sent!(e.stop_instances().instance_ids(&instance).dry_run(true)),
            "ec2:StartInstances" => {
                sent!(e.start_instances().instance_ids(&instance).dry_run(true))
            }
            "ec2:TerminateInstances" => {
                sent!(
                    e.terminate_instances()
                        .instance_ids(&instance)
                        .dry_run(true)
                )
            }
            "ec2:MonitorInstances" => {
                sent!(e.monitor_instances().instance_ids(&instance).dry_run(true))
            }
            "ec2:UnmonitorInstances" => {
                sent!(
                    e.unmonitor_instances()
                        .instance_ids(&instance)
                        .dry_run(true)
                )
            }
            "ec2:ModifyInstanceAttribute" => {
                let ty = inv
                    .instance(&instance)
                    .map_or("t3.micro".to_string(), |i| i.instance_type.clone());
                sent!(
                    e.modify_instance_attribute()
                        .instance_id(&instance)
                        .instance_type(ec2::AttributeValue::builder().value(ty).build())
                        .dry_run(true)
                )
            }
            "ec2:CreateImage" => sent!(
                e.create_image()
                    .instance_id(&instance)
                    .name("pare-permission-check")
                    .no_reboot(true)
                    .dry_run(true)
            ),
            "ec2:CreateTags" => sent!(
                e.create_tags()
                    .resources(&instance)
                    .tags(ec2::Tag::builder().key("pare:check").value("1").build())
                    .dry_run(true)
            ),
            "ec2:RunInstances" => {
                let (image, ty) = inv
                    .instance(&instance)
                    .map(|i| (i.image.clone().unwrap_or_default(), i.instance_type.clone()))
                    .unwrap_or_default();
                let image = if image.is_empty() {
                    placeholder("ami")
                } else {
                    image
                };
                let ty = if ty.is_empty() {
                    "t3.micro".to_string()
                } else {
                    ty
                };
                sent!(
                    e.run_instances()
                        .image_id(image)
                        .instance_type(ec2::InstanceType::from(ty.as_str()))
                        .min_count(1)
                        .max_count(1)
                        .dry_run(true)
                )
            }
            "ec2:AttachVolume" => sent!(
                e.attach_volume()
                    .volume_id(&volume)
                    .instance_id(&instance)
                    .device("/dev/sdf")
                    .dry_run(true)
            ),
            "ec2:DetachVolume" => sent!(
                e.detach_volume()
                    .volume_id(&volume)
                    .instance_id(&instance)
                    .device("/dev/sdf")
                    .dry_run(true)
            ),
            "ec2:AssociateAddress" => sent!(
                e.associate_address()
                    .allocation_id(placeholder("eipalloc"))
                    .instance_id(&instance)
                    .dry_run(true)
            ),
            "ec2:DisassociateAddress" => sent!(
                e.disassociate_address()
                    .association_id(placeholder("eipassoc"))
                    .dry_run(true)
            ),
            "ec2:ModifyVolume" => sent!(
                e.modify_volume()
                    .volume_id(&volume)
                    .volume_type(ec2::VolumeType::Gp3)
                    .dry_run(true)
            ),
            "ec2:CreateSnapshot" => sent!(e.create_snapshot().volume_id(&volume).dry_run(true)),
            "ec2:DeleteVolume" => sent!(e.delete_volume().volume_id(&volume).dry_run(true)),
            "ec2:CreateVolume" => sent!(
                e.create_volume()
                    .availability_zone(zone)
                    .size(1)
                    .dry_run(true)
            ),
            "ec2:DeleteSnapshot" => {
                let snap = match target {
                    Some(ResourceId::Snapshot(s)) => s.clone(),
                    _ => placeholder("snap"),
                };
                sent!(e.delete_snapshot().snapshot_id(snap).dry_run(true))
            }
            "ec2:ReleaseAddress" => {
                let alloc = match target {
                    Some(ResourceId::Address(a)) => a.clone(),
                    _ => placeholder("eipalloc"),
                };
                sent!(e.release_address().allocation_id(alloc).dry_run(true))
            }
            "ec2:PurchaseReservedInstancesOffering" => sent!(
                e.purchase_reserved_instances_offering()
                    .reserved_instances_offering_id("00000000-0000-0000-0000-000000000000")
                    .instance_count(1)
                    .dry_run(true)
            ),
            other => {
                return crate::provider::Permission::Unchecked(format!(
                    "{other} has no dry run; the first real call will tell"
                ));
            }
        };
        permission(answer, action)
    }
}
