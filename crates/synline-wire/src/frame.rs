//! One pass over a received frame: Ethernet (+ one 802.1Q tag), IPv4 or IPv6, TCP.
//!
//! [`parse_frame`] checks every length and both checksums (D-1) and returns a [`ParsedFrame`]:
//! the byte offsets of each layer ([`Layout`]) and a `Copy` summary of the segment
//! ([`Segment`]). The engine decides on the summary alone and then hands the same `Layout` to a
//! builder in [`crate::reply`], which overwrites the buffer: no borrow of the frame outlives
//! the parse.

use crate::checksum::{self, PROTO_TCP};
use crate::ethernet::{self, EthernetFrame, MacAddr};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::{self, Ipv6Packet};
use crate::seq::SeqNumber;
use crate::tcp::{TcpFlags, TcpPacket};
use crate::tcp_options::TcpOptions;
use crate::{Error, Result};
use core::net::IpAddr;

/// IPv6 next-header values that announce an extension header (RFC 8200 section 4, IANA).
const IPV6_EXT_HEADERS: [u8; 9] = [0, 43, 44, 50, 51, 60, 135, 139, 140];

/// Address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Where each layer starts in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the IP header (14, or 18 with a VLAN tag).
    pub l3: usize,
    /// Offset of the TCP header.
    pub l4: usize,
    /// End of the TCP segment (link padding excluded).
    pub end: usize,
    /// IPv4 or IPv6.
    pub family: Family,
}

/// What the engine needs to know of a received segment, by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Source MAC.
    pub eth_src: MacAddr,
    /// Destination MAC.
    pub eth_dst: MacAddr,
    /// 802.1Q TCI, if tagged.
    pub vlan: Option<u16>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// ECN field of the IP header (Q-2 looks at it).
    pub ip_ecn: u8,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEG.SEQ.
    pub seq: SeqNumber,
    /// SEG.ACK.
    pub ack: SeqNumber,
    /// Flags.
    pub flags: TcpFlags,
    /// SEG.WND as on the wire.
    pub window: u16,
    /// Options as S-7 reads them.
    pub options: TcpOptions,
    /// Payload length.
    pub payload_len: u16,
}

impl Segment {
    /// SEG.LEN: payload plus one for SYN and one for FIN (RFC 9293 section 3.4).
    pub fn seg_len(&self) -> u32 {
        u32::from(self.payload_len) + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }

    /// The sequence number after this segment.
    pub fn end_seq(&self) -> SeqNumber {
        self.seq + self.seg_len()
    }
}

/// A parsed frame: offsets and the segment summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame {
    /// Offsets.
    pub layout: Layout,
    /// The segment.
    pub seg: Segment,
}

impl ParsedFrame {
    /// The payload bytes of the segment inside `frame` (the buffer that was parsed).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        let start = self.layout.end - usize::from(self.seg.payload_len);
        frame.get(start..self.layout.end).unwrap_or(&[])
    }
}

/// Parses and validates a whole frame. Never panics; every malformed input is an [`Error`].
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame> {
    let eth = EthernetFrame::new_checked(frame)?;
    let l3 = eth.header_len();
    let (eth_src, eth_dst, vlan) = (eth.src_addr(), eth.dst_addr(), eth.vlan_tci());
    let (family, src, dst, ip_ecn, l4, end, pseudo) = match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(&frame[l3..])?;
            if !ip.verify_checksum() {
                return Err(Error::BadIpChecksum);
            }
            if ip.is_fragment() {
                return Err(Error::Fragment);
            }
            if ip.protocol() != PROTO_TCP {
                return Err(Error::NotTcp);
            }
            let l4 = l3 + ip.header_len();
            let end = l3 + usize::from(ip.total_len());
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            let pseudo = checksum::pseudo_header_v4(s, d, PROTO_TCP, (end - l4) as u16);
            (
                Family::V4,
                IpAddr::V4(s),
                IpAddr::V4(d),
                ip.ecn(),
                l4,
                end,
                pseudo,
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(&frame[l3..])?;
            match ip.next_header() {
                PROTO_TCP => {}
                nh if IPV6_EXT_HEADERS.contains(&nh) => return Err(Error::Ipv6ExtensionHeader),
                _ => return Err(Error::NotTcp),
            }
            let l4 = l3 + ipv6::HEADER_LEN;
            let end = l4 + usize::from(ip.payload_len());
            let (s, d) = (ip.src_addr(), ip.dst_addr());
            let pseudo = checksum::pseudo_header_v6(s, d, PROTO_TCP, (end - l4) as u32);
            (
                Family::V6,
                IpAddr::V6(s),
                IpAddr::V6(d),
                ip.ecn(),
                l4,
                end,
                pseudo,
            )
        }
        _ => return Err(Error::NotIp),
    };
    let segment = &frame[l4..end];
    let tcp = TcpPacket::new_checked(segment)?;
    if !checksum::verifies(checksum::accumulate(pseudo, segment)) {
        return Err(Error::BadTcpChecksum);
    }
    let seg = Segment {
        eth_src,
        eth_dst,
        vlan,
        src,
        dst,
        ip_ecn,
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq(),
        ack: tcp.ack(),
        flags: tcp.flags(),
        window: tcp.window(),
        options: TcpOptions::parse(tcp.options()),
        payload_len: tcp.payload().len() as u16,
    };
    Ok(ParsedFrame {
        layout: Layout {
            l3,
            l4,
            end,
            family,
        },
        seg,
    })
}
