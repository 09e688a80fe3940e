//! The agent's life: mount bpffs, load (adopting pins), restore endpoints, serve the CNI socket and HTTP,
//! read the policy verdicts, and on SIGTERM/SIGINT stop serving while leaving the data path in place,
//! so pods keep talking while the agent is down or being upgraded.

use std::sync::Arc;

use anyhow::Context as _;
use strait_dataplane::{
    Dataplane, DataplaneError, LoadOptions, bpffs, conntrack, netlink::Netlink,
    policy_events::AsyncPolicyEvents,
};
use strait_dns::{
    forward::{ForwardCounters, Forwarder},
    metrics::ServerCounters,
    server::DnsServer,
};
use tokio::{net::TcpListener, signal::unix::SignalKind, sync::Mutex};

use crate::{
    api, census,
    config::{AgentConfig, UplinkXdp},
    conntrack_gc,
    dns::{DnsObserved, DnsSettings, NodeLocalDns, ZoneHandle},
    endpoints::EndpointManager,
    flows::{self, FlowHub, FlowNames},
    http::{self, HttpState},
    model::{kube_source::KubeSource, source::ManifestDirSource},
    node_annotations, overlay, services,
};

/// Runs the agent until a termination signal.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    tracing::info!(node = %config.node_name, pod_cidr = %config.pod_cidr, "straitd starting");
    let mut dataplane = load_data_path(&config)?;
    reserve_ports(config.node_port_range)?;
    let netlink = Netlink::connect().context("opening netlink")?;
    if let Some(cgroup) = &config.cgroup {
        attach_socket_lb(&mut dataplane, cgroup)?;
    }
    if let Some(uplink) = &config.uplink {
        attach_uplink(&config, uplink, &mut dataplane, &netlink).await?;
    }
    let overlay = setup_overlay(&config, &mut dataplane, &netlink).await?;
    let mut manager = EndpointManager::new(&config, dataplane, netlink)?;
    manager.set_pod_mtu(overlay.and_then(|o| o.pod_mtu));
    let report = manager.restore().await.context("restoring endpoints")?;
    tracing::info!(
        adopted = report.adopted,
        dropped = report.dropped,
        stale_map_entries = report.stale_map_entries,
        deletions_finished = report.deletions_finished,
        deletions_pending = report.deletions_pending,
        "endpoints restored"
    );
    let endpoint_gauges = manager.gauges();
    let counters = manager
        .dataplane()
        .stats_reader()
        .context("opening the STATS map for /metrics")?;
    let (census_board, census_task, conntrack_reader) = start_census(manager.dataplane())?;
    let names = FlowNames::default();
    let (flows, flows_task) = start_flows(&config, manager.dataplane(), &names);
    let policy_names = config.policy_settings().is_some().then(|| names.clone());
    let manager = Arc::new(Mutex::new(manager));

    let (socket, bound_socket) = api::bind(&config.socket)?;
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("listening for HTTP on {}", config.http_addr))?;
    tracing::info!(socket = %config.socket.display(), http = %config.http_addr, "serving");
    let api_task = tokio::spawn(api::serve(socket, manager.clone()));
    let clock = services::SyncClock::default();
    let source = object_source(&config).await?;
    let annotations_task = publish_annotations(&config, overlay.as_ref()).await?;
    let conntrack_stats = conntrack_gc::ConntrackStats::default();
    let sweep_task = tokio::spawn(conntrack_gc::run(manager.clone(), conntrack_stats.clone()));
    let dns = start_dns(&config);
    point_dns_fast_path(&manager, dns.as_ref()).await;
    let settings = services::SyncSettings {
        overlay: overlay.map(|o| o.routing),
        dns: dns.as_ref().map(|d| d.sync.clone()),
        ..config.sync_settings()
    };
    let sync_task = source.map(|(source, origin)| {
        tokio::spawn(services::run_with_policy(
            source,
            origin,
            settings,
            config.policy_settings(),
            names,
            manager.clone(),
            clock.clone(),
        ))
    });
    let http_task = tokio::spawn(http::serve(
        http_listener,
        HttpState {
            node: config.node_name.clone(),
            endpoint_capacity: config.endpoint_capacity,
            endpoints: endpoint_gauges,
            counters: Arc::new(counters),
            sync_clock: clock.clone(),
            conntrack: conntrack_stats,
            conntrack_capacity: config.conntrack_capacity,
            flows,
            dns: dns.as_ref().map(|d| d.observed.clone()),
            census: census_board,
            conntrack_reader: Some(Arc::new(conntrack_reader)),
            policy_names,
        },
    ));

    wait_for_stop_signal().await?;
    api_task.abort();
    http_task.abort();
    for task in sync_task
        .into_iter()
        .chain(annotations_task)
        .chain(flows_task)
        .chain([sweep_task, census_task])
    {
        task.abort();
    }
    if let Some(dns) = dns {
        dns.server.stop().await;
    }
    // Wait for an in-flight request to finish before leaving.
    let _guard = manager.lock().await;
    release_socket(&bound_socket);
    tracing::info!("straitd stopped; the data path stays in place");
    Ok(())
}

