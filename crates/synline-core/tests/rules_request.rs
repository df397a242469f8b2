//! Spec section 8 (segments hitting a request, R-1..R-11, with the 6.15 TSecr check and the
//! 6.18 RFC 5961 changes of section 0), section 9 (the child, C-1..C-8) and section 12 (the
//! RST of P-1 and the ACK of P-2), with the counters of section 14 they touch.
//!
//! Each test is a small table: listener settings and the segment(s) a client sends, then the
//! verdict, the reply's fields, the counters and what is left in the tables.
mod util;
use util::*;

use std::time::Duration;
use synline_core::secure_seq::ts_clock_ms;
use synline_core::{
    ChildState, DropReason, ListenerConfig, Mib, StackConfig, SyncookieMode, Verdict,
};
use synline_wire::{OptionsOut, SeqNumber, TcpFlags, Timestamps};

/// W with timestamps (Q-5, measured on 6.18) and the default shift (tcp_rmem[2] 32 MB).
const W_TS: u32 = 65160;
const W_NO_TS: u32 = 64240;
const WSCALE: u8 = 10;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The TCP header of a reply, options included.
fn tcp_header(r: &Reply) -> &[u8] {
    let l4 = r.p.layout.l4;
    let doff = usize::from(r.bytes[l4 + 12] >> 4) * 4;
    &r.bytes[l4..l4 + doff]
}

/// The option bytes of a reply.
fn option_bytes(r: &Reply) -> &[u8] {
    &tcp_header(r)[20..]
}

/// A listener with `cfg`, client `p` (port 40000 unless changed by `f`), the SYN answered.
fn requested_with(cfg: ListenerConfig, f: impl FnOnce(&mut Peer)) -> (Harness, Peer, Reply) {
    let mut h = Harness::new(cfg, 128);
    let mut p = Peer::v4(40000);
    f(&mut p);
    let synack = h.feed(&p.syn()).reply().clone();
    p.learn(&synack);
    assert_eq!((h.qlen(), h.young()), (1, 1));
    (h, p, synack)
}

fn requested() -> (Harness, Peer, Reply) {
    requested_with(ListenerConfig::default(), |_| {})
}

/// RCV.NXT of the request: IRS + 1.
fn rcv_nxt(p: &Peer) -> SeqNumber {
    p.isn + 1
}

/// Timestamps option with these values.
fn ts(tsval: u32, tsecr: u32) -> OptionsOut {
    OptionsOut {
        timestamps: Some(Timestamps { tsval, tsecr }),
        ..OptionsOut::default()
    }
}

/// The request is still there, untouched.
fn assert_kept(h: &Harness, why: &str) {
    assert_eq!(h.qlen(), 1, "{why}: qlen");
    assert_eq!(h.worker.requests(), 1, "{why}: request");
    assert_eq!(h.stack.live_requests(), 1, "{why}: live");
    assert!(h.accept().is_none(), "{why}: no child");
}

/// The request is gone, and nothing was made of it.
fn assert_gone(h: &Harness, why: &str) {
    assert_eq!((h.qlen(), h.young()), (0, 0), "{why}: qlen, young");
    assert_eq!(h.worker.requests(), 0, "{why}: request");
    assert_eq!(h.stack.live_requests(), 0, "{why}: live");
    assert!(h.accept().is_none(), "{why}: no child");
}

/// The good third ACK still makes a child: R was left as it was.
fn assert_third_ack_completes(h: &mut Harness, p: &Peer, why: &str) {
    let out = h.feed(&p.third_ack(&[]));
    assert_eq!(
        out.verdict,
        Verdict::Consumed,
        "{why}: third ACK afterwards"
    );
    assert!(h.accept().is_some(), "{why}: child");
}

/// P-2: the ACK of a request: SEQ = ISS + 1, ACK = IRS + 1, window W >> our shift.
fn assert_p2_ack(r: &Reply, p: &Peer, window: u32, why: &str) {
    assert_eq!(r.flags(), TcpFlags::ACK, "{why}: flags");
    assert_eq!(r.seq(), p.iss + 1, "{why}: SEQ = ISS + 1");
    assert_eq!(r.ack(), rcv_nxt(p), "{why}: ACK = IRS + 1");
    assert_eq!(u32::from(r.p.seg.window), window, "{why}: window");
}

/// P-1: an RST with no options and window 0; SEQ = SEG.ACK without the ACK flag when the
/// segment had ACK, else SEQ = 0 and ACK = SEG.SEQ + SEG.LEN with the ACK flag.
fn assert_p1_rst(r: &Reply, seg_ack: Option<SeqNumber>, seg_end: SeqNumber, why: &str) {
    match seg_ack {
        Some(a) => {
            assert_eq!(r.flags(), TcpFlags::RST, "{why}: RST alone");
            assert_eq!(r.seq(), a, "{why}: SEQ = SEG.ACK");
        }
        None => {
            assert_eq!(r.flags(), TcpFlags::RST | TcpFlags::ACK, "{why}: RST|ACK");
            assert_eq!(r.seq(), SeqNumber(0), "{why}: SEQ 0");
            assert_eq!(r.ack(), seg_end, "{why}: ACK = SEG.SEQ + SEG.LEN");
        }
    }
    assert_eq!(r.p.seg.window, 0, "{why}: window 0");
    assert!(option_bytes(r).is_empty(), "{why}: no options");
}

// =======================================================================================
// PAWS against the SYN's TSval.

#[test]
fn r1_paws_rejects_older_tsval() {
    // SYN TSval 5000. (TSval of the third ACK, PAWS-rejected)
    let table: &[(u32, bool)] = &[
        (4999, true),
        (5000u32.wrapping_sub(0x7fff_ffff), true), // the oldest a signed 32-bit step allows
        (5000, false),
        (5001, false),
        (5000u32.wrapping_add(0x8000_0000), false), // (s32)(5000 - TSval) = i32::MIN: not older
    ];
    for &(tsval, reject) in table {
        let (mut h, p, synack) = requested();
        h.advance(ms(10));
        let f = p.frame(
            TcpFlags::ACK,
            rcv_nxt(&p),
            p.iss + 1,
            ts(tsval, synack.tsval().unwrap()),
            &[],
        );
        let out = h.feed(&f);
        let why = format!("TSval {tsval}");
        if reject {
            let r = out.reply();
            assert_p2_ack(r, &p, W_TS >> WSCALE, &why);
            assert_eq!(h.stats().get(Mib::PAWSEstab), 1, "{why}");
            assert_kept(&h, &why);
        } else {
            assert_eq!(out.verdict, Verdict::Consumed, "{why}");
            assert_eq!(h.stats().get(Mib::PAWSEstab), 0, "{why}");
        }
    }
}

/// no reference (the SYN's TSval was 0), no PAWS.
#[test]
fn r1_paws_needs_nonzero_reference() {
    let (mut h, p, synack) = requested_with(ListenerConfig::default(), |p| {
        p.options.timestamps = Some(Timestamps { tsval: 0, tsecr: 0 });
    });
    let f = p.frame(
        TcpFlags::ACK,
        rcv_nxt(&p),
        p.iss + 1,
        ts(0xf000_0000, synack.tsval().unwrap()),
        &[],
    );
    assert_eq!(h.feed(&f).verdict, Verdict::Consumed);
    assert_eq!(h.stats().get(Mib::PAWSEstab), 0);
}

