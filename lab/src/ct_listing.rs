//! `strait ct list`: every agent's CT entries as `GET /conntrack` serves them (filtered by the
//! agent), in the listing commands' `-o` forms. The table shows each direction of a flow on one row:
//! what the packet was and what it became.

use serde_json::{Value, json};

use crate::listing::table;

/// The query string for the agents' `/conntrack`.
pub fn query(
    src: Option<&str>,
    dst: Option<&str>,
    port: Option<u16>,
    proto: Option<&str>,
    limit: Option<usize>,
) -> String {
    let mut parts = Vec::new();
    if let Some(src) = src {
        parts.push(format!("src={src}"));
    }
    if let Some(dst) = dst {
        parts.push(format!("dst={dst}"));
    }
    if let Some(port) = port {
        parts.push(format!("port={port}"));
    }
    if let Some(proto) = proto {
        parts.push(format!("proto={proto}"));
    }
    if let Some(limit) = limit {
        parts.push(format!("limit={limit}"));
    }
    parts.join("&")
}

/// Every node's entries, each with its `node`.
pub fn ct_json(per_node: &[(String, Value)]) -> Value {
    let mut out = Vec::new();
    for (node, flows) in per_node {
        for flow in flows.as_array().into_iter().flatten() {
            let mut flow = flow.clone();
            if let Some(object) = flow.as_object_mut() {
                object.insert("node".into(), json!(node));
            }
            out.push(flow);
        }
    }
    Value::Array(out)
}

/// NODE PROTO FROM TO NEW-FROM NEW-TO STATE; `wide` adds DIR, FLAGS, IDLE and SERVICE.
pub fn ct_table(per_node: &[(String, Value)], wide: bool) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let mut rows = Vec::new();
    for (node, flows) in per_node {
        for flow in flows.as_array().into_iter().flatten() {
            let mut row = vec![
                node.clone(),
                text(&flow["protocol"]),
                text(&flow["source"]),
                text(&flow["destination"]),
                text(&flow["new_source"]),
                text(&flow["new_destination"]),
                text(&flow["state"]),
            ];
            if wide {
                let flags: Vec<String> = flow["flags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(text)
                    .collect();
                row.push(text(&flow["direction"]));
                row.push(if flags.is_empty() {
                    "-".into()
                } else {
                    flags.join(",")
                });
                row.push(format!("{}ms", flow["idle_ms"]));
                row.push(flow["service_id"].to_string());
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return "no tracked flows (the per-packet service path tracks NodePort, LoadBalancer and \
                externalIP traffic; pods reach ClusterIPs through the socket hooks, untracked)\n"
            .to_owned();
    }
    let mut headers = vec!["NODE", "PROTO", "FROM", "TO", "NEW-FROM", "NEW-TO", "STATE"];
    if wide {
        headers.extend(["DIR", "FLAGS", "IDLE", "SERVICE"]);
    }
    table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_tabled_and_tagged_with_their_node() {
        let flows = json!([{
            "protocol": "TCP", "direction": "forward", "source": "172.30.0.2:40000",
            "destination": "172.30.0.11:30080", "new_source": "172.30.0.11:61000",
            "new_destination": "10.244.2.7:80", "state": "established", "flags": ["snat"],
            "idle_ms": 12, "service_id": 3,
        }]);
        let per_node = [("n1".to_owned(), flows)];
        let text = ct_table(&per_node, true);
        assert!(text.starts_with("NODE"), "{text}");
        assert!(
            text.contains("172.30.0.2:40000") && text.contains("snat") && text.contains("12ms")
        );
        assert_eq!(ct_json(&per_node)[0]["node"], "n1");
        assert!(ct_table(&[("n1".to_owned(), json!([]))], false).starts_with("no tracked flows"));
        assert_eq!(
            query(Some("10.0.0.1"), None, Some(80), Some("tcp"), None),
            "src=10.0.0.1&port=80&proto=tcp"
        );
    }
}