/// Attaches socket load balancing to the pods' cgroup.
fn attach_socket_lb(
    dataplane: &mut strait_dataplane::Dataplane,
    cgroup: &std::path::Path,
) -> anyhow::Result<()> {
    dataplane.attach_socket_lb(cgroup).with_context(|| {
        format!(
            "attaching socket load balancing to cgroup {}",
            cgroup.display()
        )
    })?;
    tracing::info!(cgroup = %cgroup.display(), "socket load balancing attached");
    Ok(())
}

/// Opens the census's own map descriptors and starts taking it (the board it publishes on, its
/// task), and opens the CT map for `/conntrack`.
fn start_census(
    dataplane: &strait_dataplane::Dataplane,
) -> anyhow::Result<(
    census::CensusBoard,
    tokio::task::JoinHandle<()>,
    strait_dataplane::conntrack_view::ConntrackReader,
)> {
    let census = dataplane
        .census()
        .context("opening the maps for the census")?;
    let conntrack = dataplane
        .conntrack_reader()
        .context("opening the CT map for /conntrack")?;
    let board = census::CensusBoard::default();
    let task = tokio::spawn(census::run(census, board.clone()));
    Ok((board, task, conntrack))
}

/// Returns on SIGTERM or SIGINT.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())
        .context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

/// Points the kernel DNS fast path at the running server's listener (saying whether it forwards), or
/// turns it off: no DNS here, or `--dns-fast-path false`. A failure is logged: the server answers.
async fn point_dns_fast_path(manager: &Mutex<EndpointManager>, dns: Option<&DnsStarted>) {
    let target = dns.filter(|d| d.sync.0.fast_path).map(|d| {
        let forwards = d.observed.forwarder.is_active();
        (d.sync.1.listen, forwards)
    });
    let mut manager = manager.lock().await;
    let dataplane = manager.dataplane_mut();
    let written = match target {
        Some((listen, forwards)) => dataplane.set_dns_fast(Some(listen), forwards),
        None => dataplane.set_dns_fast(None, false),
    };
    match written {
        Ok(()) => tracing::info!(on = target.is_some(), "kernel DNS fast path set"),
        Err(error) => tracing::warn!(%error, "kernel DNS fast path not set"),
    }
}

/// The running DNS server, what the sync loop needs to keep its zone and lead the DNS Service
/// here, and what `/metrics` shows of it.
struct DnsStarted {
    sync: (DnsSettings, NodeLocalDns),
    server: DnsServer<ZoneHandle>,
    observed: DnsObserved,
}

