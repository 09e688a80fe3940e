//! The network configuration the runtime writes to stdin: the CNI keys the plugin checks
//! (`cniVersion`, `name`, `type`), strait's own keys (`agentSocket`, `timeoutMs`), and the
//! runtime-supplied `prevResult` (CHECK) and `cni.dev/valid-attachments` (GC).

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{
    codes,
    env::is_valid_identifier,
    protocol::{AttachmentKey, DEFAULT_AGENT_SOCKET},
    version::SpecVersion,
};

/// The plugin's executable name, as a configuration's `type` names it.
pub const PLUGIN_TYPE: &str = "strait-cni";
/// How long the plugin waits for the agent unless `timeoutMs` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The GC key listing the attachments the runtime still uses.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("failed to decode the network configuration on stdin: it is not JSON")]
    NotJson(#[source] serde_json::Error),
    #[error("failed to decode the network configuration on stdin: it is not a JSON object")]
    NotObject,
    #[error("the network configuration has no {0:?}")]
    MissingKey(&'static str),
    #[error("network configuration key {key:?} must be {expected}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    #[error("network name {0:?} is not valid")]
    InvalidName(String),
    #[error("the network configuration is for plugin type {0:?}, not {PLUGIN_TYPE:?}")]
    WrongPluginType(String),
    #[error("cniVersion {0:?} is not supported by strait-cni")]
    UnsupportedVersion(String),
    #[error("network configuration key {key:?} is not valid: {reason}")]
    InvalidValue { key: &'static str, reason: String },
}

impl ConfigError {
    pub fn code(&self) -> u32 {
        match self {
            ConfigError::NotJson(_) | ConfigError::NotObject => codes::DECODING_FAILURE,
            ConfigError::UnsupportedVersion(_) => codes::INCOMPATIBLE_CNI_VERSION,
            ConfigError::MissingKey(_)
            | ConfigError::WrongType { .. }
            | ConfigError::InvalidName(_)
            | ConfigError::WrongPluginType(_)
            | ConfigError::InvalidValue { .. } => codes::INVALID_NETWORK_CONFIG,
        }
    }

    /// A longer explanation for the operator.
    pub fn details(&self) -> String {
        match self {
            ConfigError::NotJson(source) => source.to_string(),
            ConfigError::NotObject => "stdin must hold one plugin configuration object".to_owned(),
            ConfigError::MissingKey(key) => {
                format!("the runtime injects {key:?} from the .conflist; check the file")
            }
            ConfigError::WrongType { .. } | ConfigError::InvalidValue { .. } => {
                "see deploy/cni/10-strait.conflist for a working configuration".to_owned()
            }
            ConfigError::InvalidName(_) => {
                "a network name starts with a letter or digit, followed by letters, digits, \
                 '_', '.' or '-'"
                    .to_owned()
            }
            ConfigError::WrongPluginType(_) => {
                format!("strait-cni only handles configurations with \"type\": {PLUGIN_TYPE:?}")
            }
            ConfigError::UnsupportedVersion(_) => format!(
                "supported versions: {}",
                SpecVersion::supported().join(", ")
            ),
        }
    }
}

/// The `prevResult` fields the plugin looks at (CHECK).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PrevResult {
    #[serde(default)]
    pub ips: Vec<PrevIp>,
}

/// One `ips` entry of a previous result.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrevIp {
    /// `A.B.C.D/N` as the runtime recorded it.
    pub address: String,
}

impl PrevIp {
    /// The address and prefix length, when `address` is an IPv4 CIDR.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        let (addr, prefix) = self.address.split_once('/')?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        Some((addr.parse().ok()?, prefix))
    }
}

/// One entry of `cni.dev/valid-attachments`.
#[derive(Deserialize)]
struct GcAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// The validated network configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    pub cni_version: SpecVersion,
    pub name: String,
    /// Where straitd listens (`agentSocket`).
    pub agent_socket: PathBuf,
    /// How long to wait for the agent (`timeoutMs`).
    pub timeout: Duration,
    /// CHECK/DEL: the result of the earlier ADD, when the runtime passed one.
    pub prev_result: Option<PrevResult>,
    /// GC: the attachments to keep. `None` when the key is absent; `null` reads as empty.
    pub valid_attachments: Option<Vec<AttachmentKey>>,
}

impl NetworkConfig {
    /// Parses and validates the configuration the runtime wrote to stdin.
    pub fn parse(stdin: &[u8]) -> Result<NetworkConfig, ConfigError> {
        let value: Value = serde_json::from_slice(stdin).map_err(ConfigError::NotJson)?;
        let Value::Object(map) = value else {
            return Err(ConfigError::NotObject);
        };
        let version_text = required_string(&map, "cniVersion")?;
        let name = required_string(&map, "name")?;
        if !is_valid_identifier(name) {
            return Err(ConfigError::InvalidName(name.to_owned()));
        }
        if let Some(plugin_type) = optional_string(&map, "type")?
            && plugin_type != PLUGIN_TYPE
        {
            return Err(ConfigError::WrongPluginType(plugin_type.to_owned()));
        }
        let cni_version = SpecVersion::parse(version_text)
            .ok_or_else(|| ConfigError::UnsupportedVersion(version_text.to_owned()))?;
        Ok(NetworkConfig {
            cni_version,
            name: name.to_owned(),
            agent_socket: agent_socket(&map)?,
            timeout: timeout(&map)?,
            prev_result: prev_result(&map)?,
            valid_attachments: valid_attachments(&map)?,
        })
    }
}

