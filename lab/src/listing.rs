//! Output of the listing commands (`status`, `list`, `endpoints`, `metrics`), as kubectl's `-o`: an
//! aligned table by default, `wide` for more columns, `json` or `yaml` for machines. Also the labs on this
//! machine (`strait lab list`), and parsing of the agents' Prometheus text into rows.

use std::{collections::BTreeMap, fmt::Write as _, fs, str::FromStr};

use serde_json::{Value, json};
use strait_cni::protocol::Attachment;

use crate::{
    names::{LAB_RUN_DIR, LabNames},
    process,
    state::LabState,
};

/// An output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// An aligned table (the default).
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    Json,
    Yaml,
}

impl FromStr for Output {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Output::Table),
            "wide" => Ok(Output::Wide),
            "json" => Ok(Output::Json),
            "yaml" => Ok(Output::Yaml),
            other => Err(format!(
                "unknown output format {other:?}: use json, yaml or wide (without -o: a table)"
            )),
        }
    }
}

impl Output {
    /// Renders `value` as JSON or YAML, or calls `table` with whether the table is wide.
    pub fn render(self, value: &Value, table: impl FnOnce(bool) -> String) -> String {
        match self {
            Output::Table => table(false),
            Output::Wide => table(true),
            Output::Json => {
                let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
                text.push('\n');
                text
            }
            Output::Yaml => serde_yaml_ng::to_string(value).unwrap_or_default(),
        }
    }
}

/// An aligned table: columns separated by three spaces (as kubectl's), the last one not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One lab found on this machine.
#[derive(Clone, Debug)]
pub struct LabSummary {
    pub name: String,
    /// Its state, unless the lab left only leftovers (a crash before its state was written).
    pub state: Option<LabState>,
}

/// Every lab with a state directory under [`LAB_RUN_DIR`], by name.
pub fn labs() -> Vec<LabSummary> {
    let mut names: Vec<String> = fs::read_dir(LAB_RUN_DIR)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let names = LabNames::new(&name).ok()?;
            let state = LabState::load(&names.run_dir().join("state.json")).ok();
            Some(LabSummary { name, state })
        })
        .collect()
}

/// Agents of a lab that are running.
fn agents_running(state: &LabState) -> usize {
    state
        .nodes
        .iter()
        .filter(|n| process::alive(n.agent_pid))
        .count()
}

/// The JSON view of the labs.
pub fn labs_json(labs: &[LabSummary]) -> Value {
    Value::Array(
        labs.iter()
            .map(|lab| match &lab.state {
                Some(state) => json!({
                    "name": lab.name,
                    "nodes": state.nodes.len(),
                    "agents_running": agents_running(state),
                    "pods": state.pods.len(),
                    "services": state.services.len(),
                    "namespaces": state.namespaces.keys().collect::<Vec<_>>(),
                    "state_dir": LabNames::new(&lab.name).map(|n| n.run_dir()).ok(),
                }),
                None => json!({ "name": lab.name, "state": null }),
            })
            .collect(),
    )
}

