//! Reading the per-CPU STATS map into totals per (program, reason, direction).

use aya::maps::PerCpuArray;
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
        let array: PerCpuArray<_, StatsValue> =
            PerCpuArray::try_from(map).map_err(|source| DataplaneError::Map {
                name: STATS_MAP,
                source,
            })?;
        let mut out = Vec::new();
        for program in Program::ALL {
            for reason in Reason::ALL {
                for direction in Direction::ALL {
                    let values = array
                        .get(&stats_index(program, reason, direction), 0)
                        .map_err(|source| DataplaneError::Map {
                            name: STATS_MAP,
                            source,
                        })?;
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
}
