//! Fleet mode (`StackConfig::fleet`): several hosts behind ECMP share the cookie secrets, and
//! every SYN-ACK, stateful ones included, carries a cookie (K-1) and, with timestamps, the
//! options in its TSval (K-3), so the host that gets the third ACK makes the child even when
//! another host sent the SYN-ACK (L-1 always looks for cookies). Two harnesses with the same
//! secrets stand for two hosts.

mod util;
use util::*;

use std::time::Duration;
use synline_core::{ListenerConfig, Mib, StackConfig};

fn host(fleet: bool) -> Harness {
    let sc = StackConfig {
        fleet,
        ..StackConfig::default()
    };
    Harness::with_stack(sc, v4_server(), ListenerConfig::default(), 128)
}

/// K-1, K-3, L-1: host A keeps a request and sends the SYN-ACK; the third ACK reaches host B,
/// which has no request and makes the child from the cookie, with the options A offered.
#[test]
fn fleet_third_ack_on_another_host_makes_the_child() {
    let (mut a, mut b) = (host(true), host(true));
    let mut p = Peer::v4(40000);
    let synack = a.feed(&p.syn()).reply().clone();
    p.learn(&synack);
    assert_eq!(a.qlen(), 1, "stateful on A");
    assert_eq!(a.stats().get(Mib::SyncookiesSent), 0);
    b.now = a.now + Duration::from_millis(5);
    assert!(b.feed(&p.third_ack(b"GET /")).reply.is_none());
    let c = b.accept().expect("B made the child from A's SYN-ACK");
    assert!(c.from_cookie);
    assert_eq!((c.iss, c.irs), (p.iss, p.isn));
    assert_eq!(c.snd_wscale, Some(7), "the shift A offered, from the TSval");
    assert!(c.sack);
    assert_eq!(c.data, b"GET /");
    assert_eq!(b.stats().get(Mib::SyncookiesRecv), 1);
    // A's own third ACK path is unchanged: the request completes there too.
    assert!(a.feed(&p.third_ack(b"")).reply.is_none());
    assert!(a.accept().is_some());
}

/// The control: without fleet mode host B answers the same ACK with an RST (L-2), as Linux
/// does; so does a fleet host whose secrets differ.
#[test]
fn without_fleet_mode_the_other_host_resets() {
    let (mut a, mut b) = (host(false), host(false));
    let mut p = Peer::v4(40001);
    let synack = a.feed(&p.syn()).reply().clone();
    p.learn(&synack);
    let out = b.feed(&p.third_ack(b""));
    assert!(out.reply().is_rst());
    assert!(b.accept().is_none());
}

/// K-3 in fleet mode: without timestamps a stateful SYN-ACK offers MSS only (the cookie has no
/// room for the rest); with them, every SYN-ACK's TSval, retransmissions included, carries the
/// options, so an ACK echoing a retransmitted SYN-ACK is valid on another host too.
#[test]
fn fleet_synacks_encode_what_a_cookie_can_carry() {
    let mut a = host(true);
    let mut p = Peer::v4(40002);
    p.options.timestamps = None;
    let sa = a.feed(&p.syn()).reply().clone();
    let o = sa.p.seg.options;
    assert_eq!((o.wscale, o.sack_permitted), (None, false), "{o:?}");
    assert!(o.mss.is_some());

    let (mut a, mut b) = (host(true), host(true));
    let mut p = Peer::v4(40003);
    let first = a.feed(&p.syn()).reply().clone();
    a.advance(Duration::from_millis(1100));
    let rtx = a.timers();
    assert_eq!(rtx.len(), 1, "one retransmission at 1 s");
    assert_eq!(rtx[0].seq(), first.seq(), "same ISS (the cookie)");
    assert_eq!(
        rtx[0].tsval().unwrap() & 0x3f,
        first.tsval().unwrap() & 0x3f
    );
    p.learn(&rtx[0]);
    b.now = a.now;
    b.feed(&p.third_ack(b""));
    let c = b
        .accept()
        .expect("child from the retransmitted SYN-ACK's echo");
    assert_eq!(c.snd_wscale, Some(7));
}

