//! The NetworkPolicies of a sweep: `count` policies, about half of them selecting the server pod, the
//! rest other labels in other namespaces, every one with an ingress rule of its own (a distinct
//! port, and a peer of one of several shapes). Exactly one, [`ALLOW_CLIENT`], lets the client reach
//! the server's port; [`flipped_allow`] is the same policy moved to another port, which leaves the
//! client denied (NetworkPolicy only allows, so "a policy that denies" is one that stops allowing).
//!
//! The peer shapes (policy `i`, port `10000 + i`; none of them allows the server's own port):
//! - the client by its label (it matches: the kernel's policy map gets an entry per such policy),
//! - a namespace by a label of one of [`NAMESPACES`] (namespaces without pods),
//! - a pod label no pod has, ANDed with the server's namespace by name,
//! - an `ipBlock` of one address outside the cluster,
//! - every pod of the namespace (`podSelector: {}`), over UDP.
//!
//! The policies that do not select the server select `app: other-<i>` in one of [`NAMESPACES`],
//! every fourth with an egress rule too.

use std::fmt::Write as _;

use crate::netbench::{catalog::SERVER_PORT, crossnode::labs};

/// The policy that lets the client reach the server (in the server's namespace, `default`).
pub const ALLOW_CLIENT: &str = "allow-bench-client";
/// Namespaces created for the policies that do not select the server (labelled `bench-team: t<k>`).
pub const NAMESPACES: usize = 10;
/// The first port of the other policies' rules; policy `i` names port `FIRST_PORT + i`.
pub const FIRST_PORT: u32 = 10_000;
/// The most policies a sweep may apply (the ports stay below 65536).
pub const MAX_POLICIES: usize = 50_000;

/// The name of the `k`th extra namespace.
pub fn namespace(k: usize) -> String {
    format!("policy-bench-{k}")
}

/// The label value of the server and client pods (`app: <name>`), as the cross-node manifest sets it.
fn app(pod: &str) -> &str {
    pod.trim_start_matches("default/")
}

/// The allowing policy, on `port`: the server pod, from the client pod.
fn allow_client(port: u16) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {ALLOW_CLIENT}, namespace: default}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: {server}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: {client}}}}}}}]\n    \
         ports: [{{protocol: TCP, port: {port}}}]\n",
        server = app(labs::SERVER_POD),
        client = app(labs::CLIENT_POD),
    )
}

/// [`ALLOW_CLIENT`] as a sweep applies it: the client may reach the server's port.
pub fn allowing() -> String {
    allow_client(SERVER_PORT)
}

/// [`ALLOW_CLIENT`] moved to the next port: applied over [`allowing`], the client's connections to
/// the server's port are denied (every other policy selecting the server allows other ports only).
pub fn flipped_allow() -> String {
    allow_client(SERVER_PORT + 1)
}

/// Whether policy `i` (`i >= 1`) selects the server pod.
pub fn selects_server(i: usize) -> bool {
    i % 2 == 1
}

/// Policy `i` (`i >= 1`).
fn policy(i: usize) -> String {
    let port = FIRST_PORT as usize + i;
    let team = i % NAMESPACES;
    let server = app(labs::SERVER_POD);
    let client = app(labs::CLIENT_POD);
    let header = |name: &str, namespace: &str| {
        format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n"
        )
    };
    if !selects_server(i) {
        let mut text = header(&format!("other-{i}"), &namespace(team));
        let _ = write!(
            text,
            "  podSelector: {{matchLabels: {{app: other-{i}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: client-{i}}}}}}}]\n    \
             ports: [{{protocol: TCP, port: {port}}}]\n"
        );
        if i.is_multiple_of(4) {
            let _ = write!(
                text,
                "  egress:\n  - to: [{{namespaceSelector: {{matchLabels: {{bench-team: t{team}}}}}}}]\n    ports: [{{protocol: TCP, port: {port}}}]\n"
            );
        }
        return text;
    }
    let peer = match (i / 2) % 5 {
        0 => format!("{{podSelector: {{matchLabels: {{app: {client}}}}}}}"),
        1 => format!("{{namespaceSelector: {{matchLabels: {{bench-team: t{team}}}}}}}"),
        2 => format!(
            "{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: default}}}}, podSelector: {{matchLabels: {{peer: p{i}}}}}}}"
        ),
        3 => format!("{{ipBlock: {{cidr: 172.16.{}.{}/32}}}}", i / 256, i % 256),
        _ => "{podSelector: {}}".to_owned(),
    };
    let protocol = if (i / 2) % 5 == 4 { "UDP" } else { "TCP" };
    let mut text = header(&format!("server-{i}"), "default");
    let _ = write!(
        text,
        "  podSelector: {{matchLabels: {{app: {server}}}}}\n  ingress:\n  - from: [{peer}]\n    ports: [{{protocol: {protocol}, port: {port}}}]\n"
    );
    text
}

/// The namespaces and `count` policies (none for 0; [`ALLOW_CLIENT`] first otherwise).
pub fn policies(count: usize) -> String {
    if count == 0 {
        return String::new();
    }
    let mut text = String::new();
    for k in 0..NAMESPACES {
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}, labels: {{bench-team: t{k}}}}}\n---\n",
            namespace(k)
        );
    }
    text.push_str(&allowing());
    for i in 1..count {
        text.push_str(&policy(i));
    }
    text
}

/// How many of `count` policies select the server pod ([`ALLOW_CLIENT`] included).
pub fn selecting_server(count: usize) -> usize {
    if count == 0 {
        return 0;
    }
    1 + (1..count).filter(|&i| selects_server(i)).count()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn kinds(text: &str) -> Vec<(String, String)> {
        strait_lab::manifests::parse_str(Path::new("p.yaml"), text)
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o.kind().to_string(),
                    format!("{}/{}", o.namespace(), o.name()),
                )
            })
            .collect()
    }

    #[test]
    fn every_policy_parses_and_names_are_distinct() {
        let objects = kinds(&policies(100));
        assert_eq!(objects.len(), NAMESPACES + 100);
        let policies: Vec<_> = objects
            .iter()
            .filter(|(kind, _)| kind == "NetworkPolicy")
            .map(|(_, key)| key.clone())
            .collect();
        assert_eq!(policies.len(), 100);
        let distinct: std::collections::BTreeSet<_> = policies.iter().collect();
        assert_eq!(distinct.len(), 100);
        assert_eq!(policies[0], format!("default/{ALLOW_CLIENT}"));
        assert!(super::policies(0).is_empty());
    }

    #[test]
    fn half_select_the_server_and_only_one_names_its_port() {
        assert_eq!(selecting_server(0), 0);
        assert_eq!(selecting_server(1), 1);
        assert_eq!(selecting_server(100), 51);
        assert_eq!(selecting_server(1000), 501);
        let text = policies(1000);
        assert_eq!(text.matches(&format!("port: {SERVER_PORT}}}")).count(), 1);
        // Every peer shape is there.
        for shape in [
            "ipBlock",
            "kubernetes.io/metadata.name",
            "bench-team",
            "UDP",
            "egress",
        ] {
            assert!(text.contains(shape), "{shape}");
        }
    }

    #[test]
    fn the_flip_moves_the_allowing_policy_off_the_server_port() {
        let allow = kinds(&allowing());
        let flip = kinds(&flipped_allow());
        assert_eq!(allow, flip);
        assert!(allowing().contains(&format!("port: {SERVER_PORT}}}")));
        assert!(flipped_allow().contains(&format!("port: {}}}", SERVER_PORT + 1)));
    }
}
