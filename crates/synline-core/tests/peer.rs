//! An in-process network with virtual time (the model is quinn-proto's `tests/util.rs`):
//! Linux-like clients, a lossy, duplicating, reordering link, the engine, and an embedding
//! stack that takes each accepted connection over (the established-table half of D-2).
//!
//! Clients behave as a Linux client does: SYN retransmitted at 1, 3, 7... s (tcp_syn_retries
//! 6); on a SYN-ACK, the third ACK and then a data segment that is retransmitted until the
//! embedding stack acknowledges it; a duplicate SYN-ACK in ESTABLISHED is answered with an ACK.
//! Every client must end with its data acknowledged by the stack that accepted it: the rules
//! allow every handshake here to complete (losses are far below what the retry budgets
//! absorb), and a flood of spoofed SYNs must not keep one legitimate client out.

mod util;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use synline_core::{FlowKey, ListenerConfig, Mib, SyncookieMode, Verdict};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{parse_frame, OptionsOut, SeqNumber, TcpFlags, Timestamps};
use util::*;

/// SplitMix64: a deterministic generator, so every run sees the same losses.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    Established,
    Done,
    Reset,
    GaveUp,
}

struct Client {
    peer: Peer,
    state: State,
    retries: u32,
    rto: Duration,
    next_timer: Duration,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    ToServer,
    ToClient,
}

struct Link {
    loss: f64,
    dup: f64,
    /// Uniform extra delay in ms on top of 1 ms: reorders frames sent close together.
    jitter_ms: u64,
}

/// A frame in flight: (arrival time, send order, direction, bytes).
type InFlight = Reverse<(Duration, u64, Dir, Vec<u8>)>;

struct Sim {
    h: Harness,
    rng: Rng,
    link: Link,
    clients: Vec<Client>,
    by_port: HashMap<u16, usize>,
    /// In flight: (arrival time, order) -> (direction, frame).
    queue: BinaryHeap<InFlight>,
    order: u64,
    /// The embedding stack's established table: 4-tuple -> (child's RCV.NXT, its SND.NXT).
    established: HashMap<FlowKey, (SeqNumber, SeqNumber)>,
    accepted: HashMap<u16, synline_core::Child>,
    rsts_to_legit: u32,
}

impl Sim {
    fn new(cfg: ListenerConfig, backlog: i32, link: Link, seed: u64) -> Sim {
        Sim {
            h: Harness::new(cfg, backlog),
            rng: Rng(seed),
            link,
            clients: Vec::new(),
            by_port: HashMap::new(),
            queue: BinaryHeap::new(),
            order: 0,
            established: HashMap::new(),
            accepted: HashMap::new(),
            rsts_to_legit: 0,
        }
    }

    fn send(&mut self, dir: Dir, frame: Vec<u8>) {
        let copies = if self.rng.chance(self.link.loss) {
            0
        } else if self.rng.chance(self.link.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = Duration::from_millis(1 + self.rng.below(self.link.jitter_ms + 1));
            self.order += 1;
            self.queue.push(Reverse((
                self.h.now + delay,
                self.order,
                dir,
                frame.clone(),
            )));
        }
    }

    fn add_client(&mut self, port: u16, start: Duration) {
        let mut peer = Peer::v4(port);
        peer.isn = SeqNumber(self.rng.next() as u32);
        peer.options.timestamps = Some(Timestamps {
            tsval: self.rng.next() as u32 | 1,
            tsecr: 0,
        });
        let idx = self.clients.len();
        self.clients.push(Client {
            peer,
            state: State::SynSent,
            retries: 0,
            rto: Duration::from_secs(1),
            next_timer: start,
            payload: format!("GET /{port} HTTP/1.1\r\n\r\n").into_bytes(),
        });
        self.by_port.insert(port, idx);
    }

