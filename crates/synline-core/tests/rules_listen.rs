mod util;
use util::*;

// State tests for spec sections 2 (D), 3 (L), 4 (S), 5 (Q), 6 (X) and 13 (V), with the
// section 14 counters they touch. Each test is a small table: listener settings and incoming
// segments -> verdict, reply fields, counters and table state.

use std::net::SocketAddr;
use std::time::Duration;
use synline_core::{DropReason, ListenerConfig, Mib, StackConfig, SyncookieMode, Verdict};
use synline_wire::{OptionsOut, SeqNumber, TcpFlags, Timestamps};
use util::wirebits::{self, hdr};

const MS: Duration = Duration::from_millis(1);

fn cfg() -> ListenerConfig {
    ListenerConfig::default()
}

fn with(f: impl FnOnce(&mut ListenerConfig)) -> ListenerConfig {
    let mut c = ListenerConfig::default();
    f(&mut c);
    c
}

fn peer_at(addr: &str, server: SocketAddr) -> Peer {
    let mut p = Peer::new(addr.parse().unwrap(), server);
    if server.is_ipv6() {
        p.options.mss = Some(1440);
    }
    p
}

fn now_ms(h: &Harness) -> u32 {
    h.now.as_millis() as u32
}

/// Feeds the SYN of `p`, expects a SYN-ACK and lets `p` learn it.
fn syn_ack(h: &mut Harness, p: &mut Peer) -> Reply {
    let out = h.feed(&p.syn());
    assert!(
        matches!(out.verdict, Verdict::Transmit(_)),
        "SYN from {} not answered: {:?}",
        p.addr,
        out.verdict
    );
    let r = out.reply().clone();
    p.learn(&r);
    r
}

fn assert_dropped(out: &Out, r: DropReason) {
    assert_eq!(out.verdict, Verdict::Drop(r));
    assert!(out.reply.is_none());
}

// ---------------------------------------------------------------------------------------------
// Section 2: ingress dispatch.

/// D-1: frames to a group MAC (not PACKET_HOST) are discarded before anything else.
#[test]
fn d1_group_mac_destination_is_discarded() {
    let macs: [[u8; 6]; 3] = [
        [0xff; 6],                            // broadcast
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01], // IPv4 multicast
        [0x33, 0x33, 0x00, 0x00, 0x00, 0x01], // IPv6 multicast
    ];
    for (server, peer) in [
        (v4_server(), Peer::v4(40000)),
        (v6_server(), Peer::v6(40000)),
    ] {
        for mac in macs {
            let mut h = Harness::on(server, cfg(), 128);
            // A SYN (would make a request) and an ACK (would draw an RST).
            for mut f in [
                peer.syn(),
                peer.seg(TcpFlags::ACK, peer.isn + 1, SeqNumber(77)),
            ] {
                f[..6].copy_from_slice(&mac);
                assert_dropped(&h.feed(&f), DropReason::NotHostL2);
            }
            let s = h.stats();
            assert_eq!(s.drops(DropReason::NotHostL2), 2);
            assert_eq!(s.get(Mib::OutSegs), 0);
            assert_eq!(s.get(Mib::OutRsts), 0);
            assert_eq!(s.get(Mib::ListenDrops), 0);
            assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (0, 0, 0));
        }
    }
}

/// D-1: a bad TCP checksum counts InCsumErrors + InErrs (and InSegs) and changes nothing,
/// whether the segment would reach the listener or a request.
#[test]
fn d1_bad_checksum_dropped_before_any_state_change() {
    for (server, mut p) in [
        (v4_server(), Peer::v4(40000)),
        (v6_server(), Peer::v6(40000)),
    ] {
        let mut h = Harness::on(server, cfg(), 128);
        // At the listener: a SYN.
        let mut syn = p.syn();
        wirebits::break_tcp_checksum(&mut syn);
        assert_dropped(&h.feed(&syn), DropReason::TcpChecksum);
        let s = h.stats();
        assert_eq!(s.get(Mib::InCsumErrors), 1);
        assert_eq!(s.get(Mib::InErrs), 1);
        assert_eq!(s.get(Mib::InSegs), 1);
        assert_eq!((h.qlen(), h.stack.live_requests()), (0, 0));

        // At a request: the third ACK, and an RST at RCV.NXT that would kill the request.
        syn_ack(&mut h, &mut p);
        let mut ack = p.third_ack(b"data");
        wirebits::break_tcp_checksum(&mut ack);
        assert_dropped(&h.feed(&ack), DropReason::TcpChecksum);
        let mut rst = p.seg(TcpFlags::RST, p.isn + 1, SeqNumber(0));
        wirebits::break_tcp_checksum(&mut rst);
        assert_dropped(&h.feed(&rst), DropReason::TcpChecksum);
        let s = h.stats();
        assert_eq!(s.get(Mib::InCsumErrors), 3);
        assert_eq!(s.get(Mib::InErrs), 3);
        assert_eq!(s.get(Mib::InSegs), 4);
        assert_eq!(s.get(Mib::PassiveOpens), 0);
        assert_eq!(s.get(Mib::EmbryonicRsts), 0);
        assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (1, 1, 1));
        assert!(h.accept().is_none());

        // The intact third ACK still completes the handshake.
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        assert_eq!(h.qlen(), 0);
    }
}

/// D-1: data offset below 5 words: InErrs (not InCsumErrors), dropped.
#[test]
fn d1_data_offset_below_five_counts_inerrs() {
    for doff in [0u8, 1, 4] {
        let mut h = Harness::new(cfg(), 128);
        let p = Peer::v4(40000);
        let mut syn = p.syn();
        wirebits::set_data_offset(&mut syn, doff);
        assert_dropped(&h.feed(&syn), DropReason::TcpHeader);
        let s = h.stats();
        assert_eq!(s.get(Mib::InErrs), 1, "doff {doff}");
        assert_eq!(s.get(Mib::InCsumErrors), 0);
        assert_eq!(s.get(Mib::InSegs), 1);
        assert_eq!(s.get(Mib::OutSegs), 0);
        assert_eq!(h.qlen(), 0);
    }
}

