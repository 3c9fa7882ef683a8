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
    sts: aws_sdk_sts::Client,
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

/// The HTTPS client every SDK client of pare uses, credential providers
/// included: rustls with ring's cryptography.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Where and how an SDK client connects (the plan's aws block, or the
/// team state's `[state]`); unset values come from the standard chain.
pub struct Connect<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
    /// Attempts in all for a call that fails transiently (the SDK's backoff).
    pub attempts: u32,
    pub attempt_timeout: Duration,
    pub timeout: Duration,
}

/// The SDK configuration `c` names: the standard credential chain, pare's
/// HTTPS client, one retry policy. `Err(region)` (cleaned for printing)
/// when the region found is not a region name: the SDK would put it in a
/// request's signature, where it cannot be sent.
pub fn load_config(
    rt: &tokio::runtime::Runtime,
    c: &Connect<'_>,
) -> Result<aws_config::SdkConfig, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(c.attempts))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(c.attempt_timeout)
                .operation_timeout(c.timeout)
                .build(),
        );
    if let Some(r) = c.region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(p) = c.profile {
        loader = loader.profile_name(p);
    }
    if let Some(u) = c.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let config = rt.block_on(loader.load());
    match config.region() {
        Some(r) if !crate::config::is_region_name(r.as_ref()) => {
            Err(crate::vocabulary::words::clean(r.as_ref()).into_owned())
        }
        _ => Ok(config),
    }
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
        let config = load_config(
            &rt,
            &Connect {
                region: spec.region.as_deref(),
                profile: spec.profile.as_deref(),
                endpoint_url: spec.endpoint_url.as_deref(),
                attempts: attempts.max(1),
                attempt_timeout: Duration::from_secs(30),
                timeout: Duration::from_secs(120),
            },
        )
        .map_err(|region| {
            ProviderError::Transport(format!(
                "`{region}` (from the plan, AWS_REGION, AWS_DEFAULT_REGION or the profile) is not an AWS region name"
            ))
        })?;
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
            sts: aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(config).build()),
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
            batch_size: spec
                .batch_size
                .map_or(crate::config::DEFAULT_BATCH, |n| n as usize),
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

mod batch;
mod convert;
mod describe;
mod perform;
mod permissions;
mod reservations;
mod waiters;

use convert::*;
use waiters::Waited;

#[async_trait::async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn account(&self) -> Result<Option<String>, ProviderError> {
        // GetCallerIdentity needs no permission: every caller may ask.
        let who = self.sts.get_caller_identity().send().await.map_err(|e| {
            ProviderError::Transport(format!(
                "reading the account id (sts:GetCallerIdentity) failed: {}",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            ))
        })?;
        Ok(who
            .account()
            .map(|a| crate::vocabulary::words::clean(a).into_owned()))
    }

    async fn describe(&self, query: &Query) -> Result<Inventory, ProviderError> {
        self.read(query).await
    }

    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError> {
        self.change(op).await
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

#[cfg(test)]
mod tests;
