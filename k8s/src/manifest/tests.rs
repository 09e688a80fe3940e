//! Tests of manifest parsing and validation, with the options the lab reads with (strict, validated,
//! four kinds) unless a test says otherwise.

use std::fs;
use std::path::Path;

use super::*;
use crate::object::Object;

const LAB: ParseOptions<'static> = ParseOptions {
    kinds: &[Kind::Namespace, Kind::Service, Kind::Pod, Kind::Deployment],
    skip_other_kinds: false,
    strict: true,
    validate: true,
};

fn parse_str(file: &Path, text: &str) -> Result<Vec<Object>, ManifestError> {
    super::parse_str(file, text, &LAB).map(Loaded::into_objects)
}

fn load_path(path: &Path) -> Result<Vec<Object>, ManifestError> {
    super::load_path(path, &LAB).map(Loaded::into_objects)
}

fn parse(text: &str) -> Result<Vec<Object>, ManifestError> {
    parse_str(Path::new("test.yaml"), text)
}

fn parse_err(text: &str) -> ManifestError {
    match parse(text) {
        Ok(objects) => panic!("expected an error, got {objects:?}"),
        Err(e) => e,
    }
}

fn pod_yaml(name: &str, ports: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: x\n\
         spec:\n  containers:\n  - name: c\n    image: busybox\n    ports:\n{ports}"
    )
}

fn deployment_yaml(replicas: &str, selector: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      {selector}\n\
         \x20 template:\n    metadata:\n      labels:\n        app: web\n        tier: front\n\
         \x20   spec:\n      containers:\n      - name: web\n        image: {image}\n\
         \x20       ports:\n        - {{name: http, containerPort: 8080}}\n\
         \x20     - name: side\n        image: busybox\n        ports:\n\
         \x20       - {{name: http, containerPort: 8080, protocol: TCP}}\n\
         \x20       - {{name: dns, containerPort: 53, protocol: UDP}}\n"
    )
}

#[test]
fn multi_document_yaml_with_all_kinds() {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n---\n{}---\n{}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n\
         spec:\n  selector: {{app: web}}\n  ports:\n  - {{port: 80, targetPort: http}}\n",
        pod_yaml("p1", "    - containerPort: 80\n"),
        deployment_yaml("2", "app: web", "nginx"),
    );
    let objects = parse(&text).unwrap();
    let summary: Vec<_> = objects
        .iter()
        .map(|o| (o.kind(), o.namespace(), o.name()))
        .collect();
    assert_eq!(
        summary,
        [
            ("Namespace", "shop", "shop"),
            ("Pod", "default", "p1"),
            ("Deployment", "shop", "web"),
            ("Service", "shop", "web"),
        ]
    );
    assert!(!objects[0].is_namespaced() && objects[1].is_namespaced());
}

#[test]
fn json_files_and_list_expansion() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}},
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}]}
        {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#;
    let objects = parse_str(Path::new("list.json"), list).unwrap();
    let names: Vec<_> = objects.iter().map(Object::name).collect();
    assert_eq!(names, ["a", "b", "c"]);

    // The same List as YAML; an error in an item names the item.
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: ok}}\n\
                - {apiVersion: v1, kind: Namespace, metadata: {name: Bad}}\n";
    let err = parse_err(yaml).to_string();
    assert!(
        err.starts_with("test.yaml document 1 item 2: Namespace Bad: metadata.name"),
        "{err}"
    );
    assert!(matches!(
        parse_err("apiVersion: v1\nkind: List\n"),
        ManifestError::BadList { .. }
    ));
}

#[test]
fn bad_yaml_names_file_and_document() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [unclosed\n";
    let err = parse_err(text);
    assert!(matches!(err, ManifestError::Yaml { .. }), "{err:?}");
    let at = err.location().unwrap();
    assert_eq!(
        (at.file.as_path(), at.document),
        (Path::new("test.yaml"), 2)
    );
    assert!(
        err.to_string()
            .starts_with("test.yaml document 2: invalid YAML"),
        "{err}"
    );
    assert!(matches!(
        parse_err("- just\n- a list\n"),
        ManifestError::NotAMapping { .. }
    ));
    assert!(matches!(
        parse_err("kind: Pod\nmetadata: {name: a}\n"),
        ManifestError::MissingTypeField {
            field: "apiVersion",
            ..
        }
    ));
    let decode =
        parse_err("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n");
    assert!(
        decode
            .to_string()
            .starts_with("test.yaml document 1: Pod p: invalid type"),
        "{decode}"
    );
}

