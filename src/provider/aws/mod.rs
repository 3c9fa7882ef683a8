//! The AWS provider: EC2 and Auto Scaling through the AWS SDK.
//!
//! No AWS type leaves this module: answers are turned into the provider
//! vocabulary here. Reads are batched: every resource a plan names is read
//! with id filters, 200 ids a call, following `NextToken`, so a missing id
//! is simply absent instead of failing the call. AWS rules the API does not
//! enforce everywhere (type changes only while stopped, ...) are enforced by
//! the planner's simulation before any call is made.

use super::model::*;
use super::{CloudError, Inventory, Provider, ProviderError};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types as ec2;

use std::time::Duration;

/// Ids per describe call (AWS allows up to 200 values per filter).
const CHUNK: usize = 200;

pub struct AwsProvider {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
    region: String,
    /// How long to wait for an image to become available.
    pub image_timeout: Duration,
    /// How long to wait for instances to stop or start.
    pub instance_timeout: Duration,
    /// How long to wait for a snapshot to complete.
    pub snapshot_timeout: Duration,
    /// How long to wait for a volume modification to take effect.
    pub volume_timeout: Duration,
    /// Ids per describe and per multi-instance call.
    pub batch_size: usize,
}

impl AwsProvider {
    /// Connects with the standard credential chain; `spec` overrides region,
    /// profile and endpoint (else `AWS_REGION`, `AWS_PROFILE`, `AWS_ENDPOINT_URL`).
    /// `attempts` is the one retry policy: the SDK's standard mode makes that
    /// many attempts in all, with backoff, and the engine adds none.
    pub fn connect(
        spec: &crate::plan::AwsProvider,
        attempts: u32,
    ) -> Result<AwsProvider, ProviderError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(attempts.max(1)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(r) = &spec.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(p) = &spec.profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &spec.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let config = rt.block_on(loader.load());
        Self::from_config(&config, spec)
    }

    /// The provider over an SDK configuration already loaded.
    pub fn from_config(
        config: &aws_config::SdkConfig,
        spec: &crate::plan::AwsProvider,
    ) -> Result<AwsProvider, ProviderError> {
        let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
            ProviderError::Transport(
                "no AWS region: set `region` in the plan's aws block, or AWS_REGION".into(),
            )
        })?;
        let ec2 = aws_sdk_ec2::config::Builder::from(config)
            .interceptor(RetryLog)
            .build();
        let asg = aws_sdk_autoscaling::config::Builder::from(config)
            .interceptor(RetryLog)
            .build();
        Ok(AwsProvider {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            asg: aws_sdk_autoscaling::Client::from_conf(asg),
            region,
            image_timeout: spec
                .image_timeout_s
                .map_or(Duration::from_secs(1800), |s| Duration::from_secs(s.into())),
            instance_timeout: spec
                .instance_timeout_s
                .map_or(Duration::from_secs(600), |s| Duration::from_secs(s.into())),
            snapshot_timeout: spec
                .snapshot_timeout_s
                .map_or(Duration::from_secs(3600), |s| Duration::from_secs(s.into())),
            volume_timeout: spec
                .volume_timeout_s
                .map_or(Duration::from_secs(600), |s| Duration::from_secs(s.into())),
            batch_size: spec.batch_size.map_or(1000, |n| n as usize),
        })
    }
}

/// Makes the SDK's own retries visible: every throttled or failed attempt
/// is logged with the API action, before the SDK backs off and retries.
#[derive(Debug)]
struct RetryLog;

impl aws_sdk_ec2::config::Intercept for RetryLog {
    fn name(&self) -> &'static str {
        "pare-retry-log"
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_ec2::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _: &aws_sdk_ec2::config::RuntimeComponents,
        cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        let Some(status) = context.response().map(|r| r.status().as_u16()) else {
            return Ok(());
        };
        if status == 429 || status >= 500 {
            let action = cfg
                .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
                .map_or("an AWS call", |m| m.name())
                .to_string();
            let what = if status == 503 || status == 429 {
                "throttled (RequestLimitExceeded)"
            } else {
                "failed on the server"
            };
            tracing::warn!("{action}: {what}, HTTP {status}; the SDK backs off and retries");
        }
        Ok(())
    }
}

/// Sends an SDK request; keeps only whether it succeeded, in the provider's terms.
macro_rules! sent {
    ($request:expr) => {
        $request.send().await.map(|_| ()).map_err(err)
    };
}

/// An SDK error in the provider's terms: the AWS code and message when the
/// service answered, a transport error otherwise. Throttling is retryable;
/// an answer without an AWS code (HTTP 500/501 from an endpoint that does
/// not implement the call) is not.
fn err<E, R>(e: aws_sdk_ec2::error::SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_ec2::error::SdkError;
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("").to_string();
            let message = se.err().message().unwrap_or("").to_string();
            if code.is_empty() {
                return ProviderError::Cloud {
                    error: CloudError::new(
                        "NotImplemented",
                        format!(
                            "the endpoint answered with an error and no AWS error code ({:?})",
                            se.raw()
                        ),
                    ),
                    retryable: false,
                };
            }
            let retryable = matches!(
                code.as_str(),
                "RequestLimitExceeded" | "Throttling" | "ThrottlingException"
            );
            ProviderError::Cloud {
                error: CloudError::new(&code, message),
                retryable,
            }
        }
        _ => ProviderError::Transport(aws_sdk_ec2::error::DisplayErrorContext(&e).to_string()),
    }
}

