//! Spec section 11 (accept() and listener close, A-1..A-3), the listen() rules of section 1
//! (B = min(backlog as unsigned, somaxconn); listen() again only updates B; B = 0 still
//! admits one request) and the socket API's errors (socket.rs: EADDRINUSE, EINVAL, EAGAIN,
//! EAFNOSUPPORT, EBADF).
mod util;
use util::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use synline_core::{
    AddressFamily, ChildState, DropReason, Errno, ListenerConfig, Mib, Stack, StackConfig,
    SyncookieMode, Verdict,
};
use synline_wire::{SeqNumber, TcpFlags};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// SYN answered and the peer has learnt the SYN-ACK.
fn syn(h: &mut Harness, p: &mut Peer) {
    let r = h.feed(&p.syn()).reply().clone();
    p.learn(&r);
}

// =======================================================================================
// accept().

#[test]
fn a1_accept_is_fifo_and_eagain_when_empty() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    assert_eq!(h.sock.accept().unwrap_err(), Errno::EAGAIN);
    for port in [7, 3, 5] {
        handshake(&mut h, &mut Peer::v4(port));
    }
    let l = h.listener().clone();
    assert_eq!(l.accept_queue.ack_backlog(), 3);
    // (expected port, ack_backlog after)
    for (port, left) in [(7, 2), (3, 1), (5, 0)] {
        let c = h.sock.accept().unwrap();
        assert_eq!(c.remote.port(), port);
        assert_eq!(c.local, v4_server());
        assert_eq!(l.accept_queue.ack_backlog(), left, "ack_backlog--");
    }
    assert_eq!(h.sock.accept().unwrap_err(), Errno::EAGAIN);
}

/// A-1 + C-8: a child can be accepted already in CLOSE_WAIT.
#[test]
fn a1_child_accepted_in_close_wait() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    let mut p = Peer::v4(40000);
    syn(&mut h, &mut p);
    let f = p.frame(
        TcpFlags::ACK | TcpFlags::FIN,
        p.isn + 1,
        p.iss + 1,
        p.ack_options(1),
        &[],
    );
    assert_eq!(h.feed(&f).verdict, Verdict::Consumed);
    assert_eq!(h.sock.accept().unwrap().state, ChildState::CloseWait);
}

/// A freed place in the accept list lets the next SYN in (S-4 and A-1 together).
#[test]
fn a1_accept_makes_room() {
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Never,
        ..ListenerConfig::default()
    };
    let mut h = Harness::new(cfg, 0);
    handshake(&mut h, &mut Peer::v4(1));
    let out = h.feed(&Peer::v4(2).syn());
    assert_eq!(out.verdict, Verdict::Drop(DropReason::AcceptQueueFull));
    h.sock.accept().unwrap();
    assert!(h.feed(&Peer::v4(2).syn()).reply().is_synack());
}

// =======================================================================================
// listener close.

#[test]
fn a2_close_resets_unaccepted_children() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    let mut a = Peer::v4(1);
    let mut b = Peer::v4(2);
    let mut c = Peer::v4(3);
    handshake(&mut h, &mut a);
    handshake(&mut h, &mut b);
    let f = c.frame(TcpFlags::SYN, c.isn, SeqNumber(0), c.options, &[]);
    let r = h.feed(&f).reply().clone();
    c.learn(&r);
    assert_eq!(h.feed(&c.third_ack(b"x")).verdict, Verdict::Consumed);
    assert_eq!(h.sock.accept().unwrap().remote.port(), 1);

    let l = h.listener().clone();
    let orphans = h.sock.close();
    assert!(!l.is_listening());
    assert_eq!(l.accept_queue.len(), 0, "destroyed: none left on the list");
    assert_eq!(l.accept_queue.ack_backlog(), 0);
    let ports: Vec<u16> = orphans.iter().map(|c| c.remote.port()).collect();
    assert_eq!(ports, [2, 3], "the unaccepted ones, in order");

    let rsts = h.stats().get(Mib::OutRsts);
    for (child, peer) in orphans.iter().zip([&b, &c]) {
        let mut buf = vec![0u8; FRAME];
        let n = h.worker.write_child_rst(child, &mut buf).unwrap();
        let r = Reply::from_bytes(&buf[..n]);
        assert!(r.is_rst());
        assert_eq!(r.p.seg.dst_port, peer.addr.port());
        assert_eq!(r.p.seg.dst, peer.addr.ip());
        assert_eq!(r.seq(), peer.iss + 1, "SEQ = SND.NXT: in the peer's window");
        assert_eq!(r.ack(), child.rcv_nxt);
        assert_eq!(r.p.seg.window, 0);
    }
    assert_eq!(h.stats().get(Mib::OutRsts), rsts + 2);

    // The port no longer listens: a new SYN is not the engine's.
    assert_eq!(h.feed(&Peer::v4(4).syn()).verdict, Verdict::Pass);
}