/// D-2: a request sock catches every segment of its exact 4-tuple before the listener;
/// segments of other 4-tuples reach the listener.
#[test]
fn d2_request_catches_its_four_tuple_before_the_listener() {
    let mut h = Harness::new(cfg(), 128);
    let mut a = Peer::v4(40000);
    let first = syn_ack(&mut h, &mut a);
    assert_eq!((h.qlen(), h.stack.live_requests()), (1, 1));

    // The same SYN again reaches the request (R-2: same ISS again), not the listener.
    let out = h.feed(&a.syn());
    assert!(out.reply().is_synack());
    assert_eq!(out.reply().seq(), first.seq());
    assert_eq!((h.qlen(), h.stack.live_requests()), (1, 1));
    assert_eq!(h.stats().get(Mib::TCPSynRetrans), 1);

    // Another port, or another address with the same port: other 4-tuples, new requests.
    let mut b = Peer::v4(40001);
    syn_ack(&mut h, &mut b);
    let mut c = peer_at("198.18.0.3:40000", v4_server());
    syn_ack(&mut h, &mut c);
    assert_eq!((h.qlen(), h.stack.live_requests()), (3, 3));

    // An RST at RCV.NXT: the listener would drop it silently (L-2); the request is killed.
    let stray = Peer::v4(40002);
    let out = h.feed(&stray.seg(TcpFlags::RST, stray.isn + 1, SeqNumber(0)));
    assert_dropped(&out, DropReason::ListenerRst);
    assert_eq!(h.qlen(), 3);
    let out = h.feed(&a.seg(TcpFlags::RST, a.isn + 1, SeqNumber(0)));
    assert_dropped(&out, DropReason::RequestReset);
    assert_eq!((h.qlen(), h.stack.live_requests()), (2, 2));
    assert_eq!(h.stats().get(Mib::EmbryonicRsts), 1);

    // The third ACKs of b and c reach their own requests.
    assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.feed(&c.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.accept().unwrap().remote, b.addr);
    assert_eq!(h.accept().unwrap().remote, c.addr);
    assert_eq!((h.qlen(), h.stack.live_requests()), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Section 3: segments reaching the listener.

/// A listener with a recorded SYN-queue overflow (mode 1, B = 0: one request, then a cookie):
/// returns the harness and the peer that holds a valid cookie SYN-ACK.
fn overflowed(c: ListenerConfig) -> (Harness, Peer) {
    let mut h = Harness::new(c, 0);
    let mut first = Peer::v4(39999);
    syn_ack(&mut h, &mut first);
    assert_eq!(h.qlen(), 1);
    let mut p = Peer::v4(40000);
    syn_ack(&mut h, &mut p);
    assert_eq!(h.qlen(), 1, "the second SYN was answered with a cookie");
    assert_eq!(h.stats().get(Mib::SyncookiesSent), 1);
    (h, p)
}

/// A bare ACK no cookie of ours produced.
fn forged_ack(port: u16) -> Vec<u8> {
    let f = Peer::v4(port);
    f.frame(
        TcpFlags::ACK,
        SeqNumber(0x1234_5678),
        SeqNumber(0x9abc_def0),
        OptionsOut::default(),
        &[],
    )
}

/// L-1: without a recorded overflow the cookie check does not run: an ACK goes straight to
/// L-2's RST and counts nothing under Syncookies*.
#[test]
fn l1_cookie_check_skipped_without_recent_overflow() {
    for mode in [SyncookieMode::WhenFull, SyncookieMode::Always] {
        let mut h = Harness::new(with(|c| c.syncookies = mode), 128);
        let out = h.feed(&forged_ack(41000));
        let r = out.reply();
        assert!(r.is_rst());
        assert_eq!(r.seq(), SeqNumber(0x9abc_def0));
        let s = h.stats();
        assert_eq!(s.get(Mib::SyncookiesFailed), 0, "{mode:?}");
        assert_eq!(s.get(Mib::SyncookiesRecv), 0);
        assert_eq!(s.get(Mib::OutRsts), 1);
    }
}

/// L-1: after an overflow the check runs on pure ACKs: a forged one counts SyncookiesFailed
/// (and still gets the RST), a real cookie ACK makes a child; 120 s later it no longer runs.
#[test]
fn l1_cookie_check_runs_only_within_120s_of_an_overflow() {
    let (mut h, p) = overflowed(cfg());
    // +0 s: forged -> Failed 1, RST.
    let out = h.feed(&forged_ack(41000));
    assert!(out.reply().is_rst());
    assert_eq!(h.stats().get(Mib::SyncookiesFailed), 1);
    // The real cookie ACK -> child.
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.stats().get(Mib::SyncookiesRecv), 1);
    assert!(h.accept().unwrap().from_cookie);
    // +100 s: still recent: forged -> Failed 2.
    h.advance(Duration::from_secs(100));
    assert!(h.feed(&forged_ack(41001)).reply().is_rst());
    assert_eq!(h.stats().get(Mib::SyncookiesFailed), 2);
    // +125 s: no recent overflow: the check does not run; L-2 still resets.
    h.advance(Duration::from_secs(25));
    assert!(h.feed(&forged_ack(41002)).reply().is_rst());
    let s = h.stats();
    assert_eq!(s.get(Mib::SyncookiesFailed), 2);
    assert_eq!(s.get(Mib::SyncookiesRecv), 1);
    assert_eq!(s.get(Mib::OutRsts), 3);
}

/// L-1: only segments with ACK and without SYN and RST are checked; FIN or data do not
/// matter. Cookies switched off: never checked.
#[test]
fn l1_only_pure_acks_are_checked_and_only_with_cookies_on() {
    let (mut h, p) = overflowed(cfg());
    let (seq, ack) = (p.isn + 1, p.iss + 1);
    // RST|ACK carrying a valid cookie: not checked, dropped (L-2 (1) without reply).
    let out = h.feed(&p.seg(TcpFlags::ACK | TcpFlags::RST, seq, ack));
    assert_dropped(&out, DropReason::ListenerRst);
    // SYN|ACK carrying a valid cookie: not checked, RST (L-2 (1)).
    let out = h.feed(&p.seg(TcpFlags::SYN | TcpFlags::ACK, seq, ack));
    assert!(out.reply().is_rst());
    assert_eq!(out.reply().seq(), ack);
    let s = h.stats();
    assert_eq!(
        (s.get(Mib::SyncookiesRecv), s.get(Mib::SyncookiesFailed)),
        (0, 0)
    );
    assert!(h.accept().is_none());
    // ACK|FIN with the valid cookie: checked, child in CLOSE_WAIT.
    let out = h.feed(&p.seg(TcpFlags::ACK | TcpFlags::FIN, seq, ack));
    assert_eq!(out.verdict, Verdict::Consumed);
    let c = h.accept().unwrap();
    assert_eq!(c.state, synline_core::ChildState::CloseWait);
    assert!(c.from_cookie);
    assert_eq!(h.stats().get(Mib::SyncookiesRecv), 1);

    // Cookies switched off after the overflow: the valid cookie ACK is not checked: RST.
    let (mut h, p) = overflowed(cfg());
    h.sock
        .set_config(with(|c| c.syncookies = SyncookieMode::Never))
        .unwrap();
    let out = h.feed(&p.third_ack(&[]));
    assert!(out.reply().is_rst());
    assert_eq!(out.reply().seq(), p.iss + 1);
    let s = h.stats();
    assert_eq!(
        (s.get(Mib::SyncookiesRecv), s.get(Mib::SyncookiesFailed)),
        (0, 0)
    );
    assert!(h.accept().is_none());
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum L2 {
    Rst,
    Drop(DropReason),
    SynAck,
}

/// L-2: the listener's flag tests in order: ACK -> RST (unless RST), RST -> drop,
/// SYN (+FIN dropped) -> request, anything else -> drop.
#[test]
fn l2_flag_tests_in_order() {
    use TcpFlags as F;
    let rows: &[(TcpFlags, &[u8], L2)] = &[
        (F::ACK, b"", L2::Rst),
        (F(F::ACK.0 | F::PSH.0), b"data", L2::Rst),
        (F(F::ACK.0 | F::FIN.0), b"", L2::Rst),
        (F(F::ACK.0 | F::URG.0 | F::ECE.0 | F::CWR.0), b"", L2::Rst),
        (F(F::SYN.0 | F::ACK.0), b"", L2::Rst),
        (F(F::SYN.0 | F::ACK.0 | F::FIN.0), b"", L2::Rst),
        (
            F(F::ACK.0 | F::RST.0),
            b"",
            L2::Drop(DropReason::ListenerRst),
        ),
        (
            F(F::SYN.0 | F::ACK.0 | F::RST.0),
            b"",
            L2::Drop(DropReason::ListenerRst),
        ),
        (F::RST, b"", L2::Drop(DropReason::ListenerRst)),
        (
            F(F::SYN.0 | F::RST.0),
            b"",
            L2::Drop(DropReason::ListenerRst),
        ),
        (
            F(F::RST.0 | F::FIN.0),
            b"",
            L2::Drop(DropReason::ListenerRst),
        ),
        (F(F::SYN.0 | F::FIN.0), b"", L2::Drop(DropReason::SynFin)),
        (
            F(F::SYN.0 | F::FIN.0 | F::PSH.0),
            b"",
            L2::Drop(DropReason::SynFin),
        ),
        (F::SYN, b"", L2::SynAck),
        (F(F::SYN.0 | F::PSH.0), b"", L2::SynAck),
        (F(F::SYN.0 | F::URG.0), b"", L2::SynAck),
        (
            F(F::SYN.0 | F::PSH.0 | F::URG.0 | F::ECE.0 | F::CWR.0),
            b"",
            L2::SynAck,
        ),
        (F(0), b"", L2::Drop(DropReason::NoFlags)),
        (F::FIN, b"", L2::Drop(DropReason::NoFlags)),
        (F::PSH, b"data", L2::Drop(DropReason::NoFlags)),
        (F::URG, b"", L2::Drop(DropReason::NoFlags)),
        (F(F::ECE.0 | F::CWR.0), b"", L2::Drop(DropReason::NoFlags)),
    ];
    let mut h = Harness::new(cfg(), 128);
    let (mut rsts, mut synacks) = (0, 0);
    for (i, &(flags, payload, want)) in rows.iter().enumerate() {
        let p = Peer::v4(41000 + i as u16);
        let ack = SeqNumber(0xdead_0000 + i as u32);
        let f = p.frame(flags, p.isn, ack, p.ack_options(0), payload);
        let out = h.feed(&f);
        let got = match out.verdict {
            Verdict::Drop(r) => L2::Drop(r),
            Verdict::Transmit(_) if out.reply().is_rst() => L2::Rst,
            Verdict::Transmit(_) if out.reply().is_synack() => L2::SynAck,
            v => panic!("{flags:?}: unexpected {v:?}"),
        };
        assert_eq!(got, want, "flags {flags:?}");
        match want {
            L2::Rst => {
                rsts += 1;
                // P-1 for a segment with ACK: SEQ = SEG.ACK, only RST, window 0, no options.
                let r = out.reply();
                let x = hdr(r);
                assert_eq!(r.seq(), ack, "{flags:?}");
                assert_eq!(x.flags, F::RST.0, "{flags:?}");
                assert_eq!(x.window, 0);
                assert!(x.options.is_empty());
            }
            L2::SynAck => {
                synacks += 1;
                assert_eq!(out.reply().ack(), p.isn + 1);
            }
            L2::Drop(_) => {}
        }
        let s = h.stats();
        assert_eq!(s.get(Mib::OutRsts), rsts, "after {flags:?}");
        assert_eq!(h.qlen(), synacks, "after {flags:?}");
    }
}

/// L-3: whatever happens to a SYN at the listener, no RST goes back.
#[test]
fn l3_listener_never_resets_a_syn() {
    // (settings, backlog, stack, preparation, the SYN's flags, expected drop)
    type Prep = fn(&mut Harness);
    fn fill_synq(h: &mut Harness) {
        let mut p = Peer::v4(1);
        syn_ack(h, &mut p);
    }
    fn fill_acceptq(h: &mut Harness) {
        let mut p = Peer::v4(1);
        handshake(h, &mut p);
    }
    fn nothing(_: &mut Harness) {}
    let mode0 = with(|c| c.syncookies = SyncookieMode::Never);
    let mode2 = with(|c| c.syncookies = SyncookieMode::Always);
    let capped = StackConfig {
        max_requests: 0,
        ..StackConfig::default()
    };
    let rows: &[(
        &str,
        ListenerConfig,
        StackConfig,
        Prep,
        TcpFlags,
        DropReason,
    )] = &[
        (
            "SYN queue full, cookies off",
            mode0,
            StackConfig::default(),
            fill_synq as Prep,
            TcpFlags::SYN,
            DropReason::SynQueueFull,
        ),
        (
            "accept queue full",
            cfg(),
            StackConfig::default(),
            fill_acceptq,
            TcpFlags::SYN,
            DropReason::AcceptQueueFull,
        ),
        (
            "accept queue full, cookies always",
            mode2,
            StackConfig::default(),
            fill_acceptq,
            TcpFlags::SYN,
            DropReason::AcceptQueueFull,
        ),
        (
            "request cap",
            cfg(),
            capped,
            nothing,
            TcpFlags::SYN,
            DropReason::RequestCap,
        ),
        (
            "SYN+FIN",
            cfg(),
            StackConfig::default(),
            nothing,
            TcpFlags(TcpFlags::SYN.0 | TcpFlags::FIN.0),
            DropReason::SynFin,
        ),
        (
            "SYN+RST",
            cfg(),
            StackConfig::default(),
            nothing,
            TcpFlags(TcpFlags::SYN.0 | TcpFlags::RST.0),
            DropReason::ListenerRst,
        ),
    ];
    for &(name, c, sc, prep, flags, want) in rows {
        let mut h = Harness::with_stack(sc, v4_server(), c, 0);
        prep(&mut h);
        let before = h.stats().get(Mib::OutRsts);
        let p = Peer::v4(40000);
        let out = h.feed(&p.frame(flags, p.isn, SeqNumber(0), p.options, &[]));
        assert_eq!(out.verdict, Verdict::Drop(want), "{name}");
        assert!(out.reply.is_none(), "{name}");
        assert_eq!(h.stats().get(Mib::OutRsts), before, "{name}");
    }
    // A SYN to a multicast address on a wildcard listener.
    let mut h = Harness::on("0.0.0.0:80".parse().unwrap(), cfg(), 128);
    let p = peer_at("198.18.0.2:40000", "224.0.0.1:80".parse().unwrap());
    assert_dropped(&h.feed(&p.syn()), DropReason::NotUnicast);
    assert_eq!(h.stats().get(Mib::OutRsts), 0);
}

// ---------------------------------------------------------------------------------------------
// Section 4: SYN admission.

/// S-1: a SYN to a broadcast or multicast address: drop, ListenDrops; before S-2 (no cookie
/// counted even in mode 2).
#[test]
fn s1_broadcast_and_multicast_destinations_dropped_with_listen_drops() {
    for mode in [SyncookieMode::WhenFull, SyncookieMode::Always] {
        let mut h = Harness::on(
            "0.0.0.0:80".parse().unwrap(),
            with(|c| c.syncookies = mode),
            128,
        );
        for (i, dst) in ["255.255.255.255:80", "224.0.0.1:80", "239.1.2.3:80"]
            .iter()
            .enumerate()
        {
            let p = peer_at("198.18.0.2:40000", dst.parse().unwrap());
            assert_dropped(&h.feed(&p.syn()), DropReason::NotUnicast);
            let s = h.stats();
            assert_eq!(s.get(Mib::ListenDrops), i as u64 + 1, "{dst} {mode:?}");
            assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 0);
            assert_eq!(s.get(Mib::SyncookiesSent), 0);
            assert_eq!(s.get(Mib::OutSegs), 0);
        }
        assert_eq!((h.qlen(), h.stack.live_requests()), (0, 0));
        // The same wildcard listener answers a unicast SYN.
        let mut p = peer_at("198.18.0.2:40000", "198.18.0.1:80".parse().unwrap());
        syn_ack(&mut h, &mut p);
    }
}

/// S-2 (mode 1): with qlen > B the SYN is answered with a cookie: TCPReqQFullDoCookies +
/// SyncookiesSent, no request; the flood warning is raised.
#[test]
fn s2_mode1_full_syn_queue_answers_with_cookie() {
    let mut h = Harness::new(cfg(), 2);
    for port in 1..=3u16 {
        let mut p = Peer::v4(port);
        syn_ack(&mut h, &mut p);
        assert_eq!(h.qlen(), u32::from(port));
    }
    assert!(!h.listener().synflood_warned());
    assert_eq!(h.stats().get(Mib::TCPReqQFullDoCookies), 0);
    for (i, port) in (4..=5u16).enumerate() {
        let mut p = Peer::v4(port);
        let r = syn_ack(&mut h, &mut p);
        assert!(r.is_synack());
        let s = h.stats();
        assert_eq!(s.get(Mib::TCPReqQFullDoCookies), i as u64 + 1);
        assert_eq!(s.get(Mib::SyncookiesSent), i as u64 + 1);
        assert_eq!(s.get(Mib::TCPReqQFullDrop), 0);
        assert_eq!(s.get(Mib::ListenDrops), 0);
        assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (3, 3, 3));
    }
    assert!(h.listener().synflood_warned());
}

