//! The `synline` binary.
//!
//! - `synline demo`: the engine answering a SYN the Linux kernel sent (captured in a
//!   namespace), on the embedded default configuration; no NIC needed.
//! - `synline replay IN.pcap --out OUT.pcap --listen ADDR:PORT[,...]`: a capture through the
//!   engine in virtual time; every frame it would send goes to OUT.pcap.
//! - `synline run --iface IF --listen ADDR:PORT[,...]`: the daemon (AF_XDP, one worker per
//!   queue). SIGHUP reloads its configuration; SIGINT and SIGTERM stop it.
//! - `synline check --config FILE`: every problem of a configuration, or exit 0.
//! - `synline stats`: the counters of a running daemon in nstat format.

mod app_listener;
mod child_log;
mod config;
mod demo;
mod fleet;
mod keyfile;
mod listeners;
mod metrics;
mod output;
mod pcap;
mod preflight;
mod replay;
mod run;
mod stats;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// `--xdp-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XdpMode {
    /// Native where the driver has it, else generic.
    Auto,
    /// In the driver, before any skb is built (fails where the driver has no XDP).
    Native,
    /// In the generic stack, after the skb: any interface, AF_XDP in copy mode only.
    Generic,
}

/// `--bind-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BindModeArg {
    /// Zero-copy where the driver has it, else copy.
    Auto,
    /// Frames copied between the driver and the UMEM.
    Copy,
    /// The UMEM is the driver's buffer (checked before anything is attached).
    Zerocopy,
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
        /// Seconds of timers to run after the last frame (at most a day: every request is
        /// gone after about two minutes anyway).
        #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u64).range(0..=86400))]
        tail: u64,
    },
    /// Run the daemon: XDP on IF, an AF_XDP socket and a worker per queue.
    Run(RunArgs),
    /// Check a configuration as `run` would read it; name every problem (exit 1) or say it
    /// is fine (exit 0).
    Check {
        /// TOML configuration (see README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// A listener: ADDR:PORT[,key=value...] (repeatable).
        #[arg(long)]
        listen: Vec<String>,
    },
    /// Make a fleet master key (0600) to copy to every host of a fleet (`run --fleet-key`).
    FleetKey {
        /// Where to write it (never replaced).
        file: PathBuf,
    },
    /// Print a running daemon's counters in nstat format (name, value, rate per second).
    Stats {
        /// The daemon's stats socket (default: the one of --iface, or the only one running).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The interface of the daemon to ask.
        #[arg(long)]
        iface: Option<String>,
    },
    /// Write the man page or shell completions (packaging).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generate,
        /// Output directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Generate {
    /// synline.1 and one page per subcommand (synline-run.1, ...).
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The interface (a NIC with XDP, or one end of a veth pair).
    #[arg(long)]
    iface: String,
    /// A listener: ADDR:PORT[,backlog=N,tcp_syncookies=M,...] (repeatable).
    #[arg(long)]
    listen: Vec<String>,
    /// TOML configuration (see README); read again on SIGHUP.
    #[arg(long)]
    config: Option<PathBuf>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    xdp_mode: XdpMode,
    /// AF_XDP bind mode.
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    bind_mode: BindModeArg,
    /// Busy polling on the AF_XDP sockets (SO_PREFER_BUSY_POLL).
    #[arg(long)]
    busy_poll: bool,
    /// AF_XDP ring size: a power of two, 64 to 32768 (default 2048). Larger rings absorb
    /// bursts when the worker shares its core with the driver's NAPI work.
    #[arg(long)]
    ring_size: Option<u32>,
    /// UMEM frames per queue: the ring size to 1048576 (default: twice the ring size, at
    /// least 4096).
    #[arg(long)]
    frames: Option<u32>,
    /// Frames a worker takes from its RX ring per round, 1 to the ring size (default 64,
    /// chosen by measurement: bench/README.md).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=32768))]
    batch: Option<u32>,
    /// XDP_USE_NEED_WAKEUP on the AF_XDP sockets: the driver says when it needs a syscall to
    /// go on, so an idle worker sleeps and a busy one makes fewer calls (default true).
    #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
    need_wakeup: bool,
    /// Replace the SYN-cookie secrets every this many seconds (0: never). At least 60:
    /// retired secrets keep their cookies valid for two minutes (two pairs are kept).
    #[arg(long, default_value_t = 600)]
    cookie_rotate: u64,
    /// SCHED_FIFO priority of the queue workers, 1-99, or 0 for the fair scheduler
    /// [default: 1 where the system allows it, else 0 and a warning]. Under SCHED_FIFO a worker runs
    /// ahead of every normal thread on its core, as the kernel's own SYN handling does in
    /// softirq, and sleeps in poll() when idle; measured 2x the fair scheduler on a core
    /// shared with the driver (bench/README.md).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=99))]
    sched_fifo: Option<i32>,
    /// CPUs to pin the queue workers to, e.g. 0,1 (queue i on the i-th, round robin).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Unix socket serving the counters to `synline stats` [default: /run/synline/IFACE.sock].
    #[arg(long)]
    stats_socket: Option<PathBuf>,
    /// Serve Prometheus metrics on ADDR:PORT (/metrics, and /healthz).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Keep the secrets (ISN, timestamps, SYN cookies) in this file (0600, made on first
    /// start), so a restart breaks no cookie in flight [default: /var/lib/synline/IFACE.key].
    #[arg(long, conflicts_with = "no_key_file")]
    key_file: Option<PathBuf>,
    /// Draw new secrets at every start instead (cookies in flight fail across a restart).
    #[arg(long)]
    no_key_file: bool,
    /// Fleet mode: derive the secrets from this fleet master key (the same file on every host
    /// behind one address; `synline fleet-key FILE` makes one), rotate them in step every
    /// --cookie-rotate seconds of wall-clock time, and give every SYN-ACK a cookie any host of
    /// the fleet validates (README, "More than one machine"). Replaces the key file.
    #[arg(long, conflicts_with_all = ["key_file", "no_key_file"])]
    fleet_key: Option<PathBuf>,
    /// A status line every this many seconds (0: none) [default: 1 when stderr is a
    /// terminal, where it rewrites itself; else 0].
    #[arg(long)]
    status_interval: Option<u64>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = output::LogFormat::Text)]
    log_format: output::LogFormat,
    /// Least severe events logged.
    #[arg(long, value_enum, default_value_t = output::LogLevel::Info)]
    log_level: output::LogLevel,
    /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// What becomes of an accepted connection: `kernel` hands it to the application's own
    /// kernel listener on the same address and port (its accept() gets an ordinary socket);
    /// `log` prints it as a JSON line and resets it (measurement and honeypot hosts).
    #[arg(long, value_enum, default_value_t = run::AcceptMode::Kernel)]
    accept: run::AcceptMode,
    /// The flood path: while a listener is in cookie mode (tcp_syncookies=2, or 1 with its SYN
    /// queue full), its SYNs are answered in the XDP program with the engine's own cookie
    /// SYN-ACKs (XDP_TX), without the trip through AF_XDP.
    #[arg(long, value_enum, default_value_t = XdpCookies::Auto)]
    xdp_cookies: XdpCookies,
}