/// R-1 + R-4: a PAWS-rejected RST (older TSval, a young request) is dropped with no reply
/// and leaves the request alone; R-4 sends nothing for an RST.
#[test]
fn r1_paws_rejected_rst_keeps_request() {
    let (mut h, p, synack) = requested();
    let f = p.frame(
        TcpFlags::RST,
        rcv_nxt(&p),
        SeqNumber(0),
        ts(4999, synack.tsval().unwrap()),
        &[],
    );
    let out = h.feed(&f);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Paws));
    assert!(out.reply.is_none(), "never an answer to an RST");
    let s = h.stats();
    assert_eq!(s.get(Mib::PAWSEstab), 1);
    assert_eq!(s.get(Mib::AttemptFails), 0);
    assert_eq!(s.get(Mib::EmbryonicRsts), 0);
    assert_kept(&h, "PAWS-rejected RST");
}

// =======================================================================================
// 6.15: TSecr must be the TSval of one of our SYN-ACKs.

#[test]
fn tsecr_not_of_a_synack_is_rejected_like_out_of_window() {
    // (TSecr relative to the SYN-ACK's TSval, rejected)
    let table: &[(i64, bool)] = &[
        (0, false),
        (1, true),
        (-1, true),
        (1_000_000, true),
        (-1_000_000, true),
    ];
    for &(delta, reject) in table {
        let (mut h, p, synack) = requested();
        h.advance(ms(50));
        let tsecr = synack.tsval().unwrap().wrapping_add(delta as u32);
        let f = p.frame(TcpFlags::ACK, rcv_nxt(&p), p.iss + 1, ts(5001, tsecr), &[]);
        let out = h.feed(&f);
        let why = format!("TSecr SYN-ACK TSval {delta:+}");
        if !reject {
            assert_eq!(out.verdict, Verdict::Consumed, "{why}");
            continue;
        }
        let r = out.reply();
        assert_p2_ack(r, &p, W_TS >> WSCALE, &why);
        // P-2 carries a fresh TSval and echoes TS.Recent (the SYN's TSval).
        let rts = r.p.seg.options.timestamps.expect("P-2 with timestamps");
        assert_eq!(rts.tsval, synack.tsval().unwrap().wrapping_add(50), "{why}");
        assert_eq!(rts.tsecr, 5000, "{why}");
        let s = h.stats();
        assert_eq!(s.get(Mib::TSEcrRejected), 1, "{why}");
        assert_eq!(s.get(Mib::PAWSEstab), 0, "{why}");
        assert_eq!(s.get(Mib::PassiveOpens), 0, "{why}");
        assert_kept(&h, &why);
    }
}

#[test]
fn tsecr_of_any_synack_sent_is_accepted() {
    // Echo of the first SYN-ACK or of the retransmission, after the retransmission.
    for echo_first in [true, false] {
        let (mut h, mut p, synack) = requested();
        let t0 = h.now;
        let f = h.run_until(t0 + ms(1100));
        assert_eq!(f.len(), 1);
        let rtx = f[0].1.tsval().unwrap();
        assert_ne!(rtx, synack.tsval().unwrap());
        p.ts_recent = if echo_first {
            synack.tsval().unwrap()
        } else {
            rtx
        };
        let out = h.feed(&p.third_ack(&[]));
        assert_eq!(out.verdict, Verdict::Consumed, "echo first: {echo_first}");
        assert_eq!(h.stats().get(Mib::TSEcrRejected), 0);
    }
}

/// Section 0: a client that echoes the P-2 ACK's fresh TSval is rejected the same way
/// (rate-limited ), and recovers with the next SYN-ACK retransmission.
#[test]
fn tsecr_echo_of_p2_ack_rejected_then_recovers_on_retransmission() {
    let (mut h, mut p, synack) = requested();
    let t0 = h.now;
    h.advance(ms(100));
    let bad = p.frame(
        TcpFlags::ACK,
        rcv_nxt(&p),
        p.iss + 1,
        ts(5001, synack.tsval().unwrap() + 7),
        &[],
    );
    let ack = h.feed(&bad).reply().clone();
    let p2_tsval = ack.tsval().expect("P-2 with timestamps");
    assert_eq!(p2_tsval, synack.tsval().unwrap() + 100, "fresh TSval");

    // The client echoes the P-2's TSval 100 ms later: rejected, answer suppressed.
    h.advance(ms(100));
    p.ts_recent = p2_tsval;
    let out = h.feed(&p.third_ack(&[]));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::RateLimited));
    let s = h.stats();
    assert_eq!(s.get(Mib::TSEcrRejected), 2);
    assert_eq!(s.get(Mib::TCPACKSkippedSynRecv), 1);
    assert_kept(&h, "echo of the P-2 TSval");

    // The SYN-ACK retransmission at 1 s; its TSval echoed makes the child.
    let f = h.run_until(t0 + ms(1100));
    assert_eq!(f.len(), 1);
    p.ts_recent = f[0].1.tsval().unwrap();
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.stats().get(Mib::TSEcrRejected), 2);
}

// =======================================================================================
// a retransmitted SYN.

#[test]
fn r2_duplicate_syn_gets_same_synack_with_fresh_tsval() {
    let (mut h, p, first) = requested();
    h.advance(ms(300));
    let out = h.feed(&p.syn());
    let r = out.reply();
    assert_eq!(r.flags(), TcpFlags::SYN_ACK);
    assert_eq!(r.seq(), first.seq(), "same ISS");
    assert_eq!(r.ack(), p.isn + 1);
    assert_eq!(r.p.seg.window, first.p.seg.window);
    let (o, fo) = (r.p.seg.options, first.p.seg.options);
    assert_eq!(
        (o.mss, o.wscale, o.sack_permitted),
        (fo.mss, fo.wscale, fo.sack_permitted)
    );
    let t = o.timestamps.unwrap();
    assert_eq!(t.tsval, first.tsval().unwrap() + 300, "fresh TSval");
    assert_eq!(t.tsecr, 5000);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPSynRetrans), 1);
    assert_eq!(s.get(Mib::RetransSegs), 1);
    assert_eq!(s.get(Mib::OutSegs), 2);
    assert_eq!((h.qlen(), h.young()), (1, 1), "num_timeout unchanged");
    assert_third_ack_completes(&mut h, &p, "after the duplicate SYN");
}

/// "Options are not re-read": the duplicate's options change nothing.
#[test]
fn r2_duplicate_syn_options_are_not_reread() {
    let (mut h, mut p, first) = requested();
    h.advance(ms(300));
    let mut other = p.clone();
    other.options = OptionsOut {
        mss: Some(1000),
        wscale: None,
        sack_permitted: false,
        timestamps: Some(Timestamps {
            tsval: 6000,
            tsecr: 0,
        }),
    };
    let r = h.feed(&other.syn()).reply().clone();
    let (o, fo) = (r.p.seg.options, first.p.seg.options);
    assert_eq!(
        (o.mss, o.wscale, o.sack_permitted),
        (fo.mss, fo.wscale, fo.sack_permitted)
    );
    assert_eq!(
        o.timestamps.unwrap().tsecr,
        5000,
        "TSecr: the first SYN's TSval"
    );
    p.ts_recent = r.tsval().unwrap();
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    let c = h.accept().unwrap();
    assert_eq!(c.mss, 1460);
    assert_eq!(c.snd_wscale, Some(7));
    assert!(c.sack);
}

