//! SYN admission: the kernel's `tcp_conn_request` (tcp_input.c) with `tcp_v4_conn_request` /
//! `tcp_v6_conn_request`, `tcp_openreq_init` and `tcp_make_synack`: rules S-1..S-8, Q-1..Q-7,
//! X-1..X-5, V-2..V-5.
//!
//! S-5 (drop SYNs from unproven peers when the queue is 3/4 full with cookies off) is not
//! supported: it needs the kernel's `tcp_metrics` table of peers seen before, which is filled
//! by established connections, and synline owns none after the handshake. With
//! `tcp_syncookies = 0` the queue therefore fills to B + 1 before SYNs are dropped
//! (TCPReqQFullDrop), where Linux would start dropping unproven peers at 3/4 of
//! `tcp_max_syn_backlog`.

use crate::drop_reason::DropReason;
use crate::flow::FlowKey;
use crate::listener::{Listener, Tables};
use crate::request_table::{flag, RequestSock};
use crate::secure_seq::{flow_label, secure_tcp_seq, secure_tcp_ts_off, ts_clock_ms};
use crate::settings::{ListenerConfig, SyncookieMode};
use crate::stats::Mib;
use crate::syncookie::{self, CookieOptions};
use crate::timer::TIMEOUT_INIT;
use crate::worker::{ip_params, Rx, Verdict, Worker};
use core::net::IpAddr;
use core::time::Duration;
use std::sync::Arc;
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{self, SynAck, TcpParams};
use synline_wire::{Error as WireError, Family, OptionsOut, ParsedFrame, TcpFlags, Timestamps};

/// Default peer MSS when the SYN has no MSS option (section 1, V-3).
pub fn default_mss(v6: bool) -> u16 {
    if v6 {
        1220
    } else {
        536
    }
}

/// What the SYN offered, after the listener's settings (S-7).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SynOptions {
    pub mss: u16,
    pub wscale: Option<u8>,
    pub sack: bool,
    pub ts: Option<Timestamps>,
    pub ecn: bool,
}

impl SynOptions {
    /// S-7 with the settings: the connection uses each option exactly when the SYN carried
    /// it valid and the listener allows it; mss_clamp = min(MSS, TCP_MAXSEG).
    pub fn of(p: &ParsedFrame, cfg: &ListenerConfig) -> Self {
        let o = p.seg.options;
        let v6 = p.layout.family == Family::V6;
        let mut mss = o.mss.unwrap_or(default_mss(v6));
        if cfg.maxseg != 0 {
            mss = mss.min(cfg.maxseg);
        }
        SynOptions {
            mss,
            wscale: if cfg.window_scaling { o.wscale } else { None },
            sack: cfg.sack && o.sack_permitted,
            ts: if cfg.timestamps != 0 {
                o.timestamps
            } else {
                None
            },
            // ECE and CWR on a Not-ECT SYN, with ECN enabled here.
            ecn: p.seg.flags.contains(TcpFlags::ECE | TcpFlags::CWR)
                && p.seg.ip_ecn == 0
                && cfg.ecn != 0,
        }
    }
}

/// Q-1 `tcp_openreq_init`: a request from the SYN and the options S-7 left it, before the
/// ISS and the timestamp clock are chosen (which differ between a stored request and a
/// cookie).
#[inline(always)]
fn openreq_init(
    key: FlowKey,
    slot: u16,
    p: &ParsedFrame,
    opts: &SynOptions,
    cfg: &ListenerConfig,
) -> RequestSock {
    let seg = &p.seg;
    let mut r = RequestSock::new(key, slot);
    r.eth_local = seg.eth_dst;
    r.eth_peer = seg.eth_src;
    if let Some(tci) = seg.vlan {
        r.vlan = tci;
        r.flags |= flag::VLAN;
    }
    r.irs = seg.seq;
    r.mss = opts.mss;
    if let Some(ws) = opts.wscale {
        r.flags |= flag::WSCALE_OK;
        r.snd_wscale = ws;
        r.rcv_wscale = cfg.rcv_wscale();
    }
    if opts.sack {
        r.flags |= flag::SACK_OK;
    }
    if opts.ecn {
        r.flags |= flag::ECN_OK;
    }
    if let Some(ts) = opts.ts {
        r.flags |= flag::TSTAMP_OK;
        r.ts_recent = ts.tsval;
    }
    r.rcv_wnd = cfg.rcv_wnd(key.v6, opts.ts.is_some());
    r
}

