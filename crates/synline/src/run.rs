//! `synline run`: the daemon. The XDP program on the interface sends listener traffic to one
//! AF_XDP socket per queue; one pinned worker thread per queue runs the engine over it.
//!
//! What becomes of the connections the engine accepts (`--accept`):
//! - `kernel` (the default): each worker hands every child to the application's own kernel
//!   listener the moment a frame makes it (`AcceptHook::child_made`, `synline_xdp::handoff`),
//!   and `app_listener` watches the application's listeners every 50 ms;
//! - `log`: one JSON line per connection on stdout (time, 4-tuple, negotiated options, the
//!   first bytes of any data), then an RST to the client, sent from the same worker's TX
//!   ring (A-2's reset of a child nobody will serve).
//!
//! The start, in order, so that a start that fails leaves nothing behind:
//! 1. every check that needs nothing attached (preflight.rs: capabilities, interface, queues,
//!    addresses, CPUs, ring sizes, zero-copy), the stats socket and the metrics port bound,
//!    the key file read or created: all problems named at once;
//! 2. the engine and its listeners;
//! 3. the port: the program attached through a bpf_link (the kernel detaches it if the
//!    process dies), AF_XDP sockets, the kernel handoff (tcx links, the TAP);
//! 4. the workers.
//!
//! Then the main loop (every 50 ms): the application listeners, the counters for `synline
//! stats` and `/metrics`, the status line, cookie rotation (written to the key file first),
//! SIGHUP (reload: listeners.rs), SIGINT/SIGTERM (stop). Nothing in it waits on output
//! (output.rs), so a stop takes at most a worker's poll timeout (100 ms) and the final
//! counters' flush (at most 200 ms of it).

use crate::app_listener;
use crate::child_log;
use crate::config::{Config, Problems};
use crate::fleet::{self, FleetKey};
use crate::keyfile::{self, KeyFile, Keys};
use crate::listeners::{Cached, Listeners, Published};
use crate::metrics::Metrics;
use crate::output::Stream;
use crate::preflight;
use crate::stats::{self, ListenerGauges, Sample, StatsSocket, View};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use synline_core::{DropReason, Mib, Stack, StackConfig};
use synline_xdp::{
    AttachMode, BindMode, DatapathConfig, HandoffFailure, KernelHandoff, Port, PortConfig,
    PortError, QueueHandoff, QueueHook, RoundCtx, SockDiag, WorkerConfig, XdpError, XskConfig,
};
use tracing::{error, info, warn};

/// The workers' SCHED_FIFO priority unless told otherwise: the lowest real-time priority,
/// above every normal thread (as the kernel's softirq SYN handling is) and below every other
/// real-time thread (threaded interrupt handlers at 50, whatever the operator placed). With
/// the fair scheduler a worker that shares its core with the driver's NAPI work gets half the
/// core while NAPI keeps filling rings nobody drains, and the frames are dropped after all the
/// work of delivering them; under SCHED_FIFO the worker drains its rings first and NAPI
/// delivers only what it can take. Measured (bench/README.md, "Choosing the defaults"): 2.4x
/// the SYN-ACKs of the fair scheduler on one core, 1.4x on two; the priority itself made no
/// difference that held up (priority 50 against 1: ahead in one trial, even in the sweep).
pub const DEFAULT_SCHED_FIFO: i32 = 1;

/// Requests each worker's table holds before it grows: room for every listener's full SYN
/// queue (B + 1 requests each, Q-6), as one worker may receive all of a flood, so that a flood
/// fills the table without a rehash on the hot path (issue 13); at most 65536 (8 MiB of
/// requests a worker), beyond which the table grows as it fills, and never above the cap on
/// live requests.
fn presized_requests(config: &Config) -> usize {
    let somaxconn = config.stack.somaxconn;
    let queues: usize = config
        .listeners
        .iter()
        .map(|l| (l.backlog.max(0) as u32).min(somaxconn) as usize + 1)
        .sum();
    queues
        .min(65536)
        .min(config.stack.max_requests)
        .max(config.stack.requests_per_worker_hint)
}

