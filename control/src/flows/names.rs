//! Who a verdict is about: the pod holding each address of the cluster, the name of each policy number
//! of this node's table, and which policies isolate each local pod in each direction (named when the
//! default deny decided). The policy module builds a [`NameView`] with every rebuild of its tables and
//! publishes it through a [`FlowNames`] handle; the verdict reader takes a snapshot (an `Arc`, so a
//! rebuild never waits for a reader and a reader never sees half a view) once per batch.
//!
//! Policy numbers are never reused while the agent runs, so a verdict made under a policy deleted since
//! can still be named: names of numbers a rebuild dropped are kept, the newest
//! [`RETIRED_POLICY_NAMES`] of them. A reader can wait for the first view ([`FlowNames::first`]): a
//! restarted agent finds the verdicts made while it was down waiting in the ring buffer, and names
//! them once it knows the cluster again.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use strait_dataplane::policy_events::Direction;
use tokio::sync::watch;

/// How many names of policies no longer in the table are kept for late verdicts.
pub const RETIRED_POLICY_NAMES: usize = 1024;

/// One rebuild's names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameView {
    /// Pod address → `namespace/name`.
    pods: HashMap<Ipv4Addr, Arc<str>>,
    /// Policy number → `namespace/name`.
    policies: BTreeMap<u32, Arc<str>>,
    /// (local pod, direction) → the policies isolating it, `namespace/name` in order.
    isolating: HashMap<(Ipv4Addr, Direction), Vec<Arc<str>>>,
}

impl NameView {
    /// A view of `pods` (address, `namespace/name`), `policies` (number → `namespace/name`) and the
    /// policies `isolating` each local pod per direction.
    pub fn new(
        pods: impl IntoIterator<Item = (Ipv4Addr, String)>,
        policies: &BTreeMap<u32, String>,
        isolating: impl IntoIterator<Item = ((Ipv4Addr, Direction), Vec<String>)>,
    ) -> Self {
        let policies: BTreeMap<u32, Arc<str>> = policies
            .iter()
            .map(|(number, name)| (*number, Arc::from(name.as_str())))
            .collect();
        // Isolating policies share the strings of the policy table.
        let by_name: HashMap<&str, Arc<str>> = policies
            .values()
            .map(|name| (&**name, Arc::clone(name)))
            .collect();
        let isolating = isolating
            .into_iter()
            .map(|(key, names)| {
                let names = names
                    .iter()
                    .map(|n| {
                        by_name
                            .get(n.as_str())
                            .cloned()
                            .unwrap_or_else(|| Arc::from(n.as_str()))
                    })
                    .collect();
                (key, names)
            })
            .collect();
        Self {
            pods: pods
                .into_iter()
                .map(|(ip, name)| (ip, Arc::from(name)))
                .collect(),
            policies,
            isolating,
        }
    }

    /// `namespace/name` of the pod holding `ip`.
    pub fn pod(&self, ip: Ipv4Addr) -> Option<&Arc<str>> {
        self.pods.get(&ip)
    }

    /// `namespace/name` of policy `number`.
    pub fn policy(&self, number: u32) -> Option<&Arc<str>> {
        self.policies.get(&number)
    }

    /// What `GET /policies` shows: the policies in this node's table (number and name) and, per
    /// local pod and direction, the policies isolating it.
    pub fn listing(&self) -> serde_json::Value {
        let policies: Vec<serde_json::Value> = self
            .policies
            .iter()
            .map(|(number, name)| serde_json::json!({"id": number, "name": &**name}))
            .collect();
        let mut isolated: Vec<serde_json::Value> = self
            .isolating
            .iter()
            .map(|((ip, direction), names)| {
                let by: Vec<&str> = names.iter().map(|n| &**n).collect();
                serde_json::json!({
                    "pod": self.pods.get(ip).map(|p| &**p),
                    "ip": ip.to_string(),
                    "direction": direction.label(),
                    "isolated_by": by,
                })
            })
            .collect();
        isolated.sort_by_key(|v| (v["pod"].to_string(), v["direction"].to_string()));
        serde_json::json!({"policies": policies, "isolated": isolated})
    }

