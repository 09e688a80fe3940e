//! Printing to stdout when the reader may have gone (`netbench report | head -1`). Rust ignores SIGPIPE,
//! so a write to a closed pipe fails with `BrokenPipe`, and `println!` turns that into a panic. The
//! benchmarks print through [`print`] instead: a closed stdout comes back as an [`OutputError`] that
//! [`OutputError::is_closed`] recognises, and the binary stops quietly (its guards still remove its
//! labs), rather than resetting SIGPIPE, which would kill it mid-run without cleaning up.

use std::io::{self, Write as _};

/// Writing to stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout failed")]
pub struct OutputError(#[source] io::Error);

impl OutputError {
    /// Whether the reader closed the pipe: not a failure of the program, only the end of its output.
    pub fn is_closed(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Writes `text` and a newline to stdout and flushes it.
pub fn print(text: impl std::fmt::Display) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(OutputError)
}

/// Whether `error` or any error in its chain of sources is a closed stdout ([`OutputError::is_closed`]).
pub fn is_closed_stdout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error
            .downcast_ref::<OutputError>()
            .is_some_and(OutputError::is_closed)
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("publishing")]
    struct Wrapper(#[source] OutputError);

    #[test]
    fn a_closed_pipe_is_recognised_through_wrappers_and_other_errors_are_not() {
        let closed = OutputError(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(closed.is_closed());
        assert!(is_closed_stdout(&Wrapper(closed)));
        let full = OutputError(io::Error::from(io::ErrorKind::StorageFull));
        assert!(!full.is_closed());
        assert!(!is_closed_stdout(&Wrapper(full)));
        assert!(!is_closed_stdout(&io::Error::from(
            io::ErrorKind::BrokenPipe
        )));
    }
}
