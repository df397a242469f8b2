//! A worker: one per NIC queue, the owner of one request shard. `tcp_v4_rcv` and
//! `tcp_v6_rcv` live here (D-1, D-2), with the listener's flag tests (L-1..L-3); the SYN path is
//! in `conn_request`, the request path in `check_req`, the timer in `timer`, cookies in
//! `syncookie`.
//!
//! Sans-I/O: the caller hands in a received frame in its own buffer and `now`, and gets a
//! [`Verdict`]; the buffer then holds the reply, if any. Nothing here reads a clock, draws a
//! random number or touches a socket, and nothing allocates per frame (a child whose third
//! ACK carries data copies that data, as the kernel queues the skb).

use crate::accepted::Accepted;
use crate::drop_reason::DropReason;
use crate::flow::FlowKey;
use crate::listener::{Listener, Tables};
use crate::request_table::RequestTable;
use crate::settings::SyncookieMode;
use crate::stack::Shared;
use crate::stats::{Mib, WorkerStats};
use core::sync::atomic::Ordering;
use core::time::Duration;
use std::sync::Arc;
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{self, IpParams, TcpParams};
use synline_wire::{Error as WireError, ParsedFrame, TcpFlags};

/// What to do with the frame after [`Worker::handle_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The buffer holds a reply of this many bytes: send it.
    Transmit(usize),
    /// Not for the engine (not IP or TCP, or no listener and no request): give it to the
    /// kernel.
    Pass,
    /// Dropped, for this reason (counted).
    Drop(DropReason),
    /// Taken in: a child was made from it. Nothing to send; recycle the buffer.
    Consumed,
    /// Copied to the worker that may own its flow. Recycle the buffer.
    HandedOff,
}

/// The received segment's 4-tuple and its hash in this worker's table, computed once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rx {
    pub key: FlowKey,
    pub hash: u64,
}

/// The listeners this worker's requests belong to, each held once with a worker-local count:
/// the kernel's counted `rsk_listener` reference, without an `Arc` clone and drop per request
/// bouncing the listener's cache line between workers.
#[derive(Debug, Default)]
pub(crate) struct ListenerRefs {
    slots: Vec<Option<(Arc<Listener>, u32)>>,
}

impl ListenerRefs {
    /// The listener in `slot` (a slot a live request holds).
    #[inline]
    pub fn get(&self, slot: u16) -> &Arc<Listener> {
        &self.slots[usize::from(slot)]
            .as_ref()
            .expect("a live request holds its listener slot")
            .0
    }

