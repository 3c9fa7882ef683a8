//! Reserved instances: the offerings for the plan's terms, and what is held.

use super::*;

/// `1y`/`3y` from a reservation's duration in seconds.
pub(super) fn term(seconds: Option<i64>) -> String {
    match seconds {
        Some(s) if s >= 2 * 31_536_000 => "3y".into(),
        _ => "1y".into(),
    }
}

/// `no-upfront`, … from EC2's offering type.
pub(super) fn payment(t: Option<&ec2::OfferingTypeValues>) -> String {
    t.map_or("", |t| t.as_str())
        .to_ascii_lowercase()
        .replace(' ', "-")
}

impl AwsProvider {
    /// The reserved-instance offerings on sale and the reservations held,
    /// for the instance types `queries` name. Offerings are matched to the
    /// plan exactly afterwards (term, payment, class, zone), so the filters
    /// here only narrow the answer.
    pub(super) async fn reservations_and_offerings(
        &self,
        queries: &[OfferingQuery],
        out: &mut Inventory,
    ) -> Result<(), ProviderError> {
        if queries.is_empty() {
            return Ok(());
        }
        for q in queries {
            let seconds = if q.term == "3y" {
                94_608_000
            } else {
                31_536_000
            };
            let offering_type = match q.payment.as_str() {
                "all-upfront" => ec2::OfferingTypeValues::AllUpfront,
                "partial-upfront" => ec2::OfferingTypeValues::PartialUpfront,
                _ => ec2::OfferingTypeValues::NoUpfront,
            };
            let mut req = self
                .ec2
                .describe_reserved_instances_offerings()
                .filters(filter(
                    "instance-type",
                    std::slice::from_ref(&q.instance_type),
                ))
                .filters(filter("duration", &[seconds.to_string()]))
                .offering_type(offering_type)
                .offering_class(ec2::OfferingClassType::from(q.offering_class.as_str()))
                .product_description(ec2::RiProductDescription::LinuxUnix)
                .instance_tenancy(ec2::Tenancy::Default)
                .include_marketplace(false);
            req = match &q.zone {
                Some(z) => req
                    .availability_zone(z)
                    .filters(filter("scope", &["Availability Zone".to_string()])),
                None => req.filters(filter("scope", &["Region".to_string()])),
            };
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                for o in page.map_err(err)?.reserved_instances_offerings() {
                    let Some(id) = o.reserved_instances_offering_id() else {
                        continue;
                    };
                    let hourly = o
                        .recurring_charges()
                        .iter()
                        .filter_map(|c| c.amount())
                        .sum::<f64>()
                        + f64::from(o.usage_price().unwrap_or(0.0));
                    out.offerings.push(Offering {
                        id: id.to_string(),
                        instance_type: o
                            .instance_type()
                            .map_or(q.instance_type.clone(), |t| t.as_str().to_string()),
                        term: term(o.duration()),
                        payment: payment(o.offering_type()),
                        offering_class: o
                            .offering_class()
                            .map_or("standard".into(), |c| c.as_str().to_string()),
                        zone: o
                            .availability_zone()
                            .filter(|z| !z.is_empty())
                            .map(str::to_string),
                        upfront_usd: f64::from(o.fixed_price().unwrap_or(0.0)),
                        hourly_usd: hourly,
                    });
                }
            }
        }
        let mut types: Vec<String> = queries.iter().map(|q| q.instance_type.clone()).collect();
        types.sort();
        types.dedup();
        let held = self
            .ec2
            .describe_reserved_instances()
            .filters(filter("instance-type", &types))
            .send()
            .await
            .map_err(err)?;
        for r in held.reserved_instances() {
            let Some(id) = r.reserved_instances_id() else {
                continue;
            };
            out.reserved_instances.push(Reservation {
                id: id.to_string(),
                instance_type: r
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                count: r.instance_count().unwrap_or(0).max(0) as u32,
                term: term(r.duration()),
                payment: payment(r.offering_type()),
                offering_class: r
                    .offering_class()
                    .map_or("standard".into(), |c| c.as_str().to_string()),
                zone: r
                    .availability_zone()
                    .filter(|z| !z.is_empty())
                    .map(str::to_string),
                state: r
                    .state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }
}
