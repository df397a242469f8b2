mod util;
use util::*;

// State tests for spec section 10 (K-1..K-7), through Harness::feed: cookie SYN-ACKs, cookie
// ACKs, the three tcp_syncookies modes and the switch at qlen = B / B + 1, the MSS tables of
// both families, options carried in the timestamp, secret rotation, and the counters
// TCPReqQFullDoCookies, SyncookiesSent/Recv/Failed with exact increments.

use std::time::Duration;
use synline_core::{
    syncookie, ChildState, DropReason, FlowKey, ListenerConfig, Mib, Secrets, SyncookieMode,
    Verdict,
};
use synline_wire::{OptionsOut, SeqNumber, TcpFlags};
use util::wirebits::hdr;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn with(f: impl FnOnce(&mut ListenerConfig)) -> ListenerConfig {
    let mut c = ListenerConfig::default();
    f(&mut c);
    c
}

/// tcp_syncookies = 2 and otherwise defaults.
fn always() -> ListenerConfig {
    with(|c| c.syncookies = SyncookieMode::Always)
}

fn now_ms(h: &Harness) -> u32 {
    h.now.as_millis() as u32
}

fn ece_cwr_syn() -> TcpFlags {
    TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0 | TcpFlags::CWR.0)
}

/// Feeds a SYN of `p` with `flags`, expects a SYN-ACK and lets `p` learn it.
fn syn_with(h: &mut Harness, p: &mut Peer, flags: TcpFlags) -> Reply {
    let out = h.feed(&p.frame(flags, p.isn, SeqNumber(0), p.options, &[]));
    assert!(
        matches!(out.verdict, Verdict::Transmit(_)) && out.reply().is_synack(),
        "SYN from {} not answered: {:?}",
        p.addr,
        out.verdict
    );
    let r = out.reply().clone();
    p.learn(&r);
    r
}

fn syn(h: &mut Harness, p: &mut Peer) -> Reply {
    syn_with(h, p, TcpFlags::SYN)
}

/// (SyncookiesSent, SyncookiesRecv, SyncookiesFailed, TCPReqQFullDoCookies)
fn cookie_counters(h: &Harness) -> (u64, u64, u64, u64) {
    let s = h.stats();
    (
        s.get(Mib::SyncookiesSent),
        s.get(Mib::SyncookiesRecv),
        s.get(Mib::SyncookiesFailed),
        s.get(Mib::TCPReqQFullDoCookies),
    )
}

/// K-3's TSval before ts_off: the ms clock with its low 6 bits replaced, never ahead of it.
fn cookie_tsval(now_ms: u32, options: u32) -> u32 {
    let t = (now_ms & !63) | options;
    if t > now_ms {
        t - 64
    } else {
        t
    }
}

// ---------------------------------------------------------------------------------------------
// The decision (S-2, S-3 as section 10 uses them).

#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Request,
    Cookie,
    Dropped,
}

