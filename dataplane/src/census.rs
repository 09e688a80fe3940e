//! What the data path holds and where it runs: a [`Census`] keeps descriptors of its own to the loaded
//! object's maps (so counting never borrows the [`Dataplane`], whose owner serialises CNI calls),
//! counts each hash, LRU and LPM map's keys by walking them with `BPF_MAP_GET_NEXT_KEY` (arrays are
//! full by construction; the verdict ring buffer holds no entries and is left out), and counts the
//! kernel's links running each of the object's programs (tcx, XDP and cgroup attachments).

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
};

use aya::maps::{Map, MapData, MapType};

use crate::{Dataplane, DataplaneError};

/// The kinds of map the data path uses, as `bpftool` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Hash,
    LruHash,
    LpmTrie,
    Array,
    PercpuArray,
}

impl MapKind {
    /// The kind's name in labels and tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Hash => "hash",
            Self::LruHash => "lru_hash",
            Self::LpmTrie => "lpm_trie",
            Self::Array => "array",
            Self::PercpuArray => "percpu_array",
        }
    }

    /// Whether its entries are counted by walking its keys (arrays have every index).
    pub fn has_keys(self) -> bool {
        matches!(self, Self::Hash | Self::LruHash | Self::LpmTrie)
    }

    fn of(map_type: MapType) -> Option<Self> {
        match map_type {
            MapType::Hash => Some(Self::Hash),
            MapType::LruHash => Some(Self::LruHash),
            MapType::LpmTrie => Some(Self::LpmTrie),
            MapType::Array => Some(Self::Array),
            MapType::PerCpuArray => Some(Self::PercpuArray),
            _ => None,
        }
    }
}

/// One map's fill as a census found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapFill {
    /// The map's name in the object (`CT_V1`, ...).
    pub name: String,
    pub kind: MapKind,
    /// Its `max_entries`.
    pub capacity: u32,
    /// Entries present; for arrays, their length.
    pub entries: u64,
}

impl MapFill {
    /// Entries over capacity, 0 to 1.
    #[allow(clippy::cast_precision_loss)]
    pub fn ratio(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.entries as f64 / f64::from(self.capacity)
        }
    }
}

struct CountedMap {
    name: String,
    kind: MapKind,
    capacity: u32,
    key_size: u32,
    fd: OwnedFd,
}

/// Descriptors of its own to every countable map, and the kernel ids of the object's programs; see
/// [`Dataplane::census`].
pub struct Census {
    maps: Vec<CountedMap>,
    programs: Vec<(String, u32)>,
}

/// How many kernel links run one of the object's programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramLinks {
    /// The program's name in the object (`from_pod`, `xdp_uplink`, ...).
    pub program: String,
    pub links: u64,
}

impl Dataplane {
    /// A census of the loaded object's maps (hash, LRU, LPM, arrays) and programs, in name order.
    pub fn census(&self) -> Result<Census, DataplaneError> {
        let mut maps = Vec::new();
        for (name, map) in self.ebpf.maps() {
            // `.rodata`, `.bss`: the object's constants and globals, not tables.
            let Some(data) = map_data(map).filter(|_| !name.starts_with('.')) else {
                continue;
            };
            let info = data.info().map_err(|source| DataplaneError::Map {
                name: "census",
                source,
            })?;
            let Some(kind) = info.map_type().ok().and_then(MapKind::of) else {
                continue;
            };
            let fd = data.fd().as_fd().try_clone_to_owned().map_err(|e| {
                DataplaneError::io(format!("duplicating the descriptor of map {name}"), e)
            })?;
            maps.push(CountedMap {
                name: name.to_owned(),
                kind,
                capacity: info.max_entries(),
                key_size: info.key_size(),
                fd,
            });
        }
        maps.sort_by(|a, b| a.name.cmp(&b.name));
        let mut programs = Vec::new();
        for (name, program) in self.ebpf.programs() {
            let info = program.info().map_err(|source| DataplaneError::Program {
                name: "census",
                source,
            })?;
            programs.push((name.to_owned(), info.id()));
        }
        programs.sort();
        Ok(Census { maps, programs })
    }
}

impl Census {
    /// Links in the kernel running each of the object's programs (a program attached nowhere has
    /// none), over every link the kernel holds, in name order.
    pub fn program_links(&self) -> Vec<ProgramLinks> {
        let mut by_id: HashMap<u32, u64> = HashMap::new();
        for link in aya::programs::loaded_links() {
            match link {
                Ok(link) => *by_id.entry(link.program_id()).or_default() += 1,
                // A link released between listing and reading it.
                Err(error) => tracing::debug!(%error, "skipped a link"),
            }
        }
        self.programs
            .iter()
            .map(|(program, id)| ProgramLinks {
                program: program.clone(),
                links: by_id.get(id).copied().unwrap_or(0),
            })
            .collect()
    }

    /// Counts every map now. A map whose walk fails is reported with what was counted before the
    /// failure, and the error logged.
    pub fn count(&self) -> Vec<MapFill> {
        self.maps
            .iter()
            .map(|map| {
                let entries = if map.kind.has_keys() {
                    count_keys(map).unwrap_or_else(|(counted, error)| {
                        tracing::warn!(map = %map.name, %error, "counting map entries failed");
                        counted
                    })
                } else {
                    u64::from(map.capacity)
                };
                MapFill {
                    name: map.name.clone(),
                    kind: map.kind,
                    capacity: map.capacity,
                    entries,
                }
            })
            .collect()
    }
}

fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::LpmTrie(data)
        | Map::Array(data)
        | Map::PerCpuArray(data) => Some(data),
        _ => None,
    }
}

/// `bpf_attr` as `BPF_MAP_GET_NEXT_KEY` reads it.
#[repr(C)]
struct NextKeyAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    next_key: u64,
}

/// Walks the map's keys; on failure, how many it had counted and why. The walk is bounded by the
/// map's capacity (plus slack for entries added meanwhile), so a map changing under it ends.
fn count_keys(map: &CountedMap) -> Result<u64, (u64, std::io::Error)> {
    let size = usize::try_from(map.key_size).unwrap_or(0).max(1);
    let (mut key, mut next) = (vec![0u8; size], vec![0u8; size]);
    let bound = u64::from(map.capacity) * 2 + 16;
    let mut counted = 0u64;
    let mut first = true;
    while counted < bound {
        let mut attr = NextKeyAttr {
            map_fd: u32::try_from(map.fd.as_raw_fd()).unwrap_or(u32::MAX),
            _pad: 0,
            key: if first { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
        };
        // SAFETY: `attr` is a valid `bpf_attr` prefix for this command, its pointers name buffers
        // of the map's key size that outlive the call, and the size passed is `attr`'s own.
        let result = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                libc::c_long::from(BPF_MAP_GET_NEXT_KEY),
                &raw mut attr,
                std::mem::size_of::<NextKeyAttr>(),
            )
        };
        if result != 0 {
            let error = std::io::Error::last_os_error();
            return if error.raw_os_error() == Some(libc::ENOENT) {
                Ok(counted)
            } else {
                Err((counted, error))
            };
        }
        counted += 1;
        first = false;
        std::mem::swap(&mut key, &mut next);
    }
    Ok(counted)
}

/// The `bpf(2)` command number of `BPF_MAP_GET_NEXT_KEY`.
const BPF_MAP_GET_NEXT_KEY: i32 = 4;
