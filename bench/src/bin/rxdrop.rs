//! `synline-rxdrop`: the AF_XDP rxdrop ceiling of the path, on synline's own datapath.
//!
//! It sets up exactly what `synline run` sets up (synline's XDP program with `--listen` in its
//! listener map, attached natively; one AF_XDP socket per RX queue, each in the XSKMAP; one
//! pinned thread per queue running [`Datapath::poll_once`]), but the engine behind it has no
//! listener. Every frame the program redirects is therefore parsed by the engine, looked up
//! in its (empty) request table, given `Verdict::Pass` and recycled to the fill ring: rxdrop
//! plus a parse and a hash lookup. synline-xdp has no public receive-and-free call, so this
//! is the closest the public API gets to xdpsock's rxdrop, and it measures the cost of
//! getting frames into user space on this path, which is what a SYN answerer cannot beat.
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
use synline_xdp::{
    AttachMode, Datapath, DatapathConfig, QueueStats, XdpProgram, XskConfig, XskQueue,
};

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
    /// Stop after this many seconds (0: until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
}

fn rx_queues(iface: &str) -> Result<u32> {
    let dir = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&dir)
        .with_context(|| format!("read {dir}"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    Ok(n.max(1))
}

fn ifindex(iface: &str) -> Result<u32> {
    let path = format!("/sys/class/net/{iface}/ifindex");
    let s = std::fs::read_to_string(&path)
        .with_context(|| format!("no such interface {iface:?} ({path})"))?;
    s.trim().parse().with_context(|| format!("{path}: {s:?}"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let index = ifindex(&cli.iface)?;
    let queues = rx_queues(&cli.iface)?;

    // An engine with no listener: every frame meets Verdict::Pass and is recycled.
    let stack = Stack::new(
        StackConfig {
            workers: queues as usize,
            ..StackConfig::default()
        },
        Secrets {
            isn: [1; 16],
            ts_off: [2; 16],
            flow_label: [3; 16],
            cookie: [[4; 16], [5; 16]],
            table_seed: 6,
        },
    );

    let mut prog = XdpProgram::load().context("load synline's XDP program")?;
    prog.add_listener(cli.listen)
        .with_context(|| format!("add {} to the listener map", cli.listen))?;
    let mode = prog
        .attach(index, AttachMode::Native)
        .with_context(|| format!("attach XDP to {} natively", cli.iface))?;
    let d = XskConfig::default();
    let xcfg = XskConfig {
        ring_size: cli.ring_size.unwrap_or(d.ring_size),
        frame_count: cli.frames.unwrap_or(d.frame_count),
        ..d
    };
    let mut xsks = Vec::new();
    for q in 0..queues {
        let x = XskQueue::new(&cli.iface, q, &xcfg)?;
        prog.set_socket(q, x.fd())
            .with_context(|| format!("queue {q}: XSKMAP"))?;
        eprintln!(
            "synline-rxdrop: queue {q}: AF_XDP bound in {:?} mode",
            x.mode()
        );
        xsks.push(x);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("sigaction")?;
    }
    let stats: Vec<Arc<QueueStats>> = (0..queues).map(|_| Arc::default()).collect();
    let mut threads = Vec::new();
    for (q, mut xsk) in xsks.into_iter().enumerate() {
        let mut worker = stack.worker(q).context("worker")?;
        let (stop, st) = (stop.clone(), stats[q].clone());
        let cpu = (!cli.cpus.is_empty()).then(|| cli.cpus[q % cli.cpus.len()]);
        threads.push(
            std::thread::Builder::new()
                .name(format!("rxdrop-q{q}"))
                .spawn(move || -> Result<_> {
                    if let Some(c) = cpu {
                        synline_xdp::pin_current_thread(c)?;
                    }
                    let mut dp = Datapath::new(DatapathConfig {
                        cpu,
                        ..DatapathConfig::default()
                    });
                    while !stop.load(Ordering::Relaxed) {
                        let now = synline_xdp::monotonic_now();
                        let round = dp.poll_once(&mut xsk, &mut worker, now, &st)?;
                        dp.idle(&mut xsk, round)?;
                    }
                    Ok(xsk.kernel_stats()?)
                })?,
        );
    }
    eprintln!(
        "synline-rxdrop: ready: {} ({mode:?} XDP), {queues} queue(s), redirecting {}",
        cli.iface, cli.listen
    );
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if (cli.duration > 0.0 && start.elapsed().as_secs_f64() >= cli.duration)
            || threads.iter().any(|t| t.is_finished())
        {
            stop.store(true, Ordering::Relaxed);
        }
    }
    let mut per_queue = Vec::new();
    let mut failed = None;
    for (q, t) in threads.into_iter().enumerate() {
        let s = stats[q].snapshot();
        let k = match t.join() {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                failed = Some(e);
                Default::default()
            }
            Err(_) => {
                failed = Some(anyhow::anyhow!("queue {q}'s thread panicked"));
                Default::default()
            }
        };
        per_queue.push(serde_json::json!({
            "queue": q,
            "rx_frames": s.rx_frames,
            "not_for_engine": s.not_for_engine,
            "fill_ring_empty": s.fill_ring_empty,
            "kern_rx_dropped": k.rx_dropped,
            "kern_rx_ring_full": k.rx_ring_full,
            "kern_fill_ring_empty": k.rx_fill_ring_empty,
        }));
    }
    let xdp: serde_json::Map<String, serde_json::Value> = prog
        .counters()
        .map(|c| {
            c.named()
                .iter()
                .map(|(n, v)| (n.to_string(), (*v).into()))
                .collect()
        })
        .unwrap_or_default();
    prog.detach_all().context("detach")?;
    let sum = |k: &str| -> u64 { per_queue.iter().filter_map(|q| q[k].as_u64()).sum() };
    println!(
        "{}",
        serde_json::json!({
            "iface": cli.iface,
            "queues": queues,
            "ring_size": xcfg.ring_size,
            "frames": xcfg.frame_count,
            "secs": start.elapsed().as_secs_f64(),
            "rx_frames": sum("rx_frames"),
            "kern_rx_dropped": sum("kern_rx_dropped"),
            "per_queue": per_queue,
            "xdp": xdp,
        })
    );
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
