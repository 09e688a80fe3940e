//! The numeric error codes the plugin reports to the runtime: CNI's well-known ones (0-99) and
//! strait's own (100+).

/// The runtime's cniVersion is not one this plugin speaks.
pub const INCOMPATIBLE_CNI_VERSION: u32 = 1;
/// The container (attachment) is unknown or does not exist.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// A required CNI_* environment variable is missing or invalid.
pub const INVALID_ENVIRONMENT_VARIABLES: u32 = 4;
/// Reading stdin or talking to the agent failed part-way.
pub const IO_FAILURE: u32 = 5;
/// Stdin is not JSON (or not the JSON shape CNI defines).
pub const DECODING_FAILURE: u32 = 6;
/// The network configuration (or the runtime's request) is invalid.
pub const INVALID_NETWORK_CONFIG: u32 = 7;
/// Transient: the runtime should retry later.
pub const TRY_AGAIN_LATER: u32 = 11;
/// STATUS: the plugin cannot add pods right now.
pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
/// strait: no free pod address left on this node (or an endpoint map is full).
pub const ADDRESSES_EXHAUSTED: u32 = 100;
/// strait: the agent failed for a reason of its own; its message says what.
pub const AGENT_INTERNAL_ERROR: u32 = 101;
