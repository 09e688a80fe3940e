//! Typed reads, writes and removals of the policy maps: hash maps keyed by address, LPM tries keyed by
//! their raw keys. A removal of an entry already gone succeeds; a full map is reported as full.

use std::collections::BTreeMap;

use aya::{
    Pod,
    maps::{HashMap, LpmTrie, Map, MapData, MapError},
};
use strait_abi::policy::PolicyAddr;

use super::keys::RawKey;
use crate::DataplaneError;

/// A map operation's error; a full LPM trie (ENOSPC, where a hash map says E2BIG) is reported as full
/// too.
fn map_error(name: &'static str, capacity: u32) -> impl Fn(MapError) -> DataplaneError {
    move |source| match source {
        MapError::SyscallError(ref e) if e.io_error.raw_os_error() == Some(libc::ENOSPC) => {
            DataplaneError::MapFull { name, capacity }
        }
        source => DataplaneError::map(name, capacity, source),
    }
}

/// Whether a removal failed only because the entry was already gone.
fn already_gone(error: &MapError) -> bool {
    match error {
        MapError::KeyNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// A hash map keyed by address, as address word → value.
pub(super) fn read_hash<V: Pod>(
    map: &mut Map,
    name: &'static str,
) -> Result<BTreeMap<u32, V>, DataplaneError> {
    let map: HashMap<&mut MapData, PolicyAddr, V> =
        HashMap::try_from(map).map_err(map_error(name, 0))?;
    let mut out = BTreeMap::new();
    for entry in &map {
        let (key, value) = entry.map_err(map_error(name, 0))?;
        out.insert(key.addr, value);
    }
    Ok(out)
}

pub(super) fn write_hash<V: Pod>(
    map: &mut Map,
    (name, capacity): (&'static str, u32),
    entries: &[(u32, V)],
) -> Result<(), DataplaneError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut map: HashMap<&mut MapData, PolicyAddr, V> =
        HashMap::try_from(map).map_err(map_error(name, 0))?;
    for (addr, value) in entries {
        map.insert(PolicyAddr { addr: *addr }, value, 0)
            .map_err(map_error(name, capacity))?;
    }
    Ok(())
}

pub(super) fn remove_hash<V: Pod>(
    map: &mut Map,
    name: &'static str,
    keys: &[u32],
) -> Result<(), DataplaneError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut map: HashMap<&mut MapData, PolicyAddr, V> =
        HashMap::try_from(map).map_err(map_error(name, 0))?;
    for addr in keys {
        match map.remove(&PolicyAddr { addr: *addr }) {
            Err(error) if !already_gone(&error) => return Err(map_error(name, 0)(error)),
            _ => {}
        }
    }
    Ok(())
}

/// An LPM trie's entries by their stored keys.
pub(super) fn read_trie<K: RawKey, V: Pod>(
    map: &mut Map,
    name: &'static str,
) -> Result<BTreeMap<K::Raw, V>, DataplaneError> {
    let trie: LpmTrie<&mut MapData, K, V> = LpmTrie::try_from(map).map_err(map_error(name, 0))?;
    let mut out = BTreeMap::new();
    for entry in &trie {
        let (key, value) = entry.map_err(map_error(name, 0))?;
        out.insert(K::raw(&key), value);
    }
    Ok(out)
}

pub(super) fn write_trie<K: RawKey, V: Pod>(
    map: &mut Map,
    (name, capacity): (&'static str, u32),
    entries: &[(K::Raw, V)],
) -> Result<(), DataplaneError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut trie: LpmTrie<&mut MapData, K, V> =
        LpmTrie::try_from(map).map_err(map_error(name, 0))?;
    for (raw, value) in entries {
        trie.insert(&K::key(raw), value, 0)
            .map_err(map_error(name, capacity))?;
    }
    Ok(())
}

pub(super) fn remove_trie<K: RawKey, V: Pod>(
    map: &mut Map,
    name: &'static str,
    keys: &[K::Raw],
) -> Result<(), DataplaneError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut trie: LpmTrie<&mut MapData, K, V> =
        LpmTrie::try_from(map).map_err(map_error(name, 0))?;
    for raw in keys {
        match trie.remove(&K::key(raw)) {
            Err(error) if !already_gone(&error) => return Err(map_error(name, 0)(error)),
            _ => {}
        }
    }
    Ok(())
}
