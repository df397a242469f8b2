//! `synline run`: the daemon. The XDP program on the interface sends listener traffic to one
//! AF_XDP socket per queue; one pinned worker thread per queue runs the engine over it.
//!
//! What becomes of the connections the engine accepts (`--accept`):
//! - `kernel` (the default): each worker hands every child to the application's own kernel
//!   listener the moment a frame makes it (`AcceptHook::child_made`, `synline_xdp::handoff`),
//!   and `app_listener` watches the application's listeners every 50 ms;
//! - `log`: one JSON line per connection on stdout (4-tuple, negotiated options, the first
//!   bytes of any data), then an RST to the client, sent from the same worker's TX ring (A-2's
//!   reset of a child nobody will serve).
//!
//! The status line goes to stderr when it is a terminal. Start-up checks, each with its own
//! message and a non-zero exit, leaving nothing attached: not root, no such interface, a
//! listener address not on the interface, a setting out of range, the kernel's sysctls for the
//! handoff, a program already attached, no XDP support, an AF_XDP bind failure (named with the
//! syscall and queue).

use crate::app_listener;
use crate::child_log;
use crate::config::Config;
use crate::stats;
use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use synline_core::{AddressFamily, DropReason, Mib, Secrets, Socket, Stack, StackConfig};
use synline_xdp::{
    AttachMode, BindMode, HandoffFailure, KernelHandoff, Port, PortConfig, PortError, QueueHandoff,
    QueueHook, QueueShared, RoundCtx, SockDiag, WorkerConfig, XskConfig,
};

/// Options of `synline run` beyond the listeners.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub iface: String,
    pub xdp_mode: AttachMode,
    pub bind_mode: BindMode,
    pub busy_poll: bool,
    /// AF_XDP ring size (fill, completion, RX, TX); `None`: synline-xdp's default.
    pub ring_size: Option<u32>,
    /// UMEM frames per queue; `None`: twice the ring size, at least the default.
    pub frames: Option<u32>,
    /// Replace the SYN-cookie secrets this often (`None`: never). Retired secrets keep
    /// validating their cookies for two minutes, so a period of at least 60 s breaks none.
    pub cookie_rotate: Option<Duration>,
    /// Run the workers under SCHED_FIFO at this priority (see `synline_xdp::set_fifo_priority`).
    pub sched_fifo: Option<i32>,
    /// Pin queue i's worker to cpus[i % len].
    pub cpus: Vec<usize>,
    pub stats_socket: Option<PathBuf>,
    /// Stop after this long (tests and demos); forever when `None`.
    pub duration: Option<Duration>,
    /// What becomes of accepted connections.
    pub accept: AcceptMode,
}

/// How long a handed-over flow's late segments (already on their way to the engine when it
/// handed the flow over) are re-injected into the kernel rather than answered by the listener.
/// The `handed` map sends everything later to the kernel directly.
const ACCEPTED_GRACE: Duration = Duration::from_secs(2);

/// `--accept`: what becomes of a connection the engine accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcceptMode {
    /// Hand it to the application's own kernel listener (see `synline_xdp::handoff`).
    Kernel,
    /// Log it as a JSON line on stdout and reset it (measurement and honeypot hosts).
    Log,
}

