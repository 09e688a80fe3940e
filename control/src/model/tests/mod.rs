//! Unit tests of the cluster model: the directory source, and the translation into service entries
//! (full and incremental) and their diff.

mod source;
mod translate;
