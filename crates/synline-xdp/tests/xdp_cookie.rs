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
