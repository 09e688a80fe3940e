//! `GET /dns/records`: the cluster zone this node answers, one JSON object per record (name, type,
//! TTL, data, and whether the kernel fast path holds it), filtered by the agent (`name`: a part of
//! the name, case-insensitive; `type`: A, AAAA, SRV, PTR, CNAME, TXT, SOA, NS).

use std::collections::HashSet;

use serde_json::{Value, json};
use strait_dns::Zone;

/// A `/dns/records` query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordQuery {
    pub name: Option<String>,
    pub record_type: Option<String>,
}

impl RecordQuery {
    /// Reads `name=..&type=..`; anything else is refused with what is accepted.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "name" => out.name = Some(value.to_ascii_lowercase()),
                "type" => {
                    let upper = value.to_ascii_uppercase();
                    if !matches!(
                        upper.as_str(),
                        "A" | "AAAA" | "SRV" | "PTR" | "CNAME" | "TXT" | "SOA" | "NS"
                    ) {
                        return Err(format!(
                            "type={value}: use A, AAAA, SRV, PTR, CNAME, TXT, SOA or NS"
                        ));
                    }
                    out.record_type = Some(upper);
                }
                other => return Err(format!("unknown filter {other:?}: use name or type")),
            }
        }
        Ok(out)
    }
}

/// The zone's records that pass `query`, as JSON.
pub fn records_json(zone: &Zone, query: &RecordQuery) -> Value {
    let hot: HashSet<String> = zone
        .hot_a_records()
        .map(|(name, _, _)| name.to_ascii().to_ascii_lowercase())
        .collect();
    let list: Vec<Value> = zone
        .records()
        .into_iter()
        .filter_map(|record| {
            let name = record.name.to_ascii();
            let record_type = record.record_type().to_string();
            let keep = query
                .name
                .as_deref()
                .is_none_or(|part| name.to_ascii_lowercase().contains(part))
                && query
                    .record_type
                    .as_deref()
                    .is_none_or(|t| record_type == t);
            keep.then(|| {
                let in_kernel = record_type == "A" && hot.contains(&name.to_ascii_lowercase());
                json!({
                    "name": name,
                    "type": record_type,
                    "ttl": record.ttl,
                    "data": record.data.to_string(),
                    "fast_path": in_kernel,
                })
            })
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_and_refused_with_what_is_accepted() {
        assert_eq!(
            RecordQuery::parse("name=Web&type=srv").unwrap(),
            RecordQuery {
                name: Some("web".into()),
                record_type: Some("SRV".into())
            }
        );
        assert!(
            RecordQuery::parse("type=MX")
                .unwrap_err()
                .contains("A, AAAA")
        );
        assert!(
            RecordQuery::parse("colour=1")
                .unwrap_err()
                .contains("name or type")
        );
    }

    #[test]
    fn the_apex_is_listed_and_filtered() {
        let zone = Zone::with_serial(strait_dns::ZoneConfig::default(), 7, []);
        let all = records_json(&zone, &RecordQuery::default());
        let types: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert!(types.contains(&"SOA") && types.contains(&"TXT"), "{all}");
        let soa = records_json(
            &zone,
            &RecordQuery {
                name: None,
                record_type: Some("SOA".into()),
            },
        );
        assert_eq!(soa.as_array().unwrap().len(), 1, "{soa}");
        assert_eq!(soa[0]["name"], "cluster.local.");
        assert_eq!(soa[0]["fast_path"], false);
    }
}
