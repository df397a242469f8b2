//! Spec section 7: the SYN-ACK timer (T-1..T-8), with the counters of section 14 it touches
//! (TCPTimeouts, TCPSynRetrans, RetransSegs, OutSegs, OutRsts) and the R-8 half of
//! TCP_DEFER_ACCEPT that only shows over time.
//!
//! Time is virtual. `Harness::run_until` steps 1 ms and polls the timers; the wheel fires a
//! timer within one ~1.05 ms tick after it is due, so with 1 ms steps a firing due at `t`
//! (a whole millisecond) is seen in [t, t + 2 ms]. A re-armed timer is due at its actual
//! firing time plus the RTO (`mod_timer(jiffies + timeo)`), so lateness adds up along a
//! timeline; each step is checked against the previous actual firing, and the whole
//! timeline against the nominal one with k * 2 ms of slack after k firings.
mod util;
use util::*;

use std::time::Duration;
use synline_core::{DropReason, ListenerConfig, Mib, Verdict};
use synline_wire::TcpFlags;

/// The most a 1 ms-stepped poll can be late for a whole-millisecond due time.
const SLACK: Duration = Duration::from_millis(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A listener with `cfg` and backlog 128, a Linux-like client, its SYN answered at `t0`.
fn requested(cfg: ListenerConfig) -> (Harness, Peer, Reply) {
    let mut h = Harness::new(cfg, 128);
    let mut p = Peer::v4(40000);
    let synack = h.feed(&p.syn()).reply().clone();
    p.learn(&synack);
    assert_eq!((h.qlen(), h.young()), (1, 1));
    (h, p, synack)
}

/// Asserts that `fired` (times of successive firings) follow `t0` with these RTOs: each in
/// [previous + rto, previous + rto + 2 ms], and the k-th within k * 2 ms of the nominal
/// timeline.
fn assert_timeline(t0: Duration, fired: &[Duration], rtos_secs: &[u64]) {
    assert_eq!(
        fired.len(),
        rtos_secs.len(),
        "firings {:?} for RTOs {:?}",
        fired.iter().map(|t| *t - t0).collect::<Vec<_>>(),
        rtos_secs
    );
    let (mut prev, mut nominal) = (t0, t0);
    for (k, (&t, &rto)) in fired.iter().zip(rtos_secs).enumerate() {
        let due = prev + secs(rto);
        nominal += secs(rto);
        assert!(
            t >= due && t <= due + SLACK,
            "firing {k} at {:?}, due {:?} (+2 ms)",
            t - t0,
            due - t0
        );
        let drift = SLACK * (k as u32 + 1);
        assert!(
            t >= nominal && t <= nominal + drift,
            "firing {k} at {:?}, nominal {:?}",
            t - t0,
            nominal - t0
        );
        prev = t;
    }
}

/// Checks that the only live request disappears at its due time `due` (within the 2 ms of
/// a poll) and not before, with no frame sent on the way.
fn assert_expires_at(h: &mut Harness, due: Duration) {
    assert_eq!(h.worker.requests(), 1);
    let early = h.run_until(due - ms(1));
    assert!(early.is_empty(), "nothing is sent before the expiry");
    assert_eq!(h.worker.requests(), 1, "still there 1 ms before {due:?}");
    let late = h.run_until(due + SLACK);
    assert!(late.is_empty(), "T-4: an expiring request sends nothing");
    assert_eq!(h.worker.requests(), 0, "gone by {due:?} + 2 ms");
}

/// Times of the SYN-ACKs among `(time, frame)` that go to `port`.
fn times_to(frames: &[(Duration, Reply)], port: u16) -> Vec<Duration> {
    frames
        .iter()
        .filter(|(_, r)| r.p.seg.dst_port == port)
        .map(|(t, _)| *t)
        .collect()
}

fn defer(secs: u32) -> ListenerConfig {
    ListenerConfig {
        defer_accept_secs: secs,
        ..ListenerConfig::default()
    }
}

/// A bare third ACK (no data, no FIN) as the client sends it.
fn bare_ack(p: &Peer) -> Vec<u8> {
    p.third_ack(&[])
}

// ---------------------------------------------------------------------------------------
// T-3, T-4, T-5, T-6 (and X-6): the default timeline.

#[test]
fn t6_default_timeline() {
    let (mut h, p, first) = requested(ListenerConfig::default());
    let t0 = h.now;

    // T-5: the first firing makes the request old: young falls, qlen stays.
    let a = h.run_until(t0 + ms(1500));
    assert_eq!(a.len(), 1);
    assert_eq!(
        (h.qlen(), h.young()),
        (1, 0),
        "T-5: young-- at the first timeout"
    );

    // Everything up to just before the nominal expiry.
    let mut frames = a;
    frames.extend(h.run_until(t0 + secs(63) - ms(1)));
    let fired: Vec<Duration> = frames.iter().map(|(t, _)| *t).collect();
    // T-6: SYN-ACKs at 0 (the reply above), 1, 3, 7, 15, 31 s.
    assert_timeline(t0, &fired, &[1, 2, 4, 8, 16]);

    // same ISS, ACK and options; fresh TSval (ms clock + the same offset).
    let fo = first.p.seg.options;
    for (t, r) in &frames {
        assert_eq!(r.flags(), TcpFlags::SYN_ACK);
        assert_eq!(r.seq(), first.seq(), "same ISS");
        assert_eq!(r.ack(), p.isn + 1);
        assert_eq!(r.p.seg.window, first.p.seg.window);
        let o = r.p.seg.options;
        assert_eq!(
            (o.mss, o.wscale, o.sack_permitted),
            (fo.mss, fo.wscale, fo.sack_permitted)
        );
        let ts = o.timestamps.expect("TS kept");
        let elapsed = (*t - t0).as_millis() as u32;
        assert_eq!(ts.tsval, first.tsval().unwrap().wrapping_add(elapsed));
        assert_eq!(ts.tsecr, p.tsval(), "TSecr is still the SYN's TSval");
    }

    // T-4: the sixth firing (num_timeout 5 >= 5) expires the request, 32 s after the last.
    assert_expires_at(&mut h, fired[4] + secs(32));

    let s = h.stats();
    assert_eq!(s.get(Mib::TCPTimeouts), 6, "T-3: every firing");
    assert_eq!(s.get(Mib::TCPSynRetrans), 5);
    assert_eq!(s.get(Mib::RetransSegs), 5);
    assert_eq!(
        s.get(Mib::OutSegs),
        6,
        "the SYN-ACK and five retransmissions"
    );
    assert_eq!(s.get(Mib::OutRsts), 0, "T-4: no RST at expiry");
    assert_eq!((h.qlen(), h.young()), (0, 0));
    assert_eq!(h.stack.live_requests(), 0);
}

/// TCP_SYNCNT / tcp_synack_retries sets R_max (with no pruning).
#[test]
fn t4_synack_retries_sets_expiry() {
    // (R_max, RTOs of the retransmissions, the RTO after which it expires)
    let table: &[(u8, &[u64], u64)] = &[
        (1, &[1], 2),
        (2, &[1, 2], 4),
        (3, &[1, 2, 4], 8),
        (5, &[1, 2, 4, 8, 16], 32),
    ];
    for &(retries, rtos, last) in table {
        let cfg = ListenerConfig {
            synack_retries: retries,
            ..ListenerConfig::default()
        };
        let (mut h, _p, _) = requested(cfg);
        let t0 = h.now;
        let nominal: u64 = rtos.iter().sum::<u64>() + last;
        let frames = h.run_until(t0 + secs(nominal) - ms(1));
        let fired: Vec<Duration> = frames.iter().map(|(t, _)| *t).collect();
        assert_timeline(t0, &fired, rtos);
        assert_expires_at(&mut h, *fired.last().unwrap() + secs(last));
        let s = h.stats();
        assert_eq!(
            s.get(Mib::TCPSynRetrans),
            u64::from(retries),
            "R_max {retries}"
        );
        assert_eq!(s.get(Mib::TCPTimeouts), u64::from(retries) + 1);
    }
}

/// tcp_synack_retries = 0 is the sysctl's "no retransmission": the request expires at the
/// first firing, one RTO (1 s) after the SYN-ACK, having sent nothing more. (It used to be
/// taken as "unset" and become 5.)
#[test]
fn t4_zero_synack_retries_sends_no_retransmission() {
    let cfg = ListenerConfig {
        synack_retries: 0,
        ..ListenerConfig::default()
    };
    let (mut h, _p, _) = requested(cfg);
    let t0 = h.now;
    assert_expires_at(&mut h, t0 + secs(1));
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPSynRetrans), 0);
    assert_eq!(s.get(Mib::TCPTimeouts), 1);
}