/// only SYN among SYN/ACK/RST, at SEG.SEQ == IRS: other flags and data do not matter.
#[test]
fn r2_other_flags_and_data_still_a_retransmitted_syn() {
    let table: &[(TcpFlags, &[u8])] = &[
        (TcpFlags::SYN, b""),
        (TcpFlags::SYN, b"data in a SYN"),
        (TcpFlags::SYN | TcpFlags::FIN, b""),
        (TcpFlags::SYN | TcpFlags::PSH | TcpFlags::URG, b""),
        (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, b""),
    ];
    for &(flags, payload) in table {
        let (mut h, p, first) = requested();
        h.advance(ms(100));
        let f = p.frame(flags, p.isn, SeqNumber(0), p.options, payload);
        let out = h.feed(&f);
        let why = format!("{flags:?} + {} bytes", payload.len());
        let r = out.reply();
        assert_eq!(r.flags(), TcpFlags::SYN_ACK, "{why}");
        assert_eq!(r.seq(), first.seq(), "{why}");
        assert_eq!(h.stats().get(Mib::TCPSynRetrans), 1, "{why}");
        assert_eq!(h.stats().get(Mib::AttemptFails), 0, "{why}");
        assert_kept(&h, &why);
    }
}

#[test]
fn r2_duplicate_syn_rate_limited_to_one_per_500ms() {
    let (mut h, p, _) = requested();
    let t0 = h.now;
    // (ms after the SYN, answered). The SYN-ACK to the first SYN does not count.
    let table: &[(u64, bool)] = &[(1, true), (200, false), (500, false), (501, true)];
    let mut skipped = 0;
    for &(at, answered) in table {
        h.now = t0 + ms(at);
        let out = h.feed(&p.syn());
        if answered {
            assert!(out.reply().is_synack(), "at {at} ms");
        } else {
            skipped += 1;
            assert_eq!(
                out.verdict,
                Verdict::Drop(DropReason::RateLimited),
                "at {at} ms"
            );
        }
        assert_eq!(
            h.stats().get(Mib::TCPACKSkippedSynRecv),
            skipped,
            "at {at} ms"
        );
    }
    assert_eq!(h.stats().get(Mib::TCPSynRetrans), 2);
}

/// an out-of-window ACK answered within the last 500 ms also silences the SYN.
#[test]
fn r2_duplicate_syn_after_oow_ack_is_rate_limited() {
    let (mut h, p, _) = requested();
    h.advance(ms(100));
    let oow = p.seg(TcpFlags::ACK, rcv_nxt(&p) + 100_000, p.iss + 1);
    assert!(h.feed(&oow).reply().is_bare_ack());
    h.advance(ms(100));
    let out = h.feed(&p.syn());
    assert_eq!(out.verdict, Verdict::Drop(DropReason::RateLimited));
    assert_eq!(h.stats().get(Mib::TCPACKSkippedSynRecv), 1);
    assert_eq!(h.stats().get(Mib::TCPSynRetrans), 0);
}

/// R-2 needs "no PAWS reject": an old duplicate SYN is answered by R-4 with an ACK.
#[test]
fn r2_paws_rejected_duplicate_syn_gets_ack() {
    let (mut h, mut p, _) = requested();
    h.advance(ms(100));
    p.options.timestamps = Some(Timestamps {
        tsval: 4000,
        tsecr: 0,
    });
    let out = h.feed(&p.syn());
    assert_p2_ack(out.reply(), &p, W_TS >> WSCALE, "old duplicate SYN");
    let s = h.stats();
    assert_eq!(s.get(Mib::PAWSEstab), 1);
    assert_eq!(s.get(Mib::TCPSynRetrans), 0);
    assert_kept(&h, "old duplicate SYN");
}

// =======================================================================================
// a wrong ACK value.

#[test]
fn r3_wrong_ack_gets_listener_rst_and_request_survives() {
    // Only ISS + 1 is accepted.
    let offsets: &[u32] = &[0, 2, 3, 65536, 1 << 31, u32::MAX - 999];
    for &off in offsets {
        let (mut h, p, _) = requested();
        let ack = p.iss + off;
        let f = p.frame(TcpFlags::ACK, rcv_nxt(&p), ack, p.ack_options(1), &[]);
        let out = h.feed(&f);
        let why = format!("ACK = ISS + {off}");
        assert_p1_rst(out.reply(), Some(ack), SeqNumber(0), &why);
        let s = h.stats();
        assert_eq!(s.get(Mib::OutRsts), 1, "{why}");
        assert_eq!(s.get(Mib::AttemptFails), 0, "{why}");
        assert_eq!(s.get(Mib::EmbryonicRsts), 0, "{why}");
        assert_kept(&h, &why);
        assert_third_ack_completes(&mut h, &p, &why);
    }
}

/// R-3 comes before the window, PAWS and TSecr tests, and before R-6's SYN test.
#[test]
fn r3_checked_before_window_paws_and_tsecr() {
    struct Row {
        why: &'static str,
        flags: TcpFlags,
        seq_off: u32,
        tsval: u32,
        tsecr_off: u32,
    }
    let rows = [
        Row {
            why: "out of window",
            flags: TcpFlags::ACK,
            seq_off: 1_000_000,
            tsval: 5001,
            tsecr_off: 0,
        },
        Row {
            why: "PAWS",
            flags: TcpFlags::ACK,
            seq_off: 0,
            tsval: 4000,
            tsecr_off: 0,
        },
        Row {
            why: "TSecr",
            flags: TcpFlags::ACK,
            seq_off: 0,
            tsval: 5001,
            tsecr_off: 12345,
        },
        Row {
            why: "SYN|ACK in window",
            flags: TcpFlags::SYN | TcpFlags::ACK,
            seq_off: 0,
            tsval: 5001,
            tsecr_off: 0,
        },
    ];
    for row in rows {
        let (mut h, p, synack) = requested();
        let ack = p.iss + 77;
        let o = ts(row.tsval, synack.tsval().unwrap() + row.tsecr_off);
        let f = p.frame(row.flags, rcv_nxt(&p) + row.seq_off, ack, o, &[]);
        let out = h.feed(&f);
        assert_p1_rst(out.reply(), Some(ack), SeqNumber(0), row.why);
        let s = h.stats();
        assert_eq!(s.get(Mib::PAWSEstab), 0, "{}", row.why);
        assert_eq!(s.get(Mib::TSEcrRejected), 0, "{}", row.why);
        assert_eq!(s.get(Mib::AttemptFails), 0, "{}", row.why);
        assert_kept(&h, row.why);
    }
}

/// R-3 hands the segment to the listener, where L-1 runs the cookie check first (SYN clear,
/// ACK set, cookies on, an overflow recorded recently): SyncookiesFailed, then the RST.
#[test]
fn r3_wrong_ack_goes_through_listener_cookie_check() {
    let mut h = Harness::new(ListenerConfig::default(), 1);
    let mut a = Peer::v4(1);
    let synack = h.feed(&a.syn()).reply().clone();
    a.learn(&synack);
    assert!(h.feed(&Peer::v4(2).syn()).reply().is_synack());
    // qlen 2 > B: a cookie, and an overflow recorded.
    assert!(h.feed(&Peer::v4(3).syn()).reply().is_synack());
    assert_eq!(h.stats().get(Mib::SyncookiesSent), 1);
    let ack = a.iss + 77;
    let f = a.frame(TcpFlags::ACK, a.isn + 1, ack, a.ack_options(1), &[]);
    let out = h.feed(&f);
    assert_p1_rst(out.reply(), Some(ack), SeqNumber(0), "wrong ACK");
    assert_eq!(h.stats().get(Mib::SyncookiesFailed), 1);
    assert_eq!(h.qlen(), 2);
}

