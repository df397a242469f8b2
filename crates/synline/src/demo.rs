//! `synline demo`: the engine against a real Linux handshake, without a NIC.

use anyhow::{bail, Context, Result};
use std::time::Duration;
use synline_core::{AddressFamily, ListenerConfig, Secrets, Stack, StackConfig, Verdict};
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{parse_frame, OptionsOut, ParsedFrame, TcpFlags, Timestamps};

/// The kernel fixture: SYN, SYN-ACK, ACK of a Linux 6.18 client and listener (all options).
const FIXTURE: &[u8] = include_bytes!("../../synline-wire/tests/fixtures/v4_all.pcap");

fn describe(p: &ParsedFrame) -> String {
    let s = &p.seg;
    let o = &s.options;
    format!(
        "{}:{} > {}:{} flags {:?} seq {} ack {} win {} options [mss {:?} ws {:?} sack {} ts {:?}]",
        s.src,
        s.src_port,
        s.dst,
        s.dst_port,
        s.flags,
        s.seq,
        s.ack,
        s.window,
        o.mss,
        o.wscale,
        o.sack_permitted,
        o.timestamps.map(|t| (t.tsval, t.tsecr)),
    )
}

pub fn run() -> Result<()> {
    let frames = crate::pcap::read(FIXTURE).context("the embedded fixture")?;
    let [syn, kernel_synack, ..] = &frames[..] else {
        bail!("the embedded fixture has fewer than two frames");
    };
    let (syn, kernel_synack) = (&syn.data[..], &kernel_synack.data[..]);
    let syn_p = parse_frame(syn).context("fixture SYN")?;
    let kernel_p = parse_frame(kernel_synack).context("fixture SYN-ACK")?;

    // The embedded default configuration: one listener on the fixture's address, Linux
    // defaults except the window scale, which the fixture's namespace ran with tcp_rmem[2] = 6 MB.
    let stack = Stack::new(StackConfig::default(), Secrets::from_seed(0x5eed));
    let family = if syn_p.seg.dst.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut sock = stack.socket(family)?;
    sock.set_config(ListenerConfig {
        rmem: [4096, 131072, 6291456],
        ..ListenerConfig::default()
    })?;
    sock.bind(std::net::SocketAddr::new(syn_p.seg.dst, syn_p.seg.dst_port))?;
    sock.listen(4096)?;
    let mut worker = stack.worker(0).context("worker 0")?;
    let now = Duration::from_secs(1_000);

    println!("kernel SYN       {}", describe(&syn_p));
    println!("kernel SYN-ACK   {}", describe(&kernel_p));
    let mut buf = vec![0u8; 2048];
    buf[..syn.len()].copy_from_slice(syn);
    let Verdict::Transmit(n) = worker.handle_frame(&mut buf, syn.len(), now) else {
        bail!("the engine did not answer the SYN");
    };
    let ours = parse_frame(&buf[..n]).context("our SYN-ACK parses, checksums included")?;
    println!("synline SYN-ACK  {}", describe(&ours));
    let same = |a: &ParsedFrame, b: &ParsedFrame| {
        let (a, b) = (&a.seg, &b.seg);
        a.flags == b.flags
            && a.ack == b.ack
            && a.window == b.window
            && a.options.mss == b.options.mss
            && a.options.wscale == b.options.wscale
            && a.options.sack_permitted == b.options.sack_permitted
            && a.options.timestamps.map(|t| t.tsecr) == b.options.timestamps.map(|t| t.tsecr)
    };
    println!(
        "                 {} (ISS and TSval differ by design: keyed hashes of our own secrets)",
        if same(&ours, &kernel_p) {
            "same fields as the kernel's"
        } else {
            "DIFFERS from the kernel's"
        }
    );

    // The client's third ACK, as the kernel would send it for our SYN-ACK.
    let ts = ours.seg.options.timestamps.map(|t| Timestamps {
        tsval: syn_p.seg.options.timestamps.map_or(0, |s| s.tsval) + 1,
        tsecr: t.tsval,
    });
    let spec = SegmentSpec {
        eth_src: syn_p.seg.eth_src,
        eth_dst: syn_p.seg.eth_dst,
        vlan: None,
        src: syn_p.seg.src,
        dst: syn_p.seg.dst,
        ip: IpParams {
            ttl: 64,
            tos: 0,
            flow_label: 0,
        },
        src_port: syn_p.seg.src_port,
        dst_port: syn_p.seg.dst_port,
        tcp: TcpParams {
            seq: syn_p.seg.seq + 1,
            ack: ours.seg.seq + 1,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 502,
            options: OptionsOut {
                timestamps: ts,
                ..OptionsOut::default()
            },
        },
        payload: b"GET / HTTP/1.0\r\n\r\n",
    };
    let n = emit_segment(&mut buf, &spec)?;
    let v = worker.handle_frame(&mut buf, n, now + Duration::from_millis(1));
    println!(
        "client ACK+data  {}  -> {v:?}",
        describe(&parse_frame(&buf[..n])?)
    );
    let child = sock.accept().context("accept(): the handshake completed")?;
    println!(
        "accept()         {} -> {}  iss {} irs {} mss {} wscale {:?}/{} sack {} ts {:?} data {:?} state {:?}",
        child.remote,
        child.local,
        child.iss,
        child.irs,
        child.mss,
        child.snd_wscale,
        child.rcv_wscale,
        child.sack,
        child.timestamps,
        String::from_utf8_lossy(&child.data),
        child.state
    );
    println!("\ncounters (nstat names):");
    for (name, value) in stack.stats().iter().filter(|(_, v)| *v != 0) {
        println!("{name:<32}{value}");
    }
    Ok(())
}