/// T-5: the RTO doubles per firing and is capped at 120 s.
#[test]
fn t5_backoff_capped_at_120s() {
    let cfg = ListenerConfig {
        synack_retries: 8,
        ..ListenerConfig::default()
    };
    let (mut h, _p, _) = requested(cfg);
    let t0 = h.now;
    // 1 + 2 + 4 + ... + 64 = 127, then 120 (not 128): SYN-ACKs at 1, 3, ..., 127, 247 s.
    let frames = h.run_until(t0 + secs(367) - ms(1));
    let fired: Vec<Duration> = frames.iter().map(|(t, _)| *t).collect();
    assert_timeline(t0, &fired, &[1, 2, 4, 8, 16, 32, 64, 120]);
    assert_expires_at(&mut h, fired[7] + secs(120));
    assert_eq!(h.stats().get(Mib::TCPTimeouts), 9);
}

// ---------------------------------------------------------------------------------------
// T-1: the listener closed before the timer fires.

#[test]
fn t1_listener_closed_before_timer_fires() {
    let (mut h, _a, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    // A: one timeout behind it (old); B: young.
    assert_eq!(h.run_until(t0 + ms(1500)).len(), 1);
    let b = Peer::v4(40001);
    assert!(h.feed(&b.syn()).reply().is_synack());
    assert_eq!((h.qlen(), h.young()), (2, 1));
    let retrans = h.stats().get(Mib::TCPSynRetrans);

    let l = h.listener().clone();
    let orphans = h.sock.close();
    assert!(orphans.is_empty());
    assert!(!l.is_listening());
    assert_eq!(
        h.stack.live_requests(),
        2,
        "A-3: requests are not swept at close"
    );

    // B fires first (due t0 + 2.5 s): dropped silently, and it was young.
    let f = h.run_until(t0 + ms(2700));
    assert!(f.is_empty(), "T-1: no SYN-ACK for a closed listener");
    assert_eq!((l.qlen(), l.young()), (1, 0), "B: qlen--, young--");
    // A fires (due t0 + 3 s): dropped silently, young untouched (it was already old).
    let f = h.run_until(t0 + ms(3200));
    assert!(f.is_empty());
    assert_eq!((l.qlen(), l.young()), (0, 0), "A: qlen-- only");
    assert_eq!(h.worker.requests(), 0);
    assert_eq!(h.stack.live_requests(), 0);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPSynRetrans), retrans);
    assert_eq!(s.get(Mib::OutRsts), 0, "silently");
}

