//! `synline_xdp` run by the kernel on hand-made frames (BPF_PROG_TEST_RUN), Katran style: a
//! table of description, input frame, expected outcome.
//!
//! How a listener match is seen: under BPF_PROG_TEST_RUN the frame arrives on rx queue 0 of no
//! device, and no AF_XDP socket can be registered for it here (an XSKMAP entry must be a bound
//! AF_XDP socket). `bpf_redirect_map` then returns its fallback action, XDP_PASS, and the program
//! counts the frame in `no_socket`, a counter only reachable after the listener lookup matched.
//! So a match is "XDP_PASS, and `passed` and `no_socket` each went up by one", and every other
//! outcome is "XDP_PASS, and `passed` and exactly one other reason went up by one". Each case
//! compares the whole counter set before and after its run, so a frame counted in the wrong
//! place fails as surely as a wrong action.
//!
//! Needs root and BPF. Without them each test says why and returns, except under CI=true,
//! where it fails.

use std::net::{IpAddr, SocketAddr};

use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV4};
use synline_wire::ipv4::{Ipv4Packet, FLAG_MF};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{OptionsOut, SeqNumber, TcpFlags};
use synline_xdp::{XdpAction, XdpCounters, XdpProgram};

/// Loads the program, or explains why not and returns `None` (panics under CI=true).
fn load_or_skip() -> Option<XdpProgram> {
    match XdpProgram::load() {
        Ok(p) => Some(p),
        Err(e) if e.is_permission_denied() && std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: loading an XDP program needs root or CAP_BPF ({e})");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

const LISTENERS: [&str; 4] = [
    "198.18.0.1:80",   // IPv4, exact
    "[2001:2::1]:443", // IPv6, exact
    "0.0.0.0:8080",    // IPv4 wildcard
    "[::]:9090",       // IPv6 wildcard
];

fn listening() -> Option<XdpProgram> {
    let prog = load_or_skip()?;
    for l in LISTENERS {
        prog.add_listener(l.parse().unwrap()).unwrap();
    }
    Some(prog)
}

/// What the program should do with a frame.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Matched a listener: redirect attempted, fell back to XDP_PASS (see the module docs).
    Listener,
    /// XDP_PASS for this reason.
    Pass(Reason),
}

#[derive(Debug, Clone, Copy)]
enum Reason {
    NotListener,
    NotTcp,
    NotIp,
    Ipv6ExtHdr,
    IpFragment,
    Malformed,
}

impl Expect {
    fn delta(self) -> XdpCounters {
        let mut d = XdpCounters {
            passed: 1,
            ..XdpCounters::default()
        };
        match self {
            Expect::Listener => d.no_socket = 1,
            Expect::Pass(Reason::NotListener) => d.not_listener = 1,
            Expect::Pass(Reason::NotTcp) => d.not_tcp = 1,
            Expect::Pass(Reason::NotIp) => d.not_ip = 1,
            Expect::Pass(Reason::Ipv6ExtHdr) => d.ipv6_ext_hdr = 1,
            Expect::Pass(Reason::IpFragment) => d.ip_fragment = 1,
            Expect::Pass(Reason::Malformed) => d.malformed = 1,
        }
        d
    }
}

struct Case {
    desc: String,
    frame: Vec<u8>,
    expect: Expect,
}

fn case(desc: impl Into<String>, frame: Vec<u8>, expect: Expect) -> Case {
    Case {
        desc: desc.into(),
        frame,
        expect,
    }
}

fn diff(after: &XdpCounters, before: &XdpCounters) -> XdpCounters {
    let (a, b) = (after.named(), before.named());
    let mut d = [0u64; 20];
    for i in 0..20 {
        d[i] = a[i].1 - b[i].1;
    }
    XdpCounters {
        redirected: d[0],
        passed: d[1],
        no_socket: d[2],
        not_listener: d[3],
        not_tcp: d[4],
        not_ip: d[5],
        ipv6_ext_hdr: d[6],
        ip_fragment: d[7],
        malformed: d[8],
        kernel_flow: d[9],
        tc_assigned: d[10],
        tc_assign_failed: d[11],
        tc_no_listener: d[12],
        tc_established: d[13],
        tc_reinjected: d[14],
        tc_held: d[15],
        cookie_synacks: d[16],
        cookie_reqqfull: d[17],
        cookie_to_engine: d[18],
        cookie_failed: d[19],
    }
}

fn run_table(prog: &XdpProgram, cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let before = prog.counters().unwrap();
        let action = prog
            .test_run(&c.frame)
            .unwrap_or_else(|e| panic!("{}: {e}", c.desc));
        let got = diff(&prog.counters().unwrap(), &before);
        let want = c.expect.delta();
        if action != XdpAction::Pass || got != want {
            failures.push(format!(
                "{} ({} bytes): action {action:?}, counters {got:?}, expected XDP_PASS and {want:?}",
                c.desc,
                c.frame.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ---- frames ----

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// A SYN with the options Linux sends, from a client to `dst`.
fn syn(dst: &str, vlan: Option<u16>) -> Vec<u8> {
    let dst: SocketAddr = dst.parse().unwrap();
    let src: IpAddr = match dst {
        SocketAddr::V4(_) => "198.18.0.2".parse().unwrap(),
        SocketAddr::V6(_) => "2001:2::2".parse().unwrap(),
    };
    let spec = SegmentSpec {
        eth_src: CLIENT_MAC,
        eth_dst: SERVER_MAC,
        vlan,
        src,
        dst: dst.ip(),
        ip: IpParams {
            ttl: 64,
            tos: 0,
            flow_label: 0,
        },
        src_port: 40000,
        dst_port: dst.port(),
        tcp: TcpParams {
            seq: SeqNumber(1000),
            ack: SeqNumber(0),
            flags: TcpFlags::SYN,
            window: 64240,
            options: OptionsOut {
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                ..OptionsOut::default()
            },
        },
        payload: &[],
    };
    let mut buf = vec![0u8; 256];
    let n = emit_segment(&mut buf, &spec).unwrap();
    buf.truncate(n);
    buf
}

/// An IPv4 frame: offset of the IPv4 header (no VLAN tag in these).
const L3: usize = 14;

fn refill_ipv4_checksum(frame: &mut [u8], l3: usize) {
    Ipv4Packet::new_unchecked(&mut frame[l3..]).fill_checksum();
}

/// `frame` (IPv4, untagged) with `opts` inserted as IP options (a multiple of 4 bytes).
fn with_ip_options(mut frame: Vec<u8>, opts: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let ihl_words = 5 + opts.len() / 4;
    frame.splice(L3 + 20..L3 + 20, opts.iter().copied());
    frame[L3] = 0x40 | ihl_words as u8;
    let total = u16::from_be_bytes([frame[L3 + 2], frame[L3 + 3]]) + opts.len() as u16;
    frame[L3 + 2..L3 + 4].copy_from_slice(&total.to_be_bytes());
    refill_ipv4_checksum(&mut frame, L3);
    frame
}

/// `frame` (IPv6, untagged) with an 8-byte hop-by-hop header (one PadN) before TCP.
fn with_hop_by_hop(mut frame: Vec<u8>) -> Vec<u8> {
    let l3 = 14;
    let hbh = [6u8, 0, 1, 4, 0, 0, 0, 0]; // next header TCP, length 0 (8 bytes), PadN(4)
    frame.splice(l3 + 40..l3 + 40, hbh);
    frame[l3 + 6] = 0; // next header: hop-by-hop
    let plen = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]) + 8;
    frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    frame
}

/// `frame` (IPv4, untagged) with its protocol changed, as if it carried `proto`.
fn with_ip_protocol(mut frame: Vec<u8>, proto: u8) -> Vec<u8> {
    frame[L3 + 9] = proto;
    refill_ipv4_checksum(&mut frame, L3);
    frame
}

fn arp_request() -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[198, 18, 0, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f
}

fn icmp_echo() -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&SERVER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    f.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&[198, 18, 0, 2, 198, 18, 0, 1]);
    f.extend_from_slice(&[8, 0, 0xf7, 0xfe, 0, 1, 0, 0]); // echo request, id 1, seq 0
    refill_ipv4_checksum(&mut f, L3);
    f
}

// ---- tables ----

#[test]
fn listeners_are_matched_and_everything_else_passes() {
    let Some(prog) = listening() else { return };
    let v4 = syn("198.18.0.1:80", None);
    let mut frag_mf = v4.clone();
    frag_mf[L3 + 6..L3 + 8].copy_from_slice(&FLAG_MF.to_be_bytes());
    refill_ipv4_checksum(&mut frag_mf, L3);
    let mut frag_later = v4.clone();
    frag_later[L3 + 6..L3 + 8].copy_from_slice(&185u16.to_be_bytes()); // offset 1480
    refill_ipv4_checksum(&mut frag_later, L3);
    let mut qinq = syn("198.18.0.1:80", Some(7));
    qinq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes()); // 802.1ad outer tag: not parsed

    let cases = [
        case(
            "IPv4 SYN to an exact v4 listener",
            v4.clone(),
            Expect::Listener,
        ),
        case(
            "IPv4 SYN to the listener's address, other port",
            syn("198.18.0.1:81", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv4 SYN to the listener's port, other address",
            syn("198.18.0.3:80", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv4 SYN to port 22 (SSH keeps working)",
            syn("198.18.0.1:22", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv6 SYN to an exact v6 listener",
            syn("[2001:2::1]:443", None),
            Expect::Listener,
        ),
        case(
            "IPv6 SYN to the v6 listener's port, other address",
            syn("[2001:2::9]:443", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv6 SYN to the v4 listener's port",
            syn("[2001:2::1]:80", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "VLAN-tagged IPv4 SYN to a listener",
            syn("198.18.0.1:80", Some(100)),
            Expect::Listener,
        ),
        case(
            "VLAN-tagged IPv6 SYN to a listener",
            syn("[2001:2::1]:443", Some(4094)),
            Expect::Listener,
        ),
        case(
            "VLAN-tagged IPv4 SYN, other port",
            syn("198.18.0.1:81", Some(100)),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "802.1ad (QinQ) outer tag",
            qinq,
            Expect::Pass(Reason::NotIp),
        ),
        case(
            "IPv4 with 4 bytes of options (router alert)",
            with_ip_options(v4.clone(), &[0x94, 4, 0, 0]),
            Expect::Listener,
        ),
        case(
            "IPv4 with 40 bytes of options (IHL 15)",
            with_ip_options(v4.clone(), &[1; 40]),
            Expect::Listener,
        ),
        case(
            "IPv4 with options, other port",
            with_ip_options(syn("198.18.0.1:81", None), &[1, 1, 1, 0]),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv4 wildcard listener, some address",
            syn("198.18.0.77:8080", None),
            Expect::Listener,
        ),
        case(
            "IPv4 wildcard listener, another address",
            syn("203.0.113.5:8080", None),
            Expect::Listener,
        ),
        case(
            "IPv4 wildcard listener, VLAN-tagged",
            syn("198.18.1.1:8080", Some(3)),
            Expect::Listener,
        ),
        case(
            "IPv4 wildcard port over IPv6",
            syn("[2001:2::1]:8080", None),
            Expect::Pass(Reason::NotListener),
        ),
        case(
            "IPv6 wildcard listener, some address",
            syn("[2001:db8::77]:9090", None),
            Expect::Listener,
        ),
        case(
            "IPv6 wildcard port over IPv4",
            syn("198.18.0.1:9090", None),
            Expect::Pass(Reason::NotListener),
        ),
        case("ARP request", arp_request(), Expect::Pass(Reason::NotIp)),
        case(
            "ICMP echo request",
            icmp_echo(),
            Expect::Pass(Reason::NotTcp),
        ),
        case(
            "UDP to a listener's port",
            with_ip_protocol(v4.clone(), 17),
            Expect::Pass(Reason::NotTcp),
        ),
        case(
            "IPv4 first fragment (MF) to a listener",
            frag_mf,
            Expect::Pass(Reason::IpFragment),
        ),
        case(
            "IPv4 later fragment to a listener",
            frag_later,
            Expect::Pass(Reason::IpFragment),
        ),
        case(
            "IPv6 hop-by-hop header, then TCP to a listener",
            with_hop_by_hop(syn("[2001:2::1]:443", None)),
            Expect::Pass(Reason::Ipv6ExtHdr),
        ),
        case(
            "IPv6 hop-by-hop header, then TCP to another port",
            with_hop_by_hop(syn("[2001:2::1]:444", None)),
            Expect::Pass(Reason::Ipv6ExtHdr),
        ),
    ];
    run_table(&prog, &cases);
}

#[test]
fn bad_headers_pass_as_malformed() {
    let Some(prog) = listening() else { return };
    let v4 = syn("198.18.0.1:80", None);
    let v6 = syn("[2001:2::1]:443", None);
    let mut ihl4 = v4.clone();
    ihl4[L3] = 0x44;
    let mut version6_in_v4 = v4.clone();
    version6_in_v4[L3] = 0x65;
    let mut version4_in_v6 = v6.clone();
    version4_in_v6[14] = 0x40 | (version4_in_v6[14] & 0x0f);
    let mut doff4 = v4.clone();
    doff4[L3 + 20 + 12] = 0x40;
    let mut ihl15_short = v4.clone();
    ihl15_short[L3] = 0x4f; // options run into the TCP header, and TCP then past the end

    let cases = [
        case("IPv4 IHL 4", ihl4, Expect::Pass(Reason::Malformed)),
        case(
            "version 6 in an IPv4 EtherType",
            version6_in_v4,
            Expect::Pass(Reason::Malformed),
        ),
        case(
            "version 4 in an IPv6 EtherType",
            version4_in_v6,
            Expect::Pass(Reason::Malformed),
        ),
        case("TCP data offset 4", doff4, Expect::Pass(Reason::Malformed)),
        case(
            "IPv4 IHL 15 with no options: TCP header past the end",
            ihl15_short,
            Expect::Pass(Reason::Malformed),
        ),
    ];
    run_table(&prog, &cases);
}

/// Every prefix of a matching frame that cuts a header short must pass, counted as malformed.
/// The kernel refuses to test-run fewer than 14 bytes (ETH_HLEN), so prefixes start there.
#[test]
fn truncated_frames_pass_as_malformed() {
    let Some(prog) = listening() else { return };
    let frames = [
        ("IPv4 SYN", syn("198.18.0.1:80", None), 14 + 20 + 20),
        (
            "VLAN IPv4 SYN",
            syn("198.18.0.1:80", Some(100)),
            18 + 20 + 20,
        ),
        (
            "IPv4 SYN with options",
            with_ip_options(syn("198.18.0.1:80", None), &[1; 8]),
            14 + 28 + 20,
        ),
        ("IPv6 SYN", syn("[2001:2::1]:443", None), 14 + 40 + 20),
        (
            "VLAN IPv6 SYN",
            syn("[2001:2::1]:443", Some(100)),
            18 + 40 + 20,
        ),
    ];
    let mut cases = Vec::new();
    for (desc, frame, headers) in &frames {
        for len in 14..*headers {
            cases.push(case(
                format!("{desc} cut to {len} bytes"),
                frame[..len].to_vec(),
                Expect::Pass(Reason::Malformed),
            ));
        }
        // The basic headers complete and the TCP options cut off: the program does not read
        // options, so this still matches (the engine parses and judges the options).
        cases.push(case(
            format!("{desc} cut inside the TCP options"),
            frame[..*headers].to_vec(),
            Expect::Listener,
        ));
    }
    run_table(&prog, &cases);
}

#[test]
fn listeners_can_be_removed() {
    let Some(prog) = listening() else { return };
    let frame = syn("198.18.0.1:80", None);
    run_table(
        &prog,
        &[case("before removal", frame.clone(), Expect::Listener)],
    );
    assert!(prog
        .remove_listener("198.18.0.1:80".parse().unwrap())
        .unwrap());
    assert!(!prog
        .remove_listener("198.18.0.1:80".parse().unwrap())
        .unwrap());
    run_table(
        &prog,
        &[case(
            "after removal",
            frame,
            Expect::Pass(Reason::NotListener),
        )],
    );
    // The wildcard of the port now catches what the exact listener did.
    prog.add_listener("0.0.0.0:80".parse().unwrap()).unwrap();
    run_table(
        &prog,
        &[case(
            "wildcard added",
            syn("198.18.0.1:80", None),
            Expect::Listener,
        )],
    );
}

/// The per-port table (bpf/maps.h `listen_ports`) that spares the hash lookups follows every
/// add and remove: an exact listener and the wildcard on one port each keep the port open
/// while the other goes, and a listener of the other family never opens it.
#[test]
fn the_port_table_follows_adds_and_removes_per_family() {
    let Some(prog) = load_or_skip() else { return };
    let (exact, wild, v6) = (
        "198.18.0.1:7000".parse().unwrap(),
        "0.0.0.0:7000".parse().unwrap(),
        "[2001:2::1]:7000".parse().unwrap(),
    );
    let to = |d: &str| syn(d, None);
    let miss = Expect::Pass(Reason::NotListener);
    prog.add_listener(v6).unwrap();
    run_table(
        &prog,
        &[
            case(
                "v6 listener only: v4 stays closed",
                to("198.18.0.1:7000"),
                miss,
            ),
            case(
                "v6 listener only: v6 open",
                to("[2001:2::1]:7000"),
                Expect::Listener,
            ),
        ],
    );
    prog.add_listener(exact).unwrap();
    prog.add_listener(wild).unwrap();
    run_table(
        &prog,
        &[
            case(
                "exact and wildcard: exact address",
                to("198.18.0.1:7000"),
                Expect::Listener,
            ),
            case(
                "exact and wildcard: other address",
                to("198.18.0.9:7000"),
                Expect::Listener,
            ),
        ],
    );
    assert!(prog.remove_listener(wild).unwrap());
    run_table(
        &prog,
        &[
            case(
                "exact left: exact address",
                to("198.18.0.1:7000"),
                Expect::Listener,
            ),
            case("exact left: other address", to("198.18.0.9:7000"), miss),
        ],
    );
    prog.add_listener(wild).unwrap();
    assert!(prog.remove_listener(exact).unwrap());
    run_table(
        &prog,
        &[
            case(
                "wildcard left: exact address",
                to("198.18.0.1:7000"),
                Expect::Listener,
            ),
            case("wildcard left: other port", to("198.18.0.1:7001"), miss),
        ],
    );
    assert!(prog.remove_listener(wild).unwrap());
    assert!(prog.remove_listener(v6).unwrap());
    run_table(
        &prog,
        &[
            case("all gone: v4", to("198.18.0.1:7000"), miss),
            case("all gone: v6", to("[2001:2::1]:7000"), miss),
        ],
    );
}

#[test]
fn counters_add_up() {
    let Some(prog) = listening() else { return };
    for f in [
        syn("198.18.0.1:80", None),
        arp_request(),
        icmp_echo(),
        syn("198.18.0.1:81", None),
    ] {
        prog.test_run(&f).unwrap();
    }
    let c = prog.counters().unwrap();
    assert_eq!(c.redirected + c.passed, 4, "{c:?}");
    assert_eq!(
        c.passed,
        c.no_socket
            + c.not_listener
            + c.not_tcp
            + c.not_ip
            + c.ipv6_ext_hdr
            + c.ip_fragment
            + c.malformed,
        "{c:?}"
    );
}

#[test]
fn a_non_xdp_socket_is_refused_for_a_queue() {
    let Some(prog) = load_or_skip() else { return };
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    use std::os::fd::AsFd;
    let err = prog.set_socket(0, udp.as_fd()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("bpf_map_update_elem on map xsks_map (queue 0): "),
        "{msg}"
    );
    prog.clear_socket(0).unwrap();
}

#[test]
fn frames_shorter_than_ethernet_are_refused_by_the_kernel() {
    let Some(prog) = load_or_skip() else { return };
    let err = prog.test_run(&[0u8; 13]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bpf_prog_test_run_opts (synline_xdp, 13 bytes): "),
        "{err}"
    );
}
