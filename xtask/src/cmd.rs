//! Running commands and reporting them: each command is shown as a shell line (`$ ...`) before it runs,
//! and a failure names the command and its exit status. Also small host queries (PATH lookup, euid).

use std::{
    env, fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};

/// Shows `cmd` as a shell line, paths under the current directory made relative. Environment
/// overrides come first; a working directory other than the current one becomes `cd DIR && ...`.
pub fn display(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            ));
        }
    }
    parts.push(quote(&shorten(Path::new(cmd.get_program()))));
    parts.extend(cmd.get_args().map(|arg| quote(&arg.to_string_lossy())));
    let line = parts.join(" ");
    match cmd.get_current_dir() {
        Some(dir) => format!("cd {} && {line}", quote(&shorten(dir))),
        None => line,
    }
}

/// Prints `$ <cmd>` and runs it with inherited stdio; fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(status.success(), "`{shown}` failed ({status})");
    Ok(())
}

/// Prints `$ <cmd>`, runs it with stderr inherited and returns its stdout; fails unless it exits with 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    println!("$ {shown}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    ensure!(out.status.success(), "`{shown}` failed ({})", out.status);
    String::from_utf8(out.stdout).with_context(|| format!("`{shown}` printed non-UTF-8 output"))
}

/// Runs `cmd` silently and returns its stdout when it starts and exits with 0, else `None`.
/// For probes such as `tool --version`, where failure only means "not there yet".
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first executable file named `name` in a `PATH` directory, like the shell's `command -v`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True when `path` is a regular file (after following links) with an execute bit set.
pub fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Whether this process runs with effective uid 0, read from the `Uid:` line of `/proc/self/status`
/// (real, effective, saved, filesystem).
pub fn is_root() -> Result<bool> {
    let status =
        fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let Some(line) = status.lines().find_map(|line| line.strip_prefix("Uid:")) else {
        bail!("/proc/self/status has no Uid line");
    };
    let effective = line
        .split_whitespace()
        .nth(1)
        .context("the Uid line of /proc/self/status has no effective uid")?;
    Ok(effective == "0")
}

/// A duration for humans: `0.4s`, `12.3s`, `2m05s`.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn shorten(path: &Path) -> String {
    env::current_dir()
        .ok()
        .and_then(|base| {
            path.strip_prefix(base)
                .ok()
                .filter(|rest| !rest.as_os_str().is_empty())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%^".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("--check"), "--check");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn displays_env_program_and_args() {
        let mut cmd = Command::new("cargo");
        cmd.env("RUST_BACKTRACE", "1").args(["test", "a filter"]);
        assert_eq!(display(&cmd), "RUST_BACKTRACE=1 cargo test 'a filter'");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }
}
