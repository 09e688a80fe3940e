//! The install manifests (`deploy/kubernetes/`) and the pieces they run: the committed files are the
//! default rendering of `strait install`; every document is a Kubernetes object k8s-openapi reads
//! back field for field; their cross-references hold (labels and selectors, ports, the
//! ServiceAccount, ConfigMap keys and the agent's environment, the CNI socket); the init container's
//! install step, run against a temporary host root, writes what kubelet expects and is idempotent.
//! The ClusterRole against the API calls the agent really makes is in `install_rbac.rs`.
//! (The API schema check with kubernetes-validate is `cargo xtask manifests`.)

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::Deserialize as _;
use serde_json::Value;
use strait_lab::install::service_monitor::ServiceMonitor;
use strait_lab::install::{self, InstallValues};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every YAML document of a committed manifest file, as JSON values.
fn documents(path: &str) -> Vec<Value> {
    let file = repo().join(install::COMMITTED_DIR).join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("a YAML document"))
        .filter(|value| !value.is_null())
        .collect()
}

/// Every object of the manifests `kubectl apply -f deploy/kubernetes/` applies.
fn applied() -> Vec<Value> {
    let files = install::render(&InstallValues::default()).unwrap();
    install::applied_by_default(&files)
        .flat_map(|f| documents(f.path))
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str, name: &str) -> T {
    let found = objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the manifests"));
    serde_json::from_value(found.clone()).unwrap()
}

/// Reads `value` as `T` and back: equal JSON means k8s-openapi knew every field (an unknown or
/// misspelt one would be dropped and the comparison fail).
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: &Value,
) -> Result<(), String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back == value {
        Ok(())
    } else {
        Err(format!(
            "fields lost reading it back:\n{value:#}\nbecame\n{back:#}"
        ))
    }
}

#[test]
fn the_committed_manifests_are_the_default_rendering() {
    let files = install::render(&InstallValues::default()).unwrap();
    for file in &files {
        let path = repo().join(install::COMMITTED_DIR).join(file.path);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == file.text,
            "{} differs from `strait install`'s default rendering; run \
             `strait install --out deploy/kubernetes` and commit the result",
            path.display()
        );
    }
    let mut listed: Vec<String> = std::fs::read_dir(repo().join(install::COMMITTED_DIR))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| Path::new(n).extension().is_some_and(|x| x == "yaml"))
        .collect();
    listed.sort();
    let rendered: Vec<&str> = install::applied_by_default(&files)
        .map(|f| f.path)
        .collect();
    assert_eq!(
        listed, rendered,
        "a stray manifest file would be applied too"
    );
}

#[test]
fn every_document_is_a_kubernetes_object_read_back_field_for_field() {
    let mut kinds = BTreeSet::new();
    for object in applied() {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let checked = match (
            object["apiVersion"].as_str().unwrap_or_default(),
            kind.as_str(),
        ) {
            ("v1", "Namespace") => round_trips::<Namespace>(&object),
            ("v1", "ServiceAccount") => round_trips::<ServiceAccount>(&object),
            ("v1", "ConfigMap") => round_trips::<ConfigMap>(&object),
            ("v1", "Service") => round_trips::<Service>(&object),
            ("apps/v1", "DaemonSet") => round_trips::<DaemonSet>(&object),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trips::<ClusterRole>(&object),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                round_trips::<ClusterRoleBinding>(&object)
            }
            (version, kind) => Err(format!("unexpected {version} {kind}")),
        };
        checked.unwrap_or_else(|e| panic!("{kind}: {e}"));
        kinds.insert(kind);
    }
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Namespace",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds, expected.map(String::from).into_iter().collect());
    // The ServiceMonitor is a custom resource: its own type refuses unknown fields.
    let monitors = documents("prometheus-operator/servicemonitor.yaml");
    assert_eq!(monitors.len(), 1);
    let monitor: ServiceMonitor = serde_json::from_value(monitors[0].clone()).unwrap();
    assert_eq!(monitor.api_version, "monitoring.coreos.com/v1");
    let mut typo = monitors[0].clone();
    typo["spec"]["endpoint"] = typo["spec"]["endpoints"].clone();
    assert!(serde_json::from_value::<ServiceMonitor>(typo).is_err());
}

