//! The agent protocol: one JSON request line from the CNI plugin, one JSON response line from straitd,
//! over the agent's unix socket. Both sides use these types, so they cannot disagree.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Where straitd listens unless configured otherwise.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/strait/agent.sock";

/// Identifies one attachment, as CNI does: (container id, interface name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentKey {
    pub container_id: String,
    pub ifname: String,
}

impl AttachmentKey {
    /// What is wrong with the key as the CNI spec defines its parts (a container id is
    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; an interface name at most 15 bytes, not `.` or `..`, without `/`,
    /// `:` or whitespace); `None` when it is valid. The agent checks every request with it: its socket
    /// is a boundary of its own, whatever the plugin checked.
    pub fn problem(&self) -> Option<String> {
        if !crate::env::is_valid_identifier(&self.container_id) {
            return Some(format!(
                "container id {:?} is not [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                self.container_id
            ));
        }
        crate::env::ifname_problem(&self.ifname)
            .map(|reason| format!("interface name {:?}: {reason}", self.ifname))
    }
}

/// What the runtime asked for, forwarded to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRequest {
    pub key: AttachmentKey,
    /// Path of the pod's network namespace (CNI_NETNS).
    pub netns: String,
    /// From CNI_ARGS `K8S_POD_NAMESPACE`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// From CNI_ARGS `K8S_POD_NAME`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

/// A request to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Allocate an address, plumb the pod and register the endpoint (CNI ADD).
    Add(AttachmentRequest),
    /// Undo an attachment; succeeds when it does not exist (CNI DEL).
    Del(AttachmentKey),
    /// Verify an attachment is intact (CNI CHECK).
    Check(AttachmentRequest),
    /// Remove every attachment not in `valid` (CNI GC).
    Gc { valid: Vec<AttachmentKey> },
    /// Whether the agent is ready to add pods (CNI STATUS).
    Status,
    /// Every attachment of the node, with pods' container ids and namespace paths: served on the
    /// root-only socket, never over HTTP.
    Attachments,
}

/// A finished attachment, as the agent records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub key: AttachmentKey,
    pub netns: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Host-side veth in the node namespace.
    pub host_ifname: String,
    /// MAC of the host-side veth, `aa:bb:cc:dd:ee:ff`.
    pub host_mac: String,
    /// MAC of the pod's interface.
    pub pod_mac: String,
    /// The pod's address; always a /32.
    pub address: Ipv4Addr,
    /// The link-local gateway the pod routes through.
    pub gateway: Ipv4Addr,
    /// The pod interface's MTU when the agent set one (under VXLAN: the underlay's minus 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// The node's attachments, as [`Request::Attachments`] is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentList {
    /// Attachments in service, ordered by key.
    pub attachments: Vec<Attachment>,
    /// Attachments a DEL (or GC) began to remove but could not finish yet: their address stays
    /// reserved until their link is gone, and the removal is retried.
    #[serde(default)]
    pub deleting: Vec<Attachment>,
}

/// Why the agent refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong (bad netns path, bad names).
    InvalidRequest,
    /// CHECK of an attachment the agent does not have.
    NotFound,
    /// The node's pod CIDR has no free address, or a map is full.
    Exhausted,
    /// The agent is starting or shutting down: try again later.
    TryAgain,
    /// Anything else; the message says what.
    Internal,
}

/// The agent's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Added(Attachment),
    Deleted { existed: bool },
    Checked(Attachment),
    Collected { removed: Vec<AttachmentKey> },
    Status { ready: bool, message: String },
    Attachments(AttachmentList),
    Error { kind: ErrorKind, message: String },
}

/// Formats a MAC address as lowercase colon-separated hex.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_with_its_tag() {
        let request = Request::Del(AttachmentKey {
            container_id: "abc".into(),
            ifname: "eth0".into(),
        });
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(text, r#"{"op":"del","container_id":"abc","ifname":"eth0"}"#);
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
    }

    #[test]
    fn keys_follow_the_cni_specs_rules() {
        let key = |container_id: &str, ifname: &str| AttachmentKey {
            container_id: container_id.into(),
            ifname: ifname.into(),
        };
        for valid in ["a", "0", "c0ffee", "Pod_1.x-y", "9-._"] {
            assert_eq!(key(valid, "eth0").problem(), None, "{valid:?}");
        }
        // Alphanumerics plus '_', '.' and '-', starting with an alphanumeric (ASCII only).
        for invalid in [
            "", "-a", ".a", "_a", "a b", "a/b", "../x", "a:b", "é", "a\n",
        ] {
            let problem = key(invalid, "eth0").problem().expect(invalid);
            assert!(problem.contains("container id"), "{invalid:?}: {problem}");
        }
        for invalid in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-bytes-xx"] {
            let problem = key("c1", invalid).problem().expect(invalid);
            assert!(problem.contains("interface name"), "{invalid:?}: {problem}");
        }
    }

    #[test]
    fn attachment_listing_round_trips_with_its_tag() {
        let request = serde_json::to_string(&Request::Attachments).unwrap();
        assert_eq!(request, r#"{"op":"attachments"}"#);
        let answer = Response::Attachments(AttachmentList::default());
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            text,
            r#"{"result":"attachments","attachments":[],"deleting":[]}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), answer);
    }

    #[test]
    fn unknown_operation_is_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
    }

    #[test]
    fn mac_is_formatted_lowercase_with_colons() {
        assert_eq!(
            format_mac([0xAA, 0xbb, 0, 1, 0x10, 0xff]),
            "aa:bb:00:01:10:ff"
        );
    }
}
