//! The XDP side of the kernel handoff under BPF_PROG_TEST_RUN: with it on, a segment of a
//! connection the kernel owns (a real established socket of this process, on loopback) or of
//! a flow in the `handed` map passes to the kernel (KERNEL_FLOW); a SYN, and an ACK of a flow
//! the kernel does not know (a third ACK, a cookie ACK), still go to the engine (they match
//! the listener: under test-run, with no AF_XDP socket, that shows as NO_SOCKET, see
//! test_run.rs). With it off, everything to a listener goes to the engine.
//!
//! Needs root and BPF. Without them each test says why and returns, except under CI=true,
//! where it fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use libbpf_rs::{MapCore, MapFlags};
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{OptionsOut, SeqNumber, TcpFlags};
use synline_xdp::handoff::{flow_key_bytes, ReqAttrs};
use synline_xdp::{XdpAction, XdpCounters, XdpProgram};

fn load_or_skip() -> Option<XdpProgram> {
    match XdpProgram::load() {
        Ok(p) => Some(p),
        Err(e) if e.is_permission_denied() && !synline_testns::ci() => {
            eprintln!("skipped: loading an XDP program needs root or CAP_BPF ({e})");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn segment(from: SocketAddr, to: SocketAddr, flags: TcpFlags) -> Vec<u8> {
    segment_at(from, to, flags, 1, 1)
}

fn segment_at(from: SocketAddr, to: SocketAddr, flags: TcpFlags, seq: u32, ack: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let n = emit_segment(
        &mut buf,
        &SegmentSpec {
            eth_src: [2, 0, 0, 0, 0, 2],
            eth_dst: [2, 0, 0, 0, 0, 1],
            vlan: None,
            src: from.ip(),
            dst: to.ip(),
            ip: IpParams::default(),
            src_port: from.port(),
            dst_port: to.port(),
            tcp: TcpParams {
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags,
                window: 512,
                options: OptionsOut::default(),
            },
            payload: &[],
        },
    )
    .unwrap();
    buf.truncate(n);
    buf
}

/// Which counter one run moved: "kernel_flow" (passed to the kernel) or "engine" (matched the
/// listener, NO_SOCKET under test-run).
fn outcome(prog: &XdpProgram, frame: &[u8]) -> &'static str {
    let before = prog.counters().unwrap();
    let action = prog.test_run(frame).unwrap();
    assert_eq!(action, XdpAction::Pass);
    let after = prog.counters().unwrap();
    let d = |f: fn(&XdpCounters) -> u64| f(&after) - f(&before);
    match (d(|c| c.kernel_flow), d(|c| c.no_socket), d(|c| c.passed)) {
        (1, 0, 1) => "kernel_flow",
        (0, 1, 1) => "engine",
        other => panic!("moved {other:?}: {after:?}"),
    }
}

#[test]
fn kernel_owned_and_handed_flows_pass_everything_else_goes_to_the_engine() {
    let Some(mut prog) = load_or_skip() else {
        return;
    };
    // A real kernel connection in this namespace, on loopback.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = l.local_addr().unwrap();
    let mut client = TcpStream::connect(server).unwrap();
    let (mut accepted, peer) = l.accept().unwrap();
    client.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    accepted.read_exact(&mut b).unwrap();
    prog.add_listener(server).unwrap();

    let established = segment(peer, server, TcpFlags::ACK);
    let unknown_peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let third_ack = segment(unknown_peer, server, TcpFlags::ACK);
    let syn_from_peer = segment(peer, server, TcpFlags::SYN);
    let handed_peer: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let handed_ack = segment(handed_peer, server, TcpFlags::ACK);
    let rst_unknown = segment(unknown_peer, server, TcpFlags::RST);

    // Off: every segment to the listener is the engine's (the daemon's --accept log).
    for f in [&established, &third_ack, &syn_from_peer, &handed_ack] {
        assert_eq!(outcome(&prog, f), "engine");
    }

    prog.set_kernel_flows(true).unwrap();
    prog.handed_map()
        .unwrap()
        .update(
            &flow_key_bytes(handed_peer, server),
            &ReqAttrs::default().handed_val(0, 0, 0),
            MapFlags::ANY,
        )
        .unwrap();
    let table: [(&str, &[u8], &str); 5] = [
        (
            "a segment of an established kernel socket",
            &established,
            "kernel_flow",
        ),
        ("an ACK of a flow in `handed`", &handed_ack, "kernel_flow"),
        (
            "an ACK the kernel does not know (a third ACK)",
            &third_ack,
            "engine",
        ),
        ("an RST the kernel does not know", &rst_unknown, "engine"),
        (
            "a SYN, even on an existing 4-tuple",
            &syn_from_peer,
            "engine",
        ),
    ];
    for (what, frame, want) in table {
        assert_eq!(outcome(&prog, frame), want, "{what}");
    }
    drop((client, accepted));
}

/// The price per established segment, measured by the kernel (BPF_PROG_TEST_RUN, mean of
/// 100,000 runs): printed for bench/results, not asserted (speed belongs in benchmarks).
#[test]
fn cost_per_established_segment_is_reported() {
    let Some(mut prog) = load_or_skip() else {
        return;
    };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = l.local_addr().unwrap();
    let _client = TcpStream::connect(server).unwrap();
    let (_accepted, peer) = l.accept().unwrap();
    prog.add_listener(server).unwrap();
    let established = segment(peer, server, TcpFlags::ACK);
    let other_port = segment(peer, "127.0.0.1:9".parse().unwrap(), TcpFlags::ACK);
    let mut rows = Vec::new();
    for on in [false, true] {
        prog.set_kernel_flows(on).unwrap();
        for (name, f) in [
            ("established", &established),
            ("not a listener", &other_port),
        ] {
            let (_, t) = prog.test_run_repeat(f, 100_000).unwrap();
            rows.push(format!("handoff {on}: {name}: {} ns", t.as_nanos()));
        }
    }
    eprintln!("XDP per frame:\n  {}", rows.join("\n  "));
}
