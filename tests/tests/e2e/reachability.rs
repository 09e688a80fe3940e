//! The upstream NetworkPolicy e2e model on a three-node lab: with no policy every cell of the
//! 9 x 9 x (80, 81) x (TCP, UDP) truth table is allowed, by pod IP and by each pod's own Service, well
//! under a minute; a pod relabelled in place keeps its address and workload while Services follow the
//! label; a Namespace's labels are updated in place and published with `kubernetes.io/metadata.name`.

use std::{fs, time::Duration};

use serde_json::Value;
use strait_lab::{
    cluster::Lab,
    manifests::{MODEL_PORTS, Protocol, model_pod_ids, netpol_model_manifest},
    reachability::{Reachability, ReachabilityOptions, Via},
    status,
};
use strait_tests::LabGuard;

fn model_lab(guard: &LabGuard) -> Lab {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.yaml");
    fs::write(&file, netpol_model_manifest()).unwrap();
    Lab::up(&guard.name, 3, Some(&file)).expect("lab up with the model")
}

fn cases() -> Vec<(u16, Protocol)> {
    MODEL_PORTS
        .iter()
        .flat_map(|p| [(*p, Protocol::Tcp), (*p, Protocol::Udp)])
        .collect()
}

/// Probes the whole model via `via` and checks every cell is allowed; returns how long it took.
fn all_allowed(lab: &Lab, via: Via) -> Duration {
    let options = ReachabilityOptions {
        via,
        ..ReachabilityOptions::default()
    };
    let probed = lab.reachability(&options).expect("reachability");
    let pods = model_pod_ids();
    let expected = Reachability::from_fn(&pods, &pods, &cases(), |_, _, _, _| true);
    let wrong = probed.compare(&expected);
    assert!(
        wrong.is_empty(),
        "via {via:?}, {} wrong cells:\n{}",
        wrong.len(),
        probed.render_comparison(&expected)
    );
    assert_eq!(probed.counts(), (324, 324));
    println!(
        "324 probes via {via:?} in {:.2} s",
        probed.elapsed.as_secs_f64()
    );
    assert!(
        probed.elapsed < Duration::from_mins(1),
        "{:?}",
        probed.elapsed
    );
    probed.elapsed
}

#[test]
fn the_netpol_model_is_all_allowed_without_policy_and_relabels_in_place() {
    let guard = LabGuard::new("rq");
    let mut lab = model_lab(&guard);
    // Spread: each namespace has a pod on every node.
    for ns in ["x", "y", "z"] {
        let mut nodes: Vec<&str> = lab
            .state
            .pods
            .iter()
            .filter(|p| p.namespace == ns)
            .map(|p| p.node.as_str())
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "namespace {ns} spans the nodes");
    }
    all_allowed(&lab, Via::Pod);
    all_allowed(&lab, Via::Service);
    external_server_answers(&lab);
    relabel_in_place(&mut lab);
    namespace_labels(&mut lab);
}

/// The external namespace serves as `external` on its ports, over TCP and UDP (asked from a node: the
/// nodes do not forward, so pods do not reach it).
fn external_server_answers(lab: &Lab) {
    let node = format!("node/{}", lab.state.nodes[0].name);
    for port in strait_lab::external::EXTERNAL_PORTS {
        for udp in [false, true] {
            let target = format!("{}:{port}", strait_lab::network::EXTERNAL_IP);
            let answer = lab
                .probe(&node, &target, udp, Duration::from_secs(2))
                .unwrap();
            assert_eq!(answer.as_deref(), Ok("external"), "{target} udp={udp}");
        }
    }
}

/// The x/a pod document of the model, with `extra` added to its labels.
fn model_pod_a(extra: &str) -> String {
    let manifest = netpol_model_manifest();
    let doc = manifest
        .split("---\n")
        .find(|d| d.contains("kind: Pod\nmetadata:\n  name: a\n  namespace: x\n"))
        .expect("x/a in the model")
        .to_owned();
    doc.replace("    pod: a\n", &format!("    pod: a\n{extra}"))
}

