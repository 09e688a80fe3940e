//! [`plan`]'s checks and results on lab states built in memory, and the kubectl-style result lines.

use std::{net::Ipv4Addr, path::Path};

use super::*;
use crate::state::PodRecord;

fn loaded(text: &str) -> Loaded {
    manifests::parse_loaded(Path::new("in.yaml"), text).expect("the manifest parses")
}

/// Plans `text` against `state` and makes the plan's changes to `state` as `Lab::apply` would, without
/// a runtime (pods are recorded, not started); returns the result lines.
fn apply(state: &mut LabState, text: &str) -> Result<Vec<String>, LabError> {
    let plan = plan(state, &loaded(text))?;
    for step in plan.steps {
        match step {
            Step::Namespace(name, ns) => {
                state.namespaces.insert(name, *ns);
            }
            Step::Service(key, service) => {
                state.services.insert(key, *service);
            }
            Step::CreatePod(spec) => state.pods.push(PodRecord {
                namespace: spec.namespace,
                name: spec.name,
                node: "n".into(),
                container_id: String::new(),
                netns: String::new(),
                cgroup: String::new(),
                ip: Ipv4Addr::LOCALHOST,
                ports: spec.ports,
                labels: spec.labels,
                owner: None,
                template_hash: None,
                workload_pid: 0,
                dns: spec.dns,
            }),
            Step::Relabel(id, labels) => {
                state.pods.iter_mut().find(|p| p.id() == id).unwrap().labels = labels;
            }
            Step::Deployment(key, deployment) => {
                let wanted = (
                    manifests::deployment_replicas(&deployment),
                    manifests::pod_template_hash(&deployment.spec.template),
                );
                state.deployments.insert(key, wanted);
            }
            Step::Policy(key, policy) => {
                state.policies.insert(key, *policy);
            }
            Step::Slice(key, slice) => {
                state.endpoint_slices.insert(key, *slice);
            }
        }
    }
    Ok(plan.applied.iter().map(ToString::to_string).collect())
}

fn service(namespace: &str, name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{selector: {{app: {name}}}, ports: [{{port: {port}}}]}}\n---\n"
    )
}

fn node_port_service(name: &str, node_port: u16, protocol: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: NodePort\n  \
         selector: {{app: {name}}}\n  ports: [{{port: 80, nodePort: {node_port}, protocol: {protocol}}}]\n---\n"
    )
}

const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox, ports: [{containerPort: 8080}]}]}
---
";

fn pod(labels: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: x, labels: {{{labels}}}}}\n\
         spec: {{containers: [{{name: c, image: busybox, ports: [{{containerPort: {port}}}]}}]}}\n---\n"
    )
}

#[test]
fn a_namespace_must_exist_before_objects_in_it() {
    let mut state = LabState::default();
    let error = apply(&mut state, &service("shop", "web", 80)).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("in.yaml document 1: service/web: namespaces \"shop\" not found"),
        "{text}"
    );
    assert!(state.services.is_empty());
    // Created earlier in the same input (not later), or by an earlier apply.
    let later = format!("{}{SHOP}", service("shop", "web", 80));
    assert!(apply(&mut state, &later).is_err());
    assert!(
        state.namespaces.is_empty(),
        "nothing of a refused input is applied"
    );
    let lines = apply(&mut state, &format!("{SHOP}{}", service("shop", "web", 80))).unwrap();
    assert_eq!(lines, ["namespace/shop created", "service/web created"]);
    let lines = apply(&mut state, &service("shop", "api", 80)).unwrap();
    assert_eq!(lines, ["service/api created"]);
    // The built-in namespaces always exist.
    for ns in BUILTIN_NAMESPACES {
        apply(&mut state, &service(ns, "web", 80)).unwrap();
    }
}

