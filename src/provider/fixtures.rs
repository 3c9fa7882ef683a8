//! Builders of resources for tests: each with plain defaults, so a test
//! says only what matters to it (`Instance { state: Stopped, ..instance(id) }`).

use super::model::*;

/// A running on-demand m5.large in us-east-1a, basic monitoring, no tags.
pub fn instance(id: &str) -> Instance {
    Instance {
        id: id.into(),
        instance_type: "m5.large".into(),
        state: InstanceState::Running,
        zone: "us-east-1a".into(),
        image: Some("ami-0c55b159".into()),
        lifecycle: Lifecycle::OnDemand,
        hibernation: false,
        monitoring: Monitoring::Basic,
        tags: Tags::new(),
        stop_reason: None,
    }
}

/// A detached 100 GB gp2 volume (300 IOPS) in us-east-1a, no tags.
pub fn volume(id: &str) -> Volume {
    Volume {
        id: id.into(),
        volume_type: "gp2".into(),
        size_gb: 100,
        iops: Some(300),
        throughput_mbps: None,
        zone: "us-east-1a".into(),
        attached_to: None,
        delete_on_termination: false,
        tags: Tags::new(),
    }
}

/// A 50 GB snapshot of no volume in particular.
pub fn snapshot(id: &str) -> Snapshot {
    Snapshot {
        id: id.into(),
        volume: None,
        size_gb: 50,
        tags: Tags::new(),
    }
}

/// An available image backed by `snapshots`.
pub fn image(id: &str, snapshots: &[&str]) -> Image {
    Image {
        id: id.into(),
        source_instance: None,
        state: "available".into(),
        snapshots: snapshots.iter().map(|s| s.to_string()).collect(),
        tags: Tags::new(),
    }
}

/// An Elastic IP, associated with `instance` if given.
pub fn address(id: &str, instance: Option<&str>) -> Address {
    Address {
        allocation_id: id.into(),
        public_ip: "198.51.100.7".into(),
        instance: instance.map(str::to_string),
        tags: Tags::new(),
    }
}

/// An auto-scaling group of m5.large.
pub fn group(name: &str, min: u32, max: u32, desired: u32) -> Group {
    Group {
        name: name.into(),
        min,
        max,
        desired,
        instance_type: Some("m5.large".into()),
        tags: Tags::new(),
    }
}

/// A regional one-year, no-upfront, standard m5.large offering.
pub fn offering(id: &str, hourly_usd: f64) -> Offering {
    Offering {
        id: id.into(),
        instance_type: "m5.large".into(),
        term: "1y".into(),
        payment: "no-upfront".into(),
        offering_class: "standard".into(),
        zone: None,
        upfront_usd: 0.0,
        hourly_usd,
    }
}

/// `Name` tag alone.
pub fn named(name: &str) -> Tags {
    Tags::from([("Name".to_string(), name.to_string())])
}

/// An account in memory with its own clock: the cloud for tests of the
/// engine and the rollback planner (operations follow AWS's rules at
/// `now`, which a test moves).
pub struct Memory {
    pub account: std::sync::Mutex<super::Inventory>,
    pub now: std::sync::Mutex<std::time::SystemTime>,
}

impl Memory {
    pub fn new(account: super::Inventory) -> Memory {
        Memory {
            account: std::sync::Mutex::new(account),
            now: std::sync::Mutex::new(crate::clock::now()),
        }
    }

    /// Moves the clock `secs` ahead.
    pub fn advance(&self, secs: u64) {
        *self.now.lock().unwrap() += std::time::Duration::from_secs(secs);
    }
}

#[async_trait::async_trait]
impl super::Provider for Memory {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn describe(&self, q: &super::Query) -> Result<super::Inventory, super::ProviderError> {
        Ok(self.account.lock().unwrap().subset(q))
    }
    async fn perform(&self, op: &Op) -> Result<Outcome, super::ProviderError> {
        let now = *self.now.lock().unwrap();
        self.account
            .lock()
            .unwrap()
            .apply_at(op, now)
            .map_err(super::ProviderError::from)
    }
    fn estimate(&self, _: &Op) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

/// An append-only log in memory, readable while written.
#[derive(Clone, Default)]
pub struct MemLog(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl MemLog {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl crate::durable::AppendLog for MemLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A provider that is only a name and estimates (a second each): for
/// planning an inventory given directly.
pub struct Fixed;

#[async_trait::async_trait]
impl super::Provider for Fixed {
    fn name(&self) -> &'static str {
        "sandbox"
    }
    async fn describe(&self, _: &super::Query) -> Result<super::Inventory, super::ProviderError> {
        Err(super::ProviderError::Transport("not used".into()))
    }
    async fn perform(&self, _: &Op) -> Result<Outcome, super::ProviderError> {
        Err(super::ProviderError::Transport("not used".into()))
    }
    fn estimate(&self, _: &Op) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}
