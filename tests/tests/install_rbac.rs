//! The ClusterRole against the agent's real API calls: the agent's kube-facing code (the watchers of
//! both source modes, the pod CIDR lookup, the Flannel annotation patch) runs against the stand-in
//! API server, every request is turned into the RBAC verb and resource it needs, and that set must
//! equal what the committed ClusterRole grants: nothing the agent uses is missing, nothing granted
//! goes unused.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::ClusterRole;
use serde::Deserialize as _;
use serde_json::{Value, json};
use strait_control::model::{KubeSource, ObjectSource, SourceBatch};
use strait_control::{node_annotations, node_discovery};
use strait_tests::stand_in_api::MockApiServer;

type Grant = (String, String, String);

/// The RBAC `(group, resource, verb)` a request needs: a collection GET is `list` (`watch` with
/// `watch=true`), an object GET is `get`, a PATCH is `patch`.
fn grant_of(call: &str) -> Grant {
    let (method, target) = call.split_once(' ').unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("unexpected request {call}"),
    };
    let (resource, named) = match rest {
        [resource] => (*resource, false),
        [resource, _name] => (*resource, true),
        _ => panic!("a namespaced or sub-resource request: {call}"),
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named, watch) {
        ("GET", false, true) => "watch",
        ("GET", false, false) => "list",
        ("GET", true, _) => "get",
        ("PATCH", true, _) => "patch",
        _ => panic!("a request the ClusterRole has no verb for: {call}"),
    };
    (group, resource.to_owned(), verb.to_owned())
}

/// What the committed ClusterRole grants.
fn granted() -> BTreeSet<Grant> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/10-rbac.yaml");
    let text = std::fs::read_to_string(file).unwrap();
    let role: ClusterRole = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .find(|v| v["kind"] == "ClusterRole")
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    let mut grants = BTreeSet::new();
    for rule in role.rules.unwrap() {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none());
        for group in rule.api_groups.unwrap() {
            for resource in rule.resources.clone().unwrap() {
                for verb in &rule.verbs {
                    assert_ne!(verb, "*", "no wildcard verbs");
                    assert_ne!(resource, "*", "no wildcard resources");
                    grants.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

fn cluster() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "resourceVersion": "1"},
               "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default", "resourceVersion": "1"},
               "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP"}]}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "resourceVersion": "1"}}),
    ]
}

/// Polls `source` until every watcher has listed once.
fn wait_ready(source: &mut KubeSource) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !source.is_ready() {
        assert!(
            Instant::now() < deadline,
            "the kube source never became ready"
        );
        let mut batch = SourceBatch::default();
        source.next_batch(Duration::from_millis(200), &mut batch);
    }
}

#[test]
fn the_cluster_role_grants_exactly_the_calls_the_agent_makes() {
    let server = MockApiServer::start_paginated(cluster()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let client =
        || kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();

    // straitd --kube at start: its pod CIDR from its Node, then its Flannel annotations.
    let pod_cidr = runtime
        .block_on(node_discovery::wait_for_pod_cidr(
            client(),
            "n1",
            Duration::from_millis(50),
        ))
        .unwrap();
    assert_eq!(pod_cidr.to_string(), "10.244.1.0/24");
    runtime
        .block_on(node_annotations::publish(
            client(),
            "n1",
            "192.0.2.1".parse().unwrap(),
            [0x0a, 0x58, 0xc0, 0, 2, 1],
            1,
        ))
        .unwrap();
    let node = server.object("/api/v1/nodes", "n1").unwrap();
    assert_eq!(
        node["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-type"],
        "vxlan"
    );

    // Its watchers, with NetworkPolicy (every kind) and without (this node's pods).
    for policy in [true, false] {
        let mut source = if policy {
            KubeSource::start_for_policy(client(), "n1")
        } else {
            KubeSource::start(client(), "n1")
        };
        wait_ready(&mut source);
        // Let every watch request arrive after the lists.
        std::thread::sleep(Duration::from_millis(300));
    }

    let calls = server.calls();
    let used: BTreeSet<Grant> = calls.iter().map(|c| grant_of(c)).collect();
    let granted = granted();
    let missing: Vec<_> = used.difference(&granted).collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the agent calls what the ClusterRole does not grant: {missing:?}\n{calls:#?}"
    );
    assert!(
        unused.is_empty(),
        "the ClusterRole grants what the agent never uses: {unused:?}\n{calls:#?}"
    );
    let table: BTreeSet<Grant> = strait_k8s::access::grants(strait_k8s::access::AGENT_API_ACCESS)
        .into_iter()
        .collect();
    assert_eq!(table, used);
}

/// A tripwire for the test above: the only code of the agent that talks to the API server is what
/// it exercises. A new `Api` elsewhere must be added there (and to the access table).
#[test]
fn the_agent_talks_to_the_api_only_where_the_rbac_test_looks() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let allowed = [
        "control/src/model/kube_source.rs",
        "control/src/model/kube_source/watch.rs",
        "control/src/node_annotations.rs",
        "control/src/node_discovery.rs",
    ];
    let mut found = BTreeSet::new();
    for crate_dir in ["control/src", "dns/src", "dataplane/src", "k8s/src"] {
        let mut stack = vec![root.join(crate_dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                // Test-only modules (mock servers and their tests) are not the agent.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                if relative.contains("/tests") || relative.contains("mock_api") {
                    continue;
                }
                if [
                    "Api::all(",
                    "Api::namespaced(",
                    "Api::<",
                    ": Api<",
                    "kube::Api",
                ]
                .iter()
                .any(|needle| code.contains(needle))
                {
                    found.insert(relative);
                }
            }
        }
    }
    let unexpected: Vec<_> = found
        .iter()
        .filter(|f| !allowed.contains(&f.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "API calls outside the RBAC test's reach: {unexpected:?}"
    );
    assert!(
        found.contains("control/src/node_discovery.rs"),
        "the tripwire finds API use: {found:?}"
    );
}
