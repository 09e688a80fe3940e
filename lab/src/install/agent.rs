//! The agent's DaemonSet: `straitd --kube` on every node (host network, the capabilities it uses,
//! the node's bpffs, cgroup, procfs, network namespaces and CNI directories), after an init container
//! that installs the CNI plugin and configuration on the node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
    ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, HostPathVolumeSource, KeyToPath,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{AGENT_SETTINGS, CONFIG_NAME, CONFLIST_KEY};
use super::{InstallValues, NAME, namespaced};

/// The capabilities `straitd` uses: BPF and PERFMON to load and verify its programs, NET_ADMIN to
/// attach them (tcx, XDP) and to plumb pod links, SYS_ADMIN to enter pods' network namespaces,
/// mount bpffs and attach to the cgroup, NET_BIND_SERVICE for cluster DNS on port 53.
pub const AGENT_CAPABILITIES: [&str; 5] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_ADMIN",
    "NET_BIND_SERVICE",
];

/// The labels of the agent's pods (and the DaemonSet's selector).
pub fn pod_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), NAME.to_owned()),
        ("app.kubernetes.io/component".to_owned(), "agent".to_owned()),
    ])
}

/// Where the init container finds the conflist the ConfigMap holds.
pub const CONFLIST_MOUNT: &str = "/etc/strait/cni";
/// Its file name there.
pub const CONFLIST_FILE: &str = "conflist.json";

/// A host directory, its mount point in a container, and how mounts below it propagate.
struct HostDir {
    volume: &'static str,
    host: String,
    mount: String,
    read_only: bool,
    /// Mounts made on the host later (bpffs, new network namespaces) show up in the container.
    host_to_container: bool,
}

fn agent_dirs() -> [HostDir; 6] {
    [
        HostDir {
            volume: "bpffs",
            host: "/sys/fs/bpf".into(),
            mount: "/sys/fs/bpf".into(),
            read_only: false,
            host_to_container: true,
        },
        HostDir {
            volume: "host-cgroup",
            host: "/sys/fs/cgroup".into(),
            mount: "/host/cgroup".into(),
            read_only: true,
            host_to_container: false,
        },
        HostDir {
            volume: "host-proc",
            host: "/proc".into(),
            mount: "/host/proc".into(),
            read_only: false,
            host_to_container: false,
        },
        HostDir {
            volume: "netns",
            host: "/run/netns".into(),
            mount: "/run/netns".into(),
            read_only: true,
            host_to_container: true,
        },
        HostDir {
            volume: "run",
            host: "/run/strait".into(),
            mount: "/run/strait".into(),
            read_only: false,
            host_to_container: false,
        },
        HostDir {
            volume: "state",
            host: "/var/lib/strait".into(),
            mount: "/var/lib/strait".into(),
            read_only: false,
            host_to_container: false,
        },
    ]
}

/// The node's CNI directories (kubelet's and the runtime's: /opt/cni/bin and /etc/cni/net.d unless
/// the distribution moved them, as k3s does), where the installer expects them under its host root.
fn cni_dirs(values: &InstallValues) -> [HostDir; 2] {
    [
        HostDir {
            volume: "cni-bin",
            host: values.cni_bin_dir.clone(),
            mount: format!("/host/{}", strait_cni::install::BIN_DIR),
            read_only: false,
            host_to_container: false,
        },
        HostDir {
            volume: "cni-conf",
            host: values.cni_conf_dir.clone(),
            mount: format!("/host/{}", strait_cni::install::CONF_DIR),
            read_only: false,
            host_to_container: false,
        },
    ]
}

fn mounts(dirs: &[HostDir]) -> Vec<VolumeMount> {
    dirs.iter()
        .map(|d| VolumeMount {
            name: d.volume.into(),
            mount_path: d.mount.clone(),
            read_only: d.read_only.then_some(true),
            mount_propagation: d.host_to_container.then(|| "HostToContainer".into()),
            ..VolumeMount::default()
        })
        .collect()
}

fn host_volumes(dirs: &[HostDir]) -> impl Iterator<Item = Volume> + '_ {
    dirs.iter().map(|d| Volume {
        name: d.volume.into(),
        host_path: Some(HostPathVolumeSource {
            path: d.host.clone(),
            type_: Some(if d.host == "/proc" || d.host == "/sys/fs/cgroup" {
                "Directory".into()
            } else {
                "DirectoryOrCreate".into()
            }),
        }),
        ..Volume::default()
    })
}

