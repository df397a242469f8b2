//! The wire crate against real Linux handshakes.
//!
//! Each fixture in `tests/fixtures/` is a classic pcap (little-endian, Ethernet link type)
//! captured by `deploy/fixtures/capture.sh` on the server side of a veth pair (MTU 1500, checksum
//! offload off, server sysctls at their defaults, client sysctls toggled per file): frame 1 the
//! client's SYN, frame 2 the kernel's SYN-ACK, frame 3 the client's ACK.
//!
//! For every fixture:
//! 1. all three frames go through `parse_frame`, whose checksum checks must accept them: our
//!    checksum code agrees with the kernel's (D-1);
//! 2. our SYN-ACK, built in place from the kernel's SYN with the kernel SYN-ACK's own choices
//!    (ISS, window, MSS, WS, SACK, TSval, ECE, and the IPv6 flow label) as the caller's
//!    decisions, must equal the kernel's SYN-ACK byte for byte; everything the builder decides
//!    itself (MACs, addresses, ports, ACK = IRS + 1, option order and padding, TCP data offset,
//!    IPv4 TTL/TOS/DF/ID, IPv6 hop limit/traffic class, lengths, both checksums) is thereby
//!    checked against Linux;
//! 3. the kernel's SYN-ACK is checked field by field against the spec's rules (X-1..X-5, V-5,
//!    ), from the SYN alone wherever the rule allows.

use std::fmt::Write as _;
use std::path::PathBuf;
use synline_wire::ipv4::Ipv4Packet;
use synline_wire::ipv6::Ipv6Packet;
use synline_wire::reply::{build_synack, IpParams, SynAck};
use synline_wire::tcp::TcpPacket;
use synline_wire::{parse_frame, Family, OptionsOut, ParsedFrame, TcpFlags, Timestamps};

/// Reads a classic pcap: 24-byte global header, then records of a 16-byte header (ts_sec,
/// ts_usec, incl_len, orig_len) and incl_len bytes.
fn read_pcap(name: &str) -> Vec<Vec<u8>> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (captured by deploy/fixtures/capture.sh)",
            path.display()
        )
    });
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
    assert!(data.len() >= 24, "{name}: no pcap global header");
    // Microsecond or nanosecond timestamps, little-endian; the timestamps are not used.
    let magic = u32_at(0);
    assert!(
        magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d,
        "{name}: not a little-endian classic pcap (magic {magic:#x})"
    );
    assert_eq!(u32_at(20), 1, "{name}: link type is not Ethernet");
    let mut frames = Vec::new();
    let mut i = 24;
    while i < data.len() {
        assert!(i + 16 <= data.len(), "{name}: truncated record header");
        let (incl, orig) = (u32_at(i + 8) as usize, u32_at(i + 12) as usize);
        assert_eq!(incl, orig, "{name}: frame {} was snapped", frames.len());
        i += 16;
        assert!(i + incl <= data.len(), "{name}: truncated record");
        frames.push(data[i..i + incl].to_vec());
        i += incl;
    }
    frames
}