#[test]
fn results_say_created_configured_or_unchanged() {
    let mut state = LabState::default();
    let all = format!(
        "{SHOP}{}{DEPLOYMENT}{}",
        service("default", "web", 80),
        pod("app: x", 80)
    );
    assert_eq!(
        apply(&mut state, &all).unwrap(),
        [
            "namespace/shop created",
            "service/web created",
            "deployment.apps/web created",
            "pod/x created"
        ]
    );
    assert_eq!(
        apply(&mut state, &all).unwrap(),
        [
            "namespace/shop unchanged",
            "service/web unchanged",
            "deployment.apps/web unchanged",
            "pod/x unchanged"
        ]
    );
    let ip = state.services["default/web"]
        .spec
        .as_ref()
        .unwrap()
        .cluster_ip
        .clone();
    let changed = format!(
        "{}{}{}",
        service("default", "web", 81),
        DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
        pod("app: y", 80)
    );
    assert_eq!(
        apply(&mut state, &changed).unwrap(),
        [
            "service/web configured",
            "deployment.apps/web configured",
            "pod/x configured"
        ]
    );
    let spec = state.services["default/web"].spec.clone().unwrap();
    assert_eq!(
        spec.cluster_ip, ip,
        "a configured service keeps its ClusterIP"
    );
    assert_eq!(spec.ports.unwrap()[0].port, 81);
    assert_eq!(state.pods[0].labels["app"], "y");
    assert_eq!(state.deployments["default/web"].0, 3);
    // A built-in namespace applied as it is: unchanged; with labels: configured.
    let default = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n";
    assert_eq!(
        apply(&mut state, default).unwrap(),
        ["namespace/default unchanged"]
    );
    let labelled = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {a: b}}\n";
    assert_eq!(
        apply(&mut state, labelled).unwrap(),
        ["namespace/default configured"]
    );
}

#[test]
fn a_running_pod_keeps_its_ports() {
    let mut state = LabState::default();
    apply(&mut state, &pod("app: x", 80)).unwrap();
    let error = apply(&mut state, &pod("app: x", 81))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("pod/x: Forbidden: pod updates may not change"),
        "{error}"
    );
    assert_eq!(state.pods[0].ports[0].port, 80);
}

#[test]
fn a_node_port_held_over_one_protocol_is_refused_over_the_other() {
    let mut state = LabState::default();
    apply(&mut state, &node_port_service("tcp", 30080, "TCP")).unwrap();
    // Checked before anything changes: the valid first service of the input is not applied either.
    let input = format!(
        "{}{}",
        service("default", "fine", 80),
        node_port_service("udp", 30080, "UDP")
    );
    let error = apply(&mut state, &input).unwrap_err().to_string();
    assert!(
        error.starts_with("in.yaml document 2: service default/udp: spec.ports[0].nodePort")
            && error.contains("30080: provided port is already allocated"),
        "{error}"
    );
    assert_eq!(state.services.keys().collect::<Vec<_>>(), ["default/tcp"]);
    // Re-applying the holder itself is fine, and keeps the port.
    assert_eq!(
        apply(&mut state, &node_port_service("tcp", 30080, "TCP")).unwrap(),
        ["service/tcp unchanged"]
    );
}

#[test]
fn delete_results_read_as_kubectl_prints_them() {
    let line = |kind, name: &str, outcome| {
        Deleted {
            kind,
            namespace: "default".into(),
            name: name.into(),
            outcome,
        }
        .to_string()
    };
    assert_eq!(
        line(Kind::Service, "web", DeleteOutcome::Deleted),
        "service \"web\" deleted"
    );
    assert_eq!(
        line(Kind::Deployment, "web", DeleteOutcome::Deleted),
        "deployment.apps \"web\" deleted"
    );
    assert_eq!(
        line(Kind::Service, "web", DeleteOutcome::NotFound),
        "Error from server (NotFound): services \"web\" not found"
    );
    let forbidden = Deleted {
        kind: Kind::Namespace,
        namespace: String::new(),
        name: "default".into(),
        outcome: DeleteOutcome::Forbidden("this namespace may not be deleted"),
    };
    assert!(forbidden.is_error());
    assert_eq!(
        forbidden.to_string(),
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted"
    );
}

#[test]
fn namespaces_carry_their_name_label_and_relabel_in_place() {
    let mut state = LabState::default();
    let known = known_namespaces(&state);
    assert_eq!(
        known["default"].metadata.labels.as_ref().unwrap()[NAMESPACE_NAME_LABEL],
        "default",
        "a built-in namespace nobody applied has its name label"
    );
    let shop = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n";
    assert_eq!(apply(&mut state, shop).unwrap(), ["namespace/shop created"]);
    let labels = state.namespaces["shop"].metadata.labels.clone().unwrap();
    assert_eq!(labels[NAMESPACE_NAME_LABEL], "shop");
    assert_eq!(labels["team"], "a");
    // The name label is the API server's: applying the same object again changes nothing.
    assert_eq!(
        apply(&mut state, shop).unwrap(),
        ["namespace/shop unchanged"]
    );
    let relabelled = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: b}}\n";
    assert_eq!(
        apply(&mut state, relabelled).unwrap(),
        ["namespace/shop configured"]
    );
    let known = known_namespaces(&state);
    let labels = known["shop"].metadata.labels.clone().unwrap();
    assert_eq!(labels["team"], "b");
    assert_eq!(labels[NAMESPACE_NAME_LABEL], "shop");
    // A manifest cannot rename a namespace through the label.
    let spoofed = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {kubernetes.io/metadata.name: other}}\n";
    apply(&mut state, spoofed).unwrap();
    assert_eq!(
        known_namespaces(&state)["shop"]
            .metadata
            .labels
            .as_ref()
            .unwrap()[NAMESPACE_NAME_LABEL],
        "shop"
    );
}