/// S-2 (mode 0): with qlen > B the SYN is dropped: TCPReqQFullDrop + ListenDrops, no reply.
#[test]
fn s2_mode0_full_syn_queue_drops() {
    let mut h = Harness::new(with(|c| c.syncookies = SyncookieMode::Never), 2);
    for port in 1..=3u16 {
        let mut p = Peer::v4(port);
        syn_ack(&mut h, &mut p);
    }
    assert!(!h.listener().synflood_warned());
    for (i, port) in (4..=5u16).enumerate() {
        let p = Peer::v4(port);
        assert_dropped(&h.feed(&p.syn()), DropReason::SynQueueFull);
        let s = h.stats();
        assert_eq!(s.get(Mib::TCPReqQFullDrop), i as u64 + 1);
        assert_eq!(s.get(Mib::ListenDrops), i as u64 + 1);
        assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 0);
        assert_eq!(s.get(Mib::SyncookiesSent), 0);
        assert_eq!(s.get(Mib::OutSegs), 3);
        assert_eq!((h.qlen(), h.stack.live_requests()), (3, 3));
    }
    assert!(h.listener().synflood_warned());
}

/// S-2 (mode 2): every SYN counts TCPReqQFullDoCookies and gets a cookie; no request; the
/// flood warning is not raised.
#[test]
fn s2_mode2_every_syn_counts_do_cookies_and_never_warns() {
    let mut h = Harness::new(with(|c| c.syncookies = SyncookieMode::Always), 128);
    for port in 1..=5u16 {
        let mut p = Peer::v4(port);
        syn_ack(&mut h, &mut p);
        let s = h.stats();
        assert_eq!(s.get(Mib::TCPReqQFullDoCookies), u64::from(port));
        assert_eq!(s.get(Mib::SyncookiesSent), u64::from(port));
        assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (0, 0, 0));
    }
    assert!(!h.listener().synflood_warned());
}

/// S-2 / section 1: B = 0 still admits one request; the next SYN meets a full queue.
#[test]
fn s2_backlog_zero_admits_one_request() {
    for (mode, second) in [
        (SyncookieMode::Never, Some(DropReason::SynQueueFull)),
        (SyncookieMode::WhenFull, None),
    ] {
        let mut h = Harness::new(with(|c| c.syncookies = mode), 0);
        let mut a = Peer::v4(1);
        syn_ack(&mut h, &mut a);
        assert_eq!(h.qlen(), 1);
        let mut b = Peer::v4(2);
        match second {
            Some(r) => assert_dropped(&h.feed(&b.syn()), r),
            None => {
                syn_ack(&mut h, &mut b);
                assert_eq!(h.stats().get(Mib::SyncookiesSent), 1);
            }
        }
        assert_eq!(h.qlen(), 1, "{mode:?}");
    }
}

