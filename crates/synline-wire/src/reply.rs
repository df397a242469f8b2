//! Replies built in place, in the buffer the segment arrived in.
//!
//! Every reply has the same skeleton, written by [`build_reply`]:
//! ```text
//! received:  | eth (+tag) | IP (+options) | TCP (+options) | payload |
//! reply:     | eth (+tag) | IP (no options) | TCP (+reply options) |
//!              MACs swapped, tag kept; addresses and ports swapped; lengths and both checksums new
//! ```
//! The received IP options and payload are not echoed (S-8: data in a SYN is discarded). The
//! reply may be longer than the received frame (a bare SYN grows 20 bytes of options into a
//! SYN-ACK), so the buffer must have room: an AF_XDP frame is a full UMEM chunk.
//!
//! The caller decides every TCP and IP value; the builders here only write bytes:
//! - [`build_synack`]: X-1..X-5 (IPv4), V-5 (IPv6);
//! - [`build_rst`]: P-1, whose sequence numbers follow from the segment alone;
//! - [`build_ack`]: P-2 (and the RFC 5961 challenge ACK, which has the same shape).

use crate::checksum::{self, PROTO_TCP};
use crate::ethernet::EthernetFrame;
use crate::frame::{Family, ParsedFrame};
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::seq::SeqNumber;
use crate::tcp::{self, TcpFlags, TcpPacket};
use crate::tcp_options::{OptionsOut, Timestamps};
use crate::{Error, Result};
use core::net::IpAddr;

/// IP-level values of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpParams {
    /// IPv4 TTL or IPv6 hop limit (X-5: 64 unless the listener sets IP_TTL).
    pub ttl: u8,
    /// IPv4 TOS or IPv6 traffic class (X-5: 0, Not-ECT).
    pub tos: u8,
    /// IPv6 flow label (V-5); ignored for IPv4.
    pub flow_label: u32,
}

impl Default for IpParams {
    fn default() -> Self {
        IpParams {
            ttl: 64,
            tos: 0,
            flow_label: 0,
        }
    }
}

/// TCP-level values of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpParams {
    /// SEQ.
    pub seq: SeqNumber,
    /// ACK (written whatever the flags say, as the kernel does; 0 when ACK is clear).
    pub ack: SeqNumber,
    /// Flags.
    pub flags: TcpFlags,
    /// Window as written on the wire.
    pub window: u16,
    /// Options.
    pub options: OptionsOut,
}

