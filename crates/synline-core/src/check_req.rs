//! Segments that hit a request sock: the kernel's `tcp_check_req` (tcp_minisocks.c), rules
//! R-1..R-11 with the 6.15 and 6.18 changes of spec section 0, and the child it makes:
//! `tcp_v4_syn_recv_sock` / `tcp_create_openreq_child` / `inet_csk_complete_hashdance`
//! (C-1..C-8). The cookie ACK path of `syncookies.c` (K-5..K-7) makes its child here too.

use crate::accept_queue::{Child, ChildState, ChildTimestamps};
use crate::conn_request::make_synack;
use crate::drop_reason::DropReason;
use crate::flow::FlowKey;
use crate::listener::{Listener, Tables};
use crate::request_table::{flag, ReqId, RequestSock};
use crate::secure_seq::{flow_label, secure_tcp_ts_off, ts_clock_ms};
use crate::settings::ListenerConfig;
use crate::stats::Mib;
use crate::syncookie;
use crate::timer::reqsk_timeout;
use crate::worker::{ip_params, Verdict, Worker};
use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;
use synline_wire::reply;
use synline_wire::{ParsedFrame, Segment, SeqNumber, Timestamps};

/// `tcp_invalid_ratelimit`: one out-of-window answer per 500 ms per request.
pub const INVALID_RATELIMIT: Duration = Duration::from_millis(500);
/// `TCP_PAWS_MSL`: an RST is exempt from PAWS while the reference is younger than this.
const PAWS_MSL: Duration = Duration::from_secs(60);

