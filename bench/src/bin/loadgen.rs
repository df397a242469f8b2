//! `synline-loadgen`: a SYN flood and handshake load generator built on XDP.
//!
//! One XDP program, `lg_xdp` (`loadgen/loadgen.bpf.c`), attached natively to `--iface`, does both
//! sides. Run with BPF_PROG_RUN in live-frames mode (the technique of xdp-trafficgen) on a
//! template frame prepared once here, it writes per frame a random source address within
//! `--src-net`, a random port, an ISN derived from both and a secret key, and the checksums,
//! then sends the frame out of `--iface` (XDP_TX). On what `--iface` receives, it checks each
//! SYN-ACK (checksums, ACK = ISN + 1 recomputed from the address and port, option layout),
//! counts it and drops it, or, for flows that complete (handshake and mix modes), turns it
//! into the third ACK in place and sends that back. Nothing is kept per flow.
//!
//! The receiving end of a veth must have an XDP program attached for live frames to reach it
//! (`synline-loadgen xdp-pass --iface IF` attaches one that passes everything).
//!
//! ```text
//! synline-loadgen --iface veth0 --dst 198.18.0.1:8080 --duration 10 --threads 2
//! synline-loadgen --iface veth0 --dst 198.18.0.1:8080 --mode handshake --rate 50000
//! synline-loadgen --iface veth0 --dst 198.18.0.1:8080 --mode mix --complete-rate 10000 --json
//! synline-loadgen selftest
//! ```

#[path = "loadgen/bpf.rs"]
mod bpf;
#[path = "loadgen/frame.rs"]
mod frame;
#[path = "loadgen/selftest.rs"]
mod selftest;

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use bpf::{Config, Counters, Gen, Loadgen};
use frame::{Mac, OptSet, Prefix};

#[derive(Parser, Debug)]
#[command(
    name = "synline-loadgen",
    version,
    about = "SYN flood and handshake load generator (XDP live frames)",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Attach an XDP program that passes every frame (XDP_PASS) to an interface, natively, and
    /// leave it there: the receiving end of a veth needs one for live frames to arrive. Remove
    /// it with `--detach` or `ip link set dev IF xdp off`.
    XdpPass {
        /// The interface (in the current network namespace).
        #[arg(long)]
        iface: String,
        /// Attach one that drops every frame (XDP_DROP) instead: the ceiling of the path, how
        /// many SYNs reach the receiving side at all.
        #[arg(long)]
        drop: bool,
        /// Detach the program instead (only if it is this tool's `lg_pass` or `lg_drop`).
        #[arg(long, conflicts_with = "drop")]
        detach: bool,
    },
    /// Check the XDP programs with BPF_PROG_RUN on hand-made frames (root; sends nothing).
    Selftest,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Client-side interface, in the current network namespace: SYNs leave through it and
    /// `lg_xdp` is attached to it (native XDP).
    #[arg(long, required = true)]
    iface: Option<String>,
    /// Target: ADDR:PORT or [ADDR6]:PORT.
    #[arg(long, required = true)]
    dst: Option<SocketAddr>,
    /// Destination MAC of the SYNs [default: the neighbour entry of the target's address on
    /// --iface].
    #[arg(long)]
    dst_mac: Option<Mac>,
    /// Source MAC of the SYNs [default: the address of --iface].
    #[arg(long)]
    src_mac: Option<Mac>,
    /// Client prefix: each SYN comes from a random address within it (IPv6: the low 32 bits
    /// are drawn) [default: 198.18.128.0/17, or 2001:2:0:8000::/64 for an IPv6 target].
    #[arg(long)]
    src_net: Option<Prefix>,
    /// SYNs per second, over all threads (0: as fast as possible). In mix mode, the flood's.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send for [default: 10, unless --count is given].
    #[arg(long)]
    duration: Option<f64>,
    /// SYNs to send (over all threads; in mix mode, the flood's), then stop.
    #[arg(long)]
    count: Option<u64>,
    /// Sending threads (each runs the generator on its core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin sending thread i to the i-th CPU of this list (round robin), e.g. 0,1.
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// TCP options of the SYNs.
    #[arg(long, value_enum, default_value_t = OptSet::Linux)]
    options: OptSet,
    /// flood: SYNs only. handshake: every flow answers its SYN-ACK with the third ACK.
    /// mix: a flood plus --complete-rate completing clients per second.
    #[arg(long, value_enum, default_value_t = Mode::Flood)]
    mode: Mode,
    /// Completing clients per second in mix mode (an extra, paced thread).
    #[arg(long, default_value_t = 1000)]
    complete_rate: u64,
    /// Frames per BPF_PROG_RUN call when sending flat out (paced threads use smaller calls).
    #[arg(long, default_value_t = 8192)]
    batch: u32,
    /// Milliseconds to keep counting SYN-ACKs after the last SYN.
    #[arg(long, default_value_t = 500)]
    drain_ms: u64,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Flood,
    Handshake,
    Mix,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Flood => "flood",
            Mode::Handshake => "handshake",
            Mode::Mix => "mix",
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::XdpPass {
            iface,
            drop,
            detach,
        }) => xdp_pass(&iface, drop, detach),
        Some(Cmd::Selftest) => selftest::run(),
        None => run(cli.run),
    };
    if let Err(e) = r {
        eprintln!("synline-loadgen: {e:#}");
        std::process::exit(1);
    }
}

