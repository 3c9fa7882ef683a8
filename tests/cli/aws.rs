//! The AWS provider end to end, through the binary, against a real EC2 API
//! endpoint on loopback (moto's server, started by `scripts/test`). Each test
//! works in a region of its own: regions are separate accounts there.

use super::pare;
use aws_sdk_ec2::types as ec2;
use std::path::Path;

/// The endpoint, or a failure that says how to get one. Never a skip.
pub(super) fn endpoint() -> String {
    std::env::var("PARE_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PARE_TEST_AWS_ENDPOINT is not set: the AWS tests need the local EC2 endpoint.\n\
             Run the whole suite with scripts/test, or start it with `scripts/moto start` and\n\
             export PARE_TEST_AWS_ENDPOINT=<the URL it prints>"
        )
    })
}

pub(super) fn client(region: &str) -> aws_sdk_ec2::Client {
    client_at(region, &endpoint())
}

/// A client of `url` (the endpoint, or a proxy in front of it).
pub(super) fn client_at(region: &str, url: &str) -> aws_sdk_ec2::Client {
    let creds =
        aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "pare-tests");
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(creds)
        .http_client(pare::provider::aws::https_client())
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(super) fn aws_pare(dir: &Path) -> assert_cmd::Command {
    let mut cmd = pare(dir);
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    cmd
}

struct Fleet {
    web: String,
    dev: String,
    old: String,
    data: String,
    scratch: String,
    address: String,
}

async fn seed(c: &aws_sdk_ec2::Client, zone: &str) -> Fleet {
    let launch = |ty: &str, name: &str| {
        c.run_instances()
            .image_id("ami-12c6146b")
            .instance_type(ec2::InstanceType::from(ty))
            .min_count(1)
            .max_count(1)
            .placement(ec2::Placement::builder().availability_zone(zone).build())
            .tag_specifications(
                ec2::TagSpecification::builder()
                    .resource_type(ec2::ResourceType::Instance)
                    .tags(ec2::Tag::builder().key("Name").value(name).build())
                    .build(),
            )
    };
    let id = |o: aws_sdk_ec2::operation::run_instances::RunInstancesOutput| {
        o.instances()[0].instance_id().unwrap().to_string()
    };
    let web = id(launch("m5.xlarge", "web").send().await.unwrap());
    let dev = id(launch("t3.large", "dev").send().await.unwrap());
    let old = id(launch("t3.large", "old").send().await.unwrap());
    let volume = |size: i32| {
        c.create_volume()
            .availability_zone(zone)
            .size(size)
            .volume_type(ec2::VolumeType::Gp2)
    };
    let data = volume(100)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    c.attach_volume()
        .volume_id(&data)
        .instance_id(&web)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    let scratch = volume(50)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    let address = c
        .allocate_address()
        .send()
        .await
        .unwrap()
        .allocation_id()
        .unwrap()
        .to_string();
    Fleet {
        web,
        dev,
        old,
        data,
        scratch,
        address,
    }
}

/// Launches `count` instances of `ty` in `zone`; their ids.
pub(super) async fn launch(
    c: &aws_sdk_ec2::Client,
    zone: &str,
    ty: ec2::InstanceType,
    count: i32,
) -> Vec<String> {
    c.run_instances()
        .image_id("ami-12c6146b")
        .instance_type(ty)
        .min_count(count)
        .max_count(count)
        .placement(ec2::Placement::builder().availability_zone(zone).build())
        .send()
        .await
        .unwrap()
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

/// A new empty volume in `zone`; its id.
async fn new_volume(c: &aws_sdk_ec2::Client, zone: &str, size: i32, ty: ec2::VolumeType) -> String {
    c.create_volume()
        .availability_zone(zone)
        .size(size)
        .volume_type(ty)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string()
}

/// `pare ARGS` in `dir` with the test's AWS environment; must succeed; its stderr.
fn pare_ok(dir: &Path, args: &[&str]) -> String {
    let out = aws_pare(dir).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "pare {args:?}: {err}");
    err
}

/// The state name of instance `id`.
async fn state(c: &aws_sdk_ec2::Client, id: &str) -> String {
    instance(c, id)
        .await
        .state()
        .unwrap()
        .name()
        .unwrap()
        .as_str()
        .to_string()
}

