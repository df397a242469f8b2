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
///
/// Always inlined (it has one call site on the hot path): returned out of line, the 120-byte
/// `ParsedFrame` is written field by field and then copied by the caller in 16-byte loads that
/// cannot be store-forwarded, a stall that cost about 2 ns of the ~40 ns SYN to SYN-ACK path
/// (bench/benches/wire.rs).
#[inline(always)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::{ETHERTYPE_ARP, ETHERTYPE_VLAN};
    use crate::ipv4::{FLAG_DF, FLAG_MF};
    use crate::tcp_options::Timestamps;
    use crate::test_frames::{arb, FrameSpec, CLIENT_MAC, SERVER_MAC};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Frames of every shape the parser accepts, for the tests that walk all of them.
    fn valid_specs() -> Vec<(&'static str, FrameSpec)> {
        let v4 = FrameSpec::v4_syn();
        let v6 = FrameSpec::v6_syn();
        std::vec![
            ("v4", v4.clone()),
            (
                "v4 vlan",
                FrameSpec {
                    vlan: Some(0x200a),
                    ..v4.clone()
                }
            ),
            (
                "v4 ihl6",
                FrameSpec {
                    ip_options: std::vec![1, 1, 1, 0],
                    ..v4.clone()
                }
            ),
            (
                "v4 ihl7 vlan payload",
                FrameSpec {
                    vlan: Some(7),
                    ip_options: std::vec![0x94, 4, 0, 0, 1, 1, 1, 0],
                    payload: b"hello".to_vec(),
                    ..v4.clone()
                }
            ),
            (
                "v4 bare",
                FrameSpec {
                    tcp_options: Vec::new(),
                    ..v4
                }
            ),
            ("v6", v6.clone()),
            (
                "v6 vlan payload",
                FrameSpec {
                    vlan: Some(0xfff),
                    payload: std::vec![0xab; 33],
                    ..v6.clone()
                }
            ),
            (
                "v6 bare",
                FrameSpec {
                    tcp_options: Vec::new(),
                    ..v6
                }
            ),
        ]
    }

    #[test]
    fn parses_linux_v4_syn() {
        let f = FrameSpec::v4_syn().build();
        assert_eq!(f.len(), 74);
        let p = parse_frame(&f).unwrap();
        assert_eq!(
            p.layout,
            Layout {
                l3: 14,
                l4: 34,
                end: 74,
                family: Family::V4
            }
        );
        let s = p.seg;
        assert_eq!(s.eth_src, CLIENT_MAC);
        assert_eq!(s.eth_dst, SERVER_MAC);
        assert_eq!(s.vlan, None);
        assert_eq!(s.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(s.dst, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(s.ip_ecn, 0);
        assert_eq!((s.src_port, s.dst_port), (40000, 8080));
        assert_eq!(s.seq, SeqNumber(0xf781_24f2));
        assert_eq!(s.flags, TcpFlags::SYN);
        assert_eq!(s.window, 64240);
        assert_eq!(s.payload_len, 0);
        // S-7 on the Linux option set.
        assert_eq!(s.options.mss, Some(1460));
        assert!(s.options.sack_permitted);
        assert_eq!(
            s.options.timestamps,
            Some(Timestamps {
                tsval: 0x01020304,
                tsecr: 0
            })
        );
        assert_eq!(s.options.wscale, Some(7));
        assert_eq!(s.seg_len(), 1);
        assert_eq!(s.end_seq(), SeqNumber(0xf781_24f3));
    }

    #[test]
    fn parses_v6_syn() {
        let mut spec = FrameSpec::v6_syn();
        spec.tos = 0x02; // ECT(0) in the traffic class
        let f = spec.build();
        assert_eq!(f.len(), 94);
        let p = parse_frame(&f).unwrap();
        assert_eq!(
            p.layout,
            Layout {
                l3: 14,
                l4: 54,
                end: 94,
                family: Family::V6
            }
        );
        assert_eq!(
            p.seg.src,
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2))
        );
        assert_eq!(
            p.seg.dst,
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1))
        );
        assert_eq!(p.seg.ip_ecn, 2);
        assert_eq!(p.seg.options.wscale, Some(7));
    }

    #[test]
    fn vlan_tag_moves_l3_and_is_reported() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let spec = FrameSpec {
                vlan: Some(0x600a),
                ..base
            };
            let f = spec.build();
            let p = parse_frame(&f).unwrap();
            assert_eq!(p.layout.l3, 18);
            assert_eq!(p.layout.l4, spec.l4());
            assert_eq!(p.layout.end, f.len());
            assert_eq!(p.seg.vlan, Some(0x600a));
            assert_eq!(p.seg.options.mss, Some(1460));
        }
    }

    #[test]
    fn ipv4_options_skipped_ihl6_and_ihl7() {
        for words in [1usize, 2, 10] {
            let spec = FrameSpec {
                // Router alert (RFC 2113) then NOPs and EOL: never interpreted.
                ip_options: [[0x94, 4, 0, 0], [1, 1, 1, 0]].concat()[..]
                    .iter()
                    .copied()
                    .cycle()
                    .take(words * 4)
                    .collect(),
                payload: b"xyz".to_vec(),
                ..FrameSpec::v4_syn()
            };
            let f = spec.build();
            assert_eq!(f[14] & 0x0f, 5 + words as u8);
            let p = parse_frame(&f).unwrap();
            assert_eq!(p.layout.l4, 14 + 20 + 4 * words);
            assert_eq!(p.seg.src_port, 40000);
            assert_eq!(p.seg.options.wscale, Some(7));
            assert_eq!(p.seg.payload_len, 3);
            assert_eq!(p.payload(&f), b"xyz");
        }
    }

    /// Cutting a valid frame anywhere short of its end is `Truncated`, never a panic or a parse:
    /// every layer's length is checked before it is read.
    #[test]
    fn truncated_at_every_byte_boundary() {
        for (name, spec) in valid_specs() {
            let f = spec.build();
            assert!(parse_frame(&f).is_ok(), "{name}");
            for n in 0..f.len() {
                assert_eq!(
                    parse_frame(&f[..n]).unwrap_err(),
                    Error::Truncated,
                    "{name} cut at {n}"
                );
            }
        }
    }

    #[test]
    fn d1_bad_ipv4_header_checksum() {
        for vlan in [None, Some(5)] {
            let f = FrameSpec {
                vlan,
                corrupt_ip_checksum: true,
                ..FrameSpec::v4_syn()
            }
            .build();
            assert_eq!(parse_frame(&f).unwrap_err(), Error::BadIpChecksum);
        }
        // The checksum covers the options too.
        let spec = FrameSpec {
            ip_options: std::vec![1, 1, 1, 0],
            ..FrameSpec::v4_syn()
        };
        let mut f = spec.build();
        f[34 + 2] = 0x55;
        assert_eq!(parse_frame(&f).unwrap_err(), Error::BadIpChecksum);
    }

    #[test]
    fn d1_bad_tcp_checksum() {
        for (name, spec) in valid_specs() {
            let f = FrameSpec {
                corrupt_tcp_checksum: true,
                ..spec
            }
            .build();
            assert_eq!(
                parse_frame(&f).unwrap_err(),
                Error::BadTcpChecksum,
                "{name}"
            );
        }
    }

    #[test]
    fn d1_tcp_checksum_covers_pseudo_header_and_payload() {
        // A changed address (v6 has no header checksum: only the pseudo header catches it)...
        let mut f = FrameSpec::v6_syn().build();
        f[14 + 8 + 15] ^= 0x10;
        assert_eq!(parse_frame(&f).unwrap_err(), Error::BadTcpChecksum);
        // ...and a changed payload byte.
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let mut f = FrameSpec {
                payload: b"data".to_vec(),
                ..base
            }
            .build();
            let last = f.len() - 1;
            f[last] ^= 0x01;
            assert_eq!(parse_frame(&f).unwrap_err(), Error::BadTcpChecksum);
        }
    }

    #[test]
    fn d1_tcp_data_offset_below_5_is_bad_header() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            for doff in 0..5 {
                // Checksum filled over the bad header, so only the data offset is wrong.
                let f = FrameSpec {
                    doff_override: Some(doff),
                    ..base.clone()
                }
                .build();
                assert_eq!(
                    parse_frame(&f).unwrap_err(),
                    Error::BadTcpHeader,
                    "doff {doff}"
                );
            }
        }
    }

    #[test]
    fn tcp_data_offset_past_segment_is_truncated() {
        // doff 15 = 60 bytes, but the segment is 40.
        let f = FrameSpec {
            doff_override: Some(15),
            ..FrameSpec::v4_syn()
        }
        .build();
        assert_eq!(parse_frame(&f).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn ipv6_extension_headers_reported() {
        // Hop-by-hop, routing, fragment, destination options, ESP, AH, mobility, HIP, shim6.
        for nh in [0u8, 43, 44, 60, 50, 51, 135, 139, 140] {
            let f = FrameSpec {
                proto: nh,
                ..FrameSpec::v6_syn()
            }
            .build();
            assert_eq!(
                parse_frame(&f).unwrap_err(),
                Error::Ipv6ExtensionHeader,
                "nh {nh}"
            );
        }
    }

    #[test]
    fn not_tcp() {
        // UDP, ICMP, ICMPv6, SCTP.
        for proto in [17u8, 1, 58, 132] {
            for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
                let f = FrameSpec { proto, ..base }.build();
                assert_eq!(parse_frame(&f).unwrap_err(), Error::NotTcp, "proto {proto}");
            }
        }
    }

    #[test]
    fn not_ip() {
        // ARP, LLDP, and a second 802.1Q / 802.1ad tag (QinQ is not unwrapped).
        for et in [ETHERTYPE_ARP, 0x88cc, ETHERTYPE_VLAN, 0x88a8] {
            for vlan in [None, Some(1)] {
                let f = FrameSpec {
                    ethertype: Some(et),
                    vlan,
                    ..FrameSpec::v4_syn()
                }
                .build();
                assert_eq!(
                    parse_frame(&f).unwrap_err(),
                    Error::NotIp,
                    "{et:#x} {vlan:?}"
                );
            }
        }
    }

    #[test]
    fn wrong_ip_version_is_bad_header() {
        // An IPv6 header behind the IPv4 EtherType, and the reverse.
        let mut f = FrameSpec::v6_syn().build();
        f[12..14].copy_from_slice(&crate::ethernet::ETHERTYPE_IPV4.to_be_bytes());
        assert_eq!(parse_frame(&f).unwrap_err(), Error::BadIpHeader);
        let mut f = FrameSpec::v4_syn().build();
        f[12..14].copy_from_slice(&crate::ethernet::ETHERTYPE_IPV6.to_be_bytes());
        // 74 bytes hold a 40-byte "IPv6" header, so the version is what fails.
        assert_eq!(parse_frame(&f).unwrap_err(), Error::BadIpHeader);
    }

    #[test]
    fn ipv4_fragments_rejected() {
        for ff in [FLAG_MF, 1, FRAG_OFFSET_LAST, FLAG_MF | FLAG_DF | 0x10] {
            let f = FrameSpec {
                flags_frag: ff,
                ..FrameSpec::v4_syn()
            }
            .build();
            assert_eq!(parse_frame(&f).unwrap_err(), Error::Fragment, "{ff:#x}");
        }
        // DF alone, or no flag at all, is a whole datagram.
        for ff in [FLAG_DF, 0] {
            let f = FrameSpec {
                flags_frag: ff,
                ..FrameSpec::v4_syn()
            }
            .build();
            assert!(parse_frame(&f).is_ok());
        }
    }
    const FRAG_OFFSET_LAST: u16 = crate::ipv4::FRAG_OFFSET_MASK;

    /// Ethernet pads short frames to 60 bytes, and some drivers leave more behind: the segment
    /// ends at the IP length, and the padding is neither checksummed nor counted as payload.
    #[test]
    fn link_padding_after_ip_length_ignored() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            for payload in [Vec::new(), b"abc".to_vec()] {
                let spec = FrameSpec {
                    tcp_options: Vec::new(),
                    payload: payload.clone(),
                    link_padding: std::vec![0xee; 23],
                    ..base.clone()
                };
                let f = spec.build();
                let p = parse_frame(&f).unwrap();
                assert_eq!(p.layout.end, spec.end());
                assert_eq!(p.layout.end + 23, f.len());
                assert_eq!(usize::from(p.seg.payload_len), payload.len());
                assert_eq!(p.payload(&f), &payload[..]);
            }
        }
    }

    #[test]
    fn seg_len_counts_syn_fin_and_payload() {
        let f = FrameSpec {
            flags: TcpFlags::SYN | TcpFlags::FIN,
            payload: std::vec![0; 10],
            seq: u32::MAX - 3,
            ..FrameSpec::v4_syn()
        }
        .build();
        let s = parse_frame(&f).unwrap().seg;
        assert_eq!(s.seg_len(), 12);
        // Wraps around zero.
        assert_eq!(s.end_seq(), SeqNumber(8));
    }

    /// Offsets of the bytes whose corruption the checksums must catch in a valid frame: for
    /// IPv4 everything after the version/IHL byte (a changed IHL changes the summed region, so
    /// the check is not guaranteed there); for IPv6 the next header, addresses and segment
    /// (version, traffic class, flow label and hop limit are not covered by any checksum; a
    /// changed payload length changes the summed region).
    fn covered(spec: &FrameSpec, i: usize) -> bool {
        let (l3, end) = (spec.l3(), spec.end());
        match spec.src {
            IpAddr::V4(_) => i > l3 && i < end,
            IpAddr::V6(_) => i == l3 + 6 || (i >= l3 + 8 && i < end),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every generated frame parses, and the summary matches what was built.
        #[test]
        fn valid_frames_parse(spec in arb::frame_spec()) {
            let f = spec.build();
            let p = parse_frame(&f).unwrap();
            prop_assert_eq!(p.layout.l3, spec.l3());
            prop_assert_eq!(p.layout.l4, spec.l4());
            prop_assert_eq!(p.layout.end, spec.end());
            prop_assert_eq!(p.seg.vlan, spec.vlan);
            prop_assert_eq!(p.seg.src, spec.src);
            prop_assert_eq!(p.seg.dst, spec.dst);
            prop_assert_eq!(p.seg.ip_ecn, spec.tos & 3);
            prop_assert_eq!((p.seg.src_port, p.seg.dst_port), (spec.src_port, spec.dst_port));
            prop_assert_eq!(p.seg.seq, SeqNumber(spec.seq));
            prop_assert_eq!(p.seg.ack, SeqNumber(spec.ack));
            prop_assert_eq!(p.seg.flags, spec.flags);
            prop_assert_eq!(p.seg.window, spec.window);
            prop_assert_eq!(p.payload(&f), &spec.payload[..]);
        }

        /// Arbitrary bytes: an error or a frame, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_frame(&b);
        }

        /// Arbitrary bytes behind a real Ethernet header, so the IP and TCP code is reached.
        #[test]
        fn arbitrary_ip_never_panics(
            v6 in any::<bool>(),
            vlan in any::<bool>(),
            mut body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut f = std::vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            if vlan {
                f.extend_from_slice(&[0x81, 0, 0, 1]);
            }
            f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
            // Keep the version nibble right half of the time so the length checks get exercised.
            if let Some(b0) = body.first_mut() {
                if *b0 & 0x80 != 0 {
                    *b0 = if v6 { 0x60 } else { 0x40 | (*b0 & 0x0f) };
                }
            }
            f.extend_from_slice(&body);
            let _ = parse_frame(&f);
        }

        /// One byte of a valid frame changed: never a panic; and where a checksum covers the
        /// byte, the frame is rejected (D-1). The internet checksum catches every change
        /// confined to one byte (a one-byte change can't turn 0x0000 into 0xffff).
        #[test]
        fn one_byte_changed_never_panics(spec in arb::frame_spec(), idx in any::<usize>(), x in 1u8..) {
            let mut f = spec.build();
            let i = idx % f.len();
            f[i] ^= x;
            let r = parse_frame(&f);
            if covered(&spec, i) {
                prop_assert!(r.is_err(), "byte {} ^ {:#x} accepted: {:?}", i, x, r);
            }
        }

        /// A valid frame cut short anywhere: never a panic, always an error unless only link
        /// padding was removed.
        #[test]
        fn random_truncation(spec in arb::frame_spec(), cut in any::<usize>()) {
            let f = spec.build();
            let n = cut % (f.len() + 1);
            let r = parse_frame(&f[..n]);
            if n < spec.end() {
                prop_assert_eq!(r.unwrap_err(), Error::Truncated);
            } else {
                prop_assert!(r.is_ok());
            }
        }
    }
}
