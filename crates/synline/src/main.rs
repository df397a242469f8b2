//! The `synline` binary.
//!
//! - `synline demo`: the engine answering a SYN the Linux kernel sent (captured in a
//!   namespace), on the embedded default configuration; no NIC needed.
//! - `synline replay IN.pcap --out OUT.pcap --listen ADDR:PORT[,...]`: a capture through the
//!   engine in virtual time; every frame it would send goes to OUT.pcap.
//! - `synline stats`: the counters of a running daemon in nstat format.

mod child_log;
mod config;
mod demo;
mod pcap;
mod replay;
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
