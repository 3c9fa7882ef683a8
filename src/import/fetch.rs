//! Without `--input`: the two services called through the AWS SDK, every
//! page followed. Each answer's body is kept as it came: Cost Optimization
//! Hub's is the JSON the AWS CLI prints; Compute Optimizer's is CBOR, the
//! same document in binary, which is read into JSON. Both are then read by
//! the same parsers as `--input` files.

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
struct Keep(Arc<Mutex<Vec<Vec<u8>>>>);

impl Keep {
    /// The JSON answers.
    fn take(&self) -> Vec<String> {
        self.take_bytes()
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    fn take_bytes(&self) -> Vec<Vec<u8>> {
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
                .push(bytes.to_vec());
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
        Service::ComputeOptimizer => optimizer(rt, config),
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

fn optimizer(
    rt: &tokio::runtime::Runtime,
    config: &aws_config::SdkConfig,
) -> Result<Vec<(String, String)>, String> {
    use aws_sdk_computeoptimizer as co;
    const ENROL: &str = "aws compute-optimizer update-enrollment-status --status Active";
    let keep = Keep::default();
    let conf = co::config::Builder::from(config)
        .interceptor(keep.clone())
        .build();
    let client = co::Client::from_conf(conf);
    let mut out = Vec::new();
    // Each call, every page: the token of the last answer, until none.
    macro_rules! pages {
        ($name:literal, $call:ident) => {{
            let mut token: Option<String> = None;
            for page in 1..=MAX_PAGES {
                let answer = rt
                    .block_on(client.$call().set_next_token(token.clone()).send())
                    .map_err(|e| failed(concat!("Compute Optimizer's ", $name), &e, ENROL))?;
                for body in keep.take_bytes() {
                    out.push((format!("{} page {page}", $name), cbor_to_json(&body)?));
                }
                token = answer
                    .next_token()
                    .map(str::to_string)
                    .filter(|t| !t.is_empty());
                if token.is_none() {
                    break;
                }
            }
        }};
    }
    pages!(
        "GetEC2InstanceRecommendations",
        get_ec2_instance_recommendations
    );
    pages!(
        "GetEBSVolumeRecommendations",
        get_ebs_volume_recommendations
    );
    pages!(
        "GetAutoScalingGroupRecommendations",
        get_auto_scaling_group_recommendations
    );
    pages!("GetIdleRecommendations", get_idle_recommendations);
    Ok(out)
}

/// A CBOR document as the JSON the AWS CLI would print for it: maps,
/// lists, text, numbers; a time (tag 1) as seconds since the epoch.
fn cbor_to_json(bytes: &[u8]) -> Result<String, String> {
    fn convert(v: ciborium::Value, depth: usize) -> serde_json::Value {
        use ciborium::Value as C;
        use serde_json::Value as J;
        if depth > 64 {
            return J::Null;
        }
        match v {
            C::Integer(i) => i64::try_from(i128::from(i)).map_or(J::Null, J::from),
            C::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
            C::Text(t) => J::String(t),
            C::Bool(b) => J::Bool(b),
            C::Array(a) => J::Array(a.into_iter().map(|x| convert(x, depth + 1)).collect()),
            C::Map(m) => J::Object(
                m.into_iter()
                    .filter_map(|(k, v)| Some((k.into_text().ok()?, convert(v, depth + 1))))
                    .collect(),
            ),
            C::Tag(_, inner) => convert(*inner, depth + 1),
            _ => J::Null,
        }
    }
    let value: ciborium::Value = ciborium::from_reader(bytes)
        .map_err(|e| format!("Compute Optimizer's answer could not be read as CBOR: {e}"))?;
    Ok(convert(value, 0).to_string())
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

    /// Operation → its answers, (status, body), in order.
    type Answers = BTreeMap<String, VecDeque<(u16, Vec<u8>)>>;

    /// Answers by operation (the `X-Amz-Target` of JSON calls, the last part
    /// of the path of CBOR ones), in order, as the services would; records
    /// each request's operation and body.
    #[derive(Debug, Clone, Default)]
    struct Recorded {
        answers: Arc<Mutex<Answers>>,
        seen: Arc<Mutex<Vec<(String, String)>>>,
    }

    impl Recorded {
        fn answer(&self, op: &str, status: u16, body: Vec<u8>) {
            self.answers
                .lock()
                .unwrap()
                .entry(op.to_string())
                .or_default()
                .push_back((status, body));
        }
    }

    impl HttpConnector for Recorded {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let cbor = request.headers().get("smithy-protocol").is_some();
            let op = match request.headers().get("x-amz-target") {
                Some(t) => t.rsplit('.').next().unwrap_or("").to_string(),
                None => request.uri().rsplit('/').next().unwrap_or("").to_string(),
            };
            let body = request
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            self.seen.lock().unwrap().push((op.clone(), body));
            let (status, bytes) = self
                .answers
                .lock()
                .unwrap()
                .get_mut(&op)
                .and_then(VecDeque::pop_front)
                .unwrap_or((400, format!("{{\"__type\":\"ValidationException\",\"message\":\"no recorded answer for {op}\"}}").into_bytes()));
            let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(bytes));
            if cbor {
                response
                    .headers_mut()
                    .insert("content-type", "application/cbor");
                response
                    .headers_mut()
                    .insert("smithy-protocol", "rpc-v2-cbor");
            } else {
                response
                    .headers_mut()
                    .insert("content-type", "application/x-amz-json-1.0");
            }
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

    /// The API gives times as seconds since the epoch.
    fn epoch(mut v: serde_json::Value) -> serde_json::Value {
        v["lastRefreshTimestamp"] = serde_json::json!(1764137565.381);
        v
    }

    /// A JSON document as the service's CBOR: times (`lastRefreshTimestamp`)
    /// as tag 1, whole numbers as integers, the rest as floats.
    fn cbor(v: &serde_json::Value) -> Vec<u8> {
        fn convert(key: &str, v: &serde_json::Value) -> ciborium::Value {
            use ciborium::Value as C;
            use serde_json::Value as J;
            match v {
                J::String(s) if key == "lastRefreshTimestamp" => {
                    let t = crate::clock::parse_rfc3339(&format!("{}Z", &s[..19])).unwrap();
                    let secs = t
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs_f64();
                    C::Tag(1, Box::new(C::Float(secs)))
                }
                J::String(s) => C::Text(s.clone()),
                J::Number(n) if n.is_i64() => C::Integer(n.as_i64().unwrap().into()),
                J::Number(n) => C::Float(n.as_f64().unwrap()),
                J::Bool(b) => C::Bool(*b),
                J::Null => C::Null,
                J::Array(a) => C::Array(a.iter().map(|x| convert("", x)).collect()),
                J::Object(o) => C::Map(
                    o.iter()
                        .map(|(k, x)| (C::Text(k.clone()), convert(k, x)))
                        .collect(),
                ),
            }
        }
        let mut bytes = Vec::new();
        ciborium::into_writer(&convert("", v), &mut bytes).unwrap();
        bytes
    }

    /// The pages read by the `--input` parser: the fixtures' five
    /// recommendations, each refreshed at `refreshed`.
    fn all_five(service: Service, pages: &[(String, String)], refreshed: &str) {
        let parsed =
            super::super::parse(service, pages, &super::super::Choices::default()).unwrap();
        assert_eq!(parsed.imported.len(), 5, "{:?}", parsed.skipped);
        assert!(
            parsed
                .imported
                .iter()
                .all(|i| i.source.refreshed_at.as_deref() == Some(refreshed))
        );
    }

    #[test]
    fn cost_optimization_hub_is_read_page_by_page_with_the_details_it_needs() {
        // The fixture's items in two pages, then the two details.
        let list = fixture("coh-list.json");
        let items = list["items"].as_array().unwrap().clone();
        let first: Vec<_> = items[..4].iter().cloned().map(epoch).collect();
        let second: Vec<_> = items[4..].iter().cloned().map(epoch).collect();
        let r = Recorded::default();
        let json = |v: serde_json::Value| v.to_string().into_bytes();
        r.answer(
            "ListRecommendations",
            200,
            json(serde_json::json!({"items": first, "nextToken": "page-2"})),
        );
        r.answer(
            "ListRecommendations",
            200,
            json(serde_json::json!({"items": second})),
        );
        r.answer(
            "GetRecommendation",
            200,
            json(epoch(fixture("coh-get-reservation.json"))),
        );
        r.answer(
            "GetRecommendation",
            200,
            json(epoch(fixture("coh-get-volume.json"))),
        );
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
        all_five(Service::CostOptimizationHub, &pages, "2025-11-26T06:12:45Z");
    }

    #[test]
    fn compute_optimizer_is_read_from_its_cbor_page_by_page() {
        let r = Recorded::default();
        let ec2 = fixture("co-ec2.json");
        let recs = ec2["instanceRecommendations"].as_array().unwrap().clone();
        r.answer(
            "GetEC2InstanceRecommendations",
            200,
            cbor(&serde_json::json!({"instanceRecommendations": recs[..1], "nextToken": "t"})),
        );
        r.answer(
            "GetEC2InstanceRecommendations",
            200,
            cbor(&serde_json::json!({"instanceRecommendations": recs[1..]})),
        );
        for (op, file) in [
            ("GetEBSVolumeRecommendations", "co-ebs.json"),
            ("GetAutoScalingGroupRecommendations", "co-asg.json"),
            ("GetIdleRecommendations", "co-idle.json"),
        ] {
            r.answer(op, 200, cbor(&fixture(file)));
        }
        let pages = fetch(&rt(), Service::ComputeOptimizer, &config(&r, "us-east-1")).unwrap();
        assert_eq!(pages.len(), 5, "{pages:?}");
        assert_eq!(
            r.seen.lock().unwrap().len(),
            5,
            "the second page was asked for"
        );
        all_five(Service::ComputeOptimizer, &pages, "2026-11-26T06:12:45Z");
    }

    #[test]
    fn an_account_that_is_not_enrolled_is_told_how_to_enrol() {
        let r = Recorded::default();
        r.answer(
            "GetEC2InstanceRecommendations",
            400,
            cbor(&serde_json::json!({"__type": "com.amazonaws.computeoptimizer#OptInRequiredException", "message": "The account is not opted in to Compute Optimizer"})),
        );
        let e = fetch(&rt(), Service::ComputeOptimizer, &config(&r, "us-east-1")).unwrap_err();
        assert!(
            e.contains("aws compute-optimizer update-enrollment-status --status Active"),
            "{e}"
        );
        let r = Recorded::default();
        r.answer(
            "ListRecommendations",
            400,
            b"{\"__type\":\"AccessDeniedException\",\"message\":\"Account is not enrolled in Cost Optimization Hub\"}".to_vec(),
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
