//! kubescale's synthetic cluster: how big it is ([`Scale`]), its objects as the API server serves them
//! (Services and EndpointSlices from svcscale's generators; Pods, Nodes, Namespaces and NetworkPolicies
//! shaped like a real cluster's, server-set fields and `managedFields` included), and the stream of
//! changes ([`change`]) both processes derive from the same numbers, so the agent side knows what the
//! store must end up holding without being sent it.

use serde_json::{Value, json};
use strait_bench::svcscale::{self as synth, Variant};

/// How many objects of each kind the cluster holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Scale {
    pub services: usize,
    pub endpoints_per_service: usize,
    pub nodes: usize,
    pub pods: usize,
    pub namespaces: usize,
    /// One NetworkPolicy in each of this many namespaces.
    pub policies: usize,
}

impl Scale {
    /// Every object the source watches (Services and EndpointSlices count one each).
    pub fn objects(&self) -> usize {
        2 * self.services + self.nodes + self.pods + self.namespaces + self.policies
    }
}

fn typed(mut value: Value, api_version: &str, kind: &str) -> Value {
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    value
}

/// Name of Pod `index`.
pub fn pod_name(index: usize) -> String {
    format!("app-{:04}-{index:06}", index % 1000)
}

/// Namespace of Pod `index` (`ns-NNN`).
pub fn pod_namespace(index: usize, scale: &Scale) -> String {
    format!("ns-{:03}", index % scale.namespaces.max(1))
}

/// Name of Node `index`.
pub fn node_name(index: usize) -> String {
    format!("node-{index:04}")
}

/// A `managedFields` entry as a controller's server-side apply leaves it.
fn managed_fields(manager: &str) -> Value {
    json!([{
        "manager": manager, "operation": "Update", "apiVersion": "v1",
        "time": "2026-05-01T10:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
                     "f:status": {"f:conditions": {}, "f:phase": {}, "f:podIP": {}}},
    }])
}

/// A container: the app (two ports, env, resources, probes), or a sidecar or log shipper.
fn container(name: &str, index: usize, ports: bool) -> Value {
    let mut container = json!({
        "name": name,
        "image": format!("registry.example.com/team/{name}:1.{}.0", index % 7),
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME",
                 "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "kube-api-access", "readOnly": true,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    });
    if ports {
        container["ports"] = json!([
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        ]);
        container["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": "http"},
                                             "periodSeconds": 10});
    }
    container
}

/// Pod `index` at revision `rev` (a label, so each revision is a change the agent keeps).
pub fn pod(index: usize, rev: usize, scale: &Scale) -> Value {
    let app = format!("app-{:04}", index % 1000);
    let node = node_name(index % scale.nodes.max(1));
    let ip = format!(
        "10.{}.{}.{}",
        64 + index / 65_536,
        (index / 256) % 256,
        index % 256
    );
    let statuses: Vec<Value> = ["app", "proxy", "logs"]
        .iter()
        .map(|name| json!({"name": name, "ready": true, "restartCount": 0, "started": true,
                           "image": format!("registry.example.com/team/{name}:1.0.0"),
                           "imageID": format!("registry.example.com/team/{name}@sha256:{index:064x}"),
                           "containerID": format!("containerd://{index:064x}"),
                           "state": {"running": {"startedAt": "2026-05-01T10:00:05Z"}}}))
        .collect();
    let tier = ["web", "api", "worker"][index % 3];
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": "2026-05-01T10:00:06Z"}))
    .collect();
    let pod = json!({
        "metadata": {
            "name": pod_name(index), "namespace": pod_namespace(index, scale),
            "generateName": format!("{app}-7d9f8c6b5-"), "uid": format!("{index:08x}-0000-4000-8000-000000000000"),
            "resourceVersion": "1", "creationTimestamp": "2026-05-01T10:00:00Z",
            "labels": {"app": app, "pod-template-hash": "7d9f8c6b5", "tier": tier,
                       "version": format!("v{}", index % 4), "rev": rev.to_string()},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9f8c6b5"),
                                 "uid": "5d1e7a90-0000-4000-8000-000000000000", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": managed_fields("kubelet"),
        },
        "spec": {
            "nodeName": node, "serviceAccountName": "default", "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler", "priority": 0,
            "terminationGracePeriodSeconds": 30, "enableServiceLinks": true,
            "containers": [container("app", index, true), container("proxy", index, false), container("logs", index, false)],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "192.0.2.1", "podIP": ip,
            "podIPs": [{"ip": ip}], "startTime": "2026-05-01T10:00:01Z",
            "conditions": conditions,
            "containerStatuses": statuses,
        },
    });
    typed(pod, "v1", "Pod")
}

