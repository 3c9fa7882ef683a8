//! Compute Optimizer: EC2 instance, EBS volume, Auto Scaling group and
//! idle-resource recommendations, as the AWS CLI prints them.

use super::*;
use serde_json::Value;

const EXPECTED: &str = "the output of `aws compute-optimizer get-ec2-instance-recommendations`, `get-ebs-volume-recommendations`, `get-auto-scaling-group-recommendations` or `get-idle-recommendations` (`--output json`), or the CSV file of `export-ec2-instance-recommendations`";

pub(super) fn parse(docs: &[(String, Value)], choices: &Choices) -> Result<Parsed, InputError> {
    let mut out = Parsed::default();
    for (file, doc) in docs {
        let list = |key: &str| doc.get(key).and_then(Value::as_array);
        let mut known = false;
        if let Some(items) = list("instanceRecommendations") {
            known = true;
            for item in items {
                push(&mut out, instance(item, choices));
            }
        }
        if let Some(items) = list("volumeRecommendations") {
            known = true;
            for item in items {
                push(&mut out, volume(item, choices));
            }
        }
        if let Some(items) = list("autoScalingGroupRecommendations") {
            known = true;
            for item in items {
                push(&mut out, group(item, choices));
            }
        }
        if let Some(items) = list("idleRecommendations") {
            known = true;
            for item in items {
                push(&mut out, idle(item, choices));
            }
        }
        if !known {
            return Err(InputError {
                file: file.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "{} is not Compute Optimizer's output{}",
                    crate::vocabulary::words::clean(file),
                    if doc.get("items").is_some() || doc.get("recommendationId").is_some() {
                        " (it is Cost Optimization Hub's: use `pare import cost-optimization-hub`)"
                    } else {
                        ""
                    }
                ),
                help: format!("give {EXPECTED}"),
            });
        }
    }
    Ok(out)
}

pub(super) fn push(out: &mut Parsed, r: Result<Imported, Skipped>) {
    match r {
        Ok(i) => out.imported.push(i),
        Err(s) => out.skipped.push(s),
    }
}

/// The option to follow: rank 1, or with `--option lowest-risk` the lowest
/// performance risk (then rank).
fn choose<'a>(options: Option<&'a Vec<Value>>, choices: &Choices) -> Option<&'a Value> {
    let options = options?;
    let rank = |o: &Value| number(o, &["rank"]).unwrap_or(f64::MAX);
    let risk = |o: &Value| risk_of(o).ok().flatten().unwrap_or(f64::MAX);
    if choices.lowest_risk {
        options.iter().min_by(|a, b| {
            risk(a)
                .total_cmp(&risk(b))
                .then(rank(a).total_cmp(&rank(b)))
        })
    } else {
        options.iter().min_by(|a, b| rank(a).total_cmp(&rank(b)))
    }
}

/// Monthly savings of an option or a recommendation: after discounts where
/// the service gives them. Savings in another currency than the plan's
/// (USD) are refused with that currency: they would read as dollars.
fn savings(v: &Value) -> Result<f64, String> {
    let after = [
        "savingsOpportunityAfterDiscounts",
        "estimatedMonthlySavings",
    ];
    let before = ["savingsOpportunity", "estimatedMonthlySavings"];
    let base = if number(v, &[after[0], after[1], "value"]).is_some() {
        after
    } else {
        before
    };
    if let Some(c) = text(v, &[base[0], base[1], "currency"])
        && !c.eq_ignore_ascii_case("USD")
    {
        return Err(format!(
            "its savings are in {}, and a plan's are in USD",
            clip(&c)
        ));
    }
    // Not given: NaN, which the checks after parsing turn into a skip.
    Ok(number(v, &[base[0], base[1], "value"]).unwrap_or(f64::NAN))
}