/// The `cniVersion` the configuration on stdin declares, exactly as written: `Some` when stdin is a
/// JSON object whose `cniVersion` is a non-empty string, whether or not the rest of the
/// configuration is valid or the version supported. Error replies echo it.
pub fn declared_version(stdin: &[u8]) -> Option<String> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(stdin) else {
        return None;
    };
    match map.remove("cniVersion") {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    }
}

fn optional_string<'a>(
    map: &'a Map<String, Value>,
    key: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(ConfigError::WrongType {
            key,
            expected: "a string",
        }),
    }
}

fn required_string<'a>(
    map: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a str, ConfigError> {
    optional_string(map, key)?
        .filter(|text| !text.is_empty())
        .ok_or(ConfigError::MissingKey(key))
}

fn agent_socket(map: &Map<String, Value>) -> Result<PathBuf, ConfigError> {
    const KEY: &str = "agentSocket";
    let Some(text) = optional_string(map, KEY)? else {
        return Ok(PathBuf::from(DEFAULT_AGENT_SOCKET));
    };
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(ConfigError::InvalidValue {
            key: KEY,
            reason: format!("{text:?} is not an absolute path"),
        })
    }
}

fn timeout(map: &Map<String, Value>) -> Result<Duration, ConfigError> {
    const KEY: &str = "timeoutMs";
    match map.get(KEY) {
        None | Some(Value::Null) => Ok(DEFAULT_TIMEOUT),
        Some(value) => value
            .as_u64()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or(ConfigError::WrongType {
                key: KEY,
                expected: "a positive whole number of milliseconds",
            }),
    }
}

fn prev_result(map: &Map<String, Value>) -> Result<Option<PrevResult>, ConfigError> {
    match map.get("prevResult") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            PrevResult::deserialize(value)
                .map(Some)
                .map_err(|e| ConfigError::InvalidValue {
                    key: "prevResult",
                    reason: e.to_string(),
                })
        }
    }
}