#[test]
fn a3_requests_outlive_close_until_a_segment_or_timer() {
    // (what reaches the request after close, the reply)
    #[derive(Debug, Clone, Copy)]
    enum Hit {
        ThirdAck,
        DupSyn,
        Rst,
        Timer,
    }
    for hit in [Hit::ThirdAck, Hit::DupSyn, Hit::Rst, Hit::Timer] {
        let mut h = Harness::new(ListenerConfig::default(), 128);
        let t0 = h.now;
        let mut p = Peer::v4(40000);
        syn(&mut h, &mut p);
        let l = h.listener().clone();
        assert!(h.sock.close().is_empty());
        assert_eq!(h.stack.live_requests(), 1, "{hit:?}: not swept at close");
        assert_eq!(l.qlen(), 1);
        h.advance(ms(100));
        let why = format!("{hit:?}");
        match hit {
            Hit::ThirdAck => {
                let out = h.feed(&p.third_ack(&[]));
                let r = out.reply();
                assert_eq!(r.flags(), TcpFlags::RST, "{why}");
                assert_eq!(r.seq(), p.iss + 1, "{why}: SEQ = SEG.ACK");
            }
            Hit::DupSyn => {
                let out = h.feed(&p.syn());
                let r = out.reply();
                assert_eq!(r.flags(), TcpFlags::RST | TcpFlags::ACK, "{why}");
                assert_eq!(r.seq(), SeqNumber(0), "{why}");
                assert_eq!(r.ack(), p.isn + 1, "{why}");
            }
            Hit::Rst => {
                let out = h.feed(&p.seg(TcpFlags::RST, p.isn + 1, SeqNumber(0)));
                assert!(out.reply.is_none(), "{why}: never an RST to an RST");
                assert!(matches!(out.verdict, Verdict::Drop(_)), "{why}");
            }
            Hit::Timer => {
                let f = h.run_until(t0 + ms(1100));
                assert!(f.is_empty(), "{why}: dropped silently");
                assert_eq!(h.stats().get(Mib::OutRsts), 0, "{why}");
            }
        }
        assert_eq!(h.stack.live_requests(), 0, "{why}");
        assert_eq!(h.worker.requests(), 0, "{why}");
        assert_eq!((l.qlen(), l.young()), (0, 0), "{why}");
        assert!(l.accept_queue.is_empty(), "{why}: no child");
        assert_eq!(h.stats().get(Mib::PassiveOpens), 0, "{why}");
        // The next segment meets nothing at all.
        let out = h.feed(&p.third_ack(&[]));
        assert_eq!(out.verdict, Verdict::Pass, "{why}");
    }
}

