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
use synline_wire::reply::{IpParams, TcpParams};
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
            ip: IpParams {
                ttl: 64,
                tos: self.tos,
                flow_label: 0,
            },
            src_port: self.addr.port(),
            dst_port: self.server.port(),
            tcp: TcpParams {
                seq,
                ack,
                flags,
                window: self.window,
                options,
            },
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

// ---------------------------------------------------------------------------------------------
// Helpers of rules_listen.rs and rules_syncookie.rs: frame surgery the emitter cannot do (raw
// option bytes, urgent pointer, reserved bits, checksums) and the header fields of a reply.

/// Raw frame surgery and reply header fields (rules_listen.rs, rules_syncookie.rs).
pub mod wirebits {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use synline_wire::checksum;

    /// (l3, l4, end, v6) of a frame (one optional 802.1Q tag), read without validating it.
    pub fn offsets(f: &[u8]) -> (usize, usize, usize, bool) {
        let l3 = if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
            18
        } else {
            14
        };
        let ethertype = u16::from_be_bytes([f[l3 - 2], f[l3 - 1]]);
        if ethertype == 0x86dd {
            let l4 = l3 + 40;
            let plen = usize::from(u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]));
            (l3, l4, l4 + plen, true)
        } else {
            let ihl = usize::from(f[l3] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]));
            (l3, l3 + ihl, l3 + total, false)
        }
    }

    /// Recomputes the TCP checksum of a frame a test edited.
    pub fn fix_tcp_checksum(f: &mut [u8]) {
        let (l3, l4, end, v6) = offsets(f);
        f[l4 + 16] = 0;
        f[l4 + 17] = 0;
        let len = end - l4;
        let pseudo = if v6 {
            let s: [u8; 16] = f[l3 + 8..l3 + 24].try_into().unwrap();
            let d: [u8; 16] = f[l3 + 24..l3 + 40].try_into().unwrap();
            checksum::pseudo_header_v6(Ipv6Addr::from(s), Ipv6Addr::from(d), 6, len as u32)
        } else {
            let s: [u8; 4] = f[l3 + 12..l3 + 16].try_into().unwrap();
            let d: [u8; 4] = f[l3 + 16..l3 + 20].try_into().unwrap();
            checksum::pseudo_header_v4(Ipv4Addr::from(s), Ipv4Addr::from(d), 6, len as u16)
        };
        let c = checksum::finish(checksum::accumulate(pseudo, &f[l4..end]));
        f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// A segment from `p` whose TCP option bytes are exactly `opts` (a multiple of 4, at most
    /// 40 bytes): for malformed or unusual options the emitter cannot write.
    pub fn with_options(
        p: &Peer,
        flags: TcpFlags,
        seq: SeqNumber,
        ack: SeqNumber,
        opts: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        assert!(
            opts.len().is_multiple_of(4) && opts.len() <= 40,
            "options must fill whole words"
        );
        let mut body = opts.to_vec();
        body.extend_from_slice(payload);
        let mut f = p.frame(flags, seq, ack, OptionsOut::default(), &body);
        let (_, l4, _, _) = offsets(&f);
        f[l4 + 12] = ((((20 + opts.len()) / 4) as u8) << 4) | (f[l4 + 12] & 0x0f);
        fix_tcp_checksum(&mut f);
        f
    }

    /// The SYN of `p` with raw option bytes.
    pub fn syn_with_options(p: &Peer, opts: &[u8]) -> Vec<u8> {
        with_options(p, TcpFlags::SYN, p.isn, SeqNumber(0), opts, &[])
    }

    /// Sets the urgent pointer (checksum fixed).
    pub fn set_urgent(f: &mut [u8], v: u16) {
        let (_, l4, _, _) = offsets(f);
        f[l4 + 18..l4 + 20].copy_from_slice(&v.to_be_bytes());
        fix_tcp_checksum(f);
    }

    /// Sets the low nibble of the data-offset byte: the reserved bits, bit 0 being AccECN's AE
    /// (checksum fixed).
    pub fn set_reserved(f: &mut [u8], bits: u8) {
        let (_, l4, _, _) = offsets(f);
        f[l4 + 12] = (f[l4 + 12] & 0xf0) | (bits & 0x0f);
        fix_tcp_checksum(f);
    }

    /// Sets the data offset field to `words` (checksum fixed).
    pub fn set_data_offset(f: &mut [u8], words: u8) {
        let (_, l4, _, _) = offsets(f);
        f[l4 + 12] = (words << 4) | (f[l4 + 12] & 0x0f);
        fix_tcp_checksum(f);
    }

    /// Breaks the TCP checksum.
    pub fn break_tcp_checksum(f: &mut [u8]) {
        let (_, l4, _, _) = offsets(f);
        f[l4 + 16] ^= 0x5a;
    }

    /// Header fields of a reply, as bytes on the wire.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Hdr {
        /// IPv6 (else IPv4).
        pub v6: bool,
        /// IP header length (20 or 40: no IP options, no IPv6 extension header).
        pub ip_header_len: usize,
        /// IPv4 protocol / IPv6 next header.
        pub protocol: u8,
        /// TTL / hop limit.
        pub ttl: u8,
        /// TOS / traffic class.
        pub tos: u8,
        /// IPv4 identification (0 for IPv6).
        pub ident: u16,
        /// IPv4 flags and fragment offset (0 for IPv6).
        pub flags_frag: u16,
        /// IPv6 flow label (0 for IPv4).
        pub flow_label: u32,
        /// TCP header length in bytes (data offset * 4).
        pub tcp_header_len: usize,
        /// Reserved bits of the data-offset byte (AE is bit 0).
        pub reserved: u8,
        /// The TCP flags byte.
        pub flags: u8,
        /// Window as written.
        pub window: u16,
        /// Urgent pointer.
        pub urgent: u16,
        /// The TCP option bytes.
        pub options: Vec<u8>,
        /// TCP payload length.
        pub payload_len: usize,
    }

    /// The header fields of a reply.
    pub fn hdr(r: &Reply) -> Hdr {
        let f = &r.bytes;
        let (l3, l4, end, v6) = offsets(f);
        let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let thl = usize::from(f[l4 + 12] >> 4) * 4;
        let (protocol, ttl, tos, ident, flags_frag, flow_label) = if v6 {
            let w = u32::from_be_bytes([f[l3], f[l3 + 1], f[l3 + 2], f[l3 + 3]]);
            (f[l3 + 6], f[l3 + 7], (w >> 20) as u8, 0, 0, w & 0x000f_ffff)
        } else {
            (
                f[l3 + 9],
                f[l3 + 8],
                f[l3 + 1],
                be16(l3 + 4),
                be16(l3 + 6),
                0,
            )
        };
        Hdr {
            v6,
            ip_header_len: l4 - l3,
            protocol,
            ttl,
            tos,
            ident,
            flags_frag,
            flow_label,
            tcp_header_len: thl,
            reserved: f[l4 + 12] & 0x0f,
            flags: f[l4 + 13],
            window: be16(l4 + 14),
            urgent: be16(l4 + 18),
            options: f[l4 + 20..l4 + thl].to_vec(),
            payload_len: end - l4 - thl,
        }
    }
}
