//! `strait lab apply` and `strait lab delete`, the way the API server and kubectl do them.
//!
//! Apply reads the whole input, then [`plan`]s it: every object is checked against the lab's objects as
//! the API server would check it (its namespace exists, its ClusterIP and node ports are free, a running
//! Pod's ports are not changed, a NetworkPolicy parses: [`policies`]), in order, with the objects before
//! it in the same input counted, before anything changes. Only then are the changes made, and each
//! object reports what happened to it, as kubectl prints it: `service/web created`, `configured` or
//! `unchanged`. Delete removes what exists and reports each object: `service "web" deleted`, or
//! `services "web" not found` for one that does not.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::Path,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Pod, Service},
    discovery::v1::EndpointSlice,
    networking::v1::NetworkPolicy,
};
use strait_k8s::Kind;

use crate::{
    LabError,
    cluster::Lab,
    manifests::{self, Loaded, Object, PodPort, PodSpecLite},
    publish::admit_service,
    state::LabState,
};

mod delete;
pub mod policies;

pub use delete::{DeleteOutcome, Deleted, kind_of_resource, plural};

/// The namespaces every cluster has: they exist without being applied and cannot be deleted.
pub const BUILTIN_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// The label the API server sets on every Namespace to its name (immutable; what a NetworkPolicy's
/// `namespaceSelector` uses to pick one namespace by name).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `namespace` with [`NAMESPACE_NAME_LABEL`] set to its name, as the API server stores it.
pub fn with_name_label(mut namespace: Namespace) -> Namespace {
    let name = namespace.metadata.name.clone().unwrap_or_default();
    namespace
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(NAMESPACE_NAME_LABEL.to_owned(), name);
    namespace
}

/// Every namespace the lab knows, by name: the built-in ones (as applied, or bare) and the applied
/// ones, each with [`NAMESPACE_NAME_LABEL`].
pub fn known_namespaces(state: &LabState) -> BTreeMap<String, Namespace> {
    let mut all: BTreeMap<String, Namespace> = BUILTIN_NAMESPACES
        .iter()
        .map(|name| ((*name).to_owned(), bare_namespace(name)))
        .collect();
    for (name, namespace) in &state.namespaces {
        all.insert(name.clone(), with_name_label(namespace.clone()));
    }
    all
}

/// What applying did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Configured,
    Unchanged,
}

impl Action {
    /// `created`, `configured` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One object's apply result; displayed as kubectl prints it: `deployment.apps/web created`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub kind: Kind,
    /// The object's namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub action: Action,
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}",
            self.kind.resource(),
            self.name,
            self.action.as_str()
        )
    }
}

/// One change apply makes, decided before any is made.
#[derive(Debug)]
enum Step {
    Namespace(String, Box<Namespace>),
    Service(String, Box<Service>),
    CreatePod(PodSpecLite),
    /// New labels for the pod `namespace/name` (the only thing about a running pod that changes).
    Relabel(String, BTreeMap<String, String>),
    Deployment(String, Box<Deployment>),
    Policy(String, Box<NetworkPolicy>),
    Slice(String, Box<EndpointSlice>),
}

/// What applying an input will do: its changes in order, and each object's result.
#[derive(Debug)]
pub struct Plan {
    steps: Vec<Step>,
    pub applied: Vec<Applied>,
}

