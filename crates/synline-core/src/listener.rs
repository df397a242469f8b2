//! Listeners and the table the workers look them up in.
//!
//! A [`Listener`] is what the kernel calls the listening socket's `inet_connection_sock` with
//! its `request_sock_queue`: the settings, the atomics `qlen` and `young` (request socks in
//! the SYN queue, and those not yet retransmitted), the accept list with `ack_backlog`, and
//! the time of the last SYN-queue overflow (D-3: nothing here takes a lock on the hot path).
//!
//! The table of listeners changes only on listen() and close(). Workers read an immutable
//! snapshot ([`Tables`]) behind an `Arc` and check one generation counter per frame; when it
//! moved they take the new snapshot under a mutex. That is RCU's read side (a reader never
//! waits and never writes a shared line) without an epoch scheme: the old snapshot is freed
//! when its last reader lets go of its `Arc`.

use crate::accept_queue::AcceptQueue;
use crate::secure_seq::Secrets;
use crate::settings::{ListenerConfig, ListenerSettings};
use crate::syncookie::CookieKeys;
use core::net::{IpAddr, SocketAddr};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use core::time::Duration;
use crossbeam::utils::CachePadded;
use hashbrown::HashMap;
use std::sync::Arc;

/// One young request in the packed queue counter.
const YOUNG: u64 = 1 << 32;

/// L-1: a cookie ACK is only checked if a SYN-queue overflow was recorded within
/// MAX_SYNCOOKIE_AGE * 60 s (`TCP_SYNCOOKIE_VALID`).
pub const SYNCOOKIE_VALID_SECS: u64 = 120;

/// A listening socket's shared state.
#[derive(Debug)]
pub struct Listener {
    /// Bound address (the unspecified address for a wildcard listener).
    pub addr: SocketAddr,
    settings: ListenerSettings,
    /// B, `sk_max_ack_backlog`.
    backlog: AtomicU32,
    /// qlen (request socks in the SYN queue) in the low 32 bits and young (those that have not
    /// timed out yet, T-2, T-5) in the high 32: one cache line and one locked instruction per
    /// SYN and per removal, where two counters would take two.
    /// On a cache line of its own: both workers write it on every SYN and every removal, and
    /// sharing a line with the settings every SYN reads would make each of those reads a miss.
    queue: CachePadded<AtomicU64>,
    /// Last SYN-queue overflow, in seconds of the caller's clock plus one (0: never).
    last_overflow: AtomicU64,
    listening: AtomicBool,
    synflood_warned: AtomicBool,
    /// The accept list.
    pub accept_queue: AcceptQueue,
    /// The embedder's own accept queue, when children leave the accept list at once for a
    /// queue the engine cannot see (the daemon hands them to the application's kernel
    /// listener): its length in the low 32 bits and its bound in the high 32, as last
    /// measured by the embedder; 0 when there is none.
    embedder_queue: AtomicU64,
}

impl Listener {
    pub(crate) fn new(addr: SocketAddr, config: &ListenerConfig, backlog: u32) -> Self {
        Listener {
            addr,
            settings: ListenerSettings::new(config),
            backlog: AtomicU32::new(backlog),
            queue: CachePadded::new(AtomicU64::new(0)),
            last_overflow: AtomicU64::new(0),
            listening: AtomicBool::new(true),
            synflood_warned: AtomicBool::new(false),
            accept_queue: AcceptQueue::new(),
            embedder_queue: AtomicU64::new(0),
        }
    }

    /// S-4, C-7 `sk_acceptq_is_full`: the accept list holds more than B, or the embedder's
    /// queue its children go to is over its own bound (`ack_backlog > max_ack_backlog`, the
    /// kernel's test).
    #[inline]
    pub fn accept_queue_is_full(&self, backlog: u32) -> bool {
        if self.accept_queue.is_full(backlog) {
            return true;
        }
        // Layout: len in bits 0..32, max + 1 in bits 32..64 (0: no embedder queue).
        let e = self.embedder_queue.load(Relaxed);
        let max_plus_one = (e >> 32) as u32;
        max_plus_one != 0 && (e as u32) > max_plus_one - 1
    }

