//! The Kubernetes API access the agent needs, one entry per resource: what its ClusterRole grants
//! (`strait install` renders the rules from this table) and what the tests hold the agent's real
//! requests against, so the two cannot drift apart.

/// One resource the agent reads or writes, and the verbs it uses on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAccess {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource (plural, lower case).
    pub resource: &'static str,
    /// The verbs, as RBAC names them.
    pub verbs: &'static [&'static str],
    /// Why the agent needs it (rendered as a comment next to the rule).
    pub why: &'static str,
}

/// Every API access of `straitd --kube`.
pub const AGENT_API_ACCESS: &[ApiAccess] = &[
    ApiAccess {
        group: "",
        resource: "nodes",
        verbs: &["get", "list", "watch", "patch"],
        why: "other nodes' addresses and pod CIDRs (overlay routes, NodePort), this node's pod CIDR \
              (get), and this node's Flannel annotations (patch)",
    },
    ApiAccess {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        why: "the Services the data path serves and cluster DNS answers",
    },
    ApiAccess {
        group: "",
        resource: "pods",
        verbs: &["list", "watch"],
        why: "pod labels for NetworkPolicy (every pod; this node's pods without policy)",
    },
    ApiAccess {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        why: "namespace labels for NetworkPolicy namespaceSelectors, and audit-mode annotations",
    },
    ApiAccess {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: &["list", "watch"],
        why: "the backends of every Service, and headless Services' DNS records",
    },
    ApiAccess {
        group: "networking.k8s.io",
        resource: "networkpolicies",
        verbs: &["list", "watch"],
        why: "the policies enforced on this node's pods",
    },
];

/// `(group, resource, verb)` for every verb of `access`, sorted.
pub fn grants(access: &[ApiAccess]) -> Vec<(String, String, String)> {
    let mut all: Vec<(String, String, String)> = access
        .iter()
        .flat_map(|a| {
            a.verbs
                .iter()
                .map(|v| (a.group.to_owned(), a.resource.to_owned(), (*v).to_owned()))
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_resource_is_listed_twice_and_no_verb_writes_more_than_a_patch() {
        let mut seen: Vec<(&str, &str)> = AGENT_API_ACCESS
            .iter()
            .map(|a| (a.group, a.resource))
            .collect();
        seen.sort_unstable();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "a resource appears twice");
        for (_, _, verb) in grants(AGENT_API_ACCESS) {
            assert!(
                ["get", "list", "watch", "patch"].contains(&verb.as_str()),
                "unexpected verb {verb}"
            );
        }
    }
}