/// Checks every object of `loaded` against `state` (and the objects before it in `loaded`) as the API
/// server would, and decides what applying them does. Nothing is changed; the first refused object
/// is the error ([`LabError::Rejected`], naming its file and document).
pub fn plan(state: &LabState, loaded: &Loaded) -> Result<Plan, LabError> {
    let mut namespaces = state.namespaces.clone();
    let mut services = state.services.clone();
    let mut pods: PodsPlanned = state
        .pods
        .iter()
        .map(|p| (p.id(), (p.labels.clone(), p.ports.clone())))
        .collect();
    let mut deployments = state.deployments.clone();
    let mut policies = state.policies.clone();
    let mut slices = state.endpoint_slices.clone();
    let mut plan = Plan {
        steps: Vec::new(),
        applied: Vec::new(),
    };
    for (at, object) in &loaded.objects {
        let kind = object.kind_of();
        let name = object.name().to_owned();
        let namespace = if kind.is_namespaced() {
            object.namespace().to_owned()
        } else {
            String::new()
        };
        let reject = |reason: String| LabError::Rejected {
            at: Box::new(at.clone()),
            reason: format!("{}/{name}: {reason}", kind.resource()),
        };
        if kind.is_namespaced()
            && !BUILTIN_NAMESPACES.contains(&namespace.as_str())
            && !namespaces.contains_key(&namespace)
        {
            return Err(reject(format!("namespaces {namespace:?} not found")));
        }
        let key = format!("{namespace}/{name}");
        let action = match object {
            Object::Namespace(applied) => {
                plan_namespace(&mut namespaces, &mut plan, &name, applied)
            }
            Object::Service(service) => {
                // Admission errors name the service themselves (`service default/web: ...`).
                let admitted =
                    admit_service(&services, &key, (**service).clone()).map_err(|reason| {
                        LabError::Rejected {
                            at: Box::new(at.clone()),
                            reason,
                        }
                    })?;
                let action = compare(services.get(&key), &admitted);
                services.insert(key.clone(), admitted.clone());
                plan.steps.push(Step::Service(key, Box::new(admitted)));
                action
            }
            Object::Pod(pod) => plan_pod(&mut pods, &mut plan, key, pod).map_err(reject)?,
            Object::Deployment(deployment) => {
                let wanted = (
                    manifests::deployment_replicas(deployment),
                    manifests::pod_template_hash(&deployment.spec.template),
                );
                let action = compare(deployments.get(&key), &wanted);
                deployments.insert(key.clone(), wanted);
                plan.steps.push(Step::Deployment(key, deployment.clone()));
                action
            }
            Object::NetworkPolicy(policy) => {
                let admitted = policies::admit(policy, &namespace).map_err(reject)?;
                let action = compare(policies.get(&key), &admitted);
                policies.insert(key.clone(), admitted.clone());
                plan.steps.push(Step::Policy(key, Box::new(admitted)));
                action
            }
            Object::EndpointSlice(slice) => {
                let mut admitted = (**slice).clone();
                admitted.metadata.namespace = Some(namespace.clone());
                let action = compare(slices.get(&key), &admitted);
                slices.insert(key.clone(), admitted.clone());
                plan.steps.push(Step::Slice(key, Box::new(admitted)));
                action
            }
            // Not among the kinds the lab reads (manifests::LAB).
            Object::Node(_) => continue,
        };
        plan.applied.push(Applied {
            kind,
            namespace,
            name,
            action,
        });
    }
    Ok(plan)
}

/// The labels and ports of each pod, by `namespace/name`.
type PodsPlanned = BTreeMap<String, (BTreeMap<String, String>, Vec<PodPort>)>;

/// Plans applying the Pod `key` over `pods`, the pods as planned so far: a new pod is created, a
/// running one only relabelled; the error is why the API server would refuse it.
fn plan_pod(
    pods: &mut PodsPlanned,
    plan: &mut Plan,
    key: String,
    pod: &Pod,
) -> Result<Action, String> {
    let spec = manifests::pod_from_pod(pod);
    Ok(match pods.get(&key) {
        None => {
            pods.insert(key, (spec.labels.clone(), spec.ports.clone()));
            plan.steps.push(Step::CreatePod(spec));
            Action::Created
        }
        Some((_, ports)) if *ports != spec.ports => {
            return Err(
                "Forbidden: pod updates may not change fields other than labels and images (a \
                 running pod keeps its container ports: delete it first)"
                    .to_owned(),
            );
        }
        Some((labels, _)) if *labels == spec.labels => Action::Unchanged,
        Some(_) => {
            pods.insert(key.clone(), (spec.labels.clone(), spec.ports));
            plan.steps.push(Step::Relabel(key, spec.labels));
            Action::Configured
        }
    })
}