/// S-3: mode 1 switches at qlen > B: a SYN arriving at qlen = B makes a request (qlen B+1),
/// at qlen = B+1 gets a cookie; when a request leaves, requests are made again.
#[test]
fn s3_mode1_switches_between_requests_and_cookies_at_backlog() {
    let b = 1u32;
    let mut h = Harness::new(cfg(), b as i32);
    // (peer port, qlen before, expect cookie)
    let mut peers = Vec::new();
    for (port, qlen_before, cookie) in [(1u16, 0u32, false), (2, 1, false), (3, 2, true)] {
        assert_eq!(h.qlen(), qlen_before);
        let mut p = Peer::v4(port);
        syn_ack(&mut h, &mut p);
        assert_eq!(h.qlen(), if cookie { qlen_before } else { qlen_before + 1 });
        assert_eq!(
            h.stats().get(Mib::SyncookiesSent),
            u64::from(cookie),
            "port {port}"
        );
        peers.push(p);
    }
    // Request 1 completes: qlen = B again: the next SYN makes a request.
    assert_eq!(h.feed(&peers[0].third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.qlen(), b);
    let mut d = Peer::v4(4);
    syn_ack(&mut h, &mut d);
    assert_eq!(h.qlen(), b + 1);
    assert_eq!(h.stats().get(Mib::SyncookiesSent), 1);
    // And the next gets a cookie.
    let mut e = Peer::v4(5);
    syn_ack(&mut h, &mut e);
    assert_eq!(h.qlen(), b + 1);
    assert_eq!(h.stats().get(Mib::SyncookiesSent), 2);
    assert_eq!(h.stats().get(Mib::TCPReqQFullDoCookies), 2);
}

/// S-4: accept queue full (ack_backlog > B): ListenOverflows + ListenDrops, no SYN-ACK; at
/// ack_backlog = B the SYN is still admitted; accept() makes room.
#[test]
fn s4_accept_queue_full_drops_syn_with_listen_overflows() {
    let mut h = Harness::new(cfg(), 1);
    let mut a = Peer::v4(1);
    handshake(&mut h, &mut a);
    assert_eq!(h.listener().accept_queue.ack_backlog(), 1);
    // ack_backlog = B: admitted.
    let mut b = Peer::v4(2);
    handshake(&mut h, &mut b);
    assert_eq!(h.listener().accept_queue.ack_backlog(), 2);
    // ack_backlog = B + 1: full.
    for (i, port) in [3u16, 4].iter().enumerate() {
        let p = Peer::v4(*port);
        assert_dropped(&h.feed(&p.syn()), DropReason::AcceptQueueFull);
        let s = h.stats();
        assert_eq!(s.get(Mib::ListenOverflows), i as u64 + 1);
        assert_eq!(s.get(Mib::ListenDrops), i as u64 + 1);
        assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 0);
        assert_eq!((h.qlen(), h.stack.live_requests()), (0, 0));
    }
    assert_eq!(h.accept().unwrap().remote, a.addr);
    let mut c = Peer::v4(3);
    syn_ack(&mut h, &mut c);
    assert_eq!(h.qlen(), 1);
}

/// S-4: cookie SYNs are checked too (after S-2 counted the cookie decision).
#[test]
fn s4_accept_queue_full_drops_cookie_syns_too() {
    // Mode 2, B = 0: one cookie child fills the accept queue.
    let mut h = Harness::new(with(|c| c.syncookies = SyncookieMode::Always), 0);
    let mut a = Peer::v4(1);
    handshake(&mut h, &mut a);
    let p = Peer::v4(2);
    assert_dropped(&h.feed(&p.syn()), DropReason::AcceptQueueFull);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 2);
    assert_eq!(s.get(Mib::SyncookiesSent), 1);
    assert_eq!(s.get(Mib::ListenOverflows), 1);
    assert_eq!(s.get(Mib::ListenDrops), 1);

    // Mode 1, B = 0: a pending request fills the SYN queue, a cookie child the accept queue.
    let mut h = Harness::new(cfg(), 0);
    let mut x = Peer::v4(1);
    syn_ack(&mut h, &mut x);
    let mut a = Peer::v4(2);
    handshake(&mut h, &mut a);
    assert!(h.listener().accept_queue.ack_backlog() == 1 && h.qlen() == 1);
    let p = Peer::v4(3);
    assert_dropped(&h.feed(&p.syn()), DropReason::AcceptQueueFull);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 2);
    assert_eq!(s.get(Mib::SyncookiesSent), 1);
    assert_eq!(s.get(Mib::ListenOverflows), 1);
    assert_eq!(s.get(Mib::ListenDrops), 1);
    assert_eq!(h.qlen(), 1);
}

/// S-5 is documented as unsupported (conn_request.rs): with tcp_syncookies = 0 the queue
/// fills to B + 1 whatever the peers, and only then TCPReqQFullDrop.
#[test]
fn s5_unsupported_mode0_queue_fills_to_backlog_plus_one() {
    let b = 16u32;
    let mut h = Harness::new(with(|c| c.syncookies = SyncookieMode::Never), b as i32);
    for i in 0..=b {
        // Unproven peers: every SYN from a new address.
        let mut p = peer_at(&format!("198.18.1.{}:40000", i + 1), v4_server());
        syn_ack(&mut h, &mut p);
    }
    assert_eq!(h.qlen(), b + 1);
    assert_eq!(h.stats().get(Mib::ListenDrops), 0);
    let p = peer_at("198.18.2.1:40000", v4_server());
    assert_dropped(&h.feed(&p.syn()), DropReason::SynQueueFull);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPReqQFullDrop), 1);
    assert_eq!(s.get(Mib::ListenDrops), 1);
    assert_eq!(h.qlen(), b + 1);
}

