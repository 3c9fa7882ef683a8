//! Multi-instance calls: stop, start, terminate and monitoring of many
//! instances in one call, all or nothing.

use super::*;

impl AwsProvider {
    /// One stop/start/terminate/monitor call per `batch_size` instances, then
    /// one read of them all (polled until they reach the state the call
    /// leads to), returned as what was observed.
    pub(super) async fn multi_instance(
        &self,
        key: (&'static str, bool),
        ids: &[String],
    ) -> crate::provider::Batch {
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
            Ok(inv) => crate::provider::Batch {
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
                crate::provider::Batch {
                    refused: done.is_empty(),
                    results,
                    observed: None,
                }
            }
        }
    }
}