/// The table view of the labs; a lab without state is shown with the command that cleans it up.
pub fn labs_table(labs: &[LabSummary], wide: bool) -> String {
    let mut headers = vec!["NAME", "NODES", "AGENTS", "PODS", "SERVICES"];
    if wide {
        headers.push("STATE DIR");
    }
    let rows: Vec<Vec<String>> = labs
        .iter()
        .map(|lab| {
            let mut row = match &lab.state {
                Some(state) => vec![
                    lab.name.clone(),
                    state.nodes.len().to_string(),
                    format!("{}/{} running", agents_running(state), state.nodes.len()),
                    state.pods.len().to_string(),
                    state.services.len().to_string(),
                ],
                None => vec![
                    lab.name.clone(),
                    "-".into(),
                    format!(
                        "no state: clean up with `strait lab down --name {}`",
                        lab.name
                    ),
                    "-".into(),
                    "-".into(),
                ],
            };
            if wide {
                row.push(format!("{LAB_RUN_DIR}/{}", lab.name));
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return format!("no labs (none under {LAB_RUN_DIR}); start one with `strait lab up`\n");
    }
    table(&headers, &rows)
}

/// The JSON view of the agents' endpoints: every attachment with its `node`.
pub fn endpoints_json(per_node: &[(String, Vec<Attachment>)]) -> Value {
    Value::Array(
        per_node
            .iter()
            .flat_map(|(node, attachments)| {
                attachments.iter().map(move |a| {
                    let mut value = serde_json::to_value(a).unwrap_or_default();
                    if let Value::Object(map) = &mut value {
                        map.insert("node".into(), json!(node));
                    }
                    value
                })
            })
            .collect(),
    )
}

/// The table view of the agents' endpoints.
pub fn endpoints_table(per_node: &[(String, Vec<Attachment>)], wide: bool) -> String {
    let mut headers = vec!["NODE", "POD", "IP", "HOST VETH"];
    if wide {
        headers.extend(["HOST MAC", "POD MAC", "GATEWAY", "CONTAINER", "NETNS"]);
    }
    let mut rows = Vec::new();
    for (node, attachments) in per_node {
        for a in attachments {
            let pod = match (&a.pod_namespace, &a.pod_name) {
                (Some(ns), Some(name)) => format!("{ns}/{name}"),
                _ => "-".to_owned(),
            };
            let mut row = vec![
                node.clone(),
                pod,
                a.address.to_string(),
                a.host_ifname.clone(),
            ];
            if wide {
                row.extend([
                    a.host_mac.clone(),
                    a.pod_mac.clone(),
                    a.gateway.to_string(),
                    a.key.container_id.chars().take(12).collect(),
                    a.netns.clone(),
                ]);
            }
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return "no endpoints\n".to_owned();
    }
    table(&headers, &rows)
}

/// One series of an agent's metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub node: String,
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    /// The value as the agent wrote it.
    pub value: String,
    /// From the metric's `# TYPE` line (`counter`, `gauge`).
    pub kind: Option<String>,
}

/// The series of an agent's Prometheus text, zero-valued ones only with `all_series`.
pub fn parse_metrics(node: &str, text: &str, all_series: bool) -> Vec<Sample> {
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((metric, kind)) = rest.split_once(' ') {
                kinds.insert(metric, kind.trim());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((metric, labels, value)) = split_sample(line) else {
            continue;
        };
        if !all_series && value.parse::<f64>().is_ok_and(|v| v == 0.0) {
            continue;
        }
        samples.push(Sample {
            node: node.to_owned(),
            kind: kinds.get(metric).map(|k| (*k).to_owned()),
            metric: metric.to_owned(),
            labels,
            value: value.to_owned(),
        });
    }
    samples
}

/// `name{a="x",b="y"} value` (the labels optional) into its parts; `None` for a line that is not one.
fn split_sample(line: &str) -> Option<(&str, BTreeMap<String, String>, &str)> {
    let name_end = line.find(['{', ' '])?;
    let metric = &line[..name_end];
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut key = String::new();
        let close = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            '"' => break,
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        };
        rest = &inner[close + 1..];
    }
    let value = rest.split_whitespace().next()?;
    Some((metric, labels, value))
}

/// The JSON view of metric samples (values as numbers where they are).
pub fn metrics_json(samples: &[Sample]) -> Value {
    Value::Array(
        samples
            .iter()
            .map(|s| {
                let value = s
                    .value
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| json!(s.value), Value::Number);
                json!({
                    "node": s.node,
                    "metric": s.metric,
                    "type": s.kind,
                    "labels": s.labels,
                    "value": value,
                })
            })
            .collect(),
    )
}

