//! The shapes of NetworkPolicy rules, one scenario each (most after the upstream e2e suite's tests of
//! the same name): isolation per direction, pod and namespace selectors alone, ANDed and ORed,
//! matchExpressions, named ports, port ranges, address blocks with exceptions, egress and ingress
//! deciding apart, stacked policies, allow-all, a protocol alone.

use strait_lab::cluster::Lab;

use super::{Expect, Scenario, netpol};

/// The scenarios, in order; `lab` gives the addresses the block scenario names.
pub fn scenarios(lab: &Lab) -> Vec<Scenario> {
    let mut out = vec![
        Scenario {
            name: "no policy",
            policies: Vec::new(),
            expect: Expect::AllAllowed,
        },
        Scenario {
            name: "default deny ingress",
            policies: vec![netpol("x", "deny-ingress", DENY_INGRESS)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "default deny egress",
            policies: vec![netpol("x", "deny-egress", DENY_EGRESS)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "podSelector",
            policies: vec![netpol("x", "a-from-b", A_FROM_POD_B)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "namespaceSelector, and all namespaces",
            policies: vec![
                netpol("x", "a-from-ns-y", A_FROM_NAMESPACE_Y),
                netpol("y", "b-from-c-anywhere", B_FROM_C_ANYWHERE),
            ],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "podSelector AND namespaceSelector (one peer)",
            policies: vec![netpol("x", "a-from-y-b", A_FROM_Y_AND_B)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "podSelector OR namespaceSelector (two peers)",
            policies: vec![netpol("x", "a-from-y-or-b", A_FROM_Y_OR_B)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "matchExpressions",
            policies: vec![netpol("x", "expressions", MATCH_EXPRESSIONS)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "named ports, ingress and egress",
            policies: vec![
                netpol("x", "a-named-ports", A_NAMED_PORTS),
                netpol("y", "egress-named-port", EGRESS_NAMED_PORT),
            ],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "endPort",
            policies: vec![netpol("x", "port-ranges", PORT_RANGES)],
            expect: Expect::SomeBlocked,
        },
    ];
    out.push(blocks(lab));
    out.extend([
        Scenario {
            name: "client egress and server ingress decide apart",
            policies: vec![
                netpol("x", "egress-to-y", X_EGRESS_TO_Y),
                netpol("y", "a-deny-ingress", Y_A_DENY_INGRESS),
                netpol("z", "from-x", Z_FROM_X),
            ],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "ingress and egress in one policy",
            policies: vec![netpol("y", "b-both", Y_B_BOTH)],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "stacked policies add up",
            policies: vec![
                netpol("x", "a-from-b-80", STACK_B_80),
                netpol("x", "a-from-y-81", STACK_Y_81),
                netpol("x", "a-from-c-udp-80", STACK_C_UDP_80),
            ],
            expect: Expect::SomeBlocked,
        },
        Scenario {
            name: "allow-all voids deny-all",
            policies: vec![
                netpol("x", "deny-all", DENY_ALL),
                netpol("x", "allow-all-ingress", ALLOW_ALL_INGRESS),
                netpol("x", "allow-all-egress", ALLOW_ALL_EGRESS),
            ],
            expect: Expect::AllAllowed,
        },
        Scenario {
            name: "a protocol alone (UDP, any port)",
            policies: vec![netpol("x", "a-udp-only", A_UDP_ONLY)],
            expect: Expect::SomeBlocked,
        },
    ]);
    out
}

/// `ipBlock` with `except`, both directions: x/a takes ingress from the pod CIDR of the first node
/// but for one pod of y on it; z's egress may go to the cluster's pod range but for the second node's
/// pods.
fn blocks(lab: &Lab) -> Scenario {
    let first = &lab.state.nodes[0];
    let second = &lab.state.nodes[1];
    let excepted = lab
        .state
        .pods
        .iter()
        .find(|p| p.node == first.name && p.namespace == "y")
        .expect("a pod of y on the first node");
    let ingress = format!(
        "
  podSelector: {{matchLabels: {{pod: a}}}}
  ingress:
  - from:
    - ipBlock:
        cidr: {}
        except: [{}/32]",
        first.pod_cidr, excepted.ip
    );
    let egress = format!(
        "
  podSelector: {{}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock:
        cidr: 10.244.0.0/16
        except: [{}]",
        second.pod_cidr
    );
    Scenario {
        name: "ipBlock with except",
        policies: vec![
            netpol("x", "a-from-first-node", &ingress),
            netpol("z", "egress-but-second-node", &egress),
        ],
        expect: Expect::SomeBlocked,
    }
}

const DENY_INGRESS: &str = "
  podSelector: {}
  policyTypes: [Ingress]";

const DENY_EGRESS: &str = "
  podSelector: {}
  policyTypes: [Egress]";

const DENY_ALL: &str = "
  podSelector: {}
  policyTypes: [Ingress, Egress]";

const A_FROM_POD_B: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}";

const A_FROM_NAMESPACE_Y: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}";

/// Every namespace's c (`namespaceSelector: {}`).
const B_FROM_C_ANYWHERE: &str = "
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {pod: c}}";

const A_FROM_Y_AND_B: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
      podSelector: {matchLabels: {pod: b}}";

const A_FROM_Y_OR_B: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
    - podSelector: {matchLabels: {pod: b}}";

/// x/a and x/b, from pods of other namespaces than x that are not b (and have no `role`), plus the
/// `kubernetes.io/metadata.name` label every namespace has.
const MATCH_EXPRESSIONS: &str = "
  podSelector:
    matchExpressions: [{key: pod, operator: In, values: [a, b]}]
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: ns, operator: NotIn, values: [x]}]
      podSelector:
        matchExpressions:
        - {key: pod, operator: NotIn, values: [b]}
        - {key: role, operator: DoesNotExist}
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [x]}
        - {key: ns, operator: Exists}
      podSelector: {matchLabels: {pod: c}}";

/// 81/TCP and 80/UDP by name; `serve-81-udp` over TCP names no port of the pods (the name is the UDP
/// port's), so it allows nothing.
const A_NAMED_PORTS: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports:
    - port: serve-81-tcp
    - port: serve-80-udp
      protocol: UDP
    - port: serve-81-udp
      protocol: TCP";

/// Egress named ports resolve on the destination pod.
const EGRESS_NAMED_PORT: &str = "
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports:
    - port: serve-80-tcp";

const PORT_RANGES: &str = "
  podSelector: {}
  ingress:
  - ports:
    - {port: 81, endPort: 90, protocol: TCP}
    - {port: 70, endPort: 80, protocol: UDP}";

/// x may send only to y; y/a takes nothing; z takes only from x. So x -> y/a is refused by the server
/// although the client may send, x -> z by the client although the server takes it.
const X_EGRESS_TO_Y: &str = "
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {ns: y}}";

const Y_A_DENY_INGRESS: &str = "
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]";

const Z_FROM_X: &str = "
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: x}}";

const Y_B_BOTH: &str = "
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: z}}
  egress:
  - to:
    - podSelector: {matchLabels: {pod: c}}
    ports:
    - {port: 81, protocol: TCP}
    - {port: 81, protocol: UDP}";

const STACK_B_80: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}
    ports: [{port: 80}]";

const STACK_Y_81: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
    ports: [{port: 81}]";

const STACK_C_UDP_80: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {pod: c}}
    ports: [{port: 80, protocol: UDP}]";

const ALLOW_ALL_INGRESS: &str = "
  podSelector: {}
  ingress: [{}]";

const ALLOW_ALL_EGRESS: &str = "
  podSelector: {}
  policyTypes: [Egress]
  egress: [{}]";

const A_UDP_ONLY: &str = "
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{protocol: UDP}]";