// ---- the interface ----

fn ifindex(ifname: &str) -> Result<i32> {
    let c = CString::new(ifname).with_context(|| format!("interface name {ifname:?}"))?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!("if_nametoindex({ifname}): no such interface in this network namespace")
        });
    }
    i32::try_from(i).with_context(|| format!("if_nametoindex({ifname}): index {i} out of range"))
}

fn iface_mac(ifname: &str) -> Result<Mac> {
    let path = format!("/sys/class/net/{ifname}/address");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    s.parse().with_context(|| path.clone())
}

/// The neighbour entry of `addr` on `ifname` (`ip neigh`), if it has a link-layer address.
fn neighbour(addr: IpAddr, ifname: &str) -> Result<Option<Mac>> {
    let out = Command::new("ip")
        .args(["neigh", "show", "to", &addr.to_string(), "dev", ifname])
        .output()
        .context("running `ip neigh show` (iproute2)")?;
    ensure!(
        out.status.success(),
        "ip neigh show to {addr} dev {ifname}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            if let Some(m) = words.next() {
                return Ok(Some(m.parse()?));
            }
        }
    }
    Ok(None)
}

/// The target's MAC: its neighbour entry, after prompting the kernel to resolve it (one UDP
/// datagram to the discard port) if there is none yet.
fn resolve_dst_mac(dst: SocketAddr, ifname: &str) -> Result<Mac> {
    if let Some(m) = neighbour(dst.ip(), ifname)? {
        return Ok(m);
    }
    let bind: SocketAddr = if dst.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    if let Ok(s) = UdpSocket::bind(bind) {
        let _ = s.send_to(b"synline-loadgen", SocketAddr::new(dst.ip(), 9));
    }
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        if let Some(m) = neighbour(dst.ip(), ifname)? {
            return Ok(m);
        }
    }
    bail!(
        "no neighbour entry for {} on {ifname} (pass --dst-mac, or check that {} is reachable \
         through {ifname})",
        dst.ip(),
        dst.ip()
    )
}

/// The interface's transmit counters: (frames sent, frames dropped).
fn tx_stats(ifname: &str) -> Result<(u64, u64)> {
    let read = |name: &str| -> Result<u64> {
        let path = format!("/sys/class/net/{ifname}/statistics/{name}");
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        s.trim().parse().with_context(|| format!("{path}: {s:?}"))
    };
    Ok((read("tx_packets")?, read("tx_dropped")?))
}

fn random_u64() -> Result<u64> {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("reading /dev/urandom")?;
    Ok(u64::from_ne_bytes(b))
}

// ---- stopping on a signal ----

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM end the run like the end of --duration does (summary printed, lg_xdp
/// detached).
fn catch_signals() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let prev = unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        if prev == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error()).context("signal(SIGINT/SIGTERM)");
        }
    }
    Ok(())
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // touch the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of_cpuset(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sched_setaffinity(cpu {cpu})"));
        }
    }
    Ok(())
}

fn size_of_cpuset() -> usize {
    std::mem::size_of::<libc::cpu_set_t>()
}

// ---- xdp-pass ----

