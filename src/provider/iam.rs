//! The IAM permissions a plan needs on AWS: to read what it names, to make
//! its changes, and to undo them. Derived from the plan file alone, so a
//! reviewer can grant them before anyone has credentials.

use crate::plan::{Action, Backup, ConfigFix, Plan};
use std::collections::BTreeSet;

/// (reading, changing) IAM actions for `plan`, each sorted.
pub fn actions(plan: &Plan) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let mut read: BTreeSet<&'static str> = BTreeSet::new();
    let mut change: BTreeSet<&'static str> = BTreeSet::new();
    for rec in &plan.recommendations {
        let (r, c) = rec_actions(&rec.action);
        read.extend(r);
        change.extend(c);
    }
    (read, change)
}

/// (reading, changing) IAM actions one recommendation needs, its undo included.
pub fn rec_actions(action: &Action) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let mut read: BTreeSet<&'static str> = BTreeSet::new();
    let mut change: BTreeSet<&'static str> = BTreeSet::new();
    let instances = [
        "ec2:DescribeInstances",
        "ec2:DescribeVolumes",
        "ec2:DescribeAddresses",
    ];
    {
        match action {
            Action::Terminate(t) => {
                read.extend(instances);
                change.insert("ec2:TerminateInstances");
                if t.backup == Backup::Image {
                    read.insert("ec2:DescribeImages");
                    // The undo relaunches from the image and takes back volumes and addresses.
                    change.extend([
                        "ec2:CreateImage",
                        "ec2:CreateTags",
                        "ec2:RunInstances",
                        "ec2:StopInstances",
                        "ec2:AttachVolume",
                        "ec2:AssociateAddress",
                    ]);
                }
            }
            Action::Rightsize(_) => {
                read.extend(instances);
                change.extend([
                    "ec2:StopInstances",
                    "ec2:ModifyInstanceAttribute",
                    "ec2:StartInstances",
                ]);
            }
            Action::Hibernate(_) => {
                read.extend(instances);
                change.extend(["ec2:StopInstances", "ec2:StartInstances"]);
            }
            Action::Spot(_) => {
                read.extend(instances);
                read.insert("ec2:DescribeImages");
                change.extend([
                    "ec2:CreateImage",
                    "ec2:CreateTags",
                    "ec2:RunInstances",
                    "ec2:TerminateInstances",
                    "ec2:AttachVolume",
                    "ec2:DetachVolume",
                    "ec2:AssociateAddress",
                    "ec2:DisassociateAddress",
                ]);
            }
            Action::Reserve(_) => {
                read.extend([
                    "ec2:DescribeReservedInstancesOfferings",
                    "ec2:DescribeReservedInstances",
                ]);
                change.insert("ec2:PurchaseReservedInstancesOffering");
            }
            Action::Autoscale(_) => {
                read.insert("autoscaling:DescribeAutoScalingGroups");
                change.insert("autoscaling:UpdateAutoScalingGroup");
            }
            Action::Storage(s) => {
                read.insert("ec2:DescribeVolumes");
                if s.delete {
                    change.insert("ec2:DeleteVolume");
                    if s.snapshot {
                        read.insert("ec2:DescribeSnapshots");
                        change.extend(["ec2:CreateSnapshot", "ec2:CreateTags", "ec2:CreateVolume"]);
                    }
                } else {
                    change.insert("ec2:ModifyVolume");
                }
            }
            Action::Config(c) => match c.fix {
                ConfigFix::DisableDetailedMonitoring => {
                    read.extend(instances);
                    change.extend(["ec2:UnmonitorInstances", "ec2:MonitorInstances"]);
                }
                ConfigFix::ReleaseAddress => {
                    read.insert("ec2:DescribeAddresses");
                    change.insert("ec2:ReleaseAddress");
                }
                ConfigFix::DeleteSnapshot => {
                    read.extend(["ec2:DescribeSnapshots", "ec2:DescribeImages"]);
                    change.insert("ec2:DeleteSnapshot");
                }
            },
        }
    }
    (read, change)
}