// ---------------------------------------------------------------------------------------
// T-2: young/qlen pruning, through the engine.

/// The T-2 probe: a request P made at t0 reaches its firing with num_timeout = k at
/// F = t0 + (2^(k+1) - 1) s. Just before F, `n_old` requests that have timed out once or
/// twice (made at F - 3.5 s) and `n_young` young requests (made at F - 0.5 s) sit beside it,
/// so at P's firing qlen = 1 + n_old + n_young and young = n_young, and no other timer fires
/// within 100 ms of F. Returns whether P expired at that firing (T-4 with the pruned R_max).
fn t2_probe(backlog: i32, k: u32, n_old: u16, n_young: u16) -> bool {
    let mut h = Harness::new(ListenerConfig::default(), backlog);
    let t0 = h.now;
    let probe = Peer::v4(1000);
    assert!(h.feed(&probe.syn()).reply().is_synack());
    let f = t0 + secs((1 << (k + 1)) - 1);

    h.run_until(f - ms(3500));
    assert_eq!(h.qlen(), 1, "the probe is alone until the fillers come");
    for i in 0..n_old {
        assert!(h.feed(&Peer::v4(2000 + i).syn()).reply().is_synack());
    }
    h.run_until(f - ms(500));
    for i in 0..n_young {
        assert!(h.feed(&Peer::v4(3000 + i).syn()).reply().is_synack());
    }
    h.run_until(f - ms(100));
    let q = 1 + u32::from(n_old) + u32::from(n_young);
    assert_eq!(
        (h.qlen(), h.young()),
        (q, u32::from(n_young)),
        "setup: qlen and young at the probe's firing"
    );
    assert_eq!(h.worker.requests_of(h.listener()), (q, u32::from(n_young)));

    let timeouts = h.stats().get(Mib::TCPTimeouts);
    let frames = h.run_until(f + ms(100));
    assert_eq!(
        h.stats().get(Mib::TCPTimeouts),
        timeouts + 1,
        "only the probe fires near F"
    );
    let to_probe = times_to(&frames, 1000);
    assert_eq!(frames.len(), to_probe.len());
    let expired = to_probe.is_empty();
    assert_eq!(h.qlen(), q - u32::from(expired));
    expired
}

