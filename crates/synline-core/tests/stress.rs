//! Two workers on two threads sharing two listeners (IPv4 and IPv6), an application thread
//! accepting slowly, and one third ACK in seven delivered to the wrong worker (as after an RSS
//! key change) so it travels the hand-off queue. The run goes in rounds; between the phases of
//! each round both workers stop at a barrier and the invariants are checked while the counters
//! are quiet: qlen equals the live requests of both shards, young <= qlen. At the end: every
//! handshake counted exactly once, ListenDrops >= ListenOverflows, and the accept list was
//! never above B + 1 (checked by the acceptor on every look).

mod util;

use crossbeam::channel;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;
use synline_core::{
    AddressFamily, FlowKey, ListenerConfig, Mib, Secrets, Stack, StackConfig, SyncookieMode,
    Verdict, Worker,
};
use synline_wire::parse_frame;
use util::*;

const PER_WORKER: u16 = 2000;
const BACKLOG: u32 = 64;

fn listen(stack: &Stack, addr: SocketAddr) -> synline_core::Socket {
    let fam = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut s = stack.socket(fam).unwrap();
    // Cookies off: every handshake goes through a request sock, which is what is counted here.
    s.set_config(ListenerConfig {
        syncookies: SyncookieMode::Never,
        ..ListenerConfig::default()
    })
    .unwrap();
    s.bind(addr).unwrap();
    s.listen(BACKLOG as i32).unwrap();
    s
}

fn feed(w: &mut Worker, frame: &[u8], now: Duration) -> (Verdict, Option<Reply>) {
    let mut buf = vec![0u8; FRAME];
    buf[..frame.len()].copy_from_slice(frame);
    let v = w.handle_frame(&mut buf, frame.len(), now);
    let r = match v {
        Verdict::Transmit(n) => Some(Reply::from_bytes(&buf[..n])),
        _ => None,
    };
    (v, r)
}

struct Client {
    peer: Peer,
    key: FlowKey,
    has_request: bool,
    done: bool,
}

