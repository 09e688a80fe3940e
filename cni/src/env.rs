//! The CNI_* environment variables: which command the runtime asked for, and the attachment it
//! names (container id, netns, interface, pod from CNI_ARGS). Validates them the way the CNI
//! reference skeleton does.

use std::{collections::BTreeMap, fmt, str::FromStr};

use crate::codes;

/// The plugin's environment: variable name to value. Empty values count as unset.
pub type EnvVars = BTreeMap<String, String>;

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// What the runtime asked the plugin to do (CNI_COMMAND).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The variables this command cannot run without.
    fn required_vars(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Status | Command::Gc | Command::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = EnvError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "STATUS" => Ok(Command::Status),
            "GC" => Ok(Command::Gc),
            "VERSION" => Ok(Command::Version),
            other => Err(EnvError::UnknownCommand(other.to_owned())),
        }
    }
}

/// Why the environment is unusable. All of these are CNI error 4.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    #[error("CNI_COMMAND is not set")]
    MissingCommand,
    #[error("unknown CNI_COMMAND {0:?}")]
    UnknownCommand(String),
    #[error("{command} needs {}, which {} not set", .vars.join(", "), if .vars.len() == 1 { "is" } else { "are" })]
    MissingVars {
        command: Command,
        vars: Vec<&'static str>,
    },
    #[error("CNI_CONTAINERID {0:?} has invalid characters")]
    InvalidContainerId(String),
    #[error("CNI_IFNAME {name:?} is not a valid interface name: {reason}")]
    InvalidIfname { name: String, reason: &'static str },
    #[error("CNI_ARGS has {0:?}, which is not KEY=VALUE")]
    MalformedArgs(String),
    #[error("{0} is not valid UTF-8")]
    NotUnicode(String),
}

impl EnvError {
    pub fn code(&self) -> u32 {
        codes::INVALID_ENVIRONMENT_VARIABLES
    }

    /// A longer explanation for the operator.
    pub fn details(&self) -> String {
        match self {
            EnvError::MissingCommand => {
                "strait-cni is a CNI plugin: the container runtime runs it with CNI_COMMAND set \
                 (try CNI_COMMAND=VERSION)"
                    .to_owned()
            }
            EnvError::UnknownCommand(_) => {
                "CNI_COMMAND must be one of ADD, DEL, CHECK, STATUS, GC or VERSION".to_owned()
            }
            EnvError::MissingVars { .. } => {
                "ADD and CHECK need CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME; DEL needs \
                 CNI_CONTAINERID and CNI_IFNAME"
                    .to_owned()
            }
            EnvError::InvalidContainerId(_) => {
                "a container id starts with a letter or digit, followed by letters, digits, \
                 '_', '.' or '-'"
                    .to_owned()
            }
            EnvError::InvalidIfname { .. } => format!(
                "an interface name has 1 to {MAX_IFNAME_LEN} bytes, is not '.' or '..', and has \
                 no '/', ':' or whitespace"
            ),
            EnvError::MalformedArgs(_) => {
                "CNI_ARGS is a list of KEY=VALUE pairs separated by ';'".to_owned()
            }
            EnvError::NotUnicode(_) => "strait-cni only accepts UTF-8 CNI_* variables".to_owned(),
        }
    }
}

/// The pod an attachment belongs to, from CNI_ARGS (Kubernetes runtimes set both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodArgs {
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Parses CNI_ARGS (`K=V;K=V`), keeping `K8S_POD_NAMESPACE` and `K8S_POD_NAME` and ignoring other
/// keys. Empty segments (`a=b;;c=d`, a trailing `;`) are tolerated.
pub fn parse_cni_args(text: &str) -> Result<PodArgs, EnvError> {
    let mut pod = PodArgs::default();
    for pair in text.split(';').filter(|pair| !pair.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(EnvError::MalformedArgs(pair.to_owned()));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(EnvError::MalformedArgs(pair.to_owned()));
        }
        let value = (!value.is_empty()).then(|| value.to_owned());
        match key {
            "K8S_POD_NAMESPACE" => pod.namespace = value,
            "K8S_POD_NAME" => pod.name = value,
            _ => {}
        }
    }
    Ok(pod)
}

/// The validated CNI environment for one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// CNI_CONTAINERID; always set for ADD, DEL and CHECK.
    pub container_id: Option<String>,
    /// CNI_NETNS; always set for ADD and CHECK, optional for DEL.
    pub netns: Option<String>,
    /// CNI_IFNAME; always set for ADD, DEL and CHECK.
    pub ifname: Option<String>,
    /// From CNI_ARGS.
    pub pod: PodArgs,
}

impl CniEnv {
    /// Reads and validates the variables `vars` holds for the command it names.
    pub fn from_vars(vars: &EnvVars) -> Result<CniEnv, EnvError> {
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let command: Command = get("CNI_COMMAND")
            .ok_or(EnvError::MissingCommand)?
            .parse()?;
        let missing: Vec<&'static str> = command
            .required_vars()
            .iter()
            .copied()
            .filter(|name| get(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(EnvError::MissingVars {
                command,
                vars: missing,
            });
        }
        let uses_attachment = !command.required_vars().is_empty();
        let env = CniEnv {
            command,
            container_id: get("CNI_CONTAINERID").filter(|_| uses_attachment),
            netns: get("CNI_NETNS").filter(|_| uses_attachment),
            ifname: get("CNI_IFNAME").filter(|_| uses_attachment),
            pod: if uses_attachment {
                parse_cni_args(&get("CNI_ARGS").unwrap_or_default())?
            } else {
                PodArgs::default()
            },
        };
        if let Some(id) = &env.container_id {
            validate_container_id(id)?;
        }
        if let Some(name) = &env.ifname {
            validate_ifname(name)?;
        }
        Ok(env)
    }
}

/// The CNI_* variables of this process. Fails when one of them is not UTF-8.
pub fn process_vars() -> Result<EnvVars, EnvError> {
    let mut vars = EnvVars::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("CNI_")) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| EnvError::NotUnicode(name.to_owned()))?;
        vars.insert(name.to_owned(), value);
    }
    Ok(vars)
}

