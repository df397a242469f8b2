//! Building a segment from nothing: what a peer, a load generator or a test sends, and what the
//! engine sends without a received frame to answer in (a timer's SYN-ACK retransmission, the
//! RST of a child). The TCP header is the same [`TcpParams`] the in-place builders of
//! [`crate::reply`] take, and the IP header comes from the same writer.

use crate::checksum::{self, PROTO_TCP};
use crate::ethernet::{self, MacAddr};
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::reply::{IpParams, TcpParams};
use crate::tcp::{self, TcpPacket};
use crate::{Error, Result};
use core::net::IpAddr;

/// Everything of a segment to emit.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSpec<'a> {
    /// Source MAC.
    pub eth_src: MacAddr,
    /// Destination MAC.
    pub eth_dst: MacAddr,
    /// 802.1Q TCI.
    pub vlan: Option<u16>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// TTL / hop limit, TOS / traffic class (its low two bits are the ECN field), flow label.
    pub ip: IpParams,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEQ, ACK, flags, window, options.
    pub tcp: TcpParams,
    /// Payload.
    pub payload: &'a [u8],
}

/// Writes the frame of `s` into `buf`; returns its length. IPv4 gets DF and ID 0.
pub fn emit_segment(buf: &mut [u8], s: &SegmentSpec<'_>) -> Result<usize> {
    let (ethertype, ip_len) = match s.src {
        IpAddr::V4(_) => (ethernet::ETHERTYPE_IPV4, ipv4::HEADER_LEN),
        IpAddr::V6(_) => (ethernet::ETHERTYPE_IPV6, ipv6::HEADER_LEN),
    };
    let l3 = ethernet::emit_header(buf, s.eth_dst, s.eth_src, s.vlan, ethertype)?;
    let l4 = l3 + ip_len;
    let tcp_hlen = tcp::HEADER_LEN + s.tcp.options.len();
    let seg_len = tcp_hlen + s.payload.len();
    let end = l4 + seg_len;
    if buf.len() < end || seg_len > usize::from(u16::MAX) - ip_len {
        return Err(Error::BufferTooSmall);
    }
    {
        let b = &mut buf[l4..end];
        b[..tcp::HEADER_LEN].fill(0);
        let mut t = TcpPacket::new_unchecked(&mut b[..]);
        t.set_src_port(s.src_port);
        t.set_dst_port(s.dst_port);
        t.set_seq(s.tcp.seq);
        t.set_ack(s.tcp.ack);
        t.set_header_len(tcp_hlen);
        t.set_flags(s.tcp.flags);
        t.set_window(s.tcp.window);
        s.tcp
            .options
            .emit(&mut b[tcp::HEADER_LEN..tcp_hlen])
            .ok_or(Error::BufferTooSmall)?;
        b[tcp_hlen..].copy_from_slice(s.payload);
    }
    let pseudo = emit_ip_header(&mut buf[l3..l4], s.src, s.dst, &s.ip, seg_len)?;
    let c = checksum::finish(checksum::accumulate(pseudo, &buf[l4..end]));
    buf[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    Ok(end)
}

/// Writes an IPv4 (no options, DF, ID 0) or IPv6 header for a TCP segment of `seg_len` bytes
/// into `buf` (exactly the header's length) and returns the TCP pseudo-header sum. The one
/// place both the replies of [`crate::reply`] and the segments of [`emit_segment`] get their
/// IP header from.
///
/// The IPv4 header checksum is summed from the values written instead of being read back:
/// a load spanning several fresh narrow stores cannot be store-forwarded (see `reply.rs`).
pub(crate) fn emit_ip_header(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    ip: &IpParams,
    seg_len: usize,
) -> Result<u64> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total_len = (ipv4::HEADER_LEN + seg_len) as u32;
            let mut p = Ipv4Packet::new_unchecked(buf);
            p.set_version_and_header_len(ipv4::HEADER_LEN);
            p.set_tos(ip.tos);
            p.set_total_len(total_len as u16);
            p.set_ident(0);
            p.set_flags_frag(ipv4::FLAG_DF);
            p.set_ttl(ip.ttl);
            p.set_protocol(PROTO_TCP);
            p.set_src_addr(src);
            p.set_dst_addr(dst);
            let sum = u64::from(0x4500_0000 | (u32::from(ip.tos) << 16) | total_len)
                + u64::from(ipv4::FLAG_DF)
                + u64::from((u32::from(ip.ttl) << 24) | (u32::from(PROTO_TCP) << 16))
                + u64::from(u32::from(src))
                + u64::from(u32::from(dst));
            p.set_checksum(checksum::finish(sum));
            debug_assert!(p.verify_checksum());
            Ok(checksum::pseudo_header_v4(
                src,
                dst,
                PROTO_TCP,
                seg_len as u16,
            ))
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut p = Ipv6Packet::new_unchecked(buf);
            p.set_version_tc_flow(ip.tos, ip.flow_label);
            p.set_payload_len(seg_len as u16);
            p.set_next_header(PROTO_TCP);
            p.set_hop_limit(ip.ttl);
            p.set_src_addr(src);
            p.set_dst_addr(dst);
            Ok(checksum::pseudo_header_v6(
                src,
                dst,
                PROTO_TCP,
                seg_len as u32,
            ))
        }
        // Addresses of two families: no such packet.
        _ => Err(Error::BadIpHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqNumber;
    use crate::tcp::TcpFlags;
    use crate::tcp_options::{OptionsOut, Timestamps};

    #[test]
    fn emitted_segment_parses_back() {
        for (src, dst) in [("198.18.0.2", "198.18.0.1"), ("2001:2::2", "2001:2::1")] {
            let spec = SegmentSpec {
                eth_src: [2, 0, 0, 0, 0, 2],
                eth_dst: [2, 0, 0, 0, 0, 1],
                vlan: Some(5),
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                ip: IpParams {
                    ttl: 64,
                    tos: 0,
                    flow_label: 0,
                },
                src_port: 40000,
                dst_port: 80,
                tcp: TcpParams {
                    seq: SeqNumber(7),
                    ack: SeqNumber(9),
                    flags: TcpFlags::ACK | TcpFlags::PSH,
                    window: 502,
                    options: OptionsOut {
                        timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
                        ..OptionsOut::default()
                    },
                },
                payload: b"hello",
            };
            let mut buf = [0u8; 200];
            let n = emit_segment(&mut buf, &spec).unwrap();
            let p = crate::parse_frame(&buf[..n]).unwrap();
            assert_eq!(p.seg.vlan, Some(5));
            assert_eq!(p.seg.src, spec.src);
            assert_eq!(p.seg.seq, SeqNumber(7));
            assert_eq!(
                p.seg.options.timestamps,
                Some(Timestamps { tsval: 1, tsecr: 2 })
            );
            assert_eq!(p.payload(&buf[..n]), b"hello");
            // V-5: the flow label reaches the IPv6 header.
            let labelled = SegmentSpec {
                ip: IpParams {
                    flow_label: 0xabcde,
                    ..spec.ip
                },
                ..spec
            };
            let n = emit_segment(&mut buf, &labelled).unwrap();
            if spec.src.is_ipv6() {
                let l3 = 18; // 14 + the tag
                let word = u32::from_be_bytes(buf[l3..l3 + 4].try_into().unwrap());
                assert_eq!(word & 0xf_ffff, 0xabcde);
            }
            crate::parse_frame(&buf[..n]).unwrap();
            assert_eq!(
                emit_segment(&mut buf[..n - 1], &spec),
                Err(Error::BufferTooSmall)
            );
        }
    }
}