pub(super) async fn instance(c: &aws_sdk_ec2::Client, id: &str) -> ec2::Instance {
    c.describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .clone()
}

async fn volume(c: &aws_sdk_ec2::Client, id: &str) -> Option<ec2::Volume> {
    c.describe_volumes()
        .filters(ec2::Filter::builder().name("volume-id").values(id).build())
        .send()
        .await
        .unwrap()
        .volumes()
        .first()
        .cloned()
}

#[test]
fn plan_apply_rollback_against_the_ec2_api() {
    let region = "eu-west-3";
    let zone = "eu-west-3a";
    let c = client(region);
    let rt = rt();
    let f = rt.block_on(seed(&c, zone));
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1
name: aws-e2e
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
  - {{ id: size, action: rightsize, instance: {}, to: m5.large }}
  - {{ id: park, action: hibernate, instance: {}, mode: stop }}
  - {{ id: gp3, action: storage, volume: {}, to: gp3 }}
  - {{ id: kill, action: terminate, instance: {} }}
  - {{ id: scratch, action: storage, volume: {}, delete: true }}
",
        endpoint(),
        f.web,
        f.dev,
        f.data,
        f.old,
        f.scratch
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let _ = &f.address;

    let out = aws_pare(dir.path())
        .args(["plan", "plan.yaml", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(preview["provider"], "aws");
    assert_eq!(preview["summary"]["changes"], 5, "{preview}");

    pare_ok(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    rt.block_on(async {
        assert_eq!(
            instance(&c, &f.web).await.instance_type().unwrap().as_str(),
            "m5.large"
        );
        assert_eq!(state(&c, &f.web).await, "running");
        assert_eq!(state(&c, &f.dev).await, "stopped");
        assert_eq!(
            volume(&c, &f.data)
                .await
                .unwrap()
                .volume_type()
                .unwrap()
                .as_str(),
            "gp3"
        );
        assert_eq!(state(&c, &f.old).await, "terminated");
        assert!(volume(&c, &f.scratch).await.is_none());
    });

    // Re-planning finds nothing to do.
    let out = aws_pare(dir.path())
        .args(["plan", "plan.yaml", "--format", "json"])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["summary"]["changes"], 0, "{again}");

    // Right now the volume cannot be changed back (AWS's six-hour rule).
    let out = aws_pare(dir.path())
        .args(["rollback", "--last", "--dry-run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NOT YET gp3 [1]") && err.contains("only from"),
        "{err}"
    );
    // Seven hours on, everything is undone.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(7 * 3600);
    let out = aws_pare(dir.path())
        .env("PARE_FAKE_NOW", pare::clock::rfc3339(later))
        .args(["rollback", "--last", "--auto-approve"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    rt.block_on(async {
        assert_eq!(
            instance(&c, &f.web).await.instance_type().unwrap().as_str(),
            "m5.xlarge"
        );
        assert_eq!(state(&c, &f.dev).await, "running");
        assert_eq!(
            volume(&c, &f.data)
                .await
                .unwrap()
                .volume_type()
                .unwrap()
                .as_str(),
            "gp2"
        );
    });
    assert!(
        err.contains(&format!("recreated: {} is now i-", f.old)),
        "{err}"
    );
    assert!(
        err.contains(&format!("recreated: {} is now vol-", f.scratch)),
        "{err}"
    );
}

fn asg_client(region: &str) -> aws_sdk_autoscaling::Client {
    let creds = aws_sdk_autoscaling::config::Credentials::new(
        "testing",
        "testing",
        None,
        None,
        "pare-tests",
    );
    let config = aws_sdk_autoscaling::Config::builder()
        .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
        .region(aws_sdk_autoscaling::config::Region::new(region.to_string()))
        .endpoint_url(endpoint())
        .credentials_provider(creds)
        .http_client(pare::provider::aws::https_client())
        .build();
    aws_sdk_autoscaling::Client::from_conf(config)
}

#[test]
fn spot_autoscale_and_clean_ups_against_the_ec2_api() {
    let (region, zone) = ("ap-southeast-2", "ap-southeast-2a");
    let (c, asg) = (client(region), asg_client(region));
    let rt = rt();
    // Names of their own, so the suite runs again on the same endpoint.
    let template = format!("web-{}", std::process::id());
    let group = format!("web-asg-{}", std::process::id());
    let (worker, data, eip, snap) = rt.block_on(async {
        let worker = launch(&c, zone, ec2::InstanceType::C5Large, 1)
            .await
            .remove(0);
        let data = new_volume(&c, zone, 20, ec2::VolumeType::Gp3).await;
        c.attach_volume()
            .volume_id(&data)
            .instance_id(&worker)
            .device("/dev/sdf")
            .send()
            .await
            .unwrap();
        let eip = c
            .allocate_address()
            .send()
            .await
            .unwrap()
            .allocation_id()
            .unwrap()
            .to_string();
        c.associate_address()
            .allocation_id(&eip)
            .instance_id(&worker)
            .send()
            .await
            .unwrap();
        let snap = c
            .create_snapshot()
            .volume_id(&data)
            .send()
            .await
            .unwrap()
            .snapshot_id()
            .unwrap()
            .to_string();
        c.create_launch_template()
            .launch_template_name(&template)
            .launch_template_data(
                ec2::RequestLaunchTemplateData::builder()
                    .image_id("ami-12c6146b")
                    .instance_type(ec2::InstanceType::T3Micro)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(&group)
            .launch_template(
                aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                    .launch_template_name(&template)
                    .build(),
            )
            .min_size(1)
            .max_size(4)
            .desired_capacity(3)
            .availability_zones(zone)
            .send()
            .await
            .unwrap();
        (worker, data, eip, snap)
    });
    let spare = rt.block_on(async {
        c.allocate_address()
            .send()
            .await
            .unwrap()
            .allocation_id()
            .unwrap()
            .to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
  - {{ id: spot, action: spot, instance: {worker}, max_price_usd_hour: 0.05 }}
  - {{ id: scale, action: autoscale, group: {group}, desired: 1 }}
  - {{ id: eip, action: config, fix: release-address, address: {spare} }}
  - {{ id: snap, action: config, fix: delete-snapshot, snapshot: {snap} }}
",
        endpoint()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    pare_ok(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    rt.block_on(async {
        assert_eq!(state(&c, &worker).await, "terminated");
        let moved_to = volume(&c, &data).await.unwrap().attachments()[0]
            .instance_id()
            .unwrap()
            .to_string();
        let spot = instance(&c, &moved_to).await;
        assert_eq!(spot.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
        let a = c
            .describe_addresses()
            .allocation_ids(&eip)
            .send()
            .await
            .unwrap();
        assert_eq!(
            a.addresses()[0].instance_id(),
            Some(moved_to.as_str()),
            "the Elastic IP follows"
        );
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&group)
            .send()
            .await
            .unwrap();
        assert_eq!(g.auto_scaling_groups()[0].desired_capacity(), Some(1));
        assert!(
            c.describe_addresses()
                .allocation_ids(&spare)
                .send()
                .await
                .is_err(),
            "released"
        );
    });
    let err = pare_ok(dir.path(), &["rollback", "--last", "--auto-approve"]);
    assert!(
        err.contains("not undone (irreversible): eip")
            && err.contains("not undone (irreversible): snap"),
        "{err}"
    );
    rt.block_on(async {
        let back_to = volume(&c, &data).await.unwrap().attachments()[0]
            .instance_id()
            .unwrap()
            .to_string();
        let back = instance(&c, &back_to).await;
        assert_ne!(back.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
        assert_eq!(back.instance_type().unwrap().as_str(), "c5.large");
        let a = c
            .describe_addresses()
            .allocation_ids(&eip)
            .send()
            .await
            .unwrap();
        assert_eq!(a.addresses()[0].instance_id(), Some(back_to.as_str()));
        let g = asg
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&group)
            .send()
            .await
            .unwrap();
        assert_eq!(g.auto_scaling_groups()[0].desired_capacity(), Some(3));
    });
}

/// The loopback proxy of `scripts/ec2-proxy.py` in front of the endpoint:
/// counts calls by action and throttles the ones asked for. Stopped on drop.
pub struct Proxy {
    child: std::process::Child,
    pub url: String,
}

impl Proxy {
    pub fn start(upstream: &str, throttle: &[&str]) -> Proxy {
        let mut args = Vec::new();
        for t in throttle {
            args.extend(["--throttle", t]);
        }
        Proxy::spawn(upstream, &args)
    }

    /// A proxy that sends every call to `account` of the endpoint, as
    /// credentials for that account would.
    pub fn in_account(upstream: &str, account: &str) -> Proxy {
        Proxy::spawn(upstream, &["--account", account])
    }

    fn spawn(upstream: &str, args: &[&str]) -> Proxy {
        use std::io::BufRead;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ec2-proxy.py");
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(script).arg(upstream).args(args);
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs scripts/ec2-proxy.py (install python3)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the proxy prints its port");
        Proxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Calls by action: (forwarded, throttled).
    pub fn counts(&self) -> serde_json::Value {
        let body = ureq_get(&format!("{}/_proxy/counts", self.url));
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET on loopback, without a client library.
fn ureq_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn throttled_calls_are_retried_visibly_and_nothing_happens_twice() {
    let (region, zone) = ("sa-east-1", "sa-east-1a");
    let c = client(region);
    let rt = rt();
    let (instances, scratch) = rt.block_on(async {
        let ids = launch(&c, zone, ec2::InstanceType::T3Large, 3).await;
        let scratch = new_volume(&c, zone, 20, ec2::VolumeType::Gp2).await;
        (ids, scratch)
    });
    let proxy = Proxy::start(&endpoint(), &["StopInstances:2", "CreateSnapshot:2"]);
    let dir = tempfile::tempdir().unwrap();
    let mut recs = String::new();
    for (k, i) in instances.iter().enumerate() {
        recs.push_str(&format!(
            "  - {{ id: park-{k}, action: hibernate, instance: {i}, mode: stop }}\n"
        ));
    }
    recs.push_str(&format!(
        "  - {{ id: scratch, action: storage, volume: {scratch}, delete: true }}\n"
    ));
    let plan = format!(
        "version: 1
name: throttled
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
{recs}",
        proxy.url
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let err = pare_ok(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    assert!(
        err.contains("StopInstances: throttled (RequestLimitExceeded)"),
        "throttling must be visible in the log:\n{err}"
    );
    assert!(
        err.contains("CreateSnapshot: throttled"),
        "throttling must be visible in the log:\n{err}"
    );
    let counts = proxy.counts();
    assert_eq!(counts["throttled"]["StopInstances"], 2, "{counts}");
    // The three stops went in one call, made once it was let through.
    assert_eq!(counts["forwarded"]["StopInstances"], 1, "{counts}");
    assert_eq!(counts["forwarded"]["CreateSnapshot"], 1, "{counts}");
    rt.block_on(async {
        for i in &instances {
            assert_eq!(state(&c, i).await, "stopped");
        }
        let snaps = c
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                ec2::Filter::builder()
                    .name("volume-id")
                    .values(&scratch)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(snaps.snapshots().len(), 1, "one snapshot, not three");
        assert!(volume(&c, &scratch).await.is_none());
    });
}

/// A plain HTTP POST on loopback; returns the status and body.
fn http_post(url: &str, content_type: &str, body: &str) -> (u16, String) {
    http_post_as(url, content_type, "", body)
}

fn http_post_as(url: &str, content_type: &str, extra: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_string())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {text}"))
        + open.len();
    let len = text[start..].find(close).unwrap();
    &text[start..start + len]
}

/// An IAM call on the endpoint, made while its auth is off.
fn iam(endpoint: &str, params: &[(&str, &str)]) -> String {
    let mut body = String::from("Version=2010-05-08");
    for (k, v) in params {
        body.push_str(&format!("&{k}={}", urlencode(v)));
    }
    // The endpoint routes by the credential scope; auth is off, so no real signature.
    let (status, text) = http_post_as(
        &format!("{endpoint}/"),
        "application/x-www-form-urlencoded",
        "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n",
        &body,
    );
    assert_eq!(status, 200, "{params:?}: {text}");
    text
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_missing_permission_blocks_the_recommendation_that_needs_it() {
    let endpoint = std::env::var("PARE_TEST_AWS_IAM_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "PARE_TEST_AWS_IAM_ENDPOINT is not set: the IAM test needs a local EC2 endpoint of its own\n\
             (its auth switch is global). Run the suite with scripts/test, or start one with\n\
             `scripts/moto start iam` and export PARE_TEST_AWS_IAM_ENDPOINT=<the URL it prints>"
        )
    });
    let (region, zone) = ("eu-north-1", "eu-north-1a");
    // The server is this test's alone: start clean, auth off.
    http_post(
        &format!("{endpoint}/moto-api/reset-auth"),
        "text/plain",
        "inf",
    );
    http_post(&format!("{endpoint}/moto-api/reset"), "text/plain", "");
    // Seed with auth off.
    let creds =
        aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "pare-tests");
    let c = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(region))
            .endpoint_url(&endpoint)
            .credentials_provider(creds)
            .http_client(pare::provider::aws::https_client())
            .build(),
    );
    let rt = rt();
    let (web, disk) = rt.block_on(async {
        let web = launch(&c, zone, ec2::InstanceType::T3Large, 1)
            .await
            .remove(0);
        let disk = new_volume(&c, zone, 10, ec2::VolumeType::Gp2).await;
        (web, disk)
    });
    // A user who may read, start and modify volumes, but not stop.
    iam(
        &endpoint,
        &[("Action", "CreateUser"), ("UserName", "finops")],
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ec2:Describe*","ec2:StartInstances","ec2:ModifyVolume"],"Resource":"*"}]}"#;
    iam(
        &endpoint,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "finops"),
            ("PolicyName", "pare"),
            ("PolicyDocument", policy),
        ],
    );
    let key = iam(
        &endpoint,
        &[("Action", "CreateAccessKey"), ("UserName", "finops")],
    );
    let (id, secret) = (
        between(&key, "<AccessKeyId>", "</AccessKeyId>").to_string(),
        between(&key, "<SecretAccessKey>", "</SecretAccessKey>").to_string(),
    );
    let (status, text) = http_post(
        &format!("{endpoint}/moto-api/reset-auth"),
        "text/plain",
        "0",
    );
    assert_eq!(status, 200, "{text}");

    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1
name: iam
provider: {{ aws: {{ region: {region}, endpoint_url: \"{endpoint}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
  - {{ id: park, action: hibernate, instance: {web}, mode: stop }}
  - {{ id: gp3, action: storage, volume: {disk}, to: gp3 }}
"
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = aws_pare(dir.path())
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .args(["plan", "plan.yaml", "--format", "json"])
        .output()
        .unwrap();
    let text_out = aws_pare(dir.path())
        .env("AWS_ACCESS_KEY_ID", &id)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .args(["plan", "plan.yaml"])
        .output()
        .unwrap();
    // Auth off again before any assertion can fail.
    http_post(
        &format!("{endpoint}/moto-api/reset-auth"),
        "text/plain",
        "inf",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = preview["recommendations"].as_array().unwrap();
    let park = recs.iter().find(|r| r["id"] == "park").unwrap();
    let gp3 = recs.iter().find(|r| r["id"] == "gp3").unwrap();
    assert_eq!(park["status"], "blocked", "{park}");
    let why = park["blocked_by"].to_string();
    assert!(
        why.contains("missing IAM permission `ec2:StopInstances`"),
        "{why}"
    );
    assert!(!why.contains("ec2:StartInstances"), "{why}");
    assert_eq!(gp3["status"], "change", "{gp3}");
    // The text preview says the same to a person.
    let text = String::from_utf8_lossy(&text_out.stdout);
    assert!(
        text.contains("BLOCKED") || text.contains("blocked"),
        "{text}"
    );
    assert!(text.contains("ec2:StopInstances"), "{text}");
}

#[test]
fn an_instance_that_does_not_exist_is_reported_at_its_recommendation() {
    let (region, zone) = ("ca-central-1", "ca-central-1a");
    let c = client(region);
    let real = rt().block_on(async {
        launch(&c, zone, ec2::InstanceType::T3Large, 1)
            .await
            .remove(0)
    });
    let dir = tempfile::tempdir().unwrap();
    let plan = format!(
        "version: 1
name: missing
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
recommendations:
  - {{ id: real, action: hibernate, instance: {real}, mode: stop }}
  - {{ id: ghost, action: hibernate, instance: i-0123456789abcdef0, mode: stop }}
",
        endpoint()
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = aws_pare(dir.path())
        .args(["plan", "plan.yaml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("instance i-0123456789abcdef0 does not exist") && err.contains("plan.yaml:6:"),
        "{err}"
    );
    assert_eq!(
        err.matches("does not exist").count(),
        1,
        "only the missing one is reported: {err}"
    );
    assert!(
        !err.contains(&format!("instance {real} does not exist")),
        "{err}"
    );
}

#[test]
fn rightsize_chains_share_their_stop_and_start_calls() {
    // Twenty running instances rightsized: one stop call, one type change
    // per instance (AWS takes one instance a call), the starts gathered, and
    // no read-back of a type change of its own (the start's shows it).
    let (region, zone) = ("ap-northeast-2", "ap-northeast-2a");
    let c = client(region);
    let rt = rt();
    let ids = rt.block_on(launch(&c, zone, ec2::InstanceType::M5Large, 20));
    let proxy = Proxy::start(&endpoint(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let recs: String = ids
        .iter()
        .enumerate()
        .map(|(k, i)| {
            format!("  - {{ id: size-{k}, action: rightsize, instance: {i}, to: m5.xlarge }}\n")
        })
        .collect();
    let plan = format!(
        "version: 1
provider: {{ aws: {{ region: {region}, endpoint_url: \"{}\" }} }}
approvals: [ {{ by: t@example.com, covers: [\"*\"] }} ]
recommendations:
{recs}",
        proxy.url
    );
    std::fs::write(dir.path().join("plan.yaml"), plan).unwrap();
    let out = aws_pare(dir.path())
        .args(["plan", "plan.yaml", "--format", "json"])
        .output()
        .unwrap();
    let preview: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The preview counts shared calls at AWS's usual pace (a type change
    // takes about 2 s, so the starts of each round of ten arrive apart):
    // one stop, twenty type changes, two starts. The endpoint answers at
    // once, so the run below shares even more.
    assert_eq!(
        preview["summary"]["calls"], 23,
        "the preview counts shared calls"
    );
    pare_ok(dir.path(), &["apply", "plan.yaml", "--auto-approve"]);
    let counts = proxy.counts();
    let fwd = &counts["forwarded"];
    assert_eq!(fwd["StopInstances"], 1, "{counts}");
    assert_eq!(fwd["ModifyInstanceAttribute"], 20, "{counts}");
    assert!(fwd["StartInstances"].as_u64().unwrap() <= 2, "{counts}");
    // The plan's refresh, the stop's and the starts' waits: nothing per instance.
    assert!(fwd["DescribeInstances"].as_u64().unwrap() <= 6, "{counts}");
    rt.block_on(async {
        for i in &ids {
            let x = instance(&c, i).await;
            assert_eq!(x.instance_type().unwrap().as_str(), "m5.xlarge");
            assert_eq!(x.state().unwrap().name().unwrap().as_str(), "running");
        }
    });
    // The rollback: the same chain backwards, gathered the same way.
    pare_ok(dir.path(), &["rollback", "--last", "--auto-approve"]);
    let after = proxy.counts();
    let calls = |name: &str| {
        after["forwarded"][name].as_u64().unwrap_or(0) - fwd[name].as_u64().unwrap_or(0)
    };
    assert!(calls("StopInstances") <= 2, "{after}");
    assert_eq!(calls("ModifyInstanceAttribute"), 20, "{after}");
    assert!(calls("StartInstances") <= 2, "{after}");
    rt.block_on(async {
        for i in &ids {
            let x = instance(&c, i).await;
            assert_eq!(x.instance_type().unwrap().as_str(), "m5.large");
            assert_eq!(x.state().unwrap().name().unwrap().as_str(), "running");
        }
    });
}