    /// The policies isolating the local pod at `ip` in `direction` (empty: none known).
    pub fn isolating(&self, ip: Ipv4Addr, direction: Direction) -> &[Arc<str>] {
        self.isolating
            .get(&(ip, direction))
            .map_or(&[], Vec::as_slice)
    }
}

/// The current [`NameView`], shared by the policy tables' builder and the verdict reader.
#[derive(Clone, Debug)]
pub struct FlowNames {
    current: Arc<RwLock<Arc<NameView>>>,
    /// Whether a view was published yet.
    published: Arc<watch::Sender<bool>>,
}

impl Default for FlowNames {
    fn default() -> Self {
        Self {
            current: Arc::default(),
            published: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl FlowNames {
    /// Waits until a view was published, at most `patience`; whether one was.
    pub async fn first(&self, patience: Duration) -> bool {
        let mut published = self.published.subscribe();
        tokio::time::timeout(patience, published.wait_for(|p| *p))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Makes `view` current, keeping the names of policy numbers it no longer holds (see the module).
    pub fn publish(&self, mut view: NameView) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let retired: Vec<(u32, Arc<str>)> = current
            .policies
            .iter()
            .filter(|(number, _)| !view.policies.contains_key(number))
            .map(|(number, name)| (*number, Arc::clone(name)))
            .collect();
        let keep = retired.len().saturating_sub(RETIRED_POLICY_NAMES);
        view.policies.extend(retired.into_iter().skip(keep));
        *current = Arc::new(view);
        self.published.send_replace(true);
    }

    /// The current view.
    pub fn snapshot(&self) -> Arc<NameView> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(names: &[(u32, &str)]) -> BTreeMap<u32, String> {
        names.iter().map(|(n, s)| (*n, (*s).to_owned())).collect()
    }

    #[test]
    fn addresses_numbers_and_isolation_are_named() {
        let ip = Ipv4Addr::new(10, 244, 1, 5);
        let view = NameView::new(
            [(ip, "y/b".to_owned())],
            &policies(&[(1, "y/deny-all"), (2, "y/allow-web")]),
            [(
                (ip, Direction::Ingress),
                vec!["y/allow-web".to_owned(), "y/deny-all".to_owned()],
            )],
        );
        assert_eq!(view.pod(ip).map(|p| &**p), Some("y/b"));
        assert_eq!(view.pod(Ipv4Addr::new(10, 244, 1, 6)), None);
        assert_eq!(view.policy(2).map(|p| &**p), Some("y/allow-web"));
        let isolating: Vec<&str> = view
            .isolating(ip, Direction::Ingress)
            .iter()
            .map(|n| &**n)
            .collect();
        assert_eq!(isolating, ["y/allow-web", "y/deny-all"]);
        assert!(view.isolating(ip, Direction::Egress).is_empty());
    }

    #[test]
    fn a_deleted_policy_keeps_its_name_for_late_verdicts() {
        let names = FlowNames::default();
        names.publish(NameView::new([], &policies(&[(1, "x/old")]), []));
        names.publish(NameView::new([], &policies(&[(2, "x/new")]), []));
        let view = names.snapshot();
        assert_eq!(view.policy(1).map(|p| &**p), Some("x/old"));
        assert_eq!(view.policy(2).map(|p| &**p), Some("x/new"));
    }

    #[tokio::test]
    async fn a_reader_can_wait_for_the_first_view() {
        let names = FlowNames::default();
        assert!(!names.first(Duration::from_millis(10)).await);
        let publisher = names.clone();
        tokio::spawn(async move { publisher.publish(NameView::default()) });
        assert!(names.first(Duration::from_secs(5)).await);
        assert!(names.first(Duration::ZERO).await, "once published, at once");
    }

    #[test]
    fn retired_names_are_bounded() {
        let names = FlowNames::default();
        let total = u32::try_from(RETIRED_POLICY_NAMES).unwrap() + 10;
        for number in 1..=total {
            names.publish(NameView::new(
                [],
                &policies(&[(number, &format!("x/p{number}"))]),
                [],
            ));
        }
        let view = names.snapshot();
        assert_eq!(view.policies.len(), RETIRED_POLICY_NAMES + 1);
        assert!(view.policy(1).is_none(), "the oldest went");
        assert!(view.policy(total - 1).is_some());
    }
}
