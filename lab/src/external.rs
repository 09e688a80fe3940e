//! The external namespace's server: the lab's stand-in for a host outside the cluster. The lab's
//! built-in workload runs in the external client's namespace (address [`crate::network::EXTERNAL_IP`])
//! with the identity `external`, answering TCP and UDP on [`EXTERNAL_PORTS`], so a pod's egress to an
//! address outside the cluster can be probed like a pod. It is a lab process (marker and the external
//! cgroup) that `lab down` stops with the others.

use std::time::Duration;

use strait_dataplane::netns;

use crate::{
    LabError, cgroup,
    cluster::Lab,
    process::{self, Placement},
    workload::{self, Listen},
};

/// The identity the external server answers with.
pub const EXTERNAL_IDENTITY: &str = "external";

/// The ports the external server answers on, over TCP and UDP each: those the lab's examples and the
/// upstream NetworkPolicy model's pods serve (80, 81), the usual alternates (8080, 443) and DNS (53,
/// 5353).
pub const EXTERNAL_PORTS: [u16; 6] = [53, 80, 81, 443, 5353, 8080];

/// How long the external server may take to bind its ports.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// What the external server listens on: every [`EXTERNAL_PORTS`] port over TCP and UDP.
pub fn external_listen() -> Vec<Listen> {
    EXTERNAL_PORTS
        .iter()
        .flat_map(|p| [Listen::Tcp(*p), Listen::Udp(*p)])
        .collect()
}

impl Lab {
    /// Starts the external server (see the module documentation) and records its pid.
    pub(crate) fn start_external_server(&mut self) -> Result<(), LabError> {
        let cgroup_dir = cgroup::create(&format!("{}/external", self.names.cgroup()))?;
        let dir = self.names.run_dir().join("external");
        let pid = workload::spawn(&workload::Start {
            bin_dir: &self.bin_dir,
            lab: &self.names.lab,
            identity: EXTERNAL_IDENTITY,
            listen: &external_listen(),
            placement: Placement {
                netns: netns::path(&self.names.external_netns()),
                cgroup: Some(cgroup_dir),
                resolv_conf: None,
            },
            ready_file: dir.join("server.ready"),
            log_file: dir.join("server.log"),
            timeout: READY_TIMEOUT,
        })?;
        tracing::info!(pid, "external server running");
        self.state.external_pid = pid;
        self.save()
    }

    /// Whether the external server is running.
    pub fn external_server_running(&self) -> bool {
        self.state.external_pid > 0 && process::alive(self.state.external_pid)
    }
}