/// Plans applying the Namespace `name` (with its name label, as the API server stores it) over
/// `namespaces`, the namespaces as planned so far.
fn plan_namespace(
    namespaces: &mut BTreeMap<String, Namespace>,
    plan: &mut Plan,
    name: &str,
    applied: &Namespace,
) -> Action {
    let applied = with_name_label(applied.clone());
    let previous = namespaces
        .get(name)
        .cloned()
        .map(with_name_label)
        .or_else(|| {
            BUILTIN_NAMESPACES
                .contains(&name)
                .then(|| bare_namespace(name))
        });
    let action = compare(previous.as_ref(), &applied);
    namespaces.insert(name.to_owned(), applied.clone());
    plan.steps
        .push(Step::Namespace(name.to_owned(), Box::new(applied)));
    action
}

/// `created` without a previous version, `unchanged` when it equals the new one, else `configured`.
fn compare<T: PartialEq>(previous: Option<&T>, new: &T) -> Action {
    match previous {
        None => Action::Created,
        Some(previous) if previous == new => Action::Unchanged,
        Some(_) => Action::Configured,
    }
}

/// A built-in namespace as the lab holds it before anyone applies it: its name and its name label.
fn bare_namespace(name: &str) -> Namespace {
    with_name_label(Namespace {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Namespace::default()
    })
}

impl Lab {
    /// Applies every object in `path` (file or directory), as `kubectl apply -f` does: the whole input is
    /// read and checked first ([`plan`]; nothing is applied when any object is refused), then applied in
    /// order. Pods are created and waited for; returns once the agents have the services. Returns each
    /// object's result.
    pub fn apply(&mut self, path: &Path) -> Result<Vec<Applied>, LabError> {
        let loaded = manifests::load_path(path)?;
        self.apply_loaded(&loaded)
    }

    /// [`Lab::apply`] for manifest text; `file` names it in errors (`<stdin>` for standard input).
    pub fn apply_str(&mut self, file: &Path, text: &str) -> Result<Vec<Applied>, LabError> {
        let loaded = manifests::parse_loaded(file, text)?;
        self.apply_loaded(&loaded)
    }

    /// [`Lab::apply`] for objects already read.
    pub fn apply_loaded(&mut self, loaded: &Loaded) -> Result<Vec<Applied>, LabError> {
        for skipped in &loaded.skipped {
            tracing::warn!("skipped: {skipped}");
        }
        let plan = plan(&self.state, loaded)?;
        for step in plan.steps {
            match step {
                Step::Namespace(name, namespace) => {
                    self.state.namespaces.insert(name, *namespace);
                    self.save()?;
                }
                Step::Service(key, service) => {
                    self.state.services.insert(key, *service);
                    self.save()?;
                }
                Step::CreatePod(spec) => self.create_pod(&spec)?,
                Step::Relabel(id, labels) => {
                    if let Some(pod) = self.state.pods.iter_mut().find(|p| p.id() == id) {
                        pod.labels = labels;
                    }
                    self.save()?;
                }
                Step::Deployment(key, deployment) => {
                    self.reconcile_deployment(&key, &deployment)?;
                }
                Step::Policy(key, policy) => {
                    self.state.policies.insert(key, *policy);
                    self.save()?;
                }
                Step::Slice(key, slice) => {
                    self.state.endpoint_slices.insert(key, *slice);
                    self.save()?;
                }
            }
        }
        self.publish()?;
        self.announce_external_addresses()?;
        Ok(plan.applied)
    }

    /// Makes the pods of the Deployment `key` (`namespace/name`) match it: pods of an older template are
    /// replaced, surplus pods removed, missing ones created.
    fn reconcile_deployment(&mut self, key: &str, deployment: &Deployment) -> Result<(), LabError> {
        let replicas = manifests::deployment_replicas(deployment);
        let hash = manifests::pod_template_hash(&deployment.spec.template);
        for pod in self.state.pods_owned_by(key) {
            if pod.template_hash.as_deref() != Some(&hash) {
                self.delete_pod(&pod)?;
            }
        }
        let current = self.state.pods_owned_by(key);
        for surplus in current.iter().skip(replicas) {
            self.delete_pod(surplus)?;
        }
        let existing: BTreeSet<String> = self.state.pods.iter().map(|p| p.name.clone()).collect();
        let missing = replicas.saturating_sub(current.len());
        for spec in manifests::pods_for_deployment(deployment, &existing, missing) {
            self.create_pod(&spec)?;
        }
        self.state
            .deployments
            .insert(key.to_owned(), (replicas, hash));
        self.save()
    }
}

#[cfg(test)]
mod tests;