/// Writes the reply skeleton over the received frame; returns the reply's frame length.
///
/// `buf` is the whole buffer (its length is the capacity), `parsed` what [`crate::parse_frame`]
/// returned for it.
pub fn build_reply(
    buf: &mut [u8],
    parsed: &ParsedFrame,
    ip: &IpParams,
    tcp: &TcpParams,
) -> Result<usize> {
    let (l3, seg) = (parsed.layout.l3, &parsed.seg);
    let ip_len = match parsed.layout.family {
        Family::V4 => ipv4::HEADER_LEN,
        Family::V6 => ipv6::HEADER_LEN,
    };
    let l4 = l3 + ip_len;
    let tcp_len = tcp::HEADER_LEN + tcp.options.len();
    let end = l4 + tcp_len;
    if buf.len() < end {
        return Err(Error::BufferTooSmall);
    }
    let buf = &mut buf[..end];

    // L2: swap MACs in place; a VLAN tag stays where it is.
    EthernetFrame::new_checked(&mut buf[..])?.swap_addrs();

    // L4 first: the TCP header may move (the received IP header may have had options), and it
    // is rebuilt entirely from the by-value summary, so nothing of the old bytes is read.
    {
        let seg_bytes = &mut buf[l4..end];
        seg_bytes[..tcp::HEADER_LEN].fill(0);
        let mut t = TcpPacket::new_unchecked(seg_bytes);
        t.set_src_port(seg.dst_port);
        t.set_dst_port(seg.src_port);
        t.set_seq(tcp.seq);
        t.set_ack(tcp.ack);
        t.set_header_len(tcp_len);
        t.set_flags(tcp.flags);
        t.set_window(tcp.window);
        t.set_urgent(0);
        let opts = &mut t.into_inner()[tcp::HEADER_LEN..];
        tcp.options.emit(opts).ok_or(Error::BufferTooSmall)?;
    }

    // L3, and the pseudo header for the TCP checksum.
    let pseudo = match (seg.dst, seg.src) {
        (IpAddr::V4(me), IpAddr::V4(peer)) => {
            let mut p = Ipv4Packet::new_unchecked(&mut buf[l3..l4]);
            p.set_version_and_header_len(ipv4::HEADER_LEN);
            p.set_tos(ip.tos);
            p.set_total_len((ip_len + tcp_len) as u16);
            p.set_ident(0);
            p.set_flags_frag(ipv4::FLAG_DF);
            p.set_ttl(ip.ttl);
            p.set_protocol(PROTO_TCP);
            p.set_src_addr(me);
            p.set_dst_addr(peer);
            p.fill_checksum();
            checksum::pseudo_header_v4(me, peer, PROTO_TCP, tcp_len as u16)
        }
        (IpAddr::V6(me), IpAddr::V6(peer)) => {
            let mut p = Ipv6Packet::new_unchecked(&mut buf[l3..l4]);
            p.set_version_tc_flow(ip.tos, ip.flow_label);
            p.set_payload_len(tcp_len as u16);
            p.set_next_header(PROTO_TCP);
            p.set_hop_limit(ip.ttl);
            p.set_src_addr(me);
            p.set_dst_addr(peer);
            checksum::pseudo_header_v6(me, peer, PROTO_TCP, tcp_len as u32)
        }
        // parse_frame never mixes families.
        _ => return Err(Error::BadIpHeader),
    };
    let csum = checksum::finish(checksum::accumulate(pseudo, &buf[l4..end]));
    buf[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
    Ok(end)
}

/// The SYN-ACK decisions of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynAck {
    /// ISS (X-2: SEQ = ISS).
    pub iss: SeqNumber,
    /// Window to write (X-2: min(rcv_wnd, 65535), never scaled).
    pub window: u16,
    /// Set ECE (X-1: ECN negotiated, Q-2).
    pub ece: bool,
    /// Options (X-3, X-4).
    pub options: OptionsOut,
}

/// Turns a received SYN into the SYN-ACK (X-1..X-5, V-5): SEQ = ISS, ACK = IRS + 1.
pub fn build_synack(buf: &mut [u8], syn: &ParsedFrame, ip: &IpParams, s: &SynAck) -> Result<usize> {
    let flags = if s.ece {
        TcpFlags::SYN_ACK | TcpFlags::ECE
    } else {
        TcpFlags::SYN_ACK
    };
    let tcp = TcpParams {
        seq: s.iss,
        ack: syn.seg.seq + 1,
        flags,
        window: s.window,
        options: s.options,
    };
    build_reply(buf, syn, ip, &tcp)
}

/// Turns a segment into the RST of P-1.
///
/// With ACK set in the segment: SEQ = SEG.ACK, ACK clear. Otherwise SEQ = 0 and
/// ACK = SEG.SEQ + SEG.LEN with the ACK flag. Window 0, no options. Never in reply to an RST.
pub fn build_rst(buf: &mut [u8], seg: &ParsedFrame, ip: &IpParams) -> Result<usize> {
    let s = &seg.seg;
    if s.flags.rst() {
        return Err(Error::ReplyToRst);
    }
    let tcp = if s.flags.ack() {
        TcpParams {
            seq: s.ack,
            ack: SeqNumber(0),
            flags: TcpFlags::RST,
            window: 0,
            options: OptionsOut::default(),
        }
    } else {
        TcpParams {
            seq: SeqNumber(0),
            ack: s.end_seq(),
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            options: OptionsOut::default(),
        }
    };
    build_reply(buf, seg, ip, &tcp)
}

/// Turns a segment into a bare ACK (P-2): the caller gives SEQ, ACK, window and, when the
/// request has a non-zero ts_recent, the timestamps (written as NOP NOP TS).
pub fn build_ack(
    buf: &mut [u8],
    seg: &ParsedFrame,
    ip: &IpParams,
    seq: SeqNumber,
    ack: SeqNumber,
    window: u16,
    ts: Option<Timestamps>,
) -> Result<usize> {
    let options = OptionsOut {
        timestamps: ts,
        ..OptionsOut::default()
    };
    build_reply(
        buf,
        seg,
        ip,
        &TcpParams {
            seq,
            ack,
            flags: TcpFlags::ACK,
            window,
            options,
        },
    )
}
