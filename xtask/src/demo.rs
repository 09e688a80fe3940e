//! `cargo xtask demo`: bootstrap, build release binaries, then a scripted tour of a two-node lab named
//! `demo` built from `examples/` (pods on both nodes, joined by the VXLAN overlay). Every command is printed (`$ ...`) before it runs; the lab is left up
//! for exploring, with the commands to do so and to tear it down printed at the end.

use std::{
    io::Write as _,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::{Workspace, bootstrap, cmd};

mod policy;

/// The lab's name.
const LAB: &str = "demo";

/// Runs the whole demo.
pub fn run(ws: &Workspace) -> Result<()> {
    bootstrap::run(ws)?;
    heading("build the release binaries");
    cmd::run(Command::new("cargo").args(["build", "--release", "--bins"]))?;

    let lab = Lab {
        strait: ws.target.join("release").join("strait"),
    };
    ensure!(
        cmd::is_executable(&lab.strait),
        "the build produced no {}",
        lab.strait.display()
    );
    ensure!(
        cmd::is_root()?,
        "the demo needs root (the lab creates network namespaces and loads eBPF programs): run \
         `cargo xtask demo` as root"
    );

    let down = cmd::display(&lab.command("down", &[]));
    tour(&lab).with_context(|| {
        format!("the demo failed; the lab may be partly up, tear it down with: {down}")
    })?;
    heading("the same agent in a real cluster: the manifests, rendered with your cluster's values");
    let out = ws.target.join("demo-install");
    cmd::run(
        Command::new(&lab.strait)
            .args(["install", "--out"])
            .arg(&out)
            .args([
                "--cluster-cidr",
                "10.244.0.0/16",
                "--cluster-dns-ip",
                "10.96.0.10",
            ]),
    )?;
    explore(&lab);
    Ok(())
}

/// The `strait lab ... --name demo` commands, run with the release binary.
struct Lab {
    strait: PathBuf,
}

impl Lab {
    fn command(&self, subcommand: &str, rest: &[&str]) -> Command {
        let mut command = Command::new(&self.strait);
        command.args(["lab", subcommand, "--name", LAB]).args(rest);
        command
    }

    fn run(&self, what: &str, subcommand: &str, rest: &[&str]) -> Result<()> {
        heading(what);
        cmd::run(&mut self.command(subcommand, rest)).with_context(|| format!("demo step: {what}"))
    }

    /// Runs `strait <words...> --name demo <rest...>` (the inspection commands outside `lab`).
    fn inspect(&self, what: &str, words: &[&str], rest: &[&str]) -> Result<()> {
        heading(what);
        let mut command = Command::new(&self.strait);
        command.args(words).args(["--name", LAB]).args(rest);
        cmd::run(&mut command).with_context(|| format!("demo step: {what}"))
    }

    /// Shows and runs `strait lab apply -f -` with `manifest` on standard input (as a here-document).
    /// With `refused`, the lab must refuse it (non-zero exit) and the step succeeds when it does.
    fn apply_stdin(&self, what: &str, manifest: &str, refused: bool) -> Result<()> {
        heading(what);
        let mut command = self.command("apply", &["-f", "-"]);
        println!("$ {} <<'YAML'\n{manifest}YAML", cmd::display(&command));
        let mut child = command
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("demo step: {what}: cannot start strait"))?;
        child
            .stdin
            .take()
            .context("no stdin pipe")?
            .write_all(manifest.as_bytes())
            .with_context(|| format!("demo step: {what}: writing the manifest"))?;
        let status = child.wait().context("waiting for strait")?;
        if refused {
            ensure!(
                !status.success(),
                "demo step: {what}: the lab accepted a manifest an API server refuses"
            );
            println!("(refused: {status}; nothing of it was applied)");
        } else {
            ensure!(status.success(), "demo step: {what}: failed ({status})");
        }
        Ok(())
    }
}

/// A Namespace, a Service in it that selects no pod (status flags it), and a NodePort Service for the
/// `web` Deployment of examples/ on node port [`NODE_PORT`].
const NEW_OBJECTS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http, nodePort: 30080}]
";

/// The node port of `web-np` in [`NEW_OBJECTS`].
const NODE_PORT: u16 = 30080;

/// A pod on node `NODE` whose container port 80 is the node's port [`HOST_PORT`].
const HOST_PORT_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: edge, namespace: default}
spec:
  nodeName: NODE
  containers: [{name: edge, image: nginx, ports: [{containerPort: 80, hostPort: 8080}]}]
";

/// The host port of [`HOST_PORT_POD`].
const HOST_PORT: u16 = 8080;

/// A misspelt field, refused as `kubectl apply` (strict field validation) refuses it.
const MISSPELT: &str = "apiVersion: v1
kind: Service
metadata: {name: typo, namespace: default}
spec:
  selecter: {app: web}
  ports: [{port: 80}]
