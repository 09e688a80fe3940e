//! What the plugin prints to stdout: the ADD success result, the VERSION reply and the error
//! object, each shaped as the CNI spec (and the configured cniVersion) wants.

use serde::Serialize;

use crate::{protocol::Attachment, version::PLUGIN_SPEC_VERSION, version::SpecVersion};

/// The ADD result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddResult {
    pub cni_version: &'static str,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The interface's MTU (in results of spec 1.1.0 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpConfig {
    /// Only in results before 1.0.0: always "4".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'static str>,
    pub address: String,
    pub gateway: String,
    /// Index into `interfaces`.
    pub interface: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: String,
    pub gw: String,
}

/// Empty: pods get DNS settings from the kubelet, not from CNI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Dns {}

/// Index of the pod's interface in [`AddResult::interfaces`].
const POD_INTERFACE_INDEX: usize = 1;

impl AddResult {
    /// The result for `attachment`, which the agent made for interface `ifname` in `netns`.
    pub fn new(
        version: SpecVersion,
        attachment: &Attachment,
        ifname: &str,
        netns: &str,
    ) -> AddResult {
        let gateway = attachment.gateway.to_string();
        AddResult {
            cni_version: version.as_str(),
            interfaces: vec![
                Interface {
                    name: attachment.host_ifname.clone(),
                    mac: attachment.host_mac.clone(),
                    mtu: None,
                    sandbox: None,
                },
                Interface {
                    name: ifname.to_owned(),
                    mac: attachment.pod_mac.clone(),
                    mtu: attachment.mtu.filter(|_| version.interfaces_carry_mtu()),
                    sandbox: Some(netns.to_owned()),
                },
            ],
            ips: vec![IpConfig {
                version: version.ips_carry_version().then_some("4"),
                address: format!("{}/32", attachment.address),
                gateway: gateway.clone(),
                interface: POD_INTERFACE_INDEX,
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".to_owned(),
                gw: gateway,
            }],
            dns: Dns::default(),
        }
    }
}

/// The VERSION reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionReply {
    pub cni_version: &'static str,
    pub supported_versions: Vec<&'static str>,
}

impl VersionReply {
    pub fn new() -> VersionReply {
        VersionReply {
            cni_version: PLUGIN_SPEC_VERSION,
            supported_versions: SpecVersion::supported(),
        }
    }
}

impl Default for VersionReply {
    fn default() -> Self {
        VersionReply::new()
    }
}

/// The error object printed on failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorReply {
    /// The configuration's `cniVersion` as given, or the plugin's own version when it is unknown.
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl ErrorReply {
    /// The error object for a configuration that declared `declared_version` (`None` when the
    /// configuration was unreadable or had no `cniVersion` string). The spec asks for "the same
    /// value as provided by the configuration", so a declared version is echoed even when the
    /// plugin does not support it; only an unknown one falls back to [`PLUGIN_SPEC_VERSION`].
    pub fn new(
        declared_version: Option<&str>,
        code: u32,
        msg: String,
        details: String,
    ) -> ErrorReply {
        ErrorReply {
            cni_version: declared_version.unwrap_or(PLUGIN_SPEC_VERSION).to_owned(),
            code,
            msg,
            details,
        }
    }
}

/// Serializes a reply. These types cannot fail to serialize (no maps with non-string keys).
pub fn to_json<T: Serialize>(reply: &T) -> String {
    serde_json::to_string(reply).expect("CNI replies always serialize")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use serde_json::json;

    use super::*;
    use crate::protocol::AttachmentKey;

    fn attachment() -> Attachment {
        Attachment {
            key: AttachmentKey {
                container_id: "c1".into(),
                ifname: "eth0".into(),
            },
            netns: "/var/run/netns/p".into(),
            pod_namespace: None,
            pod_name: None,
            host_ifname: "st1234abcd".into(),
            host_mac: "02:00:00:00:00:01".into(),
            pod_mac: "02:00:00:00:00:02".into(),
            address: Ipv4Addr::new(10, 244, 1, 7),
            gateway: Ipv4Addr::new(169, 254, 1, 1),
            mtu: None,
        }
    }

    #[test]
    fn add_result_has_the_spec_shape() {
        let result = AddResult::new(SpecVersion::V1_1_0, &attachment(), "eth0", "/ns");
        let value: serde_json::Value = serde_json::from_str(&to_json(&result)).unwrap();
        assert_eq!(
            value,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "st1234abcd", "mac": "02:00:00:00:00:01"},
                    {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/ns"}
                ],
                "ips": [{"address": "10.244.1.7/32", "gateway": "169.254.1.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
                "dns": {}
            })
        );
    }

    #[test]
    fn the_pod_interface_mtu_is_given_from_spec_1_1_0_on() {
        let overlay = Attachment {
            mtu: Some(1450),
            ..attachment()
        };
        let result = AddResult::new(SpecVersion::V1_1_0, &overlay, "eth0", "/ns");
        let value: serde_json::Value = serde_json::from_str(&to_json(&result)).unwrap();
        assert_eq!(value["interfaces"][1]["mtu"], 1450);
        assert!(
            value["interfaces"][0].get("mtu").is_none(),
            "the host side's is the node's business"
        );
        let result = AddResult::new(SpecVersion::V1_0_0, &overlay, "eth0", "/ns");
        assert!(
            !to_json(&result).contains("mtu"),
            "1.0.0 results have no mtu"
        );
    }

    #[test]
    fn old_results_carry_the_ip_version() {
        for version in [
            SpecVersion::V0_3_0,
            SpecVersion::V0_3_1,
            SpecVersion::V0_4_0,
        ] {
            let result = AddResult::new(version, &attachment(), "eth0", "/ns");
            let value: serde_json::Value = serde_json::from_str(&to_json(&result)).unwrap();
            assert_eq!(value["cniVersion"], version.as_str());
            assert_eq!(value["ips"][0]["version"], "4");
        }
        let result = AddResult::new(SpecVersion::V1_0_0, &attachment(), "eth0", "/ns");
        assert!(!to_json(&result).contains("\"version\""));
    }

    #[test]
    fn version_reply_is_exact() {
        assert_eq!(
            to_json(&VersionReply::new()),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }

    #[test]
    fn error_reply_has_code_msg_and_details() {
        let reply = ErrorReply::new(Some("1.0.0"), 4, "short".into(), "longer".into());
        assert_eq!(
            to_json(&reply),
            r#"{"cniVersion":"1.0.0","code":4,"msg":"short","details":"longer"}"#
        );
        let bare = ErrorReply::new(Some("0.4.0"), 7, "short".into(), String::new());
        assert_eq!(
            to_json(&bare),
            r#"{"cniVersion":"0.4.0","code":7,"msg":"short"}"#
        );
    }

    #[test]
    fn error_reply_falls_back_to_the_plugin_version_only_when_unknown() {
        let unknown = ErrorReply::new(None, 6, "not json".into(), String::new());
        assert_eq!(unknown.cni_version, PLUGIN_SPEC_VERSION);
        // A declared version the plugin does not support is still echoed, as the spec asks.
        let unsupported = ErrorReply::new(Some("0.2.0"), 1, "too old".into(), String::new());
        assert_eq!(unsupported.cni_version, "0.2.0");
    }
}
