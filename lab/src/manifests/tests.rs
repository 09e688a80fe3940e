//! Tests of Pod and Deployment expansion.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use strait_k8s::Object;

use super::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

fn parse(text: &str) -> Result<Vec<Object>, strait_k8s::ManifestError> {
    strait_k8s::manifest::parse_str(Path::new("test.yaml"), text, &LAB).map(Loaded::into_objects)
}

fn load_path(path: &Path) -> Result<Vec<Object>, strait_k8s::ManifestError> {
    strait_k8s::manifest::load_path(path, &LAB).map(Loaded::into_objects)
}

fn pod_yaml(name: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: x\n\
         spec:\n  containers:\n  - name: c\n    image: busybox\n    ports:\n{ports}"
    )
}

fn deployment_yaml(replicas: &str, selector: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      {selector}\n\
         \x20 template:\n    metadata:\n      labels:\n        app: web\n        tier: front\n\
         \x20   spec:\n      containers:\n      - name: web\n        image: {image}\n\
         \x20       ports:\n        - {{name: http, containerPort: 8080}}\n\
         \x20     - name: side\n        image: busybox\n        ports:\n\
         \x20       - {{name: http, containerPort: 8080, protocol: TCP}}\n\
         \x20       - {{name: dns, containerPort: 53, protocol: UDP}}\n"
    )
}

fn deployment(text: &str) -> Deployment {
    match parse(text).unwrap().remove(0) {
        Object::Deployment(d) => *d,
        other => panic!("not a deployment: {other:?}"),
    }
}

#[test]
fn pod_expansion_collects_and_dedupes_ports() {
    let objects = parse(&pod_yaml(
        "p",
        "    - {containerPort: 80, name: http}\n    - {containerPort: 53, protocol: UDP}\n    - {containerPort: 53, protocol: TCP}\n",
    ))
    .unwrap();
    let Object::Pod(pod) = &objects[0] else {
        panic!()
    };
    let lite = pod_from_pod(pod);
    assert_eq!(
        (lite.namespace.as_str(), lite.name.as_str(), lite.owner),
        ("default", "p", None)
    );
    assert_eq!(lite.labels.get("app").map(String::as_str), Some("x"));
    let ports: Vec<_> = lite
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.protocol))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("http"), 80, Protocol::Tcp),
            (None, 53, Protocol::Udp),
            (None, 53, Protocol::Tcp)
        ]
    );
    assert_eq!(Protocol::Udp.to_string(), "UDP");
    assert_eq!(serde_json::to_string(&Protocol::Tcp).unwrap(), "\"TCP\"");
}

#[test]
fn deployment_expansion_names_and_labels() {
    let d = deployment(&deployment_yaml("3", "app: web", "nginx"));
    assert_eq!(deployment_replicas(&d), 3);
    let hash = pod_template_hash(&d.spec.template);
    assert!((1..=10).contains(&hash.len()));
    assert!(hash.bytes().all(|b| ALPHABET.contains(&b)), "{hash}");

    let existing: BTreeSet<String> = ["web-x".to_owned()].into();
    let pods = pods_for_deployment(&d, &existing, 50);
    assert_eq!(pods.len(), 50);
    let names: BTreeSet<_> = pods.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names.len(), 50, "names must be distinct");
    let prefix = format!("web-{hash}-");
    for pod in &pods {
        let suffix = pod
            .name
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{}", pod.name));
        assert_eq!(suffix.len(), 5, "{}", pod.name);
        assert!(
            suffix.bytes().all(|b| ALPHABET.contains(&b)),
            "{}",
            pod.name
        );
        assert_eq!(pod.namespace, "shop");
        assert_eq!(pod.labels.get(TEMPLATE_HASH_LABEL), Some(&hash));
        assert_eq!(pod.labels.get("tier").map(String::as_str), Some("front"));
        let owner = pod.owner.as_ref().unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(owner.template_hash, hash);
        // http/TCP 8080 appears in both containers: deduped.
        let ports: Vec<_> = pod.ports.iter().map(|p| (p.port, p.protocol)).collect();
        assert_eq!(ports, [(8080, Protocol::Tcp), (53, Protocol::Udp)]);
    }

    // New pods avoid every existing name, including the ones just made.
    let more = pods_for_deployment(&d, &names, 20);
    assert!(more.iter().all(|p| !names.contains(&p.name)));
    assert!(pods_for_deployment(&d, &existing, 0).is_empty());
}