/// Options of `synline run` beyond the listeners.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub iface: String,
    /// The configuration file (read again on SIGHUP) and the `--listen` flags.
    pub config_file: Option<PathBuf>,
    pub listen: Vec<String>,
    pub xdp_mode: AttachMode,
    pub bind_mode: BindMode,
    pub busy_poll: bool,
    /// AF_XDP ring size (fill, completion, RX, TX); `None`: synline-xdp's default.
    pub ring_size: Option<u32>,
    /// UMEM frames per queue; `None`: twice the ring size, at least the default.
    pub frames: Option<u32>,
    /// Frames per round from the RX ring; `None`: `DatapathConfig::default()`'s.
    pub batch: Option<usize>,
    /// XDP_USE_NEED_WAKEUP.
    pub need_wakeup: bool,
    /// Replace the SYN-cookie secrets this often (`None`: never). Retired secrets keep
    /// validating their cookies for two minutes, so a period of at least 60 s breaks none.
    pub cookie_rotate: Option<Duration>,
    /// Run the workers under SCHED_FIFO at this priority (see `synline_xdp::set_fifo_priority`);
    /// `None`: the fair scheduler. `main` makes it [`DEFAULT_SCHED_FIFO`] unless told otherwise.
    pub sched_fifo: Option<i32>,
    /// Pin queue i's worker to cpus[i % len].
    pub cpus: Vec<usize>,
    pub stats_socket: PathBuf,
    /// The Prometheus endpoint.
    pub metrics: Option<SocketAddr>,
    /// Where the secrets are kept across restarts; `None`: new secrets each start.
    pub key_file: Option<PathBuf>,
    /// Fleet mode: the secrets derive from this master key (fleet.rs), every SYN-ACK carries
    /// a fleet-valid cookie (`StackConfig::fleet`); the key file is not used.
    pub fleet_key: Option<PathBuf>,
    /// A status line this often (`None`: never).
    pub status_interval: Option<Duration>,
    /// The status line rewrites itself in place (stderr is a terminal).
    pub status_tty: bool,
    /// Stop after this long (tests and demos); forever when `None`.
    pub duration: Option<Duration>,
    /// What becomes of accepted connections.
    pub accept: AcceptMode,
    /// The flood path: cookie SYN-ACKs answered in the XDP program while a listener is in
    /// cookie mode (bpf/cookie.h).
    pub xdp_cookies: bool,
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

/// The signals, registered first thing at start (a SIGHUP or SIGTERM that arrives while the
/// daemon starts must neither kill it nor be lost).
pub struct Signals {
    /// SIGINT or SIGTERM: stop.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reload.
    pub hup: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> Result<Signals> {
        let s = Signals {
            stop: Arc::default(),
            hup: Arc::default(),
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, s.stop.clone())
                .context("sigaction(SIGINT/SIGTERM)")?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, s.hup.clone())
            .context("sigaction(SIGHUP)")?;
        Ok(s)
    }
}

/// systemd's readiness protocol (`Type=notify`): `state` to $NOTIFY_SOCKET, if there is one.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let addr = match path.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()),
        None => std::os::unix::net::SocketAddr::from_pathname(&path),
    };
    if let Ok(a) = addr {
        let _ = sock.send_to_addr(state.as_bytes(), &a);
    }
}

/// The output streams the daemon writes to.
pub struct Outputs {
    /// The connection log (`--accept log`).
    pub stdout: Stream,
    /// The log (already installed as `tracing`'s writer) and the status line.
    pub stderr: Stream,
}

