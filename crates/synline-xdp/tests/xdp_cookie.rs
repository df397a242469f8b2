//! The flood path (bpf/cookie.h) against the engine, byte for byte: each SYN goes through
//! `synline_xdp` under BPF_PROG_TEST_RUN, with the listener in cookie mode, and through the
//! engine (`Worker::handle_frame`, tcp_syncookies=2) with the same secrets, settings and clock;
//! the XDP_TX frame must equal the engine's SYN-ACK exactly (K-1 cookie, K-3 TSval, X-4 option
//! layout, X-5 IP header, V-5 flow label, checksums). The SYNs: the 18 kernel captures (IPv4 and
//! IPv6, every option set, ECN), and made-up ones: a VLAN tag, other option orders, an MSS below
//! the table, listener settings (TCP_MAXSEG, tcp_timestamps=2, SACK, window scaling or ECN
//! off, IP_TTL, IPV6_TCLASS). And what must be left to the engine: a bad TCP or IP checksum, a
//! SYN with data, IPv4 options, SYN+FIN, a group MAC, a listener not in cookie mode.
//!
//! Needs root and BPF (skips elsewhere, fails under CI=true).

use std::net::SocketAddr;
use std::time::Duration;

use synline_core::{
    AddressFamily, ListenerConfig, Secrets, Stack, StackConfig, SyncookieMode, Verdict,
};
use synline_xdp::{XdpAction, XdpProgram};

/// A moment on the monotonic clock for both sides (about 3 days after boot).
const NOW: Duration = Duration::from_nanos(271_234_567_891_234);

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

/// The SYNs (first frame of each flow from the client) of a classic pcap.
fn pcap_syns(path: &str) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        let f = b[i + 16..i + 16 + incl].to_vec();
        i += 16 + incl;
        if let Ok(p) = synline_wire::parse_frame(&f) {
            if p.seg.flags.syn() && !p.seg.flags.ack() {
                out.push(f);
            }
        }
    }
    out
}

