//! The kinds a stock Kubernetes API server serves, by group version, so that a misspelt kind in a
//! built-in group (`v1 Servise`) is refused the way `kubectl apply` refuses it ("no matches for kind"),
//! while a kind from another group (a custom resource) is merely not read.

/// `(group version, kinds)` of the built-in API groups.
const BUILTIN: &[(&str, &[&str])] = &[
    (
        "v1",
        &[
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "ResourceQuota",
            "Secret",
            "Service",
            "ServiceAccount",
            "List",
        ],
    ),
    (
        "apps/v1",
        &[
            "ControllerRevision",
            "DaemonSet",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
        ],
    ),
    ("batch/v1", &["CronJob", "Job"]),
    ("autoscaling/v1", &["HorizontalPodAutoscaler"]),
    ("autoscaling/v2", &["HorizontalPodAutoscaler"]),
    ("discovery.k8s.io/v1", &["EndpointSlice"]),
    (
        "networking.k8s.io/v1",
        &[
            "Ingress",
            "IngressClass",
            "NetworkPolicy",
            "IPAddress",
            "ServiceCIDR",
        ],
    ),
    ("policy/v1", &["PodDisruptionBudget", "Eviction"]),
    (
        "rbac.authorization.k8s.io/v1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    ),
    (
        "storage.k8s.io/v1",
        &[
            "CSIDriver",
            "CSINode",
            "CSIStorageCapacity",
            "StorageClass",
            "VolumeAttachment",
        ],
    ),
    ("scheduling.k8s.io/v1", &["PriorityClass"]),
    ("coordination.k8s.io/v1", &["Lease"]),
    ("node.k8s.io/v1", &["RuntimeClass"]),
    ("events.k8s.io/v1", &["Event"]),
    ("apiextensions.k8s.io/v1", &["CustomResourceDefinition"]),
    (
        "admissionregistration.k8s.io/v1",
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ],
    ),
    ("certificates.k8s.io/v1", &["CertificateSigningRequest"]),
    (
        "flowcontrol.apiserver.k8s.io/v1",
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
];

/// True when `api_version` is a built-in group version (or has no group and is not `v1`) and `kind`
/// is not among its kinds (typed lists, `<Kind>List`, count as known).
pub(crate) fn is_unknown_builtin(api_version: &str, kind: &str) -> bool {
    let known = |kinds: &[&str]| {
        let item = kind.strip_suffix("List").unwrap_or(kind);
        kinds.contains(&kind) || kinds.contains(&item)
    };
    match BUILTIN.iter().find(|(gv, _)| *gv == api_version) {
        Some((_, kinds)) => !known(kinds),
        // A group version with no group (`v2`, `apps`) cannot be a custom resource.
        None => !api_version.contains('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::is_unknown_builtin;

    #[test]
    fn misspelt_builtin_kinds_are_unknown_custom_groups_are_not() {
        assert!(is_unknown_builtin("v1", "Servise"));
        assert!(is_unknown_builtin("apps/v1", "Service"));
        assert!(is_unknown_builtin("v2", "Service"));
        assert!(!is_unknown_builtin("v1", "ConfigMap"));
        assert!(!is_unknown_builtin("v1", "ServiceList"));
        assert!(!is_unknown_builtin("batch/v1", "Job"));
        assert!(!is_unknown_builtin("example.com/v1", "Widget"));
    }
}