fn env_field(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_value(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_config(name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: CONFIG_NAME.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn agent_env(values: &InstallValues) -> Vec<EnvVar> {
    let mut env = vec![
        env_field("NODE_NAME", "spec.nodeName"),
        env_field("STRAIT_NODE_IP", "status.hostIP"),
        env_value(
            "STRAIT_HTTP_ADDR",
            &format!("$(STRAIT_NODE_IP):{}", values.agent_port),
        ),
        env_value("STRAIT_CGROUP", "/host/cgroup"),
        env_value("STRAIT_PROCFS", "/host/proc"),
    ];
    env.extend(AGENT_SETTINGS.iter().map(|(key, var)| env_config(var, key)));
    env
}

fn http_probe(path: &str, values: &InstallValues, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(values.agent_port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    }
}

fn agent_container(values: &InstallValues) -> Container {
    Container {
        name: "agent".into(),
        image: Some(values.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["straitd".into()]),
        args: Some(vec!["--kube".into()]),
        env: Some(agent_env(values)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: i32::from(values.agent_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        // Up to five minutes to start: the agent waits for its Node's pod CIDR.
        startup_probe: Some(http_probe("/healthz", values, 5, 60)),
        liveness_probe: Some(http_probe("/healthz", values, 10, 6)),
        readiness_probe: Some(http_probe("/readyz", values, 5, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("100m".into())),
                ("memory".to_owned(), Quantity("128Mi".into())),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security(&AGENT_CAPABILITIES)),
        volume_mounts: Some(mounts(&agent_dirs())),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

fn install_cni_container(values: &InstallValues) -> Container {
    let mut volume_mounts = mounts(&cni_dirs(values));
    volume_mounts.push(VolumeMount {
        name: "config".into(),
        mount_path: CONFLIST_MOUNT.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    Container {
        name: "install-cni".into(),
        image: Some(values.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![
            "strait-install-cni".into(),
            "--host-root".into(),
            "/host".into(),
            "--conflist".into(),
            format!("{CONFLIST_MOUNT}/{CONFLIST_FILE}"),
        ]),
        security_context: Some(security(&[])),
        volume_mounts: Some(volume_mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// Root (the node's directories are root's), every capability dropped but `add`, no privilege
/// escalation, a read-only image. Seccomp and AppArmor are unconfined for the agent only: the
/// runtimes' default profiles refuse `bpf()` or `mount()` even with the capabilities above.
fn security(add: &[&str]) -> SecurityContext {
    let unconfined = !add.is_empty();
    SecurityContext {
        run_as_user: Some(0),
        privileged: Some(false),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            add: (!add.is_empty()).then(|| add.iter().map(|c| (*c).to_owned()).collect()),
            drop: Some(vec!["ALL".into()]),
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: if unconfined {
                "Unconfined"
            } else {
                "RuntimeDefault"
            }
            .into(),
            ..SeccompProfile::default()
        }),
        app_armor_profile: unconfined.then(|| AppArmorProfile {
            type_: "Unconfined".into(),
            ..AppArmorProfile::default()
        }),
        ..SecurityContext::default()
    }
}

pub fn daemon_set(values: &InstallValues) -> DaemonSet {
    let (agent_dirs, cni_dirs) = (agent_dirs(), cni_dirs(values));
    let mut volumes: Vec<Volume> = host_volumes(&agent_dirs)
        .chain(host_volumes(&cni_dirs))
        .collect();
    volumes.push(Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: CONFIG_NAME.into(),
            items: Some(vec![KeyToPath {
                key: CONFLIST_KEY.into(),
                path: CONFLIST_FILE.into(),
                ..KeyToPath::default()
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    });
    DaemonSet {
        metadata: namespaced(NAME, &values.namespace),
        spec: DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(pod_labels()),
                ..LabelSelector::default()
            },
            // One node at a time, never two agents on a node (they share host ports and pins); the
            // data path keeps forwarding while a node's agent restarts, and the new one adopts it.
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::Int(1)),
                    max_surge: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    host_network: Some(true),
                    // The node's resolv.conf: the agent forwards names outside the cluster there.
                    dns_policy: Some("Default".into()),
                    priority_class_name: Some("system-node-critical".into()),
                    // Every node, whatever its taints: without the agent no pod there gets a network.
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Toleration::default()
                    }]),
                    termination_grace_period_seconds: Some(30),
                    node_selector: values
                        .node_selector
                        .clone()
                        .map(|(k, v)| BTreeMap::from([(k, v)])),
                    init_containers: Some(vec![install_cni_container(values)]),
                    containers: vec![agent_container(values)],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DaemonSetSpec::default()
        },
        ..DaemonSet::default()
    }
}