/// S-6: the global request cap stands for an allocation failure: ListenDrops, no reply, no
/// cookie; room again once a request leaves.
#[test]
fn s6_request_cap_counts_listen_drops() {
    let sc = StackConfig {
        max_requests: 2,
        ..StackConfig::default()
    };
    let mut h = Harness::with_stack(sc, v4_server(), cfg(), 128);
    let mut a = Peer::v4(1);
    syn_ack(&mut h, &mut a);
    let mut b = Peer::v4(2);
    syn_ack(&mut h, &mut b);
    let c = Peer::v4(3);
    assert_dropped(&h.feed(&c.syn()), DropReason::RequestCap);
    let s = h.stats();
    assert_eq!(s.get(Mib::ListenDrops), 1);
    assert_eq!(s.get(Mib::TCPReqQFullDoCookies), 0);
    assert_eq!(s.get(Mib::OutSegs), 2);
    assert_eq!((h.qlen(), h.stack.live_requests()), (2, 2));
    assert_eq!(h.feed(&a.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.stack.live_requests(), 1);
    let mut c = Peer::v4(3);
    syn_ack(&mut h, &mut c);
    assert_eq!(h.stack.live_requests(), 2);
}

fn ts_bytes(tsval: u32, tsecr: u32) -> Vec<u8> {
    let mut v = vec![8, 10];
    v.extend_from_slice(&tsval.to_be_bytes());
    v.extend_from_slice(&tsecr.to_be_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// S-7: option parsing on a SYN, observed in the SYN-ACK (which options come back) and in the
/// child (peer MSS, shift, SACK, timestamps).
#[test]
fn s7_option_parsing_table() {
    let ts = ts_bytes(5000, 0);
    let ts = ts.as_slice();
    struct Row {
        name: &'static str,
        cfg: ListenerConfig,
        opts: Vec<u8>,
        mss: u16,
        ws: Option<u8>,
        sack: bool,
        ts: bool,
    }
    let row = |name, opts: Vec<u8>, mss, ws, sack, ts| Row {
        name,
        cfg: cfg(),
        opts,
        mss,
        ws,
        sack,
        ts,
    };
    let rows = vec![
        row(
            "linux SYN",
            cat(&[&[2, 4, 5, 0xb4, 4, 2], ts, &[1, 3, 3, 7]]),
            1460,
            Some(7),
            true,
            true,
        ),
        row(
            "EOL ends parsing",
            cat(&[&[2, 4, 3, 0xe8, 0, 1, 1, 1, 1, 1], ts]),
            1000,
            None,
            false,
            false,
        ),
        row(
            "NOPs skipped",
            vec![1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 3, 0xe8, 1, 1, 4, 2],
            1000,
            None,
            true,
            false,
        ),
        row(
            "length 1 stops, earlier kept",
            vec![2, 4, 3, 0xe8, 3, 1, 7, 1, 1, 1, 4, 2],
            1000,
            None,
            false,
            false,
        ),
        row(
            "length 0 stops, earlier kept",
            vec![2, 4, 3, 0xe8, 4, 0, 1, 1, 1, 3, 3, 7],
            1000,
            None,
            false,
            false,
        ),
        row(
            "TS running past the header stops",
            vec![2, 4, 3, 0xe8, 1, 1, 8, 10, 0, 0, 0x13, 0x88],
            1000,
            None,
            false,
            false,
        ),
        row(
            "WS running past the header stops",
            vec![1, 1, 4, 2, 2, 4, 5, 0xb4, 3, 8, 7, 1],
            1460,
            None,
            true,
            false,
        ),
        row(
            "unknown options skipped",
            vec![30, 4, 0xab, 0xcd, 254, 6, 0, 0, 0, 0, 2, 4, 3, 0xe8, 1, 1],
            1000,
            None,
            false,
            false,
        ),
        row(
            "repeated options overwrite",
            vec![2, 4, 3, 0xe8, 2, 4, 4, 0xb0, 1, 3, 3, 2, 1, 3, 3, 9],
            1200,
            Some(9),
            false,
            false,
        ),
        row(
            "MSS of length 3 skipped by its length",
            vec![2, 3, 4, 1, 2, 4, 3, 0xe8],
            1000,
            None,
            false,
            false,
        ),
        row(
            "MSS of length 5 ignored",
            vec![2, 5, 3, 0xe8, 0, 1, 1, 1],
            536,
            None,
            false,
            false,
        ),
        row("MSS 0 ignored", vec![2, 4, 0, 0], 536, None, false, false),
        row("no MSS: 536", vec![1, 1, 4, 2], 536, None, true, false),
        row(
            "WS of length 4 ignored",
            vec![2, 4, 5, 0xb4, 3, 4, 7, 0],
            1460,
            None,
            false,
            false,
        ),
        row(
            "WS 15 clamped to 14",
            vec![2, 4, 5, 0xb4, 1, 3, 3, 15],
            1460,
            Some(14),
            false,
            false,
        ),
        row(
            "WS 255 clamped to 14",
            vec![2, 4, 5, 0xb4, 1, 3, 3, 255],
            1460,
            Some(14),
            false,
            false,
        ),
        row(
            "SACK-permitted of length 3 ignored",
            vec![2, 4, 5, 0xb4, 4, 3, 0, 1],
            1460,
            None,
            false,
            false,
        ),
        row(
            "TS of length 11 ignored",
            cat(&[&[2, 4, 5, 0xb4, 8, 11], &[0; 9], &[1]]),
            1460,
            None,
            false,
            false,
        ),
        Row {
            cfg: with(|c| c.maxseg = 1000),
            ..row(
                "mss_clamp = min(MSS, TCP_MAXSEG)",
                vec![2, 4, 5, 0xb4],
                1000,
                None,
                false,
                false,
            )
        },
        Row {
            cfg: with(|c| c.maxseg = 1000),
            ..row(
                "MSS below TCP_MAXSEG kept",
                vec![2, 4, 3, 0x20],
                800,
                None,
                false,
                false,
            )
        },
    ];
    for r in rows {
        let mut h = Harness::new(r.cfg, 128);
        let mut p = Peer::v4(40000);
        p.options = OptionsOut {
            timestamps: r.ts.then_some(Timestamps {
                tsval: 5000,
                tsecr: 0,
            }),
            ..OptionsOut::default()
        };
        let out = h.feed(&wirebits::syn_with_options(&p, &r.opts));
        let sa = out.reply();
        assert!(sa.is_synack(), "{}", r.name);
        let o = sa.p.seg.options;
        assert_eq!(o.timestamps.is_some(), r.ts, "{}: TS in SYN-ACK", r.name);
        if r.ts {
            assert_eq!(o.timestamps.unwrap().tsecr, 5000, "{}", r.name);
        }
        assert_eq!(o.wscale.is_some(), r.ws.is_some(), "{}: WS", r.name);
        assert_eq!(o.sack_permitted, r.sack, "{}: SACK", r.name);
        p.learn(sa);
        assert_eq!(
            h.feed(&p.third_ack(&[])).verdict,
            Verdict::Consumed,
            "{}",
            r.name
        );
        let c = h.accept().unwrap();
        assert_eq!(c.mss, r.mss, "{}: peer MSS", r.name);
        assert_eq!(c.snd_wscale, r.ws, "{}: peer shift", r.name);
        assert_eq!(c.sack, r.sack, "{}: SACK", r.name);
        assert_eq!(c.timestamps.is_some(), r.ts, "{}: timestamps", r.name);
    }
}

/// S-8: data on a SYN is discarded: only the SYN is acknowledged, nothing is echoed, and the
/// child starts at IRS + 1.
#[test]
fn s8_syn_payload_is_discarded() {
    for (server, peer, mode) in [
        (v4_server(), Peer::v4(40000), SyncookieMode::WhenFull),
        (v6_server(), Peer::v6(40000), SyncookieMode::WhenFull),
        (v4_server(), Peer::v4(40000), SyncookieMode::Always),
    ] {
        let mut h = Harness::on(server, with(|c| c.syncookies = mode), 128);
        let mut p = peer;
        let syn = p.frame(
            TcpFlags::SYN,
            p.isn,
            SeqNumber(0),
            p.options,
            b"hello world",
        );
        let out = h.feed(&syn);
        let sa = out.reply().clone();
        assert!(sa.is_synack());
        assert_eq!(
            sa.ack(),
            p.isn + 1,
            "{mode:?}: only the SYN is acknowledged"
        );
        assert_eq!(hdr(&sa).payload_len, 0);
        p.learn(&sa);
        assert_eq!(h.feed(&p.third_ack(b"GET")).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        assert_eq!(c.irs, p.isn);
        assert_eq!(c.data, b"GET");
        assert_eq!(c.rcv_nxt, p.isn + 1 + 3);
    }
}

// ---------------------------------------------------------------------------------------------
// Section 5: request creation, ISN, insertion.

/// the request's fields come from the SYN: IRS, RCV.NXT, peer MSS, ts_recent (0 without
/// TS), WS/SACK/TS flags, addresses swapped.
#[test]
fn q1_request_fields_from_the_syn() {
    for with_ts in [true, false] {
        let mut h = Harness::new(cfg(), 128);
        let mut p = Peer::v4(40000);
        p.isn = SeqNumber(0xffff_fff0);
        p.options = OptionsOut {
            mss: Some(1300),
            wscale: Some(3),
            sack_permitted: true,
            timestamps: with_ts.then_some(Timestamps {
                tsval: 777,
                tsecr: 0,
            }),
        };
        let sa = syn_ack(&mut h, &mut p);
        // Addresses and ports swapped.
        assert_eq!(sa.p.seg.src, p.server.ip());
        assert_eq!(sa.p.seg.dst, p.addr.ip());
        assert_eq!(sa.p.seg.src_port, 80);
        assert_eq!(sa.p.seg.dst_port, 40000);
        assert_eq!(sa.p.seg.eth_dst, CLIENT_MAC);
        assert_eq!(sa.p.seg.eth_src, SERVER_MAC);
        // RCV.NXT = IRS + 1 (across the wrap).
        assert_eq!(sa.ack(), SeqNumber(0xffff_fff1));
        assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (1, 1, 1));
        // An out-of-window segment draws P-2, which shows RCV.NXT and ts_recent.
        let oow = p.seg(TcpFlags::ACK, p.isn + 1 + 200_000, p.iss + 1);
        let out = h.feed(&oow);
        let ack = out.reply();
        assert!(ack.is_bare_ack());
        assert_eq!(ack.ack(), p.isn + 1);
        assert_eq!(
            ack.p.seg.options.timestamps.map(|t| t.tsecr),
            with_ts.then_some(777),
            "ts_recent = SYN TSval, or 0 (no TS on P-2)"
        );
        // The child shows the rest.
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        assert_eq!(c.irs, p.isn);
        assert_eq!(c.rcv_nxt, p.isn + 1);
        assert_eq!(c.snd_nxt, p.iss + 1);
        assert_eq!(c.mss, 1300);
        assert_eq!(c.snd_wscale, Some(3));
        assert!(c.sack);
        assert_eq!(c.timestamps.is_some(), with_ts);
        assert_eq!(c.local, p.server);
        assert_eq!(c.remote, p.addr);
    }
}

/// ECN is negotiated when the SYN has ECE and CWR, its IP ECN field is Not-ECT, and ECN
/// is enabled here; the SYN-ACK then has ECE, the child `ecn`.
#[test]
fn q2_ecn_negotiation_table() {
    let ece_cwr = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0 | TcpFlags::CWR.0);
    let ece = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0);
    let cwr = TcpFlags(TcpFlags::SYN.0 | TcpFlags::CWR.0);
    // (v6, tcp_ecn, flags, IP TOS / traffic class, negotiated)
    let rows: &[(bool, u8, TcpFlags, u8, bool)] = &[
        (false, 2, ece_cwr, 0x00, true),
        (false, 1, ece_cwr, 0x00, true),
        (false, 0, ece_cwr, 0x00, false),
        (false, 2, ece, 0x00, false),
        (false, 2, cwr, 0x00, false),
        (false, 2, TcpFlags::SYN, 0x00, false),
        (false, 2, ece_cwr, 0x02, false), // ECT(0)
        (false, 2, ece_cwr, 0x01, false), // ECT(1)
        (false, 2, ece_cwr, 0x03, false), // CE
        (false, 2, ece_cwr, 0xb8, true),  // DSCP EF, Not-ECT
        (true, 2, ece_cwr, 0x00, true),
        (true, 2, ece_cwr, 0x02, false),
        (true, 0, ece_cwr, 0x00, false),
    ];
    for &(v6, ecn, flags, tos, want) in rows {
        let server = if v6 { v6_server() } else { v4_server() };
        let mut h = Harness::on(server, with(|c| c.ecn = ecn), 128);
        let mut p = if v6 { Peer::v6(40000) } else { Peer::v4(40000) };
        p.tos = tos;
        let out = h.feed(&p.frame(flags, p.isn, SeqNumber(0), p.options, &[]));
        let sa = out.reply().clone();
        let expect_flags = if want { 0x52 } else { 0x12 };
        assert_eq!(
            hdr(&sa).flags,
            expect_flags,
            "v6 {v6} ecn {ecn} {flags:?} tos {tos:#x}"
        );
        p.learn(&sa);
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        assert_eq!(h.accept().unwrap().ecn, want, "{flags:?} tos {tos:#x}");
    }
}

/// Q-2 with section 0 (6.18): an AccECN SYN (ECE, CWR and AE) under tcp_ecn = 2 gets classic
/// ECN: ECE alone in the SYN-ACK.
#[test]
fn q2_accecn_syn_gets_classic_ecn() {
    let mut h = Harness::new(cfg(), 128);
    let mut p = Peer::v4(40000);
    let flags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0 | TcpFlags::CWR.0);
    let mut syn = p.frame(flags, p.isn, SeqNumber(0), p.options, &[]);
    wirebits::set_reserved(&mut syn, 0x1); // AE
    let out = h.feed(&syn);
    let x = hdr(out.reply());
    assert_eq!(x.flags, 0x52, "SYN|ACK|ECE");
    assert_eq!(x.reserved, 0, "no AE in the answer");
    p.learn(out.reply());
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert!(h.accept().unwrap().ecn);
}

