//! The test step after one build: `cargo test --no-run` builds every test binary once and lists them
//! (its JSON messages name each executable), then the lab suite (`e2e`, the longest, and one whose
//! labs have run-unique names) runs in its own process beside the other binaries, which run one after
//! another. Each binary's output is printed whole when it ends, with its duration, so parallel output
//! never interleaves; the libtest summaries are added up. Doc tests are not run (the workspace has none).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// One test executable and where cargo would run it from (its package's directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestBinary {
    /// `package/target` (`strait-tests/e2e`, `strait-control/lib`).
    pub name: String,
    pub path: PathBuf,
    pub dir: PathBuf,
}

/// What one binary did.
pub struct Ran {
    pub binary: TestBinary,
    pub output: String,
    pub ok: bool,
    pub took: Duration,
}

/// The test binaries named in `cargo test --no-run --message-format json` output.
pub fn parse_artifacts(messages: &str) -> Vec<TestBinary> {
    let mut out = Vec::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let (Some(path), Some(manifest)) = (
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let package = message["package_id"]
            .as_str()
            .and_then(package_name)
            .unwrap_or("?");
        let target = message["target"]["name"].as_str().unwrap_or("?");
        let kind = message["target"]["kind"][0].as_str().unwrap_or("?");
        let target = if kind == "lib" { "lib" } else { target };
        out.push(TestBinary {
            name: format!("{package}/{target}"),
            path: PathBuf::from(path),
            dir: Path::new(manifest)
                .parent()
                .map_or_else(PathBuf::new, Path::to_path_buf),
        });
    }
    out
}

/// The package name in a cargo package id (`path+file:///w/tests#strait-tests@0.1.0`, or the older
/// `strait-tests 0.1.0 (path+file:///...)`).
fn package_name(id: &str) -> Option<&str> {
    if let Some((url, rest)) = id.rsplit_once('#') {
        // `...#name@version`, or `.../name#version` when the name is the directory's.
        return match rest.split_once('@') {
            Some((name, _)) => Some(name),
            None => url.rsplit('/').next(),
        };
    }
    id.split_whitespace().next()
}

/// Builds every test binary of the workspace (strait-ebpf excluded) and lists them.
pub fn build(root: &Path) -> Result<Vec<TestBinary>> {
    let mut command = Command::new("cargo");
    command.current_dir(root).args([
        "test",
        "--workspace",
        "--exclude",
        "strait-ebpf",
        "--no-run",
        "--message-format",
        "json-render-diagnostics",
    ]);
    let messages = cmd::output(&mut command)?;
    let binaries = parse_artifacts(&messages);
    if binaries.is_empty() {
        bail!("`cargo test --no-run` built no test binary");
    }
    Ok(binaries)
}

fn run_one(binary: &TestBinary, envs: &[(String, PathBuf)]) -> Ran {
    let started = Instant::now();
    let mut command = Command::new(&binary.path);
    command
        .current_dir(&binary.dir)
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "1");
    for (key, value) in envs {
        command.env(key, value);
    }
    let (output, ok) = match command.output() {
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            (text, out.status.success())
        }
        Err(error) => (
            format!("cannot start {}: {error}", binary.path.display()),
            false,
        ),
    };
    Ran {
        binary: binary.clone(),
        output,
        ok,
        took: started.elapsed(),
    }
}

/// Runs the binaries: those for which `alone` holds each in a process of its own at the same time as
/// the rest, which run one after another. `report` sees each as it ends.
pub fn run(
    binaries: &[TestBinary],
    alone: impl Fn(&TestBinary) -> bool,
    envs: &[(String, PathBuf)],
    mut report: impl FnMut(&Ran),
) -> Result<Vec<Ran>> {
    let (parallel, serial): (Vec<_>, Vec<_>) = binaries.iter().cloned().partition(|b| alone(b));
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut threads = Vec::new();
    for binary in parallel {
        let (sender, envs) = (sender.clone(), envs.to_vec());
        threads.push(thread::spawn(move || {
            let _ = sender.send(run_one(&binary, &envs));
        }));
    }
    {
        let (sender, envs) = (sender.clone(), envs.to_vec());
        threads.push(thread::spawn(move || {
            for binary in serial {
                let _ = sender.send(run_one(&binary, &envs));
            }
        }));
    }
    drop(sender);
    let mut ran = Vec::new();
    for result in receiver {
        report(&result);
        ran.push(result);
    }
    for thread in threads {
        thread
            .join()
            .ok()
            .context("a test runner thread panicked")?;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_name_package_and_target_and_skip_non_tests() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/tests#strait-tests@0.1.0","manifest_path":"/w/tests/Cargo.toml","target":{"kind":["test"],"name":"e2e"},"profile":{"test":true},"executable":"/w/target/debug/deps/e2e-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"strait-k8s 0.1.0 (path+file:///w/k8s)","manifest_path":"/w/k8s/Cargo.toml","target":{"kind":["lib"],"name":"strait_k8s"},"profile":{"test":true},"executable":"/w/target/debug/deps/strait_k8s-2"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/k8s#strait-k8s@0.1.0","manifest_path":"/w/k8s/Cargo.toml","target":{"kind":["lib"],"name":"strait_k8s"},"profile":{"test":false},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///w/xtask#0.1.0","manifest_path":"/w/xtask/Cargo.toml","target":{"kind":["bin"],"name":"xtask"},"profile":{"test":true},"executable":"/w/target/debug/deps/xtask-3"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\nnot json\n"
        );
        let found = parse_artifacts(messages);
        assert_eq!(
            found,
            [
                TestBinary {
                    name: "strait-tests/e2e".into(),
                    path: "/w/target/debug/deps/e2e-1".into(),
                    dir: "/w/tests".into(),
                },
                TestBinary {
                    name: "strait-k8s/lib".into(),
                    path: "/w/target/debug/deps/strait_k8s-2".into(),
                    dir: "/w/k8s".into(),
                },
                TestBinary {
                    name: "xtask/xtask".into(),
                    path: "/w/target/debug/deps/xtask-3".into(),
                    dir: "/w/xtask".into(),
                },
            ]
        );
    }

    #[test]
    fn alone_binaries_run_beside_the_serial_ones_and_every_output_comes_back() {
        // Tiny scripts stand in for test binaries.
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            let mut perms = std::fs::metadata(&path).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
            std::fs::set_permissions(&path, perms).unwrap();
            TestBinary {
                name: name.into(),
                path,
                dir: dir.path().to_path_buf(),
            }
        };
        let binaries = [
            script(
                "slow",
                "sleep 0.3; echo 'test result: ok. 2 passed; 0 failed'",
            ),
            script("a", "echo \"in $PWD with $MARK\""),
            script("b", "echo failing >&2; exit 1"),
        ];
        let envs = [("MARK".to_owned(), PathBuf::from("m1"))];
        let started = Instant::now();
        let mut order = Vec::new();
        let ran = run(
            &binaries,
            |b| b.name == "slow",
            &envs,
            |r| order.push(r.binary.name.clone()),
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_millis(1_500));
        assert_eq!(order.last().map(String::as_str), Some("slow"), "{order:?}");
        let by_name = |n: &str| ran.iter().find(|r| r.binary.name == n).unwrap();
        assert!(by_name("slow").ok && by_name("slow").output.contains("2 passed"));
        assert!(
            by_name("a").output.contains("with m1"),
            "{}",
            by_name("a").output
        );
        assert!(!by_name("b").ok && by_name("b").output.contains("failing"));
    }
}
