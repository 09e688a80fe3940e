//! Tests of [`KubeSource`] against the scripted API server in [`mock_api`](super::mock_api): initial
//! lists, events on an open watch, a watch that ends and resumes, `410 Gone` and the relist after it,
//! errors, readiness, the pod field selector, stopping on drop; what NetworkPolicy adds (every Pod,
//! trimmed; Namespaces; NetworkPolicies); and that a TLS client builds. Then what large clusters need:
//! paged lists streamed into the store, bookmarks asked for and followed, backoff that grows
//! with jitter up to its cap, the periodic relist that corrects a missed delete, and the queue's
//! bound (a consumer that does not read holds the watchers back; nothing is lost).

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use strait_k8s::ObjectStore;

use super::mock_api::{Kind, MockApi, TIMEOUT, WatchStream};
use super::retry::{Backoff, Random, relist_delay};
use super::{KubeSource, KubeSourceOptions, RetryPolicy};
use crate::model::source::{ObjectSource, SourceChange};

/// The store's objects, as the tests look at them.
#[derive(Debug, Default)]
struct ClusterObjects {
    services: BTreeMap<(String, String), Service>,
    endpoint_slices: BTreeMap<(String, String), EndpointSlice>,
    nodes: BTreeMap<String, Node>,
    pods: BTreeMap<(String, String), Pod>,
    namespaces: BTreeMap<String, Namespace>,
    network_policies: BTreeMap<(String, String), NetworkPolicy>,
}

impl ClusterObjects {
    fn of(store: &ObjectStore) -> Self {
        let key = |k: &strait_k8s::ObjectKey| (k.namespace.clone(), k.name.clone());
        Self {
            services: store.services().map(|(k, o)| (key(k), o.clone())).collect(),
            endpoint_slices: store
                .endpoint_slices()
                .map(|(k, o)| (key(k), o.clone()))
                .collect(),
            nodes: store
                .nodes()
                .map(|(k, o)| (k.name.clone(), o.clone()))
                .collect(),
            pods: store.pods().map(|(k, o)| (key(k), o.clone())).collect(),
            namespaces: store
                .namespaces()
                .map(|(k, o)| (k.name.clone(), o.clone()))
                .collect(),
            network_policies: store
                .network_policies()
                .map(|(k, o)| (key(k), o.clone()))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.nodes.is_empty()
            && self.pods.is_empty()
            && self.namespaces.is_empty()
            && self.network_policies.is_empty()
    }
}

/// What the store holds after a batch, and the errors reported since the previous report.
#[derive(Debug)]
struct LoadReport {
    objects: ClusterObjects,
    errors: Vec<String>,
}

/// A source and the store its batches go to, as the agent's loop uses them.
struct Watched {
    source: KubeSource,
    store: ObjectStore,
    errors: Vec<String>,
    /// Whether the first report (the one that comes once the source is ready) has been made.
    reported: bool,
}

impl Watched {
    fn new(source: KubeSource) -> Self {
        Self {
            source,
            store: ObjectStore::new(),
            errors: Vec::new(),
            reported: false,
        }
    }

    fn is_ready(&self) -> bool {
        self.source.is_ready()
    }

    /// Applies what the source has now; a report when the source is ready and anything changed or
    /// went wrong (errors from before readiness come with the first report).
    fn poll(&mut self) -> Option<LoadReport> {
        let batch = self.source.collect(Duration::ZERO);
        let mut events = 0;
        for change in batch.changes {
            events += match change {
                SourceChange::Change(change) => usize::from(self.store.apply(change).is_some()),
                SourceChange::Replace(kind, objects) => self.store.replace(kind, objects).len(),
            };
        }
        self.errors.extend(batch.errors);
        let first = !self.reported;
        if !self.source.is_ready() || (!first && events == 0 && self.errors.is_empty()) {
            return None;
        }
        self.reported = true;
        Some(LoadReport {
            objects: ClusterObjects::of(&self.store),
            errors: std::mem::take(&mut self.errors),
        })
    }
}

const NODE: &str = "node-1";

/// A Service as the API server serves it (server-set fields included, type fields left to the caller).
fn service(name: &str, cluster_ip: &str, resource_version: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": format!("0b6f1c2e-{name}"),
            "resourceVersion": resource_version,
            "creationTimestamp": "2026-05-01T10:00:00Z",
            "labels": {"app": name},
        },
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "selector": {"app": name},
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// An EndpointSlice of the Service `web` as the EndpointSlice controller writes it.
fn slice(name: &str, addresses: &[&str], resource_version: &str) -> Value {
    let endpoints: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(index, address)| {
            json!({
                "addresses": [address],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": NODE,
                "targetRef": {"kind": "Pod", "namespace": "shop", "name": format!("web-{index}")},
            })
        })
        .collect();
    json!({
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": format!("5d1e7a90-{name}"),
            "resourceVersion": resource_version,
            "generateName": "web-",
            "labels": {
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": "web", "uid": "0b6f1c2e-web",
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
    })
}

fn node(name: &str) -> Value {
    json!({"metadata": {"name": name, "resourceVersion": "1"}})
}

fn pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "1"},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]},
    })
}