/// The engine's answer to `syn` under `cfg` at NOW, with tcp_syncookies=2.
fn engine(syn: &[u8], addr: SocketAddr, cfg: ListenerConfig, seed: u64) -> Option<Vec<u8>> {
    let stack = Stack::new(StackConfig::default(), Secrets::from_seed(seed));
    let mut s = stack
        .socket(if addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        })
        .unwrap();
    s.set_config(ListenerConfig {
        syncookies: SyncookieMode::Always,
        ..cfg
    })
    .unwrap();
    s.bind(addr).unwrap();
    s.listen(128).unwrap();
    let mut w = stack.worker(0).unwrap();
    let mut buf = vec![0u8; 2048];
    buf[..syn.len()].copy_from_slice(syn);
    match w.handle_frame(&mut buf, syn.len(), NOW) {
        Verdict::Transmit(n) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// The program's answer: `Some(frame)` for XDP_TX, `None` when it left the SYN to the engine.
fn xdp(
    prog: &mut XdpProgram,
    syn: &[u8],
    addr: SocketAddr,
    cfg: ListenerConfig,
    seed: u64,
) -> Option<Vec<u8>> {
    let s = Secrets::from_seed(seed);
    prog.add_listener(addr).unwrap();
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::Always,
        ..cfg
    };
    assert!(prog.set_listener_cookie(addr, &cfg, true).unwrap());
    prog.set_cookie_secrets(s.cookie, s.ts_off, s.flow_label, Duration::ZERO)
        .unwrap();
    prog.set_cookie_test_clock(Some(NOW)).unwrap();
    let (action, out) = prog.test_run_output(syn).unwrap();
    prog.remove_listener(addr).unwrap();
    match action {
        XdpAction::Tx => Some(out),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn listener_of(syn: &[u8]) -> SocketAddr {
    let p = synline_wire::parse_frame(syn).unwrap();
    SocketAddr::new(p.seg.dst, p.seg.dst_port)
}

fn same(prog: &mut XdpProgram, what: &str, syn: &[u8], cfg: ListenerConfig) {
    let addr = listener_of(syn);
    for seed in [1, 2] {
        let want = engine(syn, addr, cfg, seed)
            .unwrap_or_else(|| panic!("{what}: the engine did not answer"));
        let got = xdp(prog, syn, addr, cfg, seed)
            .unwrap_or_else(|| panic!("{what}: the XDP program left it to the engine"));
        if std::env::var("SHOW").is_ok() {
            eprintln!("{what}:\n  xdp    {}\n  engine {}", hex(&got), hex(&want));
        }
        assert_eq!(
            hex(&got),
            hex(&want),
            "{what} (seed {seed}): XDP's SYN-ACK (left) differs from the engine's (right)"
        );
    }
}

#[test]
fn kernel_syns_get_the_engines_cookie_synack_byte_for_byte() {
    let Some(mut prog) = load_or_skip() else {
        return;
    };
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../synline-wire/tests/fixtures"
    );
    let mut n = 0;
    for fam in ["v4", "v6"] {
        for set in [
            "all", "ecn", "none", "nosack", "nots", "nows", "sackonly", "tsonly", "wsonly",
        ] {
            let path = format!("{dir}/{fam}_{set}.pcap");
            let syns = pcap_syns(&path);
            assert!(!syns.is_empty(), "{path}");
            for syn in syns {
                let ecn_on = ListenerConfig {
                    ecn: 1,
                    ..ListenerConfig::default()
                };
                same(
                    &mut prog,
                    &format!("{fam}_{set}"),
                    &syn,
                    ListenerConfig::default(),
                );
                same(&mut prog, &format!("{fam}_{set}, tcp_ecn=1"), &syn, ecn_on);
                n += 1;
            }
        }
    }
    assert!(n >= 18);
}

/// RFC 1071 over `b` with an initial sum.
fn csum(mut sum: u32, b: &[u8]) -> u16 {
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A made-up SYN: Ethernet (optional 802.1Q tag), IPv4 (optional IP options) or IPv6, TCP
/// with raw option bytes (padded to a multiple of 4 with EOL), flags and payload; valid
/// checksums.
struct Syn<'a> {
    v6: bool,
    vlan: Option<u16>,
    ip_opts: &'a [u8],
    tos: u8,
    opts: &'a [u8],
    flags: u8,
    payload: &'a [u8],
    dst_mac0: u8,
}

impl Default for Syn<'_> {
    fn default() -> Self {
        Syn {
            v6: false,
            vlan: None,
            ip_opts: &[],
            tos: 0,
            opts: &[],
            flags: 0x02,
            payload: &[],
            dst_mac0: 0x02,
        }
    }
}