#[test]
fn t2_young_qlen_pruning() {
    // (B, k = num_timeout at the probe's firing, old, young, expired). With the default
    // R_max 5, the probe expires exactly when k >= the pruned R_max:
    //   not crowded (2q <= max(8, B)): 5;  q < 2y: 5;  2y <= q < 4y: 4;  4y <= q < 8y: 3;
    //   q >= 8y (y = 0 included): 2.
    let table: &[(i32, u32, u16, u16, bool)] = &[
        // k = 2 expires only with R_max 2.
        (16, 2, 8, 0, true),   // q 9 > B/2, y 0
        (16, 2, 7, 0, false),  // q 8: 2q = 16 is not > max(8, 16)
        (16, 2, 7, 1, true),   // q 9 >= 8y = 8
        (16, 2, 6, 2, false),  // q 9: 4y <= q < 8y gives 3
        (16, 2, 13, 2, true),  // q 16 = 8y
        (16, 2, 12, 2, false), // q 15 < 8y
        // k = 3 expires with R_max 3 or less.
        (16, 3, 6, 2, true),  // q 9 >= 4y = 8
        (16, 3, 5, 3, false), // q 9: 2y <= q < 4y gives 4
        // k = 4 expires with R_max 4 or less.
        (16, 4, 4, 4, true),  // q 9 >= 2y = 8
        (16, 4, 3, 5, false), // q 9 < 2y = 10
        (16, 4, 7, 0, false), // not crowded, even with y 0
        // Small B: the threshold is max(8, B) = 8.
        (4, 2, 4, 0, true),  // q 5 = B + 1: 2q = 10 > 8
        (4, 2, 3, 0, false), // q 4: 2q = 8
    ];
    for &(b, k, old, young, expired) in table {
        assert_eq!(
            t2_probe(b, k, old, young),
            expired,
            "B {b}, num_timeout {k}, qlen {}, young {young}",
            1 + old + young
        );
    }
}