/// `namespace/name` of every key, in order.
fn names<V>(objects: &BTreeMap<(String, String), V>) -> Vec<String> {
    objects
        .keys()
        .map(|(ns, name)| format!("{ns}/{name}"))
        .collect()
}

fn cluster_ip(objects: &ClusterObjects, name: &str) -> Option<String> {
    let service = objects
        .services
        .get(&("shop".to_owned(), name.to_owned()))?;
    service.spec.as_ref()?.cluster_ip.clone()
}

/// Every endpoint address of the slice `name`, in order.
fn addresses(objects: &ClusterObjects, name: &str) -> Vec<String> {
    objects
        .endpoint_slices
        .get(&("shop".to_owned(), name.to_owned()))
        .map(|slice| {
            slice
                .endpoints
                .iter()
                .flatten()
                .flat_map(|endpoint| endpoint.addresses.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Polls every 10 ms until a report satisfies `done` and returns it, with the errors of the reports
/// skipped on the way put in front of its own, so no error goes unseen. Fails after [`TIMEOUT`].
async fn report_where(
    source: &mut Watched,
    api: &MockApi,
    what: &str,
    done: impl Fn(&LoadReport) -> bool,
) -> LoadReport {
    let deadline = Instant::now() + TIMEOUT;
    let mut errors = Vec::new();
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(mut report) = source.poll() {
            if done(&report) {
                errors.append(&mut report.errors);
                report.errors = errors;
                return report;
            }
            errors.append(&mut report.errors);
            last = Some(report);
        }
        sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no report with {what} within {TIMEOUT:?}; last report: {last:#?}\nerrors: {errors:?}\n\
         requests:\n{}",
        api.log()
    );
}

/// Answers the first list of `kind` with `items` at `resource_version` and opens the watch after it.
async fn list_and_watch(
    api: &mut MockApi,
    kind: Kind,
    resource_version: &str,
    items: &[Value],
) -> WatchStream {
    api.expect_list(kind).await.list(resource_version, items);
    api.expect_watch(kind, resource_version).await.watch()
}

/// Lists nothing for each of `kinds` and keeps their watches open and quiet.
async fn serve_empty(api: &mut MockApi, kinds: &[Kind]) -> Vec<WatchStream> {
    let mut watches = Vec::new();
    for &kind in kinds {
        watches.push(list_and_watch(api, kind, "1", &[]).await);
    }
    watches
}

#[tokio::test]
async fn services_follow_events_watch_restarts_and_the_relist_after_gone() {
    let (client, mut api) = MockApi::start();
    let mut source = Watched::new(KubeSource::start(client, NODE));
    let initial = [
        service("web", "10.96.0.10", "90"),
        service("db", "10.96.0.11", "95"),
    ];
    let services = list_and_watch(&mut api, Kind::Services, "100", &initial).await;
    let _quiet = serve_empty(&mut api, &[Kind::EndpointSlices, Kind::Nodes, Kind::Pods]).await;

    let report = report_where(&mut source, &api, "the listed services", |_| true).await;
    assert_eq!(names(&report.objects.services), ["shop/db", "shop/web"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        source.poll().is_none(),
        "nothing changed since the last report"
    );

    // Events on the open watch.
    services.event("ADDED", service("cache", "10.96.0.12", "101"));
    services.event("MODIFIED", service("web", "10.96.0.20", "102"));
    let report = report_where(&mut source, &api, "cache added and web modified", |r| {
        cluster_ip(&r.objects, "web").as_deref() == Some("10.96.0.20")
            && r.objects.services.len() == 3
    })
    .await;
    assert_eq!(
        names(&report.objects.services),
        ["shop/cache", "shop/db", "shop/web"]
    );
    services.event("DELETED", service("db", "10.96.0.11", "103"));
    let report = report_where(&mut source, &api, "db deleted", |r| {
        r.objects.services.len() == 2
    })
    .await;
    assert_eq!(names(&report.objects.services), ["shop/cache", "shop/web"]);

    // The server ends the watch; the watcher resumes from the last bookmark without listing again.
    services.bookmark("110");
    services.close();
    let services = api.expect_watch(Kind::Services, "110").await.watch();

    // That version has been compacted away: the store keeps its objects and the error is reported ...
    services.gone("too old resource version: 110 (150)");
    let report = report_where(&mut source, &api, "the watch error", |r| {
        !r.errors.is_empty()
    })
    .await;
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let error = &report.errors[0];
    assert!(
        error.starts_with("Service watch: ") && error.contains("too old resource version"),
        "{error}"
    );
    assert_eq!(names(&report.objects.services), ["shop/cache", "shop/web"]);

    // ... then the watcher lists again: objects missing from the new list are gone.
    let relisted = [
        service("web", "10.96.0.30", "140"),
        service("api", "10.96.0.13", "145"),
    ];
    let _services = list_and_watch(&mut api, Kind::Services, "150", &relisted).await;
    let report = report_where(&mut source, &api, "the relisted services", |r| {
        r.objects
            .services
            .contains_key(&("shop".to_owned(), "api".to_owned()))
    })
    .await;
    assert_eq!(names(&report.objects.services), ["shop/api", "shop/web"]);
    assert_eq!(
        cluster_ip(&report.objects, "web").as_deref(),
        Some("10.96.0.30")
    );
    assert!(
        report.errors.is_empty(),
        "errors are reported once: {:?}",
        report.errors
    );
    assert!(source.poll().is_none());
    api.assert_no_unexpected_requests();
}

#[tokio::test]
async fn endpoint_slices_follow_events_and_the_relist_after_gone() {
    let (client, mut api) = MockApi::start();
    let mut source = Watched::new(KubeSource::start(client, NODE));
    let initial = [
        slice("web-abc", &["10.244.1.4"], "190"),
        slice("db-xyz", &["10.244.1.9"], "195"),
    ];
    let slices = list_and_watch(&mut api, Kind::EndpointSlices, "200", &initial).await;
    let _quiet = serve_empty(&mut api, &[Kind::Services, Kind::Nodes, Kind::Pods]).await;

    let report = report_where(&mut source, &api, "the listed slices", |_| true).await;
    assert_eq!(
        names(&report.objects.endpoint_slices),
        ["shop/db-xyz", "shop/web-abc"]
    );
    assert_eq!(addresses(&report.objects, "web-abc"), ["10.244.1.4"]);

    slices.event(
        "MODIFIED",
        slice("web-abc", &["10.244.1.4", "10.244.1.5"], "201"),
    );
    report_where(&mut source, &api, "a second web endpoint", |r| {
        addresses(&r.objects, "web-abc") == ["10.244.1.4", "10.244.1.5"]
    })
    .await;

    // Gone on the open watch: a relist replaces the whole store.
    slices.gone("too old resource version: 201 (300)");
    let relisted = [slice("web-abc", &["10.244.1.5"], "290")];
    let _slices = list_and_watch(&mut api, Kind::EndpointSlices, "300", &relisted).await;
    let report = report_where(&mut source, &api, "the relisted slices", |r| {
        r.objects.endpoint_slices.len() == 1
    })
    .await;
    assert_eq!(names(&report.objects.endpoint_slices), ["shop/web-abc"]);
    assert_eq!(addresses(&report.objects, "web-abc"), ["10.244.1.5"]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(
        report.errors[0].starts_with("EndpointSlice watch: "),
        "{}",
        report.errors[0]
    );
    api.assert_no_unexpected_requests();
}

#[tokio::test]
async fn reports_only_once_every_kind_is_listed_and_watches_this_nodes_pods() {
    let (client, mut api) = MockApi::start();
    let mut source = Watched::new(KubeSource::start(client, NODE));
    let _services = list_and_watch(
        &mut api,
        Kind::Services,
        "10",
        &[service("web", "10.96.0.10", "10")],
    )
    .await;
    let _slices = list_and_watch(
        &mut api,
        Kind::EndpointSlices,
        "10",
        &[slice("web-abc", &["10.244.1.4"], "10")],
    )
    .await;
    // The first node list is refused; the watcher backs off and lists again.
    api.expect_list(Kind::Nodes).await.fail(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "nodes is forbidden: User \"system:serviceaccount:kube-system:strait\" cannot list",
    );
    let _nodes = list_and_watch(&mut api, Kind::Nodes, "10", &[node(NODE)]).await;

    // The pods are not listed yet: a partial view is never reported.
    sleep(Duration::from_millis(300)).await;
    assert!(!source.is_ready());
    assert!(source.poll().is_none());

    let pods = api.expect_list(Kind::Pods).await;
    assert_eq!(
        pods.param("fieldSelector"),
        Some("spec.nodeName%3Dnode-1"),
        "pods are selected by node\nrequests:\n{}",
        api.log()
    );
    pods.list("10", &[pod("web-1")]);
    let pods = api.expect_watch(Kind::Pods, "10").await;
    assert_eq!(pods.param("fieldSelector"), Some("spec.nodeName%3Dnode-1"));
    let _pods = pods.watch();

    let report = report_where(&mut source, &api, "every kind", |_| true).await;
    assert!(source.is_ready());
    let objects = &report.objects;
    assert_eq!(names(&objects.services), ["shop/web"]);
    assert_eq!(names(&objects.endpoint_slices), ["shop/web-abc"]);
    assert_eq!(objects.nodes.keys().collect::<Vec<_>>(), [NODE]);
    assert_eq!(names(&objects.pods), ["shop/web-1"]);
    // The error from before the first report comes with it.
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let error = &report.errors[0];
    assert!(
        error.starts_with("Node watch: ") && error.contains("forbidden"),
        "{error}"
    );
    api.assert_no_unexpected_requests();
}

#[tokio::test]
async fn dropping_the_source_stops_its_watchers() {
    let (client, mut api) = MockApi::start();
    let mut source = Watched::new(KubeSource::start(client, NODE));
    let watches = serve_empty(&mut api, &Kind::SERVICES).await;
    let report = report_where(&mut source, &api, "the empty lists", |_| true).await;
    assert!(report.objects.is_empty());
    assert!(watches.iter().all(|watch| !watch.is_closed()));

    drop(source);
    let deadline = Instant::now() + TIMEOUT;
    while !watches.iter().all(WatchStream::is_closed) {
        assert!(
            Instant::now() < deadline,
            "watches still open after the drop\nrequests:\n{}",
            api.log()
        );
        sleep(Duration::from_millis(10)).await;
    }
    api.assert_no_unexpected_requests();
}

/// A Pod as the API server serves it: much more than policy reads.
fn full_pod(name: &str, node: &str, ready: &str) -> Value {
    json!({
        "metadata": {
            "name": name, "namespace": "shop", "resourceVersion": "7", "uid": format!("u-{name}"),
            "labels": {"app": "web"}, "annotations": {"note": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r"}],
        },
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}],
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090},
                    {"containerPort": 9443, "hostPort": 443, "hostIP": "192.168.5.10", "protocol": "TCP"},
                ],
            }],
        },
        "status": {
            "phase": "Running", "podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}],
            "conditions": [{"type": "Ready", "status": ready}],
        },
    })
}