fn xdp_pass(ifname: &str, drop: bool, detach: bool) -> Result<()> {
    let index = ifindex(ifname)?;
    if detach {
        let lg = Loadgen::load_plain()?;
        let id = libbpf_rs::Xdp::new(std::os::fd::AsFd::as_fd(lg.prog()))
            .query_id(index, libbpf_rs::XdpFlags::DRV_MODE)
            .with_context(|| format!("bpf_xdp_query_id on {ifname}"))?;
        if id == 0 {
            println!("{ifname}: no native XDP program attached");
            return Ok(());
        }
        let name = libbpf_rs::query::ProgInfoIter::default()
            .find(|p| p.id == id)
            .map(|p| p.name.to_string_lossy().into_owned())
            .unwrap_or_default();
        ensure!(
            name == "lg_pass" || name == "lg_drop",
            "{ifname}: the attached XDP program (id {id}) is {name:?}, not lg_pass or lg_drop: \
             left alone"
        );
        libbpf_rs::Xdp::new(std::os::fd::AsFd::as_fd(lg.prog()))
            .detach(index, libbpf_rs::XdpFlags::DRV_MODE)
            .with_context(|| format!("bpf_xdp_detach on {ifname}"))?;
        println!("{ifname}: {name} (id {id}) detached");
        return Ok(());
    }
    let lg = Loadgen::load_plain()?;
    let id = lg.attach_sink_forever(drop, index, ifname)?;
    let name = if drop { "lg_drop" } else { "lg_pass" };
    println!("{ifname}: {name} attached (native XDP, program id {id})");
    Ok(())
}

// ---- the run ----

/// One sending thread's job.
struct Sender {
    which: Gen,
    /// Frames per second for this thread, 0 for flat out.
    rate: u64,
    /// Frames to send, if limited.
    quota: Option<u64>,
    cpu: Option<usize>,
}