/// Names the field a frame offset falls in, for the diff.
fn field_name(off: usize, p: &ParsedFrame) -> String {
    let (l3, l4) = (p.layout.l3, p.layout.l4);
    let ip4 = [
        (0, "ver/ihl"),
        (1, "tos"),
        (2, "total len"),
        (4, "ip id"),
        (6, "flags/frag"),
        (8, "ttl"),
        (9, "proto"),
        (10, "ip csum"),
        (12, "src addr"),
        (16, "dst addr"),
    ];
    let ip6 = [
        (0, "ver/tc/flow label"),
        (4, "payload len"),
        (6, "next hdr"),
        (7, "hop limit"),
        (8, "src addr"),
        (24, "dst addr"),
    ];
    let tcp = [
        (0, "src port"),
        (2, "dst port"),
        (4, "seq"),
        (8, "ack"),
        (12, "doff"),
        (13, "flags"),
        (14, "window"),
        (16, "tcp csum"),
        (18, "urgent"),
        (20, "options"),
    ];
    let pick = |table: &[(usize, &'static str)], rel: usize| {
        table
            .iter()
            .rev()
            .find(|(o, _)| *o <= rel)
            .map_or("?", |(_, n)| n)
    };
    if off < l3 {
        format!(
            "eth {}",
            pick(&[(0, "dst"), (6, "src"), (12, "type/tag")], off)
        )
    } else if off < l4 {
        let t: &[(usize, &str)] = if p.layout.family == Family::V4 {
            &ip4
        } else {
            &ip6
        };
        format!("ip {}", pick(t, off - l3))
    } else {
        format!("tcp {}", pick(&tcp, off - l4))
    }
}

/// A side-by-side hex dump, 16 bytes a row, with `^^` under every differing byte and a list of
/// the differing offsets by field.
fn hex_diff(ours: &[u8], kernel: &[u8], layout: &ParsedFrame) -> String {
    let mut s = String::new();
    let n = ours.len().max(kernel.len());
    let hex = |b: &[u8], i: usize| b.get(i).map_or("--".to_string(), |x| format!("{x:02x}"));
    for row in (0..n).step_by(16) {
        let end = (row + 16).min(n);
        let (mut a, mut b, mut m) = (String::new(), String::new(), String::new());
        for i in row..end {
            a += &format!("{} ", hex(ours, i));
            b += &format!("{} ", hex(kernel, i));
            m += if ours.get(i) == kernel.get(i) {
                "   "
            } else {
                "^^ "
            };
        }
        let _ = writeln!(s, "{row:04x}  ours   {a}\n      kernel {b}");
        if m.contains('^') {
            let _ = writeln!(s, "             {m}");
        }
    }
    let diffs: Vec<String> = (0..n)
        .filter(|&i| ours.get(i) != kernel.get(i))
        .map(|i| format!("{i:#06x} ({})", field_name(i, layout)))
        .collect();
    let _ = writeln!(s, "differing bytes: {}", diffs.join(", "));
    s
}

fn check_fixture(name: &str) {
    let frames = read_pcap(&format!("{name}.pcap"));
    assert_eq!(frames.len(), 3, "{name}: expected SYN, SYN-ACK, ACK");
    let (syn_f, synack_f, ack_f) = (&frames[0], &frames[1], &frames[2]);

    // 1. The kernel's frames parse and verify.
    let syn = parse_frame(syn_f).unwrap_or_else(|e| panic!("{name}: SYN: {e}"));
    let k = parse_frame(synack_f).unwrap_or_else(|e| panic!("{name}: SYN-ACK: {e}"));
    let ack = parse_frame(ack_f).unwrap_or_else(|e| panic!("{name}: ACK: {e}"));
    assert!(
        syn.seg.flags.syn() && !syn.seg.flags.ack(),
        "{name}: frame 1"
    );
    assert!(k.seg.flags.contains(TcpFlags::SYN_ACK), "{name}: frame 2");
    assert_eq!(k.layout.end, synack_f.len(), "{name}: no link padding");

    // 2. Our SYN-ACK from the kernel's SYN with the kernel's choices as the caller's.
    let ko = k.seg.options;
    let decisions = SynAck {
        iss: k.seg.seq,
        window: k.seg.window,
        ece: k.seg.flags.contains(TcpFlags::ECE),
        options: OptionsOut {
            mss: ko.mss,
            wscale: ko.wscale,
            sack_permitted: ko.sack_permitted,
            // The kernel's TSval (clock + ts_off, Q-4) is the caller's; TSecr is ours to fill
            // from the SYN, so it is not taken from the kernel.
            timestamps: ko.timestamps.map(|t| Timestamps {
                tsval: t.tsval,
                tsecr: syn.seg.options.timestamps.map_or(0, |s| s.tsval),
            }),
        },
    };
    let ip = match k.layout.family {
        // X-5's defaults, not read from the kernel's frame.
        Family::V4 => IpParams::default(),
        // The flow label is the caller's per-request hash (V-5), so it comes from the fixture;
        // hop limit and traffic class are still our defaults.
        Family::V6 => IpParams {
            flow_label: Ipv6Packet::new_checked(&synack_f[k.layout.l3..])
                .unwrap()
                .flow_label(),
            ..IpParams::default()
        },
    };
    let mut buf = syn_f.clone();
    buf.resize(syn_f.len() + 64, 0);
    let n = build_synack(&mut buf, &syn, &ip, &decisions)
        .unwrap_or_else(|e| panic!("{name}: build_synack: {e}"));
    assert!(
        buf[..n] == synack_f[..],
        "{name}: our SYN-ACK differs from the kernel's\n{}",
        hex_diff(&buf[..n], synack_f, &k)
    );

    // 3. The kernel's SYN-ACK against the spec, from the SYN wherever the rule allows.
    let so = syn.seg.options;
    let ts = so.timestamps.is_some();
    assert_eq!(k.seg.ack, syn.seg.seq + 1, "{name}: X-2 ACK = IRS + 1");
    assert_eq!(
        (k.seg.src_port, k.seg.dst_port),
        (syn.seg.dst_port, syn.seg.src_port)
    );
    assert_eq!((k.seg.src, k.seg.dst), (syn.seg.dst, syn.seg.src));
    assert_eq!(k.seg.payload_len, 0);
    // ECE exactly when the SYN had ECE and CWR on a Not-ECT packet.
    let ecn = syn.seg.flags.contains(TcpFlags::ECE | TcpFlags::CWR) && syn.seg.ip_ecn == 0;
    let want_flags = if ecn {
        TcpFlags::SYN_ACK | TcpFlags::ECE
    } else {
        TcpFlags::SYN_ACK
    };
    assert_eq!(k.seg.flags, want_flags, "{name}: X-1 / Q-2");
    let tcp = TcpPacket::new_checked(&synack_f[k.layout.l4..]).unwrap();
    assert_eq!(tcp.urgent(), 0, "{name}: X-1 urgent pointer");
    // MSS always, the route MSS of a 1500-byte MTU; WS, SACK, TS only if the SYN had them.
    let route_mss = match k.layout.family {
        Family::V4 => 1500 - 20 - 20,
        Family::V6 => 1500 - 40 - 20,
    };
    assert_eq!(ko.mss, Some(route_mss), "{name}: X-3 MSS");
    assert_eq!(ko.wscale.is_some(), so.wscale.is_some(), "{name}: X-3 WS");
    assert_eq!(ko.sack_permitted, so.sack_permitted, "{name}: X-3 SACK");
    assert_eq!(ko.timestamps.is_some(), ts, "{name}: X-3 TS");
    if let (Some(kt), Some(st)) = (ko.timestamps, so.timestamps) {
        assert_eq!(kt.tsecr, st.tsval, "{name}: X-3 TSecr = SYN TSval");
    }
    // capture.sh pins tcp_rmem[2] to 6 MB, the pre-6.16 default, hence shift 7.
    if so.wscale.is_some() {
        assert_eq!(ko.wscale, Some(7), "{name}: Q-5 window scale");
    }
    // the layout rebuilt from the SYN's options alone (values aside) is the kernel's.
    let mut want = Vec::new();
    want.extend_from_slice(&[2, 4]);
    want.extend_from_slice(&route_mss.to_be_bytes());
    if let Some(kt) = ko.timestamps {
        want.extend_from_slice(if so.sack_permitted {
            &[4, 2, 8, 10]
        } else {
            &[1, 1, 8, 10]
        });
        want.extend_from_slice(&kt.tsval.to_be_bytes());
        want.extend_from_slice(&so.timestamps.unwrap().tsval.to_be_bytes());
    } else if so.sack_permitted {
        want.extend_from_slice(&[1, 1, 4, 2]);
    }
    if so.wscale.is_some() {
        want.extend_from_slice(&[1, 3, 3, 7]);
    }
    assert_eq!(tcp.options(), &want[..], "{name}: X-4 option layout");
    assert_eq!(tcp.header_len(), 20 + want.len(), "{name}: X-4 data offset");
    assert_ne!(tcp.options().first(), Some(&4), "X-4: never SACK first");
    match k.layout.family {
        Family::V4 => {
            let h = Ipv4Packet::new_checked(&synack_f[k.layout.l3..]).unwrap();
            assert_eq!(h.ttl(), 64, "{name}: X-5 TTL");
            assert_eq!(h.tos(), 0, "{name}: X-5 TOS");
            assert!(h.dont_frag() && !h.is_fragment(), "{name}: X-5 DF");
            assert_eq!(h.ident(), 0, "{name}: X-5 IP ID");
            assert_eq!(h.header_len(), 20);
            // Q-5 (section 0, measured on 6.18): 65160 with timestamps, 64240 without.
            let w = if ts { 65160 } else { 64240 };
            assert_eq!(k.seg.window, w, "{name}: Q-5 window");
        }
        Family::V6 => {
            let h = Ipv6Packet::new_checked(&synack_f[k.layout.l3..]).unwrap();
            let s = Ipv6Packet::new_checked(&syn_f[syn.layout.l3..]).unwrap();
            assert_eq!(h.hop_limit(), 64, "{name}: V-5 hop limit");
            assert_eq!(h.traffic_class(), 0, "{name}: V-5 traffic class");
            // V-5: the flow label is the server's own hash, not the SYN's reflected
            // (net.ipv6.flowlabel_reflect = 0): the caller must choose it.
            assert_ne!(h.flow_label(), s.flow_label(), "{name}: V-5 flow label");
        }
    }

    // The client's third ACK acknowledges ISS + 1 and echoes the SYN-ACK's TSval.
    assert_eq!(ack.seg.flags, TcpFlags::ACK, "{name}: frame 3");
    assert_eq!(ack.seg.seq, syn.seg.seq + 1);
    assert_eq!(ack.seg.ack, k.seg.seq + 1);
    assert_eq!(
        ack.seg.options.timestamps.map(|t| t.tsecr),
        ko.timestamps.map(|t| t.tsval),
        "{name}: TSecr of the ACK"
    );
}

/// One test per fixture, named after it, in a module named after the rules it checks.
macro_rules! fixtures {
    ($($name:ident),* $(,)?) => {
        mod x1_x5_v5_synack_matches_kernel {
            $(
                #[test]
                fn $name() {
                    super::check_fixture(stringify!($name));
                }
            )*
        }
    };
}

fixtures!(
    v4_all,
    v4_nots,
    v4_nosack,
    v4_nows,
    v4_tsonly,
    v4_sackonly,
    v4_wsonly,
    v4_none,
    v4_ecn,
    v6_all,
    v6_nots,
    v6_nosack,
    v6_nows,
    v6_tsonly,
    v6_sackonly,
    v6_wsonly,
    v6_none,
    v6_ecn,
);
