//! Elastic IPs: associating, disassociating, releasing.

use super::known as id;
use super::*;

impl Inventory {
    pub(super) fn associate_address(
        &mut self,
        address: &Ref,
        instance: &Ref,
    ) -> Result<Outcome, CloudError> {
        let (aid, iid) = (id(address)?, id(instance)?);
        let inst = self
            .instance(&iid)
            .ok_or_else(|| not_found("instance", "InstanceID", &iid))?;
        if inst.state == InstanceState::Terminated {
            return Err(CloudError::new(
                "IncorrectInstanceState",
                format!("The instance '{iid}' is terminated."),
            ));
        }
        let a = self.addresses.get_mut(&aid).ok_or_else(|| {
            CloudError::new(
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{aid}' does not exist"),
            )
        })?;
        if let Some(other) = &a.instance {
            return Err(CloudError::new(
                "Resource.AlreadyAssociated",
                format!("{aid} is already associated with {other}"),
            ));
        }
        self.link_address(&aid, Some(&iid));
        Ok(Outcome::default())
    }

    pub(super) fn disassociate_address(
        &mut self,
        address: &Ref,
        instance: &Ref,
    ) -> Result<Outcome, CloudError> {
        let (aid, iid) = (id(address)?, id(instance)?);
        let a = self.addresses.get_mut(&aid).ok_or_else(|| {
            CloudError::new(
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{aid}' does not exist"),
            )
        })?;
        if a.instance.as_deref() != Some(iid.as_str()) {
            return Err(CloudError::new(
                "InvalidAssociationID.NotFound",
                format!("{aid} is not associated with {iid}"),
            ));
        }
        self.link_address(&aid, None);
        Ok(Outcome::default())
    }

    pub(super) fn release_address(&mut self, address: &Ref) -> Result<Outcome, CloudError> {
        let aid = id(address)?;
        let a = self.address(&aid).ok_or_else(|| {
            CloudError::new(
                "InvalidAllocationID.NotFound",
                format!("The allocation ID '{aid}' does not exist"),
            )
        })?;
        if let Some(i) = &a.instance {
            return Err(CloudError::new(
                "InvalidIPAddress.InUse",
                format!("Address {} is in use (associated with {i})", a.public_ip),
            ));
        }
        self.addresses.remove(&aid);
        Ok(Outcome::default())
    }
}