// =======================================================================================
// the sequence window, and P-2.

#[test]
fn r4_window_edges() {
    let w = W_TS;
    // (SEG.SEQ - RCV.NXT, payload length, in window)
    let table: &[(i64, usize, bool)] = &[
        (0, 0, true),
        (0, 10, true),
        (-1, 1, false), // ends at RCV.NXT
        (-1, 2, true),  // overlaps RCV.NXT
        (-1, 0, false),
        (1, 0, true),
        (i64::from(w) - 1, 1, true),
        (i64::from(w), 0, true), // zero length at the right edge
        (i64::from(w), 1, false),
        (i64::from(w) + 1, 0, false),
        (-100_000, 0, false),
        (1 << 31, 0, false),
    ];
    for &(off, len, inside) in table {
        let (mut h, p, _) = requested();
        let seq = SeqNumber(rcv_nxt(&p).0.wrapping_add(off as u32));
        let payload = vec![0x61; len];
        let flags = TcpFlags::ACK | TcpFlags::PSH;
        let f = p.frame(flags, seq, p.iss + 1, p.ack_options(1), &payload);
        let out = h.feed(&f);
        let why = format!("RCV.NXT {off:+}, {len} bytes");
        if inside {
            assert_eq!(out.verdict, Verdict::Consumed, "{why}");
            let c = h.accept().unwrap();
            if off == 0 {
                assert_eq!(c.data, payload, "{why}");
            }
        } else {
            assert_p2_ack(out.reply(), &p, w >> WSCALE, &why);
            assert_kept(&h, &why);
        }
    }
}

#[test]
fn r4_oow_ack_rate_limited_per_request() {
    let (mut h, a, _) = requested();
    let mut b = Peer::v4(40001);
    let sb = h.feed(&b.syn()).reply().clone();
    b.learn(&sb);
    let t0 = h.now;
    let oow = |p: &Peer| p.seg(TcpFlags::ACK, rcv_nxt(p) + 100_000, p.iss + 1);
    // (ms, peer, answered)
    let table: &[(u64, bool, bool)] = &[
        (100, true, true),
        (200, true, false),
        (300, false, true), // another request has its own limit
        (599, true, false),
        (600, true, true), // 500 ms after the last answer
        (700, false, false),
    ];
    let mut skipped = 0;
    for &(at, is_a, answered) in table {
        h.now = t0 + ms(at);
        let p = if is_a { &a } else { &b };
        let out = h.feed(&oow(p));
        let why = format!("{} at {at} ms", if is_a { "A" } else { "B" });
        if answered {
            assert_p2_ack(out.reply(), p, W_TS >> WSCALE, &why);
        } else {
            skipped += 1;
            assert_eq!(out.verdict, Verdict::Drop(DropReason::RateLimited), "{why}");
        }
        assert_eq!(h.stats().get(Mib::TCPACKSkippedSynRecv), skipped, "{why}");
    }
    assert_eq!(h.qlen(), 2);
}

/// an out-of-window RST gets nothing back, and does not use up the rate limit.
#[test]
fn r4_oow_rst_gets_no_answer() {
    let w = W_TS;
    for off in [-1i64, i64::from(w) + 1, 1_000_000] {
        let (mut h, p, _) = requested();
        let seq = SeqNumber(rcv_nxt(&p).0.wrapping_add(off as u32));
        let out = h.feed(&p.seg(TcpFlags::RST, seq, SeqNumber(0)));
        let why = format!("RST at RCV.NXT {off:+}");
        assert_eq!(out.verdict, Verdict::Drop(DropReason::OutOfWindow), "{why}");
        let s = h.stats();
        assert_eq!(s.get(Mib::OutSegs), 1, "{why}: only the SYN-ACK");
        assert_eq!(s.get(Mib::TCPChallengeACK), 0, "{why}");
        assert_eq!(s.get(Mib::EmbryonicRsts), 0, "{why}");
        assert_kept(&h, &why);
        let oow = p.seg(TcpFlags::ACK, seq, p.iss + 1);
        assert!(
            h.feed(&oow).reply().is_bare_ack(),
            "{why}: not rate-limited"
        );
    }
}

/// P-2: window W >> our shift; NOP NOP TS (fresh TSval, TSecr = TS.Recent) only when
/// TS.Recent is not 0.
#[test]
fn p2_ack_format() {
    struct Row {
        why: &'static str,
        wscale: Option<u8>,
        tsval: Option<u32>,
        window: u32,
    }
    let rows = [
        Row {
            why: "TS + WS",
            wscale: Some(7),
            tsval: Some(5000),
            window: W_TS >> WSCALE,
        },
        Row {
            why: "WS, no TS",
            wscale: Some(7),
            tsval: None,
            window: W_NO_TS >> WSCALE,
        },
        Row {
            why: "TS, no WS",
            wscale: None,
            tsval: Some(5000),
            window: W_TS,
        },
        Row {
            why: "no WS, no TS",
            wscale: None,
            tsval: None,
            window: W_NO_TS,
        },
        Row {
            why: "TS with TSval 0 (TS.Recent 0)",
            wscale: Some(7),
            tsval: Some(0),
            window: W_TS >> WSCALE,
        },
    ];
    for row in rows {
        let (mut h, p, synack) = requested_with(ListenerConfig::default(), |p| {
            p.options.wscale = row.wscale;
            p.options.timestamps = row.tsval.map(|tsval| Timestamps { tsval, tsecr: 0 });
        });
        h.advance(ms(250));
        let oow = p.seg(TcpFlags::ACK, rcv_nxt(&p) + 100_000, p.iss + 1);
        let out = h.feed(&oow);
        let r = out.reply();
        assert_p2_ack(r, &p, row.window, row.why);
        match row.tsval {
            Some(v) if v != 0 => {
                let o = option_bytes(r);
                assert_eq!(o.len(), 12, "{}", row.why);
                assert_eq!(&o[..4], &[1, 1, 8, 10], "{}: NOP NOP TS", row.why);
                let t = r.p.seg.options.timestamps.unwrap();
                assert_eq!(t.tsecr, v, "{}: TSecr = TS.Recent", row.why);
                assert_eq!(
                    t.tsval,
                    synack.tsval().unwrap().wrapping_add(250),
                    "{}: fresh TSval",
                    row.why
                );
            }
            _ => assert!(option_bytes(r).is_empty(), "{}: no options", row.why),
        }
        assert_eq!(h.stats().get(Mib::OutRsts), 0);
    }
}

// =======================================================================================
// the SYN at IRS is not a new SYN.

