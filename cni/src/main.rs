//! The `strait-cni` binary: reads the CNI environment and stdin, runs one command against straitd,
//! prints the result (or the CNI error object) and exits.

use std::{io::Read, process::ExitCode};

use strait_cni::{
    env,
    plugin::{self, Outcome, PluginError, SocketAgent},
};

fn main() -> ExitCode {
    outcome().emit()
}

fn outcome() -> Outcome {
    // Stdin is read even when the environment is unusable, so the error object can carry the
    // configuration's cniVersion.
    let stdin = read_stdin();
    match (env::process_vars(), stdin) {
        (Err(error), stdin) => {
            Outcome::failure(&PluginError::Env(error), &stdin.unwrap_or_default())
        }
        (Ok(_), Err(error)) => Outcome::failure(&PluginError::Stdin(error), b""),
        (Ok(vars), Ok(stdin)) => plugin::run(&vars, &stdin, &SocketAgent),
    }
}

/// The network configuration; VERSION does not read stdin (it may be a terminal).
fn read_stdin() -> std::io::Result<Vec<u8>> {
    let mut stdin = Vec::new();
    if std::env::var_os("CNI_COMMAND").is_none_or(|command| command != "VERSION") {
        std::io::stdin().lock().read_to_end(&mut stdin)?;
    }
    Ok(stdin)
}
