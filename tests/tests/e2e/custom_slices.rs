//! Services without a selector whose EndpointSlices are written by hand, as upstream's v1.34
//! conformance tests "EndpointSlice should support a Service with multiple endpoint IPs specified in
//! multiple EndpointSlices" and "... with multiple ports specified in multiple EndpointSlices" write
//! them: one port's endpoints split over two slices reach both pods; two ports, each from its own
//! slice, reach their own pod and target port, follow a slice that moves to another pod, and stop
//! when a slice is deleted.

use std::{collections::BTreeSet, path::Path, time::Duration};

use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

/// Two pods, each serving TCP 8090 and 9090 (upstream's agnhost serves its HTTP port and a second one).
const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: pod1, namespace: default}
spec:
  containers: [{name: c, image: agnhost, ports: [{containerPort: 8090}, {containerPort: 9090}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: pod2, namespace: default}
spec:
  containers: [{name: c, image: agnhost, ports: [{containerPort: 8090}, {containerPort: 9090}]}]
";

/// A Service without a selector: the lab's controller writes no slice for it.
fn service(name: &str, ports: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec: {{ports: {ports}}}\n"
    )
}

/// A hand-written slice for `service`: one endpoint at `address`, one port.
fn slice(name: &str, service: &str, address: &str, port_name: &str, port: u16) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  \
         namespace: default\n  labels: {{kubernetes.io/service-name: {service}, \
         endpointslice.kubernetes.io/managed-by: e2e-test}}\naddressType: IPv4\n\
         ports: [{{name: {port_name}, port: {port}, protocol: TCP}}]\n\
         endpoints: [{{addresses: ['{address}']}}]\n"
    )
}

fn cluster_ip(lab: &Lab, service: &str) -> String {
    lab.state.services[service]
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("a ClusterIP")
}

/// Who answers `target` from `from`, `times` times.
fn answers(lab: &Lab, from: &str, target: &str, times: usize) -> BTreeSet<Result<String, String>> {
    (0..times)
        .map(|_| {
            lab.probe(from, target, false, Duration::from_secs(2))
                .unwrap()
        })
        .collect()
}

#[test]
fn services_without_a_selector_follow_their_hand_written_slices() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("csl");
    let mut lab = Lab::up(&guard.name, 2, None).expect("lab up");
    lab.apply_str(Path::new("pods"), PODS).expect("the pods");
    let ip = |pod: &str| lab.state.pod(pod).unwrap().ip.to_string();
    let (pod1, pod2) = (ip("default/pod1"), ip("default/pod2"));
    let from = "node/".to_owned() + &lab.state.nodes[0].name;

    // Multiple endpoint IPs in multiple slices: one port, its endpoints split over two slices.
    let manifests = service(
        "example-int-port",
        "[{name: example, port: 80, targetPort: 3000}]",
    ) + &slice(
        "e2e-example-ing1",
        "example-int-port",
        &pod1,
        "example",
        8090,
    ) + &slice(
        "e2e-example-ing2",
        "example-int-port",
        &pod2,
        "example",
        8090,
    );
    lab.apply_str(Path::new("multiple-ips"), &manifests)
        .expect("the Service and its slices");
    let target = format!("{}:80", cluster_ip(&lab, "default/example-int-port"));
    let reached = answers(&lab, &from, &target, 16);
    assert_eq!(
        reached,
        [Ok("default/pod1".to_owned()), Ok("default/pod2".to_owned())].into(),
        "both slices' endpoints serve {target}"
    );

    // Multiple ports in multiple slices: each port from its own slice, on another target port.
    let ports = "[{name: example-int-port, port: 80, targetPort: 3000}, \
                 {name: example-named-port, port: 81, targetPort: http}]";
    let multi = |second: &str| {
        service("example-multi-port", ports)
            + &slice(
                "e2e-multi-1",
                "example-multi-port",
                &pod1,
                "example-int-port",
                8090,
            )
            + &slice(
                "e2e-multi-2",
                "example-multi-port",
                second,
                "example-named-port",
                9090,
            )
    };
    lab.apply_str(Path::new("multiple-ports"), &multi(&pod1))
        .expect("the Service and its slices");
    let vip = cluster_ip(&lab, "default/example-multi-port");
    let (port80, port81) = (format!("{vip}:80"), format!("{vip}:81"));
    assert_eq!(
        answers(&lab, &from, &port80, 4),
        [Ok("default/pod1".to_owned())].into()
    );
    assert_eq!(
        answers(&lab, &from, &port81, 4),
        [Ok("default/pod1".to_owned())].into()
    );
    // The second slice now names the other pod: port 81 follows it, port 80 stays.
    lab.apply_str(Path::new("multiple-ports"), &multi(&pod2))
        .expect("the moved slice");
    assert_eq!(
        answers(&lab, &from, &port81, 4),
        [Ok("default/pod2".to_owned())].into()
    );
    assert_eq!(
        answers(&lab, &from, &port80, 4),
        [Ok("default/pod1".to_owned())].into()
    );
    // Deleting the second slice leaves port 81 without endpoints: refused at once.
    lab.delete_str(
        Path::new("slice"),
        &slice(
            "e2e-multi-2",
            "example-multi-port",
            &pod2,
            "example-named-port",
            9090,
        ),
    )
    .expect("slice deleted");
    let refused = lab
        .probe(&from, &port81, false, Duration::from_secs(2))
        .unwrap();
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("refused")),
        "{port81}: {refused:?}"
    );
    assert_eq!(
        answers(&lab, &from, &port80, 2),
        [Ok("default/pod1".to_owned())].into()
    );
}
