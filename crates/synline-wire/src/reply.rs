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

use crate::checksum;
use crate::ethernet::EthernetFrame;
use crate::frame::{Family, ParsedFrame};
use crate::ipv4;
use crate::ipv6;
use crate::seq::SeqNumber;
use crate::tcp::{self, TcpFlags, TcpPacket};
use crate::tcp_options::{OptionsOut, Timestamps};
use crate::{Error, Result};

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
    // Both checksums are summed from the values just written instead of being read back: a
    // load that spans several fresh narrow stores cannot be store-forwarded and waits for them
    // to retire (about 5 of the 20 ns a v4 SYN-ACK build took, bench/benches/wire.rs). Whole
    // 32-bit words are added: RFC 1071's sum of 16-bit words is the same modulo 0xffff, which
    // is all that survives the fold. Debug builds check the result against the bytes.
    let tcp_sum = u64::from((u32::from(seg.dst_port) << 16) | u32::from(seg.src_port))
        + u64::from(tcp.seq.0)
        + u64::from(tcp.ack.0)
        + u64::from(
            (((tcp_len / 4) as u32) << 28) | (u32::from(tcp.flags.0) << 16) | u32::from(tcp.window),
        )
        + tcp.options.checksum_sum();

    // L3, and the pseudo header for the TCP checksum.
    let pseudo = crate::emit::emit_ip_header(&mut buf[l3..l4], seg.dst, seg.src, ip, tcp_len)?;
    let csum = checksum::finish(pseudo + tcp_sum);
    buf[l4 + 16..l4 + 18].copy_from_slice(&csum.to_be_bytes());
    debug_assert!(checksum::verifies(checksum::accumulate(
        pseudo,
        &buf[l4..end]
    )));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::PROTO_TCP;
    use crate::frame::parse_frame;
    use crate::ipv4::Ipv4Packet;
    use crate::ipv6::Ipv6Packet;
    use crate::tcp_options::TcpOptions;
    use crate::test_frames::{arb, FrameSpec};
    use proptest::prelude::*;
    use std::vec::Vec;

    /// The received frame copied into a buffer with `room` spare bytes, as in a UMEM chunk.
    fn with_room(frame: &[u8], room: usize) -> Vec<u8> {
        let mut b = frame.to_vec();
        b.resize(frame.len() + room, 0);
        b
    }

    fn all_options(tsecr: u32) -> OptionsOut {
        OptionsOut {
            mss: Some(1460),
            wscale: Some(10),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 0xb5177b6f,
                tsecr,
            }),
        }
    }

    fn synack(options: OptionsOut) -> SynAck {
        SynAck {
            iss: SeqNumber(0xd9da_0b24),
            window: 65160,
            ece: false,
            options,
        }
    }

    /// What every reply shares: it parses (both checksums verify), is `n` bytes long, carries
    /// the received frame's MACs, addresses and ports swapped and its VLAN tag, has no IP
    /// options, no payload, and the caller's IP values (X-5 for IPv4, V-5 for IPv6).
    fn check_skeleton(reply: &[u8], n: usize, rx: &ParsedFrame, ip: &IpParams) -> ParsedFrame {
        let p = parse_frame(&reply[..n]).expect("a built reply must parse and verify");
        assert_eq!(p.layout.end, n);
        assert_eq!(p.layout.family, rx.layout.family);
        assert_eq!(p.layout.l3, rx.layout.l3);
        let s = &p.seg;
        assert_eq!((s.eth_src, s.eth_dst), (rx.seg.eth_dst, rx.seg.eth_src));
        assert_eq!(s.vlan, rx.seg.vlan);
        if let Some(tci) = rx.seg.vlan {
            // The tag (TPID + TCI) stays byte for byte where it was.
            assert_eq!(reply[12..16], [0x81, 0x00, (tci >> 8) as u8, tci as u8]);
        }
        assert_eq!((s.src, s.dst), (rx.seg.dst, rx.seg.src));
        assert_eq!((s.src_port, s.dst_port), (rx.seg.dst_port, rx.seg.src_port));
        assert_eq!(
            s.payload_len, 0,
            "S-8: nothing of the received payload is echoed"
        );
        let l3 = &reply[p.layout.l3..n];
        match p.layout.family {
            Family::V4 => {
                let h = Ipv4Packet::new_checked(l3).unwrap();
                assert_eq!(h.header_len(), 20, "received IP options are not echoed");
                assert_eq!(p.layout.l4, p.layout.l3 + 20);
                assert_eq!(h.ttl(), ip.ttl);
                assert_eq!(h.tos(), ip.tos);
                assert_eq!(h.flags_frag(), ipv4::FLAG_DF, "X-5/P-1: DF, offset 0");
                assert_eq!(h.ident(), 0, "X-5/P-1: IP ID 0");
                assert_eq!(h.protocol(), PROTO_TCP);
            }
            Family::V6 => {
                let h = Ipv6Packet::new_checked(l3).unwrap();
                assert_eq!(h.hop_limit(), ip.ttl);
                assert_eq!(h.traffic_class(), ip.tos);
                assert_eq!(h.flow_label(), ip.flow_label & 0xfffff);
                assert_eq!(h.next_header(), PROTO_TCP);
            }
        }
        let t = TcpPacket::new_checked(&reply[p.layout.l4..n]).unwrap();
        assert_eq!(t.urgent(), 0, "X-1: urgent pointer 0");
        assert_eq!(reply[p.layout.l4 + 12] & 0x0f, 0, "reserved bits clear");
        p
    }

    fn tcp_options_of(reply: &[u8], p: &ParsedFrame) -> Vec<u8> {
        TcpPacket::new_checked(&reply[p.layout.l4..p.layout.end])
            .unwrap()
            .options()
            .to_vec()
    }

    #[test]
    fn x1_x2_x4_x5_synack_v4() {
        // A SYN with values the reply must not copy: TOS CE, TTL 3, an IP ID, no DF.
        let spec = FrameSpec {
            tos: 0x03,
            ttl: 3,
            ident: 0x1234,
            flags_frag: 0,
            ..FrameSpec::v4_syn()
        };
        let f = spec.build();
        let syn = parse_frame(&f).unwrap();
        let mut buf = with_room(&f, 64);
        let ip = IpParams::default();
        let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0x01020304))).unwrap();
        assert_eq!(n, 74);
        let p = check_skeleton(&buf, n, &syn, &ip);
        let h = Ipv4Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!((h.ttl(), h.tos(), h.ident()), (64, 0, 0), "X-5");
        assert!(h.dont_frag());
        assert_eq!(h.total_len(), 60);
        let s = p.seg;
        assert_eq!(s.seq, SeqNumber(0xd9da_0b24), "X-2: SEQ = ISS");
        assert_eq!(s.ack, SeqNumber(0xf781_24f3), "X-2: ACK = IRS + 1");
        assert_eq!(s.flags, TcpFlags::SYN_ACK, "X-1");
        assert_eq!(s.window, 65160);
        assert_eq!(
            tcp_options_of(&buf, &p),
            [2, 4, 5, 0xb4, 4, 2, 8, 10, 0xb5, 0x17, 0x7b, 0x6f, 1, 2, 3, 4, 1, 3, 3, 10],
            "X-4, doff 10"
        );
    }

    #[test]
    fn x1_ece_when_ecn_negotiated() {
        let f = FrameSpec {
            flags: TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR,
            ..FrameSpec::v4_syn()
        }
        .build();
        let syn = parse_frame(&f).unwrap();
        for ece in [false, true] {
            let mut buf = with_room(&f, 64);
            let s = SynAck {
                ece,
                ..synack(all_options(1))
            };
            let n = build_synack(&mut buf, &syn, &IpParams::default(), &s).unwrap();
            let want = if ece {
                TcpFlags::SYN_ACK | TcpFlags::ECE
            } else {
                TcpFlags::SYN_ACK
            };
            // CWR is never echoed.
            assert_eq!(parse_frame(&buf[..n]).unwrap().seg.flags, want);
        }
    }

    /// X-3/X-4 through the builder: every combination of WS, SACK and TS, MSS always first,
    /// the data offset following the option length.
    #[test]
    fn x4_synack_option_layouts() {
        let f = FrameSpec::v4_syn().build();
        let syn = parse_frame(&f).unwrap();
        let ts = [0, 0, 0, 7, 1, 2, 3, 4];
        let cases: [(bool, bool, bool, &[u8]); 8] = [
            (false, false, false, &[2, 4, 5, 0xb4]),
            (true, false, false, &[2, 4, 5, 0xb4, 1, 3, 3, 10]),
            (false, true, false, &[2, 4, 5, 0xb4, 1, 1, 4, 2]),
            (true, true, false, &[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 10]),
            (false, false, true, &[2, 4, 5, 0xb4, 1, 1, 8, 10]),
            (true, false, true, &[2, 4, 5, 0xb4, 1, 1, 8, 10]),
            (false, true, true, &[2, 4, 5, 0xb4, 4, 2, 8, 10]),
            (true, true, true, &[2, 4, 5, 0xb4, 4, 2, 8, 10]),
        ];
        for (ws, sack, tson, head) in cases {
            let mut want = head.to_vec();
            if tson {
                want.extend_from_slice(&ts);
                if ws {
                    want.extend_from_slice(&[1, 3, 3, 10]);
                }
            }
            let options = OptionsOut {
                mss: Some(1460),
                wscale: ws.then_some(10),
                sack_permitted: sack,
                timestamps: tson.then_some(Timestamps {
                    tsval: 7,
                    tsecr: 0x01020304,
                }),
            };
            let mut buf = with_room(&f, 64);
            let n = build_synack(&mut buf, &syn, &IpParams::default(), &synack(options)).unwrap();
            let p = parse_frame(&buf[..n]).unwrap();
            assert_eq!(
                tcp_options_of(&buf, &p),
                want,
                "ws {ws} sack {sack} ts {tson}"
            );
            assert_eq!(n, 14 + 20 + 20 + want.len());
            assert_eq!(p.seg.options.wscale, options.wscale);
            assert_eq!(p.seg.options.sack_permitted, sack);
        }
    }

    #[test]
    fn v5_synack_v6_hop_limit_traffic_class_flow_label() {
        // The SYN's flow label, traffic class and hop limit are not echoed.
        let f = FrameSpec {
            tos: 0xb8,
            ttl: 9,
            ..FrameSpec::v6_syn()
        }
        .build();
        let syn = parse_frame(&f).unwrap();
        for (tc, flow) in [(0u8, 0xe02b8u32), (0x20, 0xfffff), (0, 0)] {
            let ip = IpParams {
                ttl: 64,
                tos: tc,
                flow_label: flow,
            };
            let mut buf = with_room(&f, 64);
            let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0x01020304))).unwrap();
            assert_eq!(n, 94);
            let p = check_skeleton(&buf, n, &syn, &ip);
            let h = Ipv6Packet::new_checked(&buf[14..n]).unwrap();
            assert_eq!(h.version(), 6);
            assert_eq!(
                (h.hop_limit(), h.traffic_class(), h.flow_label()),
                (64, tc, flow)
            );
            assert_eq!(h.payload_len(), 40);
            assert_eq!(p.seg.ack, SeqNumber(0xf781_24f3));
        }
        // Bits above the 20-bit flow label never reach the version or traffic class.
        let mut buf = with_room(&f, 64);
        let ip = IpParams {
            flow_label: 0xfff0_0001,
            ..IpParams::default()
        };
        let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0))).unwrap();
        assert_eq!(buf[14..18], [0x60, 0x00, 0x00, 0x01]);
        check_skeleton(&buf, n, &syn, &ip);
    }

    #[test]
    fn vlan_tag_preserved() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let f = FrameSpec {
                vlan: Some(0xa123),
                ..base
            }
            .build();
            let syn = parse_frame(&f).unwrap();
            let mut buf = with_room(&f, 64);
            let ip = IpParams::default();
            let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0))).unwrap();
            assert_eq!(buf[12..18], f[12..18]);
            let p = check_skeleton(&buf, n, &syn, &ip);
            assert_eq!(p.seg.vlan, Some(0xa123));
            assert_eq!(p.layout.l3, 18);
        }
    }

    /// The reply's IP header has no options: the TCP header moves up, over the SYN's options.
    #[test]
    fn ipv4_options_of_syn_dropped() {
        for words in [1, 2, 10] {
            let f = FrameSpec {
                ip_options: std::vec![1; 4 * words],
                payload: b"payload".to_vec(),
                ..FrameSpec::v4_syn()
            }
            .build();
            let syn = parse_frame(&f).unwrap();
            let mut buf = with_room(&f, 64);
            let ip = IpParams::default();
            let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0x01020304))).unwrap();
            assert_eq!(n, 74, "IHL {}", 5 + words);
            assert_eq!(buf[14], 0x45);
            let p = check_skeleton(&buf, n, &syn, &ip);
            assert_eq!(p.seg.ack, SeqNumber(0xf781_24f3));
            assert_eq!(tcp_options_of(&buf, &p)[..4], [2, 4, 5, 0xb4]);
        }
    }

    #[test]
    fn s8_syn_payload_not_echoed() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let f = FrameSpec {
                payload: std::vec![0x5a; 200],
                ..base
            }
            .build();
            let syn = parse_frame(&f).unwrap();
            assert_eq!(syn.seg.payload_len, 200);
            let mut buf = f.clone();
            let ip = IpParams::default();
            let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0))).unwrap();
            assert!(n < f.len());
            let p = check_skeleton(&buf, n, &syn, &ip);
            // Only the SYN is acknowledged, not the data riding on it.
            assert_eq!(p.seg.ack, SeqNumber(0xf781_24f3));
        }
    }

    /// A reply that does not fit is refused before anything is written, so the caller still
    /// holds the received frame intact (to pass it on or drop it).
    #[test]
    fn buffer_too_small() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let f = FrameSpec {
                tcp_options: Vec::new(),
                ..base
            }
            .build();
            let syn = parse_frame(&f).unwrap();
            let need = f.len() + 20;
            for room in [0, 1, 19] {
                let mut buf = with_room(&f, room);
                let before = buf.clone();
                assert_eq!(
                    build_synack(
                        &mut buf,
                        &syn,
                        &IpParams::default(),
                        &synack(all_options(0))
                    ),
                    Err(Error::BufferTooSmall)
                );
                assert_eq!(buf, before, "untouched on failure");
            }
            let mut buf = with_room(&f, 20);
            let n = build_synack(
                &mut buf,
                &syn,
                &IpParams::default(),
                &synack(all_options(0)),
            );
            assert_eq!(n, Ok(need), "an exact fit is enough");
        }
    }

    #[test]
    fn reply_fits_when_frame_had_link_padding() {
        let f = FrameSpec {
            tcp_options: Vec::new(),
            link_padding: std::vec![0xee; 6],
            ..FrameSpec::v4_syn()
        }
        .build();
        assert_eq!(f.len(), 60);
        let syn = parse_frame(&f).unwrap();
        let mut buf = with_room(&f, 14);
        let ip = IpParams::default();
        let n = build_synack(&mut buf, &syn, &ip, &synack(all_options(0))).unwrap();
        assert_eq!(n, 74);
        check_skeleton(&buf, n, &syn, &ip);
    }

    fn rst_of(spec: FrameSpec) -> (ParsedFrame, Result<ParsedFrame>, Vec<u8>) {
        let f = spec.build();
        let rx = parse_frame(&f).unwrap();
        let mut buf = with_room(&f, 64);
        let ip = IpParams::default();
        let r = build_rst(&mut buf, &rx, &ip).map(|n| {
            let p = check_skeleton(&buf, n, &rx, &ip);
            assert_eq!(
                n,
                rx.layout.l3
                    + if rx.layout.family == Family::V4 {
                        40
                    } else {
                        60
                    }
            );
            assert_eq!(p.seg.window, 0, "P-1: window 0");
            assert!(tcp_options_of(&buf, &p).is_empty(), "P-1: no options");
            p
        });
        (rx, r, buf)
    }

    /// P-1, segment with ACK: SEQ = SEG.ACK, ACK flag clear (and the ACK field zero).
    #[test]
    fn p1_rst_to_segment_with_ack() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            for flags in [
                TcpFlags::ACK,
                TcpFlags::ACK | TcpFlags::PSH,
                TcpFlags::ACK | TcpFlags::FIN,
                TcpFlags::SYN_ACK,
            ] {
                let (_, r, _) = rst_of(FrameSpec {
                    flags,
                    seq: 1000,
                    ack: 0xdead_beef,
                    payload: b"data".to_vec(),
                    ..base.clone()
                });
                let s = r.unwrap().seg;
                assert_eq!(s.seq, SeqNumber(0xdead_beef), "{flags:?}");
                assert_eq!(s.flags, TcpFlags::RST, "{flags:?}");
                assert_eq!(s.ack, SeqNumber(0));
            }
        }
    }

    /// P-1, segment without ACK: SEQ 0, ACK flag set, ACK = SEG.SEQ + SYN + FIN + payload.
    #[test]
    fn p1_rst_to_segment_without_ack() {
        let cases: [(TcpFlags, usize, u32); 6] = [
            (TcpFlags::SYN, 0, 1),
            (TcpFlags::SYN, 3, 4),
            (TcpFlags::SYN | TcpFlags::FIN, 0, 2),
            (TcpFlags::FIN | TcpFlags::PSH, 5, 6),
            (TcpFlags(0), 7, 7),
            (TcpFlags(0), 0, 0),
        ];
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            for (flags, len, plus) in cases {
                let (_, r, _) = rst_of(FrameSpec {
                    flags,
                    seq: u32::MAX,
                    ack: 0x1234_5678,
                    payload: std::vec![1; len],
                    ..base.clone()
                });
                let s = r.unwrap().seg;
                assert_eq!(s.seq, SeqNumber(0), "{flags:?}");
                assert_eq!(s.flags, TcpFlags::RST | TcpFlags::ACK, "{flags:?}");
                assert_eq!(s.ack, SeqNumber(u32::MAX) + plus, "{flags:?} len {len}");
            }
        }
    }

    #[test]
    fn p1_never_reply_to_rst() {
        for flags in [
            TcpFlags::RST,
            TcpFlags::RST | TcpFlags::ACK,
            TcpFlags::RST | TcpFlags::SYN,
        ] {
            let f = FrameSpec {
                flags,
                ..FrameSpec::v4_syn()
            }
            .build();
            let rx = parse_frame(&f).unwrap();
            let mut buf = with_room(&f, 64);
            let before = buf.clone();
            assert_eq!(
                build_rst(&mut buf, &rx, &IpParams::default()),
                Err(Error::ReplyToRst)
            );
            assert_eq!(buf, before);
        }
    }

    /// P-2: SEQ, ACK and window as given, ACK flag only, NOP NOP TS when the request has
    /// timestamps and no option at all otherwise.
    #[test]
    fn p2_ack_with_and_without_timestamps() {
        for base in [FrameSpec::v4_syn(), FrameSpec::v6_syn()] {
            let f = FrameSpec {
                flags: TcpFlags::ACK,
                tcp_options: std::vec![1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8],
                payload: b"out of window".to_vec(),
                ..base
            }
            .build();
            let rx = parse_frame(&f).unwrap();
            let ip = IpParams::default();
            let ts = Timestamps {
                tsval: 0x0a0b0c0d,
                tsecr: 9,
            };
            for with_ts in [true, false] {
                let mut buf = with_room(&f, 64);
                let n = build_ack(
                    &mut buf,
                    &rx,
                    &ip,
                    SeqNumber(0x1000_0001),
                    SeqNumber(0x2000_0001),
                    509,
                    with_ts.then_some(ts),
                )
                .unwrap();
                let p = check_skeleton(&buf, n, &rx, &ip);
                assert_eq!(p.seg.seq, SeqNumber(0x1000_0001));
                assert_eq!(p.seg.ack, SeqNumber(0x2000_0001));
                assert_eq!(p.seg.flags, TcpFlags::ACK);
                assert_eq!(p.seg.window, 509);
                let opts = tcp_options_of(&buf, &p);
                if with_ts {
                    assert_eq!(opts, [1, 1, 8, 10, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0, 0, 9]);
                    assert_eq!(p.seg.options.timestamps, Some(ts));
                } else {
                    assert!(opts.is_empty());
                    assert_eq!(p.seg.options, TcpOptions::default());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any SYN, any decisions: the SYN-ACK parses, both checksums verify, and every field is
        /// what X-1..X-5 / V-5 and the decisions say.
        #[test]
        fn synack_round_trip(
            spec in arb::syn_spec(),
            iss in any::<u32>(),
            window in any::<u16>(),
            ece in any::<bool>(),
            mss in any::<u16>(),
            wscale in proptest::option::of(0u8..=14),
            sack in any::<bool>(),
            tsval in proptest::option::of(any::<u32>()),
            ip in (any::<u8>(), any::<u8>(), any::<u32>()),
        ) {
            let f = spec.build();
            let syn = parse_frame(&f).unwrap();
            let ip = IpParams { ttl: ip.0, tos: ip.1, flow_label: ip.2 };
            let options = OptionsOut {
                mss: Some(mss),
                wscale,
                sack_permitted: sack,
                timestamps: tsval.map(|tsval| Timestamps {
                    tsval,
                    tsecr: syn.seg.options.timestamps.map_or(0, |t| t.tsval),
                }),
            };
            let s = SynAck { iss: SeqNumber(iss), window, ece, options };
            let mut buf = with_room(&f, 64);
            let n = build_synack(&mut buf, &syn, &ip, &s).unwrap();
            let p = check_skeleton(&buf, n, &syn, &ip);
            let ip_len = if p.layout.family == Family::V4 { 20 } else { 40 };
            prop_assert_eq!(n, spec.l3() + ip_len + 20 + options.len());
            prop_assert_eq!(p.seg.seq, SeqNumber(iss));
            prop_assert_eq!(p.seg.ack, SeqNumber(spec.seq) + 1);
            let flags = if ece { TcpFlags::SYN_ACK | TcpFlags::ECE } else { TcpFlags::SYN_ACK };
            prop_assert_eq!(p.seg.flags, flags);
            prop_assert_eq!(p.seg.window, window);
            let mut want = [0u8; 20];
            let k = options.emit(&mut want).unwrap();
            prop_assert_eq!(&tcp_options_of(&buf, &p)[..], &want[..k]);
            // S-7 reads back what X-4 wrote (an MSS of 0 reads as absent, by S-7).
            prop_assert_eq!(p.seg.options.mss, Some(mss).filter(|&m| m != 0));
            prop_assert_eq!(p.seg.options.wscale, wscale);
            prop_assert_eq!(p.seg.options.sack_permitted, sack);
            prop_assert_eq!(p.seg.options.timestamps, options.timestamps);
        }

        /// P-1 on any segment.
        #[test]
        fn rst_round_trip(spec in arb::frame_spec()) {
            let (rx, r, _) = rst_of(spec.clone());
            if spec.flags.rst() {
                prop_assert_eq!(r.unwrap_err(), Error::ReplyToRst);
            } else if spec.flags.ack() {
                let s = r.unwrap().seg;
                prop_assert_eq!((s.seq, s.ack, s.flags), (SeqNumber(spec.ack), SeqNumber(0), TcpFlags::RST));
            } else {
                let s = r.unwrap().seg;
                let plus = spec.payload.len() as u32 + u32::from(spec.flags.syn()) + u32::from(spec.flags.fin());
                prop_assert_eq!((s.seq, s.ack), (SeqNumber(0), SeqNumber(spec.seq) + plus));
                prop_assert_eq!(s.flags, TcpFlags::RST | TcpFlags::ACK);
                prop_assert_eq!(rx.seg.end_seq(), s.ack);
            }
        }

        /// P-2 on any segment.
        #[test]
        fn ack_round_trip(
            spec in arb::frame_spec(),
            seq in any::<u32>(),
            ack in any::<u32>(),
            window in any::<u16>(),
            ts in proptest::option::of((any::<u32>(), any::<u32>())),
        ) {
            let f = spec.build();
            let rx = parse_frame(&f).unwrap();
            let ts = ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr });
            let mut buf = with_room(&f, 64);
            let ip = IpParams::default();
            let n = build_ack(&mut buf, &rx, &ip, SeqNumber(seq), SeqNumber(ack), window, ts).unwrap();
            let p = check_skeleton(&buf, n, &rx, &ip);
            prop_assert_eq!((p.seg.seq, p.seg.ack, p.seg.window), (SeqNumber(seq), SeqNumber(ack), window));
            prop_assert_eq!(p.seg.flags, TcpFlags::ACK);
            prop_assert_eq!(p.seg.options.timestamps, ts);
            prop_assert_eq!(tcp_options_of(&buf, &p).len(), if ts.is_some() { 12 } else { 0 });
        }
    }
}
