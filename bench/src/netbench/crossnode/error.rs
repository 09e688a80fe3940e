//! Why a cross-node run failed. Every message names the stack, scenario, lab or file involved.

use std::path::PathBuf;

use strait_lab::LabError;

use crate::netbench::run::RunError;

/// Why a cross-node run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrossError {
    #[error("{0}")]
    Invalid(String),
    /// Building or driving a lab failed.
    #[error("{what}")]
    Lab {
        what: String,
        #[source]
        source: Box<LabError>,
    },
    /// A stack does not carry a scenario's traffic (checked before measuring).
    #[error("{stack} does not work for {scenario}")]
    NotWorking {
        stack: &'static str,
        scenario: &'static str,
        #[source]
        source: Box<RunError>,
    },
    /// A load test, the server or netbench's shared setup failed.
    #[error("{what}")]
    Run {
        what: String,
        #[source]
        source: Box<RunError>,
    },
    /// A joined node (or its pod) did not become reachable.
    #[error("join: {0}")]
    Join(String),
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a cross-node run", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("printing the tables")]
    Output(#[from] crate::stdout::OutputError),
}

/// Maps a lab error to [`CrossError::Lab`] saying what was being done.
pub fn lab(what: impl Into<String>) -> impl FnOnce(LabError) -> CrossError {
    let what = what.into();
    move |source| CrossError::Lab {
        what,
        source: Box::new(source),
    }
}

/// Maps a netbench error to [`CrossError::Run`] saying what was being done.
pub fn run(what: impl Into<String>) -> impl FnOnce(RunError) -> CrossError {
    let what = what.into();
    move |source| CrossError::Run {
        what,
        source: Box::new(source),
    }
}