/// The table view of metric samples; the `node` label is the NODE column.
pub fn metrics_table(samples: &[Sample], wide: bool) -> String {
    let mut headers = vec!["NODE", "METRIC", "LABELS", "VALUE"];
    if wide {
        headers.push("TYPE");
    }
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "node")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let mut row = vec![
                s.node.clone(),
                s.metric.clone(),
                if labels.is_empty() {
                    "-".to_owned()
                } else {
                    labels.join(",")
                },
                s.value.clone(),
            ];
            if wide {
                row.push(s.kind.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    if rows.is_empty() {
        return "no non-zero series (--all-series shows every series)\n".to_owned();
    }
    table(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_formats_parse_and_render() {
        assert_eq!("wide".parse::<Output>(), Ok(Output::Wide));
        let error = "xml".parse::<Output>().unwrap_err();
        assert!(error.contains("json, yaml or wide"), "{error}");
        let value = json!({"a": [1, 2]});
        assert_eq!(
            Output::Json.render(&value, |_| unreachable!()),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
        );
        assert_eq!(
            Output::Yaml.render(&value, |_| unreachable!()),
            "a:\n- 1\n- 2\n"
        );
        assert_eq!(
            Output::Wide.render(&value, |wide| format!("{wide}")),
            "true"
        );
        assert_eq!(
            Output::Table.render(&value, |wide| format!("{wide}")),
            "false"
        );
    }

    #[test]
    fn tables_align_columns_and_leave_the_last_unpadded() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "v".to_owned(), "y".to_owned()],
        ];
        assert_eq!(
            table(&["K", "V", "LAST"], &rows),
            "K      V            LAST\na      long value   x\nbbbb   v            y\n"
        );
    }

    const METRICS: &str = "# HELP strait_packets_total Packets.
# TYPE strait_packets_total counter
strait_packets_total{node=\"n1\",program=\"from-pod\",reason=\"a \\\"quoted\\\", one\"} 12
strait_packets_total{node=\"n1\",program=\"from-pod\",reason=\"zero\"} 0
# TYPE strait_up gauge
strait_up 1
";

    #[test]
    fn metrics_parse_into_series_without_zeros_unless_asked() {
        let samples = parse_metrics("n1", METRICS, false);
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!(samples[0].metric, "strait_packets_total");
        assert_eq!(samples[0].labels["reason"], "a \"quoted\", one");
        assert_eq!(samples[0].labels["program"], "from-pod");
        assert_eq!(samples[0].value, "12");
        assert_eq!(samples[0].kind.as_deref(), Some("counter"));
        assert_eq!(samples[1].metric, "strait_up");
        assert!(samples[1].labels.is_empty());
        assert_eq!(samples[1].kind.as_deref(), Some("gauge"));
        assert_eq!(parse_metrics("n1", METRICS, true).len(), 3);

        let text = metrics_table(&samples, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("NODE") && lines[0].ends_with("VALUE"),
            "{text}"
        );
        assert!(
            lines[1].contains("program=from-pod,reason=a \"quoted\", one")
                && lines[1].ends_with(" 12"),
            "{text}"
        );
        assert!(
            !lines[1].contains("node="),
            "the node label is the NODE column: {text}"
        );
        assert!(
            metrics_table(&samples, true)
                .lines()
                .next()
                .unwrap()
                .ends_with("TYPE")
        );
        let json = metrics_json(&samples);
        assert_eq!(json[0]["value"], 12.0);
        assert_eq!(json[0]["labels"]["node"], "n1");
    }

    #[test]
    fn endpoints_list_each_agents_pods() {
        let body = r#"[{"key": {"container_id": "0123456789abcdef", "ifname": "eth0"},
            "netns": "/run/netns/p", "pod_namespace": "default", "pod_name": "client",
            "host_ifname": "st0123", "host_mac": "aa:aa:aa:aa:aa:aa", "pod_mac": "bb:bb:bb:bb:bb:bb",
            "address": "10.244.1.4", "gateway": "169.254.1.1"}]"#;
        let attachments: Vec<Attachment> = serde_json::from_str(body).unwrap();
        let per_node = vec![("n1".to_owned(), attachments)];
        let text = endpoints_table(&per_node, false);
        assert_eq!(
            text.lines().nth(1),
            Some("n1     default/client   10.244.1.4   st0123")
        );
        let wide = endpoints_table(&per_node, true);
        assert!(
            wide.contains("0123456789ab ") && !wide.contains("0123456789abc"),
            "{wide}"
        );
        let json = endpoints_json(&per_node);
        assert_eq!(json[0]["node"], "n1");
        assert_eq!(json[0]["address"], "10.244.1.4");
    }
}