/// The policy document, as pretty JSON; with `state`, the S3 actions the
/// team state needs, on its bucket and prefix only.
pub fn policy(plan: &Plan, state: Option<&crate::config::S3State>) -> String {
    let (read, change) = actions(plan);
    let mut statements = Vec::new();
    if let Some(s) = state {
        let mut list = serde_json::json!({
            "Sid": "PareStateList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:aws:s3:::{}", s.bucket),
        });
        if !s.prefix.is_empty() {
            list["Condition"] =
                serde_json::json!({ "StringLike": { "s3:prefix": [format!("{}*", s.prefix)] } });
        }
        statements.push(list);
        statements.push(serde_json::json!({
            "Sid": "PareStateObjects",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": format!("arn:aws:s3:::{}/{}*", s.bucket, s.prefix),
        }));
    }
    if !read.is_empty() {
        statements.push(serde_json::json!({ "Sid": "PareRead", "Effect": "Allow", "Action": read, "Resource": "*" }));
    }
    if !change.is_empty() {
        statements.push(serde_json::json!({ "Sid": "PareChangeAndUndo", "Effect": "Allow", "Action": change, "Resource": "*" }));
    }
    let doc = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
    serde_json::to_string_pretty(&doc).expect("a policy serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan(recs: &str) -> Plan {
        let text = format!(
            "version: 1\nprovider: {{ aws: {{ region: us-east-1 }} }}\nrecommendations:\n{recs}"
        );
        crate::plan::load_str(Path::new("p.yaml"), "p.yaml", text)
            .unwrap()
            .plan
    }

    #[test]
    fn team_state_adds_s3_on_its_bucket_and_prefix_only() {
        let p = plan("  - { id: a, action: hibernate, instance: i-0a1b2c3d }\n");
        let alone: serde_json::Value = serde_json::from_str(&policy(&p, None)).unwrap();
        assert!(!alone.to_string().contains("s3:"));
        let state = crate::config::S3State::new("acme-state", "prod/").unwrap();
        let doc: serde_json::Value = serde_json::from_str(&policy(&p, Some(&state))).unwrap();
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st[0]["Resource"], "arn:aws:s3:::acme-state");
        assert_eq!(st[0]["Condition"]["StringLike"]["s3:prefix"][0], "prod/*");
        assert_eq!(st[1]["Resource"], "arn:aws:s3:::acme-state/prod/*");
        assert!(!doc.to_string().contains("\"s3:*\""));
    }

    #[test]
    fn rightsize_needs_exactly_stop_modify_start() {
        let (read, change) = actions(&plan(
            "  - { id: a, action: rightsize, instance: i-0a1b2c3d, to: m5.large }\n",
        ));
        assert_eq!(
            change.into_iter().collect::<Vec<_>>(),
            [
                "ec2:ModifyInstanceAttribute",
                "ec2:StartInstances",
                "ec2:StopInstances"
            ]
        );
        assert!(read.contains("ec2:DescribeInstances"));
    }

    #[test]
    fn the_undo_is_included_and_options_matter() {
        let (_, with_image) = actions(&plan(
            "  - { id: a, action: terminate, instance: i-0a1b2c3d }\n",
        ));
        assert!(
            with_image.contains("ec2:RunInstances"),
            "the undo relaunches"
        );
        let (_, none) = actions(&plan(
            "  - { id: a, action: terminate, instance: i-0a1b2c3d, backup: none }\n",
        ));
        assert_eq!(
            none.into_iter().collect::<Vec<_>>(),
            ["ec2:TerminateInstances"]
        );
        let (_, retype) = actions(&plan(
            "  - { id: a, action: storage, volume: vol-0a1b2c3d, to: gp3 }\n",
        ));
        assert_eq!(retype.into_iter().collect::<Vec<_>>(), ["ec2:ModifyVolume"]);
    }
}