#[test]
fn two_workers_shared_listeners_invariants_hold() {
    let stack = Stack::new(
        StackConfig {
            workers: 2,
            handoff_capacity: 4096,
            ..StackConfig::default()
        },
        Secrets::from_seed(9),
    );
    let socks = Arc::new([listen(&stack, v4_server()), listen(&stack, v6_server())]);
    let listeners: Vec<_> = socks
        .iter()
        .map(|s| s.listener().unwrap().clone())
        .collect();

    let barrier = Arc::new(Barrier::new(2));
    let completed = Arc::new(AtomicU32::new(0));
    let consumed = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let shard_counts = Arc::new(Mutex::new(Vec::<Vec<(u32, u32)>>::new()));
    let checks = Arc::new(AtomicU32::new(0));
    let (tx0, rx0) = channel::unbounded::<Vec<u8>>();
    let (tx1, rx1) = channel::unbounded::<Vec<u8>>();

    // The application: accepts a few at a time, so the lists do fill; checks B + 1 each look.
    let acceptor = {
        let (socks, stop, listeners) = (socks.clone(), stop.clone(), listeners.clone());
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut max_len = 0;
            loop {
                let done = stop.load(Ordering::Acquire);
                for (s, l) in socks.iter().zip(&listeners) {
                    let b = l.accept_queue.ack_backlog();
                    assert!(b <= BACKLOG + 1, "ack_backlog {b} above B + 1");
                    max_len = max_len.max(l.accept_queue.len());
                    for _ in 0..3 {
                        match s.accept() {
                            Ok(c) => assert!(
                                seen.insert((c.remote, c.local)),
                                "a handshake accepted twice"
                            ),
                            Err(_) => break,
                        }
                    }
                }
                if done && listeners.iter().all(|l| l.accept_queue.is_empty()) {
                    return (seen, max_len);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };

    let total = u32::from(PER_WORKER) * 2;
    let run = |id: usize, inbox: channel::Receiver<Vec<u8>>, other: channel::Sender<Vec<u8>>| {
        let (stack, barrier, completed, consumed) = (
            stack.clone(),
            barrier.clone(),
            completed.clone(),
            consumed.clone(),
        );
        let (shard_counts, checks, listeners) =
            (shard_counts.clone(), checks.clone(), listeners.clone());
        std::thread::spawn(move || {
            let mut w = stack.worker(id).unwrap();
            let mut now = Duration::from_secs(100);
            let mut clients: Vec<Client> = (0..PER_WORKER)
                .map(|i| {
                    let port = 1024 + id as u16 * PER_WORKER + i;
                    let peer = if i % 2 == 0 {
                        Peer::v4(port)
                    } else {
                        Peer::v6(port)
                    };
                    let key = FlowKey::of(&parse_frame(&peer.syn()).unwrap().seg);
                    Client {
                        peer,
                        key,
                        has_request: false,
                        done: false,
                    }
                })
                .collect();
            let mut round = 0usize;
            loop {
                // SYNs for every client without a request (a full SYN queue drops the rest).
                for c in clients.iter_mut().filter(|c| !c.done && !c.has_request) {
                    match feed(&mut w, &c.peer.syn(), now) {
                        (Verdict::Transmit(_), Some(r)) => {
                            c.peer.learn(&r);
                            c.has_request = true;
                        }
                        (Verdict::Drop(_), _) => {}
                        other => panic!("unexpected SYN outcome {other:?}"),
                    }
                }
                // Quiet point: qlen/young against both shards.
                barrier.wait();
                shard_counts
                    .lock()
                    .unwrap()
                    .push(listeners.iter().map(|l| w.requests_of(l)).collect());
                barrier.wait();
                if id == 0 {
                    let mut counts = shard_counts.lock().unwrap();
                    for (li, l) in listeners.iter().enumerate() {
                        let q: u32 = counts.iter().map(|c| c[li].0).sum();
                        let y: u32 = counts.iter().map(|c| c[li].1).sum();
                        assert_eq!(l.qlen(), q, "qlen equals live requests");
                        assert_eq!(l.young(), y);
                        assert!(l.young() <= l.qlen());
                        assert!(l.qlen() <= BACKLOG + 1, "qlen above B + 1 with cookies off");
                    }
                    counts.clear();
                    checks.fetch_add(1, Ordering::Relaxed);
                }
                barrier.wait();
                // Third ACKs; one in seven to the other worker.
                for (i, c) in clients
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, c)| c.has_request)
                {
                    let ack = c.peer.third_ack(&[]);
                    if (i + round) % 7 == 3 {
                        other.send(ack).unwrap();
                        continue;
                    }
                    match feed(&mut w, &ack, now).0 {
                        Verdict::Consumed => {
                            consumed.fetch_add(1, Ordering::Relaxed);
                        }
                        Verdict::Drop(_) => {} // accept list full, request kept
                        v => panic!("unexpected third-ACK outcome {v:?}"),
                    }
                }
                barrier.wait();
                // The other worker's misrouted ACKs: not found here, handed back to the owner.
                while let Ok(f) = inbox.try_recv() {
                    assert_eq!(feed(&mut w, &f, now).0, Verdict::HandedOff);
                }
                barrier.wait();
                let mut buf = vec![0u8; FRAME];
                while let Some(v) = w.poll_handoff(&mut buf, now) {
                    if v == Verdict::Consumed {
                        consumed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for c in clients.iter_mut().filter(|c| c.has_request) {
                    if !w.has_request(&c.key) {
                        c.has_request = false;
                        c.done = true;
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                barrier.wait();
                if completed.load(Ordering::Relaxed) == total {
                    return w;
                }
                barrier.wait();
                round += 1;
                now += Duration::from_millis(1);
                assert!(round < 100_000, "no progress");
            }
        })
    };
    let t0 = run(0, rx0, tx1);
    let t1 = run(1, rx1, tx0);
    let w0 = t0.join().unwrap();
    let w1 = t1.join().unwrap();
    stop.store(true, Ordering::Release);
    let (accepted, max_len) = acceptor.join().unwrap();

    let s = stack.stats();
    assert!(
        checks.load(Ordering::Relaxed) > 10,
        "the invariants were checked in many rounds"
    );
    assert_eq!(
        s.get(Mib::PassiveOpens),
        u64::from(total),
        "every handshake counted once"
    );
    assert_eq!(consumed.load(Ordering::Relaxed), total);
    assert_eq!(accepted.len(), total as usize);
    assert!(max_len <= BACKLOG as usize + 1);
    assert!(s.get(Mib::ListenDrops) >= s.get(Mib::ListenOverflows));
    assert!(
        s.get(Mib::ListenOverflows) > 0,
        "the slow acceptor made the lists overflow (C-1, R-10)"
    );
    assert!(
        s.get(Mib::TCPReqQFullDrop) > 0,
        "the SYN queue filled (S-2)"
    );
    assert!(
        s.handoffs > 0,
        "misrouted ACKs went through the hand-off queue"
    );
    for l in &listeners {
        assert_eq!(l.qlen(), 0);
        assert_eq!(l.young(), 0);
    }
    assert_eq!(stack.live_requests(), 0);
    assert_eq!(w0.requests() + w1.requests(), 0);
}
