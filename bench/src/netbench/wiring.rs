//! One dataplane's lab, ready to measure: builds it (a strait lab, or the bridge lab with kube-proxy's
//! rules or none), programs the run's Services, says where the client and the server run and what the
//! client connects to ([`Wiring`]), starts the benchmark server ([`ServerGuard`]) and runs one load test
//! from the client's namespace and cgroup ([`run_client`]).

use std::{
    io::{BufRead as _, BufReader},
    net::{Ipv4Addr, SocketAddr},
    process::{Child, Command, Stdio},
    time::Duration,
};

use strait_lab::{
    LabError,
    process::{self as lab_process, Placement},
};

use super::{
    bridge_lab::{self, BridgeLab},
    catalog::{Catalog, SERVER_PORT, TARGET_NODE_PORT, TARGET_PORT, TargetPosition},
    kube_iptables::{self, KubeProxyConfig},
    kube_nftables, load, memory,
    results::{Dataplane, Programming, Scenario, Test},
    run::{RunError, progress},
    strait_stack::{StraitStack, signed_delta},
};

/// The target Service's ClusterIP in every dataplane.
pub const TARGET_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// What one cell needs from its lab: where the client and server run and what the client connects to.
pub struct Wiring {
    pub client: Placement,
    pub server: Placement,
    pub target: SocketAddr,
    pub programming: Option<Programming>,
}

/// A lab of either kind, removed when dropped.
pub enum AnyLab {
    Strait(StraitStack),
    Bridge(BridgeLab),
}

impl AnyLab {
    pub fn name(&self) -> &str {
        match self {
            Self::Strait(stack) => stack.name(),
            Self::Bridge(lab) => lab.name(),
        }
    }
}

/// What the Services of a cell look like.
#[derive(Clone, Copy, Debug)]
pub struct ServiceSet {
    /// Services in all, the target included.
    pub services: usize,
    /// Endpoints of each filler.
    pub endpoints: usize,
    pub position: TargetPosition,
    /// How long strait's agent may take to sync them.
    pub sync_timeout: Duration,
}

fn lab_error(what: impl Into<String>) -> impl FnOnce(LabError) -> RunError {
    let what = what.into();
    move |source| RunError::Lab {
        what,
        source: Box::new(source),
    }
}

/// Builds the cell's lab and programs its Services.
pub fn build(
    lab_name: &str,
    dataplane: Dataplane,
    scenario: Scenario,
    set: ServiceSet,
) -> Result<(AnyLab, Wiring), RunError> {
    let fillers = set.services - 1;
    if dataplane == Dataplane::Strait {
        let stack = StraitStack::up(lab_name).map_err(lab_error("bringing up the strait lab"))?;
        let placement = |who: &str| {
            stack
                .placement(who)
                .map_err(lab_error(format!("placing {who}")))
        };
        let server_ip = stack
            .pod_ip("server")
            .map_err(lab_error("finding the server pod"))?;
        let catalog = Catalog::new(
            TARGET_VIP,
            &[server_ip],
            fillers,
            set.endpoints,
            set.position,
        );
        let programming = stack
            .program(&catalog, set.sync_timeout)
            .map_err(lab_error("programming the services"))?;
        let target = match scenario {
            Scenario::PodToPod => SocketAddr::from((server_ip, SERVER_PORT)),
            Scenario::PodToClusterIp => SocketAddr::from((TARGET_VIP, TARGET_PORT)),
            Scenario::ExternalToNodePort => SocketAddr::from((stack.node_ip(), TARGET_NODE_PORT)),
        };
        let client = match scenario {
            Scenario::ExternalToNodePort => placement("external")?,
            _ => placement("netbench/client")?,
        };
        let wiring = Wiring {
            client,
            server: placement("netbench/server")?,
            target,
            programming: Some(programming),
        };
        return Ok((AnyLab::Strait(stack), wiring));
    }
    let lab = BridgeLab::up(lab_name).map_err(lab_error("bringing up the bridge lab"))?;
    let node_ip = strait_lab::network::node_ip(1);
    let catalog = Catalog::new(
        TARGET_VIP,
        &[bridge_lab::SERVER_IP],
        fillers,
        set.endpoints,
        set.position,
    );
    let config = KubeProxyConfig::default();
    let programming = match dataplane {
        Dataplane::KubeProxyIptables => {
            let rules = kube_iptables::iptables_restore(&catalog.frontends(), &config);
            Some(load_rules(rules.rules, || lab.load_iptables(&rules.text))?)
        }
        Dataplane::KubeProxyNftables => {
            let rules = kube_nftables::nft_ruleset(&catalog.frontends(), &config);
            Some(load_rules(rules.rules, || lab.load_nftables(&rules.text))?)
        }
        _ => None,
    };
    let server = SocketAddr::from((bridge_lab::SERVER_IP, SERVER_PORT));
    let target = match (dataplane, scenario) {
        (Dataplane::Direct, _) | (_, Scenario::PodToPod) => server,
        (_, Scenario::PodToClusterIp) => SocketAddr::from((TARGET_VIP, TARGET_PORT)),
        (_, Scenario::ExternalToNodePort) => SocketAddr::from((node_ip, TARGET_NODE_PORT)),
    };
    let client = match scenario {
        Scenario::ExternalToNodePort => lab.external(),
        _ => lab.client(),
    };
    let wiring = Wiring {
        client,
        server: lab.server(),
        target,
        programming,
    };
    Ok((AnyLab::Bridge(lab), wiring))
}

