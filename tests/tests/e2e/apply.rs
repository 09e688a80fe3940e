//! `lab apply` / `lab delete` against manifests: Deployments scale up and down and replace pods whose
//! template changed; every pod that exists answers under its generated name; delete removes the objects;
//! each object reports what happened to it; an input with one object the API server would refuse (a
//! namespace that does not exist) changes nothing, not even the valid objects before it.

use std::{collections::BTreeSet, fs};

use strait_lab::cluster::Lab;
use strait_tests::LabGuard;

use crate::{examples, who_answers};

fn deployment(replicas: usize, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: web
          image: {image}
          ports: [{{name: http, containerPort: 8080}}]
"
    )
}

fn lines(results: &[impl ToString]) -> Vec<String> {
    results.iter().map(ToString::to_string).collect()
}

fn web_pods(lab: &Lab) -> BTreeSet<String> {
    lab.state
        .pods
        .iter()
        .filter(|p| p.owner.as_deref() == Some("default/web"))
        .map(|p| p.name.clone())
        .collect()
}

#[test]
fn deployments_scale_roll_and_delete() {
    strait_tests::require_root();
    strait_tests::bin_dir();
    let guard = LabGuard::new("ap");
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("web.yaml");
    let mut lab = Lab::up(&guard.name, 1, Some(&examples().join("pods.yaml"))).unwrap();

    // Refused whole: the Deployment before the Service in a missing namespace creates no pod.
    let shop = "apiVersion: v1\nkind: Service\nmetadata: {name: cart, namespace: shop}\n\
                spec: {selector: {app: cart}, ports: [{port: 80}]}\n";
    fs::write(
        &manifest,
        format!("{}---\n{shop}", deployment(3, "busybox:1")),
    )
    .unwrap();
    let error = lab.apply(&manifest).unwrap_err().to_string();
    assert!(
        error.contains("web.yaml document 2: service/cart: namespaces \"shop\" not found"),
        "{error}"
    );
    assert!(web_pods(&lab).is_empty());
    // Nothing of the refused input was applied (the lab's own kube-dns Service stays).
    assert!(lab.state.deployments.is_empty() && !lab.state.services.contains_key("shop/cart"));

    fs::write(&manifest, deployment(3, "busybox:1")).unwrap();
    let applied = lab.apply(&manifest).unwrap();
    assert_eq!(lines(&applied), ["deployment.apps/web created"]);
    assert_eq!(
        lines(&lab.apply(&manifest).unwrap()),
        ["deployment.apps/web unchanged"]
    );
    let three = web_pods(&lab);
    assert_eq!(three.len(), 3);
    for pod in lab
        .state
        .pods
        .clone()
        .iter()
        .filter(|p| three.contains(&p.name))
    {
        assert!(pod.name.starts_with("web-"), "{}", pod.name);
        assert_eq!(who_answers(&lab, "default/client", pod.ip, 8080), pod.id());
    }

    fs::write(&manifest, deployment(1, "busybox:1")).unwrap();
    assert_eq!(
        lines(&lab.apply(&manifest).unwrap()),
        ["deployment.apps/web configured"]
    );
    let one = web_pods(&lab);
    assert_eq!(one.len(), 1);
    assert!(one.is_subset(&three), "scaling down keeps existing pods");

    fs::write(&manifest, deployment(2, "busybox:2")).unwrap();
    lab.apply(&manifest).unwrap();
    let rolled = web_pods(&lab);
    assert_eq!(rolled.len(), 2);
    assert!(
        rolled.is_disjoint(&one),
        "a new template replaces every pod"
    );

    assert_eq!(
        lines(&lab.delete(&manifest).unwrap()),
        ["deployment.apps \"web\" deleted"]
    );
    assert!(web_pods(&lab).is_empty());
    assert_eq!(lab.state.pods.len(), 2, "the bare pods stay");
    let again = lab.delete(&manifest).unwrap();
    assert!(again[0].is_error());
    assert_eq!(
        lines(&again),
        ["Error from server (NotFound): deployments.apps \"web\" not found"]
    );
    // A bad manifest is refused with its file named, and the lab is unchanged.
    fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c}]}\n",
    )
    .unwrap();
    let error = lab.apply(&manifest).unwrap_err().to_string();
    assert!(error.contains("web.yaml"), "{error}");
    assert_eq!(lab.state.pods.len(), 2);
}