/// Mode 0/1/2 with the SYN queue at qlen = B and at qlen = B + 1: request, cookie or drop,
/// with the exact counter increments.
#[test]
fn k2_cookie_decision_by_mode_at_qlen_b_and_b_plus_1() {
    let b = 2u32;
    // (mode, answer at qlen = B, answer at qlen = B + 1)
    let rows = [
        (SyncookieMode::Never, Answer::Request, Answer::Dropped),
        (SyncookieMode::WhenFull, Answer::Request, Answer::Cookie),
        (SyncookieMode::Always, Answer::Cookie, Answer::Cookie),
    ];
    for (mode, at_b, at_b1) in rows {
        let mut h = Harness::new(with(|c| c.syncookies = mode), b as i32);
        let mut port = 1u16;
        // Bring qlen to B with requests (mode 2 makes none: qlen stays 0 < B).
        if mode != SyncookieMode::Always {
            for _ in 0..b {
                let mut p = Peer::v4(port);
                port += 1;
                syn(&mut h, &mut p);
            }
            assert_eq!(h.qlen(), b);
        }
        let mut counts = (0u64, 0u64); // (cookies, drops)
        for want in [at_b, at_b1] {
            let qlen_before = h.qlen();
            let p = Peer::v4(port);
            port += 1;
            let out = h.feed(&p.syn());
            let got = match out.verdict {
                Verdict::Transmit(_) if h.qlen() == qlen_before + 1 => Answer::Request,
                Verdict::Transmit(_) if h.qlen() == qlen_before => Answer::Cookie,
                Verdict::Drop(DropReason::SynQueueFull) => Answer::Dropped,
                v => panic!("{mode:?}: unexpected {v:?}"),
            };
            assert_eq!(got, want, "{mode:?} at qlen {qlen_before}");
            match got {
                Answer::Cookie => counts.0 += 1,
                Answer::Dropped => counts.1 += 1,
                Answer::Request => {}
            }
            let s = h.stats();
            assert_eq!(s.get(Mib::TCPReqQFullDoCookies), counts.0, "{mode:?}");
            assert_eq!(s.get(Mib::SyncookiesSent), counts.0, "{mode:?}");
            assert_eq!(s.get(Mib::TCPReqQFullDrop), counts.1, "{mode:?}");
            assert_eq!(s.get(Mib::ListenDrops), counts.1, "{mode:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// K-1: the cookie.

/// K-1: the cookie ISS is H0 + client ISN + (count << 24) + ((H1(count) + idx) mod 2^24), with
/// count = minutes of the clock and idx the MSS-table index, under the stack's secrets.
#[test]
fn k1_cookie_iss_matches_the_formula() {
    let keys = Secrets::from_seed(42).cookie; // the harness's secrets
                                              // (v6, peer MSS, idx)
    for (v6, mss, idx) in [(false, 1460u16, 3u32), (false, 1300, 1), (true, 1440, 2)] {
        let server = if v6 { v6_server() } else { v4_server() };
        let mut h = Harness::on(server, always(), 128);
        h.advance(Duration::from_millis(12_345));
        let mut p = if v6 { Peer::v6(40000) } else { Peer::v4(40000) };
        p.options.mss = Some(mss);
        let s = p.syn();
        let key = FlowKey::of(&synline_wire::parse_frame(&s).unwrap().seg);
        let sa = syn(&mut h, &mut p);
        let count = (h.now.as_secs() / 60) as u32;
        assert_eq!(
            sa.seq().0,
            syncookie::cookie_init_sequence(&keys, &key, p.isn.0, count, idx),
            "v6 {v6} mss {mss}"
        );
    }
}

/// K-1: the client ISN is added: ISN + d gives ISS + d; the MSS index is added below the
/// count: index 3 instead of 0 moves the low 24 bits by 3.
#[test]
fn k1_cookie_iss_is_linear_in_client_isn_and_mss_index() {
    let mut h = Harness::new(always(), 128);
    let mut p = Peer::v4(40000);
    let base = syn(&mut h, &mut p).seq().0;
    let mut q = Peer::v4(40000);
    q.isn = p.isn + 1000;
    assert_eq!(syn(&mut h, &mut q).seq().0, base.wrapping_add(1000));
    let mut small = Peer::v4(40000);
    small.options.mss = Some(536);
    let d = base.wrapping_sub(syn(&mut h, &mut small).seq().0);
    assert!(
        d == 3 || d == 3u32.wrapping_sub(1 << 24),
        "idx 3 - idx 0: {d:#x}"
    );
}

/// K-1 with V-4: the cookie hashes the full 128-bit addresses.
#[test]
fn k1_v4_cookie_hashes_full_ipv6_addresses() {
    let mut h = Harness::on(v6_server(), always(), 128);
    let addrs = [
        "[2001:2::2]:40000",
        "[2001:3::2]:40000",
        "[2001:2:0:1::2]:40000",
        "[3001:2::2]:40000",
        "[2001:2::1:0:0:2]:40000",
    ];
    let mut seen = Vec::new();
    for a in addrs {
        let mut p = Peer::new(a.parse().unwrap(), v6_server());
        p.options.mss = Some(1440);
        p.isn = SeqNumber(7);
        seen.push(syn(&mut h, &mut p).seq().0);
    }
    for i in 0..seen.len() {
        for j in i + 1..seen.len() {
            assert_ne!(seen[i], seen[j], "{} vs {}", addrs[i], addrs[j]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// K-2: the MSS tables.

/// Cookie handshakes, one per row, on one listener: the child's MSS is the table entry;
/// SyncookiesSent and SyncookiesRecv rise by one per row.
fn mss_table_rows(v6: bool, c: ListenerConfig, rows: &[(Option<u16>, u16)]) {
    let server = if v6 { v6_server() } else { v4_server() };
    let mut h = Harness::on(server, c, 128);
    for (i, &(peer_mss, want)) in rows.iter().enumerate() {
        let mut p = if v6 {
            Peer::v6(40000 + i as u16)
        } else {
            Peer::v4(40000 + i as u16)
        };
        p.options.mss = peer_mss;
        let sa = syn(&mut h, &mut p);
        // The SYN-ACK announces our own MSS, whatever the peer's.
        assert_eq!(sa.p.seg.options.mss, Some(c.adv_mss(v6)));
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        let child = h.accept().unwrap();
        assert!(child.from_cookie);
        assert_eq!(child.mss, want, "v6 {v6}: peer MSS {peer_mss:?}");
        let n = i as u64 + 1;
        assert_eq!(cookie_counters(&h), (n, n, 0, n));
    }
}

/// K-2: IPv4 table {536, 1300, 1440, 1460}: the largest entry not above the peer's MSS,
/// below 536 (or none: 536) maps to 536; TCP_MAXSEG clamps first (S-7).
#[test]
fn k2_mss_table_ipv4() {
    mss_table_rows(
        false,
        always(),
        &[
            (None, 536),
            (Some(100), 536),
            (Some(536), 536),
            (Some(1299), 536),
            (Some(1300), 1300),
            (Some(1439), 1300),
            (Some(1440), 1440),
            (Some(1459), 1440),
            (Some(1460), 1460),
            (Some(9000), 1460),
        ],
    );
    let c = with(|c| {
        c.syncookies = SyncookieMode::Always;
        c.maxseg = 1400
    });
    mss_table_rows(false, c, &[(Some(1460), 1300), (Some(1200), 536)]);
}

/// K-2 with V-3: IPv6 table {1220, 1420, 1440, 8940}; no MSS option means 1220.
#[test]
fn k2_v3_mss_table_ipv6() {
    mss_table_rows(
        true,
        always(),
        &[
            (None, 1220),
            (Some(1000), 1220),
            (Some(1220), 1220),
            (Some(1419), 1220),
            (Some(1420), 1420),
            (Some(1439), 1420),
            (Some(1440), 1440),
            (Some(8939), 1440),
            (Some(8940), 8940),
            (Some(9000), 8940),
        ],
    );
}

/// K-2: a cookie SYN-ACK records the overflow that lets L-1 check ACKs.
#[test]
fn k2_cookie_synack_records_the_overflow() {
    let mut h = Harness::new(always(), 128);
    let forged = |port: u16| {
        let f = Peer::v4(port);
        f.frame(
            TcpFlags::ACK,
            SeqNumber(1),
            SeqNumber(0x5555_0000),
            OptionsOut::default(),
            &[],
        )
    };
    assert!(h.feed(&forged(41000)).reply().is_rst());
    assert_eq!(
        cookie_counters(&h),
        (0, 0, 0, 0),
        "not checked: no overflow"
    );
    let mut p = Peer::v4(40000);
    syn(&mut h, &mut p);
    assert!(h.feed(&forged(41001)).reply().is_rst());
    assert_eq!(cookie_counters(&h), (1, 0, 1, 1), "checked and failed");
}

// ---------------------------------------------------------------------------------------------
// K-3: the cookie SYN-ACK.

/// K-3: a SYN without timestamps gets MSS only: no WS, SACK or ECE, window without TS.
#[test]
fn k3_cookie_synack_without_timestamps_offers_mss_only() {
    for (server, peer, mss, window) in [
        (v4_server(), Peer::v4(40000), [0x05u8, 0xb4], 64240u16),
        (v6_server(), Peer::v6(40000), [0x05, 0xa0], 64800),
    ] {
        let mut h = Harness::on(server, always(), 128);
        let mut p = peer;
        p.options.timestamps = None; // WS 7, SACK-permitted, MSS stay
        let sa = syn_with(&mut h, &mut p, ece_cwr_syn());
        let x = hdr(&sa);
        assert_eq!(x.options, [2, 4, mss[0], mss[1]]);
        assert_eq!(x.flags, 0x12, "no ECE");
        assert_eq!(x.window, window);
        assert_eq!(cookie_counters(&h), (1, 0, 0, 1));
    }
}

/// K-3: with timestamps, the TSval's low 6 bits carry the peer's shift (0xF: none), SACK
/// (bit 4) and ECN (bit 5); the rest is the ms clock, lowered by 64 when it would run ahead.
/// tcp_timestamps = 2 (ts_off 0) shows the raw value. The SYN-ACK offers what it encodes.
#[test]
fn k3_cookie_tsval_carries_options() {
    // (SYN flags, peer shift, SACK-permitted, low 6 bits)
    let rows: &[(TcpFlags, Option<u8>, bool, u32)] = &[
        (ece_cwr_syn(), Some(7), true, 0x37),
        (TcpFlags::SYN, Some(7), true, 0x17),
        (TcpFlags::SYN, None, true, 0x1f),
        (TcpFlags::SYN, None, false, 0x0f),
        (TcpFlags::SYN, Some(14), false, 0x0e),
        (TcpFlags::SYN, Some(15), false, 0x0e), // clamped to 14 (S-7)
        (TcpFlags::SYN, Some(0), false, 0x00),
        (ece_cwr_syn(), Some(0), false, 0x20),
        (ece_cwr_syn(), None, false, 0x2f),
    ];
    // At 1000.000 s the ms clock's low 6 bits are 0; at 1000.050 s they are 50.
    for at in [Duration::ZERO, Duration::from_millis(50)] {
        for &(flags, ws, sack, bits) in rows {
            let mut h = Harness::new(
                with(|c| {
                    c.syncookies = SyncookieMode::Always;
                    c.timestamps = 2
                }),
                128,
            );
            h.advance(at);
            let mut p = Peer::v4(40000);
            p.options.wscale = ws;
            p.options.sack_permitted = sack;
            let sa = syn_with(&mut h, &mut p, flags);
            let ts = sa.p.seg.options.timestamps.unwrap();
            let now = now_ms(&h);
            assert_eq!(ts.tsval & 63, bits, "{flags:?} ws {ws:?} sack {sack}");
            assert_eq!(ts.tsval, cookie_tsval(now, bits), "never ahead of {now}");
            assert!(ts.tsval <= now && now - ts.tsval < 64);
            assert_eq!(ts.tsecr, 5000);
            let ecn = flags.contains(TcpFlags::ECE);
            let x = hdr(&sa);
            assert_eq!(x.flags, if ecn { 0x52 } else { 0x12 });
            let mut want = vec![2, 4, 0x05, 0xb4];
            want.extend_from_slice(if sack { &[4, 2, 8, 10] } else { &[1, 1, 8, 10] });
            want.extend_from_slice(&ts.tsval.to_be_bytes());
            want.extend_from_slice(&5000u32.to_be_bytes());
            if ws.is_some() {
                want.extend_from_slice(&[1, 3, 3, 10]);
            }
            assert_eq!(x.options, want, "{flags:?} ws {ws:?} sack {sack}");
            assert_eq!(x.window, 65160);
        }
    }
}

/// K-3: with tcp_timestamps = 1 the cookie TSval is the encoded clock plus the address pair's
/// ts_off (the same offset a request's SYN-ACK carries).
#[test]
fn k3_cookie_tsval_adds_ts_off() {
    let mut h = Harness::new(ListenerConfig::default(), 0);
    let mut first = Peer::v4(1);
    let req = syn(&mut h, &mut first);
    let off = req.tsval().unwrap().wrapping_sub(now_ms(&h));
    let mut p = Peer::v4(2);
    let sa = syn(&mut h, &mut p);
    assert_eq!(h.qlen(), 1, "a cookie");
    assert_eq!(
        sa.tsval().unwrap().wrapping_sub(off),
        cookie_tsval(now_ms(&h), 0x17),
        "WS 7 + SACK"
    );
}

// ---------------------------------------------------------------------------------------------
// K-4: stateless.

/// K-4: a cookie leaves no request, no timer, no qlen/young change, and is never
/// retransmitted; the same SYN again gets the same cookie (same minute).
#[test]
fn k4_cookies_are_stateless() {
    let mut h = Harness::new(always(), 128);
    let mut p = Peer::v4(40000);
    let first = syn(&mut h, &mut p);
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (0, 0, 0));
    assert_eq!(h.worker.requests(), 0);
    let again = h.feed(&p.syn());
    assert_eq!(again.reply().seq(), first.seq());
    assert_eq!(cookie_counters(&h), (2, 0, 0, 2));
    let t0 = h.now;
    assert!(h.run_until(t0 + secs(70)).is_empty(), "never retransmitted");
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPTimeouts), 0);
    assert_eq!(s.get(Mib::TCPSynRetrans), 0);
    assert_eq!(s.get(Mib::OutSegs), 2);

    // Mode 1 with a full SYN queue: the pending request's counts do not move.
    let mut h = Harness::new(ListenerConfig::default(), 0);
    let mut x = Peer::v4(1);
    syn(&mut h, &mut x);
    let mut c = Peer::v4(2);
    syn(&mut h, &mut c);
    assert_eq!(cookie_counters(&h), (1, 0, 0, 1));
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (1, 1, 1));
    assert_eq!(h.worker.requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// K-5: checking the ACK.

/// K-5, K-7: a valid cookie ACK makes a child: ISS = SEG.ACK - 1, IRS = SEG.SEQ - 1, data
/// taken; SyncookiesRecv; nothing sent back.
#[test]
fn k5_valid_cookie_ack_makes_a_child() {
    for (server, peer, mss) in [
        (v4_server(), Peer::v4(40000), 1460u16),
        (v6_server(), Peer::v6(40000), 1440),
    ] {
        let mut h = Harness::on(server, always(), 128);
        let mut p = peer;
        let sa = syn(&mut h, &mut p);
        let out = h.feed(&p.third_ack(b"GET /"));
        assert_eq!(out.verdict, Verdict::Consumed);
        assert!(out.reply.is_none());
        let c = h.accept().unwrap();
        assert!(c.from_cookie);
        assert_eq!(c.iss, sa.seq());
        assert_eq!(c.irs, p.isn);
        assert_eq!(c.snd_nxt, sa.seq() + 1);
        assert_eq!(c.rcv_nxt, p.isn + 1 + 5);
        assert_eq!(c.data, b"GET /");
        assert_eq!(c.state, ChildState::Established);
        assert_eq!(c.mss, mss);
        assert_eq!((c.local, c.remote), (p.server, p.addr));
        assert_eq!(c.snd_wnd, u32::from(p.window) << 7);
        assert_eq!(cookie_counters(&h), (1, 1, 0, 1));
        let s = h.stats();
        assert_eq!(s.get(Mib::PassiveOpens), 1);
        assert_eq!(s.get(Mib::OutSegs), 1);
        assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (0, 0, 0));
    }
}

/// K-5: ACKs whose cookie does not check out count SyncookiesFailed and get L-2's RST
/// (SEQ = SEG.ACK); no child. The genuine ACK still works afterwards.
#[test]
fn k5_mangled_cookie_acks_fail() {
    let mut h = Harness::new(always(), 128);
    let mut p = Peer::v4(40000);
    syn(&mut h, &mut p);
    let (seq, ack) = (p.isn + 1, p.iss + 1);
    let other_port = Peer::v4(40001);
    let other_addr = Peer::new("198.18.0.3:40000".parse().unwrap(), v4_server());
    // (what, sender, SEG.SEQ, SEG.ACK)
    let rows: Vec<(&str, &Peer, SeqNumber, SeqNumber)> = vec![
        ("ACK + 4 (index 7)", &p, seq, ack + 4),
        ("ACK - 4", &p, seq, ack - 4),
        (
            "ACK + 2^24 (count from the future)",
            &p,
            seq,
            ack + (1 << 24),
        ),
        ("ACK - 2^25 (two minutes old)", &p, seq, ack - (2 << 24)),
        (
            "ACK with the top bit flipped",
            &p,
            seq,
            SeqNumber(ack.0 ^ 0x8000_0000),
        ),
        ("SEQ + 4 (another client ISN)", &p, seq + 4, ack),
        ("SEQ - 4", &p, seq - 4, ack),
        ("SEQ + 2^24", &p, seq + (1 << 24), ack),
        ("another source port", &other_port, seq, ack),
        ("another source address", &other_addr, seq, ack),
        ("zero", &p, SeqNumber(0), SeqNumber(0)),
    ];
    for (i, (what, sender, s, a)) in rows.iter().enumerate() {
        let out = h.feed(&sender.seg(TcpFlags::ACK, *s, *a));
        let r = out.reply();
        assert!(r.is_rst(), "{what}");
        assert_eq!(r.seq(), *a, "{what}");
        assert_eq!(hdr(r).flags, TcpFlags::RST.0);
        assert_eq!(cookie_counters(&h), (1, 0, i as u64 + 1, 1), "{what}");
        assert!(h.accept().is_none(), "{what}");
    }
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(cookie_counters(&h), (1, 1, rows.len() as u64, 1));
}

/// K-5: the cookie's age in minutes (count = now / 60 s) must be 0 or 1. The SYN is answered
/// at 1000 s, 40 s into minute 16.
#[test]
fn k5_cookie_age_zero_or_one_minute() {
    // (seconds after the SYN-ACK, valid)
    for (after, valid) in [
        (0u64, true),
        (19, true),  // minute 16, age 0
        (20, true),  // minute 17, age 1
        (79, true),  // minute 17, age 1
        (80, false), // minute 18, age 2
        (100, false),
    ] {
        let mut h = Harness::new(always(), 128);
        let mut p = Peer::v4(40000);
        syn(&mut h, &mut p);
        h.advance(secs(after));
        let out = h.feed(&p.third_ack(&[]));
        if valid {
            assert_eq!(out.verdict, Verdict::Consumed, "+{after} s");
            assert_eq!(cookie_counters(&h), (1, 1, 0, 1), "+{after} s");
        } else {
            assert!(out.reply().is_rst(), "+{after} s");
            assert_eq!(cookie_counters(&h), (1, 0, 1, 1), "+{after} s");
            assert!(h.accept().is_none());
        }
    }
}

/// K-5 with Stack::rotate_cookie_secrets: cookies issued before a rotation stay valid; new
/// cookies come from the new secrets and are valid too.
#[test]
fn k5_rotated_secrets_keep_issued_cookies_valid() {
    let mut h = Harness::new(always(), 128);
    let mut old = Peer::v4(40000);
    let before = syn(&mut h, &mut old).seq();
    h.advance(secs(10));
    h.stack
        .rotate_cookie_secrets([[0x11; 16], [0x22; 16]], h.now);
    // The same SYN now gets another cookie (same minute: only the secrets changed).
    let mut new = Peer::v4(40000);
    let after = syn(&mut h, &mut new).seq();
    assert_ne!(before, after);
    h.advance(secs(10));
    assert_eq!(h.feed(&old.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.accept().unwrap().iss, before);
    assert_eq!(h.feed(&new.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.accept().unwrap().iss, after);
    assert_eq!(cookie_counters(&h), (2, 2, 0, 2));
}

/// K-5 with rotation once a minute (not on minute boundaries): a cookie issued just before a
/// rotation is still young when the next rotation comes, and must stay valid
/// (stack.rs: "the old pair keeps validating its cookies for their two-minute life").
#[test]

fn k5_rotation_every_minute_keeps_young_cookies_valid() {
    let mut h = Harness::new(always(), 128);
    let mut p = Peer::v4(40000);
    syn(&mut h, &mut p); // 1000 s: minute 16, valid through minute 17 (1079 s)
    h.advance(secs(1));
    h.stack
        .rotate_cookie_secrets([[0x11; 16], [0x22; 16]], h.now); // 1001 s
    h.advance(secs(60));
    h.stack
        .rotate_cookie_secrets([[0x33; 16], [0x44; 16]], h.now); // 1061 s
    h.advance(secs(9)); // 1070 s: age 1
    let out = h.feed(&p.third_ack(&[]));
    assert_eq!(out.verdict, Verdict::Consumed);
    assert_eq!(cookie_counters(&h), (1, 1, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// K-6: options of a cookie child.

/// K-6: with timestamps the child's options come from the TSecr (less ts_off): shift, SACK,
/// ECN; it keeps timestamps with TS.Recent = the ACK's TSval and our ts_off.
#[test]
fn k6_child_options_decoded_from_the_timestamp() {
    // The address pair's ts_off, as a request's SYN-ACK shows it.
    let mut r = Harness::new(ListenerConfig::default(), 128);
    let mut q = Peer::v4(1);
    let off = syn(&mut r, &mut q)
        .tsval()
        .unwrap()
        .wrapping_sub(now_ms(&r));
    // (SYN flags, peer shift, SACK-permitted)
    let rows: &[(TcpFlags, Option<u8>, bool)] = &[
        (TcpFlags::SYN, Some(7), true),
        (ece_cwr_syn(), Some(7), true),
        (TcpFlags::SYN, None, true),
        (TcpFlags::SYN, Some(14), false),
        (TcpFlags::SYN, Some(0), false),
        (ece_cwr_syn(), None, false),
    ];
    for &(flags, ws, sack) in rows {
        let mut h = Harness::new(always(), 128);
        let mut p = Peer::v4(40000);
        p.options.wscale = ws;
        p.options.sack_permitted = sack;
        syn_with(&mut h, &mut p, flags);
        let ack = p.third_ack(&[]);
        let ack_tsval = p.tsval() + 1;
        assert_eq!(h.feed(&ack).verdict, Verdict::Consumed, "{flags:?} {ws:?}");
        let c = h.accept().unwrap();
        let ecn = flags.contains(TcpFlags::ECE);
        assert_eq!(c.snd_wscale, ws, "{flags:?} ws {ws:?} sack {sack}");
        assert_eq!(c.rcv_wscale, if ws.is_some() { 10 } else { 0 });
        assert_eq!(c.sack, sack);
        assert_eq!(c.ecn, ecn);
        assert_eq!(c.rcv_wnd, 65160);
        assert_eq!(c.mss, 1460);
        let ts = c.timestamps.expect("timestamps kept");
        assert_eq!((ts.ts_recent, ts.ts_off), (ack_tsval, off));
        let shift = ws.unwrap_or(0);
        assert_eq!(c.snd_wnd, u32::from(p.window) << shift);
    }
}

/// K-6 (and K-3): without timestamps a cookie child has no WS, SACK or ECN: when the SYN had
/// no TS, and when the SYN had TS but the ACK has none.
#[test]
fn k6_no_timestamps_means_no_ws_sack_ecn() {
    for (syn_ts, server, peer, mss) in [
        (false, v4_server(), Peer::v4(40000), 1460u16),
        (false, v6_server(), Peer::v6(40000), 1440),
        (true, v4_server(), Peer::v4(40000), 1460),
    ] {
        let mut h = Harness::on(server, always(), 128);
        let mut p = peer;
        if !syn_ts {
            p.options.timestamps = None;
        }
        syn_with(&mut h, &mut p, ece_cwr_syn());
        let ack = p.frame(
            TcpFlags::ACK,
            p.isn + 1,
            p.iss + 1,
            OptionsOut::default(),
            &[],
        );
        assert_eq!(h.feed(&ack).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        assert_eq!(c.snd_wscale, None, "SYN TS {syn_ts}");
        assert_eq!(c.rcv_wscale, 0);
        assert!(!c.sack);
        assert!(!c.ecn);
        assert_eq!(c.timestamps, None);
        assert_eq!(c.mss, mss);
        assert_eq!(c.snd_wnd, u32::from(p.window), "unscaled");
        assert_eq!(cookie_counters(&h), (1, 1, 0, 1));
    }
}

/// K-6: an option the cookie carries but this listener has disabled since: the cookie is
/// valid (SyncookiesRecv) but unusable: L-2's RST, no child. With timestamps disabled the
/// ACK's TS option is not read at all (as tcp_parse_options), so the child has no options.
#[test]
fn k6_options_disabled_locally_reject_the_cookie() {
    // (what, SYN flags, SYN SACK, change, usable)
    type Change = fn(&mut ListenerConfig);
    let rows: &[(&str, TcpFlags, bool, Change, bool)] = &[
        ("SACK off", TcpFlags::SYN, true, |c| c.sack = false, false),
        (
            "WS off",
            TcpFlags::SYN,
            true,
            |c| c.window_scaling = false,
            false,
        ),
        ("ECN off", ece_cwr_syn(), true, |c| c.ecn = 0, false),
        (
            "SACK off, cookie without SACK",
            TcpFlags::SYN,
            false,
            |c| c.sack = false,
            true,
        ),
        (
            "ECN off, cookie without ECN",
            TcpFlags::SYN,
            true,
            |c| c.ecn = 0,
            true,
        ),
        (
            "timestamps off",
            TcpFlags::SYN,
            true,
            |c| c.timestamps = 0,
            true,
        ),
    ];
    for &(what, flags, sack, change, usable) in rows {
        let mut h = Harness::new(always(), 128);
        let mut p = Peer::v4(40000);
        p.options.sack_permitted = sack;
        syn_with(&mut h, &mut p, flags);
        let mut c = always();
        change(&mut c);
        h.sock.set_config(c).unwrap();
        let out = h.feed(&p.third_ack(&[]));
        assert_eq!(cookie_counters(&h), (1, 1, 0, 1), "{what}");
        if usable {
            assert_eq!(out.verdict, Verdict::Consumed, "{what}");
            let child = h.accept().unwrap();
            if c.timestamps == 0 {
                assert_eq!(child.timestamps, None, "{what}");
                assert_eq!(child.snd_wscale, None, "{what}");
                assert!(!child.sack, "{what}");
            }
        } else {
            let r = out.reply();
            assert!(r.is_rst(), "{what}");
            assert_eq!(r.seq(), p.iss + 1);
            assert!(h.accept().is_none(), "{what}");
            assert_eq!(h.stats().get(Mib::PassiveOpens), 0);
            assert_eq!(h.stats().drops(DropReason::CookieOptions), 1, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// K-7: the child of a cookie.

/// K-7: accept queue full: the valid cookie ACK is dropped silently (ListenOverflows +
/// ListenDrops), whatever tcp_abort_on_overflow; after accept() the same ACK succeeds.
#[test]
fn k7_accept_queue_full_drops_cookie_ack_silently() {
    for abort in [false, true] {
        let mut h = Harness::new(
            with(|c| {
                c.syncookies = SyncookieMode::Always;
                c.abort_on_overflow = abort
            }),
            0,
        );
        let mut a = Peer::v4(1);
        let mut b = Peer::v4(2);
        syn(&mut h, &mut a);
        syn(&mut h, &mut b);
        assert_eq!(h.feed(&a.third_ack(&[])).verdict, Verdict::Consumed);
        let out = h.feed(&b.third_ack(&[]));
        assert_eq!(out.verdict, Verdict::Drop(DropReason::AcceptQueueFull));
        assert!(out.reply.is_none(), "silently, abort_on_overflow {abort}");
        let s = h.stats();
        assert_eq!(s.get(Mib::ListenOverflows), 1);
        assert_eq!(s.get(Mib::ListenDrops), 1);
        assert_eq!(s.get(Mib::PassiveOpens), 1);
        assert_eq!(s.get(Mib::OutRsts), 0);
        assert_eq!(s.get(Mib::EmbryonicRsts), 0);
        assert_eq!(cookie_counters(&h), (2, 2, 0, 2));
        assert_eq!((h.qlen(), h.young()), (0, 0));
        assert_eq!(h.accept().unwrap().remote, a.addr);
        assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
        assert_eq!(h.accept().unwrap().remote, b.addr);
    }
}

/// K-7: a cookie child goes on the accept list; qlen and young stay as they were.
#[test]
fn k7_cookie_child_leaves_qlen_and_young_untouched() {
    let mut h = Harness::new(ListenerConfig::default(), 1);
    for port in [1u16, 2] {
        let mut p = Peer::v4(port);
        syn(&mut h, &mut p);
    }
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (2, 2, 2));
    let mut c = Peer::v4(3);
    syn(&mut h, &mut c);
    assert_eq!(h.feed(&c.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (2, 2, 2));
    assert_eq!(h.listener().accept_queue.ack_backlog(), 1);
    let child = h.accept().unwrap();
    assert!(child.from_cookie);
    assert_eq!(child.remote, c.addr);
    assert_eq!(cookie_counters(&h), (1, 1, 0, 1));
}