#[tokio::test]
async fn for_policy_every_pod_namespace_and_policy_is_watched_and_pods_are_trimmed() {
    let (client, mut api) = MockApi::start();
    let mut source = Watched::new(KubeSource::start_for_policy(client, NODE));
    let _quiet = serve_empty(
        &mut api,
        &[Kind::Services, Kind::EndpointSlices, Kind::Nodes],
    )
    .await;
    let pods = api.expect_list(Kind::Pods).await;
    assert_eq!(pods.param("fieldSelector"), None, "every node's pods");
    pods.list("10", &[full_pod("web-1", "node-2", "True")]);
    let pods = api.expect_watch(Kind::Pods, "10").await.watch();
    let namespace =
        json!({"metadata": {"name": "shop", "labels": {"team": "a"}, "resourceVersion": "3"}});
    let _namespaces = list_and_watch(&mut api, Kind::Namespaces, "10", &[namespace]).await;
    let policy = json!({
        "metadata": {"name": "deny", "namespace": "shop", "resourceVersion": "4"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    });
    let _policies = list_and_watch(&mut api, Kind::NetworkPolicies, "10", &[policy]).await;

    let report = report_where(&mut source, &api, "every kind", |_| true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let objects = &report.objects;
    assert_eq!(objects.namespaces.keys().collect::<Vec<_>>(), ["shop"]);
    assert_eq!(names(&objects.network_policies), ["shop/deny"]);
    let pod = &objects.pods[&("shop".to_owned(), "web-1".to_owned())];
    let kept: Value = serde_json::to_value(pod).unwrap();
    assert_eq!(
        kept,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-2", "containers": [{
                "name": "app", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"containerPort": 9443, "hostPort": 443, "hostIP": "192.168.5.10", "protocol": "TCP"},
                ],
            }]},
            "status": {"phase": "Running", "podIP": "10.244.2.7", "podIPs": [{"ip": "10.244.2.7"}]},
        })
    );

    // A change to what policy does not read changes nothing in the store.
    pods.event("MODIFIED", full_pod("web-1", "node-2", "False"));
    sleep(Duration::from_millis(200)).await;
    assert!(source.poll().is_none(), "no store event");
    pods.event("ADDED", full_pod("web-2", "node-1", "True"));
    let report = report_where(&mut source, &api, "web-2", |r| r.objects.pods.len() == 2).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    api.assert_no_unexpected_requests();
}

