//! Request socks (kernel state TCP_NEW_SYN_RECV) and the table that holds them.
//!
//! # Why per-worker shards and not the kernel's ehash + RCU
//! Linux keeps request socks in the established hash (ehash) beside full sockets, with
//! per-bucket spinlocks for writers and RCU for readers, because any CPU may receive any
//! segment. synline runs one worker per NIC queue, and RSS hashes the 4-tuple, so the SYN and
//! the third ACK of a flow land on the same queue and the same worker. Each worker therefore
//! owns its shard outright: a plain `hashbrown` table behind `&mut self`, with no lock, no
//! atomic and no RCU grace period on the hot path. The rare segment that reaches a worker
//! that does not own its flow (a changed RSS key, a queue reconfiguration) is handed to the
//! other workers over a bounded crossbeam queue and counted (see `handoff`). What must be
//! shared, per-listener `qlen`/`young`/`ack_backlog` and the global request cap, are atomics.
//!
//! # Memory
//! Requests live in a slab (`Vec<RequestSock>`); the hash table stores only the 4-byte slab
//! index, and the timer list is intrusive (two indices inside each request), so a request
//! costs `size_of::<RequestSock>()` plus about 5 bytes of table: under 128 bytes, checked by
//! a test.
//!
//! # Timers
//! One hashed timer wheel per worker: 2^17 slots of 2^20 ns (about 1.05 ms), a horizon of
//! 137 s, beyond the longest SYN-ACK timeout (120 s). A slot holds a doubly linked list
//! through the requests, so arming, re-arming (T-8) and cancelling (C-6) are O(1) and never
//! allocate. A timer fires in the first poll after its slot has fully passed: at most one
//! tick late, as the kernel's timer wheel is up to a jiffy late (and up to 12.5 % for long
//! timers).

use crate::flow::FlowKey;
use core::hash::BuildHasher;
use core::time::Duration;
use hashbrown::HashTable;
use synline_wire::SeqNumber;

const NIL: u32 = u32::MAX;
const NEVER: u64 = u64::MAX;

#[inline]
fn nanos(t: Duration) -> u64 {
    t.as_nanos().min(u128::from(NEVER - 1)) as u64
}
const TICK_SHIFT: u32 = 20;
const SLOTS: usize = 1 << 17;

/// Request flags.
pub mod flag {
    /// SACK-permitted negotiated.
    pub const SACK_OK: u8 = 1 << 0;
    /// Timestamps negotiated.
    pub const TSTAMP_OK: u8 = 1 << 1;
    /// The peer offered window scaling (and we allowed it).
    pub const WSCALE_OK: u8 = 1 << 2;
    /// ECN negotiated.
    pub const ECN_OK: u8 = 1 << 3;
    /// `inet_rsk(req)->acked`: a valid ACK was seen but not turned into a child.
    pub const ACKED: u8 = 1 << 4;
    /// The SYN had an 802.1Q tag.
    pub const VLAN: u8 = 1 << 5;
    /// Fleet mode: the ISS is a SYN cookie and every TSval carries the options (K-3).
    pub const FLEET: u8 = 1 << 6;
}

/// One request sock.
#[derive(Debug)]
pub struct RequestSock {
    /// 4-tuple.
    pub(crate) key: FlowKey,
    /// Our MAC (the SYN's destination), kept for retransmissions: the engine has no
    /// neighbour table.
    pub(crate) eth_local: [u8; 6],
    /// Peer's MAC.
    pub(crate) eth_peer: [u8; 6],
    /// 802.1Q TCI (valid with `flag::VLAN`).
    pub(crate) vlan: u16,
    /// Peer MSS (`mss_clamp`).
    pub(crate) mss: u16,
    /// `flag::*`.
    pub(crate) flags: u8,
    /// Peer's window shift (valid with `flag::WSCALE_OK`).
    pub(crate) snd_wscale: u8,
    /// Our window shift (0 without WSCALE_OK).
    pub(crate) rcv_wscale: u8,
    /// Timer firings so far (T-5).
    pub(crate) num_timeout: u8,
    /// SYN-ACK retransmissions so far.
    pub(crate) num_retrans: u8,
    /// Window we announce, W.
    pub(crate) rcv_wnd: u16,
    /// ISS.
    pub(crate) iss: SeqNumber,
    /// IRS.
    pub(crate) irs: SeqNumber,
    /// TS.Recent: the SYN's TSval, 0 if none.
    pub(crate) ts_recent: u32,
    /// Our timestamp offset.
    pub(crate) ts_off: u32,
    /// TSval of the first SYN-ACK (6.15 TSecr check).
    pub(crate) tsval_first: u32,
    /// TSval of the latest SYN-ACK.
    pub(crate) tsval_last: u32,
    /// When the timer fires, in ns of the caller's clock (a `u64`, not a 16-byte `Duration`:
    /// the request must stay under 128 bytes).
    expires_ns: u64,
    /// Last out-of-window ACK or duplicate-SYN answer, ns; `NEVER` if none.
    last_oow_ack_ns: u64,
    /// The listener (the kernel's `rsk_listener`): a slot in the owning worker's listener
    /// references, counted there without a shared atomic (`worker::ListenerRefs`).
    pub(crate) listener: u16,
    next: u32,
    prev: u32,
}

