//! Tests of [`parse_manifest`] and [`ClusterObjects`].

use std::path::Path;

use crate::model::objects::{ClusterObjects, ParseError, ParsedManifest, parse_manifest};

fn parse(file: &str, text: &str) -> Result<ParsedManifest, ParseError> {
    parse_manifest(Path::new(file), text)
}

fn parse_err(file: &str, text: &str) -> ParseError {
    match parse(file, text) {
        Ok(parsed) => panic!("expected an error, got {parsed:?}"),
        Err(e) => e,
    }
}

fn key(ns: &str, name: &str) -> (String, String) {
    (ns.to_owned(), name.to_owned())
}

const ALL_KINDS: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80}]
---
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5]}]
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: old-api}
";

#[test]
fn yaml_multi_document_with_every_kind() {
    let parsed = parse("all.yaml", ALL_KINDS).unwrap();
    let objects = &parsed.objects;
    assert_eq!(
        objects.services.keys().collect::<Vec<_>>(),
        [&key("shop", "web")]
    );
    assert_eq!(
        objects.endpoint_slices.keys().collect::<Vec<_>>(),
        [&key("shop", "web-abc")]
    );
    assert_eq!(objects.nodes.keys().collect::<Vec<_>>(), ["node-1"]);
    // An unset namespace is `default`.
    assert_eq!(
        objects.pods.keys().collect::<Vec<_>>(),
        [&key("default", "p")]
    );
    assert_eq!(objects.len(), 4);
    // The Deployment and the v1beta1 EndpointSlice are other kinds: counted, not errors.
    assert_eq!(parsed.ignored, 2);
    let spec = objects.services[&key("shop", "web")].spec.as_ref().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
}

#[test]
fn json_values_and_list_expansion() {
    let text = r#"
        {"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "x"}}
        ]}
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
    "#;
    let parsed = parse("objects.JSON", text).unwrap();
    assert_eq!(
        parsed.objects.nodes.keys().collect::<Vec<_>>(),
        ["n1", "n2"]
    );
    assert!(parsed.objects.services.contains_key(&key("x", "s")));
    assert_eq!(parsed.ignored, 1);
}

#[test]
fn typed_list_items_may_omit_their_type_fields() {
    let text = "\
apiVersion: discovery.k8s.io/v1
kind: EndpointSliceList
items:
- metadata: {name: a, namespace: n}
  addressType: IPv4
- metadata: {name: b, namespace: n}
  addressType: IPv4
---
apiVersion: v1
kind: PodList
items: []
---
apiVersion: apps/v1
kind: DeploymentList
items: [{metadata: {name: d}}]
";
    let parsed = parse("list.yaml", text).unwrap();
    assert_eq!(
        parsed.objects.endpoint_slices.keys().collect::<Vec<_>>(),
        [&key("n", "a"), &key("n", "b")]
    );
    assert_eq!(
        parsed.ignored, 1,
        "a list of another kind is one ignored document"
    );
}

#[test]
fn a_later_document_replaces_an_earlier_one_with_the_same_key() {
    let text = "\
apiVersion: v1
kind: Node
metadata: {name: n, labels: {v: one}}
---
apiVersion: v1
kind: Node
metadata: {name: n, labels: {v: two}}
";
    let parsed = parse("n.yaml", text).unwrap();
    let labels = parsed.objects.nodes["n"].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["v"], "two");
}

#[test]
fn missing_type_fields_name_the_file_and_document() {
    let text = "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\nmetadata: {name: x}\n";
    let error = parse_err("dir/nodes.yaml", text);
    assert!(matches!(
        error,
        ParseError::MissingTypeField {
            field: "apiVersion",
            ..
        }
    ));
    assert_eq!(error.location().document, 2);
    let message = error.to_string();
    assert!(message.contains("dir/nodes.yaml document 2"), "{message}");

    let error = parse_err("n.yaml", "apiVersion: v1\nmetadata: {name: x}\n");
    assert!(matches!(
        error,
        ParseError::MissingTypeField { field: "kind", .. }
    ));
}

#[test]
fn a_failed_typed_deserialization_is_an_error() {
    let text = "\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: eighty}]
";
    let error = parse_err("svc.yaml", text);
    assert!(
        matches!(
            error,
            ParseError::Decode {
                kind: "Service",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("svc.yaml document 1"), "{message}");
    assert!(message.contains("Service web"), "{message}");
}

#[test]
fn an_object_without_a_name_is_an_error() {
    let error = parse_err("n.yaml", "apiVersion: v1\nkind: Node\nmetadata: {}\n");
    assert!(
        matches!(error, ParseError::MissingName { kind: "Node", .. }),
        "{error:?}"
    );
}

#[test]
fn list_errors_carry_the_item_number() {
    let text = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ok"}},
        {"kind": "Node", "metadata": {"name": "bad"}}
    ]}"#;
    let error = parse_err("l.json", text);
    assert_eq!(error.location().item, Some(2));
    assert!(
        error.to_string().contains("l.json document 1 item 2"),
        "{error}"
    );

    let nested = r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "List", "items": []}]}"#;
    assert!(matches!(
        parse_err("l.json", nested),
        ParseError::NestedList { .. }
    ));

    let no_items = "apiVersion: v1\nkind: List\n";
    assert!(matches!(
        parse_err("l.yaml", no_items),
        ParseError::BadList { .. }
    ));
}

#[test]
fn malformed_text_is_an_error() {
    assert!(matches!(
        parse_err("a.yaml", "a: [1, 2\n"),
        ParseError::Yaml { .. }
    ));
    assert!(matches!(
        parse_err("a.json", "{\"a\": "),
        ParseError::Json { .. }
    ));
    assert!(matches!(
        parse_err("a.yaml", "- 1\n- 2\n"),
        ParseError::NotAMapping { .. }
    ));
}

#[test]
fn empty_files_are_empty() {
    assert_eq!(parse("e.yaml", "").unwrap(), ParsedManifest::default());
    assert_eq!(
        parse("e.yaml", "---\n---\n").unwrap(),
        ParsedManifest::default()
    );
    assert_eq!(parse("e.json", "  \n").unwrap(), ParsedManifest::default());
}

#[test]
fn merge_from_adds_and_replaces() {
    let a = parse(
        "a.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {v: a}}\n---\n\
         apiVersion: v1\nkind: Node\nmetadata: {name: only-a}\n",
    )
    .unwrap()
    .objects;
    let b = parse(
        "b.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n, labels: {v: b}}\n",
    )
    .unwrap()
    .objects;
    let mut merged = ClusterObjects::default();
    assert!(merged.is_empty());
    merged.merge_from(&a);
    merged.merge_from(&b);
    assert_eq!(merged.nodes.keys().collect::<Vec<_>>(), ["n", "only-a"]);
    assert_eq!(
        merged.nodes["n"].metadata.labels.as_ref().unwrap()["v"],
        "b"
    );
}
