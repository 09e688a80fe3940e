//! `strait status`: one line per agent from what it serves: health, version, pods, Services and
//! frontends, how long ago the last sync finished, and its fullest map. An agent that does not
//! answer is a row saying why, not an error: the others are still shown.

use serde_json::{Value, json};

use crate::listing::table;

/// One agent's answers: `/healthz`, `/syncz`, `/metrics` (text), `/maps` (JSON), each as it came.
#[derive(Clone, Debug)]
pub struct Answers {
    pub node: String,
    pub healthz: Result<String, String>,
    pub syncz: Option<String>,
    pub metrics: Option<String>,
    pub maps: Option<Value>,
}

/// The first sample of `family` (no labels other than `node`) in exposition `text`.
fn sample(text: &str, family: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// The status of one agent, at `now_ms` (ms since the epoch).
pub fn status_json(answers: &Answers, now_ms: u64) -> Value {
    let metrics = answers.metrics.as_deref().unwrap_or("");
    let version = metrics
        .lines()
        .find(|l| l.starts_with("strait_build_info{"))
        .and_then(|l| l.split("version=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned);
    let last_sync_ms = answers
        .syncz
        .as_deref()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0);
    let fullest = answers.maps.as_ref().and_then(|maps| {
        maps["maps"]
            .as_array()?
            .iter()
            .filter(|m| !m["kind"].as_str().unwrap_or("").ends_with("array"))
            .max_by(|a, b| {
                a["fill"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["fill"].as_f64().unwrap_or(0.0))
            })
            .cloned()
    });
    json!({
        "node": answers.node,
        "healthy": answers.healthz.is_ok(),
        "problem": answers.healthz.as_ref().err(),
        "version": version,
        "endpoints": sample(metrics, "strait_endpoints"),
        "services": sample(metrics, "strait_services"),
        "frontends": sample(metrics, "strait_service_frontends"),
        "last_sync_age_s": last_sync_ms.map(|ms| now_ms.saturating_sub(ms) / 1000),
        "fullest_map": fullest.as_ref().map(|m| m["name"].clone()),
        "fullest_fill": fullest.as_ref().map(|m| m["fill"].clone()),
    })
}

/// NODE HEALTH VERSION PODS SERVICES FRONTENDS SYNCED FULLEST-MAP.
pub fn status_table(rows: &[Value]) -> String {
    let num = |v: &Value| v.as_f64().map_or("-".to_owned(), |n| format!("{n}"));
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s["node"].as_str().unwrap_or("?").to_owned(),
                if s["healthy"] == true {
                    "ok".to_owned()
                } else {
                    format!("down: {}", s["problem"].as_str().unwrap_or("?"))
                },
                s["version"].as_str().unwrap_or("-").to_owned(),
                num(&s["endpoints"]),
                num(&s["services"]),
                num(&s["frontends"]),
                s["last_sync_age_s"]
                    .as_u64()
                    .map_or("never".to_owned(), |a| format!("{a}s ago")),
                match (s["fullest_map"].as_str(), s["fullest_fill"].as_f64()) {
                    (Some(name), Some(fill)) => format!("{name} {:.1}%", fill * 100.0),
                    _ => "-".to_owned(),
                },
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "HEALTH",
            "VERSION",
            "PODS",
            "SERVICES",
            "FRONTENDS",
            "SYNCED",
            "FULLEST-MAP",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_is_summed_up_and_a_silent_one_says_why() {
        let answers = Answers {
            node: "n1".into(),
            healthz: Ok("ok\n".into()),
            syncz: Some("1000000\n".into()),
            metrics: Some(
                "strait_endpoints{node=\"n1\"} 3\nstrait_services{node=\"n1\"} 5\n\
                 strait_service_frontends{node=\"n1\"} 9\n\
                 strait_build_info{node=\"n1\",version=\"0.1.0\"} 1\n"
                    .into(),
            ),
            maps: Some(json!({"maps": [
                {"name": "STATS_V1", "kind": "percpu_array", "fill": 1.0},
                {"name": "CT_V1", "kind": "lru_hash", "fill": 0.25},
            ]})),
        };
        let ok = status_json(&answers, 1_007_000);
        assert_eq!(ok["version"], "0.1.0");
        assert_eq!(ok["endpoints"], 3.0);
        assert_eq!(ok["last_sync_age_s"], 7);
        assert_eq!(ok["fullest_map"], "CT_V1");
        let down = status_json(
            &Answers {
                node: "n2".into(),
                healthz: Err("connection refused".into()),
                syncz: None,
                metrics: None,
                maps: None,
            },
            0,
        );
        let text = status_table(&[ok, down]);
        assert!(
            text.contains("CT_V1 25.0%") && text.contains("7s ago"),
            "{text}"
        );
        assert!(
            text.contains("down: connection refused") && text.contains("never"),
            "{text}"
        );
    }
}
