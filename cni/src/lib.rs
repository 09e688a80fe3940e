//! strait-cni as a library: the agent protocol (shared with straitd) and the client the plugin uses.
//! Kept to std + serde so the plugin binary stays small and fast to exec.

pub mod client;
pub mod protocol;
