//! [`Object`]: one Kubernetes object of a kind strait knows, as its k8s-openapi type; [`Kind`] and
//! [`ObjectKey`], which name kinds and objects the same way everywhere (manifests, the store, logs).

use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Namespace of namespaced objects whose `metadata.namespace` is unset or empty.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The kinds strait reads. Ordered so that objects other objects live in come first (Namespaces, then
/// Nodes, ...), which is the order a manifest's objects are best applied in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Node,
    Service,
    EndpointSlice,
    Pod,
    Deployment,
    NetworkPolicy,
}

impl Kind {
    /// Every kind, in [`Ord`] order.
    pub const ALL: [Kind; 7] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::Deployment,
        Kind::NetworkPolicy,
    ];

    /// `apiVersion` and `kind` as manifests spell them.
    pub fn api_version_and_kind(self) -> (&'static str, &'static str) {
        use k8s_openapi::Resource as R;
        match self {
            Kind::Namespace => (Namespace::API_VERSION, Namespace::KIND),
            Kind::Node => (Node::API_VERSION, Node::KIND),
            Kind::Service => (Service::API_VERSION, Service::KIND),
            Kind::EndpointSlice => (EndpointSlice::API_VERSION, EndpointSlice::KIND),
            Kind::Pod => (Pod::API_VERSION, Pod::KIND),
            Kind::Deployment => (Deployment::API_VERSION, Deployment::KIND),
            Kind::NetworkPolicy => (NetworkPolicy::API_VERSION, NetworkPolicy::KIND),
        }
    }

    /// The kind with this `apiVersion` and `kind`, if strait knows it.
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.api_version_and_kind() == (api_version, kind))
    }

    /// The kind's name (`"Service"`).
    pub fn name(self) -> &'static str {
        self.api_version_and_kind().1
    }

    /// The lower-case resource name kubectl prints in `service/web created`.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::EndpointSlice => "endpointslice.discovery.k8s.io",
            Kind::Pod => "pod",
            Kind::Deployment => "deployment.apps",
            Kind::NetworkPolicy => "networkpolicy.networking.k8s.io",
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One object's identity: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of a namespaced object (an empty namespace means [`DEFAULT_NAMESPACE`]).
    pub fn namespaced(kind: Kind, namespace: &str, name: &str) -> Self {
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        Self {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The key of a cluster-scoped object.
    pub fn cluster(kind: Kind, name: &str) -> Self {
        Self {
            kind,
            namespace: String::new(),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `service/shop/web`, `node/node-1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.name().to_ascii_lowercase();
        if self.namespace.is_empty() {
            write!(f, "{kind}/{}", self.name)
        } else {
            write!(f, "{kind}/{}/{}", self.namespace, self.name)
        }
    }
}

/// One object of a kind strait knows. The objects are boxed: k8s-openapi's types run to kilobytes
/// (a Pod's spec alone is over 2 KiB), and an unboxed enum would give every object the size of the
/// largest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Box<Namespace>),
    Node(Box<Node>),
    Service(Box<Service>),
    EndpointSlice(Box<EndpointSlice>),
    Pod(Box<Pod>),
    Deployment(Box<Deployment>),
    NetworkPolicy(Box<NetworkPolicy>),
}

impl Object {
    /// The object's kind.
    pub fn kind_of(&self) -> Kind {
        match self {
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Pod(_) => Kind::Pod,
            Object::Deployment(_) => Kind::Deployment,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    /// The Kubernetes kind's name: `"Pod"`, `"Service"`, ...
    pub fn kind(&self) -> &'static str {
        self.kind_of().name()
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
        }
    }

    /// The object's metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Namespace(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Deployment(o) => &mut o.metadata,
            Object::NetworkPolicy(o) => &mut o.metadata,
        }
    }

    /// `metadata.name` (never empty for objects returned by the parsers).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Whether the kind lives inside a namespace.
    pub fn is_namespaced(&self) -> bool {
        self.kind_of().is_namespaced()
    }

    /// The namespace the object belongs to: `metadata.namespace`, or [`DEFAULT_NAMESPACE`] when unset.
    /// A `Namespace` is cluster-scoped; for it this returns the name of the namespace it defines, and
    /// for a Node the empty string.
    pub fn namespace(&self) -> &str {
        match self {
            Object::Namespace(ns) => ns.metadata.name.as_deref().unwrap_or_default(),
            Object::Node(_) => "",
            _ => namespace_of(self.metadata()),
        }
    }

    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        if self.is_namespaced() {
            ObjectKey::namespaced(self.kind_of(), self.namespace(), self.name())
        } else {
            ObjectKey::cluster(self.kind_of(), self.name())
        }
    }

    /// Drops what no strait feature reads and what only makes objects bigger: `managedFields` and
    /// the `kubectl.kubernetes.io/last-applied-configuration` annotation (a second copy of the object).
    pub fn slim(&mut self) {
        let meta = self.metadata_mut();
        meta.managed_fields = None;
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(LAST_APPLIED);
            if annotations.is_empty() {
                meta.annotations = None;
            }
        }
    }
}

/// The annotation `kubectl apply` keeps its last input in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `metadata.namespace`, or [`DEFAULT_NAMESPACE`] when unset or empty.
pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// The Node's first IPv4 address of the first type in `types` that has one (`status.addresses`, e.g.
/// `["InternalIP", "ExternalIP"]`).
pub fn node_ipv4(node: &Node, types: &[&str]) -> Option<std::net::Ipv4Addr> {
    let addresses = node.status.as_ref()?.addresses.as_deref()?;
    types.iter().find_map(|wanted| {
        addresses
            .iter()
            .filter(|a| a.type_ == *wanted)
            .find_map(|a| a.address.parse().ok())
    })
}

macro_rules! into_object {
    ($($variant:ident: $ty:ty),* $(,)?) => {
        $(
            impl From<$ty> for Object {
                fn from(object: $ty) -> Self {
                    Object::$variant(Box::new(object))
                }
            }
        )*
    };
}

into_object!(
    Namespace: Namespace,
    Node: Node,
    Service: Service,
    EndpointSlice: EndpointSlice,
    Pod: Pod,
    Deployment: Deployment,
    NetworkPolicy: NetworkPolicy,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_keys_print_like_kubectl() {
        for kind in Kind::ALL {
            let (api_version, name) = kind.api_version_and_kind();
            assert_eq!(Kind::of(api_version, name), Some(kind));
        }
        assert_eq!(Kind::of("v1", "Servise"), None);
        assert_eq!(Kind::of("apps/v1", "Service"), None);
        assert_eq!(
            ObjectKey::namespaced(Kind::Service, "", "web").to_string(),
            "service/default/web"
        );
        assert_eq!(ObjectKey::cluster(Kind::Node, "n1").to_string(), "node/n1");
    }

    #[test]
    fn slim_drops_managed_fields_and_last_applied_only() {
        let mut object = Object::from(Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_owned(), "{...}".to_owned()),
                        ("keep".to_owned(), "me".to_owned()),
                    ]
                    .into(),
                ),
                managed_fields: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry::default(),
                ]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        });
        object.slim();
        let meta = object.metadata();
        assert!(meta.managed_fields.is_none());
        assert_eq!(
            meta.annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["keep"]
        );
        assert_eq!(
            object.key(),
            ObjectKey::namespaced(Kind::Service, "default", "web")
        );
    }
}