    /// A spoofed SYN from a random 198.18.0.0/15 address that will never answer.
    fn flood_syn(&mut self) {
        let a = self.rng.next() as u32;
        let src = Ipv4Addr::new(198, 18 + ((a >> 16) & 1) as u8, (a >> 8) as u8, a as u8 | 1);
        let mut p = Peer::new(
            SocketAddr::new(IpAddr::V4(src), 1024 + (self.rng.below(60000)) as u16),
            v4_server(),
        );
        p.isn = SeqNumber(self.rng.next() as u32);
        let f = p.syn();
        self.send(Dir::ToServer, f);
    }

    fn client_timer(&mut self, i: usize) {
        let now = self.h.now;
        let c = &mut self.clients[i];
        match c.state {
            State::SynSent => {
                if c.retries > 6 {
                    c.state = State::GaveUp;
                    return;
                }
                let f = c.peer.syn();
                c.retries += 1;
                c.next_timer = now + c.rto;
                c.rto *= 2;
                self.send(Dir::ToServer, f);
            }
            State::Established => {
                if c.retries > 15 {
                    c.state = State::GaveUp;
                    return;
                }
                let f = c.peer.frame(
                    TcpFlags::ACK | TcpFlags::PSH,
                    c.peer.isn + 1,
                    c.peer.iss + 1,
                    c.peer.ack_options(2),
                    &c.payload.clone(),
                );
                c.retries += 1;
                c.next_timer = now + c.rto;
                c.rto = (c.rto * 2).min(Duration::from_secs(8));
                self.send(Dir::ToServer, f);
            }
            _ => {}
        }
    }

    fn deliver_to_client(&mut self, frame: &[u8]) {
        let p = parse_frame(frame).expect("everything sent to clients parses");
        let Some(&i) = self.by_port.get(&p.seg.dst_port) else {
            return;
        };
        let now = self.h.now;
        let c = &mut self.clients[i];
        let f = p.seg.flags;
        if f.rst() {
            if matches!(c.state, State::SynSent | State::Established) {
                c.state = State::Reset;
                self.rsts_to_legit += 1;
            }
            return;
        }
        if f.syn() && f.ack() {
            if p.seg.ack != c.peer.isn + 1 {
                return;
            }
            match c.state {
                State::SynSent => {
                    c.peer.iss = p.seg.seq;
                    c.peer.ts_recent = p.seg.options.timestamps.map_or(0, |t| t.tsval);
                    c.state = State::Established;
                    c.retries = 0;
                    c.rto = Duration::from_secs(1);
                    let ack = c.peer.third_ack(&[]);
                    let data = c.peer.frame(
                        TcpFlags::ACK | TcpFlags::PSH,
                        c.peer.isn + 1,
                        c.peer.iss + 1,
                        c.peer.ack_options(2),
                        &c.payload.clone(),
                    );
                    c.next_timer = now + c.rto;
                    self.send(Dir::ToServer, ack);
                    self.send(Dir::ToServer, data);
                }
                State::Established | State::Done => {
                    // tcp_send_dupack: answer a retransmitted SYN-ACK.
                    c.peer.ts_recent = p
                        .seg
                        .options
                        .timestamps
                        .map_or(c.peer.ts_recent, |t| t.tsval);
                    let ack = c.peer.third_ack(&[]);
                    self.send(Dir::ToServer, ack);
                }
                _ => {}
            }
            return;
        }
        // An ACK from the embedding stack covering the data.
        if f.ack()
            && c.state == State::Established
            && p.seg.ack == c.peer.isn + 1 + c.payload.len() as u32
        {
            c.state = State::Done;
        }
    }