#[tokio::test]
async fn a_tls_client_for_a_real_api_server_builds() {
    // The TLS stack (rustls with ring) is set up without a process-wide provider; nothing connects.
    let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
    let client = kube::Client::try_from(config);
    assert!(client.is_ok(), "{:?}", client.err());
}

/// What [`drain_until`] took from a source.
#[derive(Debug, Default)]
struct Drained {
    /// Changes per batch, in order (batches that only carried list progress count 0).
    batches: Vec<usize>,
    /// The kind and size of each `Replace`, in order.
    replaces: Vec<(strait_k8s::Kind, usize)>,
    /// Upserts and deletes.
    changes: usize,
    errors: Vec<String>,
}

/// Applies the source's batches to `store` (polling every 10 ms) until `done` holds; fails after
/// [`TIMEOUT`].
async fn drain_until(
    source: &mut KubeSource,
    store: &mut ObjectStore,
    api: &MockApi,
    what: &str,
    done: impl Fn(&KubeSource, &ObjectStore) -> bool,
) -> Drained {
    let deadline = Instant::now() + TIMEOUT;
    let mut drained = Drained::default();
    loop {
        loop {
            let batch = source.collect(Duration::ZERO);
            if batch.noticed.is_none() {
                break;
            }
            drained.batches.push(batch.changes.len());
            drained.errors.extend(batch.errors);
            for change in batch.changes {
                match change {
                    SourceChange::Change(change) => {
                        drained.changes += 1;
                        store.apply(change);
                    }
                    SourceChange::Replace(kind, objects) => {
                        drained.replaces.push((kind, objects.len()));
                        store.replace(kind, objects);
                    }
                }
            }
        }
        if done(source, store) {
            return drained;
        }
        assert!(
            Instant::now() < deadline,
            "not {what} within {TIMEOUT:?}; took {drained:?}\nrequests:\n{}",
            api.log()
        );
        sleep(Duration::from_millis(10)).await;
    }
}

