//! What a `/flows` request asks for: `follow=1` (keep the connection and send verdicts as they come),
//! `since=SEQ` (only verdicts after this sequence number), `limit=N` (at most the last N recent ones),
//! and the filters `namespace`, `pod`, `verdict`, `direction` and `port` ([`FlowFilter`]), all
//! ANDed. Values are percent-decoded (`pod=x%2Fa`); an unknown parameter or a bad value is refused with
//! what was wrong, so a misspelt filter never silently shows everything.

use super::record::FlowRecord;

/// Which verdicts a request wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowFilter {
    /// Either end's pod is in this namespace.
    pub namespace: Option<String>,
    /// Either end is this pod: `namespace/name`, or a name alone (in `namespace` when that is given,
    /// else in any namespace).
    pub pod: Option<String>,
    /// `allowed`, `denied` or `audit`.
    pub verdict: Option<String>,
    /// `ingress` or `egress`.
    pub direction: Option<String>,
    /// The destination port (as judged: after Service translation, the pod's port).
    pub port: Option<u16>,
}

impl FlowFilter {
    /// Whether `record` passes every filter given.
    pub fn matches(&self, record: &FlowRecord) -> bool {
        let pods = [record.from.pod.as_deref(), record.to.pod.as_deref()];
        let namespace_ok = self.namespace.as_deref().is_none_or(|ns| {
            pods.iter()
                .flatten()
                .any(|pod| pod.split_once('/').is_some_and(|(n, _)| n == ns))
        });
        let pod_ok = self.pod.as_deref().is_none_or(|wanted| {
            pods.iter()
                .flatten()
                .any(|pod| match wanted.split_once('/') {
                    Some(_) => *pod == wanted,
                    None => pod.split_once('/').is_some_and(|(_, name)| name == wanted),
                })
        });
        namespace_ok
            && pod_ok
            && self.verdict.as_deref().is_none_or(|v| v == record.verdict)
            && self
                .direction
                .as_deref()
                .is_none_or(|d| d == record.direction)
            && self.port.is_none_or(|p| record.to.port == Some(p))
    }
}

/// A parsed `/flows` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowQuery {
    pub follow: bool,
    pub since: u64,
    pub limit: Option<usize>,
    pub filter: FlowFilter,
}

/// The verdict words a filter takes.
pub const VERDICTS: [&str; 3] = ["allowed", "denied", "audit"];
/// The direction words a filter takes.
pub const DIRECTIONS: [&str; 2] = ["ingress", "egress"];

impl FlowQuery {
    /// Parses the query string of `/flows?...` (without the `?`).
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value =
                percent_decode(value).ok_or_else(|| format!("{key}: bad percent-encoding"))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{key}={value}: {what}"))
            };
            match key {
                "follow" => {
                    out.follow = match value.as_str() {
                        "" | "1" | "true" => true,
                        "0" | "false" => false,
                        _ => return Err(format!("follow={value}: 1 or 0")),
                    };
                }
                "since" => out.since = number("a sequence number")?,
                "limit" => {
                    out.limit = Some(
                        usize::try_from(number("a count")?)
                            .map_err(|_| format!("limit={value}"))?,
                    );
                }
                "namespace" if !value.is_empty() => out.filter.namespace = Some(value),
                "pod" if !value.is_empty() => out.filter.pod = Some(value),
                "verdict" if VERDICTS.contains(&value.as_str()) => out.filter.verdict = Some(value),
                "verdict" => {
                    return Err(format!("verdict={value}: one of {}", VERDICTS.join(", ")));
                }
                "direction" if DIRECTIONS.contains(&value.as_str()) => {
                    out.filter.direction = Some(value);
                }
                "direction" => {
                    return Err(format!(
                        "direction={value}: one of {}",
                        DIRECTIONS.join(", ")
                    ));
                }
                "port" => {
                    out.filter.port = Some(
                        value
                            .parse()
                            .map_err(|_| format!("port={value}: a port number"))?,
                    );
                }
                _ => {
                    return Err(format!(
                        "unknown parameter {key:?}; /flows takes follow, since, limit, namespace, \
                         pod, verdict, direction and port"
                    ));
                }
            }
        }
        // A pod named without its namespace is in the namespace asked for, when one is.
        if let (Some(ns), Some(pod)) = (&out.filter.namespace, &mut out.filter.pod)
            && !pod.contains('/')
        {
            *pod = format!("{ns}/{pod}");
        }
        Ok(out)
    }
}

/// `%XX` and `+` decoded; `None` for a bad escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::record::example as record;

    fn filter(query: &str) -> FlowFilter {
        FlowQuery::parse(query).expect("parses").filter
    }

    #[test]
    fn filters_match_either_end_and_are_anded() {
        let denied = record(Some("x/a"), Some("y/b"), "denied", 80);
        let external = record(None, Some("y/b"), "allowed", 81);
        assert!(filter("").matches(&denied));
        assert!(filter("namespace=x").matches(&denied));
        assert!(filter("namespace=y").matches(&denied));
        assert!(!filter("namespace=x").matches(&external));
        assert!(filter("pod=x%2Fa").matches(&denied));
        assert!(filter("pod=b").matches(&denied), "a name in any namespace");
        assert!(!filter("pod=x/b").matches(&denied));
        assert!(
            !filter("namespace=x&pod=b").matches(&denied),
            "a bare name is in the namespace asked for"
        );
        assert!(filter("namespace=y&pod=b").matches(&denied));
        assert!(filter("verdict=denied&port=80").matches(&denied));
        assert!(!filter("verdict=denied&port=81").matches(&denied));
        assert!(!filter("verdict=allowed").matches(&denied));
        assert!(
            !filter("port=40000").matches(&denied),
            "the destination port only"
        );
        assert!(filter("direction=ingress").matches(&denied));
        assert!(!filter("direction=egress").matches(&denied));
    }

    #[test]
    fn the_query_is_parsed_and_mistakes_are_refused() {
        let query = FlowQuery::parse("follow=1&since=41&limit=10&verdict=audit").unwrap();
        assert!(query.follow);
        assert_eq!((query.since, query.limit), (41, Some(10)));
        assert_eq!(query.filter.verdict.as_deref(), Some("audit"));
        assert!(!FlowQuery::parse("follow=0").unwrap().follow);
        assert!(FlowQuery::parse("follow").unwrap().follow);
        for bad in [
            "verdict=dropped",
            "port=http",
            "port=70000",
            "direction=up",
            "nmespace=x",
            "pod=%zz",
            "since=-1",
            "follow=yes",
        ] {
            assert!(FlowQuery::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(percent_decode("%4"), None);
    }
}
