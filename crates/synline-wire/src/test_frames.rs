//! Test-only frame builder shared by the unit tests of `frame` and `reply`.
//!
//! Frames are assembled with the crate's own setters and checksum functions. That is circular
//! only in appearance: `checksum` is checked against a naive RFC 1071 sum and known values in
//! its own tests, and `tests/kernel_fixtures.rs` checks parse and build against frames the
//! Linux kernel produced.

use crate::checksum::{self, PROTO_TCP};
use crate::ethernet::{self, MacAddr};
use crate::ipv4::{self, Ipv4Packet};
use crate::ipv6::{self, Ipv6Packet};
use crate::seq::SeqNumber;
use crate::tcp::{self, TcpFlags, TcpPacket};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::vec::Vec;

/// The client side of every hand-built frame: the fixture addresses of deploy/fixtures.
pub const CLIENT_MAC: MacAddr = [2, 0, 0, 0, 0, 2];
pub const SERVER_MAC: MacAddr = [2, 0, 0, 0, 0, 1];

/// A Linux client's SYN options: MSS 1460, SACK-permitted, TS (TSval 0x01020304), NOP, WS 7.
pub const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
];

/// Everything a test frame can vary. `build` fills both checksums unless told not to.
#[derive(Debug, Clone)]
pub struct FrameSpec {
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub vlan: Option<u16>,
    /// Overrides the EtherType (ARP, QinQ...); `None` follows the address family.
    pub ethertype: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 options, a multiple of 4 bytes (IHL = 5 + len / 4).
    pub ip_options: Vec<u8>,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    pub ident: u16,
    pub flags_frag: u16,
    pub flow_label: u32,
    /// IPv4 protocol / IPv6 next header.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// TCP option bytes; padded with EOL to a multiple of 4.
    pub tcp_options: Vec<u8>,
    /// Written into the data-offset nibble instead of the real header length.
    pub doff_override: Option<u8>,
    pub payload: Vec<u8>,
    /// Bytes after the IP datagram (Ethernet minimum-size padding, FCS remnants).
    pub link_padding: Vec<u8>,
    pub corrupt_ip_checksum: bool,
    pub corrupt_tcp_checksum: bool,
}

impl FrameSpec {
    /// A Linux-like IPv4 SYN from 198.18.0.2:40000 to 198.18.0.1:8080.
    pub fn v4_syn() -> FrameSpec {
        FrameSpec {
            dst_mac: SERVER_MAC,
            src_mac: CLIENT_MAC,
            vlan: None,
            ethertype: None,
            src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            ip_options: Vec::new(),
            tos: 0,
            ttl: 64,
            ident: 0x51d4,
            flags_frag: ipv4::FLAG_DF,
            flow_label: 0,
            proto: PROTO_TCP,
            src_port: 40000,
            dst_port: 8080,
            seq: 0xf781_24f2,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64240,
            tcp_options: LINUX_SYN_OPTIONS.to_vec(),
            doff_override: None,
            payload: Vec::new(),
            link_padding: Vec::new(),
            corrupt_ip_checksum: false,
            corrupt_tcp_checksum: false,
        }
    }

    /// The same SYN over IPv6, 2001:2::2 -> 2001:2::1, flow label 0xc5780.
    pub fn v6_syn() -> FrameSpec {
        FrameSpec {
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
            flow_label: 0xc5780,
            ..FrameSpec::v4_syn()
        }
    }

    /// Length of the TCP options once padded.
    fn tcp_options_len(&self) -> usize {
        self.tcp_options.len().div_ceil(4) * 4
    }

    /// Offset of the IP header.
    pub fn l3(&self) -> usize {
        if self.vlan.is_some() {
            ethernet::VLAN_HEADER_LEN
        } else {
            ethernet::HEADER_LEN
        }
    }

    /// Offset of the TCP header.
    pub fn l4(&self) -> usize {
        self.l3()
            + match self.src {
                IpAddr::V4(_) => ipv4::HEADER_LEN + self.ip_options.len(),
                IpAddr::V6(_) => ipv6::HEADER_LEN,
            }
    }

    /// End of the IP datagram (where link padding starts).
    pub fn end(&self) -> usize {
        self.l4() + tcp::HEADER_LEN + self.tcp_options_len() + self.payload.len()
    }