const WEB: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: x}
spec:
  selector: {role: web}
  ports: [{name: http, port: 80, targetPort: 80}]
";

fn web_endpoints(lab: &Lab) -> u64 {
    let json = status::to_json(lab);
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["namespace"] == "x" && s["name"] == "web")
        .unwrap()["endpoint_count"]
        .as_u64()
        .unwrap()
}

fn published(lab: &Lab, file: &str) -> Value {
    serde_json::from_slice(&fs::read(lab.cluster_dir().join(file)).unwrap()).unwrap()
}

fn relabel_in_place(lab: &mut Lab) {
    let here = std::path::Path::new("in.yaml");
    lab.apply_str(here, WEB).unwrap();
    assert_eq!(web_endpoints(lab), 0);
    let before = lab.state.pod("x/a").unwrap().clone();
    let applied = lab
        .apply_str(here, &model_pod_a("    role: web\n"))
        .unwrap();
    assert_eq!(applied[0].to_string(), "pod/a configured");
    let after = lab.state.pod("x/a").unwrap().clone();
    assert_eq!(
        (after.ip, &after.netns, after.workload_pid, &after.node),
        (before.ip, &before.netns, before.workload_pid, &before.node),
        "the same pod, relabelled"
    );
    assert_eq!(after.labels["role"], "web");
    assert!(strait_lab::process::alive(after.workload_pid));
    assert_eq!(web_endpoints(lab), 1, "the Service gained the pod");
    assert_eq!(
        published(lab, "pod_x_a.json")["metadata"]["labels"]["role"],
        "web"
    );
    let web_ip = lab.state.services["x/web"]
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone()
        .unwrap();
    let target = format!("{web_ip}:80");
    let answer = lab
        .probe("y/b", &target, false, Duration::from_secs(2))
        .unwrap();
    assert_eq!(answer.as_deref(), Ok("x/a"));
    // And back: the Service loses it; the pod keeps answering on its address.
    let applied = lab.apply_str(here, &model_pod_a("")).unwrap();
    assert_eq!(applied[0].to_string(), "pod/a configured");
    assert_eq!(web_endpoints(lab), 0, "the Service lost the pod");
    assert_eq!(lab.state.pod("x/a").unwrap().ip, before.ip);
    let answer = lab
        .probe(
            "y/b",
            &format!("{}:80", before.ip),
            false,
            Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(answer.as_deref(), Ok("x/a"));
    // Any other change to a running pod is refused, as the API server refuses it.
    let moved = model_pod_a("").replace("containerPort: 81", "containerPort: 82");
    let error = lab.apply_str(here, &moved).unwrap_err().to_string();
    assert!(error.contains("Forbidden"), "{error}");
}

fn namespace_labels(lab: &mut Lab) {
    let here = std::path::Path::new("in.yaml");
    let team =
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: y, labels: {ns: y, team: blue}}\n";
    let applied = lab.apply_str(here, team).unwrap();
    assert_eq!(applied[0].to_string(), "namespace/y configured");
    let json = status::to_json(lab);
    let y = json["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "y")
        .unwrap()
        .clone();
    assert_eq!(y["labels"]["team"], "blue");
    assert_eq!(y["labels"]["ns"], "y");
    assert_eq!(y["labels"]["kubernetes.io/metadata.name"], "y");
    let file = published(lab, "namespace_y.json");
    assert_eq!(file["metadata"]["labels"]["team"], "blue");
    assert_eq!(
        file["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "y"
    );
    let default = published(lab, "namespace_default.json");
    assert_eq!(
        default["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
    // Relabelling a namespace leaves its pods where they were.
    assert_eq!(
        lab.reachability(&ReachabilityOptions {
            from: vec!["y".into()],
            to: vec!["y".into()],
            ..ReachabilityOptions::default()
        })
        .unwrap()
        .counts(),
        (36, 36)
    );
}