";

/// A node port that `web-np` holds over TCP, asked for over UDP: the API server allocates node ports per
/// number, whatever the protocol.
const PORT_TAKEN: &str = "apiVersion: v1
kind: Service
metadata: {name: dns-np, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 53, protocol: UDP, nodePort: 30080}]
";

fn tour(lab: &Lab) -> Result<()> {
    heading("clear an earlier demo lab, if any");
    if let Err(err) = cmd::run(&mut lab.command("down", &[])) {
        println!("note: ignored ({err:#}); there was probably no earlier lab");
    }
    lab.run(
        "bring up a two-node lab with the manifests in examples/ (pods spread over both nodes)",
        "up",
        &["--nodes", "2", "--manifests", "examples/"],
    )?;
    lab.run("nodes, pods and services", "status", &[])?;
    manifests(lab)?;

    heading("pick two pods from the lab's JSON status");
    let json = cmd::output(&mut lab.command("status", &["-o", "json"]))
        .context("demo step: read the lab's JSON status")?;
    let [a, b] = two_pods(&json)?;
    println!(
        "A = {} ({}, on {}), B = {} ({}, on {})",
        a.key, a.ip, a.node, b.key, b.ip, b.node
    );
    let path = if a.node == b.node {
        "on one node"
    } else {
        "from node to node through the VXLAN overlay"
    };

    let b_tcp = b.tcp.with_context(|| {
        format!(
            "pod B ({}) declares no TCP port: the demo probes its first TCP containerPort",
            b.key
        )
    })?;
    let target = SocketAddr::new(b.ip, b_tcp).to_string();
    lab.run(
        &format!("TCP from A to B ({target}), {path}"),
        "probe",
        &[&a.key, &target],
    )?;
    match a.tcp {
        Some(port) => {
            let target = SocketAddr::new(a.ip, port).to_string();
            lab.run(
                &format!("TCP from B to A ({target})"),
                "probe",
                &[&b.key, &target],
            )?;
        }
        None => println!(
            "\nnote: pod A ({}) declares no TCP port; skipping the B -> A probe",
            a.key
        ),
    }
    if let Some(port) = b.udp {
        let target = SocketAddr::new(b.ip, port).to_string();
        lab.run(
            &format!("UDP from A to B ({target})"),
            "probe",
            &["--udp", &a.key, &target],
        )?;
    }

    let b_ip = b.ip.to_string();
    lab.run(
        "ping B from inside A",
        "exec",
        &[&a.key, "--", "ping", "-c", "3", &b_ip],
    )?;
    let status: Value = serde_json::from_str(&json).context("reading the lab's JSON status")?;
    if let Some(node) = status["nodes"][0]["name"].as_str() {
        lab.run(
            "IP forwarding is off on the node: only strait's eBPF program moved those packets",
            "exec",
            &[
                &format!("node/{node}"),
                "--",
                "cat",
                "/proc/sys/net/ipv4/ip_forward",
            ],
        )?;
    }
    outside_the_cluster(lab, &status, &a.key)?;
    let web = status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|svc| svc["namespace"] == "default" && svc["name"] == "web")
        .and_then(|svc| svc["cluster_ip"].as_str());
    if let Some(cluster_ip) = web {
        cluster_ip_over_both_nodes(lab, &a.key, cluster_ip)?;
        cluster_dns(lab, &a.key)?;
    }
    policy::tour(lab, &a, &b, b_tcp)?;
    observe(lab)
}

/// What the agents show of the data path: endpoints, counters, map fill, tracked flows, DNS records.
fn observe(lab: &Lab) -> Result<()> {
    lab.run("the agent's endpoint table", "endpoints", &[])?;
    lab.run("the agent's counters", "metrics", &[])?;
    lab.inspect(
        "every eBPF map's fill and the links running each program (the agent's census)",
        &["maps"],
        &["-o", "wide"],
    )?;
    lab.inspect(
        "the flows the per-packet service path tracks (the NodePort probe from outside)",
        &["ct", "list"],
        &["-o", "wide"],
    )?;
    lab.inspect(
        "the web Service's DNS records, and which path answers each",
        &["dns", "records"],
        &["--filter", "web"],
    )?;
    Ok(())
}

