//! Validation of the fields strait relies on, following the rules of the Kubernetes API server (object
//! names, ports, protocols, selectors), for manifests that no API server has seen (the lab's).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::object::Object;
use crate::selector::{Requirement, Selector};

mod endpoint_slice;

/// What is wrong with an object, by field path (e.g.
/// `spec.template.spec.containers[0].ports[1].containerPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The value is invalid for Kubernetes itself.
    Invalid { field: String, problem: String },
    /// Kubernetes accepts the value but strait does not implement it (SCTP).
    Unsupported {
        field: String,
        what: String,
        supported: &'static str,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Invalid { field, problem } => write!(f, "{field} {problem}"),
            Violation::Unsupported {
                field,
                what,
                supported,
            } => write!(
                f,
                "{field}: {what} is not supported (supported: {supported})"
            ),
        }
    }
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Violation {
    Violation::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

type Checked = Result<(), Violation>;

/// Checks `object` as the API server would for the fields strait uses.
pub fn validate(object: &Object) -> Checked {
    match object {
        Object::Pod(pod) => {
            metadata(&pod.metadata, NameRule::Subdomain, true)?;
            let spec = pod
                .spec
                .as_ref()
                .ok_or_else(|| invalid("spec", "is required"))?;
            pod_spec(spec, "spec")
        }
        Object::Deployment(deployment) => validate_deployment(deployment),
        Object::Service(service) => validate_service(service),
        Object::Namespace(namespace) => metadata(&namespace.metadata, NameRule::Label, false),
        Object::Node(node) => metadata(&node.metadata, NameRule::Subdomain, false),
        Object::EndpointSlice(slice) => endpoint_slice::validate_endpoint_slice(slice),
        Object::NetworkPolicy(policy) => metadata(&policy.metadata, NameRule::Subdomain, true),
    }
}

#[derive(Clone, Copy)]
enum NameRule {
    Label,
    Subdomain,
    Rfc1035Label,
}

fn metadata(meta: &ObjectMeta, rule: NameRule, namespaced: bool) -> Checked {
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("metadata.name", "is required"))?;
    let checked = match rule {
        NameRule::Label => dns1123_label(name),
        NameRule::Subdomain => dns1123_subdomain(name),
        NameRule::Rfc1035Label => dns1035_label(name),
    };
    checked.map_err(|why| invalid("metadata.name", why))?;
    if namespaced && let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        dns1123_label(ns).map_err(|why| invalid("metadata.namespace", why))?;
    }
    Ok(())
}

fn validate_deployment(deployment: &Deployment) -> Checked {
    metadata(&deployment.metadata, NameRule::Subdomain, true)?;
    // k8s-openapi defaults a missing Deployment `spec`; the empty selector
    // check below reports it.
    let spec = &deployment.spec;
    if let Some(replicas) = spec.replicas
        && replicas < 0
    {
        return Err(invalid(
            "spec.replicas",
            format!("must be greater than or equal to 0, got {replicas}"),
        ));
    }
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    selector_matches(&spec.selector, &template_labels)?;
    let pod = spec
        .template
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec.template.spec", "is required"))?;
    pod_spec(pod, "spec.template.spec")
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Checked {
    let parsed = Selector::new(selector).map_err(|e| invalid("spec.selector", e.to_string()))?;
    if parsed.is_empty() {
        return Err(invalid("spec.selector", "must not be empty"));
    }
    match parsed.first_unmet(labels) {
        None => Ok(()),
        Some(Requirement::In(key, values)) if values.len() == 1 => Err(invalid(
            "spec.selector.matchLabels",
            format!(
                "{key}={} does not match spec.template.metadata.labels",
                values[0]
            ),
        )),
        Some(unmet) => Err(invalid(
            "spec.selector",
            format!("{unmet:?} does not match spec.template.metadata.labels"),
        )),
    }
}

fn pod_spec(spec: &PodSpec, prefix: &str) -> Checked {
    if spec.containers.is_empty() {
        return Err(invalid(format!("{prefix}.containers"), "is empty"));
    }
    let mut container_names = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let field = format!("{prefix}.containers[{i}]");
        dns1123_label(&container.name).map_err(|why| invalid(format!("{field}.name"), why))?;
        if !container_names.insert(container.name.as_str()) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{:?} is a duplicate container name", container.name),
            ));
        }
        let mut port_names = BTreeSet::new();
        for (j, port) in container.ports.iter().flatten().enumerate() {
            container_port(port, &format!("{field}.ports[{j}]"), &mut port_names)?;
        }
    }
    Ok(())
}

