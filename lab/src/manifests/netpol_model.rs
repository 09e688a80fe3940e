//! The upstream Kubernetes NetworkPolicy e2e suite's model cluster as a manifest: namespaces x, y and
//! z (label `ns: <name>`), pods a, b and c in each (label `pod: <name>`) serving 80 and 81 over TCP and
//! UDP with container ports named `serve-<port>-<proto>`, one container per port as upstream, and one
//! Service `s-<ns>-<pod>` per pod selecting only it, with the four ports. The lab spreads the pods over
//! its nodes (least loaded first: on three nodes each namespace has one pod per node).

use std::fmt::Write as _;

/// The model's namespaces.
pub const MODEL_NAMESPACES: [&str; 3] = ["x", "y", "z"];
/// The model's pods, in each namespace.
pub const MODEL_PODS: [&str; 3] = ["a", "b", "c"];
/// The ports each model pod serves, over TCP and UDP.
pub const MODEL_PORTS: [u16; 2] = [80, 81];

/// Every model pod as `ns/pod`, in order (x/a, x/b, ..., z/c).
pub fn model_pod_ids() -> Vec<String> {
    MODEL_NAMESPACES
        .iter()
        .flat_map(|ns| MODEL_PODS.iter().map(move |pod| format!("{ns}/{pod}")))
        .collect()
}

/// The model as one multi-document YAML manifest (Namespaces first, then per namespace its Pods and
/// Services).
pub fn netpol_model_manifest() -> String {
    let mut out = String::new();
    for ns in MODEL_NAMESPACES {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    ns: {ns}\n---\n"
        );
    }
    for ns in MODEL_NAMESPACES {
        for pod in MODEL_PODS {
            out.push_str(&pod_manifest(ns, pod));
            out.push_str(&service_manifest(ns, pod));
        }
    }
    out
}

fn pod_manifest(ns: &str, pod: &str) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod}\n  namespace: {ns}\n  labels:\n    pod: {pod}\n\
         spec:\n  containers:\n"
    );
    for port in MODEL_PORTS {
        for proto in ["tcp", "udp"] {
            let _ = write!(
                out,
                "  - name: cont-{port}-{proto}\n    image: registry.k8s.io/e2e-test-images/agnhost:2.53\n    \
                 ports:\n    - name: serve-{port}-{proto}\n      containerPort: {port}\n      protocol: {}\n",
                proto.to_ascii_uppercase()
            );
        }
    }
    out.push_str("---\n");
    out
}

fn service_manifest(ns: &str, pod: &str) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s-{ns}-{pod}\n  namespace: {ns}\n\
         spec:\n  selector:\n    pod: {pod}\n  ports:\n"
    );
    for port in MODEL_PORTS {
        for proto in ["tcp", "udp"] {
            let _ = write!(
                out,
                "  - name: serve-{port}-{proto}\n    port: {port}\n    targetPort: {port}\n    protocol: {}\n",
                proto.to_ascii_uppercase()
            );
        }
    }
    out.push_str("---\n");
    out
}