#[test]
fn template_hash_is_stable_and_tracks_changes() {
    let a = deployment(&deployment_yaml("3", "app: web", "nginx"));
    let same = deployment(&deployment_yaml("5", "app: web", "nginx"));
    let changed = deployment(&deployment_yaml("3", "app: web", "nginx:1.27"));
    let hash = |d: &Deployment| pod_template_hash(&d.spec.template);
    assert_eq!(hash(&a), hash(&a));
    assert_eq!(
        hash(&a),
        hash(&same),
        "replicas are not part of the template"
    );
    assert_ne!(hash(&a), hash(&changed));
}

#[test]
fn replicas_default_to_one() {
    let text = deployment_yaml("3", "app: web", "nginx").replace("  replicas: 3\n", "");
    assert_eq!(deployment_replicas(&deployment(&text)), 1);
}

#[test]
fn long_deployment_names_are_truncated_like_kubernetes() {
    let long = "w".repeat(100);
    let text = deployment_yaml("1", "app: web", "nginx").replace(
        "name: web\n  namespace",
        &format!("name: {long}\n  namespace"),
    );
    let pods = pods_for_deployment(&deployment(&text), &BTreeSet::new(), 3);
    for pod in pods {
        assert_eq!(pod.name.len(), 63, "{}", pod.name);
        assert!(pod.name.starts_with(&"w".repeat(58)));
    }
}

#[test]
fn examples_load() {
    let objects = load_path(Path::new(EXAMPLES)).unwrap();
    let summary: Vec<_> = objects
        .iter()
        .map(|o| (o.kind(), o.namespace(), o.name()))
        .collect();
    // deployment.yaml sorts before pods.yaml.
    assert_eq!(
        summary,
        [
            ("Deployment", "default", "web"),
            ("Service", "default", "web"),
            ("Pod", "default", "client"),
            ("Pod", "default", "server"),
        ]
    );
    let Object::Deployment(web) = &objects[0] else {
        panic!()
    };
    assert_eq!(deployment_replicas(web), 3);
    let Object::Pod(server) = &objects[3] else {
        panic!()
    };
    let ports: Vec<_> = pod_from_pod(server)
        .ports
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port, p.protocol))
        .collect();
    assert_eq!(
        ports,
        [
            ("http".to_owned(), 8080, Protocol::Tcp),
            ("dns".to_owned(), 5353, Protocol::Udp)
        ]
    );
}

#[test]
fn the_netpol_model_parses_with_named_ports_and_one_service_per_pod() {
    let objects = parse_str(Path::new("model.yaml"), &netpol_model_manifest()).unwrap();
    assert_eq!(objects.len(), 3 + 9 * 2);
    let mut pods = Vec::new();
    let mut services = Vec::new();
    for object in &objects {
        match object {
            Object::Namespace(ns) => {
                let name = ns.metadata.name.clone().unwrap();
                assert_eq!(ns.metadata.labels.as_ref().unwrap()["ns"], name);
            }
            Object::Pod(pod) => {
                let spec = pod_from_pod(pod);
                assert_eq!(spec.labels["pod"], spec.name);
                let ports: Vec<_> = spec
                    .ports
                    .iter()
                    .map(|p| (p.name.clone().unwrap(), p.port, p.protocol))
                    .collect();
                assert_eq!(
                    ports,
                    [
                        ("serve-80-tcp".to_owned(), 80, Protocol::Tcp),
                        ("serve-80-udp".to_owned(), 80, Protocol::Udp),
                        ("serve-81-tcp".to_owned(), 81, Protocol::Tcp),
                        ("serve-81-udp".to_owned(), 81, Protocol::Udp),
                    ]
                );
                pods.push(format!("{}/{}", spec.namespace, spec.name));
            }
            Object::Service(svc) => {
                let spec = svc.spec.as_ref().unwrap();
                let pod = spec.selector.as_ref().unwrap()["pod"].clone();
                let ns = svc.metadata.namespace.clone().unwrap();
                assert_eq!(
                    svc.metadata.name.as_deref(),
                    Some(&*format!("s-{ns}-{pod}"))
                );
                assert_eq!(spec.ports.as_ref().unwrap().len(), 4);
                services.push(format!("{ns}/{pod}"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pods, model_pod_ids());
    assert_eq!(services, model_pod_ids());
}