fn agent(objects: &[Value]) -> (DaemonSet, Container, Container) {
    let daemon_set: DaemonSet = one(objects, "DaemonSet", install::NAME);
    let pod = daemon_set.spec.template.spec.clone().unwrap();
    let agent = pod
        .containers
        .iter()
        .find(|c| c.name == "agent")
        .unwrap()
        .clone();
    let init = pod.init_containers.unwrap_or_default();
    let install_cni = init
        .iter()
        .find(|c| c.name == "install-cni")
        .unwrap()
        .clone();
    (daemon_set, agent, install_cni)
}

#[test]
fn labels_selectors_ports_and_the_service_account_line_up() {
    let objects = applied();
    let (daemon_set, agent, _) = agent(&objects);
    let namespace = daemon_set.metadata.namespace.clone().unwrap();
    let template = daemon_set.spec.template.clone();
    let pod_labels = template.metadata.unwrap().labels.unwrap();
    let selects = |selector: &BTreeMap<String, String>| {
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
    };
    assert!(selects(
        daemon_set.spec.selector.match_labels.as_ref().unwrap()
    ));

    // The ServiceAccount the pods run as exists, in their namespace, and is the binding's subject.
    let pod = template.spec.unwrap();
    let account: ServiceAccount = one(
        &objects,
        "ServiceAccount",
        pod.service_account_name.as_deref().unwrap(),
    );
    assert_eq!(
        account.metadata.namespace.as_deref(),
        Some(namespace.as_str())
    );
    let binding: ClusterRoleBinding = one(&objects, "ClusterRoleBinding", install::NAME);
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", account.metadata.name.as_deref().unwrap())
    );
    assert_eq!(subject.namespace.as_deref(), Some(namespace.as_str()));
    let _role: ClusterRole = one(&objects, "ClusterRole", &binding.role_ref.name);
    let ns: Namespace = one(&objects, "Namespace", &namespace);
    assert_eq!(
        ns.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
        "privileged"
    );

    // The metrics Service selects the agents and names a port the agent declares; the probes and
    // the agent's listen address use that port.
    let metrics: Service = one(&objects, "Service", install::services::METRICS_SERVICE);
    assert_eq!(
        metrics.metadata.namespace.as_deref(),
        Some(namespace.as_str())
    );
    let spec = metrics.spec.unwrap();
    assert!(selects(spec.selector.as_ref().unwrap()));
    let port = &spec.ports.unwrap()[0];
    let declared = agent.ports.clone().unwrap();
    let named = declared
        .iter()
        .find(|p| {
            Some(p.name.clone().unwrap_or_default()) == port.target_port.as_ref().map(target_name)
        })
        .expect("the metrics Service's targetPort is a named port of the agent");
    assert_eq!(named.container_port, port.port);
    for probe in [
        &agent.liveness_probe,
        &agent.readiness_probe,
        &agent.startup_probe,
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(target_name(&get.port), named.container_port.to_string());
    }
    let http_addr = env_value(&agent, "STRAIT_HTTP_ADDR");
    assert_eq!(
        http_addr,
        format!("$(STRAIT_NODE_IP):{}", named.container_port)
    );
    assert_eq!(
        agent
            .readiness_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );

    // The ServiceMonitor selects the metrics Service by its labels and port name.
    let monitor: ServiceMonitor =
        serde_json::from_value(documents("prometheus-operator/servicemonitor.yaml")[0].clone())
            .unwrap();
    let service_labels = metrics.metadata.labels.unwrap();
    assert!(
        monitor
            .spec
            .selector
            .match_labels
            .iter()
            .all(|(k, v)| service_labels.get(k) == Some(v))
    );
    assert_eq!(monitor.spec.namespace_selector.match_names, [namespace]);
    assert_eq!(monitor.spec.endpoints[0].port, port.name.clone().unwrap());
}