#[test]
fn a_running_pod_relabels_in_place_and_ignores_other_changes() {
    let mut state = LabState::default();
    apply(&mut state, &pod("app: x", 80)).unwrap();
    assert_eq!(
        apply(&mut state, &pod("app: y", 80)).unwrap(),
        ["pod/x configured"]
    );
    assert_eq!(state.pods.len(), 1, "the same pod, relabelled");
    assert_eq!(state.pods[0].labels["app"], "y");
}

fn policy(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n"
    )
}

#[test]
fn network_policies_are_kept_when_they_parse_and_refused_naming_the_object_when_not() {
    let mut state = LabState::default();
    let deny = policy("shop", "deny", "{podSelector: {}}");
    assert_eq!(
        apply(&mut state, &format!("{SHOP}{deny}")).unwrap(),
        [
            "namespace/shop created",
            "networkpolicy.networking.k8s.io/deny created"
        ]
    );
    let stored = &state.policies["shop/deny"];
    assert_eq!(stored.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(
        apply(&mut state, &deny).unwrap(),
        ["networkpolicy.networking.k8s.io/deny unchanged"]
    );
    let egress = policy("shop", "deny", "{podSelector: {}, policyTypes: [Egress]}");
    assert_eq!(
        apply(&mut state, &egress).unwrap(),
        ["networkpolicy.networking.k8s.io/deny configured"]
    );
    assert_eq!(state.policies.len(), 1, "re-applied, replaced");
    // Without a namespace: `default`.
    apply(
        &mut state,
        &policy("default", "d", "{podSelector: {}}").replace(", namespace: default", ""),
    )
    .unwrap();
    assert_eq!(
        state.policies["default/d"].metadata.namespace.as_deref(),
        Some("default")
    );

    // A policy the specification cannot read refuses the whole input.
    let bad_cidr = policy(
        "shop",
        "bad",
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}",
    );
    let error = apply(
        &mut state,
        &format!("{}{bad_cidr}", service("shop", "web", 80)),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with(
            "in.yaml document 2: networkpolicy.networking.k8s.io/bad: spec.ingress[0].from[0].ipBlock.cidr"
        ),
        "{error}"
    );
    assert!(state.services.is_empty() && !state.policies.contains_key("shop/bad"));
    let named_range = policy(
        "shop",
        "range",
        "{podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
    );
    let error = apply(&mut state, &named_range).unwrap_err().to_string();
    assert!(
        error.contains("networkpolicy.networking.k8s.io/range: spec.ingress[0].ports[0]"),
        "{error}"
    );
    let error = apply(&mut state, &policy("nowhere", "p", "{podSelector: {}}"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("namespaces \"nowhere\" not found"),
        "{error}"
    );
}

#[test]
fn the_expected_table_is_the_specifications_verdict_on_the_lab_as_it_is() {
    use crate::{
        manifests::{MODEL_PORTS, Protocol, model_pod_ids, netpol_model_manifest},
        reachability::Reachability,
    };
    let mut state = LabState::default();
    apply(&mut state, &netpol_model_manifest()).unwrap();
    // Only x/b and y/* may reach x/a, and only on 80/TCP.
    let spec = "{podSelector: {matchLabels: {pod: a}}, ingress: [\
                {from: [{podSelector: {matchLabels: {pod: b}}}, {namespaceSelector: {matchLabels: {ns: y}}}], \
                ports: [{port: 80}]}]}";
    apply(&mut state, &policy("x", "a-from-b-and-y", spec)).unwrap();
    let pods = model_pod_ids();
    let cases: Vec<(u16, Protocol)> = MODEL_PORTS
        .iter()
        .flat_map(|p| [(*p, Protocol::Tcp), (*p, Protocol::Udp)])
        .collect();
    let like = Reachability::from_fn(&pods, &pods, &cases, |_, _, _, _| false);
    let cluster = policies::policy_cluster(&state).unwrap();
    let expected = policies::expected_reachability(&cluster, &like);
    for &(port, protocol) in &cases {
        for from in &pods {
            for to in &pods {
                let allowed = to != "x/a"
                    || from == "x/a"
                    || ((from == "x/b" || from.starts_with("y/"))
                        && (port, protocol) == (80, Protocol::Tcp));
                assert_eq!(
                    expected.get(from, to, port, protocol),
                    Some(allowed),
                    "{from} -> {to} {port}/{protocol}"
                );
            }
        }
    }
}

#[test]
fn resources_are_named_as_kubectl_names_them() {
    for (text, kind) in [
        ("networkpolicy", Some(Kind::NetworkPolicy)),
        ("NetworkPolicies", Some(Kind::NetworkPolicy)),
        ("netpol", Some(Kind::NetworkPolicy)),
        (
            "networkpolicies.networking.k8s.io",
            Some(Kind::NetworkPolicy),
        ),
        ("svc", Some(Kind::Service)),
        ("deployment.apps", Some(Kind::Deployment)),
        ("ns", Some(Kind::Namespace)),
        ("po", Some(Kind::Pod)),
        ("pod.apps", None),
        ("endpointslices.discovery.k8s.io", Some(Kind::EndpointSlice)),
        ("EndpointSlice", Some(Kind::EndpointSlice)),
        ("endpointslice.apps", None),
        ("node", None),
        ("configmap", None),
    ] {
        assert_eq!(kind_of_resource(text), kind, "{text}");
    }
}

#[test]
fn endpoint_slices_are_kept_as_applied_in_their_namespace() {
    let mut state = LabState::default();
    let slice = |address: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: manual-1\n  \
             labels: {{kubernetes.io/service-name: manual}}\naddressType: IPv4\n\
             ports: [{{name: http, port: 8090, protocol: TCP}}]\nendpoints: [{{addresses: [{address}]}}]\n"
        )
    };
    assert_eq!(
        apply(&mut state, &slice("10.244.1.5")).unwrap(),
        ["endpointslice.discovery.k8s.io/manual-1 created"]
    );
    let kept = &state.endpoint_slices["default/manual-1"];
    assert_eq!(kept.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(
        apply(&mut state, &slice("10.244.1.5")).unwrap(),
        ["endpointslice.discovery.k8s.io/manual-1 unchanged"]
    );
    assert_eq!(
        apply(&mut state, &slice("10.244.1.6")).unwrap(),
        ["endpointslice.discovery.k8s.io/manual-1 configured"]
    );
    // Checked as an API server would: no address type, or an address not of that type, is refused.
    for (text, field) in [
        (
            slice("10.244.1.7").replace("addressType: IPv4\n", ""),
            "addressType",
        ),
        (slice("'fd00::7'"), "endpoints[0].addresses[0]"),
    ] {
        let refused = manifests::parse_loaded(Path::new("in.yaml"), &text)
            .expect_err("refused")
            .to_string();
        assert!(refused.contains(field), "{refused}");
    }
    assert_eq!(
        state.endpoint_slices["default/manual-1"]
            .endpoints
            .as_ref()
            .unwrap()[0]
            .addresses,
        ["10.244.1.6"]
    );
}