/// Traffic crossing the cluster's edge: the NodePort from outside (SNAT to the node) and pod `from`
/// reaching the lab's external server (masqueraded to its node's address).
fn outside_the_cluster(lab: &Lab, status: &serde_json::Value, from: &str) -> Result<()> {
    if let Some(node_ip) = status["nodes"][0]["ip"].as_str() {
        let target = format!("{node_ip}:{NODE_PORT}");
        lab.run(
            &format!("the NodePort Service from outside the cluster ({target}); the pod saw the node's SNAT address"),
            "probe",
            &["--show-peer", "external", &target],
        )?;
    }
    if let (Some(node), Some(node_ip)) = (
        status["nodes"][0]["name"].as_str(),
        status["nodes"][0]["ip"].as_str(),
    ) {
        lab.apply_stdin(
            "a pod with a hostPort (no portmap, no iptables: the agent maps it from the Pod object)",
            &HOST_PORT_POD.replace("NODE", node),
            false,
        )?;
        let target = format!("{node_ip}:{HOST_PORT}");
        lab.run(
            &format!("its host port from outside the cluster ({target}); the pod saw the client's own address"),
            "probe",
            &["--show-peer", "external", &target],
        )?;
    }
    lab.run(
        &format!(
            "from {from} to the lab's external server (172.30.0.2, outside the cluster): it sees the pod's node address (masquerade)"
        ),
        "probe",
        &["--show-peer", from, "172.30.0.2:80"],
    )?;
    Ok(())
}

/// The `web` Service's ClusterIP from pod `from`, a few times: its endpoints on both nodes answer.
fn cluster_ip_over_both_nodes(lab: &Lab, from: &str, cluster_ip: &str) -> Result<()> {
    let target = format!("{cluster_ip}:80");
    heading(&format!(
        "the web Service ({target}) from {from}, six times: endpoints on both nodes answer"
    ));
    for _ in 0..6 {
        cmd::run(&mut lab.command("probe", &[from, &target]))?;
    }
    Ok(())
}

/// Cluster DNS from pod `from`: the resolv.conf the kubelet would write, the web Service by its short
/// name (the search path finds it), answered by the pod's own node, in the kernel.
fn cluster_dns(lab: &Lab, from: &str) -> Result<()> {
    lab.run(
        "the pod's resolv.conf, as the kubelet writes it: the kube-dns Service, the search path, ndots:5",
        "exec",
        &[from, "--", "cat", "/etc/resolv.conf"],
    )?;
    lab.run(
        "the web Service by its short name, through the search path: answered by the pod's own node, in the kernel (dns-fast dns_answered in the counters at the end)",
        "exec",
        &[from, "--", "dig", "+search", "+noall", "+answer", "web"],
    )?;
    lab.run(
        "a question the kernel hands on (SRV): the node's DNS server answers it",
        "exec",
        &[
            from,
            "--",
            "dig",
            "+noall",
            "+answer",
            "_http._tcp.web.default.svc.cluster.local",
            "SRV",
        ],
    )?;
    lab.run(
        "and glibc, as any program in the pod resolves",
        "exec",
        &[from, "--", "getent", "hosts", "web"],
    )?;
    Ok(())
}

/// `apply` as kubectl answers it: per-object results, standard input, and manifests an API server
/// refuses.
fn manifests(lab: &Lab) -> Result<()> {
    lab.run(
        "apply the same manifests again: each object says what happened to it, as with kubectl",
        "apply",
        &["-f", "examples/"],
    )?;
    lab.apply_stdin(
        "new objects from standard input: a namespace, a Service without pods, a NodePort Service",
        NEW_OBJECTS,
        false,
    )?;
    lab.run(
        "services with their endpoint counts: shop/cart selects no pod",
        "status",
        &[],
    )?;
    lab.apply_stdin(
        "a misspelt field is refused, with the file, document and field named",
        MISSPELT,
        true,
    )?;
    lab.apply_stdin(
        "a node port another Service holds is refused, whatever the protocol",
        PORT_TAKEN,
        true,
    )?;
    Ok(())
}

fn explore(lab: &Lab) {
    let strait = cmd::display(&Command::new(&lab.strait));
    println!(
        "\nThe lab `{LAB}` is up. Explore it with `{strait} lab <subcommand> --name {LAB} ...`:
  status                          nodes, pods and services (`-o wide|json|yaml` for more)
  probe <ns>/<pod> <ip>:<port>    connect from a pod (`--udp` for a UDP exchange)
  exec <ns>/<pod> -- <command>    run a command inside a pod's network namespace
  apply -f <file|dir|->           create or change objects from manifests (`-`: standard input)
  delete -f <file|dir|->          remove the objects of manifests (or: delete networkpolicy NS/NAME)
  reachability                    every pod to every pod, as NetworkPolicy truth tables
Policy questions: `{strait} policy explain --name {LAB} NS/POD NS/POD:PORT`.
  endpoints                       the agent's endpoint table
  metrics                         the agent's counters
Agent logs: /run/strait-lab/{LAB}/nodes/<node>/agent.log; `strait lab list` shows every lab.
For a real cluster: `{strait} install --print | kubectl apply -f -` (README: Installing in a cluster).
Tear it down with: {}",
        cmd::display(&lab.command("down", &[]))
    );
}

fn heading(what: &str) {
    println!("\n# {what}");
}

