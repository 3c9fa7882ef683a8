//! Waiting for the cloud: instances stopped or running, images available,
//! snapshots completed, volume modifications in effect; bounded, logged.

use super::*;

/// What a waiter's poll found.
pub(super) enum Waited {
    Done,
    Pending(String),
    Failed(String),
}

impl AwsProvider {
    /// The first device name from /dev/sdf to /dev/sdp the instance does not use.
    pub(super) async fn free_device(&self, iid: &str) -> Result<String, ProviderError> {
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
    pub(super) async fn wait_for<F, Fut>(
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
    pub(super) async fn wait_instance(
        &self,
        iid: &str,
        state: InstanceState,
    ) -> Result<(), ProviderError> {
        self.wait_instances(&[iid.to_string()], state)
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }

    /// Polls until every instance in `ids` reaches `state`, within the
    /// instance timeout; returns the last read. On a timeout, the error and
    /// the instances not there yet. Waits of more than a few seconds are
    /// reported in the log.
    pub(super) async fn wait_instances(
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
