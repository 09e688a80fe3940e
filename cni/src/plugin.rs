//! Command dispatch: turns the CNI environment and stdin into (at most) one agent call, and the
//! agent's answer into what the runtime reads on stdout plus an exit code. Pure apart from the
//! [`Agent`] it is given, so every path is testable without straitd.

use std::{io, net::Ipv4Addr, path::Path, process::ExitCode, time::Duration};

use crate::{
    client::{self, ClientError},
    codes,
    config::{self, ConfigError, NetworkConfig, VALID_ATTACHMENTS_KEY},
    env::{CniEnv, Command, EnvError, EnvVars},
    protocol::{AttachmentKey, AttachmentRequest, ErrorKind, Request, Response},
    result::{AddResult, ErrorReply, VersionReply, to_json},
    version::SpecVersion,
};

/// One request/response exchange with the agent.
pub trait Agent {
    fn call(
        &self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError>;
}

/// The real agent: straitd on its unix socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketAgent;

impl Agent for SocketAgent {
    fn call(
        &self,
        socket: &Path,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        client::call(socket, request, timeout)
    }
}

/// What the process prints to stdout and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// JSON for the runtime, or empty.
    pub stdout: String,
    pub exit_code: u8,
}

impl Outcome {
    fn success(stdout: String) -> Outcome {
        Outcome {
            stdout,
            exit_code: 0,
        }
    }

    /// The CNI error object for `error`, exiting 1. `stdin` is the network configuration as read
    /// (empty when it was not): the object carries the `cniVersion` it declares, if any.
    pub fn failure(error: &PluginError, stdin: &[u8]) -> Outcome {
        let declared = config::declared_version(stdin);
        let reply = ErrorReply::new(
            declared.as_deref(),
            error.code(),
            error.to_string(),
            error.details(),
        );
        Outcome {
            stdout: to_json(&reply),
            exit_code: 1,
        }
    }

    /// Writes stdout (with a trailing newline when not empty) and returns the exit code.
    pub fn emit(&self) -> ExitCode {
        if !self.stdout.is_empty() {
            println!("{}", self.stdout);
        }
        ExitCode::from(self.exit_code)
    }
}

/// Why an invocation failed; [`PluginError::code`] is the CNI error code reported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the network configuration from stdin failed")]
    Stdin(#[source] io::Error),
    #[error(
        "{command} needs cniVersion {minimum} or later, the network configuration has {configured}"
    )]
    VersionTooOld {
        command: Command,
        minimum: SpecVersion,
        configured: SpecVersion,
    },
    #[error("GC needs {VALID_ATTACHMENTS_KEY:?} in the network configuration")]
    MissingValidAttachments,
    #[error("{command} failed: {source}")]
    Agent {
        command: Command,
        #[source]
        source: ClientError,
    },
    #[error("the strait agent refused {command}: {message}")]
    Refused {
        command: Command,
        kind: ErrorKind,
        message: String,
    },
    #[error("the strait agent answered {command} with an unexpected {answer:?} response")]
    UnexpectedResponse {
        command: Command,
        answer: &'static str,
    },
    #[error("prevResult address {0:?} is not an IPv4 address with a prefix length")]
    InvalidPrevAddress(String),
    #[error(
        "prevResult says the pod's address is {recorded}, but the strait agent has {actual}/32"
    )]
    AddressMismatch { recorded: String, actual: Ipv4Addr },
    #[error("the strait agent is not ready: {0}")]
    NotReady(String),
}

impl PluginError {
    /// The CNI error code for this failure.
    pub fn code(&self) -> u32 {
        match self {
            PluginError::Env(error) => error.code(),
            PluginError::Config(error) => error.code(),
            PluginError::VersionTooOld { .. } => codes::INCOMPATIBLE_CNI_VERSION,
            PluginError::MissingValidAttachments
            | PluginError::InvalidPrevAddress(_)
            | PluginError::AddressMismatch { .. } => codes::INVALID_NETWORK_CONFIG,
            PluginError::Agent {
                source: ClientError::BadResponse { .. },
                ..
            }
            | PluginError::Stdin(_)
            | PluginError::UnexpectedResponse { .. } => codes::IO_FAILURE,
            PluginError::Agent {
                command: Command::Status,
                ..
            }
            | PluginError::Refused {
                command: Command::Status,
                ..
            }
            | PluginError::NotReady(_) => codes::PLUGIN_NOT_AVAILABLE,
            PluginError::Agent {
                source: ClientError::Unreachable { .. } | ClientError::Closed { .. },
                ..
            } => codes::TRY_AGAIN_LATER,
            PluginError::Agent { .. } => codes::IO_FAILURE,
            PluginError::Refused { kind, .. } => agent_error_code(*kind),
        }
    }

