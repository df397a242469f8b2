//! Where a queue's worker runs and what time it reads: CPU pinning, SCHED_FIFO, and the
//! monotonic clock the engine's `now` comes from. The system calls themselves (and their
//! `unsafe`) are in `syscall.rs`.
#![forbid(unsafe_code)]

use std::io;
use std::time::Duration;

use crate::syscall;

/// A worker thread could not be placed as asked.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// Pinning the worker thread.
    #[error("sched_setaffinity(cpu {cpu}): {source}")]
    Affinity {
        /// The CPU asked for.
        cpu: usize,
        /// Why (EINVAL: no such CPU in the allowed set).
        source: io::Error,
    },
    /// Giving the worker thread a real-time priority.
    #[error("sched_setscheduler(SCHED_FIFO, {prio}): {source}")]
    Scheduler {
        /// The priority asked for.
        prio: i32,
        /// Why (EPERM without CAP_SYS_NICE, EINVAL outside 1..=99).
        source: io::Error,
    },
}

/// Pins the calling thread to `cpu` (a worker to the core of its queue's interrupts).
pub fn pin_current_thread(cpu: usize) -> Result<(), SchedError> {
    syscall::pin_current_thread(cpu).map_err(|source| SchedError::Affinity { cpu, source })
}

/// Runs the calling thread under SCHED_FIFO at `prio` (1..=99).
///
/// Why a worker may want it: when the worker shares its CPU with the driver's NAPI work (veth,
/// or a NIC whose interrupts land on the worker's core), the fair scheduler splits the core
/// between the two, and NAPI keeps filling the RX ring with frames the worker has no time left
/// to answer, which are then dropped after all the work to deliver them. Under SCHED_FIFO the
/// worker drains its rings first and sleeps in `poll()` when idle; NAPI then delivers only
/// what the worker can take, and the excess is dropped early at the driver's ring.
/// bench/results/latest.md has the measurement.
pub fn set_fifo_priority(prio: i32) -> Result<(), SchedError> {
    syscall::set_fifo(prio).map_err(|source| SchedError::Scheduler { prio, source })
}

/// The monotonic clock (`CLOCK_MONOTONIC`): time since boot without suspend, the clock the
/// kernel's own TCP timers and timestamps run on. Every `now` handed to the engine by a
/// [`crate::Port`] worker comes from here.
pub fn monotonic_now() -> Duration {
    syscall::monotonic()
}
