//! `reserve`: buy reserved instances. Declarative: `count` is how many
//! matching active reservations there should be, so re-applying never buys twice.

use super::{Expansion, Facts, Savings, Step};
use crate::plan::{OfferingClass, Payment, Reserve, Term};
use crate::pricing::catalog;
use crate::provider::{Inventory, OfferingQuery, Op, Reservation};
use crate::vocabulary::Risk;

/// The offering query a `reserve` recommendation needs.
pub fn query(a: &Reserve) -> OfferingQuery {
    OfferingQuery {
        instance_type: a.instance_type.clone(),
        term: match a.term {
            Term::OneYear => "1y",
            Term::ThreeYears => "3y",
        }
        .into(),
        payment: match a.payment {
            Payment::NoUpfront => "no-upfront",
            Payment::PartialUpfront => "partial-upfront",
            Payment::AllUpfront => "all-upfront",
        }
        .into(),
        offering_class: match a.offering_class {
            OfferingClass::Standard => "standard",
            OfferingClass::Convertible => "convertible",
        }
        .into(),
        zone: a.zone.clone(),
    }
}

/// The active reservations that match `q` exactly.
pub fn active<'a>(q: &OfferingQuery, inv: &'a Inventory) -> Vec<&'a Reservation> {
    inv.reserved_instances
        .iter()
        .filter(|r| {
            r.state == "active"
                && r.instance_type == q.instance_type
                && r.term == q.term
                && r.payment == q.payment
                && r.offering_class == q.offering_class
                && r.zone == q.zone
        })
        .collect()
}

pub fn expand(a: &Reserve, inv: &Inventory) -> Expansion {
    let q = query(a);
    let existing = active(&q, inv);
    let have: u32 = existing.iter().map(|r| r.count).sum();
    let scope = q.zone.clone().unwrap_or_else(|| "regional".into());
    if have >= a.count {
        let ids: Vec<&str> = existing.iter().map(|r| r.id.as_str()).collect();
        return Expansion::NoChange {
            reason: format!(
                "{} already active ({})",
                crate::vocabulary::words::plural(have as usize, "matching reservation"),
                ids.join(", ")
            ),
        };
    }
    let Some(offer) = inv.offerings.iter().find(|o| q.matches(o)) else {
        return Expansion::Blocked {
            reason: format!(
                "no {} {} {} {} offering for {} is on sale",
                scope, q.term, q.payment, q.offering_class, q.instance_type
            ),
            help: "check the instance type, term and payment option, or drop `zone` for a regional reservation".into(),
        };
    };
    let buy = a.count - have;
    let months = if q.term == "1y" { 12.0 } else { 36.0 };
    let hours = catalog().meta.hours_per_month;
    let committed = f64::from(buy) * (offer.upfront_usd + offer.hourly_usd * hours * months);
    let savings = match catalog().hourly(&q.instance_type) {
        Some(od) => Savings::Usd(
            f64::from(buy) * (od * hours - (offer.upfront_usd / months + offer.hourly_usd * hours)),
        ),
        None => Savings::Unknown(super::unknown_price(&q.instance_type)),
    };
    let mut reasons = vec![format!(
        "buys {buy} × {} ({scope}, {}, {}, {}): a commitment of ${committed:.2} over the term",
        q.instance_type, q.term, q.payment, q.offering_class
    )];
    if have > 0 {
        reasons.push(format!(
            "{} already active; buying the {buy} missing",
            crate::vocabulary::words::plural(have as usize, "matching reservation")
        ));
    }
    Expansion::Change {
        steps: vec![Step::irreversible(
            Op::PurchaseReservation {
                offering: offer.id.clone(),
                count: buy,
            },
            "a reservation purchase is final: it is billed for the whole term",
        )],
        facts: Facts {
            base_risk: Risk::Critical,
            reasons,
            savings,
            replaced_by_step: None,
        },
    }
}
