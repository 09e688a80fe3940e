//! What the cluster zone is configured with: its domain, the TTL of its records and whether pod
//! names (`a-b-c-d.<ns>.pod.<zone>`) resolve.

use hickory_proto::rr::Name;

use crate::names;

/// The cluster domain kubeadm and most distributions use.
pub const DEFAULT_DOMAIN: &str = "cluster.local.";

/// The record TTL kubeadm's Corefile sets (`ttl 30`).
pub const DEFAULT_TTL: u32 = 30;

/// Whether `a-b-c-d.<ns>.pod.<zone>` names resolve (CoreDNS's `pods` option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodRecords {
    /// Every pod name is NXDOMAIN (`pods disabled`).
    Disabled,
    /// Any well-formed dashed address resolves to itself, in any namespace, without checking that
    /// such a pod exists (`pods insecure`, kubeadm's default, kept for kube-dns compatibility).
    #[default]
    Insecure,
}

/// The zone's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The cluster domain (`cluster.local.` by default); compared case-insensitively, and treated as
    /// fully qualified whether or not it is.
    pub domain: Name,
    /// TTL of every Service, endpoint, pod and SOA record (`30` by default, as kubeadm configures).
    pub ttl: u32,
    /// Whether pod names resolve.
    pub pods: PodRecords,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        Self {
            domain: Name::from_ascii(DEFAULT_DOMAIN).expect("the default domain is a valid name"),
            ttl: DEFAULT_TTL,
            pods: PodRecords::default(),
        }
    }
}

impl ZoneConfig {
    /// The default configuration for another cluster domain (e.g. kubelet's `--cluster-domain`),
    /// with or without its trailing dot.
    pub fn for_domain(domain: &str) -> Result<Self, ConfigError> {
        let parsed = Name::from_ascii(domain).map_err(|error| ConfigError::InvalidDomain {
            domain: domain.to_owned(),
            reason: error.to_string(),
        })?;
        let canonical = names::canonical(&parsed);
        if canonical.is_root() {
            return Err(ConfigError::RootDomain);
        }
        Ok(Self {
            domain: canonical,
            ..Self::default()
        })
    }

    /// The domain in canonical form: lowercase and fully qualified.
    pub fn canonical_domain(&self) -> Name {
        names::canonical(&self.domain)
    }
}

/// A cluster domain that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cluster domain `{domain}` is not a domain name: {reason}")]
    InvalidDomain { domain: String, reason: String },
    #[error("the cluster domain cannot be the DNS root")]
    RootDomain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_canonicalised_and_validated() {
        let config = ZoneConfig::for_domain("Example.Internal").expect("valid domain");
        assert_eq!(config.domain.to_ascii(), "example.internal.");
        assert!(config.domain.is_fqdn());
        assert_eq!(config.ttl, DEFAULT_TTL);
        assert_eq!(ZoneConfig::for_domain("."), Err(ConfigError::RootDomain));
        assert!(matches!(
            ZoneConfig::for_domain("bad..name"),
            Err(ConfigError::InvalidDomain { .. })
        ));
    }

    #[test]
    fn default_is_kubeadm() {
        let config = ZoneConfig::default();
        assert_eq!(config.domain.to_ascii(), DEFAULT_DOMAIN);
        assert_eq!(config.pods, PodRecords::Insecure);
    }
}