/// Times a rules load and the kernel memory it took.
fn load_rules(
    objects: usize,
    load: impl FnOnce() -> Result<bridge_lab::Loaded, LabError>,
) -> Result<Programming, RunError> {
    let before = memory::kernel_kib();
    let loaded = load().map_err(lab_error("loading kube-proxy's rules"))?;
    let after = memory::kernel_kib();
    Ok(Programming {
        wall_ms: loaded.took.as_secs_f64() * 1000.0,
        kernel_kib: signed_delta(before, after),
        agent_rss_kib: None,
        bpf_map_kib: None,
        objects: objects as u64,
    })
}

/// The same client-side settings for every dataplane: the whole port range, and reuse of TIME_WAIT
/// ports, so a connection-rate test measures the path rather than the client's ephemeral ports.
pub fn tune_client(client: &Placement) -> Result<(), RunError> {
    let dataplane_error = |source| RunError::Dataplane {
        what: "tuning the client's namespace".to_owned(),
        source: Box::new(source),
    };
    strait_dataplane::netns::run_in(&client.netns, || {
        strait_dataplane::sysctl::write("net.ipv4.ip_local_port_range", "1024 65535")?;
        strait_dataplane::sysctl::write("net.ipv4.tcp_tw_reuse", "1")
    })
    .map_err(dataplane_error)?
    .map_err(dataplane_error)
}

pub(crate) fn current_exe() -> Result<std::path::PathBuf, RunError> {
    std::env::current_exe().map_err(|source| RunError::Io {
        what: "finding the current executable".to_owned(),
        source,
    })
}

/// The benchmark server in the server pod, killed when dropped.
pub struct ServerGuard {
    child: Child,
}

impl ServerGuard {
    /// Starts `netbench serve` in `placement` and waits for its ready line.
    pub fn start(placement: &Placement, lab: &str) -> Result<Self, RunError> {
        let mut command = Command::new(current_exe()?);
        command
            .args(["serve", "--port", &SERVER_PORT.to_string()])
            .env("STRAIT_LAB", lab)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = lab_process::spawn_in(placement, &mut command, false)
            .map_err(lab_error("starting the benchmark server"))?;
        let stdout = child.stdout.take();
        let mut guard = Self { child };
        let mut line = String::new();
        if let Some(stdout) = stdout {
            BufReader::new(stdout)
                .read_line(&mut line)
                .map_err(|source| RunError::Io {
                    what: "reading the server's ready line".to_owned(),
                    source,
                })?;
        }
        if !line.starts_with("ready") {
            guard.ensure_alive()?;
            return Err(RunError::ServerNotReady(line));
        }
        Ok(guard)
    }

    /// Fails when the server has exited.
    pub fn ensure_alive(&mut self) -> Result<(), RunError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(RunError::ServerExited(status)),
            Ok(None) => Ok(()),
            Err(source) => Err(RunError::Io {
                what: "checking on the benchmark server".to_owned(),
                source,
            }),
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one load test in the client's namespace (and cgroup) and parses its JSON line.
pub fn run_client(
    wiring: &Wiring,
    lab: &str,
    test: Test,
    seconds: f64,
) -> Result<load::Outcome, RunError> {
    let mut command = Command::new(current_exe()?);
    command
        .args(["client", "--test", test.name(), "--target"])
        .arg(wiring.target.to_string())
        .arg("--seconds")
        .arg(seconds.to_string())
        .env("STRAIT_LAB", lab)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = lab_process::spawn_in(&wiring.client, &mut command, false)
        .map_err(lab_error("starting the load client"))?;
    let output = child.wait_with_output().map_err(|source| RunError::Io {
        what: "waiting for the client".to_owned(),
        source,
    })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(RunError::Client {
            test: test.name(),
            target: wiring.target,
            status: output.status,
            stderr: stderr.trim().to_owned(),
        });
    }
    for note in stderr.lines() {
        progress(format_args!("    {note}"));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    load::parse_outcome(line).map_err(|source| RunError::ClientAnswer {
        line: line.to_owned(),
        source,
    })
}
