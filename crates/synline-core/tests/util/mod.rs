//! Test harness: a stack with one listener, a worker, virtual time, and peers that build real
//! frames (with the wire crate) and read the engine's replies back.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use synline_core::{
    AddressFamily, Child, ListenerConfig, Secrets, Snapshot, Socket, Stack, StackConfig, Verdict,
    Worker,
};
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::{parse_frame, OptionsOut, ParsedFrame, SeqNumber, TcpFlags, Timestamps};

pub const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
pub const FRAME: usize = 2048;

/// A reply the engine wrote: its bytes and parse.
#[derive(Debug, Clone)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub p: ParsedFrame,
}

impl Reply {
    pub fn from_bytes(bytes: &[u8]) -> Reply {
        let p = parse_frame(bytes).expect("the engine's replies always parse, checksums included");
        Reply {
            bytes: bytes.to_vec(),
            p,
        }
    }
    pub fn flags(&self) -> TcpFlags {
        self.p.seg.flags
    }
    pub fn seq(&self) -> SeqNumber {
        self.p.seg.seq
    }
    pub fn ack(&self) -> SeqNumber {
        self.p.seg.ack
    }
    pub fn tsval(&self) -> Option<u32> {
        self.p.seg.options.timestamps.map(|t| t.tsval)
    }
    pub fn is_synack(&self) -> bool {
        self.flags().syn() && self.flags().ack() && !self.flags().rst()
    }
    pub fn is_rst(&self) -> bool {
        self.flags().rst()
    }
    pub fn is_bare_ack(&self) -> bool {
        self.flags().ack() && !self.flags().syn() && !self.flags().rst()
    }
}

/// Outcome of feeding one frame.
#[derive(Debug, Clone)]
pub struct Out {
    pub verdict: Verdict,
    pub reply: Option<Reply>,
}

impl Out {
    pub fn reply(&self) -> &Reply {
        self.reply
            .as_ref()
            .unwrap_or_else(|| panic!("expected a reply, got {:?}", self.verdict))
    }
}

/// One stack, one listener, one worker, a clock.
pub struct Harness {
    pub stack: Stack,
    pub worker: Worker,
    pub sock: Socket,
    pub now: Duration,
    buf: Vec<u8>,
}

pub fn v4_server() -> SocketAddr {
    "198.18.0.1:80".parse().unwrap()
}

pub fn v6_server() -> SocketAddr {
    "[2001:2::1]:80".parse().unwrap()
}

impl Harness {
    /// A listener on 198.18.0.1:80 with `cfg` and backlog `b`.
    pub fn new(cfg: ListenerConfig, backlog: i32) -> Harness {
        Self::on(v4_server(), cfg, backlog)
    }

    pub fn on(addr: SocketAddr, cfg: ListenerConfig, backlog: i32) -> Harness {
        Self::with_stack(StackConfig::default(), addr, cfg, backlog)
    }

    pub fn with_stack(
        sc: StackConfig,
        addr: SocketAddr,
        cfg: ListenerConfig,
        backlog: i32,
    ) -> Harness {
        let stack = Stack::new(sc, Secrets::from_seed(42));
        let fam = if addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let mut sock = stack.socket(fam).unwrap();
        sock.set_config(cfg).unwrap();
        sock.bind(addr).unwrap();
        sock.listen(backlog).unwrap();
        let worker = stack.worker(0).unwrap();
        Harness {
            stack,
            worker,
            sock,
            now: Duration::from_secs(1000),
            buf: vec![0; FRAME],
        }
    }

    pub fn listener(&self) -> &std::sync::Arc<synline_core::Listener> {
        self.sock.listener().unwrap()
    }

    pub fn qlen(&self) -> u32 {
        self.listener().qlen()
    }

    pub fn young(&self) -> u32 {
        self.listener().young()
    }

    pub fn stats(&self) -> Snapshot {
        self.stack.stats()
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Feeds one frame at the current time.
    pub fn feed(&mut self, frame: &[u8]) -> Out {
        self.buf.fill(0);
        self.buf[..frame.len()].copy_from_slice(frame);
        let verdict = self
            .worker
            .handle_frame(&mut self.buf, frame.len(), self.now);
        let reply = match verdict {
            Verdict::Transmit(n) => Some(Reply::from_bytes(&self.buf[..n])),
            _ => None,
        };
        Out { verdict, reply }
    }

    /// Runs the timers at the current time; returns every retransmitted SYN-ACK.
    pub fn timers(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; FRAME];
        while let Some(n) = self.worker.poll_timers(self.now, &mut buf) {
            out.push(Reply::from_bytes(&buf[..n]));
        }
        out
    }

    /// Advances the clock in 1 ms steps up to `until` (absolute), collecting (time, frame)
    /// of every retransmission.
    pub fn run_until(&mut self, until: Duration) -> Vec<(Duration, Reply)> {
        let mut out = Vec::new();
        while self.now < until {
            self.now = (self.now + Duration::from_millis(1)).min(until);
            for r in self.timers() {
                out.push((self.now, r));
            }
        }
        out
    }