/// Names of the Services in `store`.
fn stored_services(store: &ObjectStore) -> Vec<String> {
    store.services().map(|(key, _)| key.name.clone()).collect()
}

#[tokio::test]
async fn lists_come_in_pages_streamed_into_the_store_and_watches_follow_bookmarks() {
    let (client, mut api) = MockApi::start();
    let mut source = KubeSource::start(client, NODE);
    let first = api.expect_list(Kind::Services).await;
    assert_eq!(first.param("limit"), Some("500"), "{}", api.log());
    assert_eq!(first.param("continue"), None);
    let page = [
        service("a", "10.96.0.1", "90"),
        service("b", "10.96.0.2", "91"),
    ];
    first.list_page("100", &page, Some("page-2"));
    let second = api.expect_list(Kind::Services).await;
    assert_eq!(second.param("continue"), Some("page-2"), "{}", api.log());
    assert_eq!(second.param("limit"), Some("500"));
    second.list_page("100", &[service("c", "10.96.0.3", "92")], None);
    let watch = api.expect_watch(Kind::Services, "100").await;
    assert_eq!(watch.param("allowWatchBookmarks"), Some("true"));
    assert_eq!(watch.param("timeoutSeconds"), Some("290"));
    let services = watch.watch();
    let mut quiet = Vec::new();
    for kind in [Kind::EndpointSlices, Kind::Nodes, Kind::Pods] {
        let list = api.expect_list(kind).await;
        assert_eq!(list.param("limit"), Some("500"), "{kind:?}");
        list.list("1", &[]);
        let watch = api.expect_watch(kind, "1").await;
        assert_eq!(watch.param("allowWatchBookmarks"), Some("true"), "{kind:?}");
        quiet.push(watch.watch());
    }

    let mut store = ObjectStore::new();
    let drained = drain_until(&mut source, &mut store, &api, "ready", |s, _| s.is_ready()).await;
    // Both pages streamed into the store as they came: no list is held whole.
    assert!(drained.replaces.is_empty(), "{drained:?}");
    assert!(drained.changes >= 3, "{drained:?}");
    assert_eq!(stored_services(&store), ["a", "b", "c"]);

    // The watch ends after a bookmark: it resumes from the bookmark's version, not the list's, and
    // without listing again.
    services.bookmark("120");
    services.close();
    let resumed = api.expect_watch(Kind::Services, "120").await;
    assert_eq!(resumed.param("allowWatchBookmarks"), Some("true"));
    let services = resumed.watch();
    services.event("ADDED", service("d", "10.96.0.4", "121"));
    let drained = drain_until(&mut source, &mut store, &api, "d added", |_, store| {
        store.count(strait_k8s::Kind::Service) == 4
    })
    .await;
    assert!(drained.replaces.is_empty(), "{drained:?}");
    assert!(drained.errors.is_empty(), "{drained:?}");
    api.assert_no_unexpected_requests();
}

