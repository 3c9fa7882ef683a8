//! `autoscale`: change a group's min, max and desired capacity.

use super::{Expansion, Facts, Savings, Step};
use crate::plan::Autoscale;
use crate::pricing::catalog;
use crate::provider::{Inventory, Op};
use crate::vocabulary::Risk;

pub fn expand(a: &Autoscale, inv: &Inventory) -> Expansion {
    let Some(g) = inv.group(&a.group) else {
        return Expansion::Missing;
    };
    let (min, max, desired) = (
        a.min.unwrap_or(g.min),
        a.max.unwrap_or(g.max),
        a.desired.unwrap_or(g.desired),
    );
    if (min, max, desired) == (g.min, g.max, g.desired) {
        return Expansion::NoChange {
            reason: format!(
                "{} is already min {min}, max {max}, desired {desired}",
                g.name
            ),
        };
    }
    if min > max || desired < min || desired > max {
        return Expansion::Blocked {
            reason: format!(
                "with the group's current values this gives min {min}, max {max}, desired {desired}, which AWS rejects"
            ),
            help: "give all of min, max and desired so that min ≤ desired ≤ max".into(),
        };
    }
    let mut reasons = vec![format!(
        "changes {} from min {}, max {}, desired {} to min {min}, max {max}, desired {desired}",
        g.name, g.min, g.max, g.desired
    )];
    if desired < g.desired {
        reasons.push(format!(
            "scales in: the group terminates {} instances",
            g.desired - desired
        ));
    }
    let savings = match g
        .instance_type
        .as_deref()
        .and_then(|t| catalog().instance_month(t))
    {
        Some(month) => Savings::Usd((f64::from(g.desired) - f64::from(desired)) * month),
        None => Savings::Unknown("the group's instance type has no catalog price".into()),
    };
    Expansion::Change {
        steps: vec![Step::new(
            Op::UpdateGroup {
                group: g.name.clone(),
                min,
                max,
                desired,
            },
            Op::UpdateGroup {
                group: g.name.clone(),
                min: g.min,
                max: g.max,
                desired: g.desired,
            },
        )],
        facts: Facts {
            base_risk: Risk::Medium,
            reasons,
            savings,
            replaced_by_step: None,
        },
    }
}
