//! The Kubernetes data a zone build could not turn into records, and why. Building never fails:
//! what cannot be named is skipped and reported here, for the caller to log.

/// One piece of a Service or EndpointSlice that produced no record (or a fallback one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordIssue {
    #[error("the Service has no name")]
    MissingServiceName,
    #[error("{what} `{value}` is not a DNS label; {consequence}")]
    InvalidLabel {
        what: &'static str,
        value: String,
        consequence: &'static str,
    },
    #[error("the name of {what} `{value}` would exceed DNS limits; it is skipped")]
    NameTooLong { what: &'static str, value: String },
    #[error("ExternalName `{0}` is not a domain name; the Service has no record")]
    InvalidExternalName(String),
    #[error("cluster IP `{0}` is not an IP address; it is skipped")]
    InvalidClusterIp(String),
    #[error("endpoint address `{0}` is not an IP address; it is skipped")]
    InvalidEndpointAddress(String),
    #[error("port {0} is outside 1-65535; no SRV record uses it")]
    InvalidPort(i32),
}