fn valid_attachments(map: &Map<String, Value>) -> Result<Option<Vec<AttachmentKey>>, ConfigError> {
    match map.get(VALID_ATTACHMENTS_KEY) {
        None => Ok(None),
        // Go runtimes encode an empty (nil) list as null.
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(value) => {
            let entries =
                Vec::<GcAttachment>::deserialize(value).map_err(|e| ConfigError::InvalidValue {
                    key: VALID_ATTACHMENTS_KEY,
                    reason: format!(
                        "{e} (expected a list of {{\"containerID\": ..., \"ifname\": ...}})"
                    ),
                })?;
            Ok(Some(
                entries
                    .into_iter()
                    .map(|a| AttachmentKey {
                        container_id: a.container_id,
                        ifname: a.ifname,
                    })
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NetworkConfig, ConfigError> {
        NetworkConfig::parse(text.as_bytes())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config =
            parse(r#"{"cniVersion":"1.1.0","name":"strait","type":"strait-cni"}"#).unwrap();
        assert_eq!(config.cni_version, SpecVersion::V1_1_0);
        assert_eq!(config.name, "strait");
        assert_eq!(config.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.prev_result, None);
        assert_eq!(config.valid_attachments, None);
    }

    #[test]
    fn plugin_keys_are_read_and_unknown_keys_allowed() {
        let config = parse(
            r#"{"cniVersion":"0.4.0","name":"n","agentSocket":"/tmp/a.sock","timeoutMs":250,
                "ipMasq":true,"args":{"labels":{"x":"y"}},"somethingNew":[1]}"#,
        )
        .unwrap();
        assert_eq!(config.agent_socket, PathBuf::from("/tmp/a.sock"));
        assert_eq!(config.timeout, Duration::from_millis(250));
    }

    #[test]
    fn not_json_is_code_6() {
        for text in ["", "not json", "{\"cniVersion\":"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ConfigError::NotJson(_)), "{text:?}");
            assert_eq!(err.code(), 6);
        }
        assert_eq!(parse("[1,2]").unwrap_err().code(), 6);
    }

    #[test]
    fn missing_version_or_name_is_code_7() {
        let err = parse(r#"{"name":"n"}"#).unwrap_err();
        assert!(matches!(err, ConfigError::MissingKey("cniVersion")));
        assert_eq!(err.code(), 7);
        let err = parse(r#"{"cniVersion":"1.1.0","name":""}"#).unwrap_err();
        assert!(matches!(err, ConfigError::MissingKey("name")));
        assert_eq!(err.code(), 7);
        assert_eq!(
            parse(r#"{"cniVersion":1,"name":"n"}"#).unwrap_err().code(),
            7
        );
    }

    #[test]
    fn invalid_name_is_code_7() {
        let err = parse(r#"{"cniVersion":"1.1.0","name":"-bad name"}"#).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidName(_)));
        assert_eq!(err.code(), 7);
    }

    #[test]
    fn other_plugin_type_is_code_7() {
        let err = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"bridge"}"#).unwrap_err();
        assert!(matches!(err, ConfigError::WrongPluginType(ref t) if t == "bridge"));
        assert_eq!(err.code(), 7);
    }

    #[test]
    fn unsupported_version_is_code_1() {
        for version in ["0.2.0", "2.0.0", "1.1"] {
            let text = format!(r#"{{"cniVersion":"{version}","name":"n"}}"#);
            let err = parse(&text).unwrap_err();
            assert!(matches!(err, ConfigError::UnsupportedVersion(_)));
            assert_eq!(err.code(), 1);
            assert!(err.details().contains("1.1.0"));
        }
    }

    #[test]
    fn bad_plugin_keys_are_code_7_and_named() {
        let cases = [
            (r#""agentSocket":5"#, "agentSocket"),
            (r#""agentSocket":"relative.sock""#, "agentSocket"),
            (r#""timeoutMs":0"#, "timeoutMs"),
            (r#""timeoutMs":-5"#, "timeoutMs"),
            (r#""timeoutMs":"10""#, "timeoutMs"),
            (r#""prevResult":{"ips":"x"}"#, "prevResult"),
            (
                r#""cni.dev/valid-attachments":[{"ifname":"eth0"}]"#,
                VALID_ATTACHMENTS_KEY,
            ),
        ];
        for (extra, key) in cases {
            let text = format!(r#"{{"cniVersion":"1.1.0","name":"n",{extra}}}"#);
            let err = parse(&text).unwrap_err();
            assert_eq!(err.code(), 7, "{extra}");
            assert!(err.to_string().contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn valid_attachments_are_parsed() {
        let config = parse(
            r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[
                {"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"net1"}]}"#,
        )
        .unwrap();
        let key = |c: &str, i: &str| AttachmentKey {
            container_id: c.into(),
            ifname: i.into(),
        };
        assert_eq!(
            config.valid_attachments,
            Some(vec![key("c1", "eth0"), key("c2", "net1")])
        );
    }

    #[test]
    fn null_or_empty_valid_attachments_mean_keep_nothing() {
        for list in ["null", "[]"] {
            let text =
                format!(r#"{{"cniVersion":"1.1.0","name":"n","{VALID_ATTACHMENTS_KEY}":{list}}}"#);
            assert_eq!(parse(&text).unwrap().valid_attachments, Some(Vec::new()));
        }
    }

    #[test]
    fn prev_result_addresses_are_read() {
        let config = parse(
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0",
                "interfaces":[{"name":"eth0"}],"ips":[{"address":"10.0.0.5/32","interface":0}]}}"#,
        )
        .unwrap();
        let prev = config.prev_result.unwrap();
        assert_eq!(prev.ips[0].ipv4(), Some((Ipv4Addr::new(10, 0, 0, 5), 32)));
        let no_ips = parse(r#"{"cniVersion":"1.0.0","name":"n","prevResult":{}}"#).unwrap();
        assert_eq!(no_ips.prev_result, Some(PrevResult::default()));
    }

    #[test]
    fn declared_version_is_read_from_any_object_that_has_one() {
        let declared = |text: &str| declared_version(text.as_bytes());
        assert_eq!(
            declared(r#"{"cniVersion":"0.4.0","name":"n"}"#).as_deref(),
            Some("0.4.0")
        );
        // Invalid otherwise (no name, wrong type, unsupported version): still declared.
        assert_eq!(
            declared(r#"{"cniVersion":"1.0.0","type":"bridge"}"#).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(
            declared(r#"{"cniVersion":"0.2.0"}"#).as_deref(),
            Some("0.2.0")
        );
        for unknown in [
            "",
            "not json",
            "[1]",
            r#"{"name":"n"}"#,
            r#"{"cniVersion":1}"#,
            r#"{"cniVersion":""}"#,
            r#"{"cniVersion":null}"#,
        ] {
            assert_eq!(declared(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn prev_ip_parsing_rejects_non_cidr() {
        let ip = |a: &str| PrevIp { address: a.into() }.ipv4();
        assert_eq!(ip("10.0.0.5"), None);
        assert_eq!(ip("10.0.0.5/33"), None);
        assert_eq!(ip("fd00::1/128"), None);
        assert_eq!(ip("10.1.2.3/24"), Some((Ipv4Addr::new(10, 1, 2, 3), 24)));
    }
}
