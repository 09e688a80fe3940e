//! `strait services`: the Service frontends each agent's kernel holds, as `GET /services` serves
//! them (like `cilium service list`), in the listing commands' `-o` forms. Frontends every node holds
//! alike are shown once (NODE `*`) unless `-o wide`.

use serde_json::{Value, json};

use crate::listing::table;

/// Every node's frontends, each with its `node`.
pub fn services_json(per_node: &[(String, Value)]) -> Value {
    let mut out = Vec::new();
    for (node, list) in per_node {
        for entry in list.as_array().into_iter().flatten() {
            let mut entry = entry.clone();
            if let Some(object) = entry.as_object_mut() {
                object.insert("node".into(), json!(node));
            }
            out.push(entry);
        }
    }
    Value::Array(out)
}

fn reach(entry: &Value) -> &'static str {
    match (entry["external"] == true, entry["local_only"] == true) {
        (false, _) => "cluster",
        (true, false) => "external",
        (true, true) => "external-local",
    }
}

/// NODE SERVICE FRONTEND PROTO REACH BACKENDS.
pub fn services_table(per_node: &[(String, Value)], wide: bool) -> String {
    let row = |node: &str, e: &Value| {
        let backends: Vec<&str> = e["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        vec![
            node.to_owned(),
            e["service"].as_str().unwrap_or("-").to_owned(),
            e["frontend"].as_str().unwrap_or("?").to_owned(),
            e["protocol"].as_str().unwrap_or("?").to_owned(),
            reach(e).to_owned(),
            if backends.is_empty() {
                if e["endpoints_elsewhere"] == true {
                    "(on other nodes)".to_owned()
                } else {
                    "(none)".to_owned()
                }
            } else {
                backends.join(",")
            },
        ]
    };
    let same = per_node.windows(2).all(|w| w[0].1 == w[1].1);
    let mut rows = Vec::new();
    if !wide && same && !per_node.is_empty() {
        rows.extend(
            per_node[0]
                .1
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| row("*", e)),
        );
    } else {
        for (node, list) in per_node {
            rows.extend(list.as_array().into_iter().flatten().map(|e| row(node, e)));
        }
    }
    if rows.is_empty() {
        return "no service frontends\n".to_owned();
    }
    table(
        &["NODE", "SERVICE", "FRONTEND", "PROTO", "REACH", "BACKENDS"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontends_are_tabled_once_when_nodes_agree() {
        let list = json!([
            {"service": "y/web", "frontend": "10.96.0.20:80", "protocol": "TCP", "external": false,
             "local_only": false, "endpoints_elsewhere": false, "backends": ["10.244.2.7:80"]},
            {"service": "y/web", "frontend": "172.30.0.11:30080", "protocol": "TCP", "external": true,
             "local_only": true, "endpoints_elsewhere": true, "backends": []},
        ]);
        let per_node = [("n1".to_owned(), list.clone()), ("n2".to_owned(), list)];
        let text = services_table(&per_node, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.contains("external-local") && text.contains("(on other nodes)"),
            "{text}"
        );
        assert_eq!(services_table(&per_node, true).lines().count(), 5);
        assert_eq!(services_json(&per_node)[2]["node"], "n2");
    }
}