    /// A longer explanation for the operator (the error object's `details`).
    pub fn details(&self) -> String {
        match self {
            PluginError::Env(error) => error.details(),
            PluginError::Config(error) => error.details(),
            PluginError::Stdin(source) => source.to_string(),
            PluginError::VersionTooOld { .. } => {
                "raise cniVersion in the .conflist (strait ships 1.1.0)".to_owned()
            }
            PluginError::MissingValidAttachments => {
                "without the runtime's list of attachments still in use, strait-cni refuses to \
                 garbage-collect (it would remove every pod's network)"
                    .to_owned()
            }
            PluginError::Agent { source, .. } => match source {
                ClientError::Unreachable { .. } => {
                    "straitd creates its socket once it is ready; try again later".to_owned()
                }
                ClientError::Closed { .. } => {
                    "straitd went away before it answered (stopped or restarted); try again later"
                        .to_owned()
                }
                _ => "check straitd's logs; strait-cni and straitd may be different versions"
                    .to_owned(),
            },
            PluginError::Refused { kind, .. } => refusal_hint(*kind).to_owned(),
            PluginError::UnexpectedResponse { .. } => {
                "strait-cni and straitd may be different versions".to_owned()
            }
            PluginError::InvalidPrevAddress(_) | PluginError::AddressMismatch { .. } => {
                "the attachment no longer matches what ADD returned; the runtime should \
                 recreate the pod sandbox"
                    .to_owned()
            }
            PluginError::NotReady(_) => "straitd is starting or shutting down".to_owned(),
        }
    }
}

fn agent_error_code(kind: ErrorKind) -> u32 {
    match kind {
        ErrorKind::TryAgain => codes::TRY_AGAIN_LATER,
        ErrorKind::NotFound => codes::UNKNOWN_CONTAINER,
        ErrorKind::InvalidRequest => codes::INVALID_NETWORK_CONFIG,
        ErrorKind::Exhausted => codes::ADDRESSES_EXHAUSTED,
        ErrorKind::Internal => codes::AGENT_INTERNAL_ERROR,
    }
}

fn refusal_hint(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::TryAgain => "straitd is starting or shutting down; try again later",
        ErrorKind::NotFound => "straitd has no record of this attachment",
        ErrorKind::InvalidRequest => "straitd rejected the attachment the runtime described",
        ErrorKind::Exhausted => {
            "this node's pod CIDR has no free address (or an endpoint map is full)"
        }
        ErrorKind::Internal => "see straitd's logs for the cause",
    }
}

fn response_name(response: &Response) -> &'static str {
    match response {
        Response::Added(_) => "added",
        Response::Deleted { .. } => "deleted",
        Response::Checked(_) => "checked",
        Response::Collected { .. } => "collected",
        Response::Status { .. } => "status",
        Response::Attachments(_) => "attachments",
        Response::Error { .. } => "error",
    }
}

/// Runs one plugin invocation: `vars` are the CNI_* variables, `stdin` the network
/// configuration (ignored for VERSION).
pub fn run(vars: &EnvVars, stdin: &[u8], agent: &dyn Agent) -> Outcome {
    match dispatch(vars, stdin, agent) {
        Ok(stdout) => Outcome::success(stdout),
        Err(error) => Outcome::failure(&error, stdin),
    }
}

fn dispatch(vars: &EnvVars, stdin: &[u8], agent: &dyn Agent) -> Result<String, PluginError> {
    let env = CniEnv::from_vars(vars)?;
    if env.command == Command::Version {
        return Ok(to_json(&VersionReply::new()));
    }
    let config = NetworkConfig::parse(stdin)?;
    let invocation = Invocation { env, config, agent };
    match invocation.env.command {
        Command::Add => invocation.add(),
        Command::Del => invocation.del(),
        Command::Check => invocation.check(),
        Command::Gc => invocation.gc(),
        Command::Status => invocation.status(),
        Command::Version => unreachable!("VERSION is answered above"),
    }
}