/// "a segment hitting one drops it and, with no listener left, gets an RST": when a
/// new listener holds the port again (a server restarted), the segment is looked up again
/// (the kernel's `goto lookup`) and the new listener takes it: a retransmitted SYN starts a
/// new request there instead of being reset.
#[test]
fn a3_segment_on_stale_request_goes_to_new_listener() {
    let mut h = Harness::new(ListenerConfig::default(), 128);
    let mut p = Peer::v4(40000);
    syn(&mut h, &mut p);
    let old = h.listener().clone();
    assert!(h.sock.close().is_empty());
    let mut again = h.stack.socket(AddressFamily::Inet).unwrap();
    again.bind(v4_server()).unwrap();
    again.listen(128).unwrap();
    let new = again.listener().unwrap().clone();

    h.advance(ms(500));
    let out = h.feed(&p.syn());
    let r = out.reply();
    assert!(
        r.is_synack(),
        "the new listener answers the SYN: {:?}",
        r.flags()
    );
    assert_eq!(r.ack(), p.isn + 1);
    assert_eq!(old.qlen(), 0, "the stale request is gone");
    assert_eq!(new.qlen(), 1, "a request of the new listener");
    assert_eq!(h.stack.live_requests(), 1);
    assert_eq!(h.stats().get(Mib::OutRsts), 0);
    p.learn(r);
    assert_eq!(h.feed(&p.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(again.accept().unwrap().remote, p.addr);
}

// =======================================================================================
// listen(): B.

#[test]
fn listen_backlog_is_min_of_unsigned_backlog_and_somaxconn() {
    let sc = StackConfig {
        somaxconn: 16,
        ..StackConfig::default()
    };
    // (listen() argument, B)
    let table: &[(i32, u32)] = &[
        (0, 0),
        (1, 1),
        (15, 15),
        (16, 16),
        (17, 16),
        (1000, 16),
        (-1, 16),
        (i32::MIN, 16),
    ];
    for &(backlog, b) in table {
        let h = Harness::with_stack(sc, v4_server(), ListenerConfig::default(), backlog);
        assert_eq!(h.listener().backlog(), b, "listen({backlog})");
    }
}

/// C-1 with the largest somaxconn: the accept list allocates for the children it holds, not
/// for B + 1. (An array sized for somaxconn + 1 aborted here on a 687 GB allocation.) A
/// handshake still completes and is accepted.
#[test]
fn c1_accept_list_memory_follows_children_not_somaxconn() {
    let sc = StackConfig {
        somaxconn: u32::MAX,
        ..StackConfig::default()
    };
    let mut h = Harness::with_stack(sc, v4_server(), ListenerConfig::default(), i32::MAX);
    assert_eq!(h.listener().backlog(), i32::MAX as u32);
    let mut p = Peer::v4(40000);
    let synack = h.feed(&p.syn()).reply().clone();
    p.learn(&synack);
    h.feed(&p.third_ack(&[]));
    assert!(h.sock.accept().is_ok());
}

/// B capped by somaxconn shows in the SYN queue: at most B + 1 requests.
#[test]
fn listen_backlog_cap_bounds_the_syn_queue() {
    let sc = StackConfig {
        somaxconn: 4,
        ..StackConfig::default()
    };
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Never,
        ..ListenerConfig::default()
    };
    let mut h = Harness::with_stack(sc, v4_server(), cfg, 1000);
    for port in 1..=5 {
        assert!(
            h.feed(&Peer::v4(port).syn()).reply().is_synack(),
            "SYN {port}"
        );
    }
    let out = h.feed(&Peer::v4(6).syn());
    assert_eq!(out.verdict, Verdict::Drop(DropReason::SynQueueFull));
    assert_eq!(h.qlen(), 5);
    assert_eq!(h.stats().get(Mib::TCPReqQFullDrop), 1);
}

#[test]
fn listen_backlog_zero_admits_one_request() {
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Never,
        ..ListenerConfig::default()
    };
    let mut h = Harness::new(cfg, 0);
    assert_eq!(h.listener().backlog(), 0);
    let mut a = Peer::v4(1);
    syn(&mut h, &mut a);
    assert_eq!(
        h.qlen(),
        1,
        "B = 0 still admits one request (qlen > B is full)"
    );
    let out = h.feed(&Peer::v4(2).syn());
    assert_eq!(out.verdict, Verdict::Drop(DropReason::SynQueueFull));
    let s = h.stats();
    assert_eq!(s.get(Mib::TCPReqQFullDrop), 1);
    assert_eq!(s.get(Mib::ListenDrops), 1);
    // ... and one child.
    assert_eq!(h.feed(&a.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.listener().accept_queue.ack_backlog(), 1);
}

#[test]
fn listen_again_only_updates_backlog() {
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Never,
        synack_retries: 3,
        ..ListenerConfig::default()
    };
    let mut h = Harness::new(cfg, 1);
    let before = h.listener().clone();
    handshake(&mut h, &mut Peer::v4(1));
    let mut b = Peer::v4(2);
    syn(&mut h, &mut b);
    let mut c = Peer::v4(3);
    syn(&mut h, &mut c);
    assert_eq!(
        h.feed(&Peer::v4(4).syn()).verdict,
        Verdict::Drop(DropReason::SynQueueFull)
    );

    h.sock.listen(10).unwrap();
    let after = h.listener().clone();
    assert!(Arc::ptr_eq(&before, &after), "the same listener");
    assert_eq!(after.backlog(), 10);
    assert_eq!(after.qlen(), 2, "requests kept");
    assert_eq!(after.accept_queue.ack_backlog(), 1, "children kept");
    assert_eq!(h.sock.config().unwrap(), cfg, "settings unchanged");
    assert!(
        h.feed(&Peer::v4(4).syn()).reply().is_synack(),
        "room under the new B"
    );
    assert_eq!(h.feed(&b.third_ack(&[])).verdict, Verdict::Consumed);
    assert_eq!(h.sock.accept().unwrap().remote.port(), 1);
    assert_eq!(h.sock.accept().unwrap().remote.port(), 2);

    // Lowering B works the same way; capped by somaxconn (4096 by default).
    h.sock.listen(0).unwrap();
    assert_eq!(after.backlog(), 0);
    h.sock.listen(-1).unwrap();
    assert_eq!(after.backlog(), 4096);
    assert_eq!(h.sock.local_addr(), Some(v4_server()));
}

