//! Unit tests of the cluster model: the overlay's node routes, the directory source, and the translation into service entries
//! (full and incremental, host ports included) and their diff.

mod host_ports;
mod nodes;
mod source;
mod translate;
