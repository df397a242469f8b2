//! The `synline` binary.
//!
//! - `synline demo`: the engine answering a SYN the Linux kernel sent (captured in a
//!   namespace), on the embedded default configuration; no NIC needed.
//! - `synline replay IN.pcap --out OUT.pcap --listen ADDR:PORT[,...]`: a capture through the
//!   engine in virtual time; every frame it would send goes to OUT.pcap.
//! - `synline run --iface IF --listen ADDR:PORT[,...]`: the daemon (AF_XDP, one worker per
//!   queue).
//! - `synline stats`: the counters of a running daemon in nstat format.

mod app_listener;
mod child_log;
mod config;
mod demo;
mod pcap;
mod replay;
mod run;
mod stats;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "synline",
    version,
    about = "TCP passive opens at line rate over AF_XDP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer a captured kernel SYN with the engine, complete the handshake, print counters.
    Demo,
    /// Feed a pcap through the engine in virtual time; write what it sends to another pcap.
    Replay {
        /// Input capture (classic pcap, Ethernet).
        input: PathBuf,
        /// Output capture.
        #[arg(long)]
        out: PathBuf,
        /// A listener: ADDR:PORT[,backlog=N,tcp_syncookies=M,...] (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// TOML configuration (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seed of the secrets (ISN, timestamps, cookies): the same seed replays the same bytes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Seconds of timers to run after the last frame.
        #[arg(long, default_value_t = 70)]
        tail: u64,
    },
    /// Run the daemon: XDP on IF, an AF_XDP socket and a worker per queue.
    Run {
        /// The interface (a NIC with XDP, or one end of a veth pair).
        #[arg(long)]
        iface: String,
        /// A listener: ADDR:PORT[,backlog=N,tcp_syncookies=M,...] (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// TOML configuration (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// XDP attach mode: auto (native, else generic), native or generic.
        #[arg(long, default_value = "auto")]
        xdp_mode: String,
        /// AF_XDP bind mode: auto (zero-copy where the driver has it), copy or zerocopy.
        #[arg(long, default_value = "auto")]
        bind_mode: String,
        /// Busy polling on the AF_XDP sockets (SO_PREFER_BUSY_POLL).
        #[arg(long)]
        busy_poll: bool,
        /// AF_XDP ring size (a power of two; default 2048). Larger rings absorb bursts when the
        /// worker shares its core with the driver's NAPI work (bench/results/latest.md).
        #[arg(long)]
        ring_size: Option<u32>,
        /// UMEM frames per queue (default: twice the ring size, at least 4096).
        #[arg(long)]
        frames: Option<u32>,
        /// Replace the SYN-cookie secrets every this many seconds (0: never). At least 60:
        /// retired secrets keep their cookies valid for two minutes (two pairs are kept).
        #[arg(long, default_value_t = 600)]
        cookie_rotate: u64,
        /// Run the queue workers under SCHED_FIFO at this priority (1-99). Worth it when a
        /// worker shares its core with the driver's NAPI work: 1.6x the SYN-ACKs on veth here
        /// (bench/results/latest.md).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=99))]
        sched_fifo: Option<i32>,
        /// CPUs to pin the queue workers to, e.g. 0,1 (queue i on the i-th, round robin).
        #[arg(long, value_delimiter = ',')]
        cpus: Vec<usize>,
        /// Unix socket serving the counters to `synline stats`.
        #[arg(long, default_value = stats::DEFAULT_SOCKET)]
        stats_socket: PathBuf,
        /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
        #[arg(long, default_value_t = 0)]
        duration: u64,
        /// What becomes of an accepted connection: `kernel` hands it to the application's own
        /// kernel listener on the same address and port (its accept() gets an ordinary
        /// socket); `log` prints it as a JSON line and resets it (measurement and honeypot
        /// hosts).
        #[arg(long, value_enum, default_value_t = run::AcceptMode::Kernel)]
        accept: run::AcceptMode,
    },
    /// Print a running daemon's counters in nstat format.
    Stats {
        /// The daemon's stats socket.
        #[arg(long, default_value = stats::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Demo => demo::run(),
        Cmd::Replay {
            input,
            out,
            listen,
            config,
            seed,
            tail,
        } => {
            let cfg = config::Config::load(config.as_deref(), &listen)?;
            let records = pcap::read(
                std::fs::File::open(&input).with_context(|| format!("open {}", input.display()))?,
            )
            .with_context(|| format!("read {}", input.display()))?;
            let file =
                std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
            let s = replay::run(
                &records,
                std::io::BufWriter::new(file),
                &cfg,
                seed,
                Duration::from_secs(tail),
                Box::new(|l| println!("{l}")),
            )?;
            eprintln!(
                "replay: {} frames in, {} frames out, {} connections accepted",
                s.frames_in, s.frames_out, s.children
            );
            eprint!("{}", stats::nstat(&s.stats, &[]));
            Ok(())
        }
        Cmd::Run {
            iface,
            listen,
            config,
            xdp_mode,
            bind_mode,
            busy_poll,
            ring_size,
            frames,
            sched_fifo,
            cookie_rotate,
            cpus,
            stats_socket,
            duration,
            accept,
        } => {
            let cfg = config::Config::load(config.as_deref(), &listen)?;
            let opts = run::RunOptions {
                iface,
                xdp_mode: run::parse_xdp_mode(&xdp_mode)?,
                bind_mode: run::parse_bind_mode(&bind_mode)?,
                busy_poll,
                ring_size,
                frames,
                sched_fifo,
                cookie_rotate: match cookie_rotate {
                    0 => None,
                    s if s < 60 => anyhow::bail!("--cookie-rotate must be 0 or at least 60 seconds: the two previous secret pairs cover two minutes of cookies"),
                    s => Some(Duration::from_secs(s)),
                },
                cpus,
                stats_socket: Some(stats_socket),
                duration: (duration > 0).then(|| Duration::from_secs(duration)),
                accept,
            };
            run::run(cfg, &opts)
        }
        Cmd::Stats { socket } => {
            use std::io::Read;
            let mut s = std::os::unix::net::UnixStream::connect(&socket).with_context(|| {
                format!(
                    "connect to {} (is `synline run` running?)",
                    socket.display()
                )
            })?;
            let mut text = String::new();
            s.read_to_string(&mut text).context("read counters")?;
            print!("{text}");
            Ok(())
        }
    }
}