/// `cookie_clock_offset`: hosts whose monotonic clocks differ agree on the cookie minute when
/// their offsets put them on the same wall clock.
#[test]
fn fleet_cookie_minute_follows_the_shared_clock() {
    let at = |offset: u64| {
        Harness::with_stack(
            StackConfig {
                fleet: true,
                cookie_clock_offset: Duration::from_secs(offset),
                ..StackConfig::default()
            },
            v4_server(),
            ListenerConfig::default(),
            128,
        )
    };
    // Same wall clock: A's monotonic 1000 s + 5000, B's 4000 s + 2000.
    let (mut a, mut b) = (at(5000), at(2000));
    b.now = Duration::from_secs(4000);
    let mut p = Peer::v4(40004);
    let sa = a.feed(&p.syn()).reply().clone();
    p.learn(&sa);
    b.feed(&p.third_ack(b""));
    assert!(b.accept().is_some(), "same minute on the shared clock");

    // Ten minutes apart on the shared clock: the cookie is too old.
    let (mut a, mut c) = (at(5000), at(5600));
    c.now = a.now;
    let mut p = Peer::v4(40005);
    let sa = a.feed(&p.syn()).reply().clone();
    p.learn(&sa);
    c.feed(&p.third_ack(b""));
    assert!(c.accept().is_none());
    assert_eq!(c.stats().get(Mib::SyncookiesFailed), 1);
}

/// A fleet host whose cookie secrets differ (another fleet, or a host with the wrong key
/// file) checks the moved ACK against cookies (L-1) and fails it (SyncookiesFailed), then
/// resets it: the check runs, and refuses.
#[test]
fn fleet_host_with_other_secrets_fails_the_cookie() {
    let mut a = host(true);
    let sc = StackConfig {
        fleet: true,
        ..StackConfig::default()
    };
    let mut b = Harness::with_stack(sc, v4_server(), ListenerConfig::default(), 128);
    b.stack.rotate_cookie_secrets([[7; 16], [8; 16]], b.now);
    b.stack.rotate_cookie_secrets([[9; 16], [10; 16]], b.now);
    b.stack.rotate_cookie_secrets([[11; 16], [12; 16]], b.now);
    let mut p = Peer::v4(40006);
    let sa = a.feed(&p.syn()).reply().clone();
    p.learn(&sa);
    let out = b.feed(&p.third_ack(b""));
    assert!(out.reply().is_rst());
    assert_eq!(b.stats().get(Mib::SyncookiesFailed), 1);
    assert!(b.accept().is_none());
}

/// Rotation in step (the daemon's fleet epochs): host A issues a cookie under the old pair;
/// host B has already rotated to the new one (the old pair retired a moment ago) and still
/// validates it; a host that only ever had the new pair does not.
#[test]
fn fleet_cookie_survives_a_rotation_on_the_other_host() {
    let old = [[21; 16], [22; 16]];
    let new = [[23; 16], [24; 16]];
    let mut a = host(true);
    a.stack.rotate_cookie_secrets(old, a.now);
    let mut b = host(true);
    b.stack
        .rotate_cookie_secrets(old, b.now - Duration::from_secs(600));
    b.stack.rotate_cookie_secrets(new, b.now);
    let mut p = Peer::v4(40007);
    let sa = a.feed(&p.syn()).reply().clone();
    p.learn(&sa);
    b.advance(Duration::from_secs(30));
    b.feed(&p.third_ack(b""));
    assert!(b.accept().is_some(), "the retired pair still validates");

    let mut c = host(true);
    c.stack.rotate_cookie_secrets(new, c.now);
    c.stack.rotate_cookie_secrets(new, c.now);
    c.stack.rotate_cookie_secrets(new, c.now);
    c.feed(&p.third_ack(b""));
    assert!(c.accept().is_none());
}
