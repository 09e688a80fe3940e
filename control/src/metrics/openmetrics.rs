//! OpenMetrics 1.0 exposition of the agent's metrics, for scrapers that ask for it (`Accept:
//! application/openmetrics-text`, as Prometheus does by default): the same samples as the Prometheus
//! text, with counter families named without their `_total` suffix, quotes escaped in HELP, and the
//! closing `# EOF`.

use std::{collections::HashSet, fmt::Write as _};

/// The content type of an OpenMetrics answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of a Prometheus text answer.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request head's `Accept` header asks for OpenMetrics (with a weight above zero).
pub fn wanted(head: &str) -> bool {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .flat_map(|(_, value)| value.split(','))
        .any(|choice| {
            let mut parts = choice.split(';').map(str::trim);
            parts.next() == Some("application/openmetrics-text")
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
}

/// The OpenMetrics form of Prometheus exposition `text` (as the agent renders it: every family with
/// HELP then TYPE, its samples together).
pub fn from_prometheus_text(text: &str) -> String {
    let counters: HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| kind.trim() == "counter")
        .map(|(name, _)| name)
        .collect();
    let family = |name: &str| -> String {
        if counters.contains(name) {
            name.strip_suffix("_total").unwrap_or(name).to_owned()
        } else {
            name.to_owned()
        }
    };
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let _ = writeln!(out, "# HELP {} {}", family(name), help.replace('"', "\\\""));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = if kind == "untyped" { "unknown" } else { kind };
            let _ = writeln!(out, "# TYPE {} {kind}", family(name));
        } else if !line.is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lose_their_suffix_in_metadata_only() {
        let text = "# HELP a_total Things \"seen\".\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                    # HELP b Level.\n# TYPE b gauge\nb 2\n";
        assert_eq!(
            from_prometheus_text(text),
            "# HELP a Things \\\"seen\\\".\n# TYPE a counter\na_total{x=\"1\"} 3\n\
             # HELP b Level.\n# TYPE b gauge\nb 2\n# EOF\n"
        );
    }

    #[test]
    fn accept_headers_are_read_as_prometheus_sends_them() {
        let prometheus = "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,\
                          application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";
        assert!(wanted(prometheus));
        assert!(!wanted("GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n"));
        assert!(!wanted("GET /metrics HTTP/1.1\r\n"));
        assert!(!wanted(
            "GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text; q=0\r\n"
        ));
    }
}