/// Starts the cluster DNS server, when configured and there is an address to listen on. A server that
/// cannot listen is logged and the agent goes on without DNS.
fn start_dns(config: &AgentConfig) -> Option<DnsStarted> {
    let dns = config.dns.as_ref()?;
    let Some(listen) = dns.listen.or_else(|| {
        config
            .node_ip
            .map(|ip| std::net::SocketAddrV4::new(ip, crate::dns::DNS_PORT))
    }) else {
        tracing::warn!("cluster DNS off: no --node-ip or --dns-listen to serve it on");
        return None;
    };
    let handle = ZoneHandle::new(dns.zone.clone());
    let counters = Arc::new(ServerCounters::default());
    let forward = Arc::new(ForwardCounters::default());
    let forwarder = Arc::new(Forwarder::new(dns.forward.clone(), forward.clone()));
    let server = DnsServer::start(
        listen.into(),
        handle.clone(),
        forwarder.clone(),
        counters.clone(),
        dns.threads,
    )
    .inspect_err(|error| tracing::error!(%error, "cluster DNS off: its server cannot listen"))
    .ok()?;
    let (namespace, name) = dns.service.clone();
    tracing::info!(
        listen = %server.local_addr,
        threads = server.threads,
        service = %format!("{namespace}/{name}"),
        domain = %dns.zone.domain,
        upstreams = ?dns.forward.upstreams,
        "cluster DNS serving"
    );
    let observed = DnsObserved {
        server: format!("dns://{}", server.local_addr),
        counters,
        forward,
        forwarder,
        zone: handle.clone(),
    };
    let local = NodeLocalDns {
        namespace,
        name,
        listen,
    };
    let settings = DnsSettings {
        zone: dns.zone.clone(),
        handle,
        fast_path: dns.fast_path,
    };
    Some(DnsStarted {
        sync: (settings, local),
        server,
        observed,
    })
}

/// Starts reading the policy verdicts of `dataplane` into a [`FlowHub`] (named with `names`); no hub
/// when the data path has no verdict ring buffer or it cannot be read (logged: the agent goes on
/// without `/flows`).
fn start_flows(
    config: &AgentConfig,
    dataplane: &Dataplane,
    names: &FlowNames,
) -> (Option<FlowHub>, Option<tokio::task::JoinHandle<()>>) {
    let events = dataplane.policy_events().and_then(|events| {
        AsyncPolicyEvents::new(events)
            .map_err(|e| DataplaneError::io("watching the policy verdict ring buffer", e))
    });
    match events {
        Ok(events) => {
            let lost = dataplane
                .policy_lost_reader()
                .inspect_err(|error| {
                    tracing::warn!(%error, "lost policy verdicts are not counted on this node");
                })
                .ok();
            let hub = FlowHub::with_lost(&config.node_name, lost);
            let task = tokio::spawn(flows::run(events, names.clone(), hub.clone()));
            (Some(hub), Some(task))
        }
        Err(error) => {
            tracing::warn!(%error, "policy verdicts are not read: /flows is off on this node");
            (None, None)
        }
    }
}

/// Under `--kube` with the overlay on: publishes this node's Flannel annotations on its Node (retried
/// in the background until the API server takes them).
async fn publish_annotations(
    config: &AgentConfig,
    overlay: Option<&overlay::Overlay>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let (true, Some(_), Some(node_ip)) = (config.kube, overlay, config.node_ip) else {
        return Ok(None);
    };
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API to publish the node's overlay annotations")?;
    Ok(Some(tokio::spawn(node_annotations::publish_until_done(
        client,
        config.node_name.clone(),
        node_ip,
        strait_dataplane::netlink::vxlan::vtep_mac(node_ip),
        config.overlay.vni,
        std::time::Duration::from_secs(5),
    ))))
}

/// Where the cluster's objects come from: the Kubernetes API (`--kube`), a manifest directory, or
/// nowhere; with the name logs give it.
async fn object_source(
    config: &AgentConfig,
) -> anyhow::Result<Option<(services::BoxedSource, String)>> {
    Ok(if config.kube {
        let policy = config.network_policy != crate::config::PolicyMode::Off;
        let source = KubeSource::try_default(&config.node_name, policy)
            .await
            .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;
        Some((Box::new(source), "kubernetes-api".to_owned()))
    } else {
        config.manifests.clone().map(|dir| {
            let origin = dir.display().to_string();
            (
                Box::new(ManifestDirSource::new(dir)) as services::BoxedSource,
                origin,
            )
        })
    })
}

/// Removes the agent socket unless another agent has bound the path since.
fn release_socket(bound: &api::BoundSocket) {
    match bound.remove_if_ours() {
        Ok(true) => {}
        Ok(false) => tracing::info!(
            "the agent socket is no longer this agent's (another agent bound the path); left in place"
        ),
        Err(error) => tracing::warn!(%error, "removing the agent socket failed"),
    }
}

