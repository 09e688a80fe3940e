//! `strait-install-cni`: the DaemonSet's init container step. Copies the `strait-cni` plugin and the
//! network configuration list into the node's CNI directories (under `--host-root`), atomically and
//! only when they differ; `--uninstall` removes both. std only, like the plugin.

use std::path::PathBuf;
use std::process::ExitCode;

use strait_cni::install::{self, DEFAULT_CONFLIST_NAME, FileOutcome, InstallPlan};

const HELP: &str = "\
strait-install-cni: install strait's CNI plugin and configuration on a node

Usage: strait-install-cni [OPTIONS]

Copies the strait-cni binary to <host-root>/opt/cni/bin/ and the network configuration list to
<host-root>/etc/cni/net.d/<conflist-name>, each through a temporary file and a rename, and only when
its content differs (running it again changes nothing). The list is checked first: a list the plugin
would refuse is an error and nothing is written.

Options:
  --host-root DIR       the node's root as mounted in this container [default: /host]
  --conflist FILE       the network configuration list to install [default: /etc/strait/cni/conflist.json]
  --conflist-name NAME  its file name on the node; runtimes use the first by name, so 05- comes before
                        10-flannel.conflist [default: 05-strait.conflist]
  --plugin FILE         the plugin binary [default: strait-cni next to this program]
  --uninstall           remove the plugin and the list instead
  -h, --help            print this help
";

struct Args {
    plan: InstallPlan,
    conflist: PathBuf,
    uninstall: bool,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut host_root = PathBuf::from("/host");
    let mut conflist = PathBuf::from("/etc/strait/cni/conflist.json");
    let mut conflist_name = DEFAULT_CONFLIST_NAME.to_owned();
    let mut plugin = None;
    let mut uninstall = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--host-root" => host_root = value("--host-root")?.into(),
            "--conflist" => conflist = value("--conflist")?.into(),
            "--conflist-name" => conflist_name = value("--conflist-name")?,
            "--plugin" => plugin = Some(PathBuf::from(value("--plugin")?)),
            "--uninstall" => uninstall = true,
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    let plugin = match plugin {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| format!("finding this program's directory: {e}"))?
            .with_file_name(install::PLUGIN_NAME),
    };
    Ok(Some(Args {
        plan: InstallPlan {
            host_root,
            plugin,
            conflist: Vec::new(),
            conflist_name,
        },
        conflist,
        uninstall,
    }))
}

fn run() -> Result<(), String> {
    let Some(mut args) = parse_args()? else {
        print!("{HELP}");
        return Ok(());
    };
    let report = if args.uninstall {
        install::uninstall(&args.plan)
    } else {
        args.plan.conflist = std::fs::read(&args.conflist)
            .map_err(|e| format!("reading {}: {e}", args.conflist.display()))?;
        install::install(&args.plan)
    }
    .map_err(|e| e.to_string())?;
    for (path, outcome) in report.files {
        let what = match outcome {
            FileOutcome::Written => "written",
            FileOutcome::Unchanged => "unchanged",
            FileOutcome::Removed => "removed",
            FileOutcome::Absent => "absent",
        };
        println!("{}: {what}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("strait-install-cni: {error}");
            ExitCode::FAILURE
        }
    }
}
