//! strait-cni as a library: the agent protocol (shared with straitd), the client the plugin uses,
//! and the CNI 1.1 plugin itself ([`plugin::run`]). Kept to std + serde so the plugin binary stays
//! small and fast to exec.

pub mod client;
pub mod codes;
pub mod config;
pub mod env;
pub mod install;
pub mod plugin;
pub mod protocol;
pub mod result;
pub mod version;