/// Service `index` at revision `rev` (svcscale's Service, with a `rev` label).
pub fn service(index: usize, rev: usize) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(synth::service(index))?;
    value["metadata"]["labels"] = json!({"rev": rev.to_string()});
    Ok(typed(value, "v1", "Service"))
}

/// The EndpointSlice of Service `index` at revision `rev`.
pub fn endpoint_slice(index: usize, rev: usize, scale: &Scale) -> anyhow::Result<Value> {
    let slice = synth::endpoint_slice(index, scale.endpoints_per_service, Variant::Original);
    let mut value = serde_json::to_value(slice)?;
    value["metadata"]["labels"]["rev"] = rev.to_string().into();
    Ok(typed(value, "discovery.k8s.io/v1", "EndpointSlice"))
}

/// Node `index`: labels, addresses, capacity, conditions, node info and a few images, as a kubelet
/// reports them.
pub fn node(index: usize) -> Value {
    let name = node_name(index);
    let address = format!("192.0.{}.{}", 2 + index / 250, 1 + index % 250);
    let conditions: Vec<Value> = [
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
        ("Ready", "True"),
    ]
    .iter()
    .map(|(t, s)| json!({"type": t, "status": s, "reason": "KubeletReady",
                         "lastHeartbeatTime": "2026-05-01T10:00:00Z", "lastTransitionTime": "2026-05-01T09:00:00Z"}))
    .collect();
    let images: Vec<Value> = (0..8)
        .map(|i| {
            json!({"names": [format!("registry.example.com/team/image-{i}@sha256:{i:064x}")],
                        "sizeBytes": 50_000_000 + i * 1_000_000})
        })
        .collect();
    let node = json!({
        "metadata": {"name": name, "uid": format!("{index:08x}-1111-4000-8000-000000000000"), "resourceVersion": "1",
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "topology.kubernetes.io/zone": format!("zone-{}", index % 3)},
                     "managedFields": managed_fields("kubelet")},
        "spec": {"podCIDR": format!("10.244.{}.0/24", index % 256), "podCIDRs": [format!("10.244.{}.0/24", index % 256)]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "16", "memory": "65843256Ki", "pods": "110"},
            "allocatable": {"cpu": "15800m", "memory": "65231032Ki", "pods": "110"},
            "conditions": conditions, "images": images,
            "nodeInfo": {"kubeletVersion": "v1.33.1", "containerRuntimeVersion": "containerd://2.0.5",
                         "kernelVersion": "6.8.0", "osImage": "Ubuntu 24.04", "architecture": "amd64",
                         "operatingSystem": "linux", "machineID": format!("{index:032x}"),
                         "systemUUID": format!("{index:032x}"), "bootID": format!("{index:032x}"),
                         "kubeProxyVersion": "", "containerRuntime": ""},
        },
    });
    typed(node, "v1", "Node")
}

/// Namespace `index` (`ns-NNN`).
pub fn namespace(index: usize) -> Value {
    let name = format!("ns-{index:03}");
    typed(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name,
                                                      "team": format!("team-{}", index % 10)}}}),
        "v1",
        "Namespace",
    )
}

