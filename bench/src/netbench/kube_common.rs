//! What netbench's two kube-proxy rule generators ([`super::kube_iptables`], [`super::kube_nftables`])
//! share: the kube-proxy settings they depend on, their result type, kube-proxy's chain-name hashing
//! (sha256, then Go's `base32.StdEncoding`, truncated) and the order kube-proxy programs endpoints in.
//! Split out of `kube_iptables` to keep each module focused; `kube_iptables` re-exports the public items.

use std::{fmt, fmt::Write as _, io::Write as _};

use sha2::{Digest, Sha256};

use super::catalog::{Backend, Frontend};

/// The kube-proxy settings the generated rules depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeProxyConfig {
    /// The pod CIDR (`--cluster-cidr`): traffic to a ClusterIP from outside it is masqueraded. Empty
    /// means kube-proxy has no local-traffic detector and writes no such rule.
    pub cluster_cidr: String,
    /// The packet-mark bit that flags traffic for masquerading (`--iptables-masquerade-bit`, 0..=31).
    pub masquerade_bit: u8,
}

impl Default for KubeProxyConfig {
    fn default() -> Self {
        Self {
            cluster_cidr: "10.244.0.0/16".to_owned(),
            masquerade_bit: 14,
        }
    }
}

impl KubeProxyConfig {
    /// The masquerade mark as kube-proxy spells it (Go's `%#08x` of `1 << bit`: `0x00004000`).
    pub fn masquerade_mark(&self) -> String {
        format!("{:#010x}", 1u32 << (self.masquerade_bit & 31))
    }
}

/// A generated ruleset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The text to load (`iptables-restore` input, or an `nft -f` script).
    pub text: String,
    /// Rules: iptables `-A` lines; nftables rules plus map and set elements.
    pub rules: usize,
}

/// kube-proxy's `portProtoHash`: the first 16 base32 characters of sha256(servicePortName + protocol
/// [+ endpoint]).
pub(crate) fn port_proto_hash(frontend: &Frontend, endpoint: Option<&Backend>) -> [u8; 16] {
    let mut hasher = HashWriter(Sha256::new());
    write_service_port_name(&mut hasher, frontend);
    hasher.0.update(frontend.protocol.lower().as_bytes());
    if let Some(backend) = endpoint {
        let _ = write!(hasher, "{backend}");
    }
    base32_chars(&hasher.0.finalize())
}

/// kube-proxy's `hashAndTruncate` prefix (nftables mode): the first 8 base32 characters of sha256(`name`).
pub(crate) fn hash8(name: &str) -> [u8; 8] {
    base32_chars(&Sha256::digest(name.as_bytes()))
}

/// Feeds formatted text straight into a hasher.
struct HashWriter(Sha256);

impl fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

/// `ServicePortName.String()` without allocating (same text as [`Frontend::service_port_name`]).
pub(crate) fn write_service_port_name(out: &mut impl fmt::Write, frontend: &Frontend) {
    let _ = write!(out, "{}/{}", frontend.namespace, frontend.name);
    if !frontend.port_name.is_empty() {
        let _ = write!(out, ":{}", frontend.port_name);
    }
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first `N` characters of the base32 (RFC 4648 standard alphabet) encoding of `bytes`
/// (`N * 5 <= bytes.len() * 8`, so no padding is involved).
pub(crate) fn base32_chars<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (index, slot) in out.iter_mut().enumerate() {
        let bit = index * 5;
        let byte = bit / 8;
        let window = u16::from(bytes.get(byte).copied().unwrap_or(0)) << 8
            | u16::from(bytes.get(byte + 1).copied().unwrap_or(0));
        *slot = BASE32_ALPHABET[usize::from((window >> (11 - bit % 8)) & 0x1f)];
    }
    out
}

/// Go's `base32.StdEncoding.EncodeToString`: RFC 4648 base32, padded with `=` to a multiple of 8.
pub fn base32_std(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(5) * 8);
    for chunk in input.chunks(5) {
        let mut group = [0u8; 5];
        group[..chunk.len()].copy_from_slice(chunk);
        let chars: [u8; 8] = base32_chars(&group);
        let used = (chunk.len() * 8).div_ceil(5);
        out.extend(chars[..used].iter().map(|&c| char::from(c)));
        out.extend(std::iter::repeat_n('=', 8 - used));
    }
    out
}

/// `ip:port` in a stack buffer, the key kube-proxy sorts endpoints by.
fn endpoint_key(backend: Backend) -> ([u8; 21], usize) {
    let mut buf = [0u8; 21];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let _ = write!(cursor, "{backend}");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    (buf, len)
}

/// A frontend's endpoints in the order kube-proxy programs them: sorted by their `ip:port` string
/// (`byEndpoint` in `pkg/proxy/endpointslicecache.go`), not by address.
pub(crate) fn kube_endpoint_order(frontend: &Frontend) -> Vec<Backend> {
    let mut backends = frontend.backends.clone();
    backends.sort_by(|a, b| {
        let (ka, la) = endpoint_key(*a);
        let (kb, lb) = endpoint_key(*b);
        ka[..la].cmp(&kb[..lb])
    });
    backends
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::netbench::catalog::Protocol;

    fn frontend(backends: Vec<Backend>) -> Frontend {
        Frontend {
            namespace: "ns".to_owned(),
            name: "svc".to_owned(),
            port_name: String::new(),
            protocol: Protocol::Tcp,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10),
            port: 80,
            node_port: None,
            backends,
        }
    }

    fn backend(ip: [u8; 4], port: u16) -> Backend {
        Backend {
            ip: Ipv4Addr::from(ip),
            port,
        }
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(base32_std(input.as_bytes()), want, "{input:?}");
        }
        let digest = Sha256::digest(b"ns1/svc1:p80tcp");
        assert_eq!(&base32_std(&digest)[..16], "XPGD46QRK7WJZT7O");
    }

    #[test]
    fn masquerade_mark_is_gos_hash_08x() {
        assert_eq!(KubeProxyConfig::default().masquerade_mark(), "0x00004000");
    }

    #[test]
    fn endpoints_are_ordered_by_their_string() {
        let f = frontend(vec![
            backend([10, 0, 0, 9], 80),
            backend([10, 0, 0, 10], 80),
            backend([10, 0, 0, 1], 8080),
        ]);
        let order: Vec<String> = kube_endpoint_order(&f)
            .iter()
            .map(ToString::to_string)
            .collect();
        // A plain string compare: "10.0.0.10:80" sorts before "10.0.0.1:8080" ('0' < ':').
        assert_eq!(order, ["10.0.0.10:80", "10.0.0.1:8080", "10.0.0.9:80"]);
    }
}
