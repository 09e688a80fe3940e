//! `strait policy get`: the NetworkPolicies each agent enforces (its table's numbers and names) and
//! the local pods each one isolates, per direction, as `GET /policies` serves them.

use serde_json::{Value, json};

use crate::listing::table;

/// Every node's answer, each with its `node`.
pub fn policies_json(per_node: &[(String, Value)]) -> Value {
    Value::Array(
        per_node
            .iter()
            .map(|(node, answer)| {
                let mut answer = answer.clone();
                if let Some(object) = answer.as_object_mut() {
                    object.insert("node".into(), json!(node));
                }
                answer
            })
            .collect(),
    )
}

/// NODE POD DIRECTION ISOLATED-BY (the local pods a policy isolates); `wide` first lists each
/// node's policy table (NODE ID POLICY).
pub fn policies_table(per_node: &[(String, Value)], wide: bool) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut out = String::new();
    if wide {
        let rows: Vec<Vec<String>> = per_node
            .iter()
            .flat_map(|(node, answer)| {
                answer["policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |p| vec![node.clone(), p["id"].to_string(), text(&p["name"])])
            })
            .collect();
        out.push_str(&table(&["NODE", "ID", "POLICY"], &rows));
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = per_node
        .iter()
        .flat_map(|(node, answer)| {
            answer["isolated"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |i| {
                    let by: Vec<String> = i["isolated_by"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(text)
                        .collect();
                    vec![
                        node.clone(),
                        text(&i["pod"]),
                        text(&i["direction"]),
                        by.join(","),
                    ]
                })
        })
        .collect();
    if rows.is_empty() {
        out.push_str(
            "no pod is isolated by a NetworkPolicy: every pod accepts and sends everything\n",
        );
    } else {
        out.push_str(&table(&["NODE", "POD", "DIRECTION", "ISOLATED-BY"], &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolated_pods_and_the_policy_table_are_listed() {
        let answer = json!({
            "policies": [{"id": 3, "name": "y/deny-all"}],
            "isolated": [{"pod": "y/b", "ip": "10.244.2.7", "direction": "ingress", "isolated_by": ["y/allow-80", "y/deny-all"]}],
        });
        let per_node = [("n2".to_owned(), answer)];
        let text = policies_table(&per_node, false);
        assert!(
            text.contains("y/b") && text.contains("y/allow-80,y/deny-all"),
            "{text}"
        );
        assert!(!text.contains("POLICY\n"));
        assert!(policies_table(&per_node, true).contains("y/deny-all"));
        assert_eq!(policies_json(&per_node)[0]["node"], "n2");
        let none = policies_table(
            &[("n1".to_owned(), json!({"policies": [], "isolated": []}))],
            false,
        );
        assert!(none.starts_with("no pod is isolated"), "{none}");
    }
}
