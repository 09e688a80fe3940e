//! The dataplane's error type: one enum, structured variants, each saying what was being done.

use std::{io, path::PathBuf};

/// Everything that can go wrong in the dataplane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataplaneError {
    #[error(
        "the eBPF object is empty: this build skipped the eBPF build (AYA_BUILD_SKIP); rebuild without it"
    )]
    ObjectMissing,
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("program {name} is missing from the eBPF object")]
    ProgramMissing { name: &'static str },
    #[error("map {name} is missing from the eBPF object")]
    MapMissing { name: &'static str },
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "map {name} is full ({capacity} entries); raise its capacity in the agent configuration"
    )]
    MapFull { name: &'static str, capacity: u32 },
    #[error("link pin {path}: {message}")]
    LinkPin { path: PathBuf, message: String },
    #[error("interface {name} not found")]
    InterfaceNotFound { name: String },
    #[error("netlink: {action}: {source}")]
    Netlink {
        action: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
}

impl DataplaneError {
    /// A map operation's error: "full" (E2BIG on insert) names the map and its capacity.
    pub fn map(name: &'static str, capacity: u32, source: aya::maps::MapError) -> Self {
        match source {
            aya::maps::MapError::SyscallError(ref e)
                if e.io_error.raw_os_error() == Some(libc::E2BIG) =>
            {
                Self::MapFull { name, capacity }
            }
            source => Self::Map { name, source },
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}
