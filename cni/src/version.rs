//! The CNI specification versions this plugin speaks, and what each version allows.

use std::fmt;

/// The spec version the plugin itself implements (used in VERSION and error replies).
pub const PLUGIN_SPEC_VERSION: &str = "1.1.0";

/// A CNI specification version this plugin supports, oldest first (so `<` means "older").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl SpecVersion {
    /// Every supported version, oldest first.
    pub const ALL: [SpecVersion; 5] = [
        SpecVersion::V0_3_0,
        SpecVersion::V0_3_1,
        SpecVersion::V0_4_0,
        SpecVersion::V1_0_0,
        SpecVersion::V1_1_0,
    ];

    /// The version spelled exactly as `text`, if the plugin supports it.
    pub fn parse(text: &str) -> Option<SpecVersion> {
        SpecVersion::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Every supported version as text, oldest first.
    pub fn supported() -> Vec<&'static str> {
        SpecVersion::ALL
            .into_iter()
            .map(SpecVersion::as_str)
            .collect()
    }

    /// Results from 1.1.0 on may give an interface's `mtu`.
    pub fn interfaces_carry_mtu(self) -> bool {
        self >= SpecVersion::V1_1_0
    }

    /// Results before 1.0.0 carry `"version": "4"` in each `ips` entry.
    pub fn ips_carry_version(self) -> bool {
        self < SpecVersion::V1_0_0
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_supported_versions_exactly() {
        assert_eq!(SpecVersion::parse("0.4.0"), Some(SpecVersion::V0_4_0));
        assert_eq!(SpecVersion::parse("1.1.0"), Some(SpecVersion::V1_1_0));
        assert_eq!(SpecVersion::parse("1.1"), None);
        assert_eq!(SpecVersion::parse("0.2.0"), None);
        assert_eq!(SpecVersion::parse(""), None);
    }

    #[test]
    fn versions_order_oldest_first() {
        assert!(SpecVersion::V0_3_1 < SpecVersion::V0_4_0);
        assert!(SpecVersion::V1_0_0 < SpecVersion::V1_1_0);
        assert!(SpecVersion::V0_4_0.ips_carry_version());
        assert!(!SpecVersion::V1_0_0.ips_carry_version());
    }

    #[test]
    fn supported_list_matches_the_version_reply() {
        assert_eq!(
            SpecVersion::supported(),
            ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
        );
    }
}
