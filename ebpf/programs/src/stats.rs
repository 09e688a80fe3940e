//! Counting: every verdict and drop bumps the per-CPU (program, reason, direction) cell.

use strait_abi::{Direction, Program, Reason, stats_index};

use crate::maps::STATS_V1;

/// Adds one packet of `len` bytes to the (program, reason, direction) counter of this CPU.
#[inline(always)]
pub fn count(program: Program, reason: Reason, direction: Direction, len: u32) {
    if let Some(cell) = STATS_V1.get_ptr_mut(stats_index(program, reason, direction)) {
        // SAFETY: per-CPU cell of this CPU; programs do not preempt each other on one CPU.
        unsafe {
            (*cell).packets += 1;
            (*cell).bytes += u64::from(len);
        }
    }
}