fn target_name(port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match port {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

fn env_value(container: &Container, name: &str) -> String {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("{} has no {name}", container.name))
}

/// The environment variables straitd reads, from its own `--help`.
fn straitd_env_names() -> BTreeSet<String> {
    let straitd = strait_tests::bin_dir().join("straitd");
    let help = Command::new(&straitd).arg("--help").output().unwrap();
    assert!(help.status.success());
    String::from_utf8_lossy(&help.stdout)
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next().map(str::to_owned))
        .collect()
}

#[test]
fn config_map_keys_and_the_agents_environment_line_up() {
    let objects = applied();
    let (daemon_set, agent, install_cni) = agent(&objects);
    let namespace = daemon_set.metadata.namespace.clone().unwrap();
    let config: ConfigMap = one(&objects, "ConfigMap", install::config::CONFIG_NAME);
    assert_eq!(
        config.metadata.namespace.as_deref(),
        Some(namespace.as_str())
    );
    let data = config.data.unwrap();
    let known = straitd_env_names();
    let mut consumed = BTreeSet::new();
    for variable in agent.env.iter().flatten() {
        assert!(
            known.contains(&variable.name),
            "the agent is given {} but straitd reads no such variable (straitd --help)",
            variable.name
        );
        if let Some(reference) = variable
            .value_from
            .as_ref()
            .and_then(|v| v.config_map_key_ref.as_ref())
        {
            assert_eq!(reference.name, install::config::CONFIG_NAME);
            assert!(
                data.contains_key(&reference.key),
                "{} reads missing key {}",
                variable.name,
                reference.key
            );
            consumed.insert(reference.key.clone());
        }
    }
    // The conflist reaches the init container through the config volume, at the path it reads.
    let pod = daemon_set.spec.template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    let config_volume = volumes.iter().find(|v| v.config_map.is_some()).unwrap();
    let source = config_volume.config_map.as_ref().unwrap();
    assert_eq!(source.name, install::config::CONFIG_NAME);
    let item = &source.items.as_ref().unwrap()[0];
    consumed.insert(item.key.clone());
    let mount = install_cni
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == config_volume.name)
        .unwrap();
    let command = install_cni.command.clone().unwrap();
    let conflist_arg = command
        .iter()
        .skip_while(|a| *a != "--conflist")
        .nth(1)
        .unwrap();
    assert_eq!(*conflist_arg, format!("{}/{}", mount.mount_path, item.path));
    assert_eq!(
        consumed,
        data.keys().cloned().collect(),
        "every key is read, and only those"
    );

    // Every mount names a volume of the pod.
    let names: BTreeSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    for container in [&agent, &install_cni] {
        for mount in container.volume_mounts.iter().flatten() {
            assert!(
                names.contains(mount.name.as_str()),
                "{} mounts unknown {}",
                container.name,
                mount.name
            );
        }
    }
}