#[test]
fn missing_and_invalid_names() {
    let missing = parse_err("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n");
    assert_eq!(
        missing.to_string(),
        "test.yaml document 1: Namespace <unnamed>: metadata.name is required"
    );
    for bad in ["Web", "web_1", "-web", "web-"] {
        let err = parse_err(&pod_yaml(bad, "    - containerPort: 80\n"));
        assert!(
            matches!(&err, ManifestError::Invalid { field, .. } if field == "metadata.name"),
            "{bad}: {err}"
        );
    }
    // Pods may use dotted subdomain names; Services must be RFC 1035 labels.
    assert!(parse(&pod_yaml("web.v1", "    - containerPort: 80\n")).is_ok());
    let svc = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n"
        )
    };
    assert!(parse(&svc("web")).is_ok());
    for bad in ["web.v1", "1web", &"a".repeat(64)] {
        assert!(
            matches!(parse_err(&svc(bad)), ManifestError::Invalid { .. }),
            "{bad}"
        );
    }
    let long_label = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {}}}\n",
        "n".repeat(64)
    );
    assert!(matches!(
        parse_err(&long_label),
        ManifestError::Invalid { .. }
    ));
}

#[test]
fn bad_ports_and_sctp() {
    let cases = [
        (
            "    - containerPort: 0\n",
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            "    - containerPort: 65536\n",
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            "    - {containerPort: 80, protocol: tcp}\n",
            "spec.containers[0].ports[0].protocol",
        ),
        (
            "    - {containerPort: 80, name: a-very-long-port-name}\n",
            "spec.containers[0].ports[0].name",
        ),
        (
            "    - {containerPort: 80, name: p}\n    - {containerPort: 81, name: p}\n",
            "spec.containers[0].ports[1].name",
        ),
    ];
    for (ports, want) in cases {
        let err = parse_err(&pod_yaml("p", ports));
        assert!(
            matches!(&err, ManifestError::Invalid { field, .. } if field == want),
            "{ports}: {err}"
        );
    }
    let err = parse_err(&pod_yaml(
        "p",
        "    - {containerPort: 80, protocol: SCTP}\n",
    ));
    assert!(matches!(err, ManifestError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("Pod p: spec.containers[0].ports[0].protocol")
            && msg.ends_with(": SCTP is not supported (supported: TCP, UDP)"),
        "{msg}"
    );
    assert!(
        parse(&pod_yaml(
            "p",
            "    - {containerPort: 65535, protocol: UDP, name: dns}\n"
        ))
        .is_ok()
    );
}

#[test]
fn deployment_validation() {
    assert!(parse(&deployment_yaml("0", "app: web", "nginx")).is_ok());
    let err = parse_err(&deployment_yaml("-1", "app: web", "nginx"));
    assert!(
        matches!(&err, ManifestError::Invalid { field, .. } if field == "spec.replicas"),
        "{err}"
    );
    let err = parse_err(&deployment_yaml("1", "app: api", "nginx"));
    assert_eq!(
        err.to_string(),
        "test.yaml document 1: Deployment web: spec.selector.matchLabels app=api does not match spec.template.metadata.labels"
    );
    let no_containers = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: []}\n";
    let text = format!(
        "{}---\n{no_containers}",
        pod_yaml("p", "    - containerPort: 80\n")
    );
    assert_eq!(
        parse_str(Path::new("examples/pods.yaml"), &text)
            .unwrap_err()
            .to_string(),
        "examples/pods.yaml document 2: Deployment web: spec.template.spec.containers is empty"
    );
    let expr = no_containers
        .replace("{containers: []}", "{containers: [{name: c}]}")
        .replace(
            "{matchLabels: {app: web}}",
            "{matchExpressions: [{key: app, operator: In, values: [web, api]}]}",
        );
    assert!(parse(&expr).is_ok());
    let expr_bad = expr.replace("[web, api]", "[api]");
    assert!(matches!(
        parse_err(&expr_bad),
        ManifestError::Invalid { .. }
    ));
}

#[test]
fn unknown_kinds() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n";
    let err = parse_err(text);
    match &err {
        ManifestError::UnknownKind {
            at,
            api_version,
            kind,
            ..
        } => {
            assert_eq!(
                (at.document, api_version.as_str(), kind.as_str()),
                (2, "v1", "ConfigMap")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_unknown_kind());
    assert!(
        err.to_string()
            .starts_with("test.yaml document 2: ConfigMap (apiVersion v1) is not read here")
    );
    // A known kind under a group that is not built in may be a custom resource: not read.
    assert!(parse_err("apiVersion: extensions/v1beta1\nkind: Deployment\n").is_unknown_kind());
    // A misspelt kind of a built-in group is refused, as an API server refuses it.
    let misspelt = parse_err("apiVersion: v1\nkind: Servise\nmetadata: {name: web}\n");
    assert!(
        matches!(&misspelt, ManifestError::NoSuchKind { kind, .. } if kind == "Servise"),
        "{misspelt:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("m.yaml"), text).unwrap();
    let skipping = ParseOptions {
        skip_other_kinds: true,
        ..LAB
    };
    let loaded = super::load_path(dir.path(), &skipping).unwrap();
    assert_eq!(loaded.objects.len(), 1);
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].is_unknown_kind());
    assert!(load_path(dir.path()).unwrap_err().is_unknown_kind());
}

