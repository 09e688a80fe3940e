//! The agent's identity and rights: its ServiceAccount, a ClusterRole holding exactly the access in
//! [`AGENT_API_ACCESS`] (the resources and verbs `straitd --kube` uses, nothing more), and the
//! binding between them.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use strait_k8s::access::{AGENT_API_ACCESS, ApiAccess};

use super::{InstallValues, NAME, meta, namespaced};

/// The namespace, labelled for the Pod Security admission level the agent needs (host network,
/// host paths, added capabilities are all `privileged` in the Pod Security Standards).
pub fn namespace(values: &InstallValues) -> Namespace {
    let mut metadata = meta(&values.namespace);
    metadata.labels.get_or_insert_default().insert(
        "pod-security.kubernetes.io/enforce".into(),
        "privileged".into(),
    );
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

pub fn service_account(values: &InstallValues) -> ServiceAccount {
    ServiceAccount {
        metadata: namespaced(NAME, &values.namespace),
        ..ServiceAccount::default()
    }
}

/// One rule per resource of `access`.
pub fn rules(access: &[ApiAccess]) -> Vec<PolicyRule> {
    access
        .iter()
        .map(|a| PolicyRule {
            api_groups: Some(vec![a.group.to_owned()]),
            resources: Some(vec![a.resource.to_owned()]),
            verbs: a.verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..PolicyRule::default()
        })
        .collect()
}

pub fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(NAME),
        rules: Some(rules(AGENT_API_ACCESS)),
        ..ClusterRole::default()
    }
}

pub fn cluster_role_binding(values: &InstallValues) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(NAME),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(values.namespace.clone()),
            ..Subject::default()
        }]),
    }
}