impl Syn<'_> {
    fn build(&self) -> Vec<u8> {
        let mut f = vec![self.dst_mac0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if let Some(tci) = self.vlan {
            f.extend([0x81, 0x00]);
            f.extend(tci.to_be_bytes());
        }
        f.extend(if self.v6 { [0x86, 0xdd] } else { [0x08, 0x00] });
        let mut opts = self.opts.to_vec();
        while !opts.len().is_multiple_of(4) {
            opts.push(0);
        }
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40123u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        tcp[12] = (((20 + opts.len()) / 4) as u8) << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
        tcp.extend(&opts);
        tcp.extend(self.payload);
        let (src, dst): (Vec<u8>, Vec<u8>) = if self.v6 {
            (
                "2001:2::2"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec(),
                "2001:2::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
                    .to_vec(),
            )
        } else {
            (vec![198, 18, 0, 2], vec![198, 18, 0, 1])
        };
        let mut pseudo = 6u32 + tcp.len() as u32;
        for c in src.chunks(2).chain(dst.chunks(2)) {
            pseudo += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        let c = csum(pseudo, &tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        if self.v6 {
            let mut ip = vec![0x60 | (self.tos >> 4), self.tos << 4, 0, 0];
            ip.extend((tcp.len() as u16).to_be_bytes());
            ip.extend([6, 64]);
            ip.extend(&src);
            ip.extend(&dst);
            f.extend(ip);
        } else {
            let ihl = 20 + self.ip_opts.len();
            let mut ip = vec![0x40 | (ihl / 4) as u8, self.tos];
            ip.extend(((ihl + tcp.len()) as u16).to_be_bytes());
            ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
            ip.extend(&src);
            ip.extend(&dst);
            ip.extend(self.ip_opts);
            let c = csum(0, &ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend(ip);
        }
        f.extend(tcp);
        f
    }
}

const MSS1460: [u8; 4] = [2, 4, 0x05, 0xb4];
const TS: [u8; 10] = [8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0];

/// Made-up SYNs and listener settings: every one answered in XDP exactly as the engine does.
#[test]
fn made_up_syns_and_settings_match_the_engine() {
    let Some(mut prog) = load_or_skip() else {
        return;
    };
    let linux: Vec<u8> = [&MSS1460[..], &[4, 2], &TS, &[1, 3, 3, 7]].concat();
    // Windows/macOS order: MSS NOP WS NOP NOP TS SACK_PERM EOL.
    let windows: Vec<u8> = [&MSS1460[..], &[1, 3, 3, 8, 1, 1], &TS, &[4, 2, 0]].concat();
    let ws20: Vec<u8> = [&TS[..], &[1, 3, 3, 20]].concat();
    let base = ListenerConfig::default();
    let cases: Vec<(&str, Syn, ListenerConfig)> = vec![
        ("no options", Syn::default(), base),
        (
            "linux options",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            base,
        ),
        (
            "windows order",
            Syn {
                opts: &windows,
                ..Syn::default()
            },
            base,
        ),
        (
            "VLAN tag",
            Syn {
                opts: &linux,
                vlan: Some(0x0123),
                ..Syn::default()
            },
            base,
        ),
        (
            "VLAN, IPv6",
            Syn {
                opts: &linux,
                vlan: Some(7),
                v6: true,
                ..Syn::default()
            },
            base,
        ),
        (
            "MSS below the table",
            Syn {
                opts: &[2, 4, 0, 100],
                ..Syn::default()
            },
            base,
        ),
        (
            "MSS 0 ignored",
            Syn {
                opts: &[2, 4, 0, 0, 4, 2],
                ..Syn::default()
            },
            base,
        ),
        (
            "WS 20 clamped",
            Syn {
                opts: &ws20,
                ..Syn::default()
            },
            base,
        ),
        (
            "last MSS wins",
            Syn {
                opts: &[2, 4, 1, 0, 2, 4, 5, 0xb4],
                ..Syn::default()
            },
            base,
        ),
        (
            "unknown kind skipped",
            Syn {
                opts: &[30, 4, 9, 9, 2, 4, 5, 0xb4],
                ..Syn::default()
            },
            base,
        ),
        (
            "EOL ends the list",
            Syn {
                opts: &[0, 0, 2, 4, 5, 0xb4],
                ..Syn::default()
            },
            base,
        ),
        (
            "bad length ends it",
            Syn {
                opts: &[2, 4, 5, 0xb4, 3, 1, 4, 2],
                ..Syn::default()
            },
            base,
        ),
        (
            "TCP_MAXSEG 1000",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                maxseg: 1000,
                ..base
            },
        ),
        (
            "tcp_timestamps=2",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                timestamps: 2,
                ..base
            },
        ),
        (
            "tcp_timestamps=0",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                timestamps: 0,
                ..base
            },
        ),
        (
            "tcp_sack=0",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                sack: false,
                ..base
            },
        ),
        (
            "tcp_window_scaling=0",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                window_scaling: false,
                ..base
            },
        ),
        (
            "IP_TTL 7, mtu 9000",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                ttl: 7,
                mtu: 9000,
                ..base
            },
        ),
        (
            "IPV6_TCLASS 0xb8",
            Syn {
                opts: &linux,
                v6: true,
                ..Syn::default()
            },
            ListenerConfig {
                tclass: 0xb8,
                ..base
            },
        ),
        (
            "ECN SYN, tcp_ecn=1",
            Syn {
                opts: &linux,
                flags: 0xc2,
                ..Syn::default()
            },
            ListenerConfig { ecn: 1, ..base },
        ),
        (
            "ECN SYN on ECT IP, tcp_ecn=1",
            Syn {
                opts: &linux,
                flags: 0xc2,
                tos: 2,
                ..Syn::default()
            },
            ListenerConfig { ecn: 1, ..base },
        ),
        (
            "ECN SYN, IPv6",
            Syn {
                opts: &linux,
                flags: 0xc2,
                v6: true,
                ..Syn::default()
            },
            ListenerConfig { ecn: 1, ..base },
        ),
        (
            "PSH and URG on a SYN",
            Syn {
                opts: &linux,
                flags: 0x2a,
                ..Syn::default()
            },
            base,
        ),
        (
            "tcp_rmem small",
            Syn {
                opts: &linux,
                ..Syn::default()
            },
            ListenerConfig {
                rmem: [4096, 8192, 65536],
                ..base
            },
        ),
    ];
    for (what, syn, cfg) in &cases {
        same(&mut prog, what, &syn.build(), *cfg);
    }
}

