//! Cost Optimization Hub: `list-recommendations` items, completed by
//! `get-recommendation` outputs where given (the reservation to buy, the
//! volume's new IOPS and throughput are only there).

use super::*;
use serde_json::Value;

const EXPECTED: &str = "the output of `aws cost-optimization-hub list-recommendations --output json` (an object with `items`) or of `get-recommendation` (an object with `recommendationId`)";

pub(super) fn parse(docs: Vec<(String, Value)>, choices: &Choices) -> Result<Parsed, InputError> {
    let mut items: BTreeMap<String, Value> = BTreeMap::new();
    let mut details: BTreeMap<String, Value> = BTreeMap::new();
    for (file, mut doc) in docs {
        let wrong = |what: String| InputError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: what,
            help: format!("give {EXPECTED}"),
        };
        if let Some(list) = doc.get_mut("items").map(Value::take) {
            let Value::Array(list) = list else {
                return Err(wrong("`items` is not a list".into()));
            };
            for item in list {
                let Some(id) = text(&item, &["recommendationId"]) else {
                    return Err(wrong("an item of `items` has no `recommendationId`".into()));
                };
                // The same recommendation twice must say the same thing: which
                // one to believe is not for pare to guess.
                if items.get(&id).is_some_and(|old| *old != item) {
                    return Err(wrong(format!(
                        "recommendation {} is given twice, differently",
                        clip(&id)
                    )));
                }
                items.insert(id, item);
            }
        } else if let Some(id) = text(&doc, &["recommendationId"]) {
            details.insert(id, doc);
        } else {
            return Err(wrong(format!(
                "{} is not Cost Optimization Hub's output{}",
                crate::vocabulary::words::clean(&file),
                if doc.get("instanceRecommendations").is_some()
                    || doc.get("volumeRecommendations").is_some()
                    || doc.get("idleRecommendations").is_some()
                {
                    " (it is Compute Optimizer's: use `pare import compute-optimizer`)"
                } else {
                    ""
                }
            )));
        }
    }
    // A get-recommendation output alone stands for its item too.
    for (id, d) in &details {
        items.entry(id.clone()).or_insert_with(|| d.clone());
    }
    let mut out = Parsed::default();
    for (id, item) in &items {
        match one(id, item, details.get(id), choices) {
            Ok(r) => out.imported.push(r),
            Err(s) => out.skipped.push(s),
        }
    }
    Ok(out)
}