    /// The embedding stack: established flows go to it before the engine (D-2).
    fn deliver_to_server(&mut self, frame: &[u8]) {
        if let Ok(p) = parse_frame(frame) {
            let key = FlowKey::of(&p.seg);
            if let Some(&(rcv_nxt, snd_nxt)) = self.established.get(&key) {
                let end = p.seg.seq + u32::from(p.seg.payload_len);
                let acked = if end.after(rcv_nxt) { end } else { rcv_nxt };
                self.established.insert(key, (acked, snd_nxt));
                let port = p.seg.src_port;
                if let Some(&i) = self.by_port.get(&port) {
                    let peer = self.clients[i].peer.clone();
                    let ack = stack_ack(&peer, snd_nxt, acked);
                    self.send(Dir::ToClient, ack);
                }
                return;
            }
        }
        let out = self.h.feed(frame);
        if let Some(r) = out.reply {
            self.send(Dir::ToClient, r.bytes);
        }
        if let Verdict::Consumed = out.verdict {
            self.drain_accept();
        }
    }

    fn drain_accept(&mut self) {
        while let Some(child) = self.h.accept() {
            let port = child.remote.port();
            self.established
                .insert(child.key(), (child.rcv_nxt, child.snd_nxt));
            if !child.data.is_empty() {
                if let Some(&i) = self.by_port.get(&port) {
                    let peer = self.clients[i].peer.clone();
                    let ack = stack_ack(&peer, child.snd_nxt, child.rcv_nxt);
                    self.send(Dir::ToClient, ack);
                }
            }
            assert!(
                self.accepted.insert(port, child).is_none() || !self.by_port.contains_key(&port),
                "one child per client"
            );
        }
    }

    fn run(&mut self, until: Duration) {
        let tick = Duration::from_millis(10);
        while self.h.now < until {
            let step_end = self.h.now + tick;
            while let Some(Reverse((t, _, _, _))) = self.queue.peek() {
                if *t > step_end {
                    break;
                }
                let Reverse((t, _, dir, frame)) = self.queue.pop().unwrap();
                self.h.now = self.h.now.max(t);
                match dir {
                    Dir::ToServer => self.deliver_to_server(&frame),
                    Dir::ToClient => self.deliver_to_client(&frame),
                }
            }
            self.h.now = step_end;
            for i in 0..self.clients.len() {
                let c = &self.clients[i];
                if matches!(c.state, State::SynSent | State::Established)
                    && c.next_timer <= self.h.now
                {
                    self.client_timer(i);
                }
            }
            for r in self.h.timers() {
                self.send(Dir::ToClient, r.bytes);
            }
        }
    }

    fn check_all_done(&self) {
        let stuck: Vec<_> = self
            .clients
            .iter()
            .filter(|c| c.state != State::Done)
            .map(|c| (c.peer.addr.port(), c.state))
            .collect();
        assert!(stuck.is_empty(), "clients that did not complete: {stuck:?}");
        assert_eq!(self.rsts_to_legit, 0);
        for c in &self.clients {
            let child = &self.accepted[&c.peer.addr.port()];
            assert_eq!(child.irs, c.peer.isn);
            assert_eq!(child.iss, c.peer.iss);
        }
    }
}