/// a cookie connection without timestamps never gets ECN (with timestamps it can).
#[test]
fn q2_cookie_without_timestamps_never_gets_ecn() {
    let ece_cwr = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0 | TcpFlags::CWR.0);
    for with_ts in [false, true] {
        let mut h = Harness::new(with(|c| c.syncookies = SyncookieMode::Always), 128);
        let mut p = Peer::v4(40000);
        if !with_ts {
            p.options.timestamps = None;
        }
        let out = h.feed(&p.frame(ece_cwr, p.isn, SeqNumber(0), p.options, &[]));
        let sa = out.reply().clone();
        assert_eq!(hdr(&sa).flags, if with_ts { 0x52 } else { 0x12 });
        p.learn(&sa);
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        assert!(c.from_cookie);
        assert_eq!(c.ecn, with_ts, "timestamps {with_ts}");
    }
}

/// ISS = keyed hash of the 4-tuple + (clock ns >> 6): per 4-tuple, and advancing with the
/// clock for one 4-tuple (64 ns -> +1, 1 s -> +15 625 000).
#[test]
fn q3_iss_is_keyed_per_tuple_and_advances_with_the_clock() {
    let mut h = Harness::new(cfg(), 128);
    let iss_of = |h: &mut Harness, p: &mut Peer| -> u32 {
        let sa = handshake(h, p);
        h.accept().unwrap();
        sa.seq().0
    };
    let mut a = Peer::v4(40000);
    let a0 = iss_of(&mut h, &mut a);
    // Other 4-tuples at the same instant: other ISS.
    let mut b = Peer::v4(40001);
    let mut c = peer_at("198.18.0.3:40000", v4_server());
    let (b0, c0) = (iss_of(&mut h, &mut b), iss_of(&mut h, &mut c));
    assert!(a0 != b0 && a0 != c0 && b0 != c0, "{a0} {b0} {c0}");
    // The same 4-tuple later.
    h.advance(Duration::from_nanos(64));
    assert_eq!(iss_of(&mut h, &mut a), a0.wrapping_add(1));
    h.advance(Duration::from_secs(1) - Duration::from_nanos(64));
    assert_eq!(iss_of(&mut h, &mut a), a0.wrapping_add(15_625_000));
}

/// TSval = ms clock + ts_off; ts_off per address pair with tcp_timestamps = 1, zero with
/// tcp_timestamps = 2; the child keeps it.
#[test]
fn q4_timestamp_offset_per_address_pair() {
    let mut h = Harness::new(cfg(), 128);
    let mut a = Peer::v4(40000);
    let sa = syn_ack(&mut h, &mut a);
    let off = sa.tsval().unwrap().wrapping_sub(now_ms(&h));
    assert_ne!(off, 0, "tcp_timestamps = 1 uses a keyed offset");
    assert_eq!(sa.p.seg.options.timestamps.unwrap().tsecr, a.tsval());
    // Same address pair, another port, 1.5 s later: same offset.
    h.advance(1500 * MS);
    let mut b = Peer::v4(40001);
    let sb = syn_ack(&mut h, &mut b);
    assert_eq!(sb.tsval().unwrap(), sa.tsval().unwrap().wrapping_add(1500));
    // Another client address: another offset.
    let mut c = peer_at("198.18.0.3:40000", v4_server());
    let sc = syn_ack(&mut h, &mut c);
    assert_ne!(sc.tsval().unwrap().wrapping_sub(now_ms(&h)), off);
    // The child carries the offset.
    assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.accept().unwrap().timestamps.unwrap().ts_off, off);

    // tcp_timestamps = 2: TSval is the ms clock.
    let mut h = Harness::new(with(|c| c.timestamps = 2), 128);
    for port in [40000u16, 40001] {
        let mut p = Peer::v4(port);
        let s = syn_ack(&mut h, &mut p);
        assert_eq!(s.tsval(), Some(now_ms(&h)));
        h.advance(1500 * MS);
    }
}

/// the SYN-ACK window (65160 with TS, 64240 without on a 1500-byte IPv4 path) and our
/// window scale (10 with 6.16+ tcp_rmem, 7 with the old 6 MB; 0 when the SYN had no WS).
#[test]
fn q5_receive_window_and_scale_table() {
    /// (v6, settings, SYN TS, SYN WS, window, our shift)
    type Row = (bool, ListenerConfig, bool, bool, u16, Option<u8>);
    let old_rmem = with(|c| c.rmem = [4096, 131072, 6 * 1024 * 1024]);
    let rows: &[Row] = &[
        (false, cfg(), true, true, 65160, Some(10)),
        (false, cfg(), false, true, 64240, Some(10)),
        (false, cfg(), true, false, 65160, None),
        (false, cfg(), false, false, 64240, None),
        (false, old_rmem, true, true, 65160, Some(7)),
        (true, cfg(), true, true, 64260, Some(10)),
        (true, cfg(), false, true, 64800, Some(10)),
    ];
    for &(v6, c, ts, ws, window, shift) in rows {
        let server = if v6 { v6_server() } else { v4_server() };
        let mut h = Harness::on(server, c, 128);
        let mut p = if v6 { Peer::v6(40000) } else { Peer::v4(40000) };
        if !ts {
            p.options.timestamps = None;
        }
        if !ws {
            p.options.wscale = None;
        }
        let sa = syn_ack(&mut h, &mut p);
        assert_eq!(sa.p.seg.window, window, "v6 {v6} ts {ts} ws {ws}");
        assert_eq!(sa.p.seg.options.wscale, shift, "v6 {v6} ts {ts} ws {ws}");
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        let child = h.accept().unwrap();
        assert_eq!(child.rcv_wscale, shift.unwrap_or(0));
        assert_eq!(child.rcv_wnd, u32::from(window));
    }
}

/// insertion counts the request once (qlen, young, live) and arms its timer at 1 s.
#[test]
fn q6_insertion_counts_once_and_arms_one_second_timer() {
    let mut h = Harness::new(cfg(), 128);
    let mut p = Peer::v4(40000);
    let sa = syn_ack(&mut h, &mut p);
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (1, 1, 1));
    assert_eq!(h.worker.requests(), 1);
    let t0 = h.now;
    assert!(h.run_until(t0 + 999 * MS).is_empty(), "not before 1 s");
    let rtx = h.run_until(t0 + 1003 * MS);
    assert_eq!(rtx.len(), 1);
    assert!(rtx[0].0 >= t0 + Duration::from_secs(1));
    assert_eq!(rtx[0].1.seq(), sa.seq());
    assert_eq!((h.qlen(), h.stack.live_requests()), (1, 1));
}

/// Q-6 / D-2 across workers, a documented difference (README, request_table.rs): shards are
/// per worker and a new SYN is never handed over (under a flood every SYN would travel), so a
/// SYN retransmission that RSS delivers to another worker makes a request there too. Each
/// shard stays consistent: qlen counts both, the third ACK completes the handshake on the
/// worker whose SYN-ACK the client answered, and the other request expires by its timer.
#[test]
fn q6_same_tuple_syn_on_another_worker_makes_a_request_there() {
    let sc = StackConfig {
        workers: 2,
        ..StackConfig::default()
    };
    let mut h = Harness::with_stack(sc, v4_server(), cfg(), 128);
    let mut w1 = h.stack.worker(1).unwrap();
    let mut p = Peer::v4(40000);
    syn_ack(&mut h, &mut p);
    assert_eq!((h.qlen(), h.stack.live_requests()), (1, 1));
    h.advance(Duration::from_secs(1));
    let syn = p.syn();
    let mut buf = vec![0u8; FRAME];
    buf[..syn.len()].copy_from_slice(&syn);
    let v = w1.handle_frame(&mut buf, syn.len(), h.now);
    assert!(matches!(v, Verdict::Transmit(_)), "worker 1 answers: {v:?}");
    assert_eq!(
        (h.qlen(), h.stack.live_requests(), w1.requests()),
        (2, 2, 1)
    );
    // The client answers worker 0's SYN-ACK; RSS brings its ACK back to worker 0.
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!((h.qlen(), w1.requests()), (1, 1));
    // Worker 1's request runs out its timer (63 s, plus the lateness of polling every 500 ms,
    // since each re-arm counts from the firing) and leaves qlen exact.
    let mut t = h.now;
    let mut sent = 0;
    while t < h.now + Duration::from_secs(70) {
        t += Duration::from_millis(500);
        while w1.poll_timers(t, &mut buf).is_some() {
            sent += 1;
        }
    }
    assert_eq!(sent, 5, "T-6: five retransmissions, then expiry");
    assert_eq!(
        (h.qlen(), h.young(), h.stack.live_requests(), w1.requests()),
        (0, 0, 0, 0)
    );
}