/// The NetworkPolicy of namespace `index`: its web pods take traffic from the team's namespaces.
pub fn network_policy(index: usize) -> Value {
    let policy = json!({
        "metadata": {"name": "allow-team", "namespace": format!("ns-{index:03}")},
        "spec": {"podSelector": {"matchLabels": {"tier": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", index % 10)}}}],
                              "ports": [{"protocol": "TCP", "port": 8080}]}]},
    });
    typed(policy, "networking.k8s.io/v1", "NetworkPolicy")
}

/// Every object of the cluster, at revision 0.
pub fn objects(scale: &Scale) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::with_capacity(scale.objects());
    for index in 0..scale.services {
        objects.push(service(index, 0)?);
        objects.push(endpoint_slice(index, 0, scale)?);
    }
    objects.extend((0..scale.nodes).map(node));
    objects.extend((0..scale.namespaces).map(namespace));
    objects.extend((0..scale.policies.min(scale.namespaces)).map(network_policy));
    objects.extend((0..scale.pods).map(|index| pod(index, 0, scale)));
    Ok(objects)
}

/// What change `k` of the stream does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Pod `index` gets a new revision.
    Pod(usize),
    /// Pod `index` is deleted and created again (with a new revision): two events.
    PodRecreated(usize),
    /// The EndpointSlice of Service `index` gets a new revision.
    Slice(usize),
    /// Service `index` gets a new revision.
    Service(usize),
}

/// Change `k` (its revision is `k + 1`): six in ten a Pod's update, one a Pod deleted and created
/// again, two an EndpointSlice's update, one a Service's; spread over the objects by a large prime.
pub fn change(k: usize, scale: &Scale) -> Change {
    let spread = k.wrapping_mul(104_729);
    match k % 10 {
        0..=5 => Change::Pod(spread % scale.pods.max(1)),
        6 => Change::PodRecreated(spread % scale.pods.max(1)),
        7 | 8 => Change::Slice(spread % scale.services.max(1)),
        _ => Change::Service(spread % scale.services.max(1)),
    }
}

/// The watch events change `k` makes: (event type, object).
pub fn change_events(k: usize, scale: &Scale) -> anyhow::Result<Vec<(&'static str, Value)>> {
    let rev = k + 1;
    Ok(match change(k, scale) {
        Change::Pod(index) => vec![("MODIFIED", pod(index, rev, scale))],
        Change::PodRecreated(index) => vec![
            ("DELETED", pod(index, rev - 1, scale)),
            ("ADDED", pod(index, rev, scale)),
        ],
        Change::Slice(index) => vec![("MODIFIED", endpoint_slice(index, rev, scale)?)],
        Change::Service(index) => vec![("MODIFIED", service(index, rev)?)],
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    use super::*;

    const SCALE: Scale = Scale {
        services: 10,
        endpoints_per_service: 3,
        nodes: 4,
        pods: 50,
        namespaces: 5,
        policies: 5,
    };

    #[test]
    fn objects_decode_as_their_kinds_and_changes_touch_every_kind() {
        let objects = objects(&SCALE).unwrap();
        assert_eq!(objects.len(), SCALE.objects());
        for object in &objects {
            let value = object.clone();
            let parsed: strait_k8s::Object = match object["kind"].as_str().unwrap() {
                "Service" => serde_json::from_value::<Service>(value).unwrap().into(),
                "EndpointSlice" => serde_json::from_value::<EndpointSlice>(value)
                    .unwrap()
                    .into(),
                "Node" => serde_json::from_value::<Node>(value).unwrap().into(),
                "Pod" => serde_json::from_value::<Pod>(value).unwrap().into(),
                "Namespace" => serde_json::from_value::<Namespace>(value).unwrap().into(),
                "NetworkPolicy" => serde_json::from_value::<NetworkPolicy>(value)
                    .unwrap()
                    .into(),
                other => panic!("unexpected kind {other}"),
            };
            assert!(!parsed.key().name.is_empty());
        }
        let kinds: std::collections::HashSet<_> = (0..20)
            .map(|k| std::mem::discriminant(&change(k, &SCALE)))
            .collect();
        assert_eq!(kinds.len(), 4);
        assert_eq!(change_events(6, &SCALE).unwrap().len(), 2);
    }
}