#[test]
fn r5_syn_at_irs_is_not_a_new_syn() {
    // (SEG.SEQ - IRS, payload) for SYN|ACK with the right ACK value.
    let (mut h, p, _) = requested();
    // At IRS with data: in window (it ends after RCV.NXT); the SYN is dropped by R-5 and the
    // segment is the third ACK.
    let f = p.frame(
        TcpFlags::SYN | TcpFlags::ACK,
        p.isn,
        p.iss + 1,
        p.ack_options(1),
        b"0123456789",
    );
    assert_eq!(h.feed(&f).verdict, Verdict::Consumed);
    let s = h.stats();
    assert_eq!(s.get(Mib::AttemptFails), 0);
    assert_eq!(s.get(Mib::PassiveOpens), 1);

    // The same at RCV.NXT (IRS + 1): a new SYN in window: R-6.
    let (mut h, p, _) = requested();
    let f = p.frame(
        TcpFlags::SYN | TcpFlags::ACK,
        p.isn + 1,
        p.iss + 1,
        p.ack_options(1),
        b"0123456789",
    );
    let out = h.feed(&f);
    assert_p1_rst(out.reply(), Some(p.iss + 1), SeqNumber(0), "SYN at RCV.NXT");
    assert_eq!(h.stats().get(Mib::AttemptFails), 1);
    assert_gone(&h, "SYN at RCV.NXT");
}

// =======================================================================================
// RST or SYN in window, with RFC 5961 3.2 as 6.18 applies it.

#[test]
fn r6_in_window_rst_at_rcv_nxt_kills_request() {
    // (flags, ACK value offset from ISS). 6.18: RST is looked at before the ACK value.
    let table: &[(TcpFlags, u32)] = &[
        (TcpFlags::RST, 0),
        (TcpFlags::RST | TcpFlags::ACK, 1),
        (TcpFlags::RST | TcpFlags::ACK, 77), // wrong ACK: still an RST, not R-3
        (TcpFlags::RST | TcpFlags::SYN, 0),
    ];
    for &(flags, ack_off) in table {
        let (mut h, p, _) = requested();
        let out = h.feed(&p.seg(flags, rcv_nxt(&p), p.iss + ack_off));
        let why = format!("{flags:?}, ACK ISS + {ack_off}");
        assert_eq!(
            out.verdict,
            Verdict::Drop(DropReason::RequestReset),
            "{why}"
        );
        assert!(out.reply.is_none(), "{why}: no answer to an RST");
        let s = h.stats();
        assert_eq!(s.get(Mib::AttemptFails), 1, "{why}");
        assert_eq!(s.get(Mib::EmbryonicRsts), 1, "{why}");
        assert_eq!(s.get(Mib::OutRsts), 0, "{why}");
        assert_eq!(s.get(Mib::TCPChallengeACK), 0, "{why}");
        assert_gone(&h, &why);
        // The request is gone: the third ACK now reaches the listener (L-2: RST).
        let out = h.feed(&p.third_ack(&[]));
        assert_p1_rst(out.reply(), Some(p.iss + 1), SeqNumber(0), &why);
    }
}

#[test]
fn r6_in_window_rst_not_at_rcv_nxt_draws_challenge_ack() {
    let w = W_TS;
    // (flags, SEG.SEQ - RCV.NXT, payload, ACK offset from ISS)
    let table: &[(TcpFlags, i64, usize, u32)] = &[
        (TcpFlags::RST, 1, 0, 0),
        (TcpFlags::RST, i64::from(w) - 1, 0, 0),
        (TcpFlags::RST, i64::from(w), 0, 0), // zero length at the right edge
        (TcpFlags::RST, -1, 5, 0),           // overlaps RCV.NXT, starts before it
        (TcpFlags::RST | TcpFlags::ACK, 1, 0, 1),
        (TcpFlags::RST | TcpFlags::ACK, 1, 0, 77), // wrong ACK: RST first (6.18)
    ];
    for &(flags, off, len, ack_off) in table {
        let (mut h, p, _) = requested();
        let seq = SeqNumber(rcv_nxt(&p).0.wrapping_add(off as u32));
        let f = p.frame(flags, seq, p.iss + ack_off, p.ack_options(1), &vec![0; len]);
        let out = h.feed(&f);
        let why = format!("{flags:?} at RCV.NXT {off:+}, {len} bytes, ACK ISS + {ack_off}");
        let r = out.reply();
        // SEQ = ISS + 1, ACK = IRS + 1, no options, window unscaled.
        assert_p2_ack(r, &p, w, &why);
        assert!(option_bytes(r).is_empty(), "{why}: no options");
        let s = h.stats();
        assert_eq!(s.get(Mib::TCPChallengeACK), 1, "{why}");
        assert_eq!(s.get(Mib::AttemptFails), 0, "{why}");
        assert_eq!(s.get(Mib::EmbryonicRsts), 0, "{why}");
        assert_eq!(s.get(Mib::OutRsts), 0, "{why}");
        assert_kept(&h, &why);
        assert_third_ack_completes(&mut h, &p, &why);
    }
}

#[test]
fn r6_in_window_syn_is_reset() {
    // (flags, SEG.SEQ - IRS, payload)
    let table: &[(TcpFlags, u32, usize)] = &[
        (TcpFlags::SYN, 1, 0),
        (TcpFlags::SYN, 100, 0),
        (TcpFlags::SYN | TcpFlags::FIN, 10, 5),
        (TcpFlags::SYN | TcpFlags::ACK, 1, 0),
    ];
    for &(flags, off, len) in table {
        let (mut h, p, _) = requested();
        let seq = p.isn + off;
        let ack = if flags.ack() { p.iss + 1 } else { SeqNumber(0) };
        let f = p.frame(flags, seq, ack, p.ack_options(1), &vec![0; len]);
        let out = h.feed(&f);
        let why = format!("{flags:?} at IRS + {off}, {len} bytes");
        let seg_len = len as u32 + 1 + u32::from(flags.fin());
        assert_p1_rst(out.reply(), flags.ack().then_some(ack), seq + seg_len, &why);
        let s = h.stats();
        assert_eq!(s.get(Mib::AttemptFails), 1, "{why}");
        assert_eq!(s.get(Mib::EmbryonicRsts), 1, "{why}");
        assert_eq!(s.get(Mib::OutRsts), 1, "{why}");
        assert_gone(&h, &why);
    }
}

/// R-6 removal: young falls only for a request that never timed out.
#[test]
fn r6_removal_decrements_young_only_if_never_timed_out() {
    let (mut h, a, _) = requested();
    let t0 = h.now;
    assert_eq!(h.run_until(t0 + ms(1500)).len(), 1); // A is old now
    let mut b = Peer::v4(40001);
    let sb = h.feed(&b.syn()).reply().clone();
    b.learn(&sb);
    assert_eq!((h.qlen(), h.young()), (2, 1));
    h.feed(&a.seg(TcpFlags::RST, rcv_nxt(&a), SeqNumber(0)));
    assert_eq!((h.qlen(), h.young()), (1, 1), "A was old: young unchanged");
    h.feed(&b.seg(TcpFlags::RST, rcv_nxt(&b), SeqNumber(0)));
    assert_eq!((h.qlen(), h.young()), (0, 0), "B was young");
    assert_eq!(h.stats().get(Mib::EmbryonicRsts), 2);
}

// =======================================================================================
// no ACK.