fn container_port<'a>(
    port: &'a ContainerPort,
    field: &str,
    names: &mut BTreeSet<&'a str>,
) -> Checked {
    port_number(port.container_port, &format!("{field}.containerPort"))?;
    protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?;
    if let Some(name) = port.name.as_deref() {
        iana_svc_name(name).map_err(|why| invalid(format!("{field}.name"), why))?;
        if !names.insert(name) {
            return Err(invalid(
                format!("{field}.name"),
                format!("{name:?} is a duplicate port name"),
            ));
        }
    }
    Ok(())
}

fn port_number(port: i32, field: &str) -> Checked {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be between 1 and 65535, got {port}"),
        ))
    }
}

fn protocol(protocol: Option<&str>, field: &str) -> Checked {
    match protocol {
        None | Some("TCP" | "UDP") => Ok(()),
        Some("SCTP") => Err(Violation::Unsupported {
            field: field.to_owned(),
            what: "SCTP".to_owned(),
            supported: "TCP, UDP",
        }),
        Some(other) => Err(invalid(field, format!("must be TCP or UDP, got {other:?}"))),
    }
}

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

fn validate_service(service: &Service) -> Checked {
    metadata(&service.metadata, NameRule::Rfc1035Label, true)?;
    let spec = service
        .spec
        .as_ref()
        .ok_or_else(|| invalid("spec", "is required"))?;
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !SERVICE_TYPES.contains(&service_type) {
        return Err(invalid(
            "spec.type",
            format!("must be one of {SERVICE_TYPES:?}, got {service_type:?}"),
        ));
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if ports.is_empty() && service_type != "ExternalName" && !headless {
        return Err(invalid("spec.ports", "is empty"));
    }
    let mut names = BTreeSet::new();
    let mut seen_ports = BTreeSet::new();
    let mut seen_node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        service_port(port, &field, ports.len() > 1, &mut names)?;
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        if !seen_ports.insert((port.port, protocol)) {
            return Err(invalid(
                field,
                format!("duplicate value: port {}/{protocol}", port.port),
            ));
        }
        if let Some(node_port) = port.node_port.filter(|p| *p != 0)
            && !seen_node_ports.insert((node_port, protocol))
        {
            return Err(invalid(
                format!("{field}.nodePort"),
                format!("duplicate value: nodePort {node_port}/{protocol}"),
            ));
        }
    }
    Ok(())
}

fn service_port<'a>(
    port: &'a ServicePort,
    field: &str,
    name_required: bool,
    names: &mut BTreeSet<&'a str>,
) -> Checked {
    match port.name.as_deref().filter(|n| !n.is_empty()) {
        None if name_required => {
            return Err(invalid(
                format!("{field}.name"),
                "is required when a Service has more than one port",
            ));
        }
        None => {}
        Some(name) => {
            dns1123_label(name).map_err(|why| invalid(format!("{field}.name"), why))?;
            if !names.insert(name) {
                return Err(invalid(
                    format!("{field}.name"),
                    format!("{name:?} is a duplicate port name"),
                ));
            }
        }
    }
    port_number(port.port, &format!("{field}.port"))?;
    protocol(port.protocol.as_deref(), &format!("{field}.protocol"))?;
    match &port.target_port {
        None => Ok(()),
        Some(IntOrString::Int(target)) => port_number(*target, &format!("{field}.targetPort")),
        Some(IntOrString::String(target)) => {
            iana_svc_name(target).map_err(|why| invalid(format!("{field}.targetPort"), why))
        }
    }
}

const LABEL_RULE: &str = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn label_shape_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_label_char) && !s.starts_with('-') && !s.ends_with('-')
}

/// RFC 1123 label: namespace, container and Service-port names.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() <= 63 && label_shape_ok(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 label ({LABEL_RULE})"
        ))
    }
}

/// RFC 1123 subdomain: Pod and Deployment names.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(label_shape_ok) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain (dot-separated parts of lowercase letters, \
             digits and '-', each starting and ending with a letter or digit, at most 253 characters)"
        ))
    }
}

/// RFC 1035 label: Service names (must also start with a letter).
pub fn dns1035_label(s: &str) -> Result<(), String> {
    if s.len() <= 63 && label_shape_ok(s) && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1035 label (lowercase letters, digits and '-', starting \
             with a letter, ending with a letter or digit, at most 63 characters)"
        ))
    }
}

/// IANA service name: container port names and named target ports.
pub fn iana_svc_name(s: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&s.len())
        && label_shape_ok(s)
        && !s.contains("--")
        && s.chars().any(|c| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid port name (at most 15 lowercase letters, digits and '-', \
             at least one letter, no leading, trailing or doubled '-')"
        ))
    }
}