// =======================================================================================
// Errors.

fn stack() -> Stack {
    Stack::new(StackConfig::default(), synline_core::Secrets::from_seed(7))
}

#[test]
fn errno_eaddrinuse() {
    // (first bind, second bind, EADDRINUSE)
    let table: &[(&str, &str, bool)] = &[
        ("198.18.0.1:80", "198.18.0.1:80", true),
        ("198.18.0.1:80", "0.0.0.0:80", true),
        ("0.0.0.0:80", "198.18.0.1:80", true),
        ("0.0.0.0:80", "0.0.0.0:80", true),
        ("198.18.0.1:80", "198.18.0.9:80", false),
        ("198.18.0.1:80", "198.18.0.1:81", false),
        ("[2001:2::1]:80", "[2001:2::1]:80", true),
        ("[::]:80", "[2001:2::1]:80", true),
        ("0.0.0.0:80", "[::]:80", false), // another family
    ];
    for &(first, second, in_use) in table {
        let s = stack();
        let fam = |a: &str| {
            if addr(a).is_ipv6() {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            }
        };
        let mut x = s.socket(fam(first)).unwrap();
        x.bind(addr(first)).unwrap();
        let mut y = s.socket(fam(second)).unwrap();
        let got = y.bind(addr(second));
        let why = format!("{first} then {second}");
        if in_use {
            assert_eq!(got, Err(Errno::EADDRINUSE), "{why}");
            assert_eq!(y.local_addr(), None, "{why}: still unbound");
        } else {
            assert_eq!(got, Ok(()), "{why}");
        }
        // The same holds when the first one is listening.
        if in_use {
            x.listen(8).unwrap();
            let mut z = s.socket(fam(second)).unwrap();
            assert_eq!(
                z.bind(addr(second)),
                Err(Errno::EADDRINUSE),
                "{why}, listening"
            );
            // Closed, the address is free again.
            x.close();
            assert_eq!(z.bind(addr(second)), Ok(()), "{why}, after close");
        }
    }
}

#[test]
fn errno_einval() {
    let s = stack();
    // bind twice.
    let mut a = s.socket(AddressFamily::Inet).unwrap();
    a.bind(addr("198.18.0.1:80")).unwrap();
    assert_eq!(a.bind(addr("198.18.0.1:81")), Err(Errno::EINVAL));
    // accept on a bound socket that is not listening.
    assert_eq!(a.accept().unwrap_err(), Errno::EINVAL);
    // bind to port 0 (no ephemeral ports here).
    let mut b = s.socket(AddressFamily::Inet).unwrap();
    assert_eq!(b.bind(addr("198.18.0.1:0")), Err(Errno::EINVAL));
    // listen and accept on an unbound socket.
    assert_eq!(b.listen(8), Err(Errno::EINVAL));
    assert_eq!(b.accept().unwrap_err(), Errno::EINVAL);
    // bind on a listening socket.
    a.listen(8).unwrap();
    assert_eq!(a.bind(addr("198.18.0.1:82")), Err(Errno::EINVAL));
    assert_eq!(a.local_addr(), Some(addr("198.18.0.1:80")));
}

