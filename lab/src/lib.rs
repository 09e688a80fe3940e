//! strait-lab: a local multi-node cluster made of network namespaces, for demos, end-to-end tests and
//! benchmarks. Each node is a namespace running `straitd`; each pod is a namespace set up by invoking
//! `strait-cni` exactly as a container runtime would, running a built-in workload that names itself.

pub mod agent_status;
pub mod announce;
pub mod apply;
pub mod cgroup;
pub mod cluster;
pub mod cluster_dns;
pub mod cni_exec;
pub mod connbench;
pub mod controlplane;
pub mod ct_listing;
pub mod dns_listing;
pub mod external;
pub mod flannel;
pub mod flows;
pub mod install;
pub mod kube_objects;
pub mod listing;
pub mod manifests;
pub mod map_listing;
pub mod names;
pub mod network;
pub mod node_ops;
pub mod pods;
pub mod policy_audit;
pub mod policy_explain;
pub mod policy_listing;
pub mod policy_propose;
pub mod probe;
pub mod process;
pub mod publish;
pub mod reachability;
pub mod report;
pub mod service_listing;
pub mod state;
pub mod status;
pub mod teardown;
pub mod workload;

pub use teardown::down;

use strait_dataplane::DataplaneError;

/// Everything a lab operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    #[error(transparent)]
    Name(#[from] names::BadLabName),
    #[error("lab {0} does not exist (`strait lab list` shows the labs on this machine)")]
    NoSuchLab(String),
    #[error("lab {0} already exists; tear it down first with `strait lab down --name {0}`")]
    Exists(String),
    #[error("{0}")]
    Environment(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Manifest(#[from] manifests::ManifestError),
    /// An object the API server would refuse (its namespace does not exist, its node port is taken,
    /// ...): `at` names the file and document, `reason` the object and what is wrong.
    #[error("{at}: {reason}")]
    Rejected {
        at: Box<manifests::Location>,
        reason: String,
    },
    /// A command given to `exec` could not be started (not found, not executable).
    #[error("cannot run {program:?}: {error}")]
    Exec {
        program: String,
        error: std::io::Error,
    },
    #[error("CNI {command} failed{}: {message}", code.map(|c| format!(" with code {c}")).unwrap_or_default())]
    Cni {
        command: String,
        code: Option<u64>,
        message: String,
    },
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The I/O error is part of the message (and not also a `source`, which would print it twice).
    #[error("{action}: {error}")]
    Io {
        action: String,
        error: std::io::Error,
    },
}

impl LabError {
    /// Wraps an I/O error with what was being done.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            error: source,
        }
    }

    /// The exit status a shell gives for this error where it has one: 127 for a command that does not
    /// exist, 126 for one that cannot be executed.
    pub fn exit_code(&self) -> Option<u8> {
        match self {
            Self::Exec { error, .. } if error.kind() == std::io::ErrorKind::NotFound => Some(127),
            Self::Exec { .. } => Some(126),
            _ => None,
        }
    }
}