#[tokio::test]
async fn a_refused_list_is_retried_after_growing_jittered_delays_up_to_the_cap() {
    let (client, mut api) = MockApi::start();
    let retry = RetryPolicy {
        first: Duration::from_millis(200),
        max: Duration::from_millis(800),
        factor: 2,
        reset_after: Duration::from_mins(1),
    };
    let options = KubeSourceOptions {
        retry,
        ..KubeSourceOptions::default()
    };
    let mut source = Watched::new(KubeSource::with_options(client, NODE, false, &options));
    let _quiet = serve_empty(&mut api, &[Kind::EndpointSlices, Kind::Nodes, Kind::Pods]).await;
    let mut arrivals = Vec::new();
    for _ in 0..5 {
        let call = api.expect_list(Kind::Services).await;
        arrivals.push(call.at);
        call.fail(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "the server is busy",
        );
    }
    let call = api.expect_list(Kind::Services).await;
    arrivals.push(call.at);
    call.list("10", &[service("web", "10.96.0.10", "10")]);
    let _services = api.expect_watch(Kind::Services, "10").await.watch();

    // Each wait lies between half its step and all of it (plus scheduling slack); the steps double
    // although every attempt starts the watcher over (an `Init` before each list).
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let steps = [200, 400, 800, 800, 800].map(Duration::from_millis);
    // Slack for the scheduling of a loaded machine: the mock notes a request's arrival on a task of
    // its own. Within it, the waits still grow (a step of 800 ms waits at least 350 ms, more than the
    // first step ever does) and stop growing at the cap (at most 1.2 s, less than the next step).
    let (early, late) = (Duration::from_millis(50), Duration::from_millis(400));
    for (gap, step) in gaps.iter().zip(steps) {
        assert!(
            *gap + early >= step / 2 && *gap <= step + late,
            "retries after {gaps:?}; steps {steps:?}"
        );
    }
    let report = report_where(&mut source, &api, "the services", |_| true).await;
    assert_eq!(names(&report.objects.services), ["shop/web"]);
    assert_eq!(
        report.errors.len(),
        5,
        "each failure once: {:?}",
        report.errors
    );
    assert!(
        report
            .errors
            .iter()
            .all(|e| e.contains("the server is busy")),
        "{:?}",
        report.errors
    );
    api.assert_no_unexpected_requests();
}

