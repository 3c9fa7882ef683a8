//! Without `--input`: Cost Optimization Hub called through the AWS SDK,
//! every page followed. Its answers are the same JSON the AWS CLI prints
//! (the service speaks JSON), so each answer's body is kept as it came and
//! read by the same parser as `--input` files. Compute Optimizer's API
//! answers in CBOR, which pare does not read: for it, `--input` is needed.

use super::Service;
use aws_sdk_costoptimizationhub::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_costoptimizationhub::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_costoptimizationhub::error::{BoxError, DisplayErrorContext, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::sync::{Arc, Mutex};

/// The most pages one import reads (10,000 recommendations are ten pages
/// of Cost Optimization Hub's thousand).
const MAX_PAGES: usize = 1_000;

/// Keeps the body of every successful answer, in order.
#[derive(Debug, Clone, Default)]
struct Keep(Arc<Mutex<Vec<String>>>);

impl Keep {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for Keep {
    fn name(&self) -> &'static str {
        "pare-import-keep"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        if response.status().is_success()
            && let Some(bytes) = response.body().bytes()
        {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from_utf8_lossy(bytes).into_owned());
        }
        Ok(())
    }
}

/// The answers of `service` for the account `config`'s credentials act in:
/// `(what was called, JSON)` per page.
pub fn fetch(
    rt: &tokio::runtime::Runtime,
    service: Service,
    config: &aws_config::SdkConfig,
) -> Result<Vec<(String, String)>, String> {
    match service {
        Service::CostOptimizationHub => hub(rt, config),
        Service::ComputeOptimizer => Err(
            "pare does not call Compute Optimizer itself (its API answers in CBOR): give what `aws compute-optimizer get-ec2-instance-recommendations --output json` (and the EBS, Auto Scaling group and idle calls) printed with --input FILE, or import from Cost Optimization Hub, which includes Compute Optimizer's recommendations".into(),
        ),
    }
}

/// Why a call failed, and what to do about it.
fn failed<E: std::error::Error + 'static>(
    call: &str,
    e: &SdkError<E, HttpResponse>,
    enrol: &str,
) -> String {
    let text = DisplayErrorContext(e).to_string();
    let lower = text.to_ascii_lowercase();
    let hint = if lower.contains("enrol")
        || lower.contains("optinrequired")
        || lower.contains("opt-in")
        || lower.contains("opted in")
    {
        format!(
            " The account is not enrolled: enrol it with `{enrol}` (from the management account for an organization), then import again."
        )
    } else if lower.contains("accessdenied") || lower.contains("not authorized") {
        " The identity may not call it: grant it the service's read permissions.".to_string()
    } else {
        String::new()
    };
    // The SDK's account of it can hold the whole answer: its first line is enough.
    let text: String = crate::vocabulary::words::clean(&text)
        .chars()
        .take(300)
        .collect();
    format!("{call} failed: {text}.{hint}")
}