/// The embedding stack's ACK to a client.
fn stack_ack(peer: &Peer, seq: SeqNumber, ack: SeqNumber) -> Vec<u8> {
    let spec = synline_wire::emit::SegmentSpec {
        eth_src: SERVER_MAC,
        eth_dst: CLIENT_MAC,
        vlan: None,
        src: peer.server.ip(),
        dst: peer.addr.ip(),
        ip: IpParams {
            ttl: 64,
            tos: 0,
            flow_label: 0,
        },
        src_port: peer.server.port(),
        dst_port: peer.addr.port(),
        tcp: TcpParams {
            seq,
            ack,
            flags: TcpFlags::ACK,
            window: 502,
            options: OptionsOut::default(),
        },
        payload: &[],
    };
    let mut buf = vec![0u8; 128];
    let n = synline_wire::emit::emit_segment(&mut buf, &spec).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn thousands_of_handshakes_over_a_lossy_duplicating_reordering_link() {
    let link = Link {
        loss: 0.05,
        dup: 0.05,
        jitter_ms: 30,
    };
    let mut sim = Sim::new(ListenerConfig::default(), 4096, link, 1);
    for i in 0..3000u16 {
        let start = sim.h.now + Duration::from_millis(u64::from(i) * 3);
        sim.add_client(10_000 + i, start);
    }
    let end = sim.h.now + Duration::from_secs(200);
    sim.run(end);
    sim.check_all_done();
    let s = sim.h.stats();
    assert_eq!(s.get(Mib::PassiveOpens), 3000);
    // Losses were answered by the rules that exist for them.
    assert!(
        s.get(Mib::TCPSynRetrans) > 0,
        "lost third ACKs made the timer resend"
    );
    assert!(s.get(Mib::TCPTimeouts) > 0);
    // Everything is gone from the SYN queue.
    assert_eq!(sim.h.qlen(), 0);
    assert_eq!(sim.h.young(), 0);
    assert_eq!(sim.h.stack.live_requests(), 0);
    assert_eq!(sim.h.worker.requests(), 0);
}

#[test]
fn syn_flood_with_cookies_lets_every_legitimate_client_in() {
    // B = 64, tcp_syncookies = 1; 20 000 spoofed SYNs over 10 s, 500 clients among them.
    let link = Link {
        loss: 0.02,
        dup: 0.02,
        jitter_ms: 10,
    };
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::WhenFull,
        ..ListenerConfig::default()
    };
    let mut sim = Sim::new(cfg, 64, link, 7);
    for i in 0..500u16 {
        sim.add_client(
            20_000 + i,
            sim.h.now + Duration::from_millis(u64::from(i) * 20),
        );
    }
    let start = sim.h.now;
    let mut t = start;
    while t < start + Duration::from_secs(10) {
        for _ in 0..20 {
            sim.flood_syn();
        }
        t += Duration::from_millis(10);
        sim.run(t);
    }
    let end = sim.h.now + Duration::from_secs(200);
    sim.run(end);
    sim.check_all_done();
    let s = sim.h.stats();
    assert_eq!(s.get(Mib::PassiveOpens), 500);
    assert!(
        s.get(Mib::SyncookiesSent) > 10_000,
        "the flood was answered with cookies"
    );
    assert!(
        s.get(Mib::SyncookiesRecv) > 0,
        "some clients came in through cookies"
    );
    assert_eq!(s.get(Mib::TCPReqQFullDrop), 0);
    assert!(s.get(Mib::ListenDrops) >= s.get(Mib::ListenOverflows));
    assert!(sim.h.listener().synflood_warned());
    assert_eq!(sim.h.qlen(), 0);
    assert_eq!(sim.h.stack.live_requests(), 0);
}

#[test]
fn syn_flood_in_always_cookie_mode_keeps_no_state() {
    let link = Link {
        loss: 0.0,
        dup: 0.0,
        jitter_ms: 5,
    };
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Always,
        ..ListenerConfig::default()
    };
    let mut sim = Sim::new(cfg, 16, link, 3);
    for i in 0..200u16 {
        sim.add_client(
            30_000 + i,
            sim.h.now + Duration::from_millis(u64::from(i) * 10),
        );
    }
    for _ in 0..5000 {
        sim.flood_syn();
    }
    let end = sim.h.now + Duration::from_secs(30);
    sim.run(end);
    sim.check_all_done();
    let s = sim.h.stats();
    assert_eq!(s.get(Mib::SyncookiesRecv), 200);
    assert_eq!(s.get(Mib::PassiveOpens), 200);
    assert_eq!(sim.h.worker.requests(), 0, "K-4: cookies keep no request");
    for c in sim.accepted.values() {
        assert!(c.from_cookie);
        assert_eq!(c.mss, 1460, "K-2: the MSS table entry of 1460");
        assert_eq!(
            c.snd_wscale,
            Some(7),
            "K-3: window scale carried in the timestamp"
        );
        assert!(c.sack);
    }
}
