//! `synline-rxdrop`: the AF_XDP rxdrop ceiling of the path, on synline's own datapath.
//!
//! It sets up exactly what `synline run` sets up, through the same [`Port`] (synline's XDP
//! program with `--listen` in its listener map, attached natively; one AF_XDP socket per RX
//! queue, each in the XSKMAP; one pinned worker thread per queue), but the engine behind it has no
//! listener. Every frame the program redirects is therefore parsed by the engine, looked up
//! in its (empty) request table, given `Verdict::Pass` and recycled to the fill ring: rxdrop
//! plus a parse and a hash lookup. synline-xdp has no public receive-and-free call, so this
//! is the closest the public API gets to xdpsock's rxdrop, and it measures the cost of
//! getting frames into user space on this path, which is what a SYN answerer cannot beat.
//!
//! With `--reflect` it is the *reply* ceiling instead: the same port and workers, but each
//! worker sends every received frame straight back from the frame it came in, addresses
//! swapped and marked SYN-ACK (`synline_wire::reflect`), without an engine. Every SYN answerer
//! on AF_XDP pays this receive-and-send path (in copy mode the send is an skb per frame); the
//! comparison puts synline against it (issue 13, target 1).
//!
//! Prints `ready` on stderr once every queue is bound, runs until SIGINT or SIGTERM (or
//! `--duration`), detaches, and prints its totals as one JSON object on stdout: frames taken
//! from the RX rings per queue, and the kernel's AF_XDP drop counters.
//!
//! ```text
//! synline-rxdrop --iface veth-s --listen 198.18.0.1:8080 --cpus 1
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use synline_core::{Secrets, Stack, StackConfig};
use synline_xdp::{AttachMode, Port, PortConfig, RoundCtx, WorkerConfig, XskConfig};

#[derive(Parser, Debug)]
#[command(
    name = "synline-rxdrop",
    about = "AF_XDP rxdrop on synline's datapath (a listener-less engine recycles every frame)"
)]
struct Cli {
    /// The interface (in the current network namespace).
    #[arg(long)]
    iface: String,
    /// The address the XDP program redirects (the flood's target).
    #[arg(long)]
    listen: SocketAddr,
    /// Pin queue i's thread to the i-th CPU of this list (round robin).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Descriptors per ring [default: synline's, XskConfig::default()].
    #[arg(long)]
    ring_size: Option<u32>,
    /// Frames in each queue's UMEM [default: synline's].
    #[arg(long)]
    frames: Option<u32>,
    /// The workers' SCHED_FIFO priority, 0 for the fair scheduler; the default is
    /// `synline run`'s, so that the ceilings run as synline does.
    #[arg(long, default_value_t = 1)]
    sched_fifo: i32,
    /// Preferred busy polling on the sockets, as `synline run --busy-poll`.
    #[arg(long)]
    busy_poll: bool,
    /// The reply ceiling: send every frame back, addresses swapped (see the module docs).
    #[arg(long)]
    reflect: bool,
    /// Stop after this many seconds (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let d = XskConfig::default();
    let mut port = Port::open(&PortConfig {
        iface: cli.iface.clone(),
        listeners: vec![cli.listen],
        attach: AttachMode::Native,
        xsk: XskConfig {
            ring_size: cli.ring_size.unwrap_or(d.ring_size),
            frame_count: cli.frames.unwrap_or(d.frame_count),
            busy_poll: cli.busy_poll.then(Default::default).or(d.busy_poll),
            ..d
        },
        kernel_flows: false,
    })?;
    let queues = port.queue_count();
    for (q, m) in port.queue_modes().iter().enumerate() {
        eprintln!("synline-rxdrop: queue {q}: AF_XDP bound in {m:?} mode");
    }

    // An engine with no listener: every frame meets Verdict::Pass and is recycled.
    let stack = Stack::new(
        StackConfig {
            workers: queues as usize,
            ..StackConfig::default()
        },
        Secrets::from_seed(6),
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("sigaction")?;
    }
    let workers = port.spawn(
        &stack,
        &WorkerConfig {
            name: if cli.reflect { "reflect" } else { "rxdrop" }.to_owned(),
            cpus: cli.cpus.clone(),
            reflector: cli.reflect,
            sched_fifo: (cli.sched_fifo > 0).then_some(cli.sched_fifo),
            ..WorkerConfig::default()
        },
        stop.clone(),
        |_| |_: &mut RoundCtx<'_>| {},
    )?;
    eprintln!(
        "synline-rxdrop: ready: {} ({:?} XDP), {queues} queue(s), redirecting {}",
        cli.iface,
        port.attach_mode(),
        cli.listen
    );
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if (cli.duration > 0.0 && start.elapsed().as_secs_f64() >= cli.duration)
            || workers.any_finished()
        {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let failed = workers.join().err();
    let per_queue: Vec<serde_json::Value> = port
        .queue_shared()
        .iter()
        .enumerate()
        .map(|(q, sh)| {
            let (s, k) = (sh.worker.snapshot(), sh.kernel());
            serde_json::json!({
                "queue": q,
                "rx_frames": s.rx_frames,
                "tx_frames": s.tx_frames,
                "tx_ring_full": s.tx_ring_full,
                "not_for_engine": s.not_for_engine,
                "fill_ring_empty": s.fill_ring_empty,
                "kern_rx_dropped": k.rx_dropped,
                "kern_rx_ring_full": k.rx_ring_full,
                "kern_fill_ring_empty": k.rx_fill_ring_empty,
            })
        })
        .collect();
    let xdp: serde_json::Map<String, serde_json::Value> = port
        .xdp_counters()
        .map(|c| {
            c.named()
                .iter()
                .map(|(n, v)| (n.to_string(), (*v).into()))
                .collect()
        })
        .unwrap_or_default();
    let (ring_size, frames) = (
        cli.ring_size.unwrap_or(d.ring_size),
        cli.frames.unwrap_or(d.frame_count),
    );
    port.close()?;
    let sum = |k: &str| -> u64 { per_queue.iter().filter_map(|q| q[k].as_u64()).sum() };
    println!(
        "{}",
        serde_json::json!({
            "iface": cli.iface,
            "queues": queues,
            "ring_size": ring_size,
            "frames": frames,
            "secs": start.elapsed().as_secs_f64(),
            "reflect": cli.reflect,
            "rx_frames": sum("rx_frames"),
            "tx_frames": sum("tx_frames"),
            "kern_rx_dropped": sum("kern_rx_dropped"),
            "per_queue": per_queue,
            "xdp": xdp,
        })
    );
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