/// `--xdp-cookies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XdpCookies {
    /// On for a NIC (an interface with a device behind it); off for virtual interfaces such
    /// as veth, where an XDP_TX frame reaches the other end only if that end runs an XDP
    /// program or has GRO on.
    Auto,
    /// On.
    On,
    /// Off: every SYN goes to the engine.
    Off,
}

/// How long the output threads get to write what is queued when the daemon ends.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// `synline run`: its own output streams, so neither a worker nor the stop waits on a slow
/// reader (output.rs); the exit code.
fn daemon(a: RunArgs) -> i32 {
    // First: a SIGHUP (systemctl reload) or SIGTERM during the start must not kill or be lost.
    let signals = match run::Signals::register() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synline: {e:#}");
            return 1;
        }
    };
    let (stdout, out_drain) = output::Stream::spawn("stdout", std::io::stdout());
    let (stderr, err_drain) = output::Stream::spawn("stderr", std::io::stderr());
    output::init_log(&stderr, a.log_format, a.log_level);
    let outputs = run::Outputs { stdout, stderr };
    let result = (|| -> Result<()> {
        let config = config::Config::load(a.config.as_deref(), &a.listen)?;
        let tty = std::io::stderr().is_terminal();
        let opts = run::RunOptions {
            config_file: a.config.clone(),
            listen: a.listen.clone(),
            xdp_mode: match a.xdp_mode {
                XdpMode::Auto => synline_xdp::AttachMode::Auto,
                XdpMode::Native => synline_xdp::AttachMode::Native,
                XdpMode::Generic => synline_xdp::AttachMode::Generic,
            },
            bind_mode: match a.bind_mode {
                BindModeArg::Auto => synline_xdp::BindMode::Auto,
                BindModeArg::Copy => synline_xdp::BindMode::Copy,
                BindModeArg::Zerocopy => synline_xdp::BindMode::ZeroCopy,
            },
            busy_poll: a.busy_poll,
            ring_size: a.ring_size,
            batch: a.batch.map(|b| b as usize),
            need_wakeup: a.need_wakeup,
            frames: a.frames,
            sched_fifo: match a.sched_fifo {
                Some(0) => None,
                Some(p) => Some(p),
                None if preflight::realtime_works(run::DEFAULT_SCHED_FIFO) => {
                    Some(run::DEFAULT_SCHED_FIFO)
                }
                None => {
                    tracing::warn!(
                        "SCHED_FIFO refused (no CAP_SYS_NICE, or real-time scheduling \
                         restricted): the queue workers run under the fair scheduler, which \
                         halves what one core answers when it also runs the driver (grant \
                         CAP_SYS_NICE, or pass --sched-fifo 0 to choose this)"
                    );
                    None
                }
            },
            cookie_rotate: match a.cookie_rotate {
                0 => None,
                s if s < 60 => anyhow::bail!("--cookie-rotate must be 0 or at least 60 seconds: the two previous secret pairs cover two minutes of cookies"),
                s => Some(Duration::from_secs(s)),
            },
            cpus: a.cpus.clone(),
            stats_socket: a
                .stats_socket
                .clone()
                .unwrap_or_else(|| stats::default_socket(&a.iface)),
            metrics: a.metrics,
            fleet_key: a.fleet_key.clone(),
            key_file: if a.no_key_file {
                None
            } else {
                Some(a.key_file.clone().unwrap_or_else(|| {
                    PathBuf::from(format!("/var/lib/synline/{}.key", a.iface))
                }))
            },
            status_interval: match a.status_interval {
                Some(0) => None,
                Some(s) => Some(Duration::from_secs(s)),
                None => tty.then_some(Duration::from_secs(1)),
            },
            status_tty: tty,
            duration: (a.duration > 0).then(|| Duration::from_secs(a.duration)),
            accept: a.accept,
            xdp_cookies: match a.xdp_cookies {
                XdpCookies::On => true,
                XdpCookies::Off => false,
                XdpCookies::Auto => {
                    std::path::Path::new(&format!("/sys/class/net/{}/device", a.iface)).exists()
                }
            },
            iface: a.iface.clone(),
        };
        run::run(config, &opts, &outputs, &signals)
    })();
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e:#}");
            1
        }
    };
    // Every handle of the streams goes (the workers' with them), then a bounded wait.
    drop(outputs);
    let deadline = Instant::now() + OUTPUT_GRACE;
    out_drain.wait(deadline);
    err_drain.wait(deadline);
    code
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
        Cmd::Run(a) => std::process::exit(daemon(a)),
        Cmd::Check { config, listen } => match config::Config::check(config.as_deref(), &listen) {
            Ok(c) => {
                println!(
                    "synline: the configuration{} is fine: {} listener(s)",
                    config
                        .map(|p| format!(" {}", p.display()))
                        .unwrap_or_default(),
                    c.listeners.len()
                );
                for l in &c.listeners {
                    println!("  {} backlog {} {:?}", l.addr, l.backlog, l.config);
                }
                Ok(())
            }
            Err(p) => {
                eprintln!("synline: {p}");
                std::process::exit(1);
            }
        },
        Cmd::Generate { what, dir } => generate(what, &dir),
        Cmd::FleetKey { file } => {
            fleet::FleetKey::generate(&file)?;
            println!(
                "synline: fleet key written to {} (0600): copy it to every host",
                file.display()
            );
            Ok(())
        }
        Cmd::Stats { socket, iface } => {
            use std::io::Read;
            let socket = stats::find_socket(socket, iface.as_deref())?;
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

/// `synline generate`: the man pages and completions a package installs.
fn generate(what: Generate, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cmd = Cli::command();
    match what {
        Generate::Man => {
            clap_mangen::generate_to(cmd, dir).context("write the man pages")?;
        }
        Generate::Completions => {
            for shell in [
                clap_complete::Shell::Bash,
                clap_complete::Shell::Zsh,
                clap_complete::Shell::Fish,
            ] {
                clap_complete::generate_to(shell, &mut Cli::command(), "synline", dir)
                    .with_context(|| format!("write the {shell} completion"))?;
            }
        }
    }
    Ok(())
}
