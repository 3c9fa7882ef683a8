//! The built-in price catalog (`data/prices.toml`), compiled into the binary.
//!
//! Prices answer "how much does this cost a month"; a missing price is
//! `None`, and callers show it as unknown, never as zero.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
pub struct Catalog {
    pub meta: Meta,
    instances: BTreeMap<String, f64>,
    volumes: BTreeMap<String, f64>,
    pub extras: Extras,
    reservation_rates: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
pub struct Meta {
    pub region: String,
    pub currency: String,
    pub as_of: String,
    pub hours_per_month: f64,
}

#[derive(Debug, Deserialize)]
pub struct Extras {
    pub gp3_iops_over_3000_per_month: f64,
    pub gp3_throughput_over_125_per_month: f64,
    pub io_iops_per_month: f64,
    pub snapshot_gb_month: f64,
    pub idle_address_hour: f64,
    pub detailed_monitoring_instance_month: f64,
}

/// The catalog, parsed once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        toml::from_str(include_str!("../data/prices.toml"))
            .expect("data/prices.toml is valid (tested)")
    })
}

impl Catalog {
    /// On-demand USD per hour.
    pub fn hourly(&self, instance_type: &str) -> Option<f64> {
        self.instances.get(instance_type).copied()
    }

    /// On-demand USD per month.
    pub fn instance_month(&self, instance_type: &str) -> Option<f64> {
        self.hourly(instance_type)
            .map(|h| h * self.meta.hours_per_month)
    }

    /// The instance types the catalog knows.
    pub fn instance_types(&self) -> impl Iterator<Item = &str> {
        self.instances.keys().map(String::as_str)
    }

    /// USD per month for a volume of this shape.
    pub fn volume_month(
        &self,
        volume_type: &str,
        size_gb: u32,
        iops: Option<u32>,
        throughput: Option<u32>,
    ) -> Option<f64> {
        let per_gb = self.volumes.get(volume_type)?;
        let mut cost = per_gb * f64::from(size_gb);
        let e = &self.extras;
        match volume_type {
            "gp3" => {
                cost += f64::from(iops.unwrap_or(3000).saturating_sub(3000))
                    * e.gp3_iops_over_3000_per_month;
                cost += f64::from(throughput.unwrap_or(125).saturating_sub(125))
                    * e.gp3_throughput_over_125_per_month;
            }
            "io1" | "io2" => cost += f64::from(iops.unwrap_or(0)) * e.io_iops_per_month,
            _ => {}
        }
        Some(cost)
    }

    /// A reservation's effective rate as a share of on-demand.
    pub fn reservation_rate(&self, class: &str, term: &str, payment: &str) -> Option<f64> {
        self.reservation_rates
            .get(&format!("{class}.{term}.{payment}"))
            .copied()
    }

    /// "us-east-1 USD list prices as of 2024-06".
    pub fn describe(&self) -> String {
        format!(
            "{} {} list prices as of {}",
            self.meta.region, self.meta.currency, self.meta.as_of
        )
    }
}

/// Whether an instance type runs arm64 (Graviton) rather than x86_64.
pub fn is_arm(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or("");
    // Graviton families end their generation with `g` (m6g, c7gn, t4g, r6gd).
    let after_digit = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let suffix = after_digit.trim_start_matches(|c: char| c.is_ascii_digit());
    suffix.starts_with('g') && !family.starts_with("g") && !family.starts_with("p")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_prices() {
        let c = catalog();
        assert_eq!(c.hourly("m5.large"), Some(0.096));
        assert_eq!(c.hourly("m5.huge"), None);
        assert!((c.instance_month("m5.xlarge").unwrap() - 140.16).abs() < 1e-9);
        let gp2 = c.volume_month("gp2", 500, Some(1500), None).unwrap();
        let gp3 = c.volume_month("gp3", 500, Some(3000), Some(125)).unwrap();
        assert!((gp2 - gp3 - 10.0).abs() < 1e-9, "{gp2} {gp3}");
        assert_eq!(c.volume_month("nvme", 1, None, None), None);
        assert_eq!(
            c.reservation_rate("standard", "1y", "no-upfront"),
            Some(0.64)
        );
    }

    #[test]
    fn architectures() {
        for arm in ["m6g.large", "t4g.micro", "c7gn.xlarge", "r6gd.large"] {
            assert!(is_arm(arm), "{arm}");
        }
        for x86 in [
            "m5.large",
            "m6i.large",
            "c5.xlarge",
            "g4dn.xlarge",
            "t3a.small",
            "m5a.large",
        ] {
            assert!(!is_arm(x86), "{x86}");
        }
    }
}