/// The utilisation the service measured: "CPU max 11%, memory max 38%".
fn utilisation(item: &Value) -> Option<String> {
    let metrics = item.get("utilizationMetrics")?.as_array()?;
    let parts: Vec<String> = metrics
        .iter()
        .filter_map(|m| {
            let name = text(m, &["name"])?;
            let value = number(m, &["value"])?;
            let stat = text(m, &["statistic"])
                .unwrap_or_default()
                .to_ascii_lowercase();
            let unit = if name.contains("CPU") || name.contains("MEMORY") || name.contains("Memory")
            {
                "%"
            } else {
                ""
            };
            Some(format!(
                "{} {} {:.0}{unit}",
                name.to_ascii_lowercase().replace('_', " "),
                if stat == "maximum" {
                    "max"
                } else {
                    stat.as_str()
                },
                value
            ))
        })
        .take(4)
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

struct Common {
    account: String,
    arn_account: Option<String>,
    region: String,
    resource: String,
    tags: Vec<(String, String)>,
    refreshed_at: Option<String>,
}

fn common(item: &Value, arn_key: &str) -> Common {
    let arn = text(item, &[arn_key]).and_then(|a| arn_parts(&a));
    Common {
        account: text(item, &["accountId"])
            .or_else(|| arn.as_ref().map(|a| a.1.clone()))
            .unwrap_or_default(),
        arn_account: arn.as_ref().map(|a| a.1.clone()),
        region: arn.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
        resource: text(item, &["resourceId"])
            .or_else(|| arn.as_ref().map(|a| a.2.clone()))
            .unwrap_or_default(),
        tags: tags(item),
        refreshed_at: timestamp(item, &["lastRefreshTimestamp"]),
    }
}

#[allow(clippy::too_many_arguments)]
fn imported(
    c: Common,
    act: Act,
    savings: f64,
    reason: String,
    id: String,
    assumed: BTreeMap<String, Value>,
    effort: Option<Effort>,
    performance_risk: Option<f64>,
) -> Result<Imported, Skipped> {
    if !crate::plan::ids::is_region(&c.region) {
        return Err(skipped(
            "Unknown",
            &c.resource,
            "its region is not in its ARN",
        ));
    }
    if c.arn_account.as_ref().is_some_and(|a| a != &c.account) {
        return Err(skipped(
            "Unknown",
            &c.resource,
            "its accountId and its ARN name different accounts",
        ));
    }
    Ok(Imported {
        account: c.account,
        region: c.region,
        act,
        name: c
            .tags
            .iter()
            .find(|(k, _)| k == "Name")
            .map(|(_, v)| v.clone()),
        tags: c.tags,
        savings,
        reason,
        source: Source {
            service: Service::ComputeOptimizer.name().into(),
            recommendation_id: id,
            refreshed_at: c.refreshed_at,
            assumed,
        },
        effort,
        performance_risk,
        restart_needed: None,
        rollback_possible: None,
    })
}

/// An option's performance risk: 0 to 4 when given; another value is not a
/// risk pare can filter or explain, so the recommendation is skipped.
fn risk_of(option: &Value) -> Result<Option<f64>, String> {
    match option.get("performanceRisk") {
        None | Some(Value::Null) => Ok(None),
        Some(_) => match number(option, &["performanceRisk"]) {
            Some(r) if (0.0..=4.0).contains(&r) => Ok(Some(r)),
            _ => Err(format!(
                "its performance risk `{}` is not a number from 0 to 4",
                clip(&option["performanceRisk"].to_string())
            )),
        },
    }
}

/// A migration effort, when given, is one of the five the services use.
pub(super) fn effort_of(v: &Value, key: &str) -> Result<Option<Effort>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_str().and_then(Effort::parse).map(Some).ok_or_else(|| {
            format!(
                "its effort `{}` is not VeryLow, Low, Medium, High or VeryHigh",
                clip(&x.to_string())
            )
        }),
    }
}

