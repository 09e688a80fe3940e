//! Zone behaviour on real k8s-openapi objects: the specification's example questions
//! ([`spec`]), CoreDNS's answers to the edges the specification leaves open ([`edges`]), and what a
//! Service build keeps or reports ([`build`]); malformed messages through the server's handler
//! ([`malformed`]); the server over real sockets ([`serving`]).

mod build;
mod edges;
mod fixtures;
mod malformed;
mod serving;
mod spec;