impl RequestSock {
    /// A request for `key` with everything else zero: Q-1's starting point.
    pub fn new(key: FlowKey, listener: u16) -> Self {
        RequestSock {
            key,
            eth_local: [0; 6],
            eth_peer: [0; 6],
            vlan: 0,
            mss: 0,
            flags: 0,
            snd_wscale: 0,
            rcv_wscale: 0,
            num_timeout: 0,
            num_retrans: 0,
            rcv_wnd: 0,
            iss: SeqNumber(0),
            irs: SeqNumber(0),
            ts_recent: 0,
            ts_off: 0,
            tsval_first: 0,
            tsval_last: 0,
            expires_ns: 0,
            last_oow_ack_ns: NEVER,
            listener,
            next: NIL,
            prev: NIL,
        }
    }

    /// The options a cookie of this request carries in its TSval (K-3): fleet mode.
    pub(crate) fn cookie_options(&self) -> crate::syncookie::CookieOptions {
        crate::syncookie::CookieOptions {
            wscale: (self.flags & flag::WSCALE_OK != 0).then_some(self.snd_wscale),
            sack: self.flags & flag::SACK_OK != 0,
            ecn: self.flags & flag::ECN_OK != 0,
        }
    }

    /// When the timer fires.
    #[inline]
    pub fn expires(&self) -> Duration {
        Duration::from_nanos(self.expires_ns)
    }

    /// Sets when the timer fires (before insertion; afterwards use `RequestTable::rearm`).
    pub fn set_expires(&mut self, t: Duration) {
        self.expires_ns = nanos(t);
    }

    /// Last rate-limited answer.
    pub fn last_oow_ack(&self) -> Option<Duration> {
        (self.last_oow_ack_ns != NEVER).then(|| Duration::from_nanos(self.last_oow_ack_ns))
    }

    /// Records a rate-limited answer.
    pub fn set_last_oow_ack(&mut self, t: Option<Duration>) {
        self.last_oow_ack_ns = t.map_or(NEVER, nanos);
    }

    /// Has `f`.
    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// RCV.NXT = IRS + 1.
    #[inline]
    pub fn rcv_nxt(&self) -> SeqNumber {
        self.irs + 1
    }

    /// The VLAN tag, if the SYN had one.
    pub fn vlan(&self) -> Option<u16> {
        self.has(flag::VLAN).then_some(self.vlan)
    }
}

/// Handle of a request inside one worker's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReqId(u32);

/// One worker's shard: slab, index, timer wheel.
pub struct RequestTable {
    slab: Vec<Option<RequestSock>>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    heads: Vec<u32>,
    /// One bit per slot, set while the slot's list is not empty: the next deadline is the
    /// first set bit from `next_tick` on (a scan of at most 2^11 words, only when idle).
    occupied: Vec<u64>,
    next_tick: u64,
    live: usize,
}

impl core::fmt::Debug for RequestTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequestTable")
            .field("live", &self.live)
            .finish()
    }
}

#[inline]
fn tick(t: Duration) -> u64 {
    (t.as_nanos() >> TICK_SHIFT) as u64
}