/// `tcp_in_window(seq, end_seq, RCV.NXT, RCV.NXT + W)`.
pub fn in_window(seq: SeqNumber, end_seq: SeqNumber, s_win: SeqNumber, e_win: SeqNumber) -> bool {
    if seq == s_win {
        return true;
    }
    if end_seq.after(s_win) && seq.before(e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// PAWS against the SYN's TSval (`tcp_paws_reject` with the request's values): reject an
/// older TSval when the reference is non-zero. An RST is let through only once the reference
/// is at least TCP_PAWS_MSL (60 s) old, the kernel's relaxation for peers whose clock went back
/// on a reboot; a request's reference is as old as its current RTO (`ts_recent_stamp` is set to
/// now minus `reqsk_timeout`), so that takes six timeouts (64 s).
pub fn paws_reject(ts_recent: u32, tsval: u32, rst: bool, num_timeout: u8) -> bool {
    if ts_recent == 0 || (ts_recent.wrapping_sub(tsval) as i32) <= 0 {
        return false;
    }
    !(rst && reqsk_timeout(num_timeout) >= PAWS_MSL)
}

/// The kernel's `between(seq, low, high)`.
fn between(seq: u32, low: u32, high: u32) -> bool {
    high.wrapping_sub(low) >= seq.wrapping_sub(low)
}

/// What a child is made of, from a request or from a cookie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenReq {
    pub key: FlowKey,
    pub eth_local: [u8; 6],
    pub eth_peer: [u8; 6],
    pub vlan: Option<u16>,
    pub iss: SeqNumber,
    pub irs: SeqNumber,
    pub mss: u16,
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: u8,
    pub rcv_wnd: u16,
    pub sack: bool,
    pub ts: Option<ChildTimestamps>,
    pub ecn: bool,
}

impl OpenReq {
    fn of(r: &RequestSock) -> OpenReq {
        OpenReq {
            key: r.key,
            eth_local: r.eth_local,
            eth_peer: r.eth_peer,
            vlan: r.vlan(),
            iss: r.iss,
            irs: r.irs,
            mss: r.mss,
            snd_wscale: r.has(flag::WSCALE_OK).then_some(r.snd_wscale),
            rcv_wscale: r.rcv_wscale,
            rcv_wnd: r.rcv_wnd,
            sack: r.has(flag::SACK_OK),
            ts: r.has(flag::TSTAMP_OK).then_some(ChildTimestamps {
                ts_recent: r.ts_recent,
                ts_off: r.ts_off,
                ts_ecr: 0,
            }),
            ecn: r.has(flag::ECN_OK),
        }
    }
}

impl Worker {
    /// `tcp_oow_rate_limited`: true (and TCPACKSkippedSynRecv) when an answer was sent for this
    /// request less than 500 ms ago. Data segments without SYN are never limited: they are not
    /// part of an ACK loop.
    fn oow_rate_limited(&self, seg: &Segment, last: &mut Option<Duration>, now: Duration) -> bool {
        if seg.payload_len > 0 && !seg.flags.syn() {
            return false;
        }
        if let Some(t) = *last {
            if now >= t && now - t < INVALID_RATELIMIT {
                self.stats.inc(Mib::TCPACKSkippedSynRecv);
                return true;
            }
        }
        *last = Some(now);
        false
    }

    /// Section 8. `None` when the segment goes on to the listener (the kernel's `return sk`
    /// from `tcp_check_req`: R-3).
    pub(crate) fn check_req(
        &mut self,
        buf: &mut [u8],
        p: &ParsedFrame,
        id: ReqId,
        now: Duration,
    ) -> Option<Verdict> {
        let seg = p.seg;
        let slot = self.reqs.get(id).listener;
        let l = self.lrefs.get(slot);

        // the listener is gone: drop the request and look again (the kernel's
        // `goto lookup`): a new listener on the port takes the segment; with none left, the
        // segment gets the RST of a closed port.
        if !l.is_listening() {
            self.remove_request(id);
            let relisten = self
                .tables_ref()
                .is_some_and(|t| t.lookup(seg.dst, seg.dst_port).is_some());
            if relisten {
                return None;
            }
            return Some(if seg.flags.rst() {
                self.dropped(DropReason::ListenerClosed)
            } else {
                self.send_rst(buf, p)
            });
        }
        let cfg = l.config();
        let (f, rst) = (seg.flags, seg.flags.rst());
        let r = self.reqs.get(id);

        // R-1 and the 6.15 TSecr check.
        let saw_ts = if cfg.timestamps != 0 {
            seg.options.timestamps
        } else {
            None
        };
        let (mut paws, mut tsecr_reject) = (false, false);
        if let Some(ts) = saw_ts {
            if ts.tsecr != 0 && r.has(flag::TSTAMP_OK) {
                tsecr_reject = !between(ts.tsecr, r.tsval_first, r.tsval_last);
            }
            paws = paws_reject(r.ts_recent, ts.tsval, rst, r.num_timeout);
        }

        // a retransmitted SYN gets the SYN-ACK again (rate-limited) and resets the timer.
        if seg.seq == r.irs && f.syn() && !f.ack() && !rst && !paws {
            return Some(self.rtx_synack_in_place(buf, p, id, &cfg, now));
        }

        // a wrong ACK value goes to the listener (L-1's cookie check, then L-2's RST);
        // R is untouched. 6.18: the RST bit is looked at first, so RST|ACK is not handled here.
        if f.ack() && !rst && seg.ack != r.iss + 1 {
            return None;
        }

        //
        let rcv_nxt = r.rcv_nxt();
        let w = u32::from(r.rcv_wnd);
        if paws || tsecr_reject || !in_window(seg.seq, seg.end_seq(), rcv_nxt, rcv_nxt + w) {
            let mut last = r.last_oow_ack();
            let answer = !rst && !self.oow_rate_limited(&seg, &mut last, now);
            self.reqs.get_mut(id).set_last_oow_ack(last);
            let reason = if paws {
                self.stats.inc(Mib::PAWSEstab);
                DropReason::Paws
            } else if tsecr_reject {
                self.stats.inc(Mib::TSEcrRejected);
                DropReason::TsecrRejected
            } else {
                DropReason::OutOfWindow
            };
            if answer {
                return Some(
                    self.send_req_ack(buf, p, id, &cfg, now)
                        .unwrap_or_else(|| self.dropped(reason)),
                );
            }
            return Some(self.dropped(if rst { reason } else { DropReason::RateLimited }));
        }

        // TS.Recent follows an in-window segment that does not start beyond RCV.NXT.
        if let Some(ts) = saw_ts {
            if !seg.seq.after(rcv_nxt) {
                self.reqs.get_mut(id).ts_recent = ts.tsval;
            }
        }

        // the SYN of the original sequence number is not a new SYN.
        let syn = f.syn() && seg.seq != self.reqs.get(id).irs;

        // R-6, with RFC 5961 section 3.2 as 6.18 applies it.
        if rst || syn {
            if rst && seg.seq != rcv_nxt {
                self.stats.inc(Mib::TCPChallengeACK);
                return Some(self.send_challenge_ack(buf, p, id, &cfg));
            }
            self.stats.inc(Mib::AttemptFails);
            return Some(self.embryonic_reset(buf, p, id, rst));
        }

        //
        if !f.ack() {
            return Some(self.dropped(DropReason::NoAck));
        }

        // TCP_DEFER_ACCEPT keeps a bare ACK waiting for data.
        let r = self.reqs.get(id);
        if r.num_timeout < cfg.defer_accept_retrans() && seg.end_seq() == r.irs + 1 {
            self.reqs.get_mut(id).flags |= flag::ACKED;
            self.stats.inc(Mib::TCPDeferAcceptDrop);
            return Some(self.dropped(DropReason::DeferAccept));
        }

        // the child. R-11 (another CPU converted R first) cannot happen: one worker owns R.
        let open = OpenReq::of(r);
        let payload = p.payload(buf);
        if self.syn_recv_sock(self.lrefs.get(slot), &open, &seg, payload, false) {
            // C-3, C-6: the child replaces R; its timer goes; qlen--, young-- once.
            self.remove_request(id);
            self.note_accepted(&open.key, now);
            return Some(Verdict::Consumed);
        }
        //
        if !cfg.abort_on_overflow {
            self.reqs.get_mut(id).flags |= flag::ACKED;
            return Some(self.dropped(DropReason::AcceptQueueFullKeep));
        }
        Some(self.embryonic_reset(buf, p, id, false))
    }

    /// R-6/R-10 `embryonic_reset`: RST unless the segment was one, remove R, EmbryonicRsts.
    fn embryonic_reset(
        &mut self,
        buf: &mut [u8],
        p: &ParsedFrame,
        id: ReqId,
        rst: bool,
    ) -> Verdict {
        self.remove_request(id);
        self.stats.inc(Mib::EmbryonicRsts);
        if rst {
            return self.dropped(DropReason::RequestReset);
        }
        self.send_rst(buf, p)
    }

    /// Takes R out of the shard and the listener's counts (`inet_csk_reqsk_queue_drop`).
    pub(crate) fn remove_request(&mut self, id: ReqId) {
        let r = self.reqs.remove(id);
        self.lrefs.get(r.listener).reqsk_removed(r.num_timeout);
        self.lrefs.release(r.listener);
        self.stats.set_requests(self.reqs.len());
    }

    /// `inet_rtx_syn_ack` into the buffer of the duplicate SYN.
    fn rtx_synack_in_place(
        &mut self,
        buf: &mut [u8],
        p: &ParsedFrame,
        id: ReqId,
        cfg: &ListenerConfig,
        now: Duration,
    ) -> Verdict {
        let mut last = self.reqs.get(id).last_oow_ack();
        let limited = self.oow_rate_limited(&p.seg, &mut last, now);
        self.reqs.get_mut(id).set_last_oow_ack(last);
        if limited {
            return self.dropped(DropReason::RateLimited);
        }
        match self.write_synack_rtx(buf, Some(p), id, cfg, now) {
            Some(n) => {
                // T-8: expiry moves to now + the current RTO; num_timeout and young stay.
                let rto = reqsk_timeout(self.reqs.get(id).num_timeout);
                self.reqs.rearm(id, now + rto);
                Verdict::Transmit(n)
            }
            None => self.dropped(DropReason::BufferTooSmall),
        }
    }

    /// a retransmitted SYN-ACK of R, over the received duplicate SYN `p` or, for a timer,
    /// from nothing. Same ISS and options, fresh TSval, new flow label.
    pub(crate) fn write_synack_rtx(
        &mut self,
        buf: &mut [u8],
        p: Option<&ParsedFrame>,
        id: ReqId,
        cfg: &ListenerConfig,
        now: Duration,
    ) -> Option<usize> {
        let label = {
            let r = self.reqs.get(id);
            let t = self.tables_ref()?;
            if r.key.v6 {
                flow_label(&t.secrets, &r.key, r.num_retrans.wrapping_add(1))
            } else {
                0
            }
        };
        let r = self.reqs.get(id);
        let tsval = if r.has(flag::FLEET) {
            // Fleet mode: every SYN-ACK of the request carries the options in its TSval, as
            // a cookie SYN-ACK does (K-3), for whichever host gets the third ACK.
            syncookie::cookie_init_timestamp(now, &r.cookie_options()).wrapping_add(r.ts_off)
        } else {
            ts_clock_ms(now).wrapping_add(r.ts_off)
        };
        let n = make_synack(buf, r, cfg, tsval, label, p).ok()?;
        let r = self.reqs.get_mut(id);
        r.num_retrans = r.num_retrans.saturating_add(1);
        if r.has(flag::TSTAMP_OK) {
            r.tsval_last = tsval;
        }
        self.stats.inc(Mib::TCPSynRetrans);
        self.stats.inc(Mib::RetransSegs);
        self.stats.inc(Mib::OutSegs);
        self.stats.inc(Mib::SynAckSent);
        Some(n)
    }

    /// P-2: `tcp_v4_reqsk_send_ack`: SEQ = ISS + 1, ACK = RCV.NXT, window W >> our shift,
    /// NOP NOP TS (fresh TSval, TSecr = TS.Recent) only when TS.Recent is non-zero.
    fn send_req_ack(
        &mut self,
        buf: &mut [u8],
        p: &ParsedFrame,
        id: ReqId,
        cfg: &ListenerConfig,
        now: Duration,
    ) -> Option<Verdict> {
        let r = self.reqs.get(id);
        let ts = (r.ts_recent != 0).then(|| Timestamps {
            tsval: ts_clock_ms(now).wrapping_add(r.ts_off),
            tsecr: r.ts_recent,
        });
        let window = (u32::from(r.rcv_wnd) >> r.rcv_wscale) as u16;
        let ip = ip_params(cfg, r.key.v6, 0);
        let n = reply::build_ack(buf, p, &ip, r.iss + 1, r.rcv_nxt(), window, ts).ok()?;
        self.stats.inc(Mib::OutSegs);
        Some(Verdict::Transmit(n))
    }

    /// 6.18, RFC 5961 section 3.2: the challenge ACK for an in-window RST not at RCV.NXT:
    /// SEQ = ISS + 1, ACK = IRS + 1, no options, window unscaled. The request survives.
    fn send_challenge_ack(
        &mut self,
        buf: &mut [u8],
        p: &ParsedFrame,
        id: ReqId,
        cfg: &ListenerConfig,
    ) -> Verdict {
        let r = self.reqs.get(id);
        let ip = ip_params(cfg, r.key.v6, 0);
        match reply::build_ack(buf, p, &ip, r.iss + 1, r.rcv_nxt(), r.rcv_wnd, None) {
            Ok(n) => {
                self.stats.inc(Mib::OutSegs);
                Verdict::Transmit(n)
            }
            Err(_) => self.dropped(DropReason::BufferTooSmall),
        }
    }

    /// C-1, C-2, C-7, C-8: makes the child and appends it to the accept list; false (with
    /// ListenOverflows + ListenDrops) when the list is full.
    pub(crate) fn syn_recv_sock(
        &self,
        l: &Listener,
        o: &OpenReq,
        seg: &Segment,
        payload: &[u8],
        from_cookie: bool,
    ) -> bool {
        let backlog = l.backlog();
        if l.accept_queue_is_full(backlog) {
            self.stats.inc(Mib::ListenOverflows);
            self.stats.inc(Mib::ListenDrops);
            return false;
        }
        let mut rcv_nxt = o.irs + 1;
        let mut data = Vec::new();
        let mut state = ChildState::Established;
        // C-8: what came in order with the third ACK is the child's; data beyond RCV.NXT
        // (in window but out of order) is left for the peer to retransmit.
        if seg.seq == rcv_nxt {
            if !payload.is_empty() {
                data = payload.to_vec();
                rcv_nxt = rcv_nxt + payload.len() as u32;
            }
            if seg.flags.fin() {
                rcv_nxt = rcv_nxt + 1;
                state = ChildState::CloseWait;
            }
        }
        let ts = o.ts.map(|t| ChildTimestamps {
            ts_recent: seg.options.timestamps.map_or(t.ts_recent, |s| s.tsval),
            ts_off: t.ts_off,
            ts_ecr: seg.options.timestamps.map_or(0, |s| s.tsecr),
        });
        let child = Child {
            local: SocketAddr::new(o.key.local_addr(), o.key.lport),
            remote: SocketAddr::new(o.key.remote_addr(), o.key.rport),
            eth_local: o.eth_local,
            eth_peer: o.eth_peer,
            vlan: o.vlan,
            iss: o.iss,
            irs: o.irs,
            snd_nxt: o.iss + 1,
            rcv_nxt,
            snd_wnd: u32::from(seg.window) << o.snd_wscale.unwrap_or(0),
            rcv_wnd: u32::from(o.rcv_wnd),
            mss: o.mss,
            snd_wscale: o.snd_wscale,
            rcv_wscale: o.rcv_wscale,
            sack: o.sack,
            timestamps: ts,
            ecn: o.ecn,
            data,
            state,
            from_cookie,
        };
        if l.accept_queue.push(child, backlog).is_err() {
            // Another worker took the last place between the check and the push.
            self.stats.inc(Mib::ListenOverflows);
            self.stats.inc(Mib::ListenDrops);
            return false;
        }
        self.stats.inc(Mib::PassiveOpens);
        true
    }

    /// Remembers a flow whose child was just made (`accepted`), when that is on.
    fn note_accepted(&mut self, key: &FlowKey, now: Duration) {
        let hash = self.reqs.hash(key);
        if let Some(a) = self.accepted.as_mut() {
            a.insert(*key, hash, now);
        }
    }

    /// L-1, K-5..K-7: `cookie_v4_check`. `None` when the ACK is not a (usable) cookie: the
    /// listener then answers it with an RST (L-2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cookie_ack(
        &mut self,
        t: &Tables,
        l: &Arc<Listener>,
        cfg: &ListenerConfig,
        buf: &mut [u8],
        p: &ParsedFrame,
        key: &FlowKey,
        now: Duration,
    ) -> Option<Verdict> {
        let seg = &p.seg;
        let key = *key;
        let client_isn = seg.seq - 1;
        let cookie = seg.ack - 1;
        let count = self.cookie_count(now);
        let Some(idx) =
            syncookie::cookie_check(&t.cookie, &key, cookie.0, client_isn.0, now, count)
        else {
            self.stats.inc(Mib::SyncookiesFailed);
            return None;
        };
        self.stats.inc(Mib::SyncookiesRecv);
        // K-6: options from the TSecr, less our offset.
        let saw_ts = if cfg.timestamps != 0 {
            seg.options.timestamps
        } else {
            None
        };
        let ts_off = if cfg.timestamps == 1 && saw_ts.is_some() {
            secure_tcp_ts_off(&t.secrets, &key)
        } else {
            0
        };
        let tsecr = saw_ts.map(|ts| ts.tsecr.wrapping_sub(ts_off));
        let Ok(o) = syncookie::cookie_timestamp_decode(
            tsecr,
            cfg.timestamps != 0,
            cfg.sack,
            cfg.window_scaling,
            cfg.ecn != 0,
        ) else {
            self.stats.dropped(DropReason::CookieOptions);
            return None;
        };
        let v6 = key.v6;
        let open = OpenReq {
            key,
            eth_local: seg.eth_dst,
            eth_peer: seg.eth_src,
            vlan: seg.vlan,
            iss: cookie,
            irs: client_isn,
            mss: syncookie::mss_table(v6)[idx as usize],
            snd_wscale: o.wscale,
            rcv_wscale: if o.wscale.is_some() {
                cfg.rcv_wscale()
            } else {
                0
            },
            rcv_wnd: cfg.rcv_wnd(v6, saw_ts.is_some()),
            sack: o.sack,
            ts: saw_ts.map(|ts| ChildTimestamps {
                ts_recent: ts.tsval,
                ts_off,
                ts_ecr: ts.tsecr,
            }),
            ecn: o.ecn,
        };
        let payload = p.payload(buf);
        // K-7: a full accept queue drops the ACK silently; abort_on_overflow is not consulted.
        if self.syn_recv_sock(l, &open, seg, payload, true) {
            self.note_accepted(&key, now);
            Some(Verdict::Consumed)
        } else {
            Some(self.dropped(DropReason::AcceptQueueFull))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn r4_window_edges() {
        let n = SeqNumber(1000);
        let e = n + 100;
        assert!(in_window(n, n, n, e), "seq == RCV.NXT");
        assert!(in_window(n - 10, n + 1, n, e), "overlaps RCV.NXT");
        assert!(!in_window(n - 10, n, n, e), "ends at RCV.NXT");
        assert!(in_window(e - 1, e + 10, n, e));
        assert!(
            !in_window(e, e + 1, n, e),
            "starts at the right edge with data"
        );
        assert!(in_window(e, e, n, e), "zero length at the right edge");
    }

    #[test]
    fn r1_paws() {
        assert!(paws_reject(1000, 999, false, 0));
        assert!(!paws_reject(1000, 1000, false, 0));
        assert!(!paws_reject(1000, 1001, false, 0));
        assert!(!paws_reject(0, 5, false, 0), "no reference");
        assert!(
            paws_reject(1000, 999, true, 0),
            "an RST while the reference is young"
        );
        assert!(
            paws_reject(1000, 999, true, 5),
            "32 s is younger than TCP_PAWS_MSL"
        );
        assert!(
            !paws_reject(1000, 999, true, 6),
            "an RST once the reference is 64 s old"
        );
    }

    proptest! {
        /// a segment starting at RCV.NXT is always in; one ending at or before RCV.NXT
        /// with data is never in; anything starting at or beyond the right edge with data is out.
        #[test]
        fn r4_window_properties(base in any::<u32>(), w in 1u32..65536, off in any::<u32>(), len in 1u32..2000) {
            let n = SeqNumber(base);
            let e = n + w;
            prop_assert!(in_window(n, n + len, n, e));
            let s = n - len - (off % 1000);
            prop_assert!(!in_window(s, s + len, n, e));
            let s = e + (off % 1000);
            prop_assert!(!in_window(s, s + len, n, e));
        }

        /// an older TSval is rejected exactly when the reference is non-zero.
        #[test]
        fn r1_paws_properties(reference in 1u32.., back in 1u32..(1 << 31)) {
            prop_assert!(paws_reject(reference, reference.wrapping_sub(back), false, 0));
            prop_assert!(!paws_reject(reference, reference.wrapping_add(back - 1), false, 0));
        }
    }
}