/// A pod as the demo needs it: `namespace/name`, address, node, labels, first TCP and first UDP port.
#[derive(Debug, Clone)]
struct Pod {
    key: String,
    ip: IpAddr,
    node: String,
    labels: std::collections::BTreeMap<String, String>,
    tcp: Option<u16>,
    udp: Option<u16>,
}

/// Two pods of `strait lab status -o json`: B is the first pod with a UDP port (so the tour can show UDP
/// too), else the second pod; A is the first pod on another node than B (so the tour crosses the
/// overlay), else the first pod that is not B.
fn two_pods(json: &str) -> Result<[Pod; 2]> {
    let status: Value =
        serde_json::from_str(json).context("`strait lab status -o json` printed invalid JSON")?;
    let pods = status
        .get("pods")
        .and_then(Value::as_array)
        .context("`strait lab status -o json` has no `pods` array")?;
    ensure!(
        pods.len() >= 2,
        "the demo needs two pods, the lab has {}: add pods to examples/",
        pods.len()
    );
    // Pods without an address yet cannot be probed; the rest are candidates.
    let pods: Vec<Pod> = pods.iter().filter_map(|p| Pod::from_json(p).ok()).collect();
    ensure!(
        pods.len() >= 2,
        "the demo needs two running pods, the lab has {}",
        pods.len()
    );
    let b = pods.iter().position(|p| p.udp.is_some()).unwrap_or(1);
    let a = pods
        .iter()
        .position(|p| p.node != pods[b].node)
        .unwrap_or(usize::from(b == 0));
    Ok([pods[a].clone(), pods[b].clone()])
}

impl Pod {
    fn from_json(pod: &Value) -> Result<Self> {
        let text = |field: &str| {
            pod.get(field)
                .and_then(Value::as_str)
                .with_context(|| format!("a pod in the lab status has no `{field}`: {pod}"))
        };
        let key = format!("{}/{}", text("namespace")?, text("name")?);
        let node = text("node")?.to_owned();
        let ip = pod
            .get("ip")
            .and_then(Value::as_str)
            .with_context(|| format!("pod {key} has no IP address yet"))?
            .parse()
            .with_context(|| format!("pod {key} has an invalid IP address"))?;
        let (mut tcp, mut udp) = (None, None);
        for port in pod
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let number = port
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .with_context(|| format!("pod {key} has a port without a valid number: {port}"))?;
            // Kubernetes' default protocol is TCP.
            let protocol = port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            if protocol.eq_ignore_ascii_case("tcp") {
                tcp.get_or_insert(number);
            } else if protocol.eq_ignore_ascii_case("udp") {
                udp.get_or_insert(number);
            }
        }
        let labels = pod
            .get("labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        Ok(Self {
            key,
            ip,
            node,
            labels,
            tcp,
            udp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{
        "name": "demo",
        "nodes": [{"name": "node-1", "pod_cidr": "10.244.1.0/24"}],
        "pods": [
            {"namespace": "default", "name": "client", "ip": "10.244.1.2", "node": "node-1",
             "ports": [{"port": 8080, "protocol": "TCP"}]},
            {"namespace": "web", "name": "server", "ip": "10.244.1.3", "node": "node-1",
             "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}, {"port": 81, "protocol": "TCP"}]},
            {"namespace": "web", "name": "pending", "ip": null, "node": "node-1", "ports": []}
        ],
        "services": []
    }"#;

    #[test]
    fn picks_a_udp_pod_as_b_and_another_as_a() {
        let [a, b] = two_pods(STATUS).unwrap();
        assert_eq!(a.key, "default/client");
        assert_eq!(a.ip, "10.244.1.2".parse::<IpAddr>().unwrap());
        assert_eq!((a.tcp, a.udp), (Some(8080), None));
        assert_eq!(b.key, "web/server");
        assert_eq!((b.tcp, b.udp), (Some(80), Some(53)));
    }

    #[test]
    fn picks_a_on_another_node_than_b_when_there_is_one() {
        let status = STATUS.replace(
            r#""name": "pending", "ip": null, "node": "node-1""#,
            r#""name": "far", "ip": "10.244.2.2", "node": "node-2""#,
        );
        let [a, b] = two_pods(&status).unwrap();
        assert_eq!((a.key.as_str(), a.node.as_str()), ("web/far", "node-2"));
        assert_eq!((b.key.as_str(), b.node.as_str()), ("web/server", "node-1"));
    }

    #[test]
    fn needs_two_pods() {
        let err = two_pods(r#"{"pods": []}"#).unwrap_err();
        assert!(err.to_string().contains("needs two pods"), "{err}");
    }

    #[test]
    fn formats_ipv6_targets_with_brackets() {
        let ip: IpAddr = "fd00::2".parse().unwrap();
        assert_eq!(SocketAddr::new(ip, 80).to_string(), "[fd00::2]:80");
    }
}
