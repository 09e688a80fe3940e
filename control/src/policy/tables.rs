//! The store's Pods, Namespaces and NetworkPolicies turned into the complete content of the policy maps
//! for this node ([`PolicyTables`]): every pod address of the cluster with its identity, this node's
//! isolated or audited pods, and their allow entries by peer identity and by peer address.
//!
//! [`PolicyState`] lives as long as the agent's sync loop: it keeps the identities and the policies'
//! numbers, so a rebuild after one pod or policy changed gives every other entry the same numbers and
//! the kernel sees only what changed. Policies are numbered 1, 2, ... in the order they are first seen
//! (0 is "none"), a number never reused while the agent runs; [`Built::policies`] names them, so a
//! verdict's policy number can be told by name. A state made [`PolicyState::publishing`] also
//! publishes, with every rebuild, the names flow verdicts are told with ([`NameView`]: the pod of each
//! address, each policy number's name, the policies isolating each local pod).

use std::collections::{BTreeMap, BTreeSet};

use strait_dataplane::policy::{
    self as abi, POLICY_CIDR_RANGES, PolicyCidrAllow, PolicyRule, PolicySubject, PolicyTables,
    PortRange, SUBJECT_F_AUDIT, SUBJECT_F_EGRESS_ISOLATED, SUBJECT_F_INGRESS_ISOLATED,
};
use strait_k8s::{
    ObjectStore,
    netpol::{Evaluator, Policy, RuleRef},
};

use super::{
    cidr::{CidrKey, CidrValue},
    compile::{AllowKey, Compiled, Direction, compile},
    identity::{IdentityKey, IpCache},
    pods::{ClusterPods, cluster_pods, namespaces},
};
use crate::flows::{FlowNames, NameView};

/// How policies are enforced on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySettings {
    /// This node's name: its pods are the ones whose policies are compiled.
    pub node: String,
    /// Audit mode for every pod (`--policy-audit`): a would-be drop passes and is reported.
    pub audit: bool,
}

/// One rebuild: the tables and what to say about them.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub tables: PolicyTables,
    /// Policy numbers → `namespace/name`.
    pub policies: BTreeMap<u32, String>,
    /// Pods of the cluster holding an address, and those on this node.
    pub pods: usize,
    pub local_pods: usize,
    pub identities: usize,
    /// Rules whose `ipBlock` peers are not enforced (too many port ranges): their traffic is denied.
    pub refused: Vec<RuleRef>,
    /// Rules enforced in part (egress `ipBlock` rules' named ports are left out).
    pub skipped: Vec<RuleRef>,
    /// Policies that do not parse (`namespace/name: why`); they isolate nothing.
    pub invalid: Vec<String>,
}

/// Numbers for policies, by `namespace/name`.
#[derive(Clone, Debug)]
struct PolicyNumbers {
    by_name: BTreeMap<String, u32>,
    next: u32,
}

impl Default for PolicyNumbers {
    fn default() -> Self {
        Self {
            by_name: BTreeMap::new(),
            next: 1,
        }
    }
}

impl PolicyNumbers {
    /// Numbers `names` (keeping the numbers they have) and forgets every other name.
    fn assign(&mut self, names: &BTreeSet<String>) {
        self.by_name.retain(|name, _| names.contains(name));
        for name in names {
            if !self.by_name.contains_key(name) {
                self.by_name.insert(name.clone(), self.next);
                self.next += 1;
            }
        }
    }

    fn rule(&self, origin: &RuleRef) -> PolicyRule {
        PolicyRule {
            policy: self.by_name.get(&origin.policy).copied().unwrap_or(0),
            rule: u32::try_from(origin.rule).unwrap_or(u32::MAX),
        }
    }
}

