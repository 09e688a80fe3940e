//! Every name and path a lab uses, derived from the lab's name in one place, so `down` can find all of it
//! again (also after a crash) and two labs never collide.

use std::path::PathBuf;

/// Where lab state lives.
pub const LAB_RUN_DIR: &str = "/run/strait-lab";
/// Longest lab name (keeps namespace names readable and unique).
pub const MAX_LAB_NAME: usize = 20;

/// Why a lab name is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "lab name {0:?} is not valid: use 1-{MAX_LAB_NAME} lowercase letters, digits or '-', starting with a letter"
)]
pub struct BadLabName(pub String);

/// Names derived from one lab's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabNames {
    pub lab: String,
}

impl LabNames {
    /// Validates `lab` and returns its names.
    pub fn new(lab: &str) -> Result<Self, BadLabName> {
        let ok = !lab.is_empty()
            && lab.len() <= MAX_LAB_NAME
            && lab.starts_with(|c: char| c.is_ascii_lowercase())
            && lab
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !lab.ends_with('-');
        if ok {
            Ok(Self {
                lab: lab.to_owned(),
            })
        } else {
            Err(BadLabName(lab.to_owned()))
        }
    }

    /// Prefix of every network namespace of this lab. The '.' cannot occur in a lab name, so the prefix
    /// of lab `a` never matches a namespace of lab `a-b`.
    pub fn netns_prefix(&self) -> String {
        format!("st-{}.", self.lab)
    }

    /// The underlay namespace (the lab's "physical" network: one bridge, no route out).
    pub fn underlay_netns(&self) -> String {
        format!("{}underlay", self.netns_prefix())
    }

    /// The external client namespace on the underlay.
    pub fn external_netns(&self) -> String {
        format!("{}external", self.netns_prefix())
    }

    /// Kubernetes name of node `index` (1-based).
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-node-{index}", self.lab)
    }

    /// Namespace of node `index`.
    pub fn node_netns(&self, index: usize) -> String {
        format!("{}node-{index}", self.netns_prefix())
    }

    /// Namespace of a pod.
    pub fn pod_netns(&self, namespace: &str, pod: &str) -> String {
        format!("{}pod-{namespace}-{pod}", self.netns_prefix())
    }

    /// Whether a pin directory name (under bpffs `strait/`) belongs to one of this lab's nodes.
    pub fn owns_pin_dir(&self, dir_name: &str) -> bool {
        dir_name
            .strip_prefix(&format!("{}-node-", self.lab))
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
    }

    /// State directory of the lab.
    pub fn run_dir(&self) -> PathBuf {
        PathBuf::from(LAB_RUN_DIR).join(&self.lab)
    }

    /// State directory of a node (agent socket, agent state, CNI config, logs).
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.run_dir().join("nodes").join(node)
    }

    /// The lab's top cgroup, relative to the cgroup2 mount.
    pub fn cgroup(&self) -> String {
        format!("strait-{}", self.lab)
    }

    /// Environment marker every lab process carries, so `down` can find strays.
    pub fn process_marker(&self) -> String {
        format!("STRAIT_LAB={}", self.lab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_validated() {
        assert!(LabNames::new("demo").is_ok());
        assert!(LabNames::new("ci-42").is_ok());
        for bad in [
            "",
            "Demo",
            "1lab",
            "a_b",
            "trailing-",
            "a-name-that-is-far-too-long",
        ] {
            assert_eq!(LabNames::new(bad), Err(BadLabName(bad.to_owned())), "{bad}");
        }
    }

    #[test]
    fn every_namespace_carries_the_lab_prefix() {
        let names = LabNames::new("t1").unwrap();
        let prefix = names.netns_prefix();
        for ns in [
            names.underlay_netns(),
            names.external_netns(),
            names.node_netns(1),
            names.pod_netns("default", "web-abc"),
        ] {
            assert!(ns.starts_with(&prefix), "{ns}");
        }
        assert_eq!(names.node_name(1), "t1-node-1");
        // Lab `t1-b` never looks like lab `t1`.
        let other = LabNames::new("t1-b").unwrap();
        assert!(!other.node_netns(1).starts_with(&prefix));
        assert!(!names.owns_pin_dir(&other.node_name(1)));
        assert!(names.owns_pin_dir("t1-node-12"));
    }
}
