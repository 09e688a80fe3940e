//! Flannel's Node annotations (prefix `flannel.alpha.coreos.com/`, as flanneld's kube subnet manager
//! writes them), which strait reads and publishes so strait and Flannel nodes find each other through
//! the API server alone, and the MAC text form they use.

use std::net::Ipv4Addr;

/// The backend type (`vxlan`).
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// The backend's data: `{"VNI":1,"VtepMAC":"0e:53:..."}`.
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// The node's address for tunnels.
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// `true` when the subnet came from the Node's podCIDR (kube subnet manager).
pub const KUBE_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|part| u8::from_str_radix(part, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// `bytes` as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(bytes: [u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The Flannel annotations a node with address `node_ip` and VTEP MAC `mac` publishes (VNI `vni`).
pub fn flannel_annotations(node_ip: Ipv4Addr, mac: [u8; 6], vni: u32) -> [(String, String); 4] {
    [
        (BACKEND_TYPE.to_owned(), "vxlan".to_owned()),
        (
            BACKEND_DATA.to_owned(),
            serde_json::json!({ "VNI": vni, "VtepMAC": format_mac(mac) }).to_string(),
        ),
        (PUBLIC_IP.to_owned(), node_ip.to_string()),
        (KUBE_SUBNET_MANAGER.to_owned(), "true".to_owned()),
    ]
}