    /// One more request of `l`; returns its slot.
    #[inline]
    pub fn acquire(&mut self, l: &Arc<Listener>) -> u16 {
        let mut free = None;
        for (i, s) in self.slots.iter_mut().enumerate() {
            match s {
                Some((have, n)) if Arc::ptr_eq(have, l) => {
                    *n += 1;
                    return i as u16;
                }
                None if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = free.unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        self.slots[i] = Some((l.clone(), 1));
        i as u16
    }

    /// One request fewer in `slot`; the last one lets the listener go.
    #[inline]
    pub fn release(&mut self, slot: u16) {
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            if let Some((_, n)) = s {
                *n -= 1;
                if *n == 0 {
                    *s = None;
                }
            }
        }
    }
}

/// One worker. Not `Sync`: it is driven by one thread.
#[derive(Debug)]
pub struct Worker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    tables: Option<Arc<Tables>>,
    generation: u64,
    pub(crate) reqs: RequestTable,
    /// Flows whose child was just made (`StackConfig::accepted_grace`), when on.
    pub(crate) accepted: Option<Accepted>,
    pub(crate) lrefs: ListenerRefs,
    pub(crate) stats: Arc<WorkerStats>,
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, id: usize) -> Worker {
        let generation = shared.generation.load(Ordering::Acquire);
        let tables = shared.lock_tables().clone();
        let seed = tables.secrets.table_seed ^ id as u64;
        Worker {
            id,
            reqs: RequestTable::new(shared.config.requests_per_worker_hint, seed),
            accepted: (!shared.config.accepted_grace.is_zero())
                .then(|| Accepted::new(shared.config.accepted_grace)),
            lrefs: ListenerRefs::default(),
            stats: shared.stats[id].clone(),
            tables: Some(tables),
            generation,
            shared,
        }
    }

    /// K-1: the cookie minute counter at `now`, on the clock the stack's cookies follow
    /// (`StackConfig::cookie_clock_offset`).
    #[inline]
    pub(crate) fn cookie_count(&self, now: Duration) -> u32 {
        let off = self.shared.cookie_clock_offset_ns.load(Ordering::Relaxed);
        crate::syncookie::cookie_time(now + Duration::from_nanos(off))
    }

    /// This worker's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Live request socks in this worker's shard.
    pub fn requests(&self) -> usize {
        self.reqs.len()
    }

    /// This worker's share of `StackConfig::max_requests`.
    #[inline]
    pub(crate) fn request_cap(&self) -> usize {
        self.shared.config.max_requests / self.shared.config.workers
    }

    /// Whether this shard holds a request sock for `key`.
    pub fn has_request(&self, key: &FlowKey) -> bool {
        self.reqs.lookup(key).is_some()
    }

    /// Per-listener counts of the requests in this shard (for invariant checks).
    pub fn requests_of(&self, l: &Arc<Listener>) -> (u32, u32) {
        let mut q = 0;
        let mut young = 0;
        for (_, r) in self.reqs.iter() {
            if Arc::ptr_eq(self.lrefs.get(r.listener), l) {
                q += 1;
                young += u32::from(r.num_timeout == 0);
            }
        }
        (q, young)
    }

    /// RCU read side: one relaxed-cost load per frame; a new snapshot only after a change.
    #[inline]
    fn refresh(&mut self) {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation || self.tables.is_none() {
            self.tables = Some(self.shared.lock_tables().clone());
            self.generation = g;
        }
    }

    /// The current snapshot (absent only while `no_request` holds it).
    pub(crate) fn tables_ref(&self) -> Option<&Tables> {
        self.tables.as_deref()
    }

    #[inline]
    pub(crate) fn dropped(&self, r: DropReason) -> Verdict {
        self.stats.dropped(r);
        Verdict::Drop(r)
    }

    /// D-1, D-2: handles one received frame of `len` bytes in `buf` (whose full length is the
    /// room a reply may take).
    pub fn handle_frame(&mut self, buf: &mut [u8], len: usize, now: Duration) -> Verdict {
        self.rcv(buf, len, now, 0)
    }

    /// Handles one frame another worker handed over (see `handoff`); `None` when there is
    /// none. The frame arrives parsed and checksummed by the worker it reached first; it is
    /// copied into `buf`, where the verdict's reply, if any, is written.
    pub fn poll_handoff(&mut self, buf: &mut [u8], now: Duration) -> Option<Verdict> {
        let h = self.shared.handoff.pop(self.id)?;
        let (len, parsed, hops) = (h.frame().len(), h.parsed, h.hops);
        let copied = buf.get_mut(..len).map(|dst| dst.copy_from_slice(h.frame()));
        self.shared.handoff.recycle(h);
        if copied.is_none() {
            return Some(self.dropped(DropReason::BufferTooSmall));
        }
        self.refresh();
        Some(self.rcv_parsed(buf, len, &parsed, now, hops))
    }

    fn rcv(&mut self, buf: &mut [u8], len: usize, now: Duration, hops: u8) -> Verdict {
        self.refresh();
        let Some(frame) = buf.get(..len) else {
            return self.dropped(DropReason::Truncated);
        };
        let p = match synline_wire::parse_frame(frame) {
            Ok(p) => p,
            Err(e) => return self.bad_frame(e, hops),
        };
        if hops == 0 {
            self.stats.inc(Mib::InSegs);
        }
        self.rcv_parsed(buf, len, &p, now, hops)
    }

    /// D-1, D-2 on a parsed frame (received here, or handed over already parsed).
    fn rcv_parsed(
        &mut self,
        buf: &mut [u8],
        len: usize,
        p: &ParsedFrame,
        now: Duration,
        hops: u8,
    ) -> Verdict {
        // D-1: only frames to a unicast MAC (the kernel's PACKET_HOST).
        if p.seg.eth_dst[0] & 1 != 0 {
            return self.dropped(DropReason::NotHostL2);
        }
        // D-2: a request sock catches every segment of its 4-tuple before the listener.
        let key = FlowKey::of(&p.seg);
        let hash = self.reqs.hash(&key);
        // R-3 sends the segment on to the listener, and then it must not travel to other
        // workers: its flow is here.
        let mut hops = hops;
        // An empty table has nothing to find (a cookie-mode flood keeps it empty): no probe,
        // which in a table sized for a large backlog is a cache miss per SYN.
        let found = if self.reqs.is_empty() {
            None
        } else {
            self.reqs.lookup_hashed(&key, hash)
        };
        if let Some(id) = found {
            match self.check_req(buf, p, id, now) {
                Some(v) => return v,
                None => hops = u8::MAX,
            }
        }
        let Some(tables) = self.tables.take() else {
            return Verdict::Pass;
        };
        let v = self.no_request(&tables, buf, len, p, &Rx { key, hash }, now, hops);
        self.tables = Some(tables);
        v
    }

    #[allow(clippy::too_many_arguments)]
    fn no_request(
        &mut self,
        t: &Tables,
        buf: &mut [u8],
        len: usize,
        p: &ParsedFrame,
        rx: &Rx,
        now: Duration,
        hops: u8,
    ) -> Verdict {
        let Some(l) = t.lookup(p.seg.dst, p.seg.dst_port) else {
            return Verdict::Pass;
        };
        // The flow may belong to another worker's shard (RSS sent the SYN elsewhere): a
        // segment other than a new SYN visits the other workers before the listener answers
        // it, but only while the listener has requests at all.
        let f = p.seg.flags;
        let new_syn = f.syn() && !f.ack() && !f.rst();
        // D-2 for an embedder whose established table the engine cannot see (`accepted`).
        if !new_syn
            && self
                .accepted
                .as_ref()
                .is_some_and(|a| a.contains(&rx.key, rx.hash, now))
        {
            return Verdict::Pass;
        }
        let workers = self.shared.config.workers;
        if !new_syn && usize::from(hops).saturating_add(1) < workers && l.qlen() > 0 {
            return self.hand_off(buf, len, p, hops);
        }
        self.listener_rcv(t, l, buf, p, rx, now)
    }

    /// Sends the segment, with its parse, to the next worker (see `handoff`).
    fn hand_off(&mut self, buf: &[u8], len: usize, p: &ParsedFrame, hops: u8) -> Verdict {
        let to = (self.id + 1) % self.shared.config.workers;
        let frame = &buf[..len.min(buf.len())];
        if self.shared.handoff.push(to, frame, *p, hops + 1).is_err() {
            return self.dropped(DropReason::HandoffFull);
        }
        self.stats.handoff();
        Verdict::HandedOff
    }

    fn bad_frame(&mut self, e: WireError, hops: u8) -> Verdict {
        let counted = hops == 0;
        match e {
            WireError::NotIp | WireError::NotTcp => Verdict::Pass,
            WireError::Truncated | WireError::BufferTooSmall | WireError::ReplyToRst => {
                self.dropped(DropReason::Truncated)
            }
            WireError::BadIpHeader | WireError::BadIpChecksum => self.dropped(DropReason::IpHeader),
            WireError::Fragment => self.dropped(DropReason::Fragment),
            WireError::Ipv6ExtensionHeader => self.dropped(DropReason::Ipv6ExtensionHeader),
            WireError::BadTcpHeader => {
                if counted {
                    self.stats.inc(Mib::InSegs);
                    self.stats.inc(Mib::InErrs);
                }
                self.dropped(DropReason::TcpHeader)
            }
            WireError::BadTcpChecksum => {
                if counted {
                    self.stats.inc(Mib::InSegs);
                    self.stats.inc(Mib::InCsumErrors);
                    self.stats.inc(Mib::InErrs);
                }
                self.dropped(DropReason::TcpChecksum)
            }
        }
    }

    /// Section 3: a segment that reached the listener.
    fn listener_rcv(
        &mut self,
        t: &Tables,
        l: &Arc<Listener>,
        buf: &mut [u8],
        p: &ParsedFrame,
        rx: &Rx,
        now: Duration,
    ) -> Verdict {
        let f = p.seg.flags;
        // L-1: without SYN, a cookie ACK is tried first, and only when it can be one.
        if !f.syn() && f.ack() && !f.rst() {
            let cfg = l.config();
            // Fleet mode: another host may have sent the SYN-ACK, with a cookie as its ISS.
            let cookies_out = (cfg.syncookies != SyncookieMode::Never && l.recent_overflow(now))
                || self.shared.config.fleet;
            if cookies_out {
                if let Some(v) = self.cookie_ack(t, l, &cfg, buf, p, &rx.key, now) {
                    return v;
                }
            }
        }
        // L-2 (1): ACK: RST (P-1), unless RST too; (2) RST: drop.
        if f.ack() {
            if f.rst() {
                return self.dropped(DropReason::ListenerRst);
            }
            return self.send_rst(buf, p);
        }
        if f.rst() {
            return self.dropped(DropReason::ListenerRst);
        }
        // L-2 (3): SYN; SYN+FIN dropped. L-3: never an RST in reply to a SYN.
        if f.syn() {
            if f.fin() {
                return self.dropped(DropReason::SynFin);
            }
            return self.conn_request(t, l, buf, p, rx, now);
        }
        self.dropped(DropReason::NoFlags)
    }

    /// P-1 in place.
    pub(crate) fn send_rst(&mut self, buf: &mut [u8], p: &ParsedFrame) -> Verdict {
        match reply::build_rst(buf, p, &IpParams::default()) {
            Ok(n) => {
                self.stats.inc(Mib::OutRsts);
                self.stats.inc(Mib::OutSegs);
                Verdict::Transmit(n)
            }
            Err(WireError::ReplyToRst) => self.dropped(DropReason::ListenerRst),
            Err(_) => self.dropped(DropReason::BufferTooSmall),
        }
    }

    /// the RST that resets an unaccepted child of a closed listener (seq = SND.NXT,
    /// ack = RCV.NXT, like `tcp_send_active_reset`), written into `buf` from nothing.
    pub fn write_child_rst(
        &mut self,
        child: &crate::Child,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let tcp = TcpParams {
            seq: child.snd_nxt,
            ack: child.rcv_nxt,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            options: Default::default(),
        };
        let n = emit_segment(buf, &child_segment(child, false, tcp, &[]))?;
        self.stats.inc(Mib::OutRsts);
        self.stats.inc(Mib::OutSegs);
        Ok(n)
    }
}