/// X-1..X-4: the SYN-ACK decisions of a request (fresh, cookie or retransmitted).
#[inline(always)]
fn req_synack(r: &RequestSock, cfg: &ListenerConfig, tsval: u32) -> SynAck {
    SynAck {
        iss: r.iss,
        window: r.rcv_wnd,
        ece: r.has(flag::ECN_OK),
        options: OptionsOut {
            mss: Some(cfg.adv_mss(r.key.v6)),
            wscale: r.has(flag::WSCALE_OK).then_some(r.rcv_wscale),
            sack_permitted: r.has(flag::SACK_OK),
            timestamps: r.has(flag::TSTAMP_OK).then_some(Timestamps {
                tsval,
                tsecr: r.ts_recent,
            }),
        },
    }
}

/// X-1..X-6, V-5: the one SYN-ACK builder, as the kernel has one `tcp_make_synack` for the
/// first, the cookie and every retransmitted SYN-ACK. Everything comes from the request `r`
/// (for a cookie, a request that is never stored, as the kernel's cookie path builds one and
/// frees it); `tsval` and `flow_label` are the caller's for this transmission. Written over
/// the received SYN when there is one (in place: its buffer becomes the reply), or from
/// nothing when a timer fires (MACs, tag and addresses kept in the request).
#[inline(always)]
pub(crate) fn make_synack(
    buf: &mut [u8],
    r: &RequestSock,
    cfg: &ListenerConfig,
    tsval: u32,
    flow_label: u32,
    syn: Option<&ParsedFrame>,
) -> Result<usize, WireError> {
    let s = req_synack(r, cfg, tsval);
    let ip = ip_params(cfg, r.key.v6, flow_label);
    if let Some(p) = syn {
        return reply::build_synack(buf, p, &ip, &s);
    }
    let flags = if s.ece {
        TcpFlags::SYN_ACK | TcpFlags::ECE
    } else {
        TcpFlags::SYN_ACK
    };
    emit_segment(
        buf,
        &SegmentSpec {
            eth_src: r.eth_local,
            eth_dst: r.eth_peer,
            vlan: r.vlan(),
            src: r.key.local_addr(),
            dst: r.key.remote_addr(),
            ip,
            src_port: r.key.lport,
            dst_port: r.key.rport,
            tcp: TcpParams {
                seq: s.iss,
                ack: r.irs + 1,
                flags,
                window: s.window,
                options: s.options,
            },
            payload: &[],
        },
    )
}

impl Worker {
    /// Section 4: a SYN reached the listener.
    pub(crate) fn conn_request(
        &mut self,
        t: &Tables,
        l: &Arc<Listener>,
        buf: &mut [u8],
        p: &ParsedFrame,
        rx: &Rx,
        now: Duration,
    ) -> Verdict {
        let seg = &p.seg;
        self.stats.inc(Mib::SynRecv);
        // S-1, V-2: broadcast, multicast or non-unicast destinations.
        let unicast = match seg.dst {
            IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
            IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
        };
        if !unicast {
            self.stats.inc(Mib::ListenDrops);
            return self.dropped(DropReason::NotUnicast);
        }
        if let IpAddr::V6(s) = seg.src {
            if s.to_ipv4_mapped().is_some() {
                return self.dropped(DropReason::V4MappedSource);
            }
        }
        let cfg = l.config();
        let backlog = l.backlog();

        // S-2, S-3: cookies always in mode 2, or while the SYN queue is over B in mode 1. A
        // request takes its place in qlen here, atomically (see `Listener::reserve_qlen`).
        let reserved = cfg.syncookies != SyncookieMode::Always && l.reserve_qlen(backlog);
        let want_cookie = !reserved && cfg.syncookies != SyncookieMode::Never;
        if !reserved {
            if want_cookie {
                self.stats.inc(Mib::TCPReqQFullDoCookies);
            } else {
                self.stats.inc(Mib::TCPReqQFullDrop);
            }
            if cfg.syncookies != SyncookieMode::Always {
                // "possible SYN flooding on port": raised once; the embedder logs it.
                l.synflood_warn_once();
            }
            if !want_cookie {
                self.stats.inc(Mib::ListenDrops);
                return self.dropped(DropReason::SynQueueFull);
            }
        }
        // S-4: a full accept queue drops every SYN, cookie SYNs included.
        if l.accept_queue_is_full(backlog) {
            if reserved {
                l.release_qlen();
            }
            self.stats.inc(Mib::ListenOverflows);
            self.stats.inc(Mib::ListenDrops);
            return self.dropped(DropReason::AcceptQueueFull);
        }

        let mut opts = SynOptions::of(p, &cfg);
        let key = rx.key;
        let v6 = key.v6;
        let fleet = self.shared.config.fleet;
        if fleet && opts.ts.is_none() {
            // Fleet mode: another host may make the child from the cookie, which has no room
            // for these without timestamps (K-3): none is offered.
            opts.wscale = None;
            opts.sack = false;
            opts.ecn = false;
        }
        // the offset only matters when timestamps are used (a keyed hash saved per SYN
        // without them, as most flood tools send).
        let ts_off = if cfg.timestamps == 1 && opts.ts.is_some() {
            secure_tcp_ts_off(&t.secrets, &key)
        } else {
            0
        };
        if want_cookie {
            return self.cookie_synack(t, l, &cfg, buf, p, &key, opts, ts_off, now);
        }

        // S-6: the cap on live requests stands for the kernel's failed allocation.
        if self.reqs.len() >= self.request_cap() {
            l.release_qlen();
            self.stats.inc(Mib::ListenDrops);
            return self.dropped(DropReason::RequestCap);
        }

        //
        let slot = self.lrefs.acquire(l);
        let mut r = openreq_init(key, slot, p, &opts, &cfg);
        let tsval = if fleet {
            // Fleet mode: the ISS is the cookie this SYN would get (K-1), and the TSval carries
            // the options (K-3): any host with the fleet's secrets can make the child.
            r.flags |= flag::FLEET;
            r.iss = synline_wire::SeqNumber(syncookie::cookie_init_sequence(
                &t.cookie.current,
                &key,
                p.seg.seq.0,
                self.cookie_count(now),
                syncookie::mss_index(opts.mss, v6),
            ));
            syncookie::cookie_init_timestamp(now, &r.cookie_options()).wrapping_add(ts_off)
        } else {
            r.iss = synline_wire::SeqNumber(secure_tcp_seq(&t.secrets, &key, now));
            ts_clock_ms(now).wrapping_add(ts_off)
        };
        if r.has(flag::TSTAMP_OK) {
            r.ts_off = ts_off;
            r.tsval_first = tsval;
            r.tsval_last = tsval;
        }
        r.set_expires(now + TIMEOUT_INIT);

        // insert (a raced duplicate is dropped silently, no counter); qlen and young
        // were taken above.
        let id = match self.reqs.insert_hashed(r, rx.hash, now) {
            Ok(id) => id,
            Err(_) => {
                l.release_qlen();
                self.lrefs.release(slot);
                return self.dropped(DropReason::SynRace);
            }
        };
        self.stats.set_requests(self.reqs.len());

        // the SYN-ACK goes after insertion; if it cannot be written the timer resends.
        let label = if v6 {
            flow_label(&t.secrets, &key, 0)
        } else {
            0
        };
        let r = self.reqs.get(id);
        self.synack_verdict(make_synack(buf, r, &cfg, tsval, label, Some(p)))
    }