/// What the sync loop keeps between rebuilds.
#[derive(Debug)]
pub struct PolicyState {
    settings: PolicySettings,
    cache: IpCache,
    numbers: PolicyNumbers,
    /// The last rebuild's problems, logged again only when they change.
    problems: Vec<String>,
    /// Where each rebuild's names for flow verdicts go.
    names: Option<FlowNames>,
}

impl PolicyState {
    pub fn new(settings: PolicySettings) -> Self {
        Self {
            settings,
            cache: IpCache::default(),
            numbers: PolicyNumbers::default(),
            problems: Vec::new(),
            names: None,
        }
    }

    /// The state, publishing each rebuild's names for flow verdicts to `names`.
    #[must_use]
    pub fn publishing(mut self, names: FlowNames) -> Self {
        self.names = Some(names);
        self
    }

    /// The tables for the store's current content; logs refused, partly enforced and invalid
    /// policies when that list changed.
    pub fn build(&mut self, store: &ObjectStore) -> Built {
        let pods = cluster_pods(store, &self.settings.node);
        let namespaces = namespaces(store);
        let wanted: BTreeMap<_, _> = pods
            .all
            .iter()
            .filter_map(|pod| Some((pod.ip?, identity_key(pod))))
            .collect();
        for (ip, key) in &wanted {
            self.cache.set(*ip, key);
        }
        let gone: Vec<_> = self
            .cache
            .addresses()
            .filter(|ip| !wanted.contains_key(ip))
            .collect();
        for ip in gone {
            self.cache.remove(ip);
        }

        let mut invalid = Vec::new();
        let mut policies = Vec::new();
        for (key, object) in store.network_policies() {
            match Policy::parse(&object) {
                Ok(policy) => policies.push(policy),
                Err(error) => invalid.push(format!("{}/{}: {error}", key.namespace, key.name)),
            }
        }
        let names: BTreeSet<String> = policies.iter().map(Policy::key).collect();
        self.numbers.assign(&names);
        let evaluator = Evaluator::new(policies, namespaces.labels);
        let compiled = compile(&evaluator, &pods.all, &pods.local, &self.cache);

        let mut tables = PolicyTables {
            ipcache: wanted
                .keys()
                .map(|ip| (*ip, self.cache.identity(*ip)))
                .collect(),
            ..PolicyTables::default()
        };
        for pod in &pods.local {
            let Some(ip) = pod.ip else { continue };
            let mut flags = 0;
            if compiled.isolated.contains(&(ip, Direction::Ingress)) {
                flags |= SUBJECT_F_INGRESS_ISOLATED;
            }
            if compiled.isolated.contains(&(ip, Direction::Egress)) {
                flags |= SUBJECT_F_EGRESS_ISOLATED;
            }
            if self.settings.audit || namespaces.audited.contains(&pod.namespace) {
                flags |= SUBJECT_F_AUDIT;
            }
            if flags != 0 {
                let identity = self.cache.identity(ip);
                tables
                    .subjects
                    .insert(ip, PolicySubject { flags, identity });
            }
        }
        self.fill_entries(&compiled, &mut tables);
        let built = Built {
            tables,
            policies: self
                .numbers
                .by_name
                .iter()
                .map(|(name, number)| (*number, name.clone()))
                .collect(),
            pods: pods.all.len(),
            local_pods: pods.local.len(),
            identities: self.cache.identities().len(),
            refused: compiled.refused,
            skipped: compiled.skipped,
            invalid,
        };
        self.report_problems(&built);
        if let Some(names) = &self.names {
            names.publish(name_view(&pods, &evaluator, &built.policies));
        }
        built
    }

    /// POLICY_V1 and POLICY_CIDR_V1 entries from the compiled rules.
    fn fill_entries(&self, compiled: &Compiled, tables: &mut PolicyTables) {
        for (key, origin) in &compiled.allow {
            tables
                .allow
                .insert(allow_key(key), self.numbers.rule(origin));
        }
        for (key, value) in &compiled.cidr {
            tables.cidr.insert(cidr_key(key), self.cidr_allow(value));
        }
    }