fn hub(
    rt: &tokio::runtime::Runtime,
    config: &aws_config::SdkConfig,
) -> Result<Vec<(String, String)>, String> {
    use aws_sdk_costoptimizationhub as hub;
    const ENROL: &str = "aws cost-optimization-hub update-enrollment-status --status Active";
    let keep = Keep::default();
    // Cost Optimization Hub answers in us-east-1 only, for every region.
    let conf = hub::config::Builder::from(config)
        .region(hub::config::Region::new("us-east-1"))
        .interceptor(keep.clone())
        .build();
    let client = hub::Client::from_conf(conf);
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let answer = rt
            .block_on(
                client
                    .list_recommendations()
                    .include_all_recommendations(true)
                    .max_results(1000)
                    .set_next_token(token.clone())
                    .send(),
            )
            .map_err(|e| {
                failed(
                    "Cost Optimization Hub's ListRecommendations (in us-east-1)",
                    &e,
                    ENROL,
                )
            })?;
        for body in keep.take() {
            out.push((format!("ListRecommendations page {page}"), body));
        }
        token = answer
            .next_token()
            .map(str::to_string)
            .filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    // The details a list item lacks: what reservation to buy, a volume's
    // new IOPS and throughput.
    let mut wanted = Vec::new();
    for (_, body) in &out {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            continue;
        };
        for item in v
            .get("items")
            .and_then(|i| i.as_array())
            .into_iter()
            .flatten()
        {
            let text = |k: &str| item.get(k).and_then(|x| x.as_str()).unwrap_or("");
            let needs = text("actionType") == "PurchaseReservedInstances"
                || (text("currentResourceType") == "EbsVolume"
                    && matches!(text("actionType"), "Upgrade" | "Rightsize"));
            if needs && !text("recommendationId").is_empty() {
                wanted.push(text("recommendationId").to_string());
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    for id in wanted {
        rt.block_on(client.get_recommendation().recommendation_id(&id).send())
            .map_err(|e| failed("Cost Optimization Hub's GetRecommendation", &e, ENROL))?;
        for body in keep.take() {
            out.push((
                format!("GetRecommendation {}", crate::vocabulary::words::clean(&id)),
                body,
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
    use aws_smithy_types::body::SdkBody;
    use std::collections::{BTreeMap, VecDeque};

    /// Target → its answers, (status, body), in order.
    type Answers = BTreeMap<String, VecDeque<(u16, String)>>;

    /// Answers by `X-Amz-Target`, in order, as the services would; records
    /// each request's target and body.
    #[derive(Debug, Clone, Default)]
    struct Recorded {
        answers: Arc<Mutex<Answers>>,
        seen: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl HttpConnector for Recorded {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let target = request
                .headers()
                .get("x-amz-target")
                .unwrap_or("")
                .to_string();
            let body = request
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            self.seen.lock().unwrap().push((target.clone(), body));
            let (status, text) = self
                .answers
                .lock()
                .unwrap()
                .get_mut(&target)
                .and_then(VecDeque::pop_front)
                .unwrap_or((400, format!("{{\"__type\":\"ValidationException\",\"message\":\"no recorded answer for {target}\"}}")));
            let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(text));
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            HttpConnectorFuture::ready(Ok(response))
        }
    }

    impl HttpClient for Recorded {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    fn config(r: &Recorded, region: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                aws_sdk_ec2::config::Credentials::new("AKID", "SECRET", None, None, "recorded"),
            ))
            .http_client(SharedHttpClient::new(r.clone()))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build()
    }

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/tests/fixtures/import/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn cost_optimization_hub_is_read_page_by_page_with_the_details_it_needs() {
        // The fixture's items in two pages, timestamps as the API gives them
        // (seconds since the epoch), then the two details.
        let list = fixture("coh-list.json");
        let items = list["items"].as_array().unwrap().clone();
        let epoch = |mut v: serde_json::Value| {
            v["lastRefreshTimestamp"] = serde_json::json!(1764137565.381);
            v
        };
        let first: Vec<_> = items[..4].iter().cloned().map(epoch).collect();
        let second: Vec<_> = items[4..].iter().cloned().map(epoch).collect();
        let r = Recorded::default();
        {
            let mut a = r.answers.lock().unwrap();
            a.insert(
                "CostOptimizationHubService.ListRecommendations".into(),
                VecDeque::from([
                    (
                        200,
                        serde_json::json!({"items": first, "nextToken": "page-2"}).to_string(),
                    ),
                    (200, serde_json::json!({"items": second}).to_string()),
                ]),
            );
            a.insert(
                "CostOptimizationHubService.GetRecommendation".into(),
                VecDeque::from([
                    (200, epoch(fixture("coh-get-reservation.json")).to_string()),
                    (200, epoch(fixture("coh-get-volume.json")).to_string()),
                ]),
            );
        }
        let pages = fetch(
            &rt(),
            Service::CostOptimizationHub,
            &config(&r, "eu-west-1"),
        )
        .unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..2],
            ["ListRecommendations page 1", "ListRecommendations page 2"]
        );
        assert_eq!(names.len(), 4, "{names:?}");
        let seen = r.seen.lock().unwrap().clone();
        assert!(seen[1].1.contains("\"nextToken\":\"page-2\""), "{seen:?}");
        assert!(
            seen[0].1.contains("\"includeAllRecommendations\":true"),
            "{seen:?}"
        );
        let parsed = super::super::parse(
            Service::CostOptimizationHub,
            &pages,
            &super::super::Choices::default(),
        )
        .unwrap();
        assert_eq!(parsed.imported.len(), 5, "{:?}", parsed.skipped);
        assert!(
            parsed
                .imported
                .iter()
                .all(|i| i.source.refreshed_at.as_deref() == Some("2025-11-26T06:12:45Z"))
        );
    }

    #[test]
    fn an_account_that_is_not_enrolled_is_told_how_to_enrol() {
        let e = fetch(
            &rt(),
            Service::ComputeOptimizer,
            &config(&Recorded::default(), "us-east-1"),
        )
        .unwrap_err();
        assert!(e.contains("give what `aws compute-optimizer"), "{e}");
        let r = Recorded::default();
        r.answers.lock().unwrap().insert(
            "CostOptimizationHubService.ListRecommendations".into(),
            VecDeque::from([(
                400,
                "{\"__type\":\"AccessDeniedException\",\"message\":\"Account is not enrolled in Cost Optimization Hub\"}".into(),
            )]),
        );
        let e = fetch(
            &rt(),
            Service::CostOptimizationHub,
            &config(&r, "us-east-1"),
        )
        .unwrap_err();
        assert!(
            e.contains("aws cost-optimization-hub update-enrollment-status --status Active"),
            "{e}"
        );
        assert!(e.contains("(in us-east-1)"), "{e}");
    }
}
