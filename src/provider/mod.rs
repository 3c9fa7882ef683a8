//! The one door to the cloud: the [`Provider`] trait and its implementations.
//!
//! Executors and the engine speak only the vocabulary of [`model`]; AWS types
//! never leave `provider/aws`.

#[cfg(feature = "aws")]
pub mod aws;
pub mod iam;
pub mod inventory;
pub mod model;
pub mod sandbox;

#[cfg(test)]
pub mod fixtures;

pub use crate::settings::Connection;
pub use inventory::{IdMode, Inventory};
pub use model::*;

use std::path::Path;
use std::time::Duration;

/// Why a provider could not be opened.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum OpenError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
    #[error("cannot connect to AWS: {0}")]
    #[diagnostic(
        code(provider::aws),
        help(
            "check the region, profile and credentials (the standard AWS chain: environment, profiles, SSO, instance roles)"
        )
    )]
    Aws(String),
    #[error("the `{0}` provider is not available in this build of pare")]
    #[diagnostic(
        code(provider::unavailable),
        help(
            "this build of pare was made without the AWS SDK (`--no-default-features`); build it with default features for `provider: {{ aws: … }}`, or use `provider: {{ sandbox: {{ seed: … }} }}`"
        )
    )]
    Unavailable(&'static str),
}

/// Opens the provider a plan names. Sandbox seeds are relative to the plan
/// file and confined to its folder; the sandbox account lives in `docs`
/// (the state). Returns the provider and any warning to show the user.
pub fn open(
    spec: &crate::plan::Provider,
    plan_path: &Path,
    docs: std::sync::Arc<dyn crate::durable::DocStore>,
    connection: Connection,
) -> Result<(Box<dyn Provider>, Option<String>), OpenError> {
    match spec {
        crate::plan::Provider::Sandbox(s) => {
            let seed = sandbox::seed_path(plan_path, &s.seed)?;
            let (p, warning) = sandbox::SandboxProvider::open(docs, &seed)?;
            Ok((Box::new(p), warning))
        }
        #[cfg(feature = "aws")]
        crate::plan::Provider::Aws(spec) => {
            let p = aws::AwsProvider::connect(spec, connection.attempts)
                .map_err(|e| OpenError::Aws(e.to_string()))?;
            Ok((Box::new(p), None))
        }
        #[cfg(not(feature = "aws"))]
        crate::plan::Provider::Aws(_) => {
            let _ = connection;
            Err(OpenError::Unavailable("aws"))
        }
    }
}

/// Why a provider call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The cloud refused the call; `retryable` for throttling and transient faults.
    #[error("{error}")]
    Cloud { error: CloudError, retryable: bool },
    /// The call did not reach the cloud or its answer could not be read.
    #[error("{0}")]
    Transport(String),
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Cloud { retryable, .. } => *retryable,
            ProviderError::Transport(_) => true,
        }
    }
}

impl From<CloudError> for ProviderError {
    fn from(error: CloudError) -> ProviderError {
        ProviderError::Cloud {
            error,
            retryable: false,
        }
    }
}

/// What a batched call did: see [`Provider::perform_batch`].
#[derive(Debug)]
pub struct Batch {
    pub results: Vec<Result<Outcome, ProviderError>>,
    pub observed: Option<Inventory>,
    pub refused: bool,
}

impl Batch {
    /// The results of ops performed one call each: refused only if all failed.
    pub fn one_by_one(results: Vec<Result<Outcome, ProviderError>>) -> Batch {
        Batch {
            refused: results.iter().all(|r| r.is_err()),
            results,
            observed: None,
        }
    }
}

/// The answer of a permission check.
#[derive(Debug, Clone, PartialEq)]
pub enum Permission {
    Allowed,
    /// Refused, with the cloud's words.
    Denied(String),
    /// Could not be asked (no dry run for this call) or the answer said
    /// nothing about permissions; why.
    Unchecked(String),
}

/// A cloud account pare can read and change.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// `sandbox` or `aws`.
    fn name(&self) -> &'static str;

    /// The account the credentials act in (AWS's 12-digit id), so a saved
    /// plan is applied only where it was planned. The default: a provider
    /// without accounts names none.
    async fn account(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// Reads every resource the query names, in as few calls as possible.
    /// Resources that do not exist are absent from the answer.
    async fn describe(&self, query: &Query) -> Result<Inventory, ProviderError>;

    /// Performs one operation; its refs are concrete ids.
    async fn perform(&self, op: &Op) -> Result<Outcome, ProviderError>;

    /// Performs ops that share a [`Op::batch_key`] in as few calls as the
    /// cloud allows. One result per op, in order. `refused` says the cloud
    /// refused the whole call and nothing changed (AWS's multi-instance calls
    /// are all or nothing): the engine then splits the batch to find the
    /// failing op.
    /// `observed`, when present, is the named instances as read after the
    /// call (a waiter's last read), so the engine need not read them again.
    /// The default performs the ops one by one.
    async fn perform_batch(&self, ops: &[Op]) -> Batch {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(self.perform(op).await);
        }
        Batch::one_by_one(results)
    }

    /// Whether the caller may perform the IAM action `action` (such as
    /// `ec2:StopInstances`) on `target`, asked without changing anything
    /// (EC2's `DryRun`). `inv` is what the plan read, for realistic
    /// parameters. The default: clouds without IAM check nothing.
    async fn may(&self, action: &str, target: Option<&ResourceId>, inv: &Inventory) -> Permission {
        let _ = (action, target, inv);
        Permission::Unchecked("this provider has no permissions to check".into())
    }

    /// How long `op` usually takes, for estimates in previews.
    fn estimate(&self, op: &Op) -> Duration;

    /// Whether the provider retries transient failures itself (the AWS
    /// SDK does, with backoff): the engine then makes one attempt, so
    /// retries never multiply.
    fn retries_itself(&self) -> bool {
        false
    }

    /// Makes everything performed so far durable in its compact form (the
    /// sandbox folds its log into its file). A no-op for real clouds.
    fn checkpoint(&self) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// How long an operation usually takes on AWS, for estimates.
pub fn nominal_duration(op: &str) -> Duration {
    let secs = match op {
        "stop_instance" => 60,
        "start_instance" => 45,
        "set_instance_type" | "update_group" | "delete_snapshot" => 2,
        "create_image" => 30,
        "wait_image_available" => 240,
        "launch_instance" => 60,
        "terminate_instance" => 30,
        "modify_volume" | "delete_volume" => 5,
        "create_snapshot" => 60,
        "attach_volume" | "detach_volume" => 10,
        "create_volume" => 30,
        "release_address" | "set_monitoring" | "describe" => 1,
        "purchase_reservation" => 5,
        _ => 5,
    };
    Duration::from_secs(secs)
}