impl Worker {
    /// The segment that completed `child`'s handshake, as the peer sent it, written into `buf`
    /// from nothing: SEQ = IRS + 1, ACK = ISS + 1, the peer's window (SND.WND >> its shift),
    /// its timestamps (TSval = TS.Recent, TSecr = the TSval it echoed), the data that came in
    /// order, and FIN for a CLOSE_WAIT child. For an embedder that hands the connection to
    /// another TCP stack which must see the handshake's last segment (the daemon re-injects it
    /// into the kernel). Not counted as sent: it never leaves the host.
    pub fn write_child_ack(
        &self,
        child: &crate::Child,
        buf: &mut [u8],
    ) -> Result<usize, WireError> {
        let mut flags = TcpFlags::ACK;
        if !child.data.is_empty() {
            flags = flags | TcpFlags::PSH;
        }
        if child.state == crate::ChildState::CloseWait {
            flags = flags | TcpFlags::FIN;
        }
        let window = (child.snd_wnd >> child.snd_wscale.unwrap_or(0)).min(0xffff) as u16;
        let options = synline_wire::OptionsOut {
            timestamps: child.timestamps.map(|t| synline_wire::Timestamps {
                tsval: t.ts_recent,
                tsecr: t.ts_ecr,
            }),
            ..Default::default()
        };
        let tcp = TcpParams {
            seq: child.irs + 1,
            ack: child.iss + 1,
            flags,
            window,
            options,
        };
        // The ECN field is not kept: the receiving stack takes ECN from the request.
        emit_segment(buf, &child_segment(child, true, tcp, &child.data))
    }
}

/// A segment of `child`'s connection, ours (`from_peer` false) or the peer's, with default IP
/// values: MACs, tag, addresses and ports from the child, the TCP header from `tcp`.
fn child_segment<'a>(
    child: &crate::Child,
    from_peer: bool,
    tcp: TcpParams,
    payload: &'a [u8],
) -> SegmentSpec<'a> {
    let (eth_src, eth_dst, src, dst) = if from_peer {
        (child.eth_peer, child.eth_local, child.remote, child.local)
    } else {
        (child.eth_local, child.eth_peer, child.local, child.remote)
    };
    SegmentSpec {
        eth_src,
        eth_dst,
        vlan: child.vlan,
        src: src.ip(),
        dst: dst.ip(),
        ip: IpParams::default(),
        src_port: src.port(),
        dst_port: dst.port(),
        tcp,
        payload,
    }
}

/// IP values of the engine's replies (X-5, V-5).
pub(crate) fn ip_params(cfg: &crate::ListenerConfig, v6: bool, flow_label: u32) -> IpParams {
    IpParams {
        ttl: cfg.ttl,
        tos: if v6 { cfg.tclass } else { 0 },
        flow_label,
    }
}