/// One validated command, ready to talk to the agent.
struct Invocation<'a> {
    env: CniEnv,
    config: NetworkConfig,
    agent: &'a dyn Agent,
}

impl Invocation<'_> {
    fn add(&self) -> Result<String, PluginError> {
        match self.ask(&Request::Add(self.attachment_request()))? {
            Response::Added(attachment) => Ok(to_json(&AddResult::new(
                self.config.cni_version,
                &attachment,
                self.ifname(),
                self.netns(),
            ))),
            other => Err(self.unexpected(&other)),
        }
    }

    fn del(&self) -> Result<String, PluginError> {
        match self.ask(&Request::Del(self.key())) {
            // DEL succeeds when there is nothing to delete.
            Ok(Response::Deleted { .. })
            | Err(PluginError::Refused {
                kind: ErrorKind::NotFound,
                ..
            }) => Ok(String::new()),
            Ok(other) => Err(self.unexpected(&other)),
            Err(error) => Err(error),
        }
    }

    fn check(&self) -> Result<String, PluginError> {
        self.require_version(SpecVersion::V0_4_0)?;
        let attachment = match self.ask(&Request::Check(self.attachment_request()))? {
            Response::Checked(attachment) => attachment,
            other => return Err(self.unexpected(&other)),
        };
        let recorded = self
            .config
            .prev_result
            .as_ref()
            .and_then(|prev| prev.ips.first());
        if let Some(recorded) = recorded {
            let Some((address, prefix)) = recorded.ipv4() else {
                return Err(PluginError::InvalidPrevAddress(recorded.address.clone()));
            };
            if address != attachment.address || prefix != 32 {
                return Err(PluginError::AddressMismatch {
                    recorded: recorded.address.clone(),
                    actual: attachment.address,
                });
            }
        }
        Ok(String::new())
    }

    fn gc(&self) -> Result<String, PluginError> {
        self.require_version(SpecVersion::V1_1_0)?;
        let valid = self
            .config
            .valid_attachments
            .clone()
            .ok_or(PluginError::MissingValidAttachments)?;
        match self.ask(&Request::Gc { valid })? {
            Response::Collected { .. } => Ok(String::new()),
            other => Err(self.unexpected(&other)),
        }
    }

    fn status(&self) -> Result<String, PluginError> {
        self.require_version(SpecVersion::V1_1_0)?;
        match self.ask(&Request::Status)? {
            Response::Status { ready: true, .. } => Ok(String::new()),
            Response::Status {
                ready: false,
                message,
            } => Err(PluginError::NotReady(message)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Sends `request`; an agent-side error becomes [`PluginError::Refused`].
    fn ask(&self, request: &Request) -> Result<Response, PluginError> {
        let command = self.env.command;
        match self
            .agent
            .call(&self.config.agent_socket, request, self.config.timeout)
        {
            Ok(Response::Error { kind, message }) => Err(PluginError::Refused {
                command,
                kind,
                message,
            }),
            Ok(response) => Ok(response),
            Err(source) => Err(PluginError::Agent { command, source }),
        }
    }

    fn unexpected(&self, response: &Response) -> PluginError {
        PluginError::UnexpectedResponse {
            command: self.env.command,
            answer: response_name(response),
        }
    }

    fn require_version(&self, minimum: SpecVersion) -> Result<(), PluginError> {
        if self.config.cni_version >= minimum {
            Ok(())
        } else {
            Err(PluginError::VersionTooOld {
                command: self.env.command,
                minimum,
                configured: self.config.cni_version,
            })
        }
    }

    // CniEnv::from_vars guarantees these are set for the commands that use them.
    fn container_id(&self) -> &str {
        self.env.container_id.as_deref().expect("checked by CniEnv")
    }

    fn ifname(&self) -> &str {
        self.env.ifname.as_deref().expect("checked by CniEnv")
    }

    fn netns(&self) -> &str {
        self.env.netns.as_deref().expect("checked by CniEnv")
    }

    fn key(&self) -> AttachmentKey {
        AttachmentKey {
            container_id: self.container_id().to_owned(),
            ifname: self.ifname().to_owned(),
        }
    }

    fn attachment_request(&self) -> AttachmentRequest {
        AttachmentRequest {
            key: self.key(),
            netns: self.netns().to_owned(),
            pod_namespace: self.env.pod.namespace.clone(),
            pod_name: self.env.pod.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
