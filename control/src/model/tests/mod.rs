//! Unit tests of the cluster model: manifest parsing, the directory source, the translation into
//! service entries and their diff.

mod objects;
mod source;
mod translate;
