//! Capacity: auto-scaling groups and reserved-instance purchases.

use super::*;

impl Inventory {
    pub(super) fn update_group(
        &mut self,
        group: &str,
        min: &u32,
        max: &u32,
        desired: &u32,
    ) -> Result<Outcome, CloudError> {
        if min > max || desired < min || desired > max {
            return Err(CloudError::new(
                "ValidationError",
                format!(
                    "Desired capacity:{desired} must be between the specified min size:{min} and max size:{max}"
                ),
            ));
        }
        let g = self.auto_scaling_groups.get_mut(group).ok_or_else(|| {
            CloudError::new(
                "ValidationError",
                format!("AutoScalingGroup name not found - {group}"),
            )
        })?;
        (g.min, g.max, g.desired) = (*min, *max, *desired);
        Ok(Outcome::default())
    }

    pub(super) fn purchase_reservation(
        &mut self,
        offering: &str,
        count: &u32,
    ) -> Result<Outcome, CloudError> {
        let o = self
            .offerings
            .iter()
            .find(|o| o.id == offering)
            .cloned()
            .ok_or_else(|| {
                CloudError::new(
                    "InvalidReservedInstancesOfferingId",
                    format!("The offering '{offering}' does not exist"),
                )
            })?;
        let rid = self.new_id("ri-");
        self.reserved_instances.push(Reservation {
            id: rid.clone(),
            instance_type: o.instance_type,
            count: *count,
            term: o.term,
            payment: o.payment,
            offering_class: o.offering_class,
            zone: o.zone,
            state: "active".into(),
        });
        Ok(Outcome { created: Some(rid) })
    }
}