#[test]
fn directory_loading_order_and_filtering() {
    let dir = tempfile::tempdir().unwrap();
    let ns = |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    fs::write(dir.path().join("b.yml"), ns("b")).unwrap();
    fs::write(
        dir.path().join("a.yaml"),
        format!("{}---\n{}", ns("a1"), ns("a2")),
    )
    .unwrap();
    fs::write(
        dir.path().join("c.json"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#,
    )
    .unwrap();
    fs::write(dir.path().join("empty.yaml"), "# nothing here\n").unwrap();
    fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    fs::write(dir.path().join("sub.yaml/z.yaml"), ns("z")).unwrap();

    let names: Vec<_> = load_path(dir.path())
        .unwrap()
        .iter()
        .map(|o| o.name().to_owned())
        .collect();
    assert_eq!(names, ["a1", "a2", "b", "c"]);
    fs::write(dir.path().join(".hidden.yaml"), ns("hidden")).unwrap();
    assert_eq!(load_path(dir.path()).unwrap().len(), 4);

    // A single file works too, and errors name the file inside the directory.
    assert_eq!(load_path(&dir.path().join("b.yml")).unwrap().len(), 1);
    fs::write(dir.path().join("d.yaml"), ns("D")).unwrap();
    let err = load_path(dir.path()).unwrap_err();
    assert_eq!(err.location().unwrap().file, dir.path().join("d.yaml"));
    let missing = load_path(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(matches!(missing, ManifestError::Read { .. }));
}

#[test]
fn strict_fields_duplicate_ports_and_agent_options() {
    let err = parse_err(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, prot: TCP}]}\n",
    );
    assert_eq!(
        err.to_string(),
        "test.yaml document 1: Service web: unknown field \"spec.ports[0].prot\""
    );
    let dup = parse_err(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 80}]}\n",
    );
    assert!(
        matches!(&dup, ManifestError::Invalid { field, problem, .. }
            if field == "spec.ports[1]" && problem.contains("80/TCP")),
        "{dup}"
    );
    // The same port number under two protocols is two ports.
    assert!(
        parse("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{name: a, port: 53}, {name: b, port: 53, protocol: UDP}]}\n")
            .is_ok()
    );
    // The agent reads what an API server wrote: unknown fields and other kinds pass, lists expand.
    let text = "apiVersion: v1\nkind: ServiceList\nitems:\n- metadata: {name: a, namespace: x}\n  spec: {ports: [{port: 80}], future: 1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Servise\nmetadata: {name: d}\n";
    let loaded = super::parse_str(Path::new("t.yaml"), text, &ParseOptions::AGENT).unwrap();
    assert_eq!(loaded.objects.len(), 1);
    assert_eq!(loaded.objects[0].1.key().to_string(), "service/x/a");
    assert_eq!(loaded.objects[0].0.item, Some(1));
    assert_eq!(loaded.skipped.len(), 2);
}

/// The agent's JSON documents take the direct path (straight into their type); what it yields must be
/// what the general path (through a JSON value) yields, and documents it cannot take must still get
/// the general path's handling and errors.
#[test]
fn agent_json_direct_path_matches_the_general_path() {
    let text = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop","labels":{"a":"b"}},
        "spec":{"clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,"targetPort":"http"}],"future":1}}
        {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-1","namespace":"shop",
        "labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",
        "endpoints":[{"addresses":["10.244.0.5"],"conditions":{"ready":true},"nodeName":"n1"}],
        "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}
        {"apiVersion":"v1","kind":"ServiceList","items":[{"metadata":{"name":"listed","namespace":"shop"},"spec":{"ports":[{"port":81}]}}]}"#;
    let file = Path::new("objects.json");
    let direct = super::parse_str(file, text, &ParseOptions::AGENT).unwrap();
    // Validation sends every document down the general path.
    let general_options = ParseOptions {
        validate: true,
        ..ParseOptions::AGENT
    };
    let general = super::parse_str(file, text, &general_options).unwrap();
    assert_eq!(direct.objects, general.objects);
    let keys: Vec<String> = direct
        .objects
        .iter()
        .map(|(_, o)| o.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "service/shop/web",
            "endpointslice/shop/web-1",
            "service/shop/listed"
        ]
    );
    assert_eq!(direct.objects[2].0.document, 4);
    assert_eq!(direct.skipped.len(), 1, "the ConfigMap is skipped");

    // A document that fails to decode, or has no name, gets the general path's error.
    let bad =
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":"no"}}"#;
    let err = super::parse_str(file, bad, &ParseOptions::AGENT).unwrap_err();
    assert!(
        matches!(&err, ManifestError::Decode { name, .. } if name == "web"),
        "{err}"
    );
    let unnamed = r#"{"apiVersion":"v1","kind":"Service","metadata":{}}"#;
    let err = super::parse_str(file, unnamed, &ParseOptions::AGENT).unwrap_err();
    assert!(matches!(err, ManifestError::MissingName { .. }), "{err}");
}