/// The resource's ARN names the service and the kind the recommendation
/// says (an RDS ARN ending in an instance id is not that instance), in the
/// partition of its region.
fn arn_kind(item: &Value, key: &str, service: &str, kind: &str) -> Result<(), String> {
    let Some(arn) = text(item, &[key]) else {
        return Ok(());
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let partition = |region: &str| {
        if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    };
    let ok = parts.len() == 6
        && parts[1] == partition(parts[3])
        && parts[2] == service
        && (kind.is_empty()
            || parts[5]
                .strip_prefix(kind)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|id| !id.is_empty() && !id.contains(['/', ':'])));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "its ARN `{}` is not {} {}'s in its region's partition",
            clip(&arn),
            if service == "ec2" {
                "an EC2"
            } else {
                "an Auto Scaling"
            },
            if kind.is_empty() { "group" } else { kind }
        ))
    }
}

fn risk_words(r: Option<f64>) -> Option<String> {
    r.map(|r| {
        let w = match r {
            x if x < 1.0 => "very low",
            x if x < 2.0 => "low",
            x if x < 3.0 => "medium",
            x if x < 4.0 => "high",
            _ => "very high",
        };
        format!("performance risk {w} ({r:.1})")
    })
}

pub(super) fn instance(item: &Value, choices: &Choices) -> Result<Imported, Skipped> {
    let c = common(item, "instanceArn");
    let finding = text(item, &["finding"]).unwrap_or_default();
    let skip = |why: &str| skipped("Ec2Instance", &c.resource, why);
    if let Some(e) = text(item, &["exportError"]) {
        return Err(skip(&format!(
            "Compute Optimizer made no recommendation for it ({})",
            clip(&e)
        )));
    }
    let Some(instance) = instance_id(&c.resource) else {
        return Err(skip("not an instance id pare can act on"));
    };
    arn_kind(item, "instanceArn", "ec2", "instance").map_err(|why| skip(&why))?;
    if !finding.eq_ignore_ascii_case("Overprovisioned") {
        return Err(skip(&format!("finding {finding}: nothing to save")));
    }
    let option = choose(
        item.get("recommendationOptions").and_then(Value::as_array),
        choices,
    )
    .ok_or_else(|| skip("no recommendation option"))?;
    let to = text(option, &["instanceType"])
        .and_then(|t| instance_type(&t))
        .ok_or_else(|| skip("the recommended instance type is not given"))?;
    let from = text(item, &["currentInstanceType"]);
    if let Some(f) = &from
        && instance_type(f).is_none()
    {
        return Err(skip(&format!(
            "its current type `{}` is not an instance type",
            clip(f)
        )));
    }
    if let Some(unknown) = option
        .get("platformDifferences")
        .and_then(Value::as_array)
        .and_then(|d| {
            d.iter().find(|x| {
                !matches!(
                    x.as_str(),
                    Some(
                        "Architecture"
                            | "Hypervisor"
                            | "NetworkInterface"
                            | "StorageInterface"
                            | "InstanceStoreAvailability"
                            | "VirtualizationType"
                    )
                )
            })
        })
    {
        return Err(skip(&format!(
            "its platform difference `{}` is not one pare knows: review it by hand",
            clip(&unknown.to_string())
        )));
    }
    let arch = option
        .get("platformDifferences")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("Architecture")));
    if arch
        || from
            .as_deref()
            .is_some_and(|f| super::coh::arm(f) != super::coh::arm(&to))
    {
        return Err(skip(&format!(
            "{} → {to} changes the CPU architecture: it needs a new image",
            from.as_deref().unwrap_or("?")
        )));
    }
    if from.as_deref() == Some(to.as_str()) {
        return Err(skip("the recommended type is the current one"));
    }
    let mut assumed = BTreeMap::new();
    if let Some(f) = &from {
        assumed.insert("type".to_string(), Value::from(f.clone()));
    }
    let risk = risk_of(option).map_err(|why| skip(&why))?;
    let effort = effort_of(option, "migrationEffort").map_err(|why| skip(&why))?;
    let reason = words(&[
        Some(format!(
            "Compute Optimizer: overprovisioned, {} → {to}",
            from.as_deref().unwrap_or("?")
        )),
        utilisation(item),
        lookback(item, "lookBackPeriodInDays"),
        risk_words(risk),
        effort.map(|e| format!("effort {}", e.as_str())),
        Some("restart needed".into()),
    ]);
    let id = text(item, &["instanceArn"]).unwrap_or_else(|| instance.clone());
    let s = savings(option).map_err(|why| skip(&why))?;
    imported(
        c,
        Act::Rightsize { instance, to },
        s,
        reason,
        id,
        assumed,
        effort,
        risk,
    )
}