/// Attaches the uplink programs (XDP + tcx ingress) and records the node's address and uplink for them.
/// Loads (or adopts the pinned) eBPF data path with the configured capacities.
fn load_data_path(config: &AgentConfig) -> anyhow::Result<Dataplane> {
    bpffs::ensure_mounted(&config.bpffs).context("preparing bpffs")?;
    let dataplane = Dataplane::load(&LoadOptions {
        pin_dir: Some(config.pin_dir()),
        endpoint_capacity: config.endpoint_capacity,
        service_capacity: config.service_capacity,
        backend_capacity: config.backend_capacity,
        conntrack_capacity: config.conntrack_capacity,
        xdp_fast_path: config.xdp_fast_path,
        masquerade: config.masquerade,
        cluster_cidr: (
            config.cluster_cidr.network(),
            config.cluster_cidr.prefix_len(),
        ),
    })
    .context("loading the eBPF data path")?;
    tracing::info!(
        pins = %config.pin_dir().display(),
        xdp_fast_path = config.xdp_fast_path,
        masquerade = config.masquerade,
        "data path loaded"
    );
    Ok(dataplane)
}

/// Keeps the node's own connections off ports the data path answers for: the SNAT ports (see
/// [`conntrack::SNAT_PORTS`]) and the cluster's NodePort range (`--node-port-range`), whose
/// replies would be taken for NodePort traffic. The agent does not start without that.
fn reserve_ports(node_ports: Option<(u16, u16)>) -> anyhow::Result<()> {
    let snat = ("SNAT ports", conntrack::SNAT_PORTS);
    let node_ports = node_ports.map(|range| ("NodePort range", range));
    for (what, (first, last)) in std::iter::once(snat).chain(node_ports) {
        let reserved = strait_dataplane::sysctl::reserve_local_ports(first, last).with_context(|| {
            format!(
                "reserving the {what} {first}-{last} in net.ipv4.ip_local_reserved_ports (the node's \
                 own connections must never take them as source ports)"
            )
        })?;
        if reserved {
            tracing::info!(
                "reserved the {what} {first}-{last} in net.ipv4.ip_local_reserved_ports"
            );
        }
    }
    Ok(())
}

/// Sets up the overlay when it runs (see [`AgentConfig::overlay_active`]).
async fn setup_overlay(
    config: &AgentConfig,
    dataplane: &mut Dataplane,
    netlink: &Netlink,
) -> anyhow::Result<Option<overlay::Overlay>> {
    let (Some(uplink), Some(node_ip)) = (&config.uplink, config.node_ip) else {
        if config.overlay.mode != overlay::OverlayMode::Off {
            tracing::info!("overlay off: it needs --uplink and --node-ip");
        }
        return Ok(None);
    };
    let node = overlay::OverlayNode {
        uplink,
        node_ip,
        pod_cidr: config.pod_cidr,
        cluster_cidr: config.cluster_cidr,
    };
    overlay::setup(&config.overlay, &node, dataplane, netlink).await
}

async fn attach_uplink(
    config: &AgentConfig,
    uplink: &str,
    dataplane: &mut Dataplane,
    netlink: &Netlink,
) -> anyhow::Result<()> {
    let ifindex = netlink
        .require_link(uplink)
        .await
        .with_context(|| format!("finding the uplink {uplink}"))?;
    let kind = netlink
        .link_kind(uplink)
        .await
        .with_context(|| format!("reading the link kind of {uplink}"))?;
    let (mut xdp_mode, why) = config.xdp_mode.resolve(kind.as_deref());
    let attached = dataplane.attach_uplink(uplink, xdp_mode);
    match attached {
        Err(e) if config.xdp_mode == UplinkXdp::Auto && xdp_mode.is_some() => {
            tracing::warn!(%uplink, error = %e, "auto: the driver refused native XDP; tc alone serves the uplink");
            xdp_mode = None;
            dataplane.attach_uplink(uplink, None)
        }
        other => other,
    }
    .with_context(|| format!("attaching the uplink programs to {uplink}"))?;
    let node_ip = config.node_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    dataplane
        .set_node(node_ip, ifindex)
        .context("writing the node map")?;
    match xdp_mode {
        Some(mode) => {
            tracing::info!(%uplink, ifindex, %node_ip, ?mode, why, "uplink programs attached (XDP + tcx ingress)");
        }
        None => {
            tracing::info!(%uplink, ifindex, %node_ip, why, "uplink program attached (tcx ingress; no XDP)");
        }
    }
    Ok(())
}