#[test]
fn the_cni_socket_and_cluster_dns_line_up() {
    let objects = applied();
    let (daemon_set, agent, _) = agent(&objects);
    let volumes = daemon_set.spec.template.spec.unwrap().volumes.unwrap();
    let config: ConfigMap = one(&objects, "ConfigMap", install::config::CONFIG_NAME);
    let data = config.data.unwrap();
    // The conflist is one the plugin accepts, and its socket is where the agent listens, on a
    // directory shared with the host (where kubelet runs the plugin).
    let conflist = &data[install::config::CONFLIST_KEY];
    strait_cni::install::check_conflist(conflist.as_bytes()).unwrap();
    let list: Value = serde_json::from_str(conflist).unwrap();
    let socket = PathBuf::from(list["plugins"][0]["agentSocket"].as_str().unwrap());
    let socket_dir = socket.parent().unwrap();
    let run = agent
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| Path::new(&m.mount_path) == socket_dir)
        .unwrap();
    let host = volumes
        .iter()
        .find(|v| v.name == run.name)
        .unwrap()
        .host_path
        .clone()
        .unwrap();
    assert_eq!(
        Path::new(&host.path),
        socket_dir,
        "the socket directory is the host's own"
    );
    assert_eq!(
        socket.to_str(),
        Some(strait_cni::protocol::DEFAULT_AGENT_SOCKET)
    );

    // Cluster DNS: the Service the agents answer is the one installed, inside the Service range.
    let (dns_namespace, dns_name) = data["dns-service"].split_once('/').unwrap();
    let dns: Service = one(&objects, "Service", dns_name);
    assert_eq!(dns.metadata.namespace.as_deref(), Some(dns_namespace));
    let dns_spec = dns.spec.unwrap();
    assert!(
        dns_spec.selector.is_none(),
        "every node's agent answers it; no pods back it"
    );
    let ip: std::net::Ipv4Addr = dns_spec.cluster_ip.unwrap().parse().unwrap();
    let range: ipnet::Ipv4Net = data["service-cidr"].parse().unwrap();
    assert!(range.contains(&ip));
    let ports: BTreeSet<(String, i32)> = dns_spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.protocol.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        [("TCP".to_owned(), 53), ("UDP".to_owned(), 53)].into()
    );
}

