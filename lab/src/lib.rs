//! strait-lab: a local multi-node cluster made of network namespaces, for demos, end-to-end tests and
//! benchmarks. Each node is a namespace running `straitd`; each pod is a namespace set up by invoking
//! `strait-cni` exactly as a container runtime would, running a built-in workload that names itself.

pub mod announce;
pub mod cgroup;
pub mod cluster;
pub mod cni_exec;
pub mod connbench;
pub mod controlplane;
pub mod manifests;
pub mod names;
pub mod network;
pub mod pods;
pub mod probe;
pub mod process;
pub mod publish;
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
    #[error("lab {0} does not exist (see `strait lab status --all` or `ls /run/strait-lab`)")]
    NoSuchLab(String),
    #[error("lab {0} already exists; tear it down first with `strait lab down --name {0}`")]
    Exists(String),
    #[error("{0}")]
    Environment(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Manifest(#[from] manifests::ManifestError),
    #[error("CNI {command} failed{}: {message}", code.map(|c| format!(" with code {c}")).unwrap_or_default())]
    Cni {
        command: String,
        code: Option<u64>,
        message: String,
    },
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

impl LabError {
    /// Wraps an I/O error with what was being done.
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}
