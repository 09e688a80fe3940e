//! `strait install`: the manifests that run strait in a real cluster, rendered from typed
//! k8s-openapi objects with the user's [`InstallValues`]. The default rendering is committed under
//! `deploy/kubernetes/` (a test keeps it current), so `kubectl apply -f deploy/kubernetes/` works
//! without this tool.
//!
//! - [`values`]: the values, their defaults and checks.
//! - [`rbac`]: Namespace, ServiceAccount, ClusterRole (from the agent's API access table), binding.
//! - [`config`]: the agent's settings and the CNI configuration list.
//! - [`agent`]: the DaemonSet and its init container.
//! - [`services`]: `kube-system/kube-dns` and the metrics Service.
//! - [`service_monitor`]: the Prometheus Operator's ServiceMonitor (a file of its own, applied only
//!   where the operator's CRDs exist).

pub mod agent;
pub mod config;
pub mod rbac;
pub mod service_monitor;
pub mod services;
pub mod values;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub use values::{InstallValues, ValuesError};

/// The name of the agent's objects (DaemonSet, ServiceAccount, ClusterRole, binding).
pub const NAME: &str = "strait";

/// Where the default rendering is committed, relative to the repository root.
pub const COMMITTED_DIR: &str = "deploy/kubernetes";

/// One rendered file: its path relative to the output directory and its YAML text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: &'static str,
    pub text: String,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Values(#[from] ValuesError),
    #[error("rendering {path}: {source}")]
    Yaml {
        path: &'static str,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(
            [("app.kubernetes.io/part-of".to_owned(), NAME.to_owned())]
                .into_iter()
                .collect(),
        ),
        ..ObjectMeta::default()
    }
}

fn namespaced(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        ..meta(name)
    }
}

/// The header every file starts with: what made it and with which values.
fn header(path: &str, values: &InstallValues, about: &str) -> String {
    format!(
        "# {path}: {about}\n\
         # Rendered by `strait install --print` (strait {version}); values: namespace={ns} image={image}\n\
         # cluster-cidr={pods} service-cidr={svcs} cluster-dns-ip={dns} overlay={overlay} vni={vni}\n\
         # vxlan-port={port} agent-port={agent} network-policy={policy}\n\
         # cni-bin-dir={bin} cni-conf-dir={conf}\n",
        version = env!("CARGO_PKG_VERSION"),
        ns = values.namespace,
        image = values.image,
        pods = values.cluster_cidr,
        svcs = values.service_cidr,
        dns = values.cluster_dns_ip,
        overlay = values.overlay,
        vni = values.vni,
        port = values.vxlan_port,
        agent = values.agent_port,
        policy = values.network_policy,
        bin = values.cni_bin_dir,
        conf = values.cni_conf_dir,
    )
}

/// `objects` as YAML documents after `header`.
fn documents(
    path: &'static str,
    header: String,
    objects: &[&dyn erased::Document],
) -> Result<ManifestFile, InstallError> {
    let mut text = header;
    for object in objects {
        text.push_str("---\n");
        text.push_str(
            &object
                .yaml()
                .map_err(|source| InstallError::Yaml { path, source })?,
        );
    }
    Ok(ManifestFile { path, text })
}

/// Serialisation of differently typed objects through one list.
mod erased {
    pub trait Document {
        fn yaml(&self) -> Result<String, serde_yaml_ng::Error>;
    }

    impl<T: serde::Serialize> Document for T {
        fn yaml(&self) -> Result<String, serde_yaml_ng::Error> {
            serde_yaml_ng::to_string(self)
        }
    }
}

/// Every file, in the order `kubectl apply -f` takes a directory (by name).
pub fn render(values: &InstallValues) -> Result<Vec<ManifestFile>, InstallError> {
    values.check()?;
    let h = |path: &str, about: &str| header(path, values, about);
    Ok(vec![
        documents(
            "00-namespace.yaml",
            h("00-namespace.yaml", "the agent's namespace"),
            &[&rbac::namespace(values)],
        )?,
        documents(
            "10-rbac.yaml",
            h(
                "10-rbac.yaml",
                "the agent's ServiceAccount and the least API access it needs",
            ),
            &[
                &rbac::service_account(values),
                &rbac::cluster_role(),
                &rbac::cluster_role_binding(values),
            ],
        )?,
        documents(
            "20-config.yaml",
            h(
                "20-config.yaml",
                "the agent's settings and the CNI configuration list",
            ),
            &[&config::config_map(values)],
        )?,
        documents(
            "30-agent.yaml",
            h(
                "30-agent.yaml",
                "straitd on every node, after installing the CNI plugin",
            ),
            &[&agent::daemon_set(values)],
        )?,
        documents(
            "40-services.yaml",
            h(
                "40-services.yaml",
                "cluster DNS (answered by every node's agent) and the agents' metrics",
            ),
            &[&services::kube_dns(values), &services::metrics(values)],
        )?,
        documents(
            "prometheus-operator/servicemonitor.yaml",
            h(
                "prometheus-operator/servicemonitor.yaml",
                "for clusters running the Prometheus Operator (apply separately)",
            ),
            &[&service_monitor::service_monitor(values)],
        )?,
    ])
}

/// The files `kubectl apply -f <dir>` applies (the ServiceMonitor is in a subdirectory, left out).
pub fn applied_by_default(files: &[ManifestFile]) -> impl Iterator<Item = &ManifestFile> {
    files.iter().filter(|f| !f.path.contains('/'))
}

/// Writes `files` under `dir`; returns the paths whose content changed.
pub fn write(dir: &std::path::Path, files: &[ManifestFile]) -> std::io::Result<Vec<String>> {
    let mut changed = Vec::new();
    for file in files {
        let path = dir.join(file.path);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(file.text.as_str()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.text)?;
        changed.push(file.path.to_owned());
    }
    Ok(changed)
}

/// Ensures `Serialize` is the only bound the objects need.
#[allow(dead_code)]
fn _assert_serialize<T: Serialize>() {}
