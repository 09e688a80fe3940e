//! `strait policy explain --manifests DIR FROM TO:PORT[/PROTO]`: the specification's verdict on one flow
//! between pods of a set of manifests (Namespaces, Pods, NetworkPolicies; other kinds are skipped), with
//! its reasons, before anything is applied (see `strait_k8s::netpol::explain`); with `--name LAB`,
//! under the objects of a running lab; with `--kube`, under those of a live cluster's API server.

use std::path::Path;

use strait_k8s::{
    Kind, ParseOptions,
    manifest::load_path,
    netpol::{
        Party,
        explain::{Explanation, PolicyCluster, flow, parse_destination},
    },
};

use crate::LabError;

/// Explains the flow from `from` (`NAMESPACE/POD` or an address) to `to` (`NAMESPACE/POD:PORT[/PROTO]`
/// or `ADDRESS:PORT[/PROTO]`) under the objects of the manifest file or directory `manifests`.
pub fn explain_manifests(manifests: &Path, from: &str, to: &str) -> Result<Explanation, LabError> {
    let options = ParseOptions {
        kinds: &[Kind::Namespace, Kind::Pod, Kind::NetworkPolicy],
        skip_other_kinds: true,
        strict: true,
        validate: true,
    };
    let loaded = load_path(manifests, &options).map_err(|e| LabError::Usage(e.to_string()))?;
    explain_objects(&loaded.into_objects(), from, to)
}

/// Explains the flow as [`explain_manifests`] does, under the objects of the running lab `name` (its
/// Namespaces, Pods with their addresses, and NetworkPolicies, as its agents enforce them).
pub fn explain_lab(name: &str, from: &str, to: &str) -> Result<Explanation, LabError> {
    let lab = crate::cluster::Lab::open(name)?;
    explain_in(&lab.policy_cluster()?, from, to)
}

/// Explains the flow as [`explain_manifests`] does, under the Namespaces, Pods (with their addresses)
/// and NetworkPolicies the cluster's API server holds (see [`crate::kube_objects`]).
pub fn explain_kube(from: &str, to: &str) -> Result<Explanation, LabError> {
    let objects =
        crate::kube_objects::read_cluster(&[Kind::Namespace, Kind::Pod, Kind::NetworkPolicy])?;
    explain_objects(&objects, from, to)
}

/// The flow from `from` to `to` under `objects`.
fn explain_objects(
    objects: &[strait_k8s::Object],
    from: &str,
    to: &str,
) -> Result<Explanation, LabError> {
    explain_in(
        &PolicyCluster::from_objects(objects).map_err(usage)?,
        from,
        to,
    )
}

/// The flow from `from` to `to` under `cluster`.
fn explain_in(cluster: &PolicyCluster, from: &str, to: &str) -> Result<Explanation, LabError> {
    let (to, port, protocol) = parse_destination(to).map_err(usage)?;
    let source: Party<'_> = cluster.party(from).map_err(usage)?;
    let destination = cluster.party(&to).map_err(usage)?;
    Ok(cluster.explain(&flow(source, destination, port, protocol)))
}

fn usage(error: impl std::fmt::Display) -> LabError {
    LabError::Usage(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata: {name: api, namespace: default, labels: {app: api}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: default}
spec: {podSelector: {}}
";

    #[test]
    fn explains_a_flow_between_pods_of_a_manifest_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.yaml");
        std::fs::write(&file, MANIFEST).unwrap();
        let explanation = explain_manifests(&file, "default/web", "default/api:80").unwrap();
        assert!(!explanation.verdict.allowed());
        assert!(
            explanation
                .text
                .contains("ingress of default/api: denied, selected by default/deny-all"),
            "{}",
            explanation.text
        );
        let error = explain_manifests(&file, "default/web", "default/nobody:80").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no pod default/nobody (give NAMESPACE/POD, or an IPv4 address)"
        );
    }
}
