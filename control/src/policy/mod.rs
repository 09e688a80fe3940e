//! NetworkPolicy on the node: [`identity`] numbers each distinct (namespace, pod labels) and maps every
//! pod address of the cluster to its number, the index the policy maps will be keyed by; [`compile`]
//! turns policies into the per-pod allow entries the data path will look up (see ARCHITECTURE.md,
//! "NetworkPolicy"). The semantics themselves live in `strait_k8s::netpol`.

pub mod compile;
pub mod identity;