/// T-2 "affects only this request's decision at this firing": with five requests made
/// together at B = 4 (q 5, crowded), all old, the first to fire with num_timeout 2 sees
/// y = 0 and expires; that makes q 4 (2q = 8, not crowded) for the others, which keep the
/// default budget and follow the normal timeline to 63 s.
#[test]
fn t2_pruning_decided_per_firing() {
    let mut h = Harness::new(ListenerConfig::default(), 4);
    let t0 = h.now;
    for port in 1..=5 {
        assert!(h.feed(&Peer::v4(port).syn()).reply().is_synack());
    }
    assert_eq!((h.qlen(), h.young()), (5, 5));
    let f = h.run_until(t0 + secs(6));
    assert_eq!(
        f.len(),
        10,
        "firings at 1 and 3 s never expire (R_max >= 2)"
    );
    assert_eq!((h.qlen(), h.young()), (5, 0));
    let f = h.run_until(t0 + secs(8));
    assert_eq!(f.len(), 4, "one expired at 7 s, four retransmitted");
    assert_eq!(h.qlen(), 4);
    let f = h.run_until(t0 + secs(62));
    assert_eq!(f.len(), 8, "the four survivors at 15 and 31 s");
    assert_eq!(h.qlen(), 4);
    h.run_until(t0 + secs(64));
    assert_eq!(h.qlen(), 0, "the survivors expire with the default budget");
    assert_eq!(h.stats().get(Mib::TCPSynRetrans), 10 + 4 + 8);
}

// ---------------------------------------------------------------------------------------
// T-4: a retransmission that cannot be written.

#[test]
fn t4_failed_retransmit_drops_unacked_request() {
    let (mut h, _p, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    h.now = t0 + secs(1) + SLACK;
    let mut tiny = [0u8; 40];
    assert_eq!(h.worker.poll_timers(h.now, &mut tiny), None);
    assert_eq!(h.worker.requests(), 0, "acked == 0: dropped");
    assert_eq!((h.qlen(), h.young()), (0, 0));
    assert_eq!(h.stack.live_requests(), 0);
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPTimeouts), 1);
    assert_eq!(s.get(Mib::TCPSynRetrans), 0);
    assert_eq!(s.get(Mib::OutSegs), 1, "only the first SYN-ACK went out");
}

#[test]
fn t4_failed_retransmit_keeps_acked_request() {
    // TCP_DEFER_ACCEPT 1 s (D = 1): a bare ACK sets acked; at num_timeout 0 >= D - 1 the
    // timer resends, and that resend fails.
    let (mut h, p, _) = requested(defer(1));
    let t0 = h.now;
    h.advance(ms(100));
    assert_eq!(
        h.feed(&bare_ack(&p)).verdict,
        Verdict::Drop(DropReason::DeferAccept)
    );
    h.now = t0 + secs(1) + SLACK;
    let mut tiny = [0u8; 40];
    assert_eq!(h.worker.poll_timers(h.now, &mut tiny), None);
    assert_eq!(
        h.worker.requests(),
        1,
        "acked: kept despite the failed resend"
    );
    assert_eq!((h.qlen(), h.young()), (1, 0), "T-5 still ran");
    assert_eq!(h.stats().get(Mib::TCPSynRetrans), 0);
    // T-5: re-armed at the firing + 2 s; that one is sent.
    let fired = h.now;
    let f = h.run_until(fired + secs(2) + SLACK);
    assert_eq!(times_to(&f, p.addr.port()).len(), 1);
    assert!(f[0].0 >= fired + secs(2));
}

// ---------------------------------------------------------------------------------------
// T-7 and R-8: TCP_DEFER_ACCEPT.