    pub fn accept(&self) -> Option<Child> {
        self.sock.accept().ok()
    }
}

/// A client as the Linux kernel would behave, built by hand so tests choose every field.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub server: SocketAddr,
    pub isn: SeqNumber,
    pub options: OptionsOut,
    pub window: u16,
    pub tos: u8,
    pub vlan: Option<u16>,
    /// Set from the SYN-ACK: the server's ISS.
    pub iss: SeqNumber,
    /// The server's last TSval, echoed in TSecr.
    pub ts_recent: u32,
}

impl Peer {
    /// A Linux-like client (MSS 1460, SACK, TS, WS 7) from 198.18.0.2:port.
    pub fn v4(port: u16) -> Peer {
        Peer::new(
            SocketAddr::new("198.18.0.2".parse().unwrap(), port),
            v4_server(),
        )
    }

    pub fn v6(port: u16) -> Peer {
        let mut p = Peer::new(
            SocketAddr::new("2001:2::2".parse().unwrap(), port),
            v6_server(),
        );
        p.options.mss = Some(1440);
        p
    }

    pub fn new(addr: SocketAddr, server: SocketAddr) -> Peer {
        Peer {
            addr,
            server,
            isn: SeqNumber(1_000_000 + u32::from(addr.port())),
            options: OptionsOut {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps {
                    tsval: 5000,
                    tsecr: 0,
                }),
            },
            window: 64240,
            tos: 0,
            vlan: None,
            iss: SeqNumber(0),
            ts_recent: 0,
        }
    }

    /// No options at all.
    pub fn bare(mut self) -> Peer {
        self.options = OptionsOut::default();
        self
    }

    pub fn tsval(&self) -> u32 {
        self.options.timestamps.map_or(0, |t| t.tsval)
    }

    pub fn frame(
        &self,
        flags: TcpFlags,
        seq: SeqNumber,
        ack: SeqNumber,
        options: OptionsOut,
        payload: &[u8],
    ) -> Vec<u8> {
        let spec = SegmentSpec {
            eth_src: CLIENT_MAC,
            eth_dst: SERVER_MAC,
            vlan: self.vlan,
            src: self.addr.ip(),
            dst: self.server.ip(),
            ttl: 64,
            tos: self.tos,
            src_port: self.addr.port(),
            dst_port: self.server.port(),
            seq,
            ack,
            flags,
            window: self.window,
            options,
            payload,
        };
        let mut buf = vec![0u8; FRAME];
        let n = emit_segment(&mut buf, &spec).unwrap();
        buf.truncate(n);
        buf
    }

    /// The SYN.
    pub fn syn(&self) -> Vec<u8> {
        self.frame(TcpFlags::SYN, self.isn, SeqNumber(0), self.options, &[])
    }

    /// Learns ISS and the TSval to echo from a SYN-ACK.
    pub fn learn(&mut self, synack: &Reply) {
        assert!(synack.is_synack(), "not a SYN-ACK: {:?}", synack.flags());
        assert_eq!(synack.ack(), self.isn + 1, "X-2: ACK = IRS + 1");
        self.iss = synack.seq();
        if let Some(ts) = synack.tsval() {
            self.ts_recent = ts;
        }
    }

    /// Options of a non-SYN segment: timestamps only (as Linux sends), TSval advanced.
    pub fn ack_options(&self, tsval_advance: u32) -> OptionsOut {
        OptionsOut {
            timestamps: self.options.timestamps.map(|t| Timestamps {
                tsval: t.tsval.wrapping_add(tsval_advance),
                tsecr: self.ts_recent,
            }),
            ..OptionsOut::default()
        }
    }

    /// The third ACK, with `payload`.
    pub fn third_ack(&self, payload: &[u8]) -> Vec<u8> {
        let flags = if payload.is_empty() {
            TcpFlags::ACK
        } else {
            TcpFlags::ACK | TcpFlags::PSH
        };
        self.frame(
            flags,
            self.isn + 1,
            self.iss + 1,
            self.ack_options(1),
            payload,
        )
    }

    /// A segment after the SYN with any flags.
    pub fn seg(&self, flags: TcpFlags, seq: SeqNumber, ack: SeqNumber) -> Vec<u8> {
        self.frame(flags, seq, ack, self.ack_options(1), &[])
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }
}

/// SYN, SYN-ACK, third ACK: returns the SYN-ACK; the child is on the accept list.
pub fn handshake(h: &mut Harness, p: &mut Peer) -> Reply {
    let out = h.feed(&p.syn());
    let synack = out.reply().clone();
    p.learn(&synack);
    let out = h.feed(&p.third_ack(&[]));
    assert_eq!(
        out.verdict,
        Verdict::Consumed,
        "third ACK should make a child"
    );
    synack
}