    fn cidr_allow(&self, value: &CidrValue) -> PolicyCidrAllow {
        let mut allow = PolicyCidrAllow {
            rule: value
                .rule
                .as_ref()
                .map(|r| self.numbers.rule(r))
                .unwrap_or_default(),
            ..PolicyCidrAllow::default()
        };
        // `cidr` never gives more ranges than an entry holds (it refuses the rule instead).
        for (slot, (first, last)) in allow.ranges.iter_mut().zip(&value.ranges) {
            *slot = PortRange {
                first: *first,
                last: *last,
            };
        }
        allow.count = u32::try_from(value.ranges.len().min(POLICY_CIDR_RANGES)).unwrap_or(0);
        allow
    }

    fn report_problems(&mut self, built: &Built) {
        let named = |rules: &[RuleRef], what: &str| {
            rules
                .iter()
                .map(|r| format!("{} rule {}: {what}", r.policy, r.rule))
                .collect::<Vec<_>>()
        };
        let mut problems = named(
            &built.refused,
            "its ipBlock peers need more port ranges on one prefix than the data path holds; \
             their traffic is denied",
        );
        problems.extend(named(
            &built.skipped,
            "an egress ipBlock rule's named ports are not enforced (denied)",
        ));
        problems.extend(built.invalid.iter().map(|i| format!("{i}: ignored")));
        if problems != self.problems {
            for problem in &problems {
                tracing::warn!("network policy: {problem}");
            }
            self.problems = problems;
        }
    }
}

/// The names flow verdicts are told with: each pod address's `namespace/name`, each policy number's
/// name, and the policies isolating each local pod per direction.
fn name_view(
    pods: &ClusterPods,
    evaluator: &Evaluator,
    policies: &BTreeMap<u32, String>,
) -> NameView {
    use strait_dataplane::policy_events::Direction as Way;
    let mut isolating: BTreeMap<(std::net::Ipv4Addr, u8), Vec<String>> = BTreeMap::new();
    for pod in &pods.local {
        let Some(ip) = pod.ip else { continue };
        for policy in evaluator.policies() {
            if policy.namespace != pod.namespace || !policy.selector.matches(&pod.labels) {
                continue;
            }
            for (way, rules) in [
                (abi::POLICY_INGRESS, &policy.ingress),
                (abi::POLICY_EGRESS, &policy.egress),
            ] {
                if rules.is_some() {
                    isolating.entry((ip, way)).or_default().push(policy.key());
                }
            }
        }
    }
    NameView::new(
        pods.all.iter().filter_map(|pod| Some((pod.ip?, pod.key()))),
        policies,
        isolating.into_iter().map(|((ip, way), names)| {
            let way = if way == abi::POLICY_INGRESS {
                Way::Ingress
            } else {
                Way::Egress
            };
            ((ip, way), names)
        }),
    )
}

fn identity_key(pod: &strait_k8s::netpol::PolicyPod) -> IdentityKey {
    IdentityKey {
        namespace: pod.namespace.clone(),
        labels: pod.labels.clone(),
    }
}

fn direction_code(direction: Direction) -> u8 {
    match direction {
        Direction::Ingress => abi::POLICY_INGRESS,
        Direction::Egress => abi::POLICY_EGRESS,
    }
}

fn allow_key(key: &AllowKey) -> abi::AllowKey {
    abi::AllowKey {
        subject: key.subject,
        direction: direction_code(key.direction),
        protocol: key.protocol,
        peer: key.peer,
        port: key.port,
        port_prefix: key.port_prefix,
    }
}

fn cidr_key(&(subject, direction, protocol, prefix): &CidrKey) -> abi::CidrKey {
    abi::CidrKey {
        subject,
        direction: direction_code(direction),
        protocol,
        prefix: prefix.network(),
        prefix_len: prefix.prefix_len(),
    }
}

#[cfg(test)]
mod tests;
