//! `strait maps`: every agent's census of its eBPF maps (name, kind, capacity, entries, fill)
//! and the kernel links running each program, as `GET /maps` serves it, in the listing commands'
//! `-o` forms. The table sorts each node's hash, LRU and LPM maps fullest first, so what is close to
//! full shows on top; arrays (full by construction) come last.

use serde_json::{Value, json};

use crate::listing::table;

/// The JSON of every node's census: the agents' answers, in a list.
pub fn maps_json(per_node: &[Value]) -> Value {
    json!(per_node)
}

/// NODE MAP KIND CAPACITY ENTRIES FILL (fill in percent, one decimal); `wide` adds each node's
/// program links after its maps.
pub fn maps_table(per_node: &[Value], wide: bool) -> String {
    let mut rows = Vec::new();
    for census in per_node {
        let node = census["node"].as_str().unwrap_or("?");
        let mut maps: Vec<&Value> = census["maps"].as_array().into_iter().flatten().collect();
        // Tables first, fullest first; arrays (full by construction) after them.
        let is_array = |m: &Value| m["kind"].as_str().unwrap_or("").ends_with("array");
        maps.sort_by(|a, b| {
            let fill = |m: &Value| m["fill"].as_f64().unwrap_or(0.0);
            is_array(a)
                .cmp(&is_array(b))
                .then_with(|| fill(b).total_cmp(&fill(a)))
                .then_with(|| a["name"].as_str().cmp(&b["name"].as_str()))
        });
        for map in maps {
            rows.push(vec![
                node.to_owned(),
                map["name"].as_str().unwrap_or("?").to_owned(),
                map["kind"].as_str().unwrap_or("?").to_owned(),
                map["capacity"].to_string(),
                map["entries"].to_string(),
                format!("{:.1}%", map["fill"].as_f64().unwrap_or(0.0) * 100.0),
            ]);
        }
    }
    let mut out = table(
        &["NODE", "MAP", "KIND", "CAPACITY", "ENTRIES", "FILL"],
        &rows,
    );
    if wide {
        let links: Vec<Vec<String>> = per_node
            .iter()
            .flat_map(|census| {
                let node = census["node"].as_str().unwrap_or("?").to_owned();
                census["programs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |p| {
                        vec![
                            node.clone(),
                            p["program"].as_str().unwrap_or("?").to_owned(),
                            p["links"].to_string(),
                        ]
                    })
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["NODE", "PROGRAM", "LINKS"], &links));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_listed_fullest_first_with_links_when_wide() {
        let census = json!({
            "node": "n1",
            "maps": [
                {"name": "CT_V1", "kind": "lru_hash", "capacity": 100, "entries": 5, "fill": 0.05},
                {"name": "SVC_V1", "kind": "hash", "capacity": 10, "entries": 9, "fill": 0.9},
            ],
            "programs": [{"program": "from_pod", "links": 3}],
        });
        let text = maps_table(std::slice::from_ref(&census), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NODE"), "{text}");
        assert!(
            lines[1].contains("SVC_V1") && lines[1].ends_with("90.0%"),
            "{text}"
        );
        assert!(
            lines[2].contains("CT_V1") && lines[2].ends_with("5.0%"),
            "{text}"
        );
        assert!(!text.contains("from_pod"));
        let wide = maps_table(std::slice::from_ref(&census), true);
        assert!(
            wide.contains("PROGRAM") && wide.contains("from_pod"),
            "{wide}"
        );
        assert_eq!(maps_json(std::slice::from_ref(&census))[0], census);
    }
}