/// the SYN-ACK goes after insertion; when it cannot be sent the request stays and the
/// timer sends it.
#[test]
fn q7_failed_first_synack_is_resent_by_the_timer() {
    let mut h = Harness::new(cfg(), 128);
    let mut p = Peer::v4(40000).bare();
    let syn = p.syn();
    // A buffer of exactly the SYN: no room for the SYN-ACK's MSS option.
    let mut buf = syn.clone();
    let v = h.worker.handle_frame(&mut buf, syn.len(), h.now);
    assert_eq!(v, Verdict::Drop(DropReason::BufferTooSmall));
    assert_eq!((h.qlen(), h.young(), h.stack.live_requests()), (1, 1, 1));
    assert_eq!(h.stats().get(Mib::OutSegs), 0);
    let t0 = h.now;
    let rtx = h.run_until(t0 + 1003 * MS);
    assert_eq!(rtx.len(), 1);
    let sa = &rtx[0].1;
    assert!(sa.is_synack());
    p.learn(sa);
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.accept().unwrap().iss, sa.seq());
}

// ---------------------------------------------------------------------------------------------
// Section 6: SYN-ACK format.

/// flags SYN|ACK (+ECE with ECN), nothing else (no PSH/URG/CWR echoed); urgent pointer 0.
#[test]
fn x1_synack_flags_and_urgent_pointer() {
    use TcpFlags as F;
    // (SYN flags, urgent pointer in the SYN, expected flags byte)
    let rows: &[(TcpFlags, u16, u8)] = &[
        (F::SYN, 0, 0x12),
        (F(F::SYN.0 | F::URG.0), 0xbeef, 0x12),
        (F(F::SYN.0 | F::PSH.0), 0, 0x12),
        (F(F::SYN.0 | F::ECE.0 | F::CWR.0), 0, 0x52),
        (
            F(F::SYN.0 | F::ECE.0 | F::CWR.0 | F::URG.0 | F::PSH.0),
            7,
            0x52,
        ),
    ];
    for &(flags, urg, want) in rows {
        let mut h = Harness::new(cfg(), 128);
        let p = Peer::v4(40000);
        let mut syn = p.frame(flags, p.isn, SeqNumber(0), p.options, &[]);
        wirebits::set_urgent(&mut syn, urg);
        let x = hdr(h.feed(&syn).reply());
        assert_eq!(x.flags, want, "{flags:?}");
        assert_eq!(x.urgent, 0, "{flags:?}");
        assert_eq!(x.reserved, 0);
    }
}

/// SEQ = ISS, ACK = IRS + 1, window = min(rcv_wnd, 65535), never scaled.
#[test]
fn x2_synack_seq_ack_window() {
    for (server, mut p, window) in [
        (v4_server(), Peer::v4(40000), 65160u16),
        (v6_server(), Peer::v6(40000), 64260),
    ] {
        let mut h = Harness::on(server, cfg(), 128);
        p.isn = SeqNumber(u32::MAX);
        p.options.wscale = Some(14);
        p.window = 1; // the SYN's own window does not matter
        let sa = syn_ack(&mut h, &mut p);
        assert_eq!(sa.ack(), SeqNumber(0), "IRS + 1 wraps");
        assert_eq!(
            sa.p.seg.window, window,
            "unscaled although WS 10 is offered"
        );
        assert_eq!(sa.p.seg.options.wscale, Some(10));
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        let c = h.accept().unwrap();
        assert_eq!(c.iss, sa.seq(), "SEQ = ISS");
        assert_eq!(c.snd_nxt, sa.seq() + 1);
    }
}

/// MSS always (route MSS capped by TCP_MAXSEG, never the peer's); WS, TS, SACK only when
/// the SYN had them (and they are enabled); TS = (now + ts_off, SYN TSval).
#[test]
fn x3_synack_options_follow_the_syn() {
    let full = Peer::v4(40000).options;
    let none = OptionsOut::default();
    let small = OptionsOut {
        mss: Some(500),
        ..OptionsOut::default()
    };
    let ts2 = with(|c| c.timestamps = 2);
    // (v6, settings, SYN options, MSS, WS, SACK, TS)
    let rows: &[(bool, ListenerConfig, OptionsOut, u16, bool, bool, bool)] = &[
        (false, cfg(), none, 1460, false, false, false),
        (false, cfg(), small, 1460, false, false, false),
        (false, cfg(), full, 1460, true, true, true),
        (true, cfg(), full, 1440, true, true, true),
        (
            false,
            with(|c| c.maxseg = 1000),
            full,
            1000,
            true,
            true,
            true,
        ),
        (false, with(|c| c.mtu = 9000), full, 8960, true, true, true),
        (true, with(|c| c.mtu = 9000), full, 8940, true, true, true),
        (
            false,
            with(|c| {
                c.mtu = 9000;
                c.maxseg = 1200
            }),
            full,
            1200,
            true,
            true,
            true,
        ),
        (false, ts2, full, 1460, true, true, true),
        (
            false,
            cfg(),
            OptionsOut {
                sack_permitted: false,
                ..full
            },
            1460,
            true,
            false,
            true,
        ),
        (
            false,
            cfg(),
            OptionsOut {
                wscale: None,
                ..full
            },
            1460,
            false,
            true,
            true,
        ),
        (
            false,
            cfg(),
            OptionsOut {
                timestamps: None,
                ..full
            },
            1460,
            true,
            true,
            false,
        ),
        (
            false,
            with(|c| c.sack = false),
            full,
            1460,
            true,
            false,
            true,
        ),
        (
            false,
            with(|c| c.window_scaling = false),
            full,
            1460,
            false,
            true,
            true,
        ),
        (
            false,
            with(|c| c.timestamps = 0),
            full,
            1460,
            true,
            true,
            false,
        ),
    ];
    for (i, &(v6, c, opts, mss, ws, sack, ts)) in rows.iter().enumerate() {
        let server = if v6 { v6_server() } else { v4_server() };
        let mut h = Harness::on(server, c, 128);
        let mut p = if v6 { Peer::v6(40000) } else { Peer::v4(40000) };
        p.options = opts;
        let sa = syn_ack(&mut h, &mut p);
        let o = sa.p.seg.options;
        assert_eq!(o.mss, Some(mss), "row {i}");
        assert_eq!(o.wscale.is_some(), ws, "row {i}: WS");
        assert_eq!(o.sack_permitted, sack, "row {i}: SACK");
        assert_eq!(o.timestamps.is_some(), ts, "row {i}: TS");
        if let Some(t) = o.timestamps {
            assert_eq!(t.tsecr, 5000, "row {i}: TSecr = SYN TSval");
            if c.timestamps == 2 {
                assert_eq!(t.tsval, now_ms(&h), "row {i}: TSval = now");
            }
        }
    }
}