impl RequestTable {
    /// An empty table with room for `capacity` requests before it grows; `seed` keys the hash.
    pub fn new(capacity: usize, seed: u64) -> Self {
        RequestTable {
            slab: Vec::with_capacity(capacity),
            free: Vec::new(),
            index: HashTable::with_capacity(capacity),
            hasher: foldhash::fast::FixedState::with_seed(seed),
            heads: vec![NIL; SLOTS],
            occupied: vec![0; SLOTS / 64],
            next_tick: 0,
            live: 0,
        }
    }

    /// Live requests.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No live request.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// D-2: the request of a 4-tuple.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<ReqId> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// The table's hash of a key, to pass to [`Self::lookup_hashed`] and
    /// [`Self::insert_hashed`].
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// [`Self::lookup`] with the hash already computed.
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey, hash: u64) -> Option<ReqId> {
        let slab = &self.slab;
        self.index
            .find(hash, |&i| {
                slab[i as usize].as_ref().is_some_and(|r| r.key == *key)
            })
            .map(|&i| ReqId(i))
    }

    /// The request behind `id`.
    #[inline]
    pub fn get(&self, id: ReqId) -> &RequestSock {
        // Ids come only from this table and are dropped with the request: always live.
        self.slab[id.0 as usize].as_ref().expect("live request id")
    }

    /// The request behind `id`, writable.
    #[inline]
    pub fn get_mut(&mut self, id: ReqId) -> &mut RequestSock {
        self.slab[id.0 as usize].as_mut().expect("live request id")
    }

    #[cfg(test)]
    /// inserts `req` and arms its timer at `req.expires`; if its 4-tuple is already
    /// here, gives it back (two SYNs raced). `now` is the caller's clock.
    pub fn insert(&mut self, req: RequestSock, now: Duration) -> Result<ReqId, RequestSock> {
        let hash = self.hash(&req.key);
        self.insert_hashed(req, hash, now)
    }

    /// [`Self::insert`] with the key's hash already computed.
    pub fn insert_hashed(
        &mut self,
        mut req: RequestSock,
        hash: u64,
        now: Duration,
    ) -> Result<ReqId, RequestSock> {
        if self.lookup_hashed(&req.key, hash).is_some() {
            return Err(req);
        }
        if self.live == 0 {
            // Nothing is armed: the wheel may jump to the present.
            self.next_tick = self.next_tick.max(tick(now));
        }
        req.expires_ns = nanos(self.clamp(req.expires()));
        let expires = req.expires();
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(req);
                i
            }
            None => {
                self.slab.push(Some(req));
                (self.slab.len() - 1) as u32
            }
        };
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            hasher.hash_one(slab[j as usize].as_ref().expect("indexed slot is live").key)
        });
        self.live += 1;
        self.link(i, expires);
        Ok(ReqId(i))
    }

    /// Removes a request (C-3, C-6, R-6, T-1, T-4): unlinks its timer and frees its slot.
    pub fn remove(&mut self, id: ReqId) -> RequestSock {
        self.unlink(id.0);
        let key = self.get(id).key;
        let hash = self.hash(&key);
        let slab = &self.slab;
        if let Ok(e) = self.index.find_entry(hash, |&i| {
            slab[i as usize].as_ref().is_some_and(|r| r.key == key)
        }) {
            e.remove();
        }
        self.live -= 1;
        self.free.push(id.0);
        self.slab[id.0 as usize].take().expect("live request id")
    }

    /// Re-arms the timer of `id` at `expires` (T-5, T-8).
    pub fn rearm(&mut self, id: ReqId, expires: Duration) {
        self.unlink(id.0);
        let expires = self.clamp(expires);
        self.get_mut(id).expires_ns = nanos(expires);
        self.link(id.0, expires);
    }

    /// Takes the next request whose timer slot has fully passed by `now`, unlinking its timer.
    /// The caller re-arms it or removes it.
    pub fn pop_expired(&mut self, now: Duration) -> Option<ReqId> {
        let now_tick = tick(now);
        if self.live == 0 {
            self.next_tick = self.next_tick.max(now_tick);
            return None;
        }
        // After a long pause every slot is due at most once: skip whole laps.
        if now_tick > self.next_tick + SLOTS as u64 {
            self.next_tick = now_tick - SLOTS as u64;
        }
        while self.next_tick < now_tick {
            let slot = (self.next_tick as usize) & (SLOTS - 1);
            let mut i = self.heads[slot];
            while i != NIL {
                let r = self.slab[i as usize]
                    .as_ref()
                    .expect("timer links live requests");
                if tick(r.expires()) <= self.next_tick {
                    self.unlink(i);
                    return Some(ReqId(i));
                }
                // A timer of a later lap of the wheel (never with timeouts <= 120 s).
                i = r.next;
            }
            self.next_tick += 1;
        }
        None
    }

    /// When [`Self::pop_expired`] next has something to return: the end of the first
    /// occupied slot from the wheel's position on (a timer fires once its slot has fully
    /// passed). `None` with no request alive. Like quinn-proto's `poll_timeout`: the caller
    /// may sleep until then.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.live == 0 {
            return None;
        }
        let words = SLOTS / 64;
        let start = (self.next_tick as usize) & (SLOTS - 1);
        let (w0, b0) = (start / 64, start % 64);
        // The first word from bit b0, then the others round the wheel, then the first word's
        // low bits (the slots of the next lap).
        let first = self.occupied[w0] & (!0u64 << b0);
        let found = if first != 0 {
            Some(w0 * 64 + first.trailing_zeros() as usize)
        } else {
            (1..words)
                .map(|k| (w0 + k) % words)
                .find(|&w| self.occupied[w] != 0)
                .map(|w| w * 64 + self.occupied[w].trailing_zeros() as usize)
                .or_else(|| {
                    let low = self.occupied[w0] & !(!0u64 << b0);
                    (low != 0).then(|| w0 * 64 + low.trailing_zeros() as usize)
                })
        };
        let slot = found?;
        let ahead = (slot + SLOTS - start) % SLOTS;
        let tick = self.next_tick + ahead as u64;
        Some(Duration::from_nanos((tick + 1) << TICK_SHIFT))
    }

    /// A time in a slot the wheel has already passed would wait a whole lap: move it to the
    /// next slot to fire instead.
    fn clamp(&self, expires: Duration) -> Duration {
        if tick(expires) < self.next_tick {
            Duration::from_nanos(self.next_tick << TICK_SHIFT)
        } else {
            expires
        }
    }

    fn link(&mut self, i: u32, expires: Duration) {
        let slot = (tick(expires) as usize) & (SLOTS - 1);
        let head = self.heads[slot];
        {
            let r = self.slab[i as usize].as_mut().expect("live");
            r.prev = NIL;
            r.next = head;
        }
        if head != NIL {
            self.slab[head as usize].as_mut().expect("live").prev = i;
        }
        self.heads[slot] = i;
        self.occupied[slot / 64] |= 1 << (slot % 64);
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, expires) = {
            let r = self.slab[i as usize].as_mut().expect("live");
            let v = (r.prev, r.next, r.expires());
            r.prev = NIL;
            r.next = NIL;
            v
        };
        if prev != NIL {
            self.slab[prev as usize].as_mut().expect("live").next = next;
        } else {
            let slot = (tick(expires) as usize) & (SLOTS - 1);
            if self.heads[slot] == i {
                self.heads[slot] = next;
                if next == NIL {
                    self.occupied[slot / 64] &= !(1 << (slot % 64));
                }
            }
        }
        if next != NIL {
            self.slab[next as usize].as_mut().expect("live").prev = prev;
        }
    }

    /// Every live request (for invariant checks and shutdown).
    pub fn iter(&self) -> impl Iterator<Item = (ReqId, &RequestSock)> {
        self.slab
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (ReqId(i as u32), r)))
    }

    #[cfg(test)]
    /// Bytes the table holds per request slot, hash index included (for the 128-byte bound).
    pub fn bytes_per_request() -> usize {
        // hashbrown: one u32 bucket plus one control byte, at 7/8 load at worst.
        core::mem::size_of::<Option<RequestSock>>() + (4 + 1) * 8 / 7 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::Listener;
    use crate::settings::ListenerConfig;
    use std::sync::Arc;

    fn listener() -> Arc<Listener> {
        Arc::new(Listener::new(
            "198.18.0.1:80".parse().unwrap(),
            &ListenerConfig::default(),
            128,
        ))
    }

    fn req(l: &Arc<Listener>, port: u16, expires_ms: u64) -> RequestSock {
        let key = FlowKey {
            laddr: [1; 16],
            raddr: [2; 16],
            lport: 80,
            rport: port,
            v6: true,
        };
        let _ = l;
        let mut r = RequestSock::new(key, 0);
        r.set_expires(Duration::from_millis(expires_ms));
        r
    }

    #[test]
    fn request_fits_in_128_bytes() {
        assert!(
            RequestTable::bytes_per_request() <= 128,
            "{} bytes",
            RequestTable::bytes_per_request()
        );
    }

    #[test]
    fn q6_duplicate_tuple_is_refused() {
        let l = listener();
        let mut t = RequestTable::new(16, 7);
        t.insert(req(&l, 1, 1000), Duration::ZERO).unwrap();
        assert!(t.insert(req(&l, 1, 1000), Duration::ZERO).is_err());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn insert_lookup_remove() {
        let l = listener();
        let mut t = RequestTable::new(16, 7);
        let ids: Vec<_> = (0..100)
            .map(|p| {
                t.insert(req(&l, p, 1000 + u64::from(p)), Duration::ZERO)
                    .unwrap()
            })
            .collect();
        for (p, id) in ids.iter().enumerate() {
            assert_eq!(t.lookup(&t.get(*id).key), Some(*id));
            assert_eq!(t.get(*id).key.rport, p as u16);
        }
        for id in ids.iter().step_by(2) {
            let k = t.get(*id).key;
            t.remove(*id);
            assert_eq!(t.lookup(&k), None);
        }
        assert_eq!(t.len(), 50);
    }

    #[test]
    fn timers_fire_in_order_of_slots_and_not_early() {
        let l = listener();
        let mut t = RequestTable::new(16, 7);
        let a = t.insert(req(&l, 1, 3000), Duration::ZERO).unwrap();
        let b = t.insert(req(&l, 2, 1000), Duration::ZERO).unwrap();
        assert_eq!(t.pop_expired(Duration::from_millis(999)), None);
        // Fires within one tick (~1.05 ms) after 1 s.
        assert_eq!(t.pop_expired(Duration::from_micros(1_002_100)), Some(b));
        assert_eq!(t.pop_expired(Duration::from_millis(2000)), None);
        t.rearm(b, Duration::from_millis(2500));
        assert_eq!(t.pop_expired(Duration::from_millis(2600)), Some(b));
        assert_eq!(t.pop_expired(Duration::from_millis(3010)), Some(a));
        assert_eq!(t.pop_expired(Duration::from_millis(100_000)), None);
    }

    /// T-3 with `next_deadline`: nothing is due a nanosecond before the deadline, and the
    /// timer fires at it; with nothing armed there is no deadline.
    #[test]
    fn next_deadline_is_when_the_first_timer_fires() {
        let l = listener();
        let mut t = RequestTable::new(16, 7);
        assert_eq!(t.next_deadline(), None);
        let a = t.insert(req(&l, 1, 3000), Duration::ZERO).unwrap();
        let b = t.insert(req(&l, 2, 1000), Duration::ZERO).unwrap();
        for (want, at_most_late) in [(b, 1000), (a, 3000)] {
            let d = t.next_deadline().unwrap();
            assert!(d > Duration::from_millis(at_most_late), "{d:?}");
            assert!(d <= Duration::from_millis(at_most_late) + Duration::from_micros(1049));
            assert_eq!(t.pop_expired(d - Duration::from_nanos(1)), None);
            assert_eq!(t.pop_expired(d), Some(want));
        }
        assert_eq!(t.next_deadline(), None, "both unlinked (none re-armed)");
        t.rearm(a, Duration::from_secs(200));
        // Beyond the wheel's horizon from the wheel's position: one lap later, found on the
        // way round (early is harmless: nothing pops, and the caller asks again).
        assert!(t.next_deadline().is_some());
        t.remove(a);
        t.remove(b);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn removed_request_never_fires() {
        let l = listener();
        let mut t = RequestTable::new(16, 7);
        let a = t.insert(req(&l, 1, 1000), Duration::ZERO).unwrap();
        let b = t.insert(req(&l, 2, 1000), Duration::ZERO).unwrap();
        t.remove(a);
        assert_eq!(t.pop_expired(Duration::from_millis(1100)), Some(b));
        assert_eq!(t.pop_expired(Duration::from_millis(1100)), None);
    }
}
