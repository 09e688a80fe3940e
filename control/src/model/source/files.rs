//! Reading and parsing manifest files for [`ManifestDirSource`](super::ManifestDirSource): one file,
//! or many at once on a few threads (a first sync or a rescan reads thousands; parsing is most of the
//! work and each file is independent), the results coming back in the order asked.

use std::fs;
use std::path::Path;

use strait_k8s::Object;
use strait_k8s::manifest::{ParseOptions, parse_str};

use super::SourceError;

/// At most this many threads read files at once.
const MAX_READERS: usize = 4;

/// Below this many files, one thread reads them all (a thread costs more than it saves).
const PARALLEL_FROM: usize = 16;

/// Reads and parses one file.
pub(super) fn load(path: &Path) -> Result<Vec<Object>, SourceError> {
    let text = fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_str(path, &text, &ParseOptions::AGENT)?.into_objects())
}

/// Reads and parses the files `names` of `dir`, on up to [`MAX_READERS`] threads (no more than the
/// machine's CPUs); the results are in the order of `names`.
pub(super) fn load_all<'n>(
    dir: &Path,
    names: impl ExactSizeIterator<Item = &'n str>,
) -> Vec<Result<Vec<Object>, SourceError>> {
    let names: Vec<&str> = names.collect();
    let readers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_READERS);
    if readers <= 1 || names.len() < PARALLEL_FROM {
        return names.iter().map(|name| load(&dir.join(name))).collect();
    }
    let per_reader = names.len().div_ceil(readers);
    std::thread::scope(|scope| {
        let parts: Vec<_> = names
            .chunks(per_reader)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|name| load(&dir.join(name)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