#[test]
fn backoff_waits_are_jittered_within_their_steps_and_start_over_after_a_quiet_period() {
    let policy = RetryPolicy::default();
    let steps = [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0].map(Duration::from_secs_f64);
    let start = std::time::Instant::now();
    let mut firsts = Vec::new();
    for seed in 0..500 {
        let mut backoff = Backoff::new(policy, Random::with_seed(seed));
        let (mut now, mut last) = (start, start);
        for (attempt, step) in steps.iter().enumerate() {
            let delay = backoff.next_delay(now);
            assert!(
                delay >= *step / 2 && delay <= *step,
                "seed {seed}, failure {attempt}: {delay:?} for a step of {step:?}"
            );
            if attempt == 0 {
                firsts.push(delay);
            }
            // The next failure comes as soon as the wait is over: no quiet period.
            last = now;
            now += delay;
        }
        // Just short of the quiet period the count goes on (at the cap); after it, it starts over.
        now = last + policy.reset_after.saturating_sub(Duration::from_millis(1));
        assert!(backoff.next_delay(now) >= Duration::from_secs(15));
        now += policy.reset_after;
        assert!(backoff.next_delay(now) <= Duration::from_millis(800));
    }
    // Jittered: the first waits spread over the whole half-step.
    let (low, high) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
    assert!(
        *low < Duration::from_millis(440) && *high > Duration::from_millis(760),
        "first waits from {low:?} to {high:?}"
    );
}

