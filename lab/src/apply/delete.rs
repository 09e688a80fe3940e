//! `strait lab delete`, as kubectl deletes: by manifest (`-f`) or by kind and name. What exists is
//! deleted (a Namespace with everything in it), the rest reported `NotFound` (a built-in namespace
//! `Forbidden`); the agents have seen the change when it returns.

use std::{fmt, path::Path};

use strait_k8s::Kind;

use super::BUILTIN_NAMESPACES;
use crate::{
    LabError,
    cluster::Lab,
    manifests::{self, Loaded},
};

/// What deleting one object came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// The object does not exist.
    NotFound,
    /// The object may not be deleted, for the reason given.
    Forbidden(&'static str),
}

/// One object's delete result; displayed as kubectl prints it: `service "web" deleted`, or
/// `Error from server (NotFound): services "web" not found`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    pub kind: Kind,
    /// The object's namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub outcome: DeleteOutcome,
}

impl Deleted {
    /// Whether the object was not deleted (an error for kubectl, which then exits with 1).
    pub fn is_error(&self) -> bool {
        self.outcome != DeleteOutcome::Deleted
    }
}

impl fmt::Display for Deleted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (resource, plural, name) = (self.kind.resource(), plural(self.kind), &self.name);
        match self.outcome {
            DeleteOutcome::Deleted => write!(f, "{resource} {name:?} deleted"),
            DeleteOutcome::NotFound => {
                write!(
                    f,
                    "Error from server (NotFound): {plural} {name:?} not found"
                )
            }
            DeleteOutcome::Forbidden(why) => write!(
                f,
                "Error from server (Forbidden): {plural} {name:?} is forbidden: {why}"
            ),
        }
    }
}

/// The plural resource name the API server uses in its messages (`services "web" not found`).
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Namespace => "namespaces",
        Kind::Node => "nodes",
        Kind::Service => "services",
        Kind::EndpointSlice => "endpointslices.discovery.k8s.io",
        Kind::Pod => "pods",
        Kind::Deployment => "deployments.apps",
        Kind::NetworkPolicy => "networkpolicies.networking.k8s.io",
    }
}

impl Lab {
    /// Deletes every object named in `path`, as `kubectl delete -f` does: what exists is deleted (a
    /// Namespace with everything in it), the rest is reported [`DeleteOutcome::NotFound`] (or
    /// [`DeleteOutcome::Forbidden`] for a built-in namespace). The input is read whole first.
    pub fn delete(&mut self, path: &Path) -> Result<Vec<Deleted>, LabError> {
        let loaded = manifests::load_path(path)?;
        self.delete_loaded(&loaded)
    }

    /// [`Lab::delete`] for manifest text; `file` names it in errors (`<stdin>` for standard input).
    pub fn delete_str(&mut self, file: &Path, text: &str) -> Result<Vec<Deleted>, LabError> {
        let loaded = manifests::parse_loaded(file, text)?;
        self.delete_loaded(&loaded)
    }

    /// [`Lab::delete`] for objects already read.
    pub fn delete_loaded(&mut self, loaded: &Loaded) -> Result<Vec<Deleted>, LabError> {
        let mut results = Vec::new();
        for (_, object) in &loaded.objects {
            let kind = object.kind_of();
            let namespace = if kind.is_namespaced() {
                object.namespace()
            } else {
                ""
            };
            if let Some(deleted) = self.delete_one(kind, namespace, object.name())? {
                results.push(deleted);
            }
        }
        self.publish()?;
        Ok(results)
    }

