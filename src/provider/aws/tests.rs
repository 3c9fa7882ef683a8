//! The AWS provider's handling of calls the local endpoint does not
//! implement (reservations, monitoring: HTTP 500 there), checked against
//! recorded responses shaped as AWS documents them, served by a canned HTTP
//! connector: no network at all.

use super::*;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::sync::{Arc, Mutex};

/// Answers each EC2 action with a recorded body, and keeps the requests.
#[derive(Debug, Clone, Default)]
struct Canned {
    answers: Arc<Vec<(&'static str, u16, String)>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(body.clone());
        let action = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("")
            .to_string();
        let (status, text) = self
            .answers
            .iter()
            .find(|(a, _, _)| *a == action)
            .map(|(_, s, t)| (*s, t.clone()))
            .unwrap_or_else(|| (500, format!("no recorded answer for {action}")));
        let response = HttpResponse::new(
            status.try_into().expect("a status code"),
            SdkBody::from(text),
        );
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn provider(answers: Vec<(&'static str, u16, String)>) -> (AwsProvider, Canned) {
    let canned = Canned {
        answers: Arc::new(answers),
        seen: Arc::default(),
    };
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
            aws_sdk_ec2::config::Credentials::new("AKID", "SECRET", None, None, "canned"),
        ))
        .http_client(SharedHttpClient::new(canned.clone()))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let p = AwsProvider::from_config(&config, &crate::plan::AwsProvider::default()).unwrap();
    (p, canned)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const NS: &str = "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"";

fn describe_instance(id: &str, monitoring: &str) -> String {
    format!(
        "<DescribeInstancesResponse {NS}><requestId>r</requestId><reservationSet><item>\
         <reservationId>r-1</reservationId><ownerId>123456789012</ownerId><groupSet/>\
         <instancesSet><item><instanceId>{id}</instanceId><imageId>ami-1</imageId>\
         <instanceState><code>16</code><name>running</name></instanceState>\
         <instanceType>m5.large</instanceType><placement><availabilityZone>us-east-1a</availabilityZone></placement>\
         <monitoring><state>{monitoring}</state></monitoring></item></instancesSet>\
         </item></reservationSet></DescribeInstancesResponse>"
    )
}

#[test]
fn monitoring_is_one_call_for_many_instances_and_read_back() {
    let (p, canned) = provider(vec![
        (
            "MonitorInstances",
            200,
            format!(
                "<MonitorInstancesResponse {NS}><requestId>r</requestId><instancesSet>\
                 <item><instanceId>i-1</instanceId><monitoring><state>pending</state></monitoring></item>\
                 </instancesSet></MonitorInstancesResponse>"
            ),
        ),
        (
            "DescribeInstances",
            200,
            describe_instance("i-1", "enabled"),
        ),
    ]);
    let ops = vec![Op::SetMonitoring {
        instance: Ref::id("i-1"),
        detailed: true,
    }];
    let batch = rt().block_on(p.perform_batch(&ops));
    assert!(batch.results.iter().all(|r| r.is_ok()), "{batch:?}");
    let seen = canned.seen.lock().unwrap().clone();
    assert!(seen[0].contains("Action=MonitorInstances"), "{seen:?}");
    assert!(seen[0].contains("InstanceId.1=i-1"), "{seen:?}");
    let observed = batch.observed.expect("read back");
    assert_eq!(
        observed.instance("i-1").unwrap().monitoring,
        Monitoring::Detailed
    );
}

#[test]
fn a_reservation_purchase_returns_the_reservation_id() {
    let (p, canned) = provider(vec![(
        "PurchaseReservedInstancesOffering",
        200,
        format!(
            "<PurchaseReservedInstancesOfferingResponse {NS}><requestId>r</requestId>\
             <reservedInstancesId>af9f760e-6f91-4559-85f7-4980eexample</reservedInstancesId>\
             </PurchaseReservedInstancesOfferingResponse>"
        ),
    )]);
    let out = rt()
        .block_on(p.perform(&Op::PurchaseReservation {
            offering: "438012d3-4052-4cc7-b2e3-8d3372eexample".into(),
            count: 2,
        }))
        .unwrap();
    assert_eq!(
        out.created.as_deref(),
        Some("af9f760e-6f91-4559-85f7-4980eexample")
    );
    let seen = canned.seen.lock().unwrap().clone();
    assert!(
        seen[0].contains("ReservedInstancesOfferingId=438012d3-4052-4cc7-b2e3-8d3372eexample")
            && seen[0].contains("InstanceCount=2"),
        "{seen:?}"
    );
}

#[test]
fn offerings_and_held_reservations_are_read_in_the_plans_terms() {
    let (p, canned) = provider(vec![
        (
            "DescribeReservedInstancesOfferings",
            200,
            format!(
                "<DescribeReservedInstancesOfferingsResponse {NS}><requestId>r</requestId>\
                 <reservedInstancesOfferingsSet><item>\
                 <reservedInstancesOfferingId>off-1</reservedInstancesOfferingId>\
                 <instanceType>m5.large</instanceType><duration>31536000</duration>\
                 <fixedPrice>0.0</fixedPrice><usagePrice>0.0</usagePrice>\
                 <productDescription>Linux/UNIX</productDescription><instanceTenancy>default</instanceTenancy>\
                 <currencyCode>USD</currencyCode><offeringType>No Upfront</offeringType>\
                 <recurringCharges><item><frequency>Hourly</frequency><amount>0.06</amount></item></recurringCharges>\
                 <marketplace>false</marketplace><offeringClass>standard</offeringClass><scope>Region</scope>\
                 </item></reservedInstancesOfferingsSet></DescribeReservedInstancesOfferingsResponse>"
            ),
        ),
        (
            "DescribeReservedInstances",
            200,
            format!(
                "<DescribeReservedInstancesResponse {NS}><requestId>r</requestId>\
                 <reservedInstancesSet><item>\
                 <reservedInstancesId>ri-held</reservedInstancesId><instanceType>m5.large</instanceType>\
                 <start>2026-01-01T00:00:00.000Z</start><duration>94608000</duration>\
                 <fixedPrice>1000.0</fixedPrice><usagePrice>0.0</usagePrice><instanceCount>3</instanceCount>\
                 <productDescription>Linux/UNIX</productDescription><state>active</state>\
                 <instanceTenancy>default</instanceTenancy><currencyCode>USD</currencyCode>\
                 <offeringType>All Upfront</offeringType><offeringClass>convertible</offeringClass><scope>Region</scope>\
                 </item></reservedInstancesSet></DescribeReservedInstancesResponse>"
            ),
        ),
    ]);
    let q = Query {
        offerings: vec![OfferingQuery {
            instance_type: "m5.large".into(),
            term: "1y".into(),
            payment: "no-upfront".into(),
            offering_class: "standard".into(),
            zone: None,
        }],
        ..Query::default()
    };
    let inv = rt().block_on(p.describe(&q)).unwrap();
    assert_eq!(inv.offerings.len(), 1);
    let o = &inv.offerings[0];
    assert!(q.offerings[0].matches(o), "{o:?}");
    assert_eq!((o.upfront_usd, o.hourly_usd), (0.0, 0.06));
    let r = &inv.reserved_instances[0];
    assert_eq!(
        (
            r.id.as_str(),
            r.count,
            r.term.as_str(),
            r.payment.as_str(),
            r.offering_class.as_str(),
            r.state.as_str()
        ),
        ("ri-held", 3, "3y", "all-upfront", "convertible", "active")
    );
    let seen = canned.seen.lock().unwrap().clone();
    assert!(
        seen[0].contains("OfferingType=No%20Upfront")
            || seen[0].contains("OfferingType=No+Upfront"),
        "{seen:?}"
    );
}

#[test]
fn an_answer_without_an_aws_code_is_a_clear_error_not_retried() {
    let (p, canned) = provider(vec![(
        "UnmonitorInstances",
        500,
        "<html>NotImplementedError</html>".into(),
    )]);
    let batch = rt().block_on(p.perform_batch(&[Op::SetMonitoring {
        instance: Ref::id("i-1"),
        detailed: false,
    }]));
    assert!(batch.refused);
    let e = batch.results[0].as_ref().unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("no AWS error code"), "{e}");
    assert_eq!(canned.seen.lock().unwrap().len(), 1);
}

#[test]
fn dry_runs_name_what_is_refused() {
    let denied = "<Response><Errors><Error><Code>UnauthorizedOperation</Code>\
         <Message>You are not authorized to perform this operation.</Message></Error></Errors>\
         <RequestID>r</RequestID></Response>"
        .to_string();
    let allowed = "<Response><Errors><Error><Code>DryRunOperation</Code>\
         <Message>Request would have succeeded, but DryRun flag is set.</Message></Error></Errors>\
         <RequestID>r</RequestID></Response>"
        .to_string();
    let (p, canned) = provider(vec![
        ("PurchaseReservedInstancesOffering", 412, allowed),
        ("MonitorInstances", 403, denied),
    ]);
    let inv = Inventory::new("us-east-1");
    let rt = rt();
    assert_eq!(
        rt.block_on(p.may("ec2:PurchaseReservedInstancesOffering", None, &inv)),
        crate::provider::Permission::Allowed
    );
    match rt.block_on(p.may("ec2:MonitorInstances", None, &inv)) {
        crate::provider::Permission::Denied(why) => {
            assert!(why.contains("UnauthorizedOperation"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        rt.block_on(p.may("autoscaling:UpdateAutoScalingGroup", None, &inv)),
        crate::provider::Permission::Unchecked(_)
    ));
    assert!(
        canned
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|b| b.contains("DryRun=true"))
    );
}

/// The local EC2 endpoint `scripts/test` starts; never a skip.
fn endpoint() -> String {
    std::env::var("PARE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PARE_TEST_AWS_ENDPOINT is not set: this test needs the local EC2 endpoint.\n\
             Run the suite with scripts/test, or `scripts/moto start` and export\n\
             PARE_TEST_AWS_ENDPOINT=<the URL it prints>"
        )
    })
}

#[test]
fn reservation_and_monitoring_permissions_through_the_endpoints_dry_run() {
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("ca-central-1"))
        .endpoint_url(endpoint())
        .http_client(super::https_client())
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
            aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "tests"),
        ))
        .build();
    let p = AwsProvider::from_config(&config, &crate::plan::AwsProvider::default()).unwrap();
    let inv = Inventory::new("ca-central-1");
    let rt = rt();
    for action in [
        "ec2:PurchaseReservedInstancesOffering",
        "ec2:MonitorInstances",
        "ec2:UnmonitorInstances",
    ] {
        assert_eq!(
            rt.block_on(p.may(action, None, &inv)),
            crate::provider::Permission::Allowed,
            "{action}"
        );
    }
}
