//! Reading an action's fields: each of the eight, with the combinations
//! that do not apply named (`to` with `delete`, `snapshot` on a retype).

use super::*;

/// Reads the fields of one action from a recommendation's mapping.
pub(super) struct ActionReader<'a, 'n> {
    pub(super) l: &'a mut Loader,
    pub(super) f: &'a mut Fields<'n>,
    pub(super) anchor: Span,
    pub(super) what: &'a str,
    pub(super) resource: &'a mut Span,
}

impl<'n> ActionReader<'_, 'n> {
    fn required(&mut self, field: &'static str, help: &str) -> Option<&'n Node> {
        let action = self.what;
        self.l.required(self.f, field, self.anchor, action, help)
    }

    fn target(&mut self, field: &'static str, kind: IdKind) -> Option<String> {
        let help = format!(
            "name the {} to change: `{field}: {}`",
            &kind.noun()[kind.noun().find(' ').map_or(0, |i| i + 1)..],
            kind.example()
        );
        let node = self.required(field, &help)?;
        *self.resource = span(node.pos);
        self.l.resource_id(node, field, kind)
    }

    fn optional_choice<T: Copy>(
        &mut self,
        field: &'static str,
        choices: &[(&'static str, T)],
        default: T,
    ) -> Option<T> {
        match self.f.get(field) {
            Some(n) => self.l.choice(n, field, choices),
            None => Some(default),
        }
    }

    /// A field that does not apply in this combination.
    fn conflict(&mut self, field: &str, why: &str, help: &str) {
        if let Some(sp) = self.f.key_span(field) {
            self.l
                .error(
                    "plan::field-conflict",
                    sp,
                    format!("`{field}` {why}"),
                    "does not apply here",
                )
                .help = Some(help.to_string());
        }
    }

    pub(super) fn read(&mut self, name: &str) -> Option<Action> {
        match name {
            "terminate" => {
                let instance = self.target("instance", IdKind::Instance);
                let backup = self.optional_choice(
                    "backup",
                    &[("image", Backup::Image), ("none", Backup::None)],
                    Backup::Image,
                );
                Some(Action::Terminate(Terminate {
                    instance: instance?,
                    backup: backup?,
                }))
            }
            "rightsize" => {
                let instance = self.target("instance", IdKind::Instance);
                let to = self
                    .required("to", "give the new instance type: `to: m5.large`")
                    .and_then(|n| self.l.instance_type(n, "to"));
                Some(Action::Rightsize(Rightsize {
                    instance: instance?,
                    to: to?,
                }))
            }
            "hibernate" => {
                let instance = self.target("instance", IdKind::Instance);
                let mode = self.optional_choice(
                    "mode",
                    &[
                        ("hibernate", HibernateMode::Hibernate),
                        ("stop", HibernateMode::Stop),
                    ],
                    HibernateMode::Hibernate,
                );
                Some(Action::Hibernate(Hibernate {
                    instance: instance?,
                    mode: mode?,
                }))
            }
            "spot" => {
                let instance = self.target("instance", IdKind::Instance);
                let max_price = match self.f.get("max_price_usd_hour") {
                    Some(n) => Some(
                        self.l
                            .positive_number(
                                n,
                                "max_price_usd_hour",
                                false,
                                super::values::MAX_PRICE_USD_HOUR,
                            )
                            .ok_or(()),
                    ),
                    None => None,
                }
                .transpose()
                .ok()?;
                Some(Action::Spot(Spot {
                    instance: instance?,
                    max_price_usd_hour: max_price,
                }))
            }
            "reserve" => self.reserve(),
            "autoscale" => self.autoscale(),
            "storage" => self.storage(),
            "config" => self.config(),
            _ => None,
        }
    }

    fn reserve(&mut self) -> Option<Action> {
        let type_node = self.required(
            "instance_type",
            "give the instance type to reserve: `instance_type: m5.large`",
        );
        if let Some(n) = type_node {
            *self.resource = span(n.pos);
        }
        let instance_type = type_node.and_then(|n| self.l.instance_type(n, "instance_type"));
        let count = self
            .required("count", "say how many to buy: `count: 2`")
            .and_then(|n| self.l.uint(n, "count", 1));
        let term = self
            .required("term", "give the term: `term: 1y` or `term: 3y`")
            .and_then(|n| {
                self.l.choice(
                    n,
                    "term",
                    &[("1y", Term::OneYear), ("3y", Term::ThreeYears)],
                )
            });
        let payment = self
            .required("payment", "give the payment option: `payment: no-upfront`")
            .and_then(|n| {
                self.l.choice(
                    n,
                    "payment",
                    &[
                        ("no-upfront", Payment::NoUpfront),
                        ("partial-upfront", Payment::PartialUpfront),
                        ("all-upfront", Payment::AllUpfront),
                    ],
                )
            });
        let class = self.optional_choice(
            "offering_class",
            &[
                ("standard", OfferingClass::Standard),
                ("convertible", OfferingClass::Convertible),
            ],
            OfferingClass::Standard,
        );
        let zone = match self.f.get("zone") {
            None => Some(None),
            Some(n) => self.l.string(n, "zone").map(|z| {
                if !ids::is_zone(&z) {
                    self.l
                        .error(
                            "plan::invalid-value",
                            span(n.pos),
                            format!("`{z}` is not an availability zone"),
                            "not a zone",
                        )
                        .help = Some(
                        "zones look like `us-east-1a`; leave `zone` out for a regional reservation"
                            .into(),
                    );
                }
                Some(z)
            }),
        };
        Some(Action::Reserve(Reserve {
            instance_type: instance_type?,
            count: count?,
            term: term?,
            payment: payment?,
            offering_class: class?,
            zone: zone?,
        }))
    }

    fn autoscale(&mut self) -> Option<Action> {
        let group_node = self.required("group", "name the auto-scaling group: `group: web-asg`");
        if let Some(n) = group_node {
            *self.resource = span(n.pos);
        }
        let group = group_node.and_then(|n| self.l.string(n, "group"));
        let mut read = |field: &'static str| -> (Option<u32>, Option<Span>, bool) {
            match self.f.get(field) {
                None => (None, None, true),
                Some(n) => {
                    let v = self.l.uint(n, field, 0);
                    let ok = v.is_some();
                    (v, Some(span(n.pos)), ok)
                }
            }
        };
        let (min, min_sp, ok1) = read("min");
        let (max, max_sp, ok2) = read("max");
        let (desired, desired_sp, ok3) = read("desired");
        if min_sp.is_none() && max_sp.is_none() && desired_sp.is_none() {
            let what = self.what.to_string();
            self.l.missing(
                self.anchor,
                "min, max or desired",
                &what,
                "give at least one of `min`, `max`, `desired`",
            );
            return None;
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.l
                .error(
                    "plan::autoscale-bounds",
                    min_sp.unwrap_or_default(),
                    format!("`min` ({lo}) is greater than `max` ({hi})"),
                    "min",
                )
                .with_label(max_sp.unwrap_or_default(), "max")
                .help = Some("make `min` at most `max`".into());
        }
        if let Some(d) = desired {
            let sp = desired_sp.unwrap_or_default();
            if let Some(lo) = min.filter(|lo| d < *lo) {
                self.l
                    .error(
                        "plan::autoscale-bounds",
                        sp,
                        format!("`desired` ({d}) is below `min` ({lo})"),
                        "desired",
                    )
                    .with_label(min_sp.unwrap_or_default(), "min")
                    .help =
                    Some("the group's desired capacity must lie between min and max".into());
            }
            if let Some(hi) = max.filter(|hi| d > *hi) {
                self.l
                    .error(
                        "plan::autoscale-bounds",
                        sp,
                        format!("`desired` ({d}) is above `max` ({hi})"),
                        "desired",
                    )
                    .with_label(max_sp.unwrap_or_default(), "max")
                    .help =
                    Some("the group's desired capacity must lie between min and max".into());
            }
        }
        if !(ok1 && ok2 && ok3) {
            return None;
        }
        Some(Action::Autoscale(Autoscale {
            group: group?,
            min,
            max,
            desired,
        }))
    }

    fn storage(&mut self) -> Option<Action> {
        let volume = self.target("volume", IdKind::Volume);
        let to_node = self.f.get("to");
        let delete_node = self.f.get("delete");
        let iops_node = self.f.get("iops");
        let tp_node = self.f.get("throughput_mbps");
        let snap_node = self.f.get("snapshot");
        let to = to_node.map(|n| self.l.choice(n, "to", &VolumeType::ALL));
        let delete = delete_node.map(|n| self.l.boolean(n, "delete"));
        let deleting = matches!(delete, Some(Some(true)));
        match (to_node, deleting) {
            (Some(t), true) => {
                let d = delete_node.map_or(self.anchor, |n| span(n.pos));
                self.l
                    .error(
                        "plan::storage-mode",
                        span(t.pos),
                        "`storage` takes either `to` or `delete: true`, not both",
                        "retype",
                    )
                    .with_label(d, "delete")
                    .help =
                    Some("split this into two recommendations, or keep only one of them".into());
                return None;
            }
            (None, false) if !matches!(delete, Some(None)) => {
                self.l
                    .error(
                        "plan::storage-mode",
                        self.anchor,
                        format!("{} says neither `to` nor `delete: true`", self.what),
                        "nothing to do",
                    )
                    .help = Some(
                    "add `to: gp3` to change the volume type, or `delete: true` to delete it"
                        .into(),
                );
                return None;
            }
            _ => {}
        }
        let snapshot = match snap_node {
            None => Some(true),
            Some(n) => self.l.boolean(n, "snapshot"),
        };
        if to_node.is_some() {
            self.conflict(
                "snapshot",
                "applies only to `delete: true`",
                "remove `snapshot`, or delete the volume instead of changing its type",
            );
        } else {
            self.conflict(
                "iops",
                "applies only to a type change (`to`)",
                "remove `iops`",
            );
            self.conflict(
                "throughput_mbps",
                "applies only to a type change (`to`)",
                "remove `throughput_mbps`",
            );
        }
        let to = to.flatten();
        let mut numbers = |node: Option<&Node>,
                           field: &str,
                           allowed: &[(VolumeType, u32, u32)]|
         -> Option<Option<u32>> {
            let Some(n) = node else { return Some(None) };
            let v = self.l.uint(n, field, 0)?;
            let Some(t) = to else { return Some(Some(v)) };
            match allowed.iter().find(|(vt, _, _)| *vt == t) {
                None => {
                    let list: Vec<&str> = allowed.iter().map(|(vt, _, _)| vt.as_str()).collect();
                    self.l
                        .error(
                            "plan::field-conflict",
                            span(n.pos),
                            format!("`{field}` cannot be set for {} volumes", t.as_str()),
                            "not for this type",
                        )
                        .help = Some(format!(
                        "`{field}` applies to {} volumes; remove it",
                        list.join(", ")
                    ));
                    None
                }
                Some((_, lo, hi)) if v < *lo || v > *hi => {
                    self.l
                        .error(
                            "plan::out-of-range",
                            span(n.pos),
                            format!(
                                "`{field}` for {} must be from {lo} to {hi}, found {v}",
                                t.as_str()
                            ),
                            "out of range",
                        )
                        .help = Some(format!("choose a value from {lo} to {hi}"));
                    None
                }
                Some(_) => Some(Some(v)),
            }
        };
        let iops = numbers(
            iops_node,
            "iops",
            &[
                (VolumeType::Gp3, 3000, 16000),
                (VolumeType::Io1, 100, 64000),
                (VolumeType::Io2, 100, 256000),
            ],
        );
        let throughput = numbers(tp_node, "throughput_mbps", &[(VolumeType::Gp3, 125, 1000)]);
        if let Some(None) = delete {
            return None;
        }
        if to_node.is_some() && to.is_none() {
            return None;
        }
        Some(Action::Storage(Storage {
            volume: volume?,
            to,
            iops: iops?,
            throughput_mbps: throughput?,
            delete: deleting,
            snapshot: snapshot?,
        }))
    }

    fn config(&mut self) -> Option<Action> {
        let fix = self
            .required("fix", "say which fix: `fix: disable-detailed-monitoring`, `release-address` or `delete-snapshot`")
            .and_then(|n| self.l.choice(n, "fix", &ConfigFix::ALL));
        let Some(fix) = fix else {
            // The target fields depend on the fix; without one they cannot be judged.
            self.f.get("instance");
            self.f.get("address");
            self.f.get("snapshot");
            return None;
        };
        let (instance, address, snapshot) = match fix {
            ConfigFix::DisableDetailedMonitoring => {
                (self.target("instance", IdKind::Instance), None, None)
            }
            ConfigFix::ReleaseAddress => (None, self.target("address", IdKind::Address), None),
            ConfigFix::DeleteSnapshot => (None, None, self.target("snapshot", IdKind::Snapshot)),
        };
        let fix_name = ConfigFix::ALL
            .iter()
            .find(|(_, f)| *f == fix)
            .map_or("", |(n, _)| n);
        for other in ["instance", "address", "snapshot"] {
            if other != fix.target_field() && self.f.has(other) {
                self.f.get(other);
                self.conflict(
                    other,
                    &format!("does not apply to `fix: {fix_name}`"),
                    &format!(
                        "`{fix_name}` takes `{}`; remove `{other}`",
                        fix.target_field()
                    ),
                );
            }
        }
        let target_ok = instance.is_some() || address.is_some() || snapshot.is_some();
        target_ok.then_some(Action::Config(Config {
            fix,
            instance,
            address,
            snapshot,
        }))
    }
}