#[test]
fn t7_defer_accept_timeline() {
    // (defer_accept_secs, bare ACK before the first firing, SYN-ACK times (s, nominal),
    //  RTO before expiry, firings (T-3: TCPTimeouts, quiet ones included))
    // D = secs_to_retrans: 5 s -> 3, 100 s -> 7, 1 s -> 1.
    let table: &[(u32, bool, &[u64], u64, u64)] = &[
        // Not acked: defer changes nothing.
        (5, false, &[1, 3, 7, 15, 31], 32, 6),
        // Acked, D = 3: quiet until num_timeout >= D - 1 = 2 (the 7 s firing), expiry at
        // num_timeout 5 (>= R_max and >= D).
        (5, true, &[7, 15, 31], 32, 6),
        // Acked, D = 7 > R_max: quiet until num_timeout 6 (127 s), expiry needs
        // num_timeout >= 7 (127 + 120 s).
        (100, true, &[127], 120, 8),
        // Acked, D = 1: resends from num_timeout 0 on.
        (1, true, &[1, 3, 7, 15, 31], 32, 6),
    ];
    for &(d, acked, synacks, last, firings) in table {
        let (mut h, p, _) = requested(defer(d));
        let t0 = h.now;
        if acked {
            h.advance(ms(100));
            assert_eq!(
                h.feed(&bare_ack(&p)).verdict,
                Verdict::Drop(DropReason::DeferAccept)
            );
        }
        let mut frames = h.run_until(t0 + ms(1500));
        assert_eq!(
            (h.qlen(), h.young()),
            (1, 0),
            "defer {d} s, acked {acked}: T-5 young-- at the first firing, resent or not"
        );
        let end = *synacks.last().unwrap() + last;
        frames.extend(h.run_until(t0 + secs(end) - ms(1)));
        let fired: Vec<Duration> = frames.iter().map(|(t, _)| *t).collect();
        assert_eq!(fired.len(), synacks.len(), "defer {d} s, acked {acked}");
        for (k, (&t, &nominal)) in fired.iter().zip(synacks).enumerate() {
            let n = t0 + secs(nominal);
            assert!(
                t >= n && t <= n + ms(20),
                "defer {d} s, acked {acked}: SYN-ACK {k} at {:?}, nominal {nominal} s",
                t - t0
            );
        }
        assert_eq!(h.worker.requests(), 1);
        h.run_until(t0 + secs(end) + ms(40));
        assert_eq!(
            h.worker.requests(),
            0,
            "defer {d} s, acked {acked}: expired"
        );
        assert_eq!((h.qlen(), h.young()), (0, 0));
        assert_eq!(h.stats().get(Mib::TCPSynRetrans), synacks.len() as u64);
        assert_eq!(
            h.stats().get(Mib::TCPTimeouts),
            firings,
            "defer {d} s, acked {acked}"
        );
    }
}

#[test]
fn t7_r8_bare_ack_makes_child_once_num_timeout_reaches_d() {
    // D = 3 (5 s): bare ACKs are dropped while num_timeout < 3 (before the 7 s firing).
    let (mut h, p, _) = requested(defer(5));
    let t0 = h.now;
    let rows: &[(u64, bool)] = &[(500, false), (1500, false), (3500, false), (7500, true)];
    let mut drops = 0;
    for &(at, child) in rows {
        h.run_until(t0 + ms(at));
        let out = h.feed(&bare_ack(&p));
        if child {
            assert_eq!(out.verdict, Verdict::Consumed, "at {at} ms");
        } else {
            drops += 1;
            assert_eq!(
                out.verdict,
                Verdict::Drop(DropReason::DeferAccept),
                "at {at} ms"
            );
            assert!(out.reply.is_none());
            assert_eq!(h.stats().get(Mib::TCPDeferAcceptDrop), drops);
            assert_eq!(h.qlen(), 1);
        }
    }
    let c = h.accept().expect("child");
    assert!(c.data.is_empty());
    assert_eq!((h.qlen(), h.young()), (0, 0));
    assert_eq!(h.stats().get(Mib::PassiveOpens), 1);

    // D = 1 (1 s): deferred before the first firing, accepted after it.
    let (mut h, p, _) = requested(defer(1));
    let t0 = h.now;
    h.advance(ms(500));
    assert_eq!(
        h.feed(&bare_ack(&p)).verdict,
        Verdict::Drop(DropReason::DeferAccept)
    );
    let f = h.run_until(t0 + ms(1500));
    assert_eq!(f.len(), 1, "acked, num_timeout 0 >= D - 1: resent");
    assert_eq!(h.feed(&bare_ack(&p)).verdict, Verdict::Consumed);
}

