//! Source ports for a run's UDP probes. NetworkPolicy enforcement is stateful: a UDP 5-tuple seen
//! recently is an established flow and keeps its earlier verdict, so a probe that happened to reuse an
//! earlier run's (source pod, source port, destination, port) would be judged by the policy of that
//! run. Each run therefore reserves a window of source ports no recent run of the lab used: a counter in
//! the lab's state directory ([`COUNTER_FILE`]), read and advanced under an exclusive lock, names where
//! the window starts in [`FIRST`]`..`[`FIRST`]` + `[`SPAN`], wrapping around. Probe `i` of a probing pod
//! (its `i`-th UDP probe of the run) uses [`port`]`(offset, i)`; every probing pod uses the same window
//! (their tuples differ by source address). TCP probes keep ephemeral ports: a new SYN is always judged
//! afresh.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::Path,
};

use crate::LabError;

/// The first source port a UDP probe uses.
pub(super) const FIRST: u16 = 20_000;
/// How many source ports the windows rotate through: `FIRST..FIRST + SPAN`.
pub(super) const SPAN: usize = 40_000;
/// The counter's file in the lab's state directory: the offset (in `0..SPAN`) of the next window.
pub(super) const COUNTER_FILE: &str = "probe-udp-ports";

/// The source port of the `i`-th UDP probe of a pod in the window starting at `offset`.
pub(super) fn port(offset: usize, i: usize) -> u16 {
    FIRST + ((offset + i) % SPAN) as u16
}

/// Where the window after one of `size` ports starting at `offset` starts.
pub(super) fn next_offset(offset: usize, size: usize) -> usize {
    (offset + size) % SPAN
}

/// Reserves a window of `size` ports in the lab state directory `dir`: returns its offset and
/// advances the counter past it (read, advanced and written back under an exclusive lock on the file,
/// so concurrent runs get distinct windows). A missing or unreadable counter starts at 0.
pub(super) fn reserve(dir: &Path, size: usize) -> Result<usize, LabError> {
    let path = dir.join(COUNTER_FILE);
    let what = |doing: &str| format!("{doing} the UDP probe port counter {}", path.display());
    let mut file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LabError::io(what("opening"), e))?;
    file.lock().map_err(|e| LabError::io(what("locking"), e))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| LabError::io(what("reading"), e))?;
    let offset = text.trim().parse::<usize>().map_or(0, |o| o % SPAN);
    let next = next_offset(offset, size);
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.set_len(0))
        .and_then(|()| writeln!(file, "{next}"))
        .map_err(|e| LabError::io(what("writing"), e))?;
    // The lock goes with the file.
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn window(offset: usize, size: usize) -> BTreeSet<u16> {
        (0..size).map(|i| port(offset, i)).collect()
    }

    #[test]
    fn consecutive_windows_are_distinct_and_stay_in_range() {
        let in_range = |p: &u16| (FIRST..FIRST + SPAN as u16).contains(p);
        // The e2e model: 9 destinations × 2 UDP ports per probing pod.
        let size = 18;
        let mut offset = 0;
        let mut previous = window(offset, size);
        assert_eq!(previous.len(), size);
        for _ in 0..SPAN / size + 3 {
            offset = next_offset(offset, size);
            let current = window(offset, size);
            assert_eq!(current.len(), size, "ports distinct within a window");
            assert!(current.iter().all(in_range), "{current:?}");
            assert!(previous.is_disjoint(&current), "{previous:?} {current:?}");
            previous = current;
        }
        // A window straddling the end wraps around to FIRST.
        let last = SPAN - 5;
        let straddling = window(last, 10);
        assert!(straddling.iter().all(in_range));
        assert!(straddling.contains(&FIRST) && straddling.contains(&(FIRST + SPAN as u16 - 1)));
        assert_eq!(next_offset(last, 10), 5);
        assert!(window(next_offset(last, 10), 10).is_disjoint(&straddling));
        // No port is reused before the whole span has gone by.
        let mut seen = BTreeSet::new();
        let mut offset = 7;
        for _ in 0..SPAN / 1000 {
            assert!(seen.is_disjoint(&window(offset, 1000)));
            seen.extend(window(offset, 1000));
            offset = next_offset(offset, 1000);
        }
        assert_eq!(seen.len(), SPAN);
    }

    #[test]
    fn the_counter_persists_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(reserve(dir.path(), 18).unwrap(), 0);
        assert_eq!(reserve(dir.path(), 18).unwrap(), 18);
        assert_eq!(reserve(dir.path(), 4).unwrap(), 36);
        assert_eq!(reserve(dir.path(), 1).unwrap(), 40);
        // The counter wraps, and a corrupt one starts again at 0.
        std::fs::write(dir.path().join(COUNTER_FILE), format!("{}\n", SPAN - 2)).unwrap();
        assert_eq!(reserve(dir.path(), 18).unwrap(), SPAN - 2);
        assert_eq!(reserve(dir.path(), 1).unwrap(), 16);
        std::fs::write(dir.path().join(COUNTER_FILE), "garbage").unwrap();
        assert_eq!(reserve(dir.path(), 3).unwrap(), 0);
        assert_eq!(reserve(dir.path(), 3).unwrap(), 3);
    }
}