    /// Records the embedder's accept queue (`len`, `max`), or forgets it (`None`).
    pub fn set_embedder_queue(&self, q: Option<(u32, u32)>) {
        let v = q.map_or(0, |(len, max)| {
            u64::from(len) | u64::from(max.min(u32::MAX - 1) + 1) << 32
        });
        self.embedder_queue.store(v, Relaxed);
    }

    /// The embedder's accept queue as last recorded: (`len`, `max`).
    pub fn embedder_queue(&self) -> Option<(u32, u32)> {
        let e = self.embedder_queue.load(Relaxed);
        let max_plus_one = (e >> 32) as u32;
        (max_plus_one != 0).then(|| (e as u32, max_plus_one - 1))
    }

    /// Current settings.
    #[inline]
    pub fn config(&self) -> ListenerConfig {
        self.settings.load()
    }

    /// Changes the settings; takes effect for the next segment.
    pub fn set_config(&self, c: &ListenerConfig) {
        self.settings.store(c)
    }

    /// B.
    #[inline]
    pub fn backlog(&self) -> u32 {
        self.backlog.load(Relaxed)
    }

    /// Changes B, as `listen()` on a listening socket does (the caller caps it by somaxconn).
    pub fn set_backlog(&self, b: u32) {
        self.backlog.store(b, Relaxed)
    }

    /// A-1 for an embedder that holds the listener rather than its socket (a worker thread
    /// draining every listener's accept list, while the socket stays with its owner): the
    /// head of the accept list.
    pub fn accept(&self) -> Option<crate::Child> {
        self.accept_queue.pop()
    }

    /// Children waiting in the accept list (`sk_ack_backlog`).
    pub fn accept_queue_len(&self) -> u32 {
        self.accept_queue.ack_backlog()
    }

    /// qlen.
    #[inline]
    pub fn qlen(&self) -> u32 {
        self.queue.load(Relaxed) as u32
    }

    /// young.
    #[inline]
    pub fn young(&self) -> u32 {
        (self.queue.load(Relaxed) >> 32) as u32
    }

    /// `inet_csk_reqsk_queue_is_full`: qlen > B (section 1).
    #[inline]
    pub fn synq_is_full(&self) -> bool {
        self.qlen() > self.backlog()
    }

    /// `reqsk_queue_added`, taken before the insert and only while qlen <= B: qlen and
    /// young both rise. Linux tests `qlen > B` and increments later, so racing CPUs can push
    /// qlen a little past B + 1; a compare-and-swap here makes "at most B + 1 requests" exact
    /// with any number of workers. False: the SYN queue is full (S-2).
    pub(crate) fn reserve_qlen(&self, backlog: u32) -> bool {
        self.queue
            .fetch_update(Relaxed, Relaxed, |q| {
                ((q as u32) <= backlog).then_some(q + 1 + YOUNG)
            })
            .is_ok()
    }

    /// Gives back a reservation whose request was not inserted.
    pub(crate) fn release_qlen(&self) {
        self.queue.fetch_sub(1 + YOUNG, Relaxed);
    }

    /// `reqsk_queue_removed` (C-6, R-6, T-1, T-4): young falls too if the request never
    /// timed out.
    pub(crate) fn reqsk_removed(&self, num_timeout: u8) {
        let young = if num_timeout == 0 { YOUNG } else { 0 };
        self.queue.fetch_sub(1 + young, Relaxed);
    }

    /// T-5: a request's first timeout makes it no longer young.
    pub(crate) fn young_dec(&self) {
        self.queue.fetch_sub(YOUNG, Relaxed);
    }

