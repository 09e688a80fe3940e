//! A small Prometheus HTTP API client for `strait report`: `query_range` over plain HTTP/1.0, from
//! this process's network namespace or from a lab's (where a lab's Prometheus listens).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream, ToSocketAddrs as _},
    path::PathBuf,
    time::Duration,
};

use serde_json::Value;

use super::ReportError;

/// One series of a range query: its labels and its points (seconds since the epoch, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: serde_json::Map<String, Value>,
    pub points: Vec<(f64, f64)>,
}

/// Where Prometheus is, and the namespace to reach it from.
#[derive(Clone, Debug)]
pub struct Prometheus {
    addr: SocketAddr,
    netns: Option<PathBuf>,
}

impl Prometheus {
    /// `url` is `http://HOST:PORT` (a path is not supported); `netns` the namespace to connect from.
    pub fn new(url: &str, netns: Option<PathBuf>) -> Result<Self, ReportError> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| {
                ReportError::Usage(format!("{url}: only http://HOST:PORT is supported"))
            })?
            .trim_end_matches('/');
        if host.contains('/') {
            return Err(ReportError::Usage(format!(
                "{url}: give Prometheus's address without a path"
            )));
        }
        let addr = host
            .to_socket_addrs()
            .map_err(|e| ReportError::Usage(format!("{url}: {e}")))?
            .next()
            .ok_or_else(|| ReportError::Usage(format!("{url}: no address")))?;
        Ok(Self { addr, netns })
    }

    /// `query_range` of `expr` from `start` to `end` (seconds since the epoch) every `step` seconds.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<Series>, ReportError> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            encode(expr)
        );
        let answer = self.get(&path)?;
        if answer["status"] != "success" {
            return Err(ReportError::Prometheus(format!(
                "{expr}: {}",
                answer["error"].as_str().unwrap_or("failed")
            )));
        }
        let result = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(result
            .into_iter()
            .map(|series| Series {
                labels: series["metric"].as_object().cloned().unwrap_or_default(),
                points: series["values"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        let t = p[0].as_f64()?;
                        let v = p[1].as_str()?.parse::<f64>().ok()?;
                        v.is_finite().then_some((t, v))
                    })
                    .collect(),
            })
            .collect())
    }

    fn get(&self, path: &str) -> Result<Value, ReportError> {
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: prometheus\r\nConnection: close\r\n\r\n");
        let addr = self.addr;
        let exchange = move || -> std::io::Result<String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            stream.write_all(request.as_bytes())?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        };
        let text = match &self.netns {
            Some(ns) => strait_dataplane::netns::run_in(ns, exchange)
                .map_err(|e| ReportError::Prometheus(format!("entering {}: {e}", ns.display())))?,
            None => exchange(),
        }
        .map_err(|e| ReportError::Prometheus(format!("asking {addr}: {e}")))?;
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).map_err(|e| {
            ReportError::Prometheus(format!(
                "{addr} answered what is not JSON ({e}): {}",
                text.lines().next().unwrap_or_default()
            ))
        })
    }
}

/// Percent-encodes a query parameter.
pub fn encode(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_queries_are_read_and_encoded() {
        assert!(Prometheus::new("http://127.0.0.1:9090", None).is_ok());
        assert!(Prometheus::new("https://127.0.0.1:9090", None).is_err());
        assert!(Prometheus::new("http://127.0.0.1:9090/prom", None).is_err());
        assert_eq!(encode("sum(a{b=\"c\"})"), "sum%28a%7Bb%3D%22c%22%7D%29");
    }
}