fn volume(item: &Value, choices: &Choices) -> Result<Imported, Skipped> {
    let c = common(item, "volumeArn");
    let finding = text(item, &["finding"]).unwrap_or_default();
    let skip = |why: &str| skipped("EbsVolume", &c.resource, why);
    let Some(volume) = volume_id(&c.resource) else {
        return Err(skip("not a volume id pare can act on"));
    };
    if !finding.eq_ignore_ascii_case("NotOptimized") {
        return Err(skip(&format!("finding {finding}: nothing to save")));
    }
    let option = choose(
        item.get("volumeRecommendationOptions")
            .and_then(Value::as_array),
        choices,
    )
    .ok_or_else(|| skip("no recommendation option"))?;
    let cur = |k: &str| text(item, &["currentConfiguration", k]);
    let new = |k: &str| text(option, &["configuration", k]);
    let to = new("volumeType").ok_or_else(|| skip("the recommended volume type is not given"))?;
    volume_type(&to).map_err(|why| skip(&why))?;
    if new("volumeSize").is_some()
        && cur("volumeSize").is_some()
        && new("volumeSize") != cur("volumeSize")
    {
        return Err(skip("it changes the volume's size, which pare does not do"));
    }
    let in_range = |k: &str, lo: f64, hi: f64| {
        number(option, &["configuration", k])
            .filter(|x| *x >= lo && *x <= hi)
            .map(|x| x as u32)
    };
    let (iops, throughput) = match to.as_str() {
        "gp3" => (
            in_range("volumeBaselineIOPS", 3000.0, 16000.0),
            in_range("volumeBaselineThroughput", 125.0, 1000.0),
        ),
        "io1" => (in_range("volumeBaselineIOPS", 100.0, 64000.0), None),
        "io2" => (in_range("volumeBaselineIOPS", 100.0, 256000.0), None),
        _ => (None, None),
    };
    let from = cur("volumeType");
    if from.as_deref() == Some(to.as_str()) && iops.is_none() && throughput.is_none() {
        return Err(skip("the recommended configuration is the current one"));
    }
    let mut assumed = BTreeMap::new();
    if let Some(f) = &from {
        assumed.insert("type".to_string(), Value::from(f.clone()));
    }
    if let Some(s) = number(item, &["currentConfiguration", "volumeSize"]) {
        assumed.insert("size_gb".to_string(), Value::from(s as u64));
    }
    let risk = risk_of(option).map_err(|why| skip(&why))?;
    let reason = words(&[
        Some(format!(
            "Compute Optimizer: not optimized, {} → {to}",
            from.as_deref().unwrap_or("?")
        )),
        lookback(item, "lookBackPeriodInDays"),
        risk_words(risk),
        Some("online, no restart".into()),
    ]);
    let id = text(item, &["volumeArn"]).unwrap_or_else(|| volume.clone());
    let s = savings(option).map_err(|why| skip(&why))?;
    imported(
        c,
        Act::Retype {
            volume,
            to,
            iops,
            throughput,
        },
        s,
        reason,
        id,
        assumed,
        None,
        risk,
    )
}

