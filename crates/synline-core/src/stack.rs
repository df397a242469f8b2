//! The stack: what a network namespace is to the kernel. It holds the listener table, the
//! secrets, the global request cap and every worker's counters, and it makes the workers.

use crate::handoff::Handoffs;
use crate::listener::Tables;
use crate::secure_seq::Secrets;
use crate::stats::{Snapshot, WorkerStats};
use crate::worker::Worker;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex, MutexGuard};

/// Stack-wide settings, fixed when the stack is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackConfig {
    /// Workers (one per NIC queue).
    pub workers: usize,
    /// `net.core.somaxconn`: the cap on B (default 4096). It sizes nothing: accept lists grow
    /// with their children (accept_queue.rs).
    pub somaxconn: u32,
    /// Hard cap on live request socks over all workers: the engine's memory bound. Each
    /// worker may hold `max_requests / workers`, so the cap costs no shared
    /// counter on the hot path; a SYN beyond its worker's share is dropped as an allocation
    /// failure (S-6, ListenDrops).
    pub max_requests: usize,
    /// Requests each worker's table has room for before it grows.
    pub requests_per_worker_hint: usize,
    /// Frames each worker's hand-off queue holds.
    pub handoff_capacity: usize,
    /// For this long after a child is made, later segments of its flow that still reach the
    /// engine get `Verdict::Pass` (the embedder's established table decides, D-2) instead of
    /// meeting the listener. Zero (the default) turns it off. For embedders whose established
    /// table is elsewhere, like the daemon's kernel handoff (see `accepted`).
    pub accepted_grace: core::time::Duration,
    /// Fleet mode (README, "More than one machine"): every SYN-ACK carries a SYN cookie that
    /// any host holding the same cookie secrets validates, so a handshake survives a router
    /// moving its third ACK to another host. A stateful request takes a cookie as its ISS
    /// (with timestamps, also the cookie's TSval encoding of the options, K-3; without them
    /// it offers no window scaling, SACK or ECN, as a cookie SYN-ACK), and an ACK that finds
    /// no request is always checked against cookies (L-1 as after an overflow). Off by
    /// default: Linux has nothing like it.
    pub fleet: bool,
    /// Added to `now` for the cookie minute counter only (K-1, K-5). The engine's clock is
    /// the caller's monotonic one, which no two hosts share; the daemon sets this so that the
    /// counter follows the wall clock (`realtime - monotonic`), which a fleet's hosts share
    /// through NTP, and which survives a reboot.
    pub cookie_clock_offset: core::time::Duration,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            workers: 1,
            somaxconn: 4096,
            max_requests: 1 << 20,
            requests_per_worker_hint: 1024,
            handoff_capacity: 256,
            accepted_grace: core::time::Duration::ZERO,
            fleet: false,
            cookie_clock_offset: core::time::Duration::ZERO,
        }
    }
}

/// State shared by the stack handle, sockets and workers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: StackConfig,
    /// Bumped whenever `tables` changes; workers compare it once per frame.
    pub generation: AtomicU64,
    pub tables: Mutex<Arc<Tables>>,
    pub stats: Vec<Arc<WorkerStats>>,
    pub handoff: Handoffs,
    pub taken: Mutex<Vec<bool>>,
    /// `StackConfig::cookie_clock_offset` as it is now, in ns (the caller follows the wall
    /// clock's steps: `Stack::set_cookie_clock_offset`).
    pub cookie_clock_offset_ns: AtomicU64,
}

impl Shared {
    pub fn lock_tables(&self) -> MutexGuard<'_, Arc<Tables>> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a changed copy of the tables (copy, update, swap: RCU's write side).
    pub fn update_tables(&self, f: impl FnOnce(&mut Tables)) {
        let mut guard = self.lock_tables();
        let mut t = Tables::clone(&guard);
        f(&mut t);
        *guard = Arc::new(t);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// A handle on the stack. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stack {
    pub(crate) shared: Arc<Shared>,
}

impl Stack {
    /// A stack with `config` and the caller's `secrets`.
    pub fn new(config: StackConfig, secrets: Secrets) -> Stack {
        let workers = config.workers.max(1);
        let config = StackConfig { workers, ..config };
        Stack {
            shared: Arc::new(Shared {
                config,
                generation: AtomicU64::new(0),
                tables: Mutex::new(Arc::new(Tables::new(secrets))),
                stats: (0..workers)
                    .map(|_| Arc::new(WorkerStats::default()))
                    .collect(),
                handoff: Handoffs::new(workers, config.handoff_capacity),
                taken: Mutex::new(vec![false; workers]),
                cookie_clock_offset_ns: AtomicU64::new(config.cookie_clock_offset.as_nanos() as u64),
            }),
        }
    }

    /// The settings the stack was made with.
    pub fn config(&self) -> StackConfig {
        self.shared.config
    }

    /// Worker `id` (0-based, below `config().workers`). Each worker can be taken once: it owns
    /// its request shard.
    pub fn worker(&self, id: usize) -> Option<Worker> {
        let mut taken = self.shared.taken.lock().unwrap_or_else(|e| e.into_inner());
        let slot = taken.get_mut(id)?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(Worker::new(self.shared.clone(), id))
    }

    /// The counters of every worker, summed.
    pub fn stats(&self) -> Snapshot {
        let mut s = Snapshot::default();
        for w in &self.shared.stats {
            s.add(w);
        }
        s
    }

    /// Live request socks over all workers.
    pub fn live_requests(&self) -> usize {
        self.shared.stats.iter().map(|w| w.requests()).sum()
    }

    /// Moves the clock the cookie minute follows (`StackConfig::cookie_clock_offset`): a caller
    /// that follows the wall clock sets it again when the wall clock steps (NTP's first sync
    /// after boot), so hosts of a fleet keep agreeing on the minute.
    pub fn set_cookie_clock_offset(&self, offset: Duration) {
        self.shared.cookie_clock_offset_ns.store(
            offset.as_nanos() as u64,
            core::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Replaces the SYN-cookie secrets. Retired pairs keep validating their cookies for their
    /// two-minute life, as long as rotations are at least a minute apart (see
    /// `syncookie::PREVIOUS_COOKIE_KEYS`). `now` is the caller's clock.
    pub fn rotate_cookie_secrets(&self, keys: [[u8; 16]; 2], now: Duration) {
        self.shared.update_tables(|t| t.cookie.rotate(keys, now));
    }
}
