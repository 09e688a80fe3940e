//! `strait dns records`: the cluster zone each agent answers, as `GET /dns/records` serves it, in
//! the listing commands' `-o` forms; the PATH column says whether the kernel fast path answers the
//! record (`kernel`) or only the node's DNS server does (`server`).

use serde_json::{Value, json};

use crate::listing::table;

/// Every node's records, each with its `node`.
pub fn records_json(per_node: &[(String, Value)]) -> Value {
    let mut out = Vec::new();
    for (node, records) in per_node {
        for record in records.as_array().into_iter().flatten() {
            let mut record = record.clone();
            if let Some(object) = record.as_object_mut() {
                object.insert("node".into(), json!(node));
            }
            out.push(record);
        }
    }
    Value::Array(out)
}

/// NODE NAME TYPE TTL DATA PATH; without `wide`, the records every node answers alike are shown
/// once (NODE `*`), as the zone is the same on every node once it has synced.
pub fn records_table(per_node: &[(String, Value)], wide: bool) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let row = |node: &str, r: &Value| {
        vec![
            node.to_owned(),
            text(&r["name"]),
            text(&r["type"]),
            r["ttl"].to_string(),
            text(&r["data"]),
            if r["fast_path"] == true {
                "kernel".to_owned()
            } else {
                "server".to_owned()
            },
        ]
    };
    let mut rows = Vec::new();
    let same = per_node.windows(2).all(|w| w[0].1 == w[1].1);
    if !wide && same && !per_node.is_empty() {
        for record in per_node[0].1.as_array().into_iter().flatten() {
            rows.push(row("*", record));
        }
    } else {
        for (node, records) in per_node {
            for record in records.as_array().into_iter().flatten() {
                rows.push(row(node, record));
            }
        }
    }
    if rows.is_empty() {
        return "no records match\n".to_owned();
    }
    table(&["NODE", "NAME", "TYPE", "TTL", "DATA", "PATH"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_zones_are_shown_once_unless_wide() {
        let records = json!([
            {"name": "web.y.svc.cluster.local.", "type": "A", "ttl": 30, "data": "10.96.0.20", "fast_path": true},
            {"name": "_http._tcp.web.y.svc.cluster.local.", "type": "SRV", "ttl": 30, "data": "0 100 80 web.y.svc.cluster.local.", "fast_path": false},
        ]);
        let per_node = [
            ("n1".to_owned(), records.clone()),
            ("n2".to_owned(), records),
        ];
        let text = records_table(&per_node, false);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.lines().nth(1).unwrap().starts_with('*'));
        assert!(text.contains("kernel") && text.contains("server"));
        assert_eq!(records_table(&per_node, true).lines().count(), 5);
        assert_eq!(records_json(&per_node)[3]["node"], "n2");
    }
}