#[test]
fn errno_eagain() {
    let s = stack();
    let mut a = s.socket(AddressFamily::Inet6).unwrap();
    a.bind(addr("[2001:2::1]:443")).unwrap();
    a.listen(8).unwrap();
    for _ in 0..3 {
        assert_eq!(
            a.accept().unwrap_err(),
            Errno::EAGAIN,
            "non-blocking, every time"
        );
    }
}

#[test]
fn errno_eafnosupport() {
    let s = stack();
    let mut v4 = s.socket(AddressFamily::Inet).unwrap();
    assert_eq!(v4.bind(addr("[2001:2::1]:80")), Err(Errno::EAFNOSUPPORT));
    let mut v6 = s.socket(AddressFamily::Inet6).unwrap();
    assert_eq!(v6.bind(addr("198.18.0.1:80")), Err(Errno::EAFNOSUPPORT));
    // The family is checked before the socket's state.
    v4.bind(addr("198.18.0.1:80")).unwrap();
    assert_eq!(v4.bind(addr("[2001:2::1]:80")), Err(Errno::EAFNOSUPPORT));
    assert_eq!(v4.family(), AddressFamily::Inet);
    assert_eq!(v6.family(), AddressFamily::Inet6);
}

#[test]
fn errno_ebadf_after_close() {
    let s = stack();
    // Closed from each state.
    for state in ["unbound", "bound", "listening"] {
        let mut a = s.socket(AddressFamily::Inet).unwrap();
        if state != "unbound" {
            a.bind(addr("198.18.0.1:80")).unwrap();
        }
        if state == "listening" {
            a.listen(8).unwrap();
        }
        assert!(a.close().is_empty());
        assert_eq!(a.bind(addr("198.18.0.1:80")), Err(Errno::EBADF), "{state}");
        assert_eq!(a.listen(8), Err(Errno::EBADF), "{state}");
        assert_eq!(a.accept().unwrap_err(), Errno::EBADF, "{state}");
        assert_eq!(a.config().unwrap_err(), Errno::EBADF, "{state}");
        assert_eq!(
            a.set_config(ListenerConfig::default()),
            Err(Errno::EBADF),
            "{state}"
        );
        assert!(a.close().is_empty(), "{state}: closing twice is harmless");
        assert!(a.listener().is_none());
        assert_eq!(a.local_addr(), None);
    }
}

/// Settings stored before listen() are the listener's; set_config on a listener applies
/// from the next segment on.
#[test]
fn config_before_and_after_listen() {
    let s = stack();
    let mut a = s.socket(AddressFamily::Inet).unwrap();
    let cfg = ListenerConfig {
        synack_retries: 2,
        maxseg: 1200,
        ..ListenerConfig::default()
    };
    a.set_config(cfg).unwrap();
    a.bind(addr("198.18.0.1:80")).unwrap();
    assert_eq!(a.config().unwrap(), cfg);
    a.listen(8).unwrap();
    assert_eq!(a.listener().unwrap().config(), cfg);
    let cfg2 = ListenerConfig {
        maxseg: 1000,
        ..cfg
    };
    a.set_config(cfg2).unwrap();
    assert_eq!(a.config().unwrap(), cfg2);

    let mut w = s.worker(0).unwrap();
    let p = Peer::v4(40000);
    let mut buf = vec![0u8; FRAME];
    let syn = p.syn();
    buf[..syn.len()].copy_from_slice(&syn);
    let Verdict::Transmit(n) = w.handle_frame(&mut buf, syn.len(), Duration::from_secs(1)) else {
        panic!("SYN-ACK expected");
    };
    let r = Reply::from_bytes(&buf[..n]);
    assert_eq!(r.p.seg.options.mss, Some(1000), "the new TCP_MAXSEG");
}