/// The addresses on the interface, from `ip -j addr show dev IF`.
fn iface_addrs(iface: &str) -> Result<Vec<IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show", "dev", iface])
        .output()
        .context("run `ip -j addr show` (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip addr show dev {iface}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parse `ip -j addr` output")?;
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                addrs.push(ip);
            }
        }
    }
    Ok(addrs)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn secrets_from_os() -> Result<Secrets> {
    let mut b = [0u8; 16 * 5 + 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("read /dev/urandom for the ISN, timestamp and cookie secrets")?;
    let k = |i: usize| -> [u8; 16] { b[i * 16..i * 16 + 16].try_into().expect("16 bytes") };
    Ok(Secrets {
        isn: k(0),
        ts_off: k(1),
        flow_label: k(2),
        cookie: [k(3), k(4)],
        table_seed: u64::from_le_bytes(b[80..88].try_into().expect("8 bytes")),
    })
}

/// One second of counters, for the status line.
struct Rates {
    last: synline_core::Snapshot,
    at: Instant,
}

impl Rates {
    fn line(&mut self, now: synline_core::Snapshot) -> String {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        let d = |m: Mib| (now.get(m) - self.last.get(m)) as f64 / dt;
        let mut drops: Vec<(DropReason, u64)> = DropReason::ALL
            .iter()
            .map(|r| (*r, now.drops(*r) - self.last.drops(*r)))
            .filter(|(_, n)| *n > 0)
            .collect();
        drops.sort_by_key(|d| std::cmp::Reverse(d.1));
        let drops: Vec<String> = drops
            .iter()
            .take(3)
            .map(|(r, n)| {
                format!(
                    "{}={:.0}/s",
                    r.name().trim_start_matches("SynlineDrop"),
                    *n as f64 / dt
                )
            })
            .collect();
        let s = format!(
            "SYN {:>9.0}/s  SYN-ACK {:>9.0}/s  accept {:>8.0}/s  cookies {:>8.0}/s  drops {}",
            d(Mib::SynRecv),
            d(Mib::SynAckSent),
            d(Mib::PassiveOpens),
            d(Mib::SyncookiesSent),
            if drops.is_empty() {
                "0".to_string()
            } else {
                drops.join(" ")
            }
        );
        self.last = now;
        self.at = Instant::now();
        s
    }
}

/// Serves the counters in nstat format on a unix socket: one snapshot per connection.
fn serve_stats(
    path: &Path,
    stack: Stack,
    xdp: Arc<Mutex<Vec<(String, u64)>>>,
    queues: Vec<Arc<QueueShared>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("bind stats socket {}", path.display()))?;
    l.set_nonblocking(true)
        .context("stats socket: set_nonblocking")?;
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let mut extra = xdp.lock().map(|v| v.clone()).unwrap_or_default();
                    for (q, s) in queues.iter().enumerate() {
                        extra.extend(s.named(q as u32));
                    }
                    let _ = c.write_all(stats::nstat(&stack.stats(), &extra).as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

pub fn run(mut config: Config, opts: &RunOptions) -> Result<()> {
    if !is_root() {
        bail!("not root: `synline run` loads an XDP program and binds AF_XDP sockets (CAP_NET_ADMIN, CAP_BPF); run it as root");
    }
    let queues = synline_xdp::iface::rx_queues(&opts.iface)?;
    let addrs = iface_addrs(&opts.iface)?;
    for l in &config.listeners {
        if !l.addr.ip().is_unspecified() && !addrs.contains(&l.addr.ip()) {
            bail!(
                "listener {}: address {} is not on interface {} (it has {:?})",
                l.addr,
                l.addr.ip(),
                opts.iface,
                addrs
            );
        }
    }
    let kernel = opts.accept == AcceptMode::Kernel;
    if kernel {
        for note in app_listener::fit_to_kernel(&mut config.listeners)? {
            eprintln!("synline: {note}");
        }
    }

    // The engine first (every setting checked before the NIC is touched): one worker per
    // queue, the listeners bound through the socket API.
    let stack = Stack::new(
        StackConfig {
            workers: queues as usize,
            // The kernel is the established table (D-2): late segments of a flow just handed
            // over go to it, not to the listener's RST.
            accepted_grace: if kernel {
                ACCEPTED_GRACE
            } else {
                Duration::ZERO
            },
            ..config.stack
        },
        secrets_from_os()?,
    );
    let mut socks: Vec<Socket> = Vec::new();
    for l in &config.listeners {
        let fam = if l.addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let mut s = stack
            .socket(fam)
            .map_err(|e| anyhow::anyhow!("socket(): {e}"))?;
        s.set_config(l.config)
            .map_err(|e| anyhow::anyhow!("setsockopt on {}: {e}", l.addr))?;
        s.bind(l.addr)
            .map_err(|e| anyhow::anyhow!("bind({}): {e}", l.addr))?;
        s.listen(l.backlog)
            .map_err(|e| anyhow::anyhow!("listen({}): {e}", l.addr))?;
        socks.push(s);
    }
    let socks = Arc::new(socks);

    // The port: the XDP program with the listeners in its map, attached, and one AF_XDP
    // socket per queue; detached again on every way out (its Drop).
    let d = XskConfig::default();
    let xsk = XskConfig {
        bind_mode: opts.bind_mode,
        ring_size: opts.ring_size.unwrap_or(d.ring_size),
        frame_count: opts
            .frames
            .unwrap_or_else(|| d.frame_count.max(2 * opts.ring_size.unwrap_or(0))),
        busy_poll: opts.busy_poll.then(Default::default),
        ..d
    };
    let mut port = Port::open(&PortConfig {
        iface: opts.iface.clone(),
        listeners: config.listeners.iter().map(|l| l.addr).collect(),
        attach: opts.xdp_mode,
        xsk,
        kernel_flows: kernel,
    })
    .map_err(|e| {
        let hint = match &e {
            PortError::Attach { .. } => format!(
                " (already attached? check `ip link show {0}` and remove it with `ip link set dev {0} xdp off`; no XDP support? try --xdp-mode generic)",
                opts.iface
            ),
            _ => String::new(),
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    eprintln!(
        "synline: XDP attached to {} (ifindex {}) in {:?} mode, {queues} queue(s)",
        opts.iface,
        port.ifindex(),
        port.attach_mode()
    );
    for (q, m) in port.queue_modes().iter().enumerate() {
        eprintln!("synline: queue {q}: AF_XDP bound in {m:?} mode");
    }

    // The kernel handoff: the TC side and the TAP, then a first look at the application's
    // listeners (those nobody serves leave the XDP map: the kernel resets their SYNs).
    let mut handoff = None;
    let mut apps = Vec::new();
    let mut diag = None;
    if kernel {
        let ifindex = port.ifindex();
        let h = KernelHandoff::open(port.program_mut(), ifindex, queues)
            .context("set up the kernel handoff")?;
        eprintln!(
            "synline: kernel handoff: TC on {} and TAP {}; accepted connections go to the application's listeners",
            opts.iface,
            h.tap_name()
        );
        let somaxconn = config.stack.somaxconn;
        for (spec, s) in config.listeners.iter().zip(socks.iter()) {
            let l = s.listener().expect("listening").clone();
            apps.push(app_listener::AppListener::new(spec, l, somaxconn));
        }
        let mut sd = SockDiag::open().context("socket(AF_NETLINK, NETLINK_SOCK_DIAG)")?;
        let changes = app_listener::poll(&mut sd, &mut apps, port.program(), true)
            .context("read the kernel's listeners (sock_diag)")?;
        log_changes(&changes);
        diag = Some(sd);
        handoff = Some(h);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("sigaction(SIGINT/SIGTERM)")?;
    }
    let xdp_counters = Arc::new(Mutex::new(Vec::new()));
    if let Some(p) = &opts.stats_socket {
        serve_stats(
            p,
            stack.clone(),
            xdp_counters.clone(),
            port.queue_shared().to_vec(),
            stop.clone(),
        )?;
    }

    // After its rounds each worker drains the accept lists: each child is handed to the
    // kernel (or, with --accept log, logged), from the worker's own queue; a child that
    // cannot be handed over is reset, as the kernel would have nothing for it.
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut queue_handoffs: Vec<Option<QueueHandoff>> = (0..queues)
        .map(|q| handoff.as_mut().and_then(|h| h.queue(q)))
        .collect();
    if kernel && queue_handoffs.iter().any(|q| q.is_none()) {
        bail!("kernel handoff: a TAP queue per worker");
    }
    let workers = port.spawn(
        &stack,
        &WorkerConfig {
            name: "synline".to_owned(),
            cpus: opts.cpus.clone(),
            sched_fifo: opts.sched_fifo,
            ..WorkerConfig::default()
        },
        stop.clone(),
        |q| AcceptHook {
            socks: socks.clone(),
            out: out.clone(),
            to_kernel: queue_handoffs[q as usize].take(),
            reset: Vec::new(),
            now_secs: 0,
        },
    )?;

    let started = Instant::now();
    let mut rotated = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut rates = Rates {
        last: stack.stats(),
        at: Instant::now(),
    };
    let extra_now = |port: &Port, handoff: &Option<KernelHandoff>| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = port
            .xdp_counters()
            .map(|c| c.named().iter().map(|(n, v)| (n.to_string(), *v)).collect())
            .unwrap_or_default();
        if let Some(h) = handoff {
            v.extend(h.stats().named().iter().map(|(n, x)| (n.to_string(), *x)));
            v.push((
                "SynlineTcLastAssignErrno".to_string(),
                port.program().last_assign_errno().unsigned_abs(),
            ));
        }
        v
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(app_listener::POLL);
        if let Some(sd) = diag.as_mut() {
            match app_listener::poll(sd, &mut apps, port.program(), false) {
                Ok(changes) => log_changes(&changes),
                Err(e) => eprintln!("synline: reading the kernel's listeners: {e:#}"),
            }
        }
        // The program's and the handoff's counters, as fresh as the stats socket wants them.
        if let Ok(mut x) = xdp_counters.lock() {
            *x = extra_now(&port, &handoff);
        }
        if rates.at.elapsed() >= Duration::from_secs(1) {
            let line = rates.line(stack.stats());
            if tty {
                eprint!("\r\x1b[2K{line}");
            }
        }
        if let Some(period) = opts.cookie_rotate {
            if rotated.elapsed() >= period {
                // The workers' clock (monotonic), so the two-minute grace is on their time.
                stack
                    .rotate_cookie_secrets(secrets_from_os()?.cookie, synline_xdp::monotonic_now());
                rotated = Instant::now();
            }
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) || workers.any_finished() {
            stop.store(true, Ordering::Relaxed);
        }
    }
    if tty {
        eprintln!();
    }
    let failed = workers.join().err();
    let mut extra = extra_now(&port, &handoff);
    extra.extend(port.queue_counters());
    port.close()?;
    drop(handoff);
    eprintln!("synline: XDP detached from {}; totals:", opts.iface);
    eprint!("{}", stats::nstat(&stack.stats(), &extra));
    match failed {
        Some(e) => Err(anyhow::Error::new(e).context("worker")),
        None => Ok(()),
    }
}

/// A worker's side of `--accept`: children go to the kernel the moment they are made (before
/// the next frame of the batch, whose segments may be the flow's next), or to the log; a child
/// that cannot be handed over is reset after the round, from this worker's queue.
struct AcceptHook {
    socks: Arc<Vec<Socket>>,
    out: Arc<Mutex<std::io::Stdout>>,
    to_kernel: Option<QueueHandoff>,
    reset: Vec<synline_core::Child>,
    now_secs: u32,
}

impl QueueHook for AcceptHook {
    fn child_made(&mut self, engine: &mut synline_core::Worker) {
        let Some(h) = self.to_kernel.as_mut() else {
            return;
        };
        for s in self.socks.iter() {
            while let Ok(c) = s.accept() {
                match h.hand_over(engine, &c, self.now_secs) {
                    // A TAP error leaves the map entry: the peer's next segment completes it.
                    Ok(()) | Err(HandoffFailure::Tap(_)) => {}
                    Err(_) => self.reset.push(c),
                }
            }
        }
    }

    fn pass(&mut self, frame: &[u8]) -> bool {
        self.to_kernel.as_mut().is_some_and(|h| h.pass_on(frame))
    }

    fn after_round(&mut self, ctx: &mut RoundCtx<'_>) {
        self.now_secs = ctx.now.as_secs() as u32;
        if self.to_kernel.is_some() {
            // Children from hand-offs between workers and timers arrive between frames too.
            self.child_made(ctx.engine);
        } else {
            for s in self.socks.iter() {
                for _ in 0..64 {
                    let Ok(c) = s.accept() else { break };
                    let line = child_log::json_line(&c);
                    if let Ok(mut o) = self.out.lock() {
                        let _ = writeln!(o, "{line}");
                    }
                    self.reset.push(c);
                }
            }
        }
        for c in self.reset.drain(..) {
            ctx.originate(|engine, b| engine.write_child_rst(&c, b).ok());
        }
    }
}

fn log_changes(changes: &[app_listener::Change]) {
    for c in changes {
        match c {
            app_listener::Change::Up(addr, k, took) => eprintln!(
                "synline: {addr}: the application listens ({} backlog {}): its SYNs go to the engine, its connections to its accept(); {took}",
                k.addr, k.max_ack_backlog
            ),
            app_listener::Change::Down(addr) => eprintln!(
                "synline: {addr}: no application listens: its SYNs go to the kernel, which resets them"
            ),
        }
    }
}

/// Parses `--xdp-mode`.
pub fn parse_xdp_mode(s: &str) -> Result<AttachMode> {
    Ok(match s {
        "auto" => AttachMode::Auto,
        "native" | "drv" => AttachMode::Native,
        "generic" | "skb" => AttachMode::Generic,
        _ => bail!("--xdp-mode must be auto, native or generic, not {s:?}"),
    })
}

/// Parses `--bind-mode`.
pub fn parse_bind_mode(s: &str) -> Result<BindMode> {
    Ok(match s {
        "auto" => BindMode::Auto,
        "copy" => BindMode::Copy,
        "zerocopy" | "zero-copy" => BindMode::ZeroCopy,
        _ => bail!("--bind-mode must be auto, copy or zerocopy, not {s:?}"),
    })
}