/// A container id (and a network name) is `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub(crate) fn is_valid_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn validate_container_id(id: &str) -> Result<(), EnvError> {
    if is_valid_identifier(id) {
        Ok(())
    } else {
        Err(EnvError::InvalidContainerId(id.to_owned()))
    }
}

fn validate_ifname(name: &str) -> Result<(), EnvError> {
    match ifname_problem(name) {
        Some(reason) => Err(EnvError::InvalidIfname {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Why `name` cannot be an interface name, if it cannot.
pub(crate) fn ifname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_IFNAME_LEN {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not allowed")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("it contains '/', ':' or whitespace")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> EnvVars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn cni_args_yield_the_pod() {
        let pod = parse_cni_args(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1-2",
        )
        .unwrap();
        assert_eq!(pod.namespace.as_deref(), Some("default"));
        assert_eq!(pod.name.as_deref(), Some("web-0"));
    }

    #[test]
    fn cni_args_may_be_empty_or_have_empty_segments() {
        assert_eq!(parse_cni_args("").unwrap(), PodArgs::default());
        let pod = parse_cni_args("K8S_POD_NAME=a;;").unwrap();
        assert_eq!(pod.name.as_deref(), Some("a"));
        assert_eq!(pod.namespace, None);
    }

    #[test]
    fn cni_args_value_keeps_later_equals_signs() {
        let pod = parse_cni_args("K8S_POD_NAME=a=b").unwrap();
        assert_eq!(pod.name.as_deref(), Some("a=b"));
    }

    #[test]
    fn cni_args_without_equals_is_rejected() {
        let err = parse_cni_args("K8S_POD_NAME=a;oops").unwrap_err();
        assert!(matches!(&err, EnvError::MalformedArgs(pair) if pair == "oops"));
        assert!(err.to_string().contains("CNI_ARGS"));
        assert!(matches!(
            parse_cni_args("=x"),
            Err(EnvError::MalformedArgs(_))
        ));
    }

    #[test]
    fn add_reads_every_variable() {
        let env = CniEnv::from_vars(&vars(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c0ffee"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]))
        .unwrap();
        assert_eq!(env.command, Command::Add);
        assert_eq!(env.container_id.as_deref(), Some("c0ffee"));
        assert_eq!(env.netns.as_deref(), Some("/var/run/netns/p"));
        assert_eq!(env.ifname.as_deref(), Some("eth0"));
        assert_eq!(env.pod.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn missing_variables_are_all_named() {
        let err = CniEnv::from_vars(&vars(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ADD needs CNI_CONTAINERID, CNI_NETNS, which are not set"
        );
        assert_eq!(err.code(), 4);
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let err = CniEnv::from_vars(&vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", ""),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DEL needs CNI_CONTAINERID, which is not set"
        );
    }

    #[test]
    fn del_does_not_need_a_netns() {
        let env = CniEnv::from_vars(&vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert_eq!(env.netns, None);
    }

    #[test]
    fn status_gc_and_version_need_nothing_else() {
        for command in ["STATUS", "GC", "VERSION"] {
            let env = CniEnv::from_vars(&vars(&[
                ("CNI_COMMAND", command),
                // Ignored, even when invalid: these commands name no attachment.
                ("CNI_CONTAINERID", "bad id"),
                ("CNI_ARGS", "garbage"),
            ]))
            .unwrap();
            assert_eq!(env.container_id, None);
        }
    }

    #[test]
    fn command_must_be_set_and_known() {
        assert!(matches!(
            CniEnv::from_vars(&EnvVars::new()),
            Err(EnvError::MissingCommand)
        ));
        let err = CniEnv::from_vars(&vars(&[("CNI_COMMAND", "add")])).unwrap_err();
        assert!(matches!(err, EnvError::UnknownCommand(ref c) if c == "add"));
        assert_eq!(err.code(), 4);
    }

    #[test]
    fn container_id_and_ifname_are_validated() {
        let base = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/ns"),
            ("CNI_IFNAME", "eth0"),
        ];
        let with = |key: &str, value: &'static str| {
            let mut v = vars(&base);
            v.insert(key.to_owned(), value.to_owned());
            CniEnv::from_vars(&v)
        };
        assert!(matches!(
            with("CNI_CONTAINERID", "-leading-dash"),
            Err(EnvError::InvalidContainerId(_))
        ));
        assert!(matches!(
            with("CNI_CONTAINERID", "a/b"),
            Err(EnvError::InvalidContainerId(_))
        ));
        for bad in ["sixteen-chars-xx", ".", "..", "a/b", "a:b", "a b"] {
            assert!(
                matches!(with("CNI_IFNAME", bad), Err(EnvError::InvalidIfname { .. })),
                "{bad:?} should be rejected"
            );
        }
        assert!(with("CNI_IFNAME", "fifteen-chars-x").is_ok());
    }
}
