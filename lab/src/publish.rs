//! Publishing the cluster's objects for the agents, as the API server and the endpoints controller would:
//! every Service gets a ClusterIP (kept across re-applies), EndpointSlices are computed from the pods, and
//! the whole set is written to the lab's cluster directory, which every agent watches.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long `publish` waits for the agents to pick up a change.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

use crate::{
    LabError,
    cluster::Lab,
    controlplane::{ClusterIpAllocator, ObjectFile, assign, endpoint_slices, write_objects},
};

impl Lab {
    /// Assigns missing ClusterIPs, recomputes EndpointSlices and writes every object for the agents.
    pub(crate) fn publish(&mut self) -> Result<(), LabError> {
        let keys: Vec<String> = self.state.services.keys().cloned().collect();
        for key in keys {
            let has_ip = self.state.services[&key]
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .is_some_and(|ip| !ip.is_empty());
            if has_ip {
                continue;
            }
            let others = self
                .state
                .services
                .iter()
                .filter(|(k, _)| **k != key)
                .map(|(_, s)| s);
            let mut allocator = ClusterIpAllocator::from_services(others);
            let service = &self.state.services[&key];
            if let Some(ip) = allocator
                .allocate(service)
                .map_err(|e| LabError::Usage(e.to_string()))?
            {
                let service = self.state.services.get_mut(&key).expect("key from the map");
                assign(service, ip);
                tracing::info!(service = %key, %ip, "assigned ClusterIP");
            }
        }
        let none = BTreeSet::new();
        let mut objects: Vec<ObjectFile> = Vec::new();
        for service in self.state.services.values() {
            objects.push(service.clone().into());
            for slice in endpoint_slices(service, &self.state.pods, &none) {
                objects.push(slice.into());
            }
        }
        let report = write_objects(&self.cluster_dir(), &objects)
            .map_err(|e| LabError::Environment(e.to_string()))?;
        // Taken after the files are in place: a sync that began later has read them.
        let published_ms = now_ms();
        self.save()?;
        if report.changed() {
            self.wait_synced(published_ms)?;
        }
        Ok(())
    }

    /// Waits until every agent has run a service sync that began after `published_ms`.
    fn wait_synced(&self, published_ms: u64) -> Result<(), LabError> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        for node in &self.state.nodes {
            loop {
                let synced = self
                    .agent_get(&node.name, "/syncz")
                    .ok()
                    .and_then(|body| body.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                if synced > published_ms {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(LabError::Environment(format!(
                        "agent of {} did not sync the published services within {} s",
                        node.name,
                        SYNC_TIMEOUT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
