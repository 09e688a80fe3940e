//! Tearing the run's labs down on SIGINT, SIGTERM or SIGHUP. A handler only raises a flag (all a
//! signal handler may safely do); a watcher thread sees it, removes every lab [`register`]ed so far
//! and exits with status 130. The signals are handled, not blocked, so the processes the labs start
//! (agents, servers, clients) inherit the default dispositions and still stop on SIGTERM.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::CrossError;
use crate::netbench::run::progress;

/// Raised by the handler.
static STOP: AtomicBool = AtomicBool::new(false);
/// The labs to remove on a signal.
static LABS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// How often the watcher looks at the flag.
const POLL: Duration = Duration::from_millis(50);

extern "C" fn raise_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Adds `lab` to the labs removed on a signal (call before building it); refuses once a signal came,
/// so no lab is built that the watcher would miss.
pub fn register(lab: &str) -> Result<(), CrossError> {
    let mut labs = LABS.lock().unwrap_or_else(PoisonError::into_inner);
    if stopping() {
        return Err(CrossError::Interrupted);
    }
    labs.push(lab.to_owned());
    Ok(())
}

/// Whether a stop signal came.
pub fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// After a stop signal: waits for the watcher to remove the labs and end the process, so an error
/// that the teardown caused in the run is not reported as the run's failure.
pub fn wait_for_stop() -> ! {
    loop {
        std::thread::sleep(POLL);
    }
}

/// Installs the handlers and starts the watcher.
pub fn install() -> Result<(), CrossError> {
    let action = SigAction::new(
        SigHandler::Handler(raise_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.map_err(|e| CrossError::Io {
            what: "installing a handler for",
            path: signal.as_str().into(),
            source: e.into(),
        })?;
    }
    std::thread::spawn(|| {
        while !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
        }
        let labs = LABS.lock().unwrap_or_else(PoisonError::into_inner).clone();
        progress(format_args!(
            "cross-node: stopped: removing {} lab(s)",
            labs.len()
        ));
        for lab in &labs {
            if let Err(error) = strait_lab::down(lab) {
                progress(format_args!("cross-node: removing lab {lab}: {error}"));
            }
        }
        std::process::exit(130);
    });
    Ok(())
}
