//! Reading the per-CPU STATS map into totals per (program, reason, direction), through the
//! [`Dataplane`] or through a [`StatsReader`] of its own (for readers that must not wait for whoever
//! holds the `Dataplane`).

use std::{borrow::Borrow, os::fd::AsFd as _};

use aya::maps::{Map, MapData, PerCpuArray};
pub use strait_abi::{Direction, Program, Reason};
use strait_abi::{StatsValue, maps::STATS_MAP, stats_index};

use crate::{Dataplane, DataplaneError};

/// One counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsSample {
    pub program: Program,
    pub reason: Reason,
    pub direction: Direction,
    pub packets: u64,
    pub bytes: u64,
}

impl Dataplane {
    /// Every (program, reason, direction) counter, summed over CPUs, including zeros.
    pub fn stats(&self) -> Result<Vec<StatsSample>, DataplaneError> {
        let map = self
            .ebpf
            .map(STATS_MAP)
            .ok_or(DataplaneError::MapMissing { name: STATS_MAP })?;
        let array: PerCpuArray<_, StatsValue> = PerCpuArray::try_from(map).map_err(map_error)?;
        sum_all(&array)
    }

    /// A handle of its own to the STATS map (a duplicate of the map's descriptor): it reads the same
    /// counters as [`Dataplane::stats`] without borrowing the `Dataplane`.
    pub fn stats_reader(&self) -> Result<StatsReader, DataplaneError> {
        let map = self
            .ebpf
            .map(STATS_MAP)
            .ok_or(DataplaneError::MapMissing { name: STATS_MAP })?;
        let data: &MapData = match map {
            Map::PerCpuArray(data) => data,
            _ => {
                return Err(DataplaneError::io(
                    format!("map {STATS_MAP}"),
                    std::io::Error::other("not a per-CPU array"),
                ));
            }
        };
        let fd = data.fd().as_fd().try_clone_to_owned().map_err(|e| {
            DataplaneError::io(format!("duplicating the descriptor of {STATS_MAP}"), e)
        })?;
        let own = MapData::from_fd(fd).map_err(map_error)?;
        let array = PerCpuArray::try_from(Map::PerCpuArray(own)).map_err(map_error)?;
        Ok(StatsReader { array })
    }
}

/// The STATS map on a descriptor of its own; see [`Dataplane::stats_reader`].
pub struct StatsReader {
    array: PerCpuArray<MapData, StatsValue>,
}

impl StatsReader {
    /// Every (program, reason, direction) counter, summed over CPUs, including zeros.
    pub fn read(&self) -> Result<Vec<StatsSample>, DataplaneError> {
        sum_all(&self.array)
    }
}

fn map_error(source: aya::maps::MapError) -> DataplaneError {
    DataplaneError::Map {
        name: STATS_MAP,
        source,
    }
}

fn sum_all<T: Borrow<MapData>>(
    array: &PerCpuArray<T, StatsValue>,
) -> Result<Vec<StatsSample>, DataplaneError> {
    let mut out = Vec::new();
    for program in Program::ALL {
        for reason in Reason::ALL {
            for direction in Direction::ALL {
                let values = array
                    .get(&stats_index(program, reason, direction), 0)
                    .map_err(map_error)?;
                let (packets, bytes) = values
                    .iter()
                    .fold((0, 0), |(p, b), v| (p + v.packets, b + v.bytes));
                out.push(StatsSample {
                    program,
                    reason,
                    direction,
                    packets,
                    bytes,
                });
            }
        }
    }
    Ok(out)
}
