//! Drives N SYNs (then N third ACKs) through one worker, for profilers: `valgrind
//! --tool=callgrind` counts instructions (repeatable on a noisy machine), `perf record` samples.
//! Usage: syn_path [syn|ack|cookie] [N]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use synline_core::{
    AddressFamily, ListenerConfig, Secrets, Stack, StackConfig, SyncookieMode, Verdict,
};
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{parse_frame, OptionsOut, SeqNumber, TcpFlags, Timestamps};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "syn".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mode = if what == "cookie" {
        SyncookieMode::Always
    } else {
        SyncookieMode::Never
    };
    let stack = Stack::new(
        StackConfig {
            somaxconn: (n as u32 + 16).max(4096),
            max_requests: n + 16,
            requests_per_worker_hint: n + 16,
            ..StackConfig::default()
        },
        Secrets::from_seed(3),
    );
    let mut sock = stack.socket(AddressFamily::Inet).unwrap();
    sock.set_config(ListenerConfig {
        syncookies: mode,
        ..ListenerConfig::default()
    })
    .unwrap();
    sock.bind("198.18.0.1:80".parse().unwrap()).unwrap();
    sock.listen(i32::MAX).unwrap();
    let mut w = stack.worker(0).unwrap();
    let now = Duration::from_secs(100);
    let server: IpAddr = "198.18.0.1".parse().unwrap();
    let mut bufs = vec![[0u8; 256]; n];
    let mut lens = vec![0usize; n];
    let frame = |b: &mut [u8], i: usize, flags, seq: u32, ack: u32, options| {
        let spec = SegmentSpec {
            eth_src: [2, 0, 0, 0, 0, 2],
            eth_dst: [2, 0, 0, 0, 0, 1],
            vlan: None,
            src: IpAddr::V4(Ipv4Addr::from(0xc612_0000u32 | (i as u32 >> 14))),
            dst: server,
            ip: IpParams {
                ttl: 64,
                tos: 0,
                flow_label: 0,
            },
            src_port: 1024 + (i & 0x3fff) as u16,
            dst_port: 80,
            tcp: TcpParams {
                seq: SeqNumber(seq),
                ack: SeqNumber(ack),
                flags,
                window: 64240,
                options,
            },
            payload: &[],
        };
        emit_segment(b, &spec).unwrap()
    };
    let syn_opts = OptionsOut {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
    };
    for i in 0..n {
        lens[i] = frame(&mut bufs[i], i, TcpFlags::SYN, i as u32, 0, syn_opts);
    }
    let mut tx = 0;
    for i in 0..n {
        if let Verdict::Transmit(m) = w.handle_frame(&mut bufs[i], lens[i], now) {
            tx += 1;
            lens[i] = m;
        }
    }
    assert_eq!(tx, n);
    if what == "syn" {
        println!("{n} SYNs answered");
        return;
    }
    for i in 0..n {
        let s = parse_frame(&bufs[i][..lens[i]]).unwrap().seg;
        let ts = s.options.timestamps.map(|t| Timestamps {
            tsval: 2,
            tsecr: t.tsval,
        });
        lens[i] = frame(
            &mut bufs[i],
            i,
            TcpFlags::ACK,
            s.ack.0,
            s.seq.0.wrapping_add(1),
            OptionsOut {
                timestamps: ts,
                ..OptionsOut::default()
            },
        );
    }
    let mut ok = 0;
    for i in 0..n {
        if w.handle_frame(&mut bufs[i], lens[i], now) == Verdict::Consumed {
            ok += 1;
        }
    }
    assert_eq!(ok, n);
    println!("{n} SYNs and {n} third ACKs");
}
