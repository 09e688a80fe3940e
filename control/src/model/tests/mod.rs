//! Unit tests of the cluster model: the overlay's node routes, the directory source, and the translation into service entries
//! (full and incremental) and their diff.

mod nodes;
mod source;
mod translate;