/// Runs the image's `strait-install-cni` from the build directory.
fn install_cni(args: &[&str]) -> (bool, String) {
    let output = Command::new(strait_tests::bin_dir().join("strait-install-cni"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn the_init_container_installs_into_a_host_root_and_running_it_again_changes_nothing() {
    let objects = applied();
    let config: ConfigMap = one(&objects, "ConfigMap", install::config::CONFIG_NAME);
    let scratch = tempfile::tempdir().unwrap();
    let conflist = scratch.path().join("conflist.json");
    std::fs::write(
        &conflist,
        &config.data.unwrap()[install::config::CONFLIST_KEY],
    )
    .unwrap();
    let host = scratch.path().join("host");
    // A node with Flannel's configuration still in place.
    std::fs::create_dir_all(host.join("etc/cni/net.d")).unwrap();
    std::fs::write(host.join("etc/cni/net.d/10-flannel.conflist"), "{}").unwrap();
    let args = [
        "--host-root",
        host.to_str().unwrap(),
        "--conflist",
        conflist.to_str().unwrap(),
    ];

    let (ok, out) = install_cni(&args);
    assert!(ok, "{out}");
    let plugin = host.join("opt/cni/bin/strait-cni");
    let list = host.join("etc/cni/net.d/05-strait.conflist");
    assert_eq!(
        std::fs::read(&plugin).unwrap(),
        std::fs::read(strait_tests::bin_dir().join("strait-cni")).unwrap()
    );
    assert_eq!(
        std::fs::read(&list).unwrap(),
        std::fs::read(&conflist).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&plugin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(out.matches("written").count(), 2, "{out}");
    // The runtime takes the first configuration by name: strait's comes before Flannel's.
    let mut configs: Vec<_> = std::fs::read_dir(host.join("etc/cni/net.d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    configs.sort();
    assert_eq!(configs, ["05-strait.conflist", "10-flannel.conflist"]);

    // Again: nothing is rewritten (same inode and modification time).
    let before = std::fs::metadata(&plugin).unwrap();
    let (ok, out) = install_cni(&args);
    assert!(ok, "{out}");
    assert_eq!(out.matches("unchanged").count(), 2, "{out}");
    let after = std::fs::metadata(&plugin).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec())
    );

    // A broken configuration is refused and changes nothing.
    std::fs::write(
        &conflist,
        r#"{"cniVersion":"1.1.0","name":"strait","plugins":[]}"#,
    )
    .unwrap();
    let (ok, out) = install_cni(&args);
    assert!(!ok && out.contains("no plugin of type strait-cni"), "{out}");
    assert!(
        std::fs::read_to_string(&list)
            .unwrap()
            .contains("agentSocket")
    );

    // Uninstalling removes both, and Flannel's file is left alone.
    let (ok, out) = install_cni(&["--host-root", host.to_str().unwrap(), "--uninstall"]);
    assert!(ok, "{out}");
    assert!(!plugin.exists() && !list.exists());
    assert!(host.join("etc/cni/net.d/10-flannel.conflist").exists());
}

#[test]
fn install_print_takes_the_users_values_and_refuses_impossible_ones() {
    let strait = strait_tests::bin_dir().join("strait");
    let output = Command::new(&strait)
        .args([
            "install",
            "--print",
            "--cluster-cidr",
            "10.42.0.0/16",
            "--service-cidr",
            "10.43.0.0/16",
            "--cluster-dns-ip",
            "10.43.0.10",
            "--vni",
            "7",
            "--cni-conf-dir",
            "/var/lib/rancher/k3s/agent/etc/cni/net.d",
            "--node-selector",
            "strait.io/node=ready",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&String::from_utf8_lossy(&output.stdout))
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect();
    let config: ConfigMap = one(&objects, "ConfigMap", install::config::CONFIG_NAME);
    let data = config.data.unwrap();
    assert_eq!(
        (data["cluster-cidr"].as_str(), data["vni"].as_str()),
        ("10.42.0.0/16", "7")
    );
    let dns: Service = one(&objects, "Service", "kube-dns");
    assert_eq!(dns.spec.unwrap().cluster_ip.as_deref(), Some("10.43.0.10"));
    assert!(!objects.iter().any(|o| o["kind"] == "ServiceMonitor"));
    let daemon_set: DaemonSet = one(&objects, "DaemonSet", install::NAME);
    let pod = daemon_set.spec.template.spec.unwrap();
    assert_eq!(pod.node_selector.unwrap()["strait.io/node"], "ready");
    let volumes = pod.volumes.unwrap();
    let cni_conf = volumes.iter().find(|v| v.name == "cni-conf").unwrap();
    assert_eq!(
        cni_conf.host_path.as_ref().unwrap().path,
        "/var/lib/rancher/k3s/agent/etc/cni/net.d"
    );

    let refused = Command::new(&strait)
        .args(["install", "--print", "--cluster-dns-ip", "10.43.0.10"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("outside --service-cidr 10.96.0.0/12"),
        "{error}"
    );
    assert!(
        refused.stdout.is_empty(),
        "nothing half-rendered is printed"
    );
}

/// The binaries a Containerfile `cargo build` line names (`--bin X`).
fn containerfile_binaries(text: &str) -> BTreeSet<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1].to_owned())
        .collect()
}

/// The image cannot be built here (no container engine), so its definition is checked against the
/// workspace: it builds and ships every binary the manifests run, with the toolchains the workspace
/// and bootstrap use.
#[test]
fn the_containerfile_ships_every_binary_the_manifests_run() {
    let text = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let built = containerfile_binaries(&text);
    for binary in &built {
        assert!(
            text.contains(&format!("target/release/{binary}")),
            "{binary} is built but not copied into the image"
        );
    }
    let (_, agent, install_cni) = agent(&applied());
    for container in [&agent, &install_cni] {
        let program = &container.command.as_ref().unwrap()[0];
        assert!(
            built.contains(program),
            "{} runs {program}, which the image lacks",
            container.name
        );
    }
    // The plugin the init container copies is in the image beside it.
    assert!(built.contains(strait_cni::install::PLUGIN_NAME));
    assert!(text.contains("cargo xtask bootstrap --build-only"));
    // The stable toolchain is the workspace's.
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap();
    assert!(
        text.contains(&format!("ARG RUST_VERSION={rust_version}")),
        "the builder's Rust is not the workspace's {rust_version}"
    );
    // Every binary named is a real target of the workspace.
    for binary in &built {
        assert!(
            strait_tests::bin_dir().join(binary).exists(),
            "{binary} is no binary of the workspace"
        );
    }
}