#[test]
fn relists_are_spread_ten_percent_either_side_of_the_interval() {
    let every = Duration::from_mins(30);
    let mut random = Random::with_seed(7);
    let delays: Vec<Duration> = (0..1000)
        .map(|_| relist_delay(every, &mut random))
        .collect();
    assert!(
        delays
            .iter()
            .all(|d| *d >= every.mul_f64(0.9) && *d <= every.mul_f64(1.1))
    );
    let (low, high) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    assert!(
        *low < every.mul_f64(0.92) && *high > every.mul_f64(1.08),
        "from {low:?} to {high:?}"
    );
    // Two sources seeded from the process draw different sequences.
    let (mut a, mut b) = (Random::new(), Random::new());
    assert_ne!(
        (0..4).map(|_| a.unit()).collect::<Vec<_>>(),
        (0..4).map(|_| b.unit()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn each_kind_is_relisted_periodically_and_a_missed_delete_is_corrected() {
    let (client, mut api) = MockApi::start();
    let every = Duration::from_millis(500);
    let options = KubeSourceOptions {
        relist_every: every,
        ..KubeSourceOptions::default()
    };
    let mut source = Watched::new(KubeSource::with_options(client, NODE, false, &options));
    // The first list is answered late, after a relist would have been due: a list in progress is
    // not cut short (the next request is the watch, not another list).
    let list = api.expect_list(Kind::Services).await;
    sleep(every + every / 2).await;
    let initial = [
        service("web", "10.96.0.10", "9"),
        service("db", "10.96.0.11", "9"),
    ];
    list.list("10", &initial);
    let watch = api.expect_watch(Kind::Services, "10").await;
    let watched_at = watch.at;
    let services = watch.watch();
    let _quiet = serve_empty(&mut api, &[Kind::EndpointSlices, Kind::Nodes, Kind::Pods]).await;
    let report = report_where(&mut source, &api, "the listed services", |_| true).await;
    assert_eq!(names(&report.objects.services), ["shop/db", "shop/web"]);

    // db is deleted, and the watch never says so. The relist comes 500 ms ± 10 % after the list,
    // drops the old watch, and corrects the store.
    let relist = api.expect_list(Kind::Services).await;
    let after = relist.at - watched_at;
    assert!(
        after >= every.mul_f64(0.7) && after <= every.mul_f64(1.1) + Duration::from_millis(300),
        "relisted {after:?} after the watch started"
    );
    relist.list("20", &[service("web", "10.96.0.10", "9")]);
    let _services = api.expect_watch(Kind::Services, "20").await.watch();
    let report = report_where(&mut source, &api, "db gone", |r| {
        r.objects.services.len() == 1
    })
    .await;
    assert_eq!(names(&report.objects.services), ["shop/web"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(services.is_closed(), "the relist dropped the old watch");
    // Every other kind relists too.
    for kind in [Kind::EndpointSlices, Kind::Nodes, Kind::Pods] {
        api.expect_list(kind).await.list("30", &[]);
    }
    api.assert_no_unexpected_requests();
}

/// Waits until `source` has `capacity` messages queued, then checks it stays there (the watchers are
/// held back, not queueing more).
async fn queue_fills(source: &KubeSource, capacity: usize, api: &MockApi) {
    let deadline = Instant::now() + TIMEOUT;
    while source.queued() < capacity {
        assert!(
            Instant::now() < deadline,
            "{} queued\nrequests:\n{}",
            source.queued(),
            api.log()
        );
        sleep(Duration::from_millis(10)).await;
    }
    sleep(Duration::from_millis(200)).await;
    assert_eq!(source.queued(), capacity);
}

#[tokio::test]
async fn a_consumer_that_does_not_read_holds_the_watchers_back_and_loses_nothing() {
    const CAPACITY: usize = 8;
    let (client, mut api) = MockApi::start();
    let options = KubeSourceOptions {
        queue_capacity: CAPACITY,
        ..KubeSourceOptions::default()
    };
    let mut source = KubeSource::with_options(client, NODE, false, &options);
    let listed: Vec<Value> = (0..100)
        .map(|i| service(&format!("listed-{i:03}"), "10.96.1.1", "5"))
        .collect();
    api.expect_list(Kind::Services).await.list("10", &listed);
    for kind in [Kind::EndpointSlices, Kind::Nodes, Kind::Pods] {
        api.expect_list(kind).await.list("1", &[]);
    }

    // Nobody reads: the queue fills to its bound and the watchers wait, the services list unfinished
    // (its watcher has not asked for its watch).
    queue_fills(&source, CAPACITY, &api).await;
    let log = api.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("/api/v1/services?") && l.contains("watch=true")),
        "{log}"
    );

    // Reading takes at most CAPACITY changes a batch; the list arrives whole, a page at a time.
    let mut store = ObjectStore::new();
    let drained = drain_until(&mut source, &mut store, &api, "ready", |s, _| s.is_ready()).await;
    assert!(
        drained.batches.iter().all(|n| *n <= CAPACITY),
        "{drained:?}"
    );
    assert!(drained.changes >= listed.len(), "{drained:?}");
    assert_eq!(store.count(strait_k8s::Kind::Service), 100);

    // A burst of 200 events while nobody reads: again the queue stops at its bound.
    let services = api.expect_watch(Kind::Services, "10").await.watch();
    let mut quiet = Vec::new();
    for kind in [Kind::EndpointSlices, Kind::Nodes, Kind::Pods] {
        quiet.push(api.expect_watch(kind, "1").await.watch());
    }
    for i in 0..200 {
        services.event(
            "ADDED",
            service(
                &format!("added-{i:03}"),
                "10.96.2.1",
                &format!("{}", 11 + i),
            ),
        );
    }
    queue_fills(&source, CAPACITY, &api).await;
    let drained = drain_until(&mut source, &mut store, &api, "every event", |_, store| {
        store.count(strait_k8s::Kind::Service) == 300
    })
    .await;
    assert_eq!(drained.changes, 200, "{drained:?}");
    assert!(
        drained.batches.iter().all(|n| *n <= CAPACITY),
        "{drained:?}"
    );
    assert!(drained.batches.len() >= 200 / CAPACITY, "{drained:?}");
    assert_eq!(source.queued(), 0);
    api.assert_no_unexpected_requests();
}