/// What the engine must see: each of these is left to it (and then answered, dropped or
/// counted by its own rules), never answered in XDP.
#[test]
fn the_rest_is_left_to_the_engine() {
    let Some(mut prog) = load_or_skip() else {
        return;
    };
    let linux: Vec<u8> = [&MSS1460[..], &[4, 2], &TS, &[1, 3, 3, 7]].concat();
    let mut bad_tcp = Syn {
        opts: &linux,
        ..Syn::default()
    }
    .build();
    let last = bad_tcp.len() - 1;
    bad_tcp[last] ^= 1;
    let mut bad_ip = Syn {
        opts: &linux,
        ..Syn::default()
    }
    .build();
    bad_ip[14 + 8] ^= 1; // TTL, without fixing the header checksum
    let long_list: Vec<u8> = std::iter::repeat_n(1u8, 13).chain(MSS1460).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad TCP checksum", bad_tcp),
        ("bad IP checksum", bad_ip),
        (
            "SYN with data",
            Syn {
                opts: &linux,
                payload: b"GET /",
                ..Syn::default()
            }
            .build(),
        ),
        (
            "IPv4 options",
            Syn {
                opts: &linux,
                ip_opts: &[1, 1, 1, 0],
                ..Syn::default()
            }
            .build(),
        ),
        (
            "SYN+FIN",
            Syn {
                opts: &linux,
                flags: 0x03,
                ..Syn::default()
            }
            .build(),
        ),
        (
            "SYN+ACK",
            Syn {
                opts: &linux,
                flags: 0x12,
                ..Syn::default()
            }
            .build(),
        ),
        (
            "group MAC",
            Syn {
                opts: &linux,
                dst_mac0: 0x01,
                ..Syn::default()
            }
            .build(),
        ),
        (
            "13 NOPs before the MSS",
            Syn {
                opts: &long_list,
                ..Syn::default()
            }
            .build(),
        ),
    ];
    let addr: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let before = prog.counters().unwrap();
    for (what, f) in &cases {
        assert_eq!(
            xdp(&mut prog, f, addr, ListenerConfig::default(), 1),
            None,
            "{what}"
        );
    }
    let c = prog.counters().unwrap();
    // SYN+FIN and SYN+ACK are not SYNs of the flood path: they never reach its checks.
    assert_eq!(
        c.cookie_to_engine - before.cookie_to_engine,
        cases.len() as u64 - 2
    );
    assert_eq!(c.cookie_synacks, before.cookie_synacks);
    // Not in cookie mode: the engine's, however plain.
    prog.add_listener(addr).unwrap();
    prog.set_listener_cookie(addr, &ListenerConfig::default(), false)
        .unwrap();
    let (action, _) = prog
        .test_run_output(
            &Syn {
                opts: &linux,
                ..Syn::default()
            }
            .build(),
        )
        .unwrap();
    assert_ne!(action, XdpAction::Tx);
}
