//! The `strait-cni` binary: reads the CNI environment and stdin, runs one command against straitd,
//! prints the result (or the CNI error object) and exits.

use std::{io::Read, process::ExitCode};

use strait_cni::{
    env::{self, EnvVars},
    plugin::{self, Outcome, PluginError, SocketAgent},
};

fn main() -> ExitCode {
    outcome().emit()
}

fn outcome() -> Outcome {
    let vars = match env::process_vars() {
        Ok(vars) => vars,
        Err(error) => return Outcome::failure(&PluginError::Env(error)),
    };
    match read_stdin(&vars) {
        Ok(stdin) => plugin::run(&vars, &stdin, &SocketAgent),
        Err(error) => Outcome::failure(&PluginError::Stdin(error)),
    }
}

/// The network configuration; VERSION does not read stdin (it may be a terminal).
fn read_stdin(vars: &EnvVars) -> std::io::Result<Vec<u8>> {
    let mut stdin = Vec::new();
    if vars.get("CNI_COMMAND").map(String::as_str) != Some("VERSION") {
        std::io::stdin().lock().read_to_end(&mut stdin)?;
    }
    Ok(stdin)
}