fn group(item: &Value, choices: &Choices) -> Result<Imported, Skipped> {
    let mut c = common(item, "autoScalingGroupArn");
    if let Some(name) = text(item, &["autoScalingGroupName"]) {
        c.resource = name;
    }
    let skip = |why: &str| skipped("Ec2AutoScalingGroup", &c.resource, why);
    if c.resource.is_empty() || c.resource.len() > 255 || c.resource.chars().any(char::is_control) {
        return Err(skip("not a group name pare can act on"));
    }
    let option = choose(
        item.get("recommendationOptions").and_then(Value::as_array),
        choices,
    )
    .ok_or_else(|| skip("no recommendation option"))?;
    let cur = |k: &str| number(item, &["currentConfiguration", k]);
    let new = |k: &str| number(option, &["configuration", k]);
    if text(option, &["configuration", "instanceType"]).is_some()
        && text(option, &["configuration", "instanceType"])
            != text(item, &["currentConfiguration", "instanceType"])
    {
        return Err(skip(
            "it changes the group's instance type, which pare does not do (autoscale changes min, max and desired)",
        ));
    }
    let changed = |k: &str| match (cur(k), new(k)) {
        (c, Some(n)) if c != Some(n) && (0.0..=10_000.0).contains(&n) && n.fract() == 0.0 => {
            Some(n as u32)
        }
        _ => None,
    };
    let (min, max, desired) = (
        changed("minSize"),
        changed("maxSize"),
        changed("desiredCapacity"),
    );
    if min.is_none() && max.is_none() && desired.is_none() {
        return Err(skip("it changes nothing pare can change"));
    }
    let mut assumed = BTreeMap::new();
    for (k, key) in [
        ("minSize", "min"),
        ("maxSize", "max"),
        ("desiredCapacity", "desired"),
    ] {
        if let Some(v) = cur(k).filter(|v| *v >= 0.0 && v.fract() == 0.0) {
            assumed.insert(key.to_string(), Value::from(v as u64));
        }
    }
    let risk = risk_of(option).map_err(|why| skip(&why))?;
    let effort = effort_of(option, "migrationEffort").map_err(|why| skip(&why))?;
    let reason = words(&[
        Some(format!(
            "Compute Optimizer: {}",
            text(item, &["finding"])
                .unwrap_or_else(|| "resize".into())
                .to_ascii_lowercase()
        )),
        utilisation(item),
        risk_words(risk),
        effort.map(|e| format!("effort {}", e.as_str())),
    ]);
    let id = text(item, &["autoScalingGroupArn"]).unwrap_or_else(|| c.resource.clone());
    let s = savings(option).map_err(|why| skip(&why))?;
    let group = c.resource.clone();
    imported(
        c,
        Act::Autoscale {
            group,
            min,
            max,
            desired,
        },
        s,
        reason,
        id,
        assumed,
        effort,
        risk,
    )
}

fn idle(item: &Value, choices: &Choices) -> Result<Imported, Skipped> {
    let c = common(item, "resourceArn");
    let kind = text(item, &["resourceType"]).unwrap_or_else(|| "Unknown".into());
    let skip = |why: &str| skipped(&kind, &c.resource, why);
    let act = match kind.as_str() {
        "EC2Instance" | "Ec2Instance" => {
            let instance = instance_id(&c.resource)
                .ok_or_else(|| skip("not an instance id pare can act on"))?;
            if choices.terminate_idle {
                Act::Terminate { instance }
            } else {
                Act::Stop { instance }
            }
        }
        "EBSVolume" | "EbsVolume" => {
            let volume =
                volume_id(&c.resource).ok_or_else(|| skip("not a volume id pare can act on"))?;
            Act::DeleteVolume { volume }
        }
        _ => return Err(skip("pare has no action for it")),
    };
    let reason = words(&[
        Some(format!(
            "Compute Optimizer: {}",
            text(item, &["finding"])
                .unwrap_or_else(|| "idle".into())
                .to_ascii_lowercase()
        )),
        text(item, &["findingDescription"]),
        utilisation(item),
        lookback(item, "lookBackPeriodInDays"),
    ]);
    let id = text(item, &["resourceArn"]).unwrap_or_else(|| c.resource.clone());
    let s = savings(item).map_err(|why| skip(&why))?;
    imported(c, act, s, reason, id, BTreeMap::new(), None, None)
}