#[test]
fn r7_segment_without_ack_is_dropped() {
    let table: &[(TcpFlags, usize)] = &[
        (TcpFlags(0), 0),
        (TcpFlags(0), 10),
        (TcpFlags::PSH, 10),
        (TcpFlags::FIN, 0),
        (TcpFlags::URG, 1),
    ];
    for &(flags, len) in table {
        let (mut h, p, _) = requested();
        let f = p.frame(
            flags,
            rcv_nxt(&p),
            SeqNumber(0),
            p.ack_options(1),
            &vec![1; len],
        );
        let out = h.feed(&f);
        let why = format!("{flags:?}, {len} bytes");
        assert_eq!(out.verdict, Verdict::Drop(DropReason::NoAck), "{why}");
        assert!(out.reply.is_none(), "{why}");
        assert_eq!(h.stats().get(Mib::OutSegs), 1, "{why}");
        assert_kept(&h, &why);
    }
}

// =======================================================================================
// TCP_DEFER_ACCEPT (the timer half is in rules_timer.rs).

#[test]
fn r8_defer_accept_drops_only_bare_acks() {
    let cfg = ListenerConfig {
        defer_accept_secs: 5,
        ..ListenerConfig::default()
    };
    // (flags, payload, deferred, state of the child)
    let table: &[(TcpFlags, &[u8], bool, ChildState)] = &[
        (TcpFlags::ACK, b"", true, ChildState::Established),
        (
            TcpFlags::ACK | TcpFlags::PSH,
            b"GET /",
            false,
            ChildState::Established,
        ),
        (
            TcpFlags::ACK | TcpFlags::FIN,
            b"",
            false,
            ChildState::CloseWait,
        ),
    ];
    for &(flags, payload, deferred, state) in table {
        let (mut h, p, _) = requested_with(cfg, |_| {});
        let f = p.frame(flags, rcv_nxt(&p), p.iss + 1, p.ack_options(1), payload);
        let out = h.feed(&f);
        let why = format!("{flags:?}, {} bytes", payload.len());
        if deferred {
            assert_eq!(out.verdict, Verdict::Drop(DropReason::DeferAccept), "{why}");
            assert!(out.reply.is_none());
            assert_eq!(h.stats().get(Mib::TCPDeferAcceptDrop), 1, "{why}");
            assert_kept(&h, &why);
            // Data then goes through.
            let out = h.feed(&p.third_ack(b"late data"));
            assert_eq!(out.verdict, Verdict::Consumed, "{why}: data afterwards");
            assert_eq!(h.accept().unwrap().data, b"late data");
        } else {
            assert_eq!(out.verdict, Verdict::Consumed, "{why}");
            let c = h.accept().unwrap();
            assert_eq!(c.data, payload, "{why}");
            assert_eq!(c.state, state, "{why}");
            assert_eq!(h.stats().get(Mib::TCPDeferAcceptDrop), 0, "{why}");
        }
    }
}

// =======================================================================================
// C-1: the accept queue is full when the third ACK comes.

/// B = 1: A and B complete (ack_backlog 2 > B), C's request waits with its SYN-ACK.
fn accept_queue_full(cfg: ListenerConfig) -> (Harness, Peer) {
    let mut h = Harness::new(cfg, 1);
    let (mut a, mut b, mut c) = (Peer::v4(1), Peer::v4(2), Peer::v4(3));
    let r = h.feed(&a.syn()).reply().clone();
    a.learn(&r);
    let r = h.feed(&b.syn()).reply().clone();
    b.learn(&r);
    assert_eq!(h.feed(&a.third_ack(&[])).verdict, Verdict::Consumed);
    let r = h.feed(&c.syn()).reply().clone();
    c.learn(&r);
    assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.listener().accept_queue.ack_backlog(), 2);
    assert_eq!(h.qlen(), 1);
    (h, c)
}

#[test]
fn r10_full_accept_queue_keeps_request_and_retransmits() {
    let (mut h, c) = accept_queue_full(ListenerConfig::default());
    let t0 = h.now;
    let out = h.feed(&c.third_ack(&[]));
    assert_eq!(out.verdict, Verdict::Drop(DropReason::AcceptQueueFullKeep));
    assert!(out.reply.is_none());
    let s = h.stats();
    assert_eq!(s.get(Mib::ListenOverflows), 1, "C-1");
    assert_eq!(s.get(Mib::ListenDrops), 1, "C-1");
    assert_eq!(s.get(Mib::PassiveOpens), 2);
    assert_eq!(s.get(Mib::EmbryonicRsts), 0);
    assert_eq!(h.qlen(), 1, "R kept");
    assert_eq!(h.worker.requests(), 1);

    // Its timer keeps retransmitting the SYN-ACK; once there is room the re-ACK makes it.
    let f = h.run_until(t0 + ms(1100));
    assert_eq!(f.len(), 1);
    assert!(f[0].1.is_synack());
    assert!(h.accept().is_some());
    assert_eq!(h.feed(&c.third_ack(&[])).verdict, Verdict::Consumed);
    let s = h.stats();
    assert_eq!(s.get(Mib::PassiveOpens), 3);
    assert!(s.get(Mib::ListenDrops) >= s.get(Mib::ListenOverflows));
    assert_eq!((h.qlen(), h.young()), (0, 0));
}

#[test]
fn r10_abort_on_overflow_resets_and_removes_request() {
    let cfg = ListenerConfig {
        abort_on_overflow: true,
        ..ListenerConfig::default()
    };
    let (mut h, c) = accept_queue_full(cfg);
    let out = h.feed(&c.third_ack(&[]));
    assert_p1_rst(
        out.reply(),
        Some(c.iss + 1),
        SeqNumber(0),
        "abort on overflow",
    );
    let s = h.stats();
    assert_eq!(s.get(Mib::ListenOverflows), 1);
    assert_eq!(s.get(Mib::ListenDrops), 1);
    assert_eq!(s.get(Mib::EmbryonicRsts), 1);
    assert_eq!(
        s.get(Mib::AttemptFails),
        0,
        "not an RST or SYN from the peer"
    );
    assert_eq!(s.get(Mib::OutRsts), 1);
    assert_eq!((h.qlen(), h.young()), (0, 0));
    assert_eq!(h.worker.requests(), 0);
    assert_eq!(h.listener().accept_queue.ack_backlog(), 2);
}

// =======================================================================================
// the request was already converted; the next ACK finds the listener.

#[test]
fn r11_second_third_ack_after_child_gets_listener_rst() {
    for payload in [&b""[..], &b"again"[..]] {
        let mut h = Harness::new(ListenerConfig::default(), 128);
        let mut p = Peer::v4(40000);
        handshake(&mut h, &mut p);
        let out = h.feed(&p.third_ack(payload));
        assert_p1_rst(
            out.reply(),
            Some(p.iss + 1),
            SeqNumber(0),
            "second third ACK",
        );
        let s = h.stats();
        assert_eq!(s.get(Mib::PassiveOpens), 1);
        assert_eq!(s.get(Mib::OutRsts), 1);
        assert_eq!(h.listener().accept_queue.len(), 1, "no second child");
    }
}

// =======================================================================================
// C-2: the child's fields.