    /// The verdict for a first or cookie SYN-ACK written into the SYN's buffer.
    fn synack_verdict(&mut self, built: Result<usize, WireError>) -> Verdict {
        match built {
            Ok(n) => {
                self.stats.inc(Mib::OutSegs);
                self.stats.inc(Mib::SynAckSent);
                Verdict::Transmit(n)
            }
            Err(_) => self.dropped(DropReason::BufferTooSmall),
        }
    }

    /// K-1..K-4: answer with a cookie; nothing is stored.
    #[allow(clippy::too_many_arguments)]
    fn cookie_synack(
        &mut self,
        t: &Tables,
        l: &Listener,
        cfg: &ListenerConfig,
        buf: &mut [u8],
        p: &ParsedFrame,
        key: &FlowKey,
        mut opts: SynOptions,
        ts_off: u32,
        now: Duration,
    ) -> Verdict {
        let v6 = key.v6;
        // K-3: without timestamps the cookie has no room for WS, SACK or ECN.
        if opts.ts.is_none() {
            opts.wscale = None;
            opts.sack = false;
            opts.ecn = false;
        }
        let idx = syncookie::mss_index(opts.mss, v6);
        let iss = syncookie::cookie_init_sequence(
            &t.cookie.current,
            key,
            p.seg.seq.0,
            self.cookie_count(now),
            idx,
        );
        // K-2.
        l.synq_overflow(now);
        self.stats.inc(Mib::SyncookiesSent);
        // The request the cookie stands for, never stored (the kernel's cookie path builds
        // one for tcp_make_synack and frees it at once).
        let mut r = openreq_init(*key, 0, p, &opts, cfg);
        r.iss = synline_wire::SeqNumber(iss);
        // K-3: the TSval carries the options the cookie has no room for.
        let mut tsval = 0;
        if opts.ts.is_some() {
            let carried = CookieOptions {
                wscale: opts.wscale,
                sack: opts.sack,
                ecn: opts.ecn,
            };
            tsval = syncookie::cookie_init_timestamp(now, &carried).wrapping_add(ts_off);
        }
        let label = if v6 {
            flow_label(&t.secrets, key, 0)
        } else {
            0
        };
        self.synack_verdict(make_synack(buf, &r, cfg, tsval, label, Some(p)))
    }
}
