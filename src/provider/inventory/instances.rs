//! Instances: the rules for stopping, starting, retyping, imaging,
//! launching and terminating them, and their monitoring.

use super::known as id;
use super::*;

impl Inventory {
    pub(super) fn stop_instance(
        &mut self,
        instance: &Ref,
        hibernate: &bool,
    ) -> Result<Outcome, CloudError> {
        let i = self.instance_mut(&id(instance)?)?;
        match i.state {
            InstanceState::Terminated | InstanceState::ShuttingDown => {
                return Err(CloudError::new(
                    "IncorrectInstanceState",
                    format!(
                        "This instance '{}' is not in a state from which it can be stopped.",
                        i.id
                    ),
                ));
            }
            InstanceState::Stopped => return Ok(Outcome::default()),
            _ => {}
        }
        if *hibernate && !i.hibernation {
            return Err(CloudError::new(
                "UnsupportedHibernationConfiguration",
                format!(
                    "The instance '{}' does not have hibernation configured.",
                    i.id
                ),
            ));
        }
        i.state = InstanceState::Stopped;
        i.stop_reason = hibernate.then(|| "hibernated".to_string());
        Ok(Outcome::default())
    }

    pub(super) fn start_instance(&mut self, instance: &Ref) -> Result<Outcome, CloudError> {
        let i = self.instance_mut(&id(instance)?)?;
        match i.state {
            InstanceState::Terminated | InstanceState::ShuttingDown => Err(CloudError::new(
                "IncorrectInstanceState",
                format!(
                    "The instance '{}' is not in a state from which it can be started.",
                    i.id
                ),
            )),
            _ => {
                i.state = InstanceState::Running;
                i.stop_reason = None;
                Ok(Outcome::default())
            }
        }
    }

    pub(super) fn set_instance_type(
        &mut self,
        instance: &Ref,
        instance_type: &str,
    ) -> Result<Outcome, CloudError> {
        if !self.knows_type(instance_type) {
            return Err(CloudError::new(
                "InvalidInstanceType",
                format!(
                    "The instance type '{instance_type}' is not supported in {}.",
                    self.region
                ),
            ));
        }
        let i = self.instance_mut(&id(instance)?)?;
        if i.state != InstanceState::Stopped {
            return Err(CloudError::new(
                "IncorrectInstanceState",
                format!("The instance '{}' is not in the 'stopped' state.", i.id),
            ));
        }
        i.instance_type = instance_type.to_string();
        Ok(Outcome::default())
    }

    pub(super) fn create_image(
        &mut self,
        instance: &Ref,
        tags: &Tags,
    ) -> Result<Outcome, CloudError> {
        let source = id(instance)?;
        let i = self
            .instance(&source)
            .ok_or_else(|| not_found("instance", "InstanceID", &source))?;
        if i.state == InstanceState::Terminated {
            return Err(CloudError::new(
                "IncorrectInstanceState",
                format!("The instance '{source}' is terminated."),
            ));
        }
        let image_id = self.new_id("ami-");
        self.images.insert(
            image_id.clone(),
            Image {
                id: image_id.clone(),
                source_instance: Some(source),
                state: "available".into(),
                snapshots: Vec::new(),
                tags: tags.clone(),
            },
        );
        Ok(Outcome {
            created: Some(image_id),
        })
    }

    pub(super) fn wait_image_available(&mut self, image: &Ref) -> Result<Outcome, CloudError> {
        let image_id = id(image)?;
        match self.image(&image_id) {
            Some(img) if img.state == "available" => Ok(Outcome::default()),
            Some(img) => Err(CloudError::new(
                "IncorrectState",
                format!("The image '{image_id}' is {}.", img.state),
            )),
            None => Err(not_found("image", "AMIID", &image_id)),
        }
    }

    pub(super) fn launch_instance(&mut self, spec: &LaunchSpec) -> Result<Outcome, CloudError> {
        let image_id = id(&spec.image)?;
        if self.image(&image_id).is_none() {
            return Err(not_found("image", "AMIID", &image_id));
        }
        if !self.knows_type(&spec.instance_type) {
            return Err(CloudError::new(
                "InvalidInstanceType",
                format!(
                    "The instance type '{}' is not supported in {}.",
                    spec.instance_type, self.region
                ),
            ));
        }
        for v in &spec.attach_volumes {
            let vol = self
                .volume(v)
                .ok_or_else(|| not_found("volume", "Volume", v))?;
            if let Some(other) = &vol.attached_to {
                return Err(CloudError::new(
                    "VolumeInUse",
                    format!("{v} is already attached to an instance ({other})"),
                ));
            }
            if vol.zone != spec.zone {
                return Err(CloudError::new(
                    "InvalidVolume.ZoneMismatch",
                    format!("The volume '{v}' is not in the same availability zone as instance"),
                ));
            }
        }
        for a in &spec.associate_addresses {
            let addr = self.address(a).ok_or_else(|| {
                CloudError::new(
                    "InvalidAllocationID.NotFound",
                    format!("The allocation ID '{a}' does not exist"),
                )
            })?;
            if let Some(other) = &addr.instance {
                return Err(CloudError::new(
                    "Resource.AlreadyAssociated",
                    format!("{a} is already associated with {other}"),
                ));
            }
        }
        let new_id = self.new_id("i-");
        self.instances.insert(
            new_id.clone(),
            Instance {
                id: new_id.clone(),
                instance_type: spec.instance_type.clone(),
                state: if spec.stopped {
                    InstanceState::Stopped
                } else {
                    InstanceState::Running
                },
                zone: spec.zone.clone(),
                image: Some(image_id),
                lifecycle: spec.lifecycle,
                hibernation: spec.hibernation,
                monitoring: spec.monitoring,
                tags: spec.tags.clone(),
                stop_reason: None,
            },
        );
        for v in &spec.attach_volumes {
            self.link_volume(v, Some(&new_id));
        }
        for a in &spec.associate_addresses {
            self.link_address(a, Some(&new_id));
        }
        Ok(Outcome {
            created: Some(new_id),
        })
    }

    pub(super) fn terminate_instance(&mut self, instance: &Ref) -> Result<Outcome, CloudError> {
        let iid = id(instance)?;
        let i = self.instance_mut(&iid)?;
        i.state = InstanceState::Terminated;
        i.stop_reason = None;
        // Data volumes survive termination, detached (AWS's default for
        // volumes attached after launch); delete-on-termination ones (root
        // volumes) go with the instance.
        let volumes: Vec<(String, bool)> = self
            .attached_volumes(&iid)
            .iter()
            .map(|v| (v.id.clone(), v.delete_on_termination))
            .collect();
        for (v, goes) in volumes {
            self.link_volume(&v, None);
            if goes {
                self.volumes.remove(&v);
            }
        }
        // An Elastic IP is disassociated.
        let addresses: Vec<String> = self
            .associated_addresses(&iid)
            .iter()
            .map(|a| a.allocation_id.clone())
            .collect();
        for a in addresses {
            self.link_address(&a, None);
        }
        Ok(Outcome::default())
    }

    pub(super) fn set_monitoring(
        &mut self,
        instance: &Ref,
        detailed: &bool,
    ) -> Result<Outcome, CloudError> {
        let i = self.instance_mut(&id(instance)?)?;
        if i.state == InstanceState::Terminated {
            return Err(CloudError::new(
                "IncorrectInstanceState",
                format!("The instance '{}' is terminated.", i.id),
            ));
        }
        i.monitoring = if *detailed {
            Monitoring::Detailed
        } else {
            Monitoring::Basic
        };
        Ok(Outcome::default())
    }
}