fn filter(name: &str, values: &[String]) -> ec2::Filter {
    ec2::Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

fn tags(t: &[ec2::Tag]) -> Tags {
    t.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn tag_spec(kind: ec2::ResourceType, t: &Tags) -> Option<ec2::TagSpecification> {
    (!t.is_empty()).then(|| {
        ec2::TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(
                t.iter()
                    .map(|(k, v)| ec2::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    })
}

/// An EC2 image in the provider's terms, with the snapshots that back it.
fn image(img: &ec2::Image) -> Option<Image> {
    Some(Image {
        id: img.image_id()?.to_string(),
        source_instance: None,
        state: img
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        snapshots: img
            .block_device_mappings()
            .iter()
            .filter_map(|b| b.ebs()?.snapshot_id().map(str::to_string))
            .collect(),
        tags: tags(img.tags()),
    })
}

fn id(r: &Ref) -> Result<String, ProviderError> {
    r.known()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Transport(format!("unresolved reference {r}")))
}

fn instance_state(s: Option<&ec2::InstanceState>) -> InstanceState {
    match s.and_then(|s| s.name()).map(|n| n.as_str()) {
        Some("pending") => InstanceState::Pending,
        Some("running") => InstanceState::Running,
        Some("stopping") => InstanceState::Stopping,
        Some("stopped") => InstanceState::Stopped,
        Some("shutting-down") => InstanceState::ShuttingDown,
        _ => InstanceState::Terminated,
    }
}

/// The instance ids an `InvalidInstanceID.NotFound` message names
/// ("The instance IDs 'i-1, i-2' do not exist").
fn named_instance_ids(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|t| t.starts_with("i-") && t.len() > 2)
        .map(str::to_string)
        .collect()
}

impl AwsProvider {
    /// The reservations holding `ids`, following `NextToken`. Instance ids go
    /// in the `InstanceIds` parameter (no 200-value filter limit); ids that
    /// do not exist fail the call, so they are taken out and the call repeated,
    /// and a missing instance is simply absent from the answer.
    async fn reservations(&self, ids: &[String]) -> Result<Vec<ec2::Reservation>, ProviderError> {
        let mut ids = ids.to_vec();
        let mut out = Vec::new();
        while !ids.is_empty() {
            let mut pages = self
                .ec2
                .describe_instances()
                .set_instance_ids(Some(ids.clone()))
                .into_paginator()
                .send();
            let mut missing = Vec::new();
            let mut got = Vec::new();
            while let Some(page) = pages.next().await {
                match page.map_err(err) {
                    Ok(p) => got.extend(p.reservations().iter().cloned()),
                    Err(ProviderError::Cloud { error, .. })
                        if error.code.starts_with("InvalidInstanceID") =>
                    {
                        missing = named_instance_ids(&error.message);
                        missing.retain(|m| ids.contains(m));
                        if missing.is_empty() {
                            // Cannot tell which: fall back to filters, which skip unknown ids.
                            return self.reservations_by_filter(&ids).await;
                        }
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if missing.is_empty() {
                out.extend(got);
                break;
            }
            ids.retain(|i| !missing.contains(i));
        }
        Ok(out)
    }

    async fn reservations_by_filter(
        &self,
        ids: &[String],
    ) -> Result<Vec<ec2::Reservation>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(CHUNK) {
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(filter("instance-id", chunk))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                out.extend(page.map_err(err)?.reservations().iter().cloned());
            }
        }
        Ok(out)
    }

    async fn instances(&self, ids: &[String], out: &mut Inventory) -> Result<(), ProviderError> {
        self.instances_noting(ids, out, &mut Default::default())
            .await
    }

    /// Reads instances, and notes the volumes their block device mappings
    /// delete on termination (root volumes, usually).
    async fn instances_noting(
        &self,
        ids: &[String],
        out: &mut Inventory,
        goes_with_instance: &mut std::collections::BTreeSet<String>,
    ) -> Result<(), ProviderError> {
        for chunk in ids.chunks(self.batch_size.max(1)) {
            let reservations = self.reservations(chunk).await?;
            {
                for r in &reservations {
                    for i in r.instances() {
                        let Some(iid) = i.instance_id() else { continue };
                        for b in i.block_device_mappings() {
                            if let Some(ebs) = b.ebs()
                                && ebs.delete_on_termination() == Some(true)
                                && let Some(v) = ebs.volume_id()
                            {
                                goes_with_instance.insert(v.to_string());
                            }
                        }
                        out.instances.insert(
                            iid.to_string(),
                            Instance {
                                id: iid.to_string(),
                                instance_type: i
                                    .instance_type()
                                    .map(|t| t.as_str().to_string())
                                    .unwrap_or_default(),
                                state: instance_state(i.state()),
                                zone: i
                                    .placement()
                                    .and_then(|p| p.availability_zone())
                                    .unwrap_or("")
                                    .to_string(),
                                image: i.image_id().map(str::to_string),
                                lifecycle: if i.instance_lifecycle().map(|l| l.as_str())
                                    == Some("spot")
                                {
                                    Lifecycle::Spot
                                } else {
                                    Lifecycle::OnDemand
                                },
                                hibernation: i
                                    .hibernation_options()
                                    .and_then(|h| h.configured())
                                    .unwrap_or(false),
                                monitoring: match i
                                    .monitoring()
                                    .and_then(|m| m.state())
                                    .map(|s| s.as_str())
                                {
                                    Some("enabled") | Some("pending") => Monitoring::Detailed,
                                    _ => Monitoring::Basic,
                                },
                                tags: tags(i.tags()),
                                stop_reason: None,
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn volumes(
        &self,
        name: &str,
        values: &[String],
        out: &mut Inventory,
    ) -> Result<(), ProviderError> {
        for chunk in values.chunks(CHUNK) {
            let mut pages = self
                .ec2
                .describe_volumes()
                .filters(filter(name, chunk))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for v in page.map_err(err)?.volumes() {
                    let Some(vid) = v.volume_id() else { continue };
                    let attachment = v
                        .attachments()
                        .iter()
                        .find(|a| a.state().map(|s| s.as_str()) != Some("detached"));
                    out.volumes.insert(
                        vid.to_string(),
                        Volume {
                            id: vid.to_string(),
                            volume_type: v
                                .volume_type()
                                .map(|t| t.as_str().to_string())
                                .unwrap_or_default(),
                            size_gb: v.size().unwrap_or(0).max(0) as u32,
                            iops: v.iops().map(|x| x.max(0) as u32),
                            throughput_mbps: v.throughput().map(|x| x.max(0) as u32),
                            zone: v.availability_zone().unwrap_or("").to_string(),
                            attached_to: attachment
                                .and_then(|a| a.instance_id())
                                .filter(|i| !i.is_empty())
                                .map(str::to_string),
                            delete_on_termination: attachment
                                .and_then(|a| a.delete_on_termination())
                                .unwrap_or(false),
                            tags: tags(v.tags()),
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn describe(&self, query: &Query) -> Result<Inventory, ProviderError> {
        let mut out = Inventory::new(&self.region);
        let ids = |f: fn(&ResourceId) -> Option<&String>| -> Vec<String> {
            query.resources.iter().filter_map(f).cloned().collect()
        };
        let instance_ids = ids(|r| match r {
            ResourceId::Instance(i) => Some(i),
            _ => None,
        });
        let mut goes_with_instance = std::collections::BTreeSet::new();
        self.instances_noting(&instance_ids, &mut out, &mut goes_with_instance)
            .await?;
        let volume_ids = ids(|r| match r {
            ResourceId::Volume(i) => Some(i),
            _ => None,
        });
        self.volumes("volume-id", &volume_ids, &mut out).await?;
        // When each named volume was last modified: the six-hour rule.
        let found: Vec<String> = volume_ids
            .iter()
            .filter(|v| out.volumes.contains_key(*v))
            .cloned()
            .collect();
        for chunk in found.chunks(CHUNK) {
            let mods = self
                .ec2
                .describe_volumes_modifications()
                .set_volume_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(err)?;
            for m in mods.volumes_modifications() {
                let (Some(v), Some(t)) = (m.volume_id(), m.start_time()) else {
                    continue;
                };
                if m.modification_state().map(|s| s.as_str()) == Some("failed") {
                    continue;
                }
                let at = crate::clock::rfc3339(
                    std::time::UNIX_EPOCH + Duration::from_secs(t.secs().max(0) as u64),
                );
                let latest = out.volume_modified_at.entry(v.to_string()).or_default();
                if at > *latest {
                    *latest = at;
                }
            }
        }
        // Volumes attached to named instances matter to terminate and spot.
        let live: Vec<String> = if query.attachments {
            out.instances.keys().cloned().collect()
        } else {
            Vec::new()
        };
        self.volumes("attachment.instance-id", &live, &mut out)
            .await?;
        for v in out.volumes.values_mut() {
            if goes_with_instance.contains(&v.id) {
                v.delete_on_termination = true;
            }
        }
        let snapshot_ids = ids(|r| match r {
            ResourceId::Snapshot(i) => Some(i),
            _ => None,
        });
        for chunk in snapshot_ids.chunks(CHUNK) {
            let page = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .filters(filter("snapshot-id", chunk))
                .send()
                .await
                .map_err(err)?;
            for s in page.snapshots() {
                let Some(sid) = s.snapshot_id() else { continue };
                out.snapshots.insert(
                    sid.to_string(),
                    Snapshot {
                        id: sid.to_string(),
                        volume: s.volume_id().map(str::to_string),
                        size_gb: s.volume_size().unwrap_or(0).max(0) as u32,
                        tags: tags(s.tags()),
                    },
                );
            }
            // Images a snapshot backs cannot lose it.
            // A pre-check only (AWS refuses to delete a snapshot an image uses):
            // an endpoint that does not implement this filter is tolerated.
            let images = match self
                .ec2
                .describe_images()
                .owners("self")
                .filters(filter("block-device-mapping.snapshot-id", chunk))
                .send()
                .await
                .map_err(err)
            {
                Ok(images) => images,
                Err(ProviderError::Cloud { error, .. }) if error.code == "NotImplemented" => {
                    tracing::warn!(
                        "the endpoint cannot list images by snapshot; relying on DeleteSnapshot's own check"
                    );
                    aws_sdk_ec2::operation::describe_images::DescribeImagesOutput::builder().build()
                }
                Err(e) => return Err(e),
            };
            for img in images.images().iter().filter_map(image) {
                out.images.insert(img.id.clone(), img);
            }
        }
        let address_ids = ids(|r| match r {
            ResourceId::Address(i) => Some(i),
            _ => None,
        });
        let mut address_filters = Vec::new();
        if !address_ids.is_empty() {
            address_filters.push(filter("allocation-id", &address_ids));
        }
        if !live.is_empty() {
            address_filters.push(filter("instance-id", &live));
        }
        for f in address_filters {
            let page = self
                .ec2
                .describe_addresses()
                .filters(f)
                .send()
                .await
                .map_err(err)?;
            for a in page.addresses() {
                let Some(aid) = a.allocation_id() else {
                    continue;
                };
                out.addresses.insert(
                    aid.to_string(),
                    Address {
                        allocation_id: aid.to_string(),
                        public_ip: a.public_ip().unwrap_or("").to_string(),
                        instance: a
                            .instance_id()
                            .filter(|i| !i.is_empty())
                            .map(str::to_string),
                        tags: tags(a.tags()),
                    },
                );
            }
        }
        let groups = ids(|r| match r {
            ResourceId::Group(i) => Some(i),
            _ => None,
        });
        for chunk in groups.chunks(50) {
            let page = self
                .asg
                .describe_auto_scaling_groups()
                .set_auto_scaling_group_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(err)?;
            for g in page.auto_scaling_groups() {
                let name = g.auto_scaling_group_name().unwrap_or("").to_string();
                out.auto_scaling_groups.insert(
                    name.clone(),
                    Group {
                        name,
                        min: g.min_size().unwrap_or(0).max(0) as u32,
                        max: g.max_size().unwrap_or(0).max(0) as u32,
                        desired: g.desired_capacity().unwrap_or(0).max(0) as u32,
                        instance_type: None,
                        tags: g
                            .tags()
                            .iter()
                            .filter_map(|t| {
                                Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                            })
                            .collect(),
                    },
                );
            }
        }
        if let Some((run, step)) = &query.created_by {
            let by_tag = vec![
                ec2::Filter::builder()
                    .name("tag:pare:run")
                    .values(run)
                    .build(),
                ec2::Filter::builder()
                    .name("tag:pare:step")
                    .values(step)
                    .build(),
            ];
            let imgs = self
                .ec2
                .describe_images()
                .owners("self")
                .set_filters(Some(by_tag.clone()))
                .send()
                .await
                .map_err(err)?;
            for img in imgs.images().iter().filter_map(image) {
                out.images.insert(img.id.clone(), img);
            }
            let snaps = self
                .ec2
                .describe_snapshots()
                .owner_ids("self")
                .set_filters(Some(by_tag.clone()))
                .send()
                .await
                .map_err(err)?;
            for s in snaps.snapshots() {
                if let Some(sid) = s.snapshot_id() {
                    out.snapshots.insert(
                        sid.to_string(),
                        Snapshot {
                            id: sid.to_string(),
                            volume: s.volume_id().map(str::to_string),
                            size_gb: 0,
                            tags: tags(s.tags()),
                        },
                    );
                }
            }
            let mut pages = self
                .ec2
                .describe_instances()
                .set_filters(Some(by_tag))
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                for r in page.map_err(err)?.reservations() {
                    found.extend(
                        r.instances()
                            .iter()
                            .filter_map(|i| i.instance_id().map(str::to_string)),
                    );
                }
            }
            self.instances(&found, &mut out).await?;
        }
        self.reservations_and_offerings(&query.offerings, &mut out)
            .await?;
        out.instance_types = None;
        out.reindex();
        Ok(out)
    }

    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        let none = Outcome::default();
        match op {
            Op::StopInstance {
                instance,
                hibernate,
            } => {
                self.ec2
                    .stop_instances()
                    .instance_ids(id(instance)?)
                    .hibernate(*hibernate)
                    .send()
                    .await
                    .map_err(err)?;
                self.wait_instance(&id(instance)?, InstanceState::Stopped)
                    .await?;
                Ok(none)
            }
            Op::StartInstance { instance } => {
                self.ec2
                    .start_instances()
                    .instance_ids(id(instance)?)
                    .send()
                    .await
                    .map_err(err)?;
                self.wait_instance(&id(instance)?, InstanceState::Running)
                    .await?;
                Ok(none)
            }
            Op::SetInstanceType {
                instance,
                instance_type,
            } => {
                self.ec2
                    .modify_instance_attribute()
                    .instance_id(id(instance)?)
                    .instance_type(ec2::AttributeValue::builder().value(instance_type).build())
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::CreateImage { instance, tags: t } => {
                let iid = id(instance)?;
                let name = format!(
                    "pare-{iid}-{}",
                    t.get("pare:step")
                        .map_or("backup", String::as_str)
                        .replace('/', "-")
                );
                let mut req = self
                    .ec2
                    .create_image()
                    .instance_id(&iid)
                    .name(name)
                    .no_reboot(true);
                if let Some(spec) = tag_spec(ec2::ResourceType::Image, t) {
                    req = req.tag_specifications(spec);
                }
                let out = req.send().await.map_err(err)?;
                Ok(Outcome {
                    created: out.image_id().map(str::to_string),
                })
            }
            Op::WaitImageAvailable { image } => {
                let iid = id(image)?;
                self.wait_for(
                    &format!("image {iid} to become available"),
                    self.image_timeout,
                    "image_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_images()
                            .image_ids(&iid)
                            .send()
                            .await
                            .map_err(err)?;
                        let state = out
                            .images()
                            .first()
                            .and_then(|i| i.state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "available" => Waited::Done,
                            "failed" | "error" | "invalid" | "deregistered" => {
                                Waited::Failed(state)
                            }
                            _ => Waited::Pending(state),
                        })
                    },
                )
                .await?;
                Ok(none)
            }
            Op::LaunchInstance { spec } => {
                let mut req = self
                    .ec2
                    .run_instances()
                    .image_id(id(&spec.image)?)
                    .instance_type(ec2::InstanceType::from(spec.instance_type.as_str()))
                    .min_count(1)
                    .max_count(1)
                    .set_client_token(spec.client_token.clone())
                    .placement(
                        ec2::Placement::builder()
                            .availability_zone(&spec.zone)
                            .build(),
                    )
                    .monitoring(
                        ec2::RunInstancesMonitoringEnabled::builder()
                            .enabled(spec.monitoring == Monitoring::Detailed)
                            .build(),
                    );
                if spec.hibernation {
                    req = req.hibernation_options(
                        ec2::HibernationOptionsRequest::builder()
                            .configured(true)
                            .build(),
                    );
                }
                if spec.lifecycle == Lifecycle::Spot {
                    let mut spot = ec2::SpotMarketOptions::builder();
                    if let Some(p) = spec.max_price_usd_hour {
                        spot = spot.max_price(format!("{p}"));
                    }
                    req = req.instance_market_options(
                        ec2::InstanceMarketOptionsRequest::builder()
                            .market_type(ec2::MarketType::Spot)
                            .spot_options(spot.build())
                            .build(),
                    );
                }
                if let Some(t) = tag_spec(ec2::ResourceType::Instance, &spec.tags) {
                    req = req.tag_specifications(t);
                }
                let out = req.send().await.map_err(err)?;
                let new = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ProviderError::Transport("RunInstances returned no instance".into())
                    })?;
                self.wait_instance(&new, InstanceState::Running).await?;
                for v in &spec.attach_volumes {
                    let device = self.free_device(&new).await?;
                    self.ec2
                        .attach_volume()
                        .volume_id(v)
                        .instance_id(&new)
                        .device(device)
                        .send()
                        .await
                        .map_err(err)?;
                }
                for a in &spec.associate_addresses {
                    self.ec2
                        .associate_address()
                        .allocation_id(a)
                        .instance_id(&new)
                        // Moving the address is the point; AWS disassociates it on
                        // termination, but do not depend on that having happened.
                        .allow_reassociation(true)
                        .send()
                        .await
                        .map_err(err)?;
                }
                if spec.stopped {
                    self.ec2
                        .stop_instances()
                        .instance_ids(&new)
                        .send()
                        .await
                        .map_err(err)?;
                    self.wait_instance(&new, InstanceState::Stopped).await?;
                }
                Ok(Outcome { created: Some(new) })
            }
            Op::TerminateInstance { instance } => {
                self.ec2
                    .terminate_instances()
                    .instance_ids(id(instance)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::ModifyVolume {
                volume,
                volume_type,
                iops,
                throughput_mbps,
            } => {
                let mut req = self
                    .ec2
                    .modify_volume()
                    .volume_id(id(volume)?)
                    .volume_type(ec2::VolumeType::from(volume_type.as_str()));
                if let Some(i) = iops
                    && volume_type != "gp2"
                {
                    req = req.iops(*i as i32);
                }
                if let Some(t) = throughput_mbps {
                    req = req.throughput(*t as i32);
                }
                req.send().await.map_err(err)?;
                // The new type is in effect once the modification is optimizing.
                let vid = id(volume)?;
                self.wait_for(
                    &format!("the modification of {vid} to take effect"),
                    self.volume_timeout,
                    "volume_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_volumes_modifications()
                            .volume_ids(&vid)
                            .send()
                            .await
                            .map_err(err)?;
                        let state = out
                            .volumes_modifications()
                            .iter()
                            .max_by_key(|m| m.start_time().map(|t| t.secs()))
                            .and_then(|m| m.modification_state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "optimizing" | "completed" => Waited::Done,
                            "failed" => Waited::Failed(state),
                            _ => Waited::Pending(state),
                        })
                    },
                )
                .await?;
                Ok(none)
            }
            Op::CreateSnapshot { volume, tags: t } => {
                let mut req = self.ec2.create_snapshot().volume_id(id(volume)?);
                if let Some(spec) = tag_spec(ec2::ResourceType::Snapshot, t) {
                    req = req.tag_specifications(spec);
                }
                let out = req.send().await.map_err(err)?;
                let sid = out.snapshot_id().map(str::to_string).ok_or_else(|| {
                    ProviderError::Transport("CreateSnapshot returned no snapshot id".into())
                })?;
                // A backup counts once it is complete: only then may the
                // next step delete what it backs up.
                self.wait_for(
                    &format!("snapshot {sid} to complete"),
                    self.snapshot_timeout,
                    "snapshot_timeout_s",
                    || async {
                        let out = self
                            .ec2
                            .describe_snapshots()
                            .snapshot_ids(&sid)
                            .send()
                            .await
                            .map_err(err)?;
                        let snap = out.snapshots().first();
                        let state = snap
                            .and_then(|s| s.state())
                            .map_or("unknown", |s| s.as_str())
                            .to_string();
                        Ok(match state.as_str() {
                            "completed" => Waited::Done,
                            "error" | "recoverable" => Waited::Failed(state),
                            _ => Waited::Pending(format!(
                                "{state}, {}",
                                snap.and_then(|s| s.progress()).unwrap_or("0%")
                            )),
                        })
                    },
                )
                .await?;
                Ok(Outcome { created: Some(sid) })
            }
            Op::AttachVolume { volume, instance } => {
                let iid = id(instance)?;
                let device = self.free_device(&iid).await?;
                self.ec2
                    .attach_volume()
                    .volume_id(id(volume)?)
                    .instance_id(iid)
                    .device(device)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::DetachVolume { volume, instance } => {
                let vid = id(volume)?;
                let described = self
                    .ec2
                    .describe_volumes()
                    .volume_ids(&vid)
                    .send()
                    .await
                    .map_err(err)?;
                let device = described
                    .volumes()
                    .first()
                    .and_then(|v| v.attachments().first())
                    .and_then(|a| a.device())
                    .unwrap_or("/dev/sdf")
                    .to_string();
                self.ec2
                    .detach_volume()
                    .volume_id(vid)
                    .instance_id(id(instance)?)
                    .device(device)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::AssociateAddress { address, instance } => {
                self.ec2
                    .associate_address()
                    .allocation_id(id(address)?)
                    .instance_id(id(instance)?)
                    .allow_reassociation(true)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::DisassociateAddress { address, .. } => {
                let aid = id(address)?;
                let described = self
                    .ec2
                    .describe_addresses()
                    .allocation_ids(&aid)
                    .send()
                    .await
                    .map_err(err)?;
                if let Some(assoc) = described
                    .addresses()
                    .first()
                    .and_then(|a| a.association_id())
                {
                    self.ec2
                        .disassociate_address()
                        .association_id(assoc)
                        .send()
                        .await
                        .map_err(err)?;
                }
                Ok(none)
            }
            Op::DeleteVolume { volume } => {
                self.ec2
                    .delete_volume()
                    .volume_id(id(volume)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::CreateVolume { spec } => {
                let mut req = self
                    .ec2
                    .create_volume()
                    .set_client_token(spec.client_token.clone())
                    .snapshot_id(id(&spec.snapshot)?)
                    .availability_zone(&spec.zone)
                    .volume_type(ec2::VolumeType::from(spec.volume_type.as_str()))
                    .size(spec.size_gb as i32);
                if let Some(i) = spec.iops
                    && spec.volume_type != "gp2"
                {
                    req = req.iops(i as i32);
                }
                if let Some(t) = spec.throughput_mbps {
                    req = req.throughput(t as i32);
                }
                if let Some(t) = tag_spec(ec2::ResourceType::Volume, &spec.tags) {
                    req = req.tag_specifications(t);
                }
                let out = req.send().await.map_err(err)?;
                Ok(Outcome {
                    created: out.volume_id().map(str::to_string),
                })
            }
            Op::DeleteSnapshot { snapshot } => {
                self.ec2
                    .delete_snapshot()
                    .snapshot_id(id(snapshot)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::ReleaseAddress { address } => {
                self.ec2
                    .release_address()
                    .allocation_id(id(address)?)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::SetMonitoring { instance, detailed } => {
                if *detailed {
                    self.ec2
                        .monitor_instances()
                        .instance_ids(id(instance)?)
                        .send()
                        .await
                        .map_err(err)?;
                } else {
                    self.ec2
                        .unmonitor_instances()
                        .instance_ids(id(instance)?)
                        .send()
                        .await
                        .map_err(err)?;
                }
                Ok(none)
            }
            Op::UpdateGroup {
                group,
                min,
                max,
                desired,
            } => {
                self.asg
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(group)
                    .min_size(*min as i32)
                    .max_size(*max as i32)
                    .desired_capacity(*desired as i32)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(none)
            }
            Op::PurchaseReservation { offering, count } => {
                let out = self
                    .ec2
                    .purchase_reserved_instances_offering()
                    .reserved_instances_offering_id(offering)
                    .instance_count(*count as i32)
                    .send()
                    .await
                    .map_err(err)?;
                Ok(Outcome {
                    created: out.reserved_instances_id().map(str::to_string),
                })
            }
        }
    }

    async fn perform_batch(&self, ops: &[Op]) -> super::Batch {
        let key = ops.first().and_then(Op::batch_key);
        let ids: Option<Vec<String>> = ops
            .iter()
            .map(|o| {
                (o.batch_key() == key)
                    .then(|| o.batch_instance().map(str::to_string))
                    .flatten()
            })
            .collect();
        let (Some(key), Some(ids)) = (key, ids) else {
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(self.perform(op).await);
            }
            return super::Batch::one_by_one(results);
        };
        self.multi_instance(key, &ids).await
    }

    async fn may(
        &self,
        action: &str,
        target: Option<&ResourceId>,
        inv: &Inventory,
    ) -> super::Permission {
        self.dry_run(action, target, inv).await
    }

    fn retries_itself(&self) -> bool {
        true
    }

    fn estimate(&self, op: &Op) -> Duration {
        super::nominal_duration(op.name())
    }
}

/// What a waiter's poll found.
enum Waited {
    Done,
    Pending(String),
    Failed(String),
}

/// `1y`/`3y` from a reservation's duration in seconds.
fn term(seconds: Option<i64>) -> String {
    match seconds {
        Some(s) if s >= 2 * 31_536_000 => "3y".into(),
        _ => "1y".into(),
    }
}

/// `no-upfront`, … from EC2's offering type.
fn payment(t: Option<&ec2::OfferingTypeValues>) -> String {
    t.map_or("", |t| t.as_str())
        .to_ascii_lowercase()
        .replace(' ', "-")
}

impl AwsProvider {
    /// The reserved-instance offerings on sale and the reservations held,
    /// for the instance types `queries` name. Offerings are matched to the
    /// plan exactly afterwards (term, payment, class, zone), so the filters
    /// here only narrow the answer.
    async fn reservations_and_offerings(
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

/// What a `DryRun` call's answer says about permission.
fn permission(answer: Result<(), ProviderError>, action: &str) -> super::Permission {
    use super::Permission;
    match answer {
        Ok(()) => {
            tracing::warn!("the endpoint ignored DryRun for {action} and performed it");
            Permission::Allowed
        }
        Err(ProviderError::Cloud { error, .. }) => match error.code.as_str() {
            "DryRunOperation" => Permission::Allowed,
            // AWS says UnauthorizedOperation; other endpoints say AccessDenied.
            "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
                Permission::Denied(format!("{}: {}", error.code, error.message))
            }
            _ => Permission::Unchecked(format!("{}: {}", error.code, error.message)),
        },
        Err(e) => Permission::Unchecked(e.to_string()),
    }
}

impl AwsProvider {
    /// Asks EC2 with `DryRun` whether `action` would be allowed, using the
    /// plan's own resource where there is one (permissions can be scoped by
    /// resource) and a well-formed stand-in id otherwise.
    async fn dry_run(
        &self,
        action: &str,
        target: Option<&ResourceId>,
        inv: &Inventory,
    ) -> super::Permission {
        let instance = match target {
            Some(ResourceId::Instance(i)) => i.clone(),
            _ => "i-00000000000000000".to_string(),
        };
        let volume = match target {
            Some(ResourceId::Volume(v)) => v.clone(),
            _ => "vol-00000000000000000".to_string(),
        };
        let zone = inv
            .instances
            .values()
            .map(|i| i.zone.clone())
            .chain(inv.volumes.values().map(|v| v.zone.clone()))
            .next()
            .unwrap_or_else(|| format!("{}a", self.region));
        let e = &self.ec2;
        let placeholder = |kind: &str| format!("{kind}-00000000000000000");
        let answer = match action {
            "ec2:StopInstances" => sent!(e.stop_instances().instance_ids(&instance).dry_run(true)),
            "ec2:StartInstances" => {
                sent!(e.start_instances().instance_ids(&instance).dry_run(true))
            }
            "ec2:TerminateInstances" => {
                sent!(
                    e.terminate_instances()
                        .instance_ids(&instance)
                        .dry_run(true)
                )
            }
            "ec2:MonitorInstances" => {
                sent!(e.monitor_instances().instance_ids(&instance).dry_run(true))
            }
            "ec2:UnmonitorInstances" => {
                sent!(
                    e.unmonitor_instances()
                        .instance_ids(&instance)
                        .dry_run(true)
                )
            }
            "ec2:ModifyInstanceAttribute" => {
                let ty = inv
                    .instance(&instance)
                    .map_or("t3.micro".to_string(), |i| i.instance_type.clone());
                sent!(
                    e.modify_instance_attribute()
                        .instance_id(&instance)
                        .instance_type(ec2::AttributeValue::builder().value(ty).build())
                        .dry_run(true)
                )
            }
            "ec2:CreateImage" => sent!(
                e.create_image()
                    .instance_id(&instance)
                    .name("pare-permission-check")
                    .no_reboot(true)
                    .dry_run(true)
            ),
            "ec2:CreateTags" => sent!(
                e.create_tags()
                    .resources(&instance)
                    .tags(ec2::Tag::builder().key("pare:check").value("1").build())
                    .dry_run(true)
            ),
            "ec2:RunInstances" => {
                let (image, ty) = inv
                    .instance(&instance)
                    .map(|i| (i.image.clone().unwrap_or_default(), i.instance_type.clone()))
                    .unwrap_or_default();
                let image = if image.is_empty() {
                    placeholder("ami")
                } else {
                    image
                };
                let ty = if ty.is_empty() {
                    "t3.micro".to_string()
                } else {
                    ty
                };
                sent!(
                    e.run_instances()
                        .image_id(image)
                        .instance_type(ec2::InstanceType::from(ty.as_str()))
                        .min_count(1)
                        .max_count(1)
                        .dry_run(true)
                )
            }
            "ec2:AttachVolume" => sent!(
                e.attach_volume()
                    .volume_id(&volume)
                    .instance_id(&instance)
                    .device("/dev/sdf")
                    .dry_run(true)
            ),
            "ec2:DetachVolume" => sent!(
                e.detach_volume()
                    .volume_id(&volume)
                    .instance_id(&instance)
                    .device("/dev/sdf")
                    .dry_run(true)
            ),
            "ec2:AssociateAddress" => sent!(
                e.associate_address()
                    .allocation_id(placeholder("eipalloc"))
                    .instance_id(&instance)
                    .dry_run(true)
            ),
            "ec2:DisassociateAddress" => sent!(
                e.disassociate_address()
                    .association_id(placeholder("eipassoc"))
                    .dry_run(true)
            ),
            "ec2:ModifyVolume" => sent!(
                e.modify_volume()
                    .volume_id(&volume)
                    .volume_type(ec2::VolumeType::Gp3)
                    .dry_run(true)
            ),
            "ec2:CreateSnapshot" => sent!(e.create_snapshot().volume_id(&volume).dry_run(true)),
            "ec2:DeleteVolume" => sent!(e.delete_volume().volume_id(&volume).dry_run(true)),
            "ec2:CreateVolume" => sent!(
                e.create_volume()
                    .availability_zone(zone)
                    .size(1)
                    .dry_run(true)
            ),
            "ec2:DeleteSnapshot" => {
                let snap = match target {
                    Some(ResourceId::Snapshot(s)) => s.clone(),
                    _ => placeholder("snap"),
                };
                sent!(e.delete_snapshot().snapshot_id(snap).dry_run(true))
            }
            "ec2:ReleaseAddress" => {
                let alloc = match target {
                    Some(ResourceId::Address(a)) => a.clone(),
                    _ => placeholder("eipalloc"),
                };
                sent!(e.release_address().allocation_id(alloc).dry_run(true))
            }
            "ec2:PurchaseReservedInstancesOffering" => sent!(
                e.purchase_reserved_instances_offering()
                    .reserved_instances_offering_id("00000000-0000-0000-0000-000000000000")
                    .instance_count(1)
                    .dry_run(true)
            ),
            other => {
                return super::Permission::Unchecked(format!(
                    "{other} has no dry run; the first real call will tell"
                ));
            }
        };
        permission(answer, action)
    }
}

impl AwsProvider {
    /// One stop/start/terminate/monitor call per `batch_size` instances, then
    /// one read of them all (polled until they reach the state the call
    /// leads to), returned as what was observed.
    async fn multi_instance(&self, key: (&'static str, bool), ids: &[String]) -> super::Batch {
        let mut results: Vec<Result<Outcome, ProviderError>> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.batch_size.max(1)) {
            let chunk = chunk.to_vec();
            let ids = Some(chunk.clone());
            let e = &self.ec2;
            let sent = match key {
                ("stop_instance", hibernate) => {
                    sent!(
                        e.stop_instances()
                            .set_instance_ids(ids)
                            .hibernate(hibernate)
                    )
                }
                ("start_instance", _) => sent!(e.start_instances().set_instance_ids(ids)),
                ("terminate_instance", _) => sent!(e.terminate_instances().set_instance_ids(ids)),
                (_, true) => sent!(e.monitor_instances().set_instance_ids(ids)),
                (_, false) => sent!(e.unmonitor_instances().set_instance_ids(ids)),
            };
            results.extend(
                chunk
                    .iter()
                    .map(|_| sent.clone().map(|()| Outcome::default())),
            );
        }
        let done: Vec<String> = ids
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(i, _)| i.clone())
            .collect();
        let target = match key.0 {
            "stop_instance" => Some(InstanceState::Stopped),
            "start_instance" => Some(InstanceState::Running),
            _ => None,
        };
        let observed = match target {
            Some(state) => self.wait_instances(&done, state).await,
            None => {
                let mut inv = Inventory::new(&self.region);
                self.instances(&done, &mut inv)
                    .await
                    .map(|()| inv)
                    .map_err(|e| (e, done.clone()))
            }
        };
        match observed {
            Ok(inv) => super::Batch {
                refused: done.is_empty(),
                results,
                observed: Some(inv),
            },
            Err((e, late)) => {
                // The calls were made; the ones that did not get there in time fail.
                for (i, r) in ids.iter().zip(results.iter_mut()) {
                    if r.is_ok() && late.contains(i) {
                        *r = Err(e.clone());
                    }
                }
                super::Batch {
                    refused: done.is_empty(),
                    results,
                    observed: None,
                }
            }
        }
    }
}

impl AwsProvider {
    /// The first device name from /dev/sdf to /dev/sdp the instance does not use.
    async fn free_device(&self, iid: &str) -> Result<String, ProviderError> {
        let out = self
            .ec2
            .describe_instances()
            .instance_ids(iid)
            .send()
            .await
            .map_err(err)?;
        let used: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.block_device_mappings())
            .filter_map(|b| b.device_name().map(str::to_string))
            .collect();
        (b'f'..=b'p')
            .map(|c| format!("/dev/sd{}", c as char))
            .find(|d| {
                !used
                    .iter()
                    .any(|u| u == d || u.replace("/dev/xvd", "/dev/sd") == *d)
            })
            .ok_or_else(|| {
                CloudError::new(
                    "AttachmentLimitExceeded",
                    format!("{iid} has no free device name from /dev/sdf to /dev/sdp"),
                )
                .into()
            })
    }

    /// Polls `probe` until it says done, within `limit` (the plan's `setting`
    /// raises it); a wait of more than 15 s is logged every 15 s with the
    /// state it is in.
    async fn wait_for<F, Fut>(
        &self,
        what: &str,
        limit: Duration,
        setting: &str,
        mut probe: F,
    ) -> Result<(), ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Waited, ProviderError>>,
    {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        let mut reported = Duration::ZERO;
        loop {
            let state = match probe().await? {
                Waited::Done => return Ok(()),
                Waited::Failed(state) => {
                    return Err(CloudError::new(
                        "IncorrectState",
                        format!("waiting for {what}: it is {state}"),
                    )
                    .into());
                }
                Waited::Pending(state) => state,
            };
            let waited = started.elapsed();
            if waited > limit {
                return Err(CloudError::new(
                    "Timeout",
                    format!(
                        "waited {} s for {what} (still {state}); raise `{setting}` in the plan's aws block if it is just slow",
                        limit.as_secs()
                    ),
                )
                .into());
            }
            if waited >= reported + Duration::from_secs(15) {
                reported = waited;
                tracing::warn!(
                    "waiting for {what}: {state} ({} s so far, at most {} s)",
                    waited.as_secs(),
                    limit.as_secs()
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(15));
        }
    }

    /// Polls until the instance reaches `state` (bounded).
    async fn wait_instance(&self, iid: &str, state: InstanceState) -> Result<(), ProviderError> {
        self.wait_instances(&[iid.to_string()], state)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    /// Polls until every instance in `ids` reaches `state`, within the
    /// instance timeout; returns the last read. On a timeout, the error and
    /// the instances not there yet. Waits of more than a few seconds are
    /// reported in the log.
    async fn wait_instances(
        &self,
        ids: &[String],
        state: InstanceState,
    ) -> Result<Inventory, (ProviderError, Vec<String>)> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        let mut reported = Duration::ZERO;
        loop {
            let mut inv = Inventory::new(&self.region);
            self.instances(ids, &mut inv)
                .await
                .map_err(|e| (e, ids.to_vec()))?;
            let late: Vec<String> = ids
                .iter()
                .filter(|i| inv.instance(i).map(|x| x.state) != Some(state))
                .cloned()
                .collect();
            if late.is_empty() {
                return Ok(inv);
            }
            let waited = started.elapsed();
            if waited > self.instance_timeout {
                let e = CloudError::new(
                    "Timeout",
                    format!(
                        "{} of {} instances did not become {} in {} s (first: {}); raise `instance_timeout_s` in the plan's aws block if they are just slow",
                        late.len(),
                        ids.len(),
                        state.as_str(),
                        self.instance_timeout.as_secs(),
                        late[0]
                    ),
                );
                return Err((e.into(), late));
            }
            if waited >= reported + Duration::from_secs(15) {
                reported = waited;
                tracing::warn!(
                    "waiting for {} of {} instances to become {} ({} s so far, at most {} s)",
                    late.len(),
                    ids.len(),
                    state.as_str(),
                    waited.as_secs(),
                    self.instance_timeout.as_secs()
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(15));
        }
    }
}

#[cfg(test)]
mod tests;