fn word(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// the option layout, every combination, exact bytes (TSval = now with
/// tcp_timestamps = 2: 1 000 000 ms).
#[test]
fn x4_option_layout_every_combination() {
    let tsval = word(1_000_000);
    let tsecr = word(5000);
    let mss = [2u8, 4, 0x05, 0xb4];
    let ws = [1u8, 3, 3, 10];
    // (WS, SACK, TS) -> bytes
    let rows: Vec<((bool, bool, bool), Vec<u8>)> = vec![
        ((false, false, false), mss.to_vec()),
        ((false, true, false), cat(&[&mss, &[1, 1, 4, 2]])),
        ((true, false, false), cat(&[&mss, &ws])),
        ((true, true, false), cat(&[&mss, &[1, 1, 4, 2], &ws])),
        (
            (false, false, true),
            cat(&[&mss, &[1, 1, 8, 10], &tsval, &tsecr]),
        ),
        (
            (false, true, true),
            cat(&[&mss, &[4, 2, 8, 10], &tsval, &tsecr]),
        ),
        (
            (true, false, true),
            cat(&[&mss, &[1, 1, 8, 10], &tsval, &tsecr, &ws]),
        ),
        (
            (true, true, true),
            cat(&[&mss, &[4, 2, 8, 10], &tsval, &tsecr, &ws]),
        ),
    ];
    for ((w, s, t), bytes) in rows {
        let mut h = Harness::new(with(|c| c.timestamps = 2), 128);
        let mut p = Peer::v4(40000);
        p.options = OptionsOut {
            mss: Some(1460),
            wscale: w.then_some(7),
            sack_permitted: s,
            timestamps: t.then_some(Timestamps {
                tsval: 5000,
                tsecr: 0,
            }),
        };
        let x = hdr(&syn_ack(&mut h, &mut p));
        assert_eq!(x.options, bytes, "WS {w} SACK {s} TS {t}");
        assert_eq!(x.tcp_header_len, 20 + bytes.len());
        assert_eq!(x.options[0], 2, "MSS first, never SACK-permitted");
    }
}

/// all options: 20 bytes, data offset 10, for both families.
#[test]
fn x4_option_layout_all_options() {
    for (server, p, mss) in [
        (v4_server(), Peer::v4(40000), [0x05u8, 0xb4]),
        (v6_server(), Peer::v6(40000), [0x05, 0xa0]),
    ] {
        let mut h = Harness::on(server, with(|c| c.timestamps = 2), 128);
        let mut p = p;
        let x = hdr(&syn_ack(&mut h, &mut p));
        let expect = cat(&[
            &[2, 4],
            &mss,
            &[4, 2, 8, 10],
            &word(1_000_000),
            &word(5000),
            &[1, 3, 3, 10],
        ]);
        assert_eq!(x.options, expect);
        assert_eq!(x.tcp_header_len, 40, "doff 10");
    }
}

/// the IPv4 header of a SYN-ACK: TTL 64 or the listener's IP_TTL, TOS 0 (Not-ECT, the
/// SYN's TOS not reflected, ECN or not), DF, ID 0, no IP options; also on a retransmission.
#[test]
fn x5_ipv4_header_of_synack() {
    let ece_cwr = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ECE.0 | TcpFlags::CWR.0);
    // (settings, SYN TOS, SYN flags, TTL)
    let rows: &[(ListenerConfig, u8, TcpFlags, u8)] = &[
        (cfg(), 0, TcpFlags::SYN, 64),
        (with(|c| c.ttl = 7), 0, TcpFlags::SYN, 7),
        (cfg(), 0xb8, TcpFlags::SYN, 64),
        (cfg(), 0, ece_cwr, 64),
        (with(|c| c.tclass = 0x28), 0, TcpFlags::SYN, 64),
        (
            with(|c| c.syncookies = SyncookieMode::Always),
            0x10,
            ece_cwr,
            64,
        ),
    ];
    for (i, &(c, tos, flags, ttl)) in rows.iter().enumerate() {
        let mut h = Harness::new(c, 128);
        let mut p = Peer::v4(40000);
        p.tos = tos;
        let out = h.feed(&p.frame(flags, p.isn, SeqNumber(0), p.options, &[]));
        let mut replies = vec![out.reply().clone()];
        if c.syncookies != SyncookieMode::Always {
            let t0 = h.now;
            replies.extend(h.run_until(t0 + 1003 * MS).into_iter().map(|(_, r)| r));
            assert_eq!(replies.len(), 2, "row {i}: a retransmission");
        }
        for r in &replies {
            let x = hdr(r);
            assert_eq!(x.ip_header_len, 20, "row {i}");
            assert_eq!(x.protocol, 6);
            assert_eq!(x.ttl, ttl, "row {i}");
            assert_eq!(x.tos, 0, "row {i}");
            assert_eq!(x.flags_frag, 0x4000, "row {i}: DF, offset 0");
            assert_eq!(x.ident, 0, "row {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Section 13: IPv6.

/// V-2: a destination that is not unicast: drop + ListenDrops; an IPv4-mapped source: drop
/// (no ListenDrops).
#[test]
fn v2_ipv6_non_unicast_destination_and_mapped_source() {
    let mut h = Harness::on("[::]:80".parse().unwrap(), cfg(), 128);
    for (i, dst) in ["[ff02::1]:80", "[ff05::1:3]:80"].iter().enumerate() {
        let p = peer_at("[2001:2::2]:40000", dst.parse().unwrap());
        assert_dropped(&h.feed(&p.syn()), DropReason::NotUnicast);
        assert_eq!(h.stats().get(Mib::ListenDrops), i as u64 + 1);
    }
    let p = peer_at("[::ffff:198.18.0.2]:40000", v6_server());
    assert_dropped(&h.feed(&p.syn()), DropReason::V4MappedSource);
    let s = h.stats();
    assert_eq!(s.get(Mib::ListenDrops), 2);
    assert_eq!(s.get(Mib::OutSegs), 0);
    assert_eq!(s.get(Mib::OutRsts), 0);
    assert_eq!((h.qlen(), h.stack.live_requests()), (0, 0));
    // A unicast destination on the same wildcard listener is answered.
    let mut p = peer_at("[2001:2::2]:40000", v6_server());
    syn_ack(&mut h, &mut p);
}

/// V-3 (and section 1): the default peer MSS without an MSS option (or with MSS 0) is 536 for
/// IPv4 and 1220 for IPv6.
#[test]
fn v3_default_peer_mss_per_family() {
    // (v6, SYN MSS option, child MSS)
    let rows: &[(bool, Option<&[u8]>, u16)] = &[
        (false, None, 536),
        (false, Some(&[2, 4, 0, 0]), 536),
        (true, None, 1220),
        (true, Some(&[2, 4, 0, 0]), 1220),
        (true, Some(&[2, 4, 0x23, 0x28]), 9000),
    ];
    for &(v6, mss, want) in rows {
        let server = if v6 { v6_server() } else { v4_server() };
        let mut h = Harness::on(server, cfg(), 128);
        let mut p = if v6 { Peer::v6(40000) } else { Peer::v4(40000) };
        p.options = OptionsOut::default();
        let out = h.feed(&wirebits::syn_with_options(&p, mss.unwrap_or(&[])));
        p.learn(out.reply());
        assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
        assert_eq!(h.accept().unwrap().mss, want, "v6 {v6} {mss:?}");
    }
}

/// V-4: the ISS hashes the full 128-bit addresses: clients that differ only in high-order
/// address bits get different ISS at the same instant.
#[test]
fn v4_iss_hashes_full_ipv6_addresses() {
    let mut h = Harness::on(v6_server(), cfg(), 128);
    let addrs = [
        "[2001:2::2]:40000",
        "[2001:3::2]:40000",       // differs in bits 16..32
        "[2001:2:0:1::2]:40000",   // differs in bits 48..64
        "[3001:2::2]:40000",       // differs in the top bits
        "[2001:2::1:0:0:2]:40000", // differs in bits 64..96
    ];
    let mut seen = Vec::new();
    for a in addrs {
        let mut p = peer_at(a, v6_server());
        seen.push(syn_ack(&mut h, &mut p).seq().0);
    }
    for i in 0..seen.len() {
        for j in i + 1..seen.len() {
            assert_ne!(seen[i], seen[j], "{} vs {}", addrs[i], addrs[j]);
        }
    }
}

/// V-5: the IPv6 SYN-ACK: the listener's traffic class and hop limit; a non-zero 20-bit flow
/// label per request, new on each retransmission; no extension header (so no DF/ID).
#[test]
fn v5_ipv6_synack_traffic_class_hop_limit_flow_label() {
    // (settings, hop limit, traffic class)
    let rows: &[(ListenerConfig, u8, u8)] = &[
        (cfg(), 64, 0),
        (
            with(|c| {
                c.ttl = 9;
                c.tclass = 0x28
            }),
            9,
            0x28,
        ),
    ];
    for &(c, hop, tc) in rows {
        let mut h = Harness::on(v6_server(), c, 128);
        let mut a = Peer::v6(40000);
        let first = hdr(&syn_ack(&mut h, &mut a));
        let mut b = Peer::v6(40001);
        let other = hdr(&syn_ack(&mut h, &mut b));
        // A duplicate SYN and the timer retransmit.
        let dup = hdr(h.feed(&a.syn()).reply());
        let t0 = h.now;
        let timer: Vec<_> = h
            .run_until(t0 + 1003 * MS)
            .into_iter()
            .map(|(_, r)| hdr(&r))
            .collect();
        assert_eq!(timer.len(), 2);
        for x in [&first, &other, &dup].into_iter().chain(timer.iter()) {
            assert!(x.v6);
            assert_eq!(x.ip_header_len, 40);
            assert_eq!(x.protocol, 6, "next header TCP, no extension header");
            assert_eq!(x.ttl, hop);
            assert_eq!(x.tos, tc);
            assert!(x.flow_label != 0 && x.flow_label <= 0xfffff);
        }
        assert_ne!(first.flow_label, other.flow_label, "per request");
        assert_ne!(first.flow_label, dup.flow_label, "new on retransmission");
        assert!(timer.iter().all(|t| t.flow_label != first.flow_label));
    }
    // The cookie SYN-ACK too.
    let mut h = Harness::on(
        v6_server(),
        with(|c| {
            c.syncookies = SyncookieMode::Always;
            c.ttl = 5;
            c.tclass = 0x20
        }),
        128,
    );
    let mut p = Peer::v6(40000);
    let x = hdr(&syn_ack(&mut h, &mut p));
    assert_eq!((x.ttl, x.tos, x.ip_header_len), (5, 0x20, 40));
    assert_ne!(x.flow_label, 0);
}
