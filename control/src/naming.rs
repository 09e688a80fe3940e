//! Names the agent derives: host-side veth names from (container id, interface), stable across restarts
//! and short enough for the kernel's 15-byte limit.

use strait_cni::protocol::AttachmentKey;

/// Prefix of every host-side veth strait creates.
pub const HOST_VETH_PREFIX: &str = "st";

/// Host-side veth name for an attachment: `st` + 12 hex digits of a 64-bit FNV-1a hash (14 bytes).
pub fn host_ifname(key: &AttachmentKey) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key
        .container_id
        .bytes()
        .chain([0])
        .chain(key.ifname.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{HOST_VETH_PREFIX}{:012x}", hash & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, ifname: &str) -> AttachmentKey {
        AttachmentKey {
            container_id: id.into(),
            ifname: ifname.into(),
        }
    }

    #[test]
    fn names_fit_the_kernel_limit_and_are_stable() {
        let name = host_ifname(&key("0123456789abcdef0123456789abcdef", "eth0"));
        assert_eq!(name.len(), 14);
        assert!(name.starts_with("st"));
        assert_eq!(
            name,
            host_ifname(&key("0123456789abcdef0123456789abcdef", "eth0"))
        );
    }

    #[test]
    fn different_attachments_get_different_names() {
        assert_ne!(
            host_ifname(&key("a", "eth0")),
            host_ifname(&key("a", "eth1"))
        );
        assert_ne!(
            host_ifname(&key("a", "eth0")),
            host_ifname(&key("b", "eth0"))
        );
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(host_ifname(&key("ab", "c")), host_ifname(&key("a", "bc")));
    }
}