/// Wall clock minus the monotonic clock: what puts the cookie minute on the wall clock.
fn wall_minus_monotonic() -> Duration {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(synline_xdp::monotonic_now())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One second of counters, for the status line.
struct Rates {
    last: synline_core::Snapshot,
    /// The flood path's cookie SYN-ACKs (XDP) at the last line.
    last_xdp: u64,
    at: Instant,
}

impl Rates {
    fn line(&mut self, now: synline_core::Snapshot, xdp: u64) -> String {
        let dt = self.at.elapsed().as_secs_f64().max(1e-3);
        let x = xdp.saturating_sub(self.last_xdp) as f64 / dt;
        let d = |m: Mib| {
            let engine = (now.get(m) - self.last.get(m)) as f64 / dt;
            match m {
                Mib::SynRecv | Mib::SynAckSent | Mib::SyncookiesSent => engine + x,
                _ => engine,
            }
        };
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
        self.last_xdp = xdp;
        self.at = Instant::now();
        s
    }
}

/// A stack with `keys`: the secrets, and the retired cookie pairs whose cookies may still be
/// in flight (a restart validates them as the previous run would have).
fn stack_from_keys(config: StackConfig, keys: &Keys) -> Stack {
    let live = keys.live_retired();
    let now = synline_xdp::monotonic_now();
    let mut secrets = keys.secrets.clone();
    if let Some((oldest, _)) = live.first() {
        secrets.cookie = *oldest;
    }
    let stack = Stack::new(config, secrets);
    // Replay the rotations: each retired pair was retired `ago` before now, on the workers'
    // clock; the last rotation makes the file's current pair current.
    for (i, (_, ago)) in live.iter().enumerate() {
        let next = live
            .get(i + 1)
            .map_or(keys.secrets.cookie, |(keys, _)| *keys);
        stack.rotate_cookie_secrets(next, now.saturating_sub(*ago));
    }
    stack
}

/// The flood path's SYNs under the engine's names: each was a segment in, a SYN, a cookie
/// sent, a SYN-ACK and a segment out, as if the engine had answered it.
fn merge_flood_path(counters: &mut [(String, u64)], c: &synline_xdp::XdpCounters) {
    for (name, v) in counters.iter_mut() {
        *v += match name.as_str() {
            "TcpInSegs"
            | "SynlineInSyns"
            | "TcpExtSyncookiesSent"
            | "SynlineOutSynAcks"
            | "TcpOutSegs" => c.cookie_synacks,
            // Every cookie counts here, in mode 2 too, as in the engine and Linux
            // (tcp_syn_flood_action).
            "TcpExtTCPReqQFullDoCookies" => c.cookie_synacks,
            _ => 0,
        };
    }
}

/// The counters and gauges at this moment.
fn sample(
    stack: &Stack,
    port: &Port,
    handoff: &Option<KernelHandoff>,
    listeners: &Listeners,
    outputs: &Outputs,
    reloads: (u64, u64),
) -> Sample {
    let mut counters: Vec<(String, u64)> = stack
        .stats()
        .iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    if let Ok(c) = port.xdp_counters() {
        merge_flood_path(&mut counters, &c);
        counters.extend(c.named().iter().map(|(n, v)| (n.to_string(), *v)));
    }
    if let Some(h) = handoff {
        counters.extend(h.stats().named().iter().map(|(n, x)| (n.to_string(), *x)));
        counters.push((
            "SynlineTcLastAssignErrno".to_string(),
            port.program().last_assign_errno().unsigned_abs(),
        ));
    }
    counters.extend([
        (
            "SynlineConnLogDropped".to_string(),
            outputs.stdout.dropped(),
        ),
        ("SynlineLogDropped".to_string(), outputs.stderr.dropped()),
        ("SynlineReloads".to_string(), reloads.0),
        ("SynlineReloadsFailed".to_string(), reloads.1),
    ]);
    let queues = port.queue_shared().iter().map(|q| q.counters()).collect();
    let listeners = listeners
        .engine_listeners()
        .iter()
        .enumerate()
        .map(|(i, l)| ListenerGauges {
            addr: l.addr,
            qlen: l.qlen(),
            young: l.young(),
            backlog: l.backlog(),
            accept_queue: l.accept_queue_len(),
            app: listeners.apps.get(i).map(|a| {
                let (q, m) = a.app_queue.unwrap_or((0, 0));
                (a.serving(), q, m)
            }),
        })
        .collect();
    Sample {
        counters,
        queues,
        listeners,
    }
}

pub fn run(
    mut config: Config,
    opts: &RunOptions,
    outputs: &Outputs,
    signals: &Signals,
) -> Result<()> {
    let kernel = opts.accept == AcceptMode::Kernel;
    let d = XskConfig::default();
    let xsk = XskConfig {
        bind_mode: opts.bind_mode,
        ring_size: opts.ring_size.unwrap_or(d.ring_size),
        frame_count: opts.frames.unwrap_or_else(|| {
            d.frame_count
                .max(opts.ring_size.unwrap_or(0).saturating_mul(2))
        }),
        busy_poll: opts.busy_poll.then(Default::default),
        need_wakeup: opts.need_wakeup,
        ..d
    };

    // 1. Every check before anything is touched.
    let mut problems = Vec::new();
    let checked = preflight::check(opts, &config, &xsk, &mut problems);
    let mut fit_notes = Vec::new();
    if kernel {
        match app_listener::fit_to_kernel(&mut config.listeners) {
            Ok(n) => fit_notes = n,
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if let Err(e) = StatsSocket::check(&opts.stats_socket) {
        problems.push(format!("{e:#}"));
    }
    let metrics = opts.metrics.and_then(|a| {
        Metrics::bind(a)
            .map_err(|e| problems.push(format!("{e:#}")))
            .ok()
    });
    let fleet = match &opts.fleet_key {
        Some(p) => match FleetKey::load(p) {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        },
        None => None,
    };
    let key_file = opts
        .key_file
        .as_ref()
        .filter(|_| opts.fleet_key.is_none())
        .map(KeyFile::new);
    let keys = match &key_file {
        Some(kf) => match kf.read_if_any() {
            Ok(k) => k,
            Err(e) => {
                problems.push(format!("{e:#}"));
                None
            }
        },
        None => None,
    };
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    let restarted = keys.is_some();
    let keys = match (&key_file, keys) {
        (Some(kf), Some(k)) => {
            info!(path = %kf.path().display(), "secrets read from the key file: cookies issued before a restart stay valid");
            Some(k)
        }
        (Some(kf), None) => {
            let k = kf.create()?;
            info!(path = %kf.path().display(), "key file created (0600): secrets kept across restarts");
            Some(k)
        }
        (None, _) => None,
    };
    for n in checked.notes.iter().chain(&fit_notes) {
        info!("{n}");
    }
    let queues = checked.queues;

    // 2. The engine and its listeners.
    let mut keys = match keys {
        Some(k) => k,
        None => Keys {
            secrets: keyfile::random_secrets()?,
            rotated_at: SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            retired: Vec::new(),
        },
    };
    // The cookie minute follows the wall clock: shared by a fleet's hosts, and kept across a
    // reboot (the monotonic clock restarts at 0).
    let mut cookie_clock_offset = wall_minus_monotonic();
    let period = opts.cookie_rotate.map_or(u64::MAX, |p| p.as_secs());
    let mut fleet_epoch = fleet::epoch(unix_now(), period);
    if let Some(f) = &fleet {
        keys.secrets = f.secrets(fleet_epoch.wrapping_sub(1), keys.secrets.table_seed);
        keys.retired.clear();
        info!(key = %opts.fleet_key.as_ref().expect("fleet").display(), epoch = fleet_epoch, "fleet mode: secrets from the fleet key; every SYN-ACK carries a fleet-valid cookie");
    }
    let stack = stack_from_keys(
        StackConfig {
            fleet: fleet.is_some(),
            cookie_clock_offset,
            workers: queues as usize,
            // The kernel is the established table (D-2): late segments of a flow just handed
            // over go to it, not to the listener's RST.
            // In fleet mode every SYN-ACK carries a cookie, so with --accept log the client's
            // first data after its bare ACK would make a second child from the same cookie:
            // the grace sends it to the kernel (which resets it) instead.
            accepted_grace: if kernel || fleet.is_some() {
                ACCEPTED_GRACE
            } else {
                Duration::ZERO
            },
            requests_per_worker_hint: presized_requests(&config),
            ..config.stack
        },
        &keys,
    );
    if let Some(f) = &fleet {
        // The previous epoch's pair was retired when this epoch began.
        let began =
            Duration::from_secs(unix_now().saturating_sub(fleet_epoch.saturating_mul(period)));
        stack.rotate_cookie_secrets(
            f.cookie_pair(fleet_epoch),
            synline_xdp::monotonic_now().saturating_sub(began),
        );
    }
    let mut listeners = Listeners::open(&stack, &config, kernel)?;
    if restarted {
        // The previous run's cookies validate (same secrets), and are looked for (L-1).
        for l in listeners.engine_listeners() {
            l.cookies_may_be_in_flight(synline_xdp::monotonic_now());
        }
    }

    // 3. The port: attached through links, detached on every way out (Drop, or the kernel
    // when the process dies).
    let mut port = Port::open(&PortConfig {
        iface: opts.iface.clone(),
        listeners: Vec::new(),
        attach: opts.xdp_mode,
        xsk,
        kernel_flows: kernel,
    })
    .map_err(|e| attach_hint(e, &opts.iface))?;
    if let Some(old) = port.program().replaced() {
        warn!(prog_id = old, "replaced a synline XDP program an earlier run left attached (killed before synline used links)");
    }
    info!(
        iface = %opts.iface,
        ifindex = port.ifindex(),
        mode = ?port.attach_mode(),
        queues,
        "XDP attached (bpf_link: detached by the kernel if this process dies)"
    );
    for (q, m) in port.queue_modes().iter().enumerate() {
        info!(queue = q, mode = ?m, "AF_XDP socket bound");
    }

    // The kernel handoff: tcx and the TAP, then a first look at the application's listeners
    // (those nobody serves stay out of the XDP map: the kernel resets their SYNs).
    let mut handoff = None;
    let mut diag = None;
    if kernel {
        let ifindex = port.ifindex();
        let h = KernelHandoff::open(port.program_mut(), ifindex, queues)
            .context("set up the kernel handoff")?;
        info!(
            tap = h.tap_name(),
            "kernel handoff: accepted connections go to the application's listeners"
        );
        diag = Some(SockDiag::open().context("socket(AF_NETLINK, NETLINK_SOCK_DIAG)")?);
        handoff = Some(h);
    }
    for c in listeners
        .attach(port.program(), diag.as_mut())
        .context("read the kernel's listeners (sock_diag)")?
    {
        info!("{}", app_listener::describe(&c));
    }

    // The flood path's secrets: the pair cookies are issued with now, and the keys of the
    // timestamp offsets and flow labels (the engine's own, so its SYN-ACKs are the engine's).
    let mut current_pair = match &fleet {
        Some(f) => f.cookie_pair(fleet_epoch),
        None => keys.secrets.cookie,
    };
    let (ts_key, label_key) = (keys.secrets.ts_off, keys.secrets.flow_label);
    let publish_secrets = |port: &mut Port, pair: [[u8; 16]; 2], offset: Duration| {
        port.program_mut()
            .set_cookie_secrets(pair, ts_key, label_key, offset)
    };
    publish_secrets(&mut port, current_pair, cookie_clock_offset)
        .context("write the flood path's secrets")?;
    info!(
        on = opts.xdp_cookies,
        "flood path: cookie SYN-ACKs answered in XDP while a listener is in cookie mode"
    );

    let (stop, hup) = (signals.stop.clone(), signals.hup.clone());

    let view = Arc::new(Mutex::new(View::default()));
    let healthy = Arc::new(AtomicBool::new(false));
    if let Some(m) = metrics {
        let at = m.local_addr();
        m.serve(view.clone(), healthy.clone(), stop.clone())?;
        info!(addr = ?at, "metrics on /metrics, health on /healthz");
    }

    // 4. The workers. After its rounds each drains the accept lists: each child is handed to
    // the kernel (or, with --accept log, logged), from the worker's own queue; a child that
    // cannot be handed over is reset, as the kernel would have nothing for it.
    let mut queue_handoffs: Vec<Option<QueueHandoff>> = (0..queues)
        .map(|q| handoff.as_mut().and_then(|h| h.queue(q)))
        .collect();
    if kernel && queue_handoffs.iter().any(|q| q.is_none()) {
        anyhow::bail!("kernel handoff: a TAP queue per worker");
    }
    let published = listeners.published.clone();
    let workers = port.spawn(
        &stack,
        &WorkerConfig {
            name: "synline".to_owned(),
            cpus: opts.cpus.clone(),
            sched_fifo: opts.sched_fifo,
            datapath: DatapathConfig {
                batch: opts.batch.unwrap_or(DatapathConfig::default().batch),
                ..DatapathConfig::default()
            },
            ..WorkerConfig::default()
        },
        stop.clone(),
        |q| AcceptHook {
            cached: published.cached(),
            published: published.clone(),
            conn_log: (!kernel).then(|| outputs.stdout.clone()),
            to_kernel: queue_handoffs[q as usize].take(),
            reset: Vec::new(),
            now_secs: 0,
        },
    )?;
    healthy.store(true, Ordering::Relaxed);
    StatsSocket::bind(&opts.stats_socket)?.serve(view.clone(), stop.clone())?;
    let sched = match opts.sched_fifo {
        Some(p) => format!("SCHED_FIFO {p}"),
        None => "SCHED_OTHER".to_owned(),
    };
    info!(stats = %opts.stats_socket.display(), workers = %sched, "running");
    sd_notify("READY=1");

    let started = Instant::now();
    let mut rotated = Instant::now()
        .checked_sub(keys.age())
        .unwrap_or_else(Instant::now);
    let mut rates = Rates {
        last: stack.stats(),
        last_xdp: 0,
        at: Instant::now(),
    };
    let mut status_at = Instant::now();
    let reloads = (AtomicU64::new(0), AtomicU64::new(0));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(app_listener::POLL);
        if let Some(sd) = diag.as_mut() {
            match app_listener::poll(sd, &mut listeners.apps, port.program(), false) {
                Ok(changes) => changes
                    .iter()
                    .for_each(|c| info!("{}", app_listener::describe(c))),
                Err(e) => warn!("reading the kernel's listeners: {e:#}"),
            }
        }
        publish_cookie_modes(&listeners, port.program(), opts.xdp_cookies);
        if hup.swap(false, Ordering::Relaxed) {
            sd_notify("RELOADING=1");
            match reload(opts, &mut listeners, port.program(), diag.as_mut()) {
                Ok(()) => reloads.0.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    error!("reload refused, the running configuration stays: {e:#}");
                    reloads.1.fetch_add(1, Ordering::Relaxed)
                }
            };
            // The new settings reach the flood path now, not 50 ms later.
            publish_cookie_modes(&listeners, port.program(), opts.xdp_cookies);
            sd_notify("READY=1");
        }
        // The flood path's secrets are written at most once a pass (a slot is reused only a
        // pass after it was made current, long after any program that read it).
        let mut republish = false;
        let s = sample(
            &stack,
            &port,
            &handoff,
            &listeners,
            outputs,
            (
                reloads.0.load(Ordering::Relaxed),
                reloads.1.load(Ordering::Relaxed),
            ),
        );
        if let Ok(mut v) = view.lock() {
            v.update(s);
        }
        if let Some(every) = opts.status_interval {
            if status_at.elapsed() >= every {
                status_at = Instant::now();
                // A failed read skips the line rather than showing a spike after it.
                if let Ok(c) = port.xdp_counters() {
                    let line = rates.line(stack.stats(), c.cookie_synacks);
                    if opts.status_tty {
                        outputs.stderr.send(format!("\r\x1b[2K{line}"));
                    } else {
                        info!(target: "status", "{line}");
                    }
                }
            }
        }
        if let Some(f) = &fleet {
            // In step with every host of the fleet: the epoch's pair, derived.
            let e = fleet::epoch(unix_now(), period);
            if e != fleet_epoch {
                current_pair = f.cookie_pair(e);
                stack.rotate_cookie_secrets(current_pair, synline_xdp::monotonic_now());
                republish = true;
                fleet_epoch = e;
                info!(epoch = e, "fleet cookie secrets rotated");
            }
        } else if let Some(period) = opts.cookie_rotate {
            if rotated.elapsed() >= period {
                let pair = keyfile::random_cookie_pair()?;
                let mut next = keys.clone();
                next.rotate(pair);
                // The file first: a crash between the two then loses nothing. A failed write
                // changes nothing (the engine and the file keep the same pair).
                if let Some(kf) = &key_file {
                    if let Err(e) = kf.write(&next) {
                        error!("cookie rotation postponed: {e:#}");
                        rotated = Instant::now();
                        continue;
                    }
                }
                keys = next;
                // The workers' clock (monotonic), so the two-minute grace is on their time.
                stack.rotate_cookie_secrets(pair, synline_xdp::monotonic_now());
                current_pair = pair;
                republish = true;
                rotated = Instant::now();
                info!("cookie secrets rotated");
            }
        }
        // The wall clock stepped (NTP's first sync after boot, say): the cookie minute
        // follows it, in the engine and in the flood path.
        let offset = wall_minus_monotonic();
        if offset.abs_diff(cookie_clock_offset) > Duration::from_millis(100) {
            cookie_clock_offset = offset;
            stack.set_cookie_clock_offset(offset);
            republish = true;
            info!(
                offset_s = offset.as_secs_f64(),
                "the wall clock stepped: the cookie minute follows it"
            );
        }
        if republish {
            publish_secrets(&mut port, current_pair, cookie_clock_offset)?;
        }
        // Healthy: the workers run, and with the kernel handoff every application listens
        // (a host whose application is gone must not keep attracting its flows).
        healthy.store(
            !kernel || listeners.apps.iter().all(|a| a.serving()),
            Ordering::Relaxed,
        );
        if opts.duration.is_some_and(|d| started.elapsed() >= d) || workers.any_finished() {
            stop.store(true, Ordering::Relaxed);
        }
    }
    healthy.store(false, Ordering::Relaxed);
    sd_notify("STOPPING=1");
    if opts.status_tty && opts.status_interval.is_some() {
        outputs.stderr.send("\n".into());
    }
    let failed = workers.join().err();
    let mut extra: Vec<(String, u64)> =
        sample(&stack, &port, &handoff, &listeners, outputs, (0, 0))
            .counters
            .into_iter()
            .filter(|(n, _)| !n.starts_with("Tcp") && !n.starts_with("SynlineDrop"))
            .collect();
    extra.extend(port.queue_counters());
    port.close()?;
    drop(handoff);
    info!(iface = %opts.iface, "XDP detached; totals follow");
    outputs.stderr.send(stats::nstat(&stack.stats(), &extra));
    match failed {
        Some(e) => Err(anyhow::Error::new(e).context("worker")),
        None => Ok(()),
    }
}

/// The flood path, every 50 ms: which listeners are in cookie mode (tcp_syncookies=2, or 1
/// with the SYN queue over its bound) with room in their accept queue (S-4): the XDP program
/// answers their SYNs itself until that changes. While it does, the engine sees none of them
/// and so records no overflow itself: the listener is told cookies are out (K-2), so that their
/// ACKs are checked against cookies (L-1).
fn publish_cookie_modes(listeners: &Listeners, prog: &synline_xdp::XdpProgram, on: bool) {
    let now = synline_xdp::monotonic_now();
    for l in listeners.engine_listeners() {
        let cfg = l.config();
        let cookie =
            on && match cfg.syncookies {
                synline_core::SyncookieMode::Always => true,
                synline_core::SyncookieMode::WhenFull => l.synq_is_full(),
                synline_core::SyncookieMode::Never => false,
            } && !l.accept_queue_is_full(l.backlog());
        if cookie {
            l.cookies_may_be_in_flight(now);
        }
        if let Err(e) = prog.set_listener_cookie(l.addr, &cfg, cookie) {
            warn!("flood path for {}: {e}", l.addr);
        }
    }
}

/// SIGHUP: the configuration read again (file and the same `--listen` flags), checked as a
/// start checks it, then applied (listeners.rs). A configuration with problems changes
/// nothing.
fn reload(
    opts: &RunOptions,
    listeners: &mut Listeners,
    prog: &synline_xdp::XdpProgram,
    diag: Option<&mut SockDiag>,
) -> Result<()> {
    let mut new = Config::check(opts.config_file.as_deref(), &opts.listen)?;
    let mut problems = Vec::new();
    preflight::check_addresses(&new, &opts.iface, &mut problems);
    if opts.accept == AcceptMode::Kernel {
        if let Err(e) = app_listener::fit_to_kernel(&mut new.listeners) {
            problems.push(format!("{e:#}"));
        }
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    let said = listeners.reload(&new, prog, diag)?;
    info!(listeners = new.listeners.len(), "configuration reloaded");
    for s in said {
        info!("{s}");
    }
    Ok(())
}

/// The start-up error of a failed attach, with what to do about it.
fn attach_hint(e: PortError, iface: &str) -> anyhow::Error {
    let hint = match &e {
        PortError::Attach {
            source: XdpError::Occupied { occupant, .. },
            ..
        } => {
            if occupant.name.is_empty() {
                format!(" -- which program this is (its name, the link that holds it) takes CAP_SYS_ADMIN to read; `ip link show {iface}` gives its id, `bpftool link show` (as root) its owner; `ip link set dev {iface} xdp off` removes it if no link holds it")
            } else if occupant.is_libxdp_dispatcher() {
                format!(" -- libxdp's dispatcher holds {iface}: synline does not run under it (README, \"Other XDP programs\"); `xdp-loader unload {iface} --all` removes it")
            } else if let Some(l) = occupant.link_id {
                format!(" -- a running process holds it through bpf_link {l}: `bpftool link show id {l}` names it (pids); stop that process (another synline on {iface}?)")
            } else {
                format!(
                    " -- remove it with `ip link set dev {iface} {} off`",
                    if occupant.generic {
                        "xdpgeneric"
                    } else {
                        "xdp"
                    }
                )
            }
        }
        PortError::Attach { .. } => {
            " -- no XDP support in this driver? try --xdp-mode generic".to_string()
        }
        _ => String::new(),
    };
    anyhow::anyhow!("{e}{hint}")
}

/// A worker's side of `--accept`: children go to the kernel the moment they are made (before
/// the next frame of the batch, whose segments may be the flow's next), or to the log; a child
/// that cannot be handed over is reset after the round, from this worker's queue.
struct AcceptHook {
    published: Arc<Published>,
    cached: Cached,
    /// `--accept log`: the stdout stream (never waited on).
    conn_log: Option<Stream>,
    to_kernel: Option<QueueHandoff>,
    reset: Vec<synline_core::Child>,
    now_secs: u32,
}

impl QueueHook for AcceptHook {
    fn child_made(&mut self, engine: &mut synline_core::Worker) {
        let Some(h) = self.to_kernel.as_mut() else {
            return;
        };
        for l in self.cached.list.iter() {
            while let Some(c) = l.accept() {
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
        self.published.refresh(&mut self.cached);
        if self.to_kernel.is_some() {
            // Children from hand-offs between workers and timers arrive between frames too.
            self.child_made(ctx.engine);
        } else {
            for l in self.cached.list.iter() {
                for _ in 0..64 {
                    let Some(c) = l.accept() else { break };
                    if let Some(out) = &self.conn_log {
                        let mut line = child_log::json_line(&c, SystemTime::now());
                        line.push('\n');
                        out.send(line);
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