#[test]
fn c2_child_fields() {
    struct Row {
        why: &'static str,
        cfg: ListenerConfig,
        options: OptionsOut,
        window: u16,
        snd_wnd: u32,
        mss: u16,
        snd_wscale: Option<u8>,
        rcv_wscale: u8,
        sack: bool,
        ts: bool,
    }
    let linux = Peer::v4(1).options;
    let d = ListenerConfig::default();
    let rows = [
        Row {
            why: "Linux client",
            cfg: d,
            options: linux,
            window: 502,
            snd_wnd: 502 << 7,
            mss: 1460,
            snd_wscale: Some(7),
            rcv_wscale: WSCALE,
            sack: true,
            ts: true,
        },
        Row {
            why: "no options",
            cfg: d,
            options: OptionsOut::default(),
            window: 5000,
            snd_wnd: 5000,
            mss: 536,
            snd_wscale: None,
            rcv_wscale: 0,
            sack: false,
            ts: false,
        },
        Row {
            why: "WS 14",
            cfg: d,
            options: OptionsOut {
                wscale: Some(14),
                ..linux
            },
            window: 65535,
            snd_wnd: 65535 << 14,
            mss: 1460,
            snd_wscale: Some(14),
            rcv_wscale: WSCALE,
            sack: true,
            ts: true,
        },
        Row {
            why: "WS 0",
            cfg: d,
            options: OptionsOut {
                wscale: Some(0),
                ..linux
            },
            window: 1000,
            snd_wnd: 1000,
            mss: 1460,
            snd_wscale: Some(0),
            rcv_wscale: WSCALE,
            sack: true,
            ts: true,
        },
        Row {
            why: "MSS 1400 under TCP_MAXSEG 1000",
            cfg: ListenerConfig { maxseg: 1000, ..d },
            options: OptionsOut {
                mss: Some(1400),
                ..linux
            },
            window: 100,
            snd_wnd: 100 << 7,
            mss: 1000,
            snd_wscale: Some(7),
            rcv_wscale: WSCALE,
            sack: true,
            ts: true,
        },
        Row {
            why: "window scaling off here",
            cfg: ListenerConfig {
                window_scaling: false,
                ..d
            },
            options: linux,
            window: 502,
            snd_wnd: 502,
            mss: 1460,
            snd_wscale: None,
            rcv_wscale: 0,
            sack: true,
            ts: true,
        },
        Row {
            why: "SACK and timestamps off here",
            cfg: ListenerConfig {
                sack: false,
                timestamps: 0,
                ..d
            },
            options: linux,
            window: 502,
            snd_wnd: 502 << 7,
            mss: 1460,
            snd_wscale: Some(7),
            rcv_wscale: WSCALE,
            sack: false,
            ts: false,
        },
    ];
    for row in rows {
        let mut h = Harness::new(row.cfg, 128);
        let mut p = Peer::v4(40000);
        p.options = row.options;
        let synack = h.feed(&p.syn()).reply().clone();
        p.learn(&synack);
        p.window = row.window;
        assert_eq!(
            h.feed(&p.third_ack(&[])).verdict,
            Verdict::Consumed,
            "{}",
            row.why
        );
        let c = h.accept().unwrap();
        let why = row.why;
        assert_eq!(c.remote, p.addr, "{why}");
        assert_eq!(c.local, p.server, "{why}");
        assert_eq!(c.irs, p.isn, "{why}");
        assert_eq!(c.iss, synack.seq(), "{why}");
        assert_eq!(c.rcv_nxt, p.isn + 1, "{why}: RCV.NXT = IRS + 1");
        assert_eq!(c.snd_nxt, synack.seq() + 1, "{why}: SND.NXT = ISS + 1");
        assert_eq!(
            c.snd_wnd, row.snd_wnd,
            "{why}: SND.WND = window << peer shift"
        );
        assert_eq!(c.rcv_wnd, u32::from(synack.p.seg.window), "{why}");
        assert_eq!(c.mss, row.mss, "{why}");
        assert_eq!(c.snd_wscale, row.snd_wscale, "{why}");
        assert_eq!(c.rcv_wscale, row.rcv_wscale, "{why}");
        assert_eq!(c.sack, row.sack, "{why}");
        assert_eq!(c.timestamps.is_some(), row.ts, "{why}");
        assert!(!c.ecn, "{why}");
        assert_eq!(c.state, ChildState::Established, "{why}");
        assert!(c.data.is_empty(), "{why}");
        assert!(!c.from_cookie, "{why}");
        assert_eq!(h.stats().get(Mib::PassiveOpens), 1, "{why}");
    }
}

#[test]
fn c2_child_mss_default_v6() {
    let mut h = Harness::on(v6_server(), ListenerConfig::default(), 128);
    let mut p = Peer::v6(40000);
    p.options.mss = None;
    handshake(&mut h, &mut p);
    assert_eq!(h.accept().unwrap().mss, 1220);
}