fn one(
    id: &str,
    item: &Value,
    detail: Option<&Value>,
    choices: &Choices,
) -> Result<Imported, Skipped> {
    let kind = text(item, &["currentResourceType"]).unwrap_or_else(|| "Unknown".into());
    let action = text(item, &["actionType"]).unwrap_or_else(|| "Unknown".into());
    let resource = text(item, &["resourceId"]).unwrap_or_default();
    let skip = |why: &str| {
        let k = if action.starts_with("Purchase") && kind != "Ec2ReservedInstances" {
            action.clone()
        } else {
            kind.clone()
        };
        skipped(&k, &resource, why)
    };
    let arn = text(item, &["resourceArn"]).and_then(|a| arn_parts(&a));
    if let Some((_, arn_account, arn_resource)) = &arn
        && (arn_resource != &resource
            || text(item, &["accountId"]).is_some_and(|a| &a != arn_account))
    {
        return Err(skip(
            "its resourceId or accountId and its resourceArn name different resources",
        ));
    }
    let account = text(item, &["accountId"])
        .or_else(|| arn.as_ref().map(|a| a.1.clone()))
        .unwrap_or_default();
    let current =
        |path: &[&str]| detail.and_then(|d| text(d, &[&["currentResourceDetails"], path].concat()));
    let recommended = |path: &[&str]| {
        detail.and_then(|d| text(d, &[&["recommendedResourceDetails"], path].concat()))
    };
    let mut region = text(item, &["region"])
        .or_else(|| arn.as_ref().map(|a| a.0.clone()))
        .unwrap_or_default();
    let mut assumed = BTreeMap::new();
    let act = match (kind.as_str(), action.as_str()) {
        ("Ec2Instance", "Rightsize") => {
            let instance =
                instance_id(&resource).ok_or_else(|| skip("not an instance id pare can act on"))?;
            let from = current(&["ec2Instance", "configuration", "instance", "type"])
                .or_else(|| text(item, &["currentResourceSummary"]));
            let to = recommended(&["ec2Instance", "configuration", "instance", "type"])
                .or_else(|| text(item, &["recommendedResourceSummary"]))
                .and_then(|t| instance_type(&t))
                .ok_or_else(|| skip("the recommended instance type is not given"))?;
            if let Some(from) = &from {
                if arm(from) != arm(&to) {
                    return Err(skip(&format!(
                        "{from} → {to} changes the CPU architecture: it needs a new image"
                    )));
                }
                assumed.insert("type".to_string(), Value::from(from.clone()));
            }
            Act::Rightsize { instance, to }
        }
        ("Ec2Instance", "MigrateToGraviton") => {
            return Err(skip(
                "moving to Graviton changes the CPU architecture: it needs a new image",
            ));
        }
        ("Ec2Instance", "Stop") => {
            let instance =
                instance_id(&resource).ok_or_else(|| skip("not an instance id pare can act on"))?;
            if choices.terminate_idle {
                Act::Terminate { instance }
            } else {
                Act::Stop { instance }
            }
        }
        ("Ec2Instance", "Delete") => {
            let instance =
                instance_id(&resource).ok_or_else(|| skip("not an instance id pare can act on"))?;
            Act::Terminate { instance }
        }
        ("EbsVolume", "Upgrade" | "Rightsize") => {
            let volume =
                volume_id(&resource).ok_or_else(|| skip("not a volume id pare can act on"))?;
            let Some(detail) = detail else {
                return Err(skip(
                    "its new type, IOPS and throughput are only in `get-recommendation`'s output: give that too",
                ));
            };
            let cfg = |side: &str, path: &[&str]| {
                text(
                    detail,
                    &[&[side, "ebsVolume", "configuration"], path].concat(),
                )
            };
            let to = cfg("recommendedResourceDetails", &["storage", "type"])
                .ok_or_else(|| skip("the recommended volume type is not given"))?;
            let to_size = cfg("recommendedResourceDetails", &["storage", "sizeInGb"]);
            let from_size = cfg("currentResourceDetails", &["storage", "sizeInGb"]);
            if to_size.is_some() && from_size.is_some() && to_size != from_size {
                return Err(skip("it changes the volume's size, which pare does not do"));
            }
            volume_type(&to).map_err(|why| skip(&why))?;
            if let Some(t) = cfg("currentResourceDetails", &["storage", "type"]) {
                assumed.insert("type".to_string(), Value::from(t));
            }
            if let Some(s) = from_size.and_then(|s| s.parse::<u64>().ok()) {
                assumed.insert("size_gb".to_string(), Value::from(s));
            }
            let num = |path: &[&str]| {
                number(
                    detail,
                    &[
                        &["recommendedResourceDetails", "ebsVolume", "configuration"],
                        path,
                    ]
                    .concat(),
                )
                .filter(|x| *x >= 1.0 && *x <= 1.0e6)
                .map(|x| x as u32)
            };
            let provisioned = matches!(to.as_str(), "gp3" | "io1" | "io2");
            Act::Retype {
                volume,
                iops: num(&["performance", "iops"]).filter(|_| provisioned),
                throughput: num(&["performance", "throughput"]).filter(|_| to == "gp3"),
                to,
            }
        }
        ("EbsVolume", "Delete") => {
            let volume =
                volume_id(&resource).ok_or_else(|| skip("not a volume id pare can act on"))?;
            Act::DeleteVolume { volume }
        }
        ("Ec2ReservedInstances", "PurchaseReservedInstances") => {
            let Some(detail) = detail else {
                return Err(skip(
                    "what to buy (type, count, term, payment) is only in `get-recommendation`'s output: give that too",
                ));
            };
            let cfg = |k: &str| {
                text(
                    detail,
                    &[
                        "recommendedResourceDetails",
                        "ec2ReservedInstances",
                        "configuration",
                        k,
                    ],
                )
            };
            let instance_type = cfg("instanceType")
                .and_then(|t| instance_type(&t))
                .ok_or_else(|| skip("the instance type to reserve is not given"))?;
            let count = cfg("numberOfInstancesToPurchase")
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|n| *n >= 1.0 && *n <= 10_000.0 && n.fract() == 0.0)
                .ok_or_else(|| skip("how many to buy is not a whole number from 1 to 10,000"))?
                as u32;
            let term = match cfg("term").map(|t| t.to_ascii_lowercase().replace([' ', '_'], "")) {
                Some(t) if matches!(t.as_str(), "1" | "1year" | "oneyear" | "p1y" | "1yr") => "1y",
                Some(t) if matches!(t.as_str(), "3" | "3years" | "threeyears" | "p3y" | "3yr") => {
                    "3y"
                }
                _ => return Err(skip("its term is not one or three years")),
            };
            let payment = match cfg("paymentOption")
                .map(|t| t.to_ascii_lowercase().replace([' ', '_', '-'], ""))
            {
                Some(t) if t == "noupfront" => "no-upfront",
                Some(t) if t == "partialupfront" => "partial-upfront",
                Some(t) if t == "allupfront" => "all-upfront",
                _ => return Err(skip("its payment option is not No, Partial or All Upfront")),
            };
            let class = match cfg("offeringClass").map(|c| c.to_ascii_lowercase()) {
                Some(c) if c == "convertible" => "convertible",
                _ => "standard",
            };
            if let Some(r) =
                cfg("reservedInstancesRegion").filter(|r| crate::plan::ids::is_region(r))
            {
                region = r;
            }
            Act::Reserve {
                instance_type,
                count,
                term,
                payment,
                class,
            }
        }
        ("Ec2AutoScalingGroup", _) => {
            return Err(skip(
                "it changes the group's instance type, which pare does not do (autoscale changes min, max and desired)",
            ));
        }
        _ => return Err(skip("pare has no action for it")),
    };
    if !crate::plan::ids::is_region(&region) {
        return Err(skip("its region is not given"));
    }
    let tags = tags(item);
    let effort = super::co::effort_of(item, "implementationEffort").map_err(|why| skip(&why))?;
    let restart_needed = flag(item, &["restartNeeded"]);
    let rollback_possible = flag(item, &["rollbackPossible"]);
    let from = text(item, &["currentResourceSummary"]);
    let to = text(item, &["recommendedResourceSummary"]);
    let reason = words(&[
        Some(format!(
            "Cost Optimization Hub: {action}{}",
            match (&from, &to) {
                (Some(f), Some(t)) if f != t => format!(" {f} → {t}"),
                _ => String::new(),
            }
        )),
        text(item, &["source"]).map(|s| format!("from {s}")),
        lookback(item, "recommendationLookbackPeriodInDays"),
        effort.map(|e| format!("effort {}", e.as_str())),
        restart_needed.map(|r| {
            if r {
                "restart needed".into()
            } else {
                "no restart".into()
            }
        }),
        rollback_possible.map(|r| {
            if r {
                "rollback possible".into()
            } else {
                "no rollback".into()
            }
        }),
    ]);
    Ok(Imported {
        account,
        region,
        act,
        name: tags
            .iter()
            .find(|(k, _)| k == "Name")
            .map(|(_, v)| v.clone()),
        tags,
        // Not given: NaN, which the checks after parsing turn into a skip.
        savings: number(item, &["estimatedMonthlySavings"]).unwrap_or(f64::NAN),
        reason,
        source: Source {
            service: Service::CostOptimizationHub.name().into(),
            recommendation_id: id.to_string(),
            refreshed_at: timestamp(item, &["lastRefreshTimestamp"]),
            assumed,
        },
        effort,
        performance_risk: None,
        restart_needed,
        rollback_possible,
    })
}

/// Whether an instance type runs on Arm (Graviton): `a1`, or a `g` among
/// the letters after the generation (`m6g`, `c7gn`, `t4g`, `r8gd`).
pub(super) fn arm(instance_type: &str) -> bool {
    let family = instance_type.split('.').next().unwrap_or("");
    if family == "a1" {
        return true;
    }
    let after = family.trim_start_matches(|c: char| c.is_ascii_lowercase());
    let letters = after.trim_start_matches(|c: char| c.is_ascii_digit());
    !after.is_empty() && letters.contains('g')
}