#[test]
fn a_type_change_releases_what_the_new_type_has_not() {
    let mut state = LabState::default();
    let typed = |type_: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  type: {type_}\n  \
             selector: {{app: web}}\n  ports: [{{port: 80}}]\n---\n"
        )
    };
    let spec = |state: &LabState| state.services["default/web"].spec.clone().unwrap();
    apply(&mut state, &typed("NodePort")).unwrap();
    let node_port = spec(&state).ports.unwrap()[0].node_port;
    assert!(node_port.is_some(), "a NodePort Service gets a node port");
    // To ClusterIP: the node port is released, the ClusterIP kept.
    let ip = spec(&state).cluster_ip;
    apply(&mut state, &typed("ClusterIP")).unwrap();
    assert_eq!(spec(&state).ports.unwrap()[0].node_port, None);
    assert_eq!(spec(&state).cluster_ip, ip);
    // To ExternalName: no ClusterIP.
    let external = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
                    spec: {type: ExternalName, externalName: www.example.com}\n";
    assert_eq!(
        apply(&mut state, external).unwrap(),
        ["service/web configured"]
    );
    assert_eq!(spec(&state).cluster_ip, None);
    assert_eq!(spec(&state).cluster_ips, None);
    // Back to NodePort: a ClusterIP and a node port again.
    apply(&mut state, &typed("NodePort")).unwrap();
    assert!(spec(&state).cluster_ip.is_some());
    assert!(spec(&state).ports.unwrap()[0].node_port.is_some());
}