#[test]
fn c2_child_timestamps() {
    // tcp_timestamps 1: a per-address-pair offset; 2: none.
    for mode in [1u8, 2] {
        let cfg = ListenerConfig {
            timestamps: mode,
            ..ListenerConfig::default()
        };
        let (mut h, p, synack) = requested_with(cfg, |_| {});
        let t_synack = h.now;
        h.advance(ms(40));
        let third = p.frame(
            TcpFlags::ACK,
            rcv_nxt(&p),
            p.iss + 1,
            ts(5040, p.ts_recent),
            &[],
        );
        assert_eq!(h.feed(&third).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        let t = c.timestamps.expect("timestamps negotiated");
        assert_eq!(
            t.ts_recent, 5040,
            "mode {mode}: TS.Recent from the third ACK"
        );
        let off = synack.tsval().unwrap().wrapping_sub(ts_clock_ms(t_synack));
        assert_eq!(t.ts_off, off, "mode {mode}: the SYN-ACK's offset");
        if mode == 2 {
            assert_eq!(t.ts_off, 0);
        } else {
            assert_ne!(t.ts_off, 0);
        }
    }
}

#[test]
fn c2_child_ecn() {
    // (SYN flags, IP TOS (ECN field in the low bits), tcp_ecn, ECN)
    let ecn_syn = TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR;
    let table: &[(TcpFlags, u8, u8, bool)] = &[
        (ecn_syn, 0, 2, true),
        (ecn_syn, 0, 1, true),
        (ecn_syn, 2, 2, false), // ECT(0) SYN
        (ecn_syn, 0, 0, false),
        (TcpFlags::SYN | TcpFlags::ECE, 0, 2, false),
        (TcpFlags::SYN, 0, 2, false),
    ];
    for &(flags, tos, ecn, negotiated) in table {
        let cfg = ListenerConfig {
            ecn,
            ..ListenerConfig::default()
        };
        let mut h = Harness::new(cfg, 128);
        let mut p = Peer::v4(40000);
        p.tos = tos;
        let syn = p.frame(flags, p.isn, SeqNumber(0), p.options, &[]);
        let synack = h.feed(&syn).reply().clone();
        p.learn(&synack);
        let why = format!("{flags:?}, TOS {tos}, tcp_ecn {ecn}");
        assert_eq!(synack.flags().contains(TcpFlags::ECE), negotiated, "{why}");
        p.tos = 0;
        assert_eq!(
            h.feed(&p.third_ack(&[])).verdict,
            Verdict::Consumed,
            "{why}"
        );
        assert_eq!(h.accept().unwrap().ecn, negotiated, "{why}");
    }
}

// =======================================================================================
// C-3, C-6, C-7, C-8.

/// C-3, C-6: the child replaces R; qlen--, and young-- only if R never timed out: once.
#[test]
fn c6_child_takes_request_out_exactly_once() {
    let (mut h, mut a, _) = requested();
    let t0 = h.now;
    let f = h.run_until(t0 + ms(1500));
    a.ts_recent = f[0].1.tsval().unwrap();
    let mut b = Peer::v4(40001);
    let sb = h.feed(&b.syn()).reply().clone();
    b.learn(&sb);
    assert_eq!((h.qlen(), h.young()), (2, 1));
    assert_eq!(h.feed(&a.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!((h.qlen(), h.young()), (1, 1), "A was old");
    assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!((h.qlen(), h.young()), (0, 0), "B was young");
    assert_eq!(h.worker.requests(), 0);
    assert_eq!(h.stack.live_requests(), 0);
    // Its timer went with it.
    let f = h.run_until(t0 + ms(70_000));
    assert!(f.is_empty());
    assert_eq!(h.stats().get(Mib::TCPTimeouts), 1);
}

/// C-7: children go to the tail; accept takes the head.
#[test]
fn c7_children_appended_at_tail() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    let mut peers: Vec<Peer> = [5, 3, 9, 1].iter().map(|&port| Peer::v4(port)).collect();
    for p in &mut peers {
        let r = h.feed(&p.syn()).reply().clone();
        p.learn(&r);
    }
    // Third ACKs in another order than the SYNs.
    for &i in &[2usize, 0, 3, 1] {
        assert_eq!(h.feed(&peers[i].third_ack(&[])).verdict, Verdict::Consumed);
    }
    let order: Vec<u16> = std::iter::from_fn(|| h.accept())
        .map(|c| c.remote.port())
        .collect();
    assert_eq!(order, [9, 5, 1, 3]);
}

#[test]
fn c8_third_ack_data_and_fin() {
    // (payload, FIN, state, RCV.NXT - IRS)
    let table: &[(&[u8], bool, ChildState, u32)] = &[
        (b"", false, ChildState::Established, 1),
        (b"hello", false, ChildState::Established, 6),
        (b"", true, ChildState::CloseWait, 2),
        (b"bye", true, ChildState::CloseWait, 5),
    ];
    for &(payload, fin, state, advance) in table {
        let (mut h, p, _) = requested();
        let mut flags = TcpFlags::ACK;
        if !payload.is_empty() {
            flags = flags | TcpFlags::PSH;
        }
        if fin {
            flags = flags | TcpFlags::FIN;
        }
        let f = p.frame(flags, rcv_nxt(&p), p.iss + 1, p.ack_options(1), payload);
        let why = format!("{} bytes, FIN {fin}", payload.len());
        assert_eq!(h.feed(&f).verdict, Verdict::Consumed, "{why}");
        let c = h.accept().unwrap();
        assert_eq!(c.data, payload, "{why}");
        assert_eq!(c.state, state, "{why}");
        assert_eq!(c.rcv_nxt, p.isn + advance, "{why}");
        assert_eq!(c.snd_nxt, p.iss + 1, "{why}");
    }
}

// =======================================================================================
// P-1: the RST sent without a socket.

#[test]
fn p1_rst_format() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    let p = Peer::v4(40000);
    // (flags, SEQ, ACK, payload): each reaches the listener with no request.
    let table: &[(TcpFlags, u32, u32, usize)] = &[
        (TcpFlags::ACK, 1000, 0xdead_beef, 0),
        (TcpFlags::ACK | TcpFlags::PSH, 1000, 42, 100),
        (TcpFlags::ACK | TcpFlags::FIN, 7, 0, 3),
    ];
    let mut rsts = 0;
    for &(flags, seq, ack, len) in table {
        let f = p.frame(
            flags,
            SeqNumber(seq),
            SeqNumber(ack),
            p.ack_options(1),
            &vec![2; len],
        );
        let out = h.feed(&f);
        let why = format!("{flags:?}");
        let r = out.reply();
        assert_p1_rst(r, Some(SeqNumber(ack)), SeqNumber(0), &why);
        // IPv4: DF, ID 0, TTL 64.
        let ip = &r.bytes[r.p.layout.l3..r.p.layout.l4];
        assert_eq!(&ip[4..6], &[0, 0], "{why}: ID 0");
        assert_eq!(ip[6] & 0x40, 0x40, "{why}: DF");
        assert_eq!(ip[8], 64, "{why}: TTL");
        assert_eq!(r.p.seg.payload_len, 0, "{why}");
        rsts += 1;
        let s = h.stats();
        assert_eq!(s.get(Mib::OutRsts), rsts);
        assert_eq!(s.get(Mib::OutSegs), rsts);
    }
    // Never in reply to an RST.
    for flags in [TcpFlags::RST, TcpFlags::RST | TcpFlags::ACK] {
        let out = h.feed(&p.seg(flags, SeqNumber(1), SeqNumber(2)));
        assert!(out.reply.is_none(), "{flags:?}");
    }
    assert_eq!(h.stats().get(Mib::OutRsts), rsts);
}

/// P-1 without ACK in the segment: ACK = SEG.SEQ + SYN + FIN + payload (via R-6).
#[test]
fn p1_rst_acknowledges_syn_fin_and_payload() {
    let (mut h, p, _) = requested();
    let seq = p.isn + 10;
    let f = p.frame(
        TcpFlags::SYN | TcpFlags::FIN,
        seq,
        SeqNumber(0),
        p.ack_options(1),
        b"12345",
    );
    let out = h.feed(&f);
    assert_p1_rst(out.reply(), None, seq + 1 + 1 + 5, "SYN|FIN with 5 bytes");
}

/// D-2 with `StackConfig::accepted_grace`: the established table is the embedder's (the
/// daemon hands children to the kernel), so for the grace after a child is made, the flow's
/// late segments are the embedder's to decide (Pass), not the listener's RST (L-2); after it,
/// the listener answers again. Off (the default), they get the RST at once.
#[test]
fn d2_accepted_grace_passes_late_segments_to_the_embedder() {
    for (grace_ms, cookies) in [
        (0u64, SyncookieMode::Never),
        (2000, SyncookieMode::Never),
        (2000, SyncookieMode::Always),
    ] {
        let sc = StackConfig {
            accepted_grace: Duration::from_millis(grace_ms),
            ..StackConfig::default()
        };
        let cfg = ListenerConfig {
            syncookies: cookies,
            ..ListenerConfig::default()
        };
        let mut h = Harness::with_stack(sc, v4_server(), cfg, 128);
        let mut p = Peer::v4(40000);
        handshake(&mut h, &mut p);
        assert!(h.accept().is_some());
        // The client's first data, right behind its third ACK.
        let data = p.frame(
            TcpFlags::ACK | TcpFlags::PSH,
            p.isn + 1,
            p.iss + 1,
            p.ack_options(1),
            b"GET / HTTP/1.1\r\n\r\n",
        );
        let why = format!("grace {grace_ms} ms, {cookies:?}");
        let out = h.feed(&data);
        if grace_ms == 0 {
            // Without the grace a cookie flow's data carries a valid cookie and makes a second
            // child (documented); a request flow's meets the listener's RST.
            match cookies {
                SyncookieMode::Always => assert_eq!(out.verdict, Verdict::Consumed, "{why}"),
                _ => assert!(out.reply().is_rst(), "{why}: {:?}", out.verdict),
            }
            continue;
        }
        assert_eq!(out.verdict, Verdict::Pass, "{why}");
        assert!(h.accept().is_none(), "{why}: no second child");
        h.advance(Duration::from_millis(grace_ms));
        let out = h.feed(&data);
        assert_ne!(out.verdict, Verdict::Pass, "{why}: after the grace");
    }
}