    /// Deletes one object by kind, namespace (empty: `default`; ignored for a Namespace) and name, as
    /// `kubectl delete KIND NAME -n NAMESPACE` does, and waits until the agents have seen it go. Nodes are removed with
    /// `strait lab node remove`; the EndpointSlices the lab computes follow their Service.
    pub fn delete_object(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Deleted, LabError> {
        let namespace = match (kind.is_namespaced(), namespace) {
            (false, _) => "",
            (true, "") => manifests::DEFAULT_NAMESPACE,
            (true, namespace) => namespace,
        };
        let deleted = self.delete_one(kind, namespace, name)?.ok_or_else(|| {
            LabError::Usage(format!(
                "the lab does not delete {} objects (nodes: strait lab node remove)",
                kind.name()
            ))
        })?;
        self.publish()?;
        Ok(deleted)
    }

    /// Deletes one object and saves the state (publishing is the caller's); `None` for the kind the
    /// lab does not hold (Node).
    fn delete_one(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Deleted>, LabError> {
        let key = format!("{namespace}/{name}");
        let outcome = match kind {
            Kind::Namespace => self.delete_namespace(name)?,
            Kind::Service => found(self.state.services.remove(&key).is_some()),
            Kind::Pod => match self.state.pod(&key).cloned() {
                Some(pod) => {
                    self.delete_pod(&pod)?;
                    DeleteOutcome::Deleted
                }
                None => DeleteOutcome::NotFound,
            },
            Kind::Deployment => {
                let pods = self.state.pods_owned_by(&key);
                let existed = self.state.deployments.remove(&key).is_some() || !pods.is_empty();
                for pod in pods {
                    self.delete_pod(&pod)?;
                }
                found(existed)
            }
            Kind::NetworkPolicy => found(self.state.policies.remove(&key).is_some()),
            Kind::EndpointSlice => found(self.state.endpoint_slices.remove(&key).is_some()),
            Kind::Node => return Ok(None),
        };
        self.save()?;
        Ok(Some(Deleted {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            outcome,
        }))
    }

    /// Deletes the namespace `name` and every pod, Deployment, Service and NetworkPolicy in it.
    fn delete_namespace(&mut self, name: &str) -> Result<DeleteOutcome, LabError> {
        if BUILTIN_NAMESPACES.contains(&name) {
            return Ok(DeleteOutcome::Forbidden(
                "this namespace may not be deleted",
            ));
        }
        if self.state.namespaces.remove(name).is_none() {
            return Ok(DeleteOutcome::NotFound);
        }
        let inside = |key: &str| key.split_once('/').is_some_and(|(ns, _)| ns == name);
        let pods: Vec<_> = self
            .state
            .pods
            .iter()
            .filter(|p| p.namespace == name)
            .cloned()
            .collect();
        for pod in pods {
            self.delete_pod(&pod)?;
        }
        self.state.deployments.retain(|key, _| !inside(key));
        self.state.services.retain(|key, _| !inside(key));
        self.state.policies.retain(|key, _| !inside(key));
        self.state.endpoint_slices.retain(|key, _| !inside(key));
        Ok(DeleteOutcome::Deleted)
    }
}

fn found(existed: bool) -> DeleteOutcome {
    if existed {
        DeleteOutcome::Deleted
    } else {
        DeleteOutcome::NotFound
    }
}

/// The kind kubectl means by a resource name on its command line (`networkpolicy`, `netpol`,
/// `networkpolicies.networking.k8s.io`, `svc`, ...), among those the lab deletes; any case.
pub fn kind_of_resource(resource: &str) -> Option<Kind> {
    let resource = resource.to_ascii_lowercase();
    let (name, group) = resource.split_once('.').unwrap_or((&resource, ""));
    let (kind, groups): (Kind, &[&str]) = match name {
        "namespace" | "namespaces" | "ns" => (Kind::Namespace, &[""]),
        "service" | "services" | "svc" => (Kind::Service, &[""]),
        "pod" | "pods" | "po" => (Kind::Pod, &[""]),
        "deployment" | "deployments" | "deploy" => (Kind::Deployment, &["", "apps"]),
        "networkpolicy" | "networkpolicies" | "netpol" => {
            (Kind::NetworkPolicy, &["", "networking.k8s.io"])
        }
        "endpointslice" | "endpointslices" => (Kind::EndpointSlice, &["", "discovery.k8s.io"]),
        _ => return None,
    };
    groups.contains(&group).then_some(kind)
}