    /// Still listening (T-1, A-3).
    #[inline]
    pub fn is_listening(&self) -> bool {
        self.listening.load(Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.listening.store(false, Relaxed)
    }

    /// K-2: `tcp_synq_overflow`, recorded at most once per second.
    pub(crate) fn synq_overflow(&self, now: Duration) {
        let stamp = now.as_secs() + 1;
        let last = self.last_overflow.load(Relaxed);
        if last == 0 || stamp > last {
            self.last_overflow.store(stamp, Relaxed);
        }
    }

    /// A restart that kept the secrets (the daemon's key file): cookies issued by the previous
    /// run may be in flight for two more minutes, so ACKs without a request are checked
    /// against cookies (L-1) as after an overflow now. Linux has no such case: its new
    /// listener has no recent overflow, and it drops (RSTs) those ACKs.
    pub fn cookies_may_be_in_flight(&self, now: Duration) {
        self.synq_overflow(now)
    }

    /// L-1: `!tcp_synq_no_recent_overflow`: an overflow within the last 120 s.
    pub fn recent_overflow(&self, now: Duration) -> bool {
        let last = self.last_overflow.load(Relaxed);
        last != 0 && now.as_secs() < last + SYNCOOKIE_VALID_SECS
    }

    /// S-2: the "possible SYN flooding" message is due once per listener; true the first time.
    pub(crate) fn synflood_warn_once(&self) -> bool {
        !self.synflood_warned.load(Relaxed) && !self.synflood_warned.swap(true, Relaxed)
    }

    /// True once a S-2 warning was raised (the daemon logs it, the core cannot).
    pub fn synflood_warned(&self) -> bool {
        self.synflood_warned.load(Relaxed)
    }
}

/// An immutable snapshot of what every worker reads: listeners and secrets.
#[derive(Debug, Clone)]
pub(crate) struct Tables {
    pub listeners: HashMap<(IpAddr, u16), Arc<Listener>, foldhash::fast::FixedState>,
    /// Every bound address, listening or not (bind's EADDRINUSE check).
    pub bound: Vec<SocketAddr>,
    pub secrets: Secrets,
    pub cookie: CookieKeys,
}

impl Tables {
    pub fn new(secrets: Secrets) -> Self {
        let cookie = CookieKeys::new(secrets.cookie);
        Tables {
            listeners: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0)),
            bound: Vec::new(),
            secrets,
            cookie,
        }
    }

    /// D-2's listener half: the exact address first, then the wildcard of its family.
    #[inline]
    pub fn lookup(&self, dst: IpAddr, port: u16) -> Option<&Arc<Listener>> {
        if self.listeners.is_empty() {
            return None;
        }
        if let Some(l) = self.listeners.get(&(dst, port)) {
            return Some(l);
        }
        let any = match dst {
            IpAddr::V4(_) => IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(core::net::Ipv6Addr::UNSPECIFIED),
        };
        self.listeners.get(&(any, port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l() -> Listener {
        Listener::new(
            "198.18.0.1:80".parse().unwrap(),
            &ListenerConfig::default(),
            4,
        )
    }

    #[test]
    fn synq_full_is_qlen_above_backlog() {
        let l = l();
        for _ in 0..5 {
            assert!(l.reserve_qlen(4));
        }
        assert!(l.synq_is_full());
        assert!(!l.reserve_qlen(4), "at most B + 1");
        assert_eq!(l.qlen(), 5);
    }

    #[test]
    fn l1_recent_overflow_window() {
        let l = l();
        assert!(!l.recent_overflow(Duration::from_secs(0)));
        l.synq_overflow(Duration::from_secs(10));
        assert!(l.recent_overflow(Duration::from_secs(10)));
        assert!(l.recent_overflow(Duration::from_secs(130)));
        assert!(!l.recent_overflow(Duration::from_secs(131)));
    }

    #[test]
    fn s2_warning_once() {
        let l = l();
        assert!(l.synflood_warn_once());
        assert!(!l.synflood_warn_once());
    }
}
