//! Map names and default capacities. Names carry a layout version (`_V<n>`) that is bumped whenever a key or
//! value layout changes, because a pinned map is reused by name without any layout check.

/// Pod endpoints on this node: [`crate::EndpointKey`] -> [`crate::EndpointInfo`].
pub const ENDPOINT_MAP: &str = "ENDPOINT_V1";
/// Per-CPU packet/byte counters indexed by [`crate::stats_index`].
pub const STATS_MAP: &str = "STATS_V1";

/// Default number of endpoints a node can hold (overridable at load time).
pub const ENDPOINT_MAP_DEFAULT_CAPACITY: u32 = 16_384;

/// Every map the object declares, in the order the loader pins them.
pub const ALL_MAPS: [&str; 2] = [ENDPOINT_MAP, STATS_MAP];