// ---------------------------------------------------------------------------------------
// T-8: a duplicate SYN resets the expiry.

/// The duplicate SYN of `p`, answered with a SYN-ACK.
fn dup_syn(h: &mut Harness, p: &Peer) {
    let out = h.feed(&p.syn());
    assert!(out.reply().is_synack(), "R-2: SYN-ACK again");
}

#[test]
fn t8_duplicate_syn_resets_expiry_young() {
    let (mut h, p, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    h.run_until(t0 + ms(600));
    dup_syn(&mut h, &p);
    assert_eq!(
        (h.qlen(), h.young()),
        (1, 1),
        "num_timeout and young unchanged"
    );
    // Was due at t0 + 1 s; now at t0 + 0.6 s + 1 s.
    let f = h.run_until(t0 + ms(1599));
    assert!(f.is_empty(), "T-8: nothing at the old due time");
    assert_eq!(h.young(), 1);
    let f = h.run_until(t0 + ms(1600) + SLACK);
    assert_eq!(f.len(), 1);
    assert_eq!(h.young(), 0);
    // Then the backoff continues from num_timeout 1: 2 s later.
    let fired = f[0].0;
    let f = h.run_until(fired + secs(2) + SLACK);
    assert_eq!(f.len(), 1);
    assert!(f[0].0 >= fired + secs(2));
}

#[test]
fn t8_duplicate_syn_resets_expiry_with_current_rto() {
    let (mut h, p, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    // First firing at ~1 s; num_timeout 1, next due ~3 s.
    assert_eq!(h.run_until(t0 + ms(2500)).len(), 1);
    dup_syn(&mut h, &p);
    assert_eq!(h.young(), 0);
    // Now due at 2.5 s + (1 s << 1).
    let f = h.run_until(t0 + ms(4499));
    assert!(f.is_empty(), "not at 3 s any more");
    let f = h.run_until(t0 + ms(4500) + SLACK);
    assert_eq!(f.len(), 1);
}

#[test]
fn t8_duplicate_syn_postpones_expiry_without_new_retries() {
    let (mut h, p, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    // Five retransmissions by 31 s; num_timeout 5, expiry due ~63 s.
    assert_eq!(h.run_until(t0 + secs(62)).len(), 5);
    dup_syn(&mut h, &p);
    // Expiry moves to 62 s + (1 s << 5) = 94 s; num_timeout is still 5, so that firing
    // expires the request with no further SYN-ACK.
    let f = h.run_until(t0 + secs(94) - ms(1));
    assert!(f.is_empty());
    assert_eq!(h.worker.requests(), 1, "not expired at 63 s");
    let f = h.run_until(t0 + secs(94) + SLACK);
    assert!(f.is_empty());
    assert_eq!(h.worker.requests(), 0);
    let s = h.stats();
    assert_eq!(
        s.get(Mib::TCPSynRetrans),
        6,
        "five by the timer, one for the SYN"
    );
    assert_eq!(s.get(Mib::TCPTimeouts), 6);
}

#[test]
fn t8_rate_limited_duplicate_syn_does_not_reset_expiry() {
    let (mut h, p, _) = requested(ListenerConfig::default());
    let t0 = h.now;
    h.run_until(t0 + ms(300));
    dup_syn(&mut h, &p);
    // 400 ms after the answered one: rate-limited, so the timer stays at 1.3 s.
    h.run_until(t0 + ms(700));
    let out = h.feed(&p.syn());
    assert_eq!(out.verdict, Verdict::Drop(DropReason::RateLimited));
    assert_eq!(h.stats().get(Mib::TCPACKSkippedSynRecv), 1);
    let f = h.run_until(t0 + ms(1299));
    assert!(f.is_empty());
    let f = h.run_until(t0 + ms(1300) + SLACK);
    assert_eq!(f.len(), 1, "due at 0.3 s + 1 s, not 0.7 s + 1 s");
}