/// Sends until `stop`, the quota, or an error. `sent` counts what was handed to the kernel.
fn send_loop(
    lg: &Loadgen,
    s: &Sender,
    ifindex: i32,
    frame: &[u8],
    batch: u32,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> Result<()> {
    if let Some(cpu) = s.cpu {
        pin_to_cpu(cpu)?;
    }
    let prog = lg.prog();
    let input = s.which.input(frame);
    let mut ctx = bpf::gen_ctx(ifindex, input.len());
    // A paced thread sends about a millisecond's worth per call.
    let chunk = if s.rate > 0 {
        (s.rate / 1000).clamp(1, u64::from(batch))
    } else {
        u64::from(batch)
    };
    let start = Instant::now();
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed) && !STOP.load(Ordering::Relaxed) {
        let mut n = chunk;
        if let Some(q) = s.quota {
            if done >= q {
                break;
            }
            n = n.min(q - done);
        }
        if s.rate > 0 {
            let due = start + Duration::from_secs_f64(done as f64 / s.rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
                continue;
            }
        }
        bpf::run_live(prog, &mut ctx, &input, n as u32)?;
        done += n;
        sent.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn run(a: RunArgs) -> Result<()> {
    let ifname = a.iface.clone().expect("clap requires --iface");
    let dst = a.dst.expect("clap requires --dst");
    ensure!(a.threads >= 1, "--threads must be at least 1");
    ensure!(a.batch >= 1, "--batch must be at least 1");
    if let Some(d) = a.duration {
        ensure!(
            d > 0.0 && d.is_finite(),
            "--duration must be a positive number of seconds"
        );
    }
    let duration = match (a.duration, a.count) {
        (None, None) => Some(10.0),
        (d, _) => d,
    };
    if a.mode == Mode::Mix {
        ensure!(
            a.complete_rate > 0,
            "--mode mix needs --complete-rate above 0"
        );
    }

    let src_net = match a.src_net {
        Some(p) => p,
        None if dst.is_ipv4() => "198.18.128.0/17".parse()?,
        None => "2001:2:0:8000::/64".parse()?,
    };
    ensure!(
        src_net.addr.is_ipv4() == dst.is_ipv4(),
        "--src-net {src_net} and --dst {dst} are of different families"
    );
    // An IPv4 target answers the sources of its own /24 through ARP, one resolution per
    // address: keep them out of it.
    let mut excl24 = None;
    if let IpAddr::V4(d) = dst.ip() {
        let dst24 = u32::from(d) & 0xffff_ff00;
        let (net, mask) = src_net.v4_net_mask().unwrap();
        if src_net.len >= 24 {
            ensure!(
                net & 0xffff_ff00 != dst24,
                "--src-net {src_net} is inside the target's /24: use another prefix"
            );
        } else if dst24 & mask == net {
            excl24 = Some(dst24);
        }
    }

    let index = ifindex(&ifname)?;
    let src_mac = match a.src_mac {
        Some(m) => m,
        None => iface_mac(&ifname)?,
    };
    let dst_mac = match a.dst_mac {
        Some(m) => m,
        None => resolve_dst_mac(dst, &ifname)?,
    };

    let r = random_u64()?;
    let tsval = (random_u64()? as u32) | 1;
    let cfg = Config {
        key: [r as u32, (r >> 32) as u32],
        src_net,
        excl24,
        dst,
        opts: a.options,
        tsval,
        answer: a.mode != Mode::Flood,
    };
    let frame = frame::syn_template(src_mac, dst_mac, &src_net, dst, a.options, tsval);

    let mut lg = Loadgen::load_with_template(&cfg, &frame)?;
    catch_signals()?;
    lg.attach(index, &ifname)?;

    // The senders: --threads flood (or, in handshake mode, completing) threads sharing
    // --rate and --count, plus in mix mode one paced thread of completing clients.
    let main_gen = if a.mode == Mode::Handshake {
        Gen::Complete
    } else {
        Gen::Flood
    };
    let cpu_of = |i: usize| (!a.cpus.is_empty()).then(|| a.cpus[i % a.cpus.len()]);
    let mut senders: Vec<Sender> = (0..a.threads)
        .map(|i| {
            let t = a.threads as u64;
            let share = |x: u64| x / t + u64::from((i as u64) < x % t);
            Sender {
                which: main_gen,
                rate: if a.rate == 0 { 0 } else { share(a.rate).max(1) },
                quota: a.count.map(share),
                cpu: cpu_of(i),
            }
        })
        .collect();
    if a.mode == Mode::Mix {
        senders.push(Sender {
            which: Gen::Complete,
            rate: a.complete_rate,
            quota: None,
            cpu: cpu_of(a.threads),
        });
    }
    let sent: Vec<AtomicU64> = senders.iter().map(|_| AtomicU64::new(0)).collect();
    let flood_done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let first_err: Mutex<Option<anyhow::Error>> = Mutex::new(None);

    if !a.quiet {
        eprintln!(
            "synline-loadgen: {} to {dst} via {ifname} ({src_mac} -> {dst_mac}), sources \
             {src_net}, options {}, {} thread(s){}{}",
            a.mode.name(),
            a.options.name(),
            a.threads,
            if a.rate > 0 {
                format!(", {} SYN/s", a.rate)
            } else {
                ", flat out".into()
            },
            if a.mode == Mode::Mix {
                format!(", plus {} completing/s", a.complete_rate)
            } else {
                String::new()
            }
        );
    }

    let tx0 = tx_stats(&ifname)?;
    let lg_ref = &lg;
    let start = Instant::now();
    let mut last = (start, Counters::default(), 0u64);
    std::thread::scope(|sc| -> Result<()> {
        let main_threads = a.threads;
        for (i, s) in senders.iter().enumerate() {
            let (frame, sent, stop, first_err, flood_done) =
                (&frame, &sent[i], &stop, &first_err, &flood_done);
            std::thread::Builder::new()
                .name(format!("lg-send-{i}"))
                .spawn_scoped(sc, move || {
                    if let Err(e) = send_loop(lg_ref, s, index, frame, a.batch, sent, stop) {
                        first_err.lock().unwrap().get_or_insert(e);
                        stop.store(true, Ordering::Relaxed);
                    }
                    if i < main_threads {
                        flood_done.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .context("spawning a sending thread")?;
        }
        // Progress, and the end of the run: --duration, every counted thread done, a signal or
        // an error.
        let mut next_tick = start + Duration::from_secs(1);
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = Instant::now();
            let timed_out = duration.is_some_and(|d| now.duration_since(start).as_secs_f64() >= d);
            let counted_done = flood_done.load(Ordering::Relaxed) as usize == main_threads;
            if timed_out
                || counted_done
                || stop.load(Ordering::Relaxed)
                || STOP.load(Ordering::Relaxed)
            {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            if now >= next_tick {
                next_tick += Duration::from_secs(1);
                let c = lg_ref.counters()?;
                let s: u64 = sent.iter().map(|x| x.load(Ordering::Relaxed)).sum();
                let dt = now.duration_since(last.0).as_secs_f64();
                let per = |x: u64, y: u64| x.saturating_sub(y) as f64 / dt;
                if !a.quiet {
                    eprintln!(
                        "[{:5.1}s] sent {}/s  SYN-ACK valid {}/s  invalid {}/s  handshakes {}/s  \
                         rst {}/s",
                        now.duration_since(start).as_secs_f64(),
                        fmt_rate(per(s, last.2)),
                        fmt_rate(per(c.valid, last.1.valid)),
                        fmt_rate(per(c.invalid, last.1.invalid)),
                        fmt_rate(per(c.handshakes, last.1.handshakes)),
                        fmt_rate(per(c.rst, last.1.rst)),
                    );
                }
                last = (now, c, s);
            }
        }
        Ok(())
    })?;
    let send_time = start.elapsed();
    if let Some(e) = first_err.into_inner().unwrap() {
        return Err(e);
    }
    // SYN-ACKs still on their way.
    std::thread::sleep(Duration::from_millis(a.drain_ms));
    let c = lg.counters()?;
    let tx1 = tx_stats(&ifname)?;
    lg.detach()?;
    drop(lg);

    let flood_sent: u64 = sent[..a.threads]
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .sum();
    let complete_sent: u64 = sent[a.threads..]
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .sum();
    let total = flood_sent + complete_sent;
    let secs = send_time.as_secs_f64();
    let loss = if total == 0 {
        0.0
    } else {
        1.0 - c.valid as f64 / total as f64
    };
    let summary = Summary {
        mode: a.mode,
        opts: a.options,
        threads: a.threads,
        dst,
        secs,
        sent: total,
        sent_completing: if a.mode == Mode::Handshake {
            total
        } else {
            complete_sent
        },
        c,
        if_tx: tx1.0.wrapping_sub(tx0.0),
        if_tx_dropped: tx1.1.wrapping_sub(tx0.1),
        loss,
    };
    if a.json {
        println!("{}", summary.json());
    } else {
        summary.print();
    }
    if c.gen_err > 0 {
        bail!(
            "the generator refused {} frames (template not understood)",
            c.gen_err
        );
    }
    Ok(())
}

struct Summary {
    mode: Mode,
    opts: OptSet,
    threads: usize,
    dst: SocketAddr,
    secs: f64,
    sent: u64,
    sent_completing: u64,
    c: Counters,
    /// Frames the interface sent during the run (SYNs, third ACKs, RSTs, anything else).
    if_tx: u64,
    /// Frames it dropped on transmit (veth: the peer's ring was full).
    if_tx_dropped: u64,
    loss: f64,
}

impl Summary {
    fn per_s(&self, x: u64) -> f64 {
        if self.secs > 0.0 {
            x as f64 / self.secs
        } else {
            0.0
        }
    }

    fn json(&self) -> serde_json::Value {
        let c = &self.c;
        serde_json::json!({
            "mode": self.mode.name(),
            "options": self.opts.name(),
            "threads": self.threads,
            "dst": self.dst.to_string(),
            "duration_s": self.secs,
            "sent": self.sent,
            "sent_completing": self.sent_completing,
            "sent_pps": self.per_s(self.sent),
            "answered": c.answered(),
            "valid": c.valid,
            "invalid": c.invalid,
            "invalid_len": c.bad_len,
            "invalid_csum": c.bad_csum,
            "invalid_ack": c.bad_ack,
            "invalid_opts": c.bad_opts,
            "valid_pps": self.per_s(c.valid),
            "handshakes": c.handshakes,
            "handshakes_pps": self.per_s(c.handshakes),
            "reply_failed": c.reply_failed,
            "rst": c.rst,
            "resets_sent": c.resets_sent,
            "if_tx_packets": self.if_tx,
            "if_tx_dropped": self.if_tx_dropped,
            "loss": self.loss,
        })
    }

    fn print(&self) {
        let c = &self.c;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(
            o,
            "synline-loadgen summary: {} to {}, options {}, {} thread(s), {:.2} s of sending",
            self.mode.name(),
            self.dst,
            self.opts.name(),
            self.threads,
            self.secs
        );
        let _ = writeln!(
            o,
            "  sent       {:>12} SYNs      {:>9}/s  ({} of completing clients)",
            self.sent,
            fmt_rate(self.per_s(self.sent)),
            self.sent_completing
        );
        let _ = writeln!(
            o,
            "  answered   {:>12} SYN-ACKs  {:>9}/s",
            c.answered(),
            fmt_rate(self.per_s(c.answered()))
        );
        let _ = writeln!(
            o,
            "  valid      {:>12} SYN-ACKs  {:>9}/s",
            c.valid,
            fmt_rate(self.per_s(c.valid))
        );
        let _ = writeln!(
            o,
            "  invalid    {:>12} (length {}, checksum {}, ack {}, options {})",
            c.invalid, c.bad_len, c.bad_csum, c.bad_ack, c.bad_opts
        );
        let _ = writeln!(
            o,
            "  handshakes {:>12} third ACKs {:>8}/s  (failed {})",
            c.handshakes,
            fmt_rate(self.per_s(c.handshakes)),
            c.reply_failed
        );
        let _ = writeln!(
            o,
            "  rst        {:>12} received; {} sent for other segments (FINs of accepted \
             connections)",
            c.rst, c.resets_sent
        );
        let _ = writeln!(
            o,
            "  interface  {:>12} frames sent, {} dropped on transmit (veth: the peer's ring was \
             full)",
            self.if_tx, self.if_tx_dropped
        );
        let _ = writeln!(
            o,
            "  loss       {:>11.2}%  (1 - valid/sent)",
            self.loss * 100.0
        );
    }
}