    /// Assembles the frame.
    pub fn build(&self) -> Vec<u8> {
        assert!(self.ip_options.len().is_multiple_of(4) && self.ip_options.len() <= 40);
        let (l3, l4, end) = (self.l3(), self.l4(), self.end());
        let mut f = std::vec![0u8; end];

        // L2.
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        let family_type = match self.src {
            IpAddr::V4(_) => ethernet::ETHERTYPE_IPV4,
            IpAddr::V6(_) => ethernet::ETHERTYPE_IPV6,
        };
        let ethertype = self.ethertype.unwrap_or(family_type);
        if let Some(tci) = self.vlan {
            f[12..14].copy_from_slice(&ethernet::ETHERTYPE_VLAN.to_be_bytes());
            f[14..16].copy_from_slice(&tci.to_be_bytes());
            f[16..18].copy_from_slice(&ethertype.to_be_bytes());
        } else {
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }

        // L4 header and payload; checksum below, once the pseudo header is known.
        let tcp_hlen = tcp::HEADER_LEN + self.tcp_options_len();
        {
            let mut t = TcpPacket::new_unchecked(&mut f[l4..end]);
            t.set_src_port(self.src_port);
            t.set_dst_port(self.dst_port);
            t.set_seq(SeqNumber(self.seq));
            t.set_ack(SeqNumber(self.ack));
            t.set_header_len(tcp_hlen);
            t.set_flags(self.flags);
            t.set_window(self.window);
        }
        if let Some(d) = self.doff_override {
            f[l4 + 12] = d << 4;
        }
        let o = l4 + tcp::HEADER_LEN;
        f[o..o + self.tcp_options.len()].copy_from_slice(&self.tcp_options);
        f[l4 + tcp_hlen..end].copy_from_slice(&self.payload);
        let seg_len = end - l4;

        // L3.
        let pseudo = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let hlen = ipv4::HEADER_LEN + self.ip_options.len();
                let mut p = Ipv4Packet::new_unchecked(&mut f[l3..l4]);
                p.set_version_and_header_len(hlen);
                p.set_tos(self.tos);
                p.set_total_len((hlen + seg_len) as u16);
                p.set_ident(self.ident);
                p.set_flags_frag(self.flags_frag);
                p.set_ttl(self.ttl);
                p.set_protocol(self.proto);
                p.set_src_addr(s);
                p.set_dst_addr(d);
                f[l3 + ipv4::HEADER_LEN..l4].copy_from_slice(&self.ip_options);
                let mut p = Ipv4Packet::new_unchecked(&mut f[l3..l4]);
                p.fill_checksum();
                if self.corrupt_ip_checksum {
                    let c = p.checksum();
                    p.set_checksum(c ^ 0x0100);
                }
                checksum::pseudo_header_v4(s, d, PROTO_TCP, seg_len as u16)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = Ipv6Packet::new_unchecked(&mut f[l3..l4]);
                p.set_version_tc_flow(self.tos, self.flow_label);
                p.set_payload_len(seg_len as u16);
                p.set_next_header(self.proto);
                p.set_hop_limit(self.ttl);
                p.set_src_addr(s);
                p.set_dst_addr(d);
                checksum::pseudo_header_v6(s, d, PROTO_TCP, seg_len as u32)
            }
            _ => panic!("mixed address families in a test frame"),
        };
        let mut c = checksum::finish(checksum::accumulate(pseudo, &f[l4..end]));
        if self.corrupt_tcp_checksum {
            c ^= 0x0001;
        }
        f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&self.link_padding);
        f
    }
}

/// Proptest strategies over valid frames.
pub mod arb {
    use super::*;
    use crate::tcp_options::{OptionsOut, Timestamps};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// SYN-style option bytes: either the kernel's own layouts for a random option set, or
    /// arbitrary bytes (S-7 never rejects a segment for its options).
    pub fn tcp_options() -> impl Strategy<Value = Vec<u8>> {
        let emitted = (
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u8>()),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(mss, wscale, sack_permitted, ts)| {
                let o = OptionsOut {
                    mss,
                    wscale,
                    sack_permitted,
                    timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                };
                let mut b = std::vec![0u8; o.len()];
                o.emit(&mut b).unwrap();
                b
            });
        prop_oneof![3 => emitted, 1 => vec(any::<u8>(), 0..=40)]
    }

    fn addrs() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<u32>(), any::<u32>())
                .prop_map(|(s, d)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)))),
            (any::<u128>(), any::<u128>())
                .prop_map(|(s, d)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)))),
        ]
    }

    /// Any well-formed TCP frame parse_frame must accept: v4 or v6, optional VLAN tag, IPv4
    /// options, any flags, options and payload, optional link padding.
    pub fn frame_spec() -> impl Strategy<Value = FrameSpec> {
        let l2 = (
            any::<MacAddr>(),
            any::<MacAddr>(),
            proptest::option::of(any::<u16>()),
            vec(any::<u8>(), 0..8),
        );
        let l3 = (
            addrs(),
            vec(any::<[u8; 4]>(), 0..=10),
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            any::<u32>(),
        );
        let l4 = (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u16>(),
            tcp_options(),
            vec(any::<u8>(), 0..64),
        );
        (l2, l3, l4).prop_map(
            |(
                (dst_mac, src_mac, vlan, link_padding),
                ((src, dst), ip_opts, tos, ttl, ident, df, flow),
                (src_port, dst_port, seq, ack, flags, window, tcp_options, payload),
            )| {
                let v4 = matches!(src, IpAddr::V4(_));
                FrameSpec {
                    dst_mac,
                    src_mac,
                    vlan,
                    ethertype: None,
                    src,
                    dst,
                    ip_options: if v4 { ip_opts.concat() } else { Vec::new() },
                    tos,
                    ttl,
                    ident,
                    flags_frag: if df { ipv4::FLAG_DF } else { 0 },
                    flow_label: flow & 0x000f_ffff,
                    proto: PROTO_TCP,
                    src_port,
                    dst_port,
                    seq,
                    ack,
                    flags: TcpFlags(flags),
                    window,
                    tcp_options,
                    doff_override: None,
                    payload,
                    link_padding,
                    corrupt_ip_checksum: false,
                    corrupt_tcp_checksum: false,
                }
            },
        )
    }

    /// A valid SYN (SYN set, ACK/RST/FIN clear; ECE/CWR/PSH/URG random).
    pub fn syn_spec() -> impl Strategy<Value = FrameSpec> {
        (frame_spec(), any::<u8>()).prop_map(|(mut s, extra)| {
            s.flags = TcpFlags(TcpFlags::SYN.0 | (extra & 0xe8));
            s.ack = 0;
            s
        })
    }
}
