//! AWS answers in the provider's terms: errors, tags, images, states.

use super::*;

/// An SDK error in the provider's terms: the AWS code and message when the
/// service answered, a transport error otherwise. Throttling is retryable;
/// an answer without an AWS code (HTTP 500/501 from an endpoint that does
/// not implement the call) is not.
pub(super) fn err<E, R>(e: aws_sdk_ec2::error::SdkError<E, R>) -> ProviderError
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

pub(super) fn filter(name: &str, values: &[String]) -> ec2::Filter {
    ec2::Filter::builder()
        .name(name)
        .set_values(Some(values.to_vec()))
        .build()
}

pub(super) fn tags(t: &[ec2::Tag]) -> Tags {
    t.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

pub(super) fn tag_spec(kind: ec2::ResourceType, t: &Tags) -> Option<ec2::TagSpecification> {
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
pub(super) fn image(img: &ec2::Image) -> Option<Image> {
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

pub(super) fn id(r: &Ref) -> Result<String, ProviderError> {
    r.known()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Transport(format!("unresolved reference {r}")))
}

pub(super) fn instance_state(s: Option<&ec2::InstanceState>) -> InstanceState {
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
pub(super) fn named_instance_ids(message: &str) -> Vec<String> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|t| t.starts_with("i-") && t.len() > 2)
        .map(str::to_string)
        .collect()
}
