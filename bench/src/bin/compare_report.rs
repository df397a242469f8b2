//! `synline-compare-report`: turns the measurements of `bench/compare.sh` into the results
//! table (markdown), the results JSON and the chart (PNG, plotters).
//!
//! Input: `--meta` (one JSON object: date, machine, duration, repetitions, the configurations
//! in order with how each was set up, the commands, the perf breakdown files) and `--raw` (one
//! JSON object per line, one per measurement: configuration, mode, repetition, the loadgen's
//! summary, the server's counters before and after in nstat form, the rxdrop sink's totals,
//! and /proc/stat before and after the measurement window).
//!
//! Output: `<prefix>.json`, `<prefix>.md`, `<prefix>.png`, and a copy of the markdown at
//! `--latest`. Every figure is the median of the repetitions with their min and max.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use plotters::prelude::*;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(name = "synline-compare-report", about = "results of bench/compare.sh")]
struct Cli {
    /// The run's description (JSON).
    #[arg(long)]
    meta: PathBuf,
    /// The measurements (JSON lines).
    #[arg(long)]
    raw: PathBuf,
    /// Output path without extension: writes PREFIX.json, PREFIX.md, PREFIX.png.
    #[arg(long)]
    out_prefix: PathBuf,
    /// Also copy the markdown here.
    #[arg(long)]
    latest: Option<PathBuf>,
    /// A TTF font for the chart's text.
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// Median, min and max of some repetitions.
#[derive(Debug, Clone, Copy)]
struct Stat {
    med: f64,
    min: f64,
    max: f64,
    n: usize,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Option<Stat> {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let med = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            med,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    fn json(&self) -> Value {
        json!({"median": self.med, "min": self.min, "max": self.max, "n": self.n})
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

fn fmt_stat(s: Option<Stat>) -> String {
    match s {
        Some(s) if s.n > 1 => format!(
            "{} ({}–{})",
            fmt_rate(s.med),
            fmt_rate(s.min),
            fmt_rate(s.max)
        ),
        Some(s) => fmt_rate(s.med),
        None => "–".into(),
    }
}

/// One core's time over the window, from two `/proc/stat` lines.
#[derive(Debug, Clone, Copy, Default)]
struct CoreTime {
    busy: f64,
    user: f64,
    system: f64,
    softirq: f64,
}

/// `cpuN` lines of /proc/stat: cpu index -> jiffies (user nice system idle iowait irq softirq
/// steal).
fn parse_stat(text: &str) -> BTreeMap<usize, Vec<u64>> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        let Some(name) = w.next() else { continue };
        let Some(i) = name.strip_prefix("cpu").and_then(|s| s.parse().ok()) else {
            continue;
        };
        m.insert(i, w.take(8).filter_map(|x| x.parse().ok()).collect());
    }
    m
}

fn core_times(before: &str, after: &str) -> BTreeMap<usize, CoreTime> {
    let (a, b) = (parse_stat(before), parse_stat(after));
    let mut out = BTreeMap::new();
    for (cpu, v0) in a {
        let Some(v1) = b.get(&cpu) else { continue };
        if v0.len() < 8 || v1.len() < 8 {
            continue;
        }
        let d: Vec<f64> = (0..8).map(|i| v1[i].saturating_sub(v0[i]) as f64).collect();
        let total: f64 = d.iter().sum();
        if total <= 0.0 {
            continue;
        }
        let pct = |x: f64| 100.0 * x / total;
        out.insert(
            cpu,
            CoreTime {
                busy: pct(total - d[3] - d[4]),
                user: pct(d[0] + d[1]),
                system: pct(d[2]),
                softirq: pct(d[5] + d[6]),
            },
        );
    }
    out
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

/// A counter's increase over the measurement (`ctr0`/`ctr1`, nstat names).
fn ctr_delta(rec: &Value, name: &str) -> Option<f64> {
    let a = rec.get("ctr0")?.get(name)?.as_f64()?;
    let b = rec.get("ctr1")?.get(name)?.as_f64()?;
    Some(b - a)
}

/// What one measurement gives.
#[derive(Debug, Default)]
struct Sample {
    /// SYN-ACKs/s (valid, at the client); for a ceiling, SYNs absorbed by the sink per second.
    answered: Option<f64>,
    delivered: Option<f64>,
    /// Completed at the server (TcpPassiveOpens) per second.
    handshakes_srv: Option<f64>,
    /// Third ACKs the client sent per second.
    handshakes_cli: Option<f64>,
    cores: BTreeMap<usize, CoreTime>,
    invalid: f64,
    /// Cookie SYN-ACKs the server counted itself (TcpExtSyncookiesSent) per second: the
    /// figure of the trafgen rows, and the like-for-like cross-check of the loadgen rows.
    cookies_srv: Option<f64>,
}

fn sample(kind: &str, rec: &Value) -> Result<Sample> {
    let lg = rec.get("loadgen").context("no loadgen summary")?;
    let secs = num(lg, "duration_s").context("loadgen: no duration_s")?;
    let mode = rec["mode"].as_str().unwrap_or("flood");
    let mut s = Sample {
        delivered: num(lg, "if_tx_packets").map(|x| x / secs),
        invalid: num(lg, "invalid").unwrap_or(0.0),
        ..Default::default()
    };
    if let (Some(a), Some(b)) = (rec["stat0"].as_str(), rec["stat1"].as_str()) {
        s.cores = core_times(a, b);
    }
    s.cookies_srv = ctr_delta(rec, "TcpExtSyncookiesSent").map(|x| x / secs);
    if rec["generator"] == "trafgen" {
        // No SYN-ACK checker at the client (trafgen sends, XDP drops the replies): the server's
        // own count of what it answered.
        s.answered = s.cookies_srv;
        return Ok(s);
    }
    match (kind, mode) {
        // The reflector: what reached the client, valid or not (the reflected SYN keeps its own
        // options, which the loadgen files as invalid options; they are no fault of an engine).
        ("reply-ceiling", _) => {
            s.answered = num(lg, "answered").map(|x| x / secs);
            s.invalid = 0.0;
        }
        ("ceiling", _) => {
            s.answered = match rec.get("sink") {
                // AF_XDP: the frames the sockets took from their RX rings.
                Some(sink) => num(sink, "rx_frames").map(|x| x / secs),
                // XDP_DROP: every delivered frame is dropped by the program.
                None => s.delivered,
            };
        }
        (_, "flood") => s.answered = num(lg, "valid_pps"),
        (_, _) => {
            s.answered = num(lg, "valid_pps");
            s.handshakes_cli = num(lg, "handshakes_pps");
            s.handshakes_srv = ctr_delta(rec, "TcpPassiveOpens").map(|x| x / secs);
        }
    }
    Ok(s)
}

struct ConfigResult {
    meta: Value,
    id: String,
    label: String,
    kind: String,
    answered: Option<Stat>,
    delivered: Option<Stat>,
    hs_srv: Option<Stat>,
    hs_cli: Option<Stat>,
    hs_answered: Option<Stat>,
    cpu_flood: BTreeMap<usize, (Stat, Stat, Stat, Stat)>,
    cpu_hs: BTreeMap<usize, (Stat, Stat, Stat, Stat)>,
    cookies_srv: Option<Stat>,
    invalid: f64,
    counters: BTreeMap<String, Value>,
}

fn cpu_stats(samples: &[&Sample]) -> BTreeMap<usize, (Stat, Stat, Stat, Stat)> {
    let mut cpus: Vec<usize> = samples
        .iter()
        .flat_map(|s| s.cores.keys().copied())
        .collect();
    cpus.sort();
    cpus.dedup();
    let mut out = BTreeMap::new();
    for c in cpus {
        let pick = |f: fn(&CoreTime) -> f64| {
            Stat::of(
                samples
                    .iter()
                    .filter_map(|s| s.cores.get(&c).map(f))
                    .collect(),
            )
        };
        if let (Some(b), Some(u), Some(sy), Some(si)) = (
            pick(|t| t.busy),
            pick(|t| t.user),
            pick(|t| t.system),
            pick(|t| t.softirq),
        ) {
            out.insert(c, (b, u, sy, si));
        }
    }
    out
}

fn fmt_cpu(c: &BTreeMap<usize, (Stat, Stat, Stat, Stat)>, cpu: usize) -> String {
    match c.get(&cpu) {
        Some((b, u, sy, si)) => format!(
            "{:.0}% (usr {:.0}, sys {:.0}, si {:.0})",
            b.med, u.med, sy.med, si.med
        ),
        None => "–".into(),
    }
}

/// Counter deltas worth showing, summed over the repetitions of one mode.
fn interesting_counters(recs: &[&Value]) -> BTreeMap<String, Value> {
    const NAMES: [&str; 12] = [
        "TcpPassiveOpens",
        "TcpExtSyncookiesSent",
        "TcpExtSyncookiesRecv",
        "TcpExtSyncookiesFailed",
        "TcpExtTCPReqQFullDoCookies",
        "TcpExtListenOverflows",
        "TcpExtListenDrops",
        "SynlineInSyns",
        "SynlineOutSynAcks",
        "SynlineXskTxRingFullQ0",
        "SynlineXskKernRxDroppedQ0",
        "SynlineHandoffs",
    ];
    let mut out = BTreeMap::new();
    for mode in ["flood", "handshake"] {
        for n in NAMES {
            let d: Vec<u64> = recs
                .iter()
                .filter(|r| r["mode"] == mode)
                .filter_map(|r| ctr_delta(r, n))
                .map(|x| x.max(0.0) as u64)
                .collect();
            if !d.is_empty() {
                out.insert(format!("{mode}:{n}"), json!(d));
            }
        }
    }
    out
}

fn analyse(meta: &Value, raw: &[Value]) -> Result<Vec<ConfigResult>> {
    let mut out = Vec::new();
    for c in meta["configs"].as_array().context("meta: no configs")? {
        let id = c["id"].as_str().context("config without id")?.to_string();
        let kind = c["kind"].as_str().unwrap_or("target").to_string();
        let recs: Vec<&Value> = raw.iter().filter(|r| r["config"] == id.as_str()).collect();
        let mut flood = Vec::new();
        let mut hs = Vec::new();
        for r in &recs {
            let s = sample(&kind, r).with_context(|| format!("{id}: {r}"))?;
            if r["mode"] == "handshake" {
                hs.push(s);
            } else {
                flood.push(s);
            }
        }
        let col = |v: &[Sample], f: fn(&Sample) -> Option<f64>| {
            Stat::of(v.iter().filter_map(f).collect())
        };
        out.push(ConfigResult {
            meta: c.clone(),
            label: c["label"].as_str().unwrap_or(&id).to_string(),
            answered: col(&flood, |s| s.answered),
            delivered: col(&flood, |s| s.delivered),
            hs_srv: col(&hs, |s| s.handshakes_srv),
            hs_cli: col(&hs, |s| s.handshakes_cli),
            hs_answered: col(&hs, |s| s.answered),
            cpu_flood: cpu_stats(&flood.iter().collect::<Vec<_>>()),
            cpu_hs: cpu_stats(&hs.iter().collect::<Vec<_>>()),
            cookies_srv: col(&flood, |s| s.cookies_srv),
            invalid: flood.iter().chain(&hs).map(|s| s.invalid).sum(),
            counters: interesting_counters(&recs),
            id,
            kind,
        });
    }
    Ok(out)
}

/// The rows that measure a path without an answer of its own (XDP_DROP, rxdrop, the reflector).
fn is_ceiling(kind: &str) -> bool {
    kind == "ceiling" || kind == "reply-ceiling"
}

fn find<'a>(rs: &'a [ConfigResult], id: Option<&str>) -> Option<&'a ConfigResult> {
    id.and_then(|id| rs.iter().find(|r| r.id == id))
}

fn ratio(a: Option<Stat>, b: Option<Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.med > 0.0 => Some(a.med / b.med),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>, pct: bool) -> String {
    match r {
        Some(r) if pct => format!("{:.0}%", r * 100.0),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

fn markdown(meta: &Value, rs: &[ConfigResult], png: &str, json_name: &str) -> Result<String> {
    let mut m = String::new();
    let date = meta["date"].as_str().unwrap_or("?");
    let reps = meta["reps"].as_u64().unwrap_or(0);
    let dur = meta["duration"].as_f64().unwrap_or(0.0);
    let mach = &meta["machine"];
    writeln!(
        m,
        "# synline against the Linux kernel listener and nftables SYNPROXY ({date})\n"
    )?;
    writeln!(
        m,
        "Machine: {} cores (`nproc`), {}, kernel `{}`, {}. Started {}.\n",
        mach["nproc"].as_str().unwrap_or("?"),
        mach["cpu_model"].as_str().unwrap_or("?"),
        mach["uname"].as_str().unwrap_or("?"),
        mach["mem"].as_str().unwrap_or(""),
        meta["started"].as_str().unwrap_or("?"),
    )?;
    writeln!(
        m,
        "Each figure: the median of {reps} repetitions of {dur} s, with (min–max). SYN-ACKs/s are \
         the valid SYN-ACKs the loadgen's XDP program counted at the client (checksums, ACK = \
         ISN + 1, options); for the two ceilings the column is the SYNs the sink absorbed per \
         second. *Delivered* is the frames the client veth handed to the server veth's ring \
         (`if_tx_packets`), the offered load that actually arrived. Handshakes/s are completed \
         connections counted at the server (TcpPassiveOpens: the kernel's `/proc/net/snmp` in \
         the server namespace, synline's stats socket) in handshake mode, every flow completing. \
         CPU is each core's busy share over the middle of the flood (`/proc/stat` deltas, \
         usr/sys/softirq in points).\n"
    )?;
    writeln!(m, "![chart]({png})\n")?;

    writeln!(m, "| configuration | SYN-ACKs/s | delivered/s | handshakes/s (server) | CPU0 (flood) | CPU1 (flood) | × kernel sc=2 | of rxdrop | of reflector |")?;
    writeln!(m, "|---|---:|---:|---:|---|---|---:|---:|---:|")?;
    for r in rs {
        let k = find(rs, r.meta["ref_kernel"].as_str());
        let c = find(rs, r.meta["ref_ceiling"].as_str());
        let p = find(rs, r.meta["ref_reply"].as_str());
        let (rk, rc, rp) = if is_ceiling(&r.kind) {
            (None, None, None)
        } else {
            (
                k.and_then(|k| ratio(r.answered, k.answered)),
                c.and_then(|c| ratio(r.answered, c.answered)),
                p.and_then(|p| ratio(r.answered, p.answered)),
            )
        };
        writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            fmt_stat(r.answered),
            fmt_stat(r.delivered),
            fmt_stat(r.hs_srv),
            fmt_cpu(&r.cpu_flood, 0),
            fmt_cpu(&r.cpu_flood, 1),
            fmt_ratio(rk, false),
            fmt_ratio(rc, true),
            fmt_ratio(rp, true),
        )?;
    }
    writeln!(m)?;
    writeln!(
        m,
        "Ratios use medians; *× kernel* is against the kernel listener with tcp_syncookies=2 on \
         the same cores (the one-core kernel row for the one-core rows, the both-cores kernel \
         row for the both-cores rows), *of rxdrop* against the AF_XDP rxdrop ceiling on the \
         same cores, *of reflector* against the reply ceiling on the same cores (the same \
         datapath sending every frame back without an engine: SYN-ACKs that reached the \
         client).\n"
    )?;

    // Handshake mode in detail.
    writeln!(m, "## Handshake mode\n")?;
    writeln!(m, "| configuration | completed at the server/s | third ACKs sent/s (client) | SYN-ACKs/s | CPU0 | CPU1 | × kernel sc=2 |")?;
    writeln!(m, "|---|---:|---:|---:|---|---|---:|")?;
    for r in rs.iter().filter(|r| r.hs_cli.is_some()) {
        let k = find(rs, r.meta["ref_kernel"].as_str());
        writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.label,
            fmt_stat(r.hs_srv),
            fmt_stat(r.hs_cli),
            fmt_stat(r.hs_answered),
            fmt_cpu(&r.cpu_hs, 0),
            fmt_cpu(&r.cpu_hs, 1),
            fmt_ratio(k.and_then(|k| ratio(r.hs_srv, k.hs_srv)), false),
        )?;
    }
    writeln!(m)?;
    if let Some(n) = meta["handshake_note"].as_str() {
        writeln!(m, "{n}\n")?;
    }

    // The targets of issue 7.
    writeln!(m, "## The targets\n")?;
    let s1 = find(rs, Some("synline-1q"));
    for (kid, what) in [
        ("kernel-sc2", "the kernel listener with tcp_syncookies=2"),
        ("kernel-sc1", "the kernel listener with tcp_syncookies=1"),
    ] {
        if let (Some(s), Some(k)) = (s1, find(rs, Some(kid))) {
            let r = ratio(s.answered, k.answered);
            writeln!(
                m,
                "- synline (one queue) at least 3× {what}: {} ({}).",
                if r.is_some_and(|r| r >= 3.0) {
                    "**met**"
                } else {
                    "**not met**"
                },
                fmt_ratio(r, false)
            )?;
        }
    }
    for (cid, what) in [
        (
            "rxdrop-1q",
            "the AF_XDP rxdrop ceiling (synline's ring sizes)",
        ),
        (
            "rxdrop-1q-big",
            "the AF_XDP rxdrop ceiling with 8192-slot rings",
        ),
    ] {
        if let (Some(s), Some(c)) = (s1, find(rs, Some(cid))) {
            let r = ratio(s.answered, c.answered);
            writeln!(
                m,
                "- synline (one queue) at least 70% of {what}: {} ({}).",
                if r.is_some_and(|r| r >= 0.7) {
                    "**met**"
                } else {
                    "**not met**"
                },
                fmt_ratio(r, true)
            )?;
        }
    }
    if let (Some(s), Some(k), Some(c)) = (
        find(rs, Some("synline-2q")),
        find(rs, Some("kernel-sc2-2c")),
        find(rs, Some("rxdrop-2q")),
    ) {
        writeln!(
            m,
            "- synline (two queues, both cores shared with the generator): {} the kernel on the \
             same cores, {} of rxdrop on the same cores.",
            fmt_ratio(ratio(s.answered, k.answered), false),
            fmt_ratio(ratio(s.answered, c.answered), true)
        )?;
    }
    // Issue 13's targets: the default configuration against the reply ceiling and the kernel,
    // and what the second queue adds. `of(a, b)`: row a's figure over row b's, when both ran.
    let met = |ok: bool| if ok { "**met**" } else { "**not met**" };
    let of = |a: &str, b: &str| match (find(rs, Some(a)), find(rs, Some(b))) {
        (Some(a), Some(b)) => Some(ratio(a.answered, b.answered)),
        _ => None,
    };
    for (sid, pid, cores) in [
        ("synline-1q", "reflect-1q", "one core"),
        ("synline-2q", "reflect-2q", "two queues, both cores shared"),
    ] {
        let Some(r) = of(sid, pid) else { continue };
        writeln!(
            m,
            "- synline, default configuration ({cores}), at least 90% of the AF_XDP reflector \
             on the same cores: {} ({}).",
            met(r.is_some_and(|r| r >= 0.9)),
            fmt_ratio(r, true)
        )?;
    }
    for (sid, kid, cores) in [
        ("synline-1q", "kernel-sc2", "one core"),
        ("synline-2q", "kernel-sc2-2c", "both cores"),
    ] {
        let Some(r) = of(sid, kid) else { continue };
        writeln!(
            m,
            "- synline, default configuration, ahead of the kernel listener ({cores}): {} ({}).",
            met(r.is_some_and(|r| r > 1.0)),
            fmt_ratio(r, false)
        )?;
    }
    for (two, one, what) in [
        ("synline-2q", "synline-1q", "synline"),
        ("reflect-2q", "reflect-1q", "the reflector"),
        ("kernel-sc2-2c", "kernel-sc2", "the kernel listener"),
    ] {
        let Some(r) = of(two, one) else { continue };
        writeln!(
            m,
            "- Two queues against one, {what}: {} (the generator shares both cores in the \
             two-queue rows and has one to itself in the one-queue rows).",
            fmt_ratio(r, false)
        )?;
    }
    // Target 6: the same targets under a generator nobody here wrote.
    let pairs = [
        ("kernel-sc2", "kernel-sc2-trafgen"),
        ("synline-1q", "synline-1q-trafgen"),
    ];
    if pairs.iter().any(|(_, t)| find(rs, Some(t)).is_some()) {
        writeln!(m)?;
        writeln!(m, "## The second generator (trafgen)\n")?;
        writeln!(
            m,
            "The one-core targets again with netsniff-ng's trafgen (deploy/load/trafgen/\
             syn_flood.cfg, PF_PACKET TX ring, one thread on CPU0) instead of the loadgen. \
             trafgen checks no reply, so both generators are compared on the server's own count \
             of the cookie SYN-ACKs it sent (TcpExtSyncookiesSent per second; tcp_syncookies=2 \
             makes every SYN-ACK a cookie).\n"
        )?;
        writeln!(m, "| target | loadgen: SYN-ACKs/s at the client | loadgen: server count | trafgen: server count | delivered/s (loadgen / trafgen) | trafgen / loadgen |")?;
        writeln!(m, "|---|---:|---:|---:|---:|---:|")?;
        for (l, t) in pairs {
            let (Some(lr), Some(tr)) = (find(rs, Some(l)), find(rs, Some(t))) else {
                continue;
            };
            writeln!(
                m,
                "| {} | {} | {} | {} | {} / {} | {} |",
                lr.label,
                fmt_stat(lr.answered),
                fmt_stat(lr.cookies_srv),
                fmt_stat(tr.answered),
                fmt_stat(lr.delivered),
                fmt_stat(tr.delivered),
                fmt_ratio(ratio(tr.answered, lr.cookies_srv), false),
            )?;
        }
        if let (Some(kl), Some(kt), Some(sl), Some(st)) = (
            find(rs, Some("kernel-sc2")),
            find(rs, Some("kernel-sc2-trafgen")),
            find(rs, Some("synline-1q")),
            find(rs, Some("synline-1q-trafgen")),
        ) {
            writeln!(
                m,
                "\nsynline against the kernel, by the server counts: {} with the loadgen, {} \
                 with trafgen.\n",
                fmt_ratio(ratio(sl.cookies_srv, kl.cookies_srv), false),
                fmt_ratio(ratio(st.answered, kt.answered), false),
            )?;
        }
    }
    let invalid: Vec<String> = rs
        .iter()
        .filter(|r| r.invalid > 0.0)
        .map(|r| format!("{} ({:.0})", r.label, r.invalid))
        .collect();
    writeln!(
        m,
        "- Invalid SYN-ACKs (checksum, ACK or options wrong) over the whole run: {}.\n",
        if invalid.is_empty() {
            "none".to_string()
        } else {
            invalid.join(", ")
        }
    )?;
    for n in meta["notes"].as_array().into_iter().flatten() {
        if let Some(n) = n.as_str() {
            writeln!(m, "- {n}")?;
        }
    }
    writeln!(m)?;

    // perf.
    let perf = meta["perf"].as_array().cloned().unwrap_or_default();
    if !perf.is_empty() {
        writeln!(m, "## Where each core's time went (perf)\n")?;
        if let Some(h) = meta["perf_how"].as_str() {
            writeln!(m, "{h}\n")?;
        }
        for p in &perf {
            let file = p["file"].as_str().unwrap_or("");
            let text = std::fs::read_to_string(file).unwrap_or_else(|e| format!("({file}: {e})"));
            writeln!(
                m,
                "**{}, CPU{}** ({})\n\n```text\n{}\n```\n",
                p["label"].as_str().unwrap_or("?"),
                p["cpu"].as_u64().unwrap_or(0),
                p["what"].as_str().unwrap_or(""),
                text.trim_end()
            )?;
        }
    }

    // Setup of each configuration.
    writeln!(m, "## How each configuration ran\n")?;
    for r in rs {
        writeln!(
            m,
            "- **{}**: {}",
            r.label,
            r.meta["how"].as_str().unwrap_or("")
        )?;
    }
    writeln!(m)?;
    writeln!(m, "## Counters (server side, per repetition)\n")?;
    for r in rs.iter().filter(|r| !r.counters.is_empty()) {
        let parts: Vec<String> = r
            .counters
            .iter()
            .filter(|(_, v)| {
                v.as_array()
                    .is_some_and(|a| a.iter().any(|x| x.as_u64() != Some(0)))
            })
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !parts.is_empty() {
            writeln!(m, "- {}: {}", r.label, parts.join("; "))?;
        }
    }
    writeln!(m)?;
    writeln!(m, "## Commands\n")?;
    writeln!(m, "```sh")?;
    for c in meta["commands"].as_array().into_iter().flatten() {
        writeln!(m, "{}", c.as_str().unwrap_or(""))?;
    }
    writeln!(m, "```\n")?;
    writeln!(m, "Every measurement: `{json_name}`.")?;
    Ok(m)
}

fn results_json(meta: &Value, rs: &[ConfigResult], raw: &[Value]) -> Value {
    let cpu = |c: &BTreeMap<usize, (Stat, Stat, Stat, Stat)>| -> Value {
        c.iter()
            .map(|(i, (b, u, s, si))| {
                (
                    format!("cpu{i}"),
                    json!({"busy_pct": b.json(), "user_pct": u.json(), "system_pct": s.json(), "softirq_pct": si.json()}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let opt = |s: Option<Stat>| s.map(|s| s.json()).unwrap_or(Value::Null);
    let configs: Vec<Value> = rs
        .iter()
        .map(|r| {
            let k = find(rs, r.meta["ref_kernel"].as_str());
            let c = find(rs, r.meta["ref_ceiling"].as_str());
            json!({
                "id": r.id,
                "label": r.label,
                "kind": r.kind,
                "how": r.meta["how"],
                "synacks_pps": opt(r.answered),
                "delivered_pps": opt(r.delivered),
                "handshakes_server_pps": opt(r.hs_srv),
                "handshakes_client_pps": opt(r.hs_cli),
                "handshake_mode_synacks_pps": opt(r.hs_answered),
                "cpu_flood": cpu(&r.cpu_flood),
                "cpu_handshake": cpu(&r.cpu_hs),
                "ratio_to_kernel_sc2": if is_ceiling(&r.kind) { None } else { k.and_then(|k| ratio(r.answered, k.answered)) },
                "ratio_to_rxdrop": if is_ceiling(&r.kind) { None } else { c.and_then(|c| ratio(r.answered, c.answered)) },
                "ratio_to_reflector": if is_ceiling(&r.kind) { None } else { find(rs, r.meta["ref_reply"].as_str()).and_then(|p| ratio(r.answered, p.answered)) },
                "invalid_synacks": r.invalid,
                "counter_deltas": r.counters,
            })
        })
        .collect();
    // The measurements as taken, with the server's counters reduced to those that moved.
    let measurements: Vec<Value> = raw
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let mut moved = serde_json::Map::new();
            if let Some(a) = r.get("ctr0").and_then(Value::as_object) {
                for (k, v0) in a {
                    let v1 = r["ctr1"].get(k).and_then(Value::as_f64);
                    if let (Some(v0), Some(v1)) = (v0.as_f64(), v1) {
                        if v1 != v0 {
                            moved.insert(k.clone(), json!(v1 - v0));
                        }
                    }
                }
            }
            if let Some(o) = r.as_object_mut() {
                o.remove("ctr0");
                o.remove("ctr1");
                o.insert("counter_deltas".into(), moved.into());
            }
            r
        })
        .collect();
    json!({"meta": meta, "results": configs, "measurements": measurements})
}

// ---- the chart ----

fn chart(path: &Path, font: &Path, rs: &[ConfigResult], title: &str) -> Result<()> {
    let bytes = std::fs::read(font).with_context(|| {
        format!(
            "reading the chart font {} (Debian: fonts-dejavu-core; or pass --font)",
            font.display()
        )
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        bail!("{}: not a font ab_glyph can read", font.display());
    }
    let n = rs.len();
    let h = 200 + 60 * n as u32;
    let root = BitMapBackend::new(path, (1400, h)).into_drawing_area();
    root.fill(&WHITE)?;
    // The axis is scaled to the targets; a ceiling beyond them (XDP_DROP is the generator's
    // own limit) is drawn to the edge with its figure, instead of flattening every other bar.
    let top = |f: &dyn Fn(&ConfigResult) -> bool| {
        rs.iter()
            .filter(|r| f(r))
            .flat_map(|r| [r.answered, r.hs_srv])
            .flatten()
            .map(|s| s.max)
            .fold(0.0f64, f64::max)
    };
    let targets = top(&|r| !is_ceiling(&r.kind));
    let xmax = if targets > 0.0 {
        targets * 1.3
    } else {
        top(&|_| true) * 1.12
    }
    .max(1.0);
    let labels: Vec<String> = rs.iter().map(|r| r.label.clone()).collect();
    let mut ch = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(470)
        // One empty row at the bottom, for the legend.
        .build_cartesian_2d(0f64..xmax, (-1.5f64)..(n as f64 - 0.5))?;
    ch.configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            // Top to bottom in the order of the run.
            labels
                .get(n.saturating_sub(1).saturating_sub(i as usize))
                .cloned()
                .unwrap_or_default()
        })
        .x_label_formatter(&|x| fmt_rate(*x))
        .x_desc("per second (median of the repetitions; whiskers: min and max)")
        .label_style(("sans-serif", 17))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;

    type Series = (
        &'static str,
        RGBColor,
        fn(&ConfigResult) -> Option<Stat>,
        f64,
    );
    let series: [Series; 2] = [
        (
            "SYN-ACKs/s in a flood (ceilings: SYNs absorbed/s)",
            RGBColor(52, 101, 164),
            |r| r.answered,
            0.18,
        ),
        (
            "handshakes/s completed at the server",
            RGBColor(245, 121, 0),
            |r| r.hs_srv,
            -0.18,
        ),
    ];
    for (name, color, get, off) in series {
        let bars: Vec<(f64, Stat)> = rs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| get(r).map(|s| ((n - 1 - i) as f64 + off, s)))
            .collect();
        let hw = 0.16;
        ch.draw_series(bars.iter().map(|(y, s)| {
            Rectangle::new([(0.0, y - hw), (s.med.min(xmax), y + hw)], color.filled())
        }))?
        .label(name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled()));
        for (y, s) in &bars {
            if s.max > xmax {
                // Off the scale: the figure inside the bar's end.
                ch.draw_series(std::iter::once(Text::new(
                    format!("{} (off scale) ->", fmt_rate(s.med)),
                    (xmax * 0.74, *y + 0.12),
                    ("sans-serif", 15).into_font().color(&WHITE),
                )))?;
                continue;
            }
            ch.draw_series(std::iter::once(PathElement::new(
                vec![(s.min, *y), (s.max, *y)],
                BLACK.stroke_width(2),
            )))?;
            for x in [s.min, s.max] {
                ch.draw_series(std::iter::once(PathElement::new(
                    vec![(x, y - hw * 0.6), (x, y + hw * 0.6)],
                    BLACK.stroke_width(2),
                )))?;
            }
            ch.draw_series(std::iter::once(Text::new(
                fmt_rate(s.med),
                (s.max + xmax * 0.008, *y + 0.12),
                ("sans-serif", 15),
            )))?;
        }
    }
    ch.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(&cli.meta)
            .with_context(|| format!("reading {}", cli.meta.display()))?,
    )
    .with_context(|| format!("parsing {}", cli.meta.display()))?;
    let raw_text = std::fs::read_to_string(&cli.raw)
        .with_context(|| format!("reading {}", cli.raw.display()))?;
    let mut raw = Vec::new();
    for (i, l) in raw_text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        raw.push(
            serde_json::from_str::<Value>(l)
                .with_context(|| format!("{} line {}: {l}", cli.raw.display(), i + 1))?,
        );
    }
    let rs = analyse(&meta, &raw)?;
    let prefix = cli.out_prefix.display().to_string();
    let png = PathBuf::from(format!("{prefix}.png"));
    let name = |p: &Path| {
        p.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let json_path = PathBuf::from(format!("{prefix}.json"));
    let md = markdown(&meta, &rs, &name(&png), &name(&json_path))?;
    std::fs::write(format!("{prefix}.md"), &md)?;
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results_json(&meta, &rs, &raw))? + "\n",
    )?;
    chart(
        &png,
        &cli.font,
        &rs,
        &format!(
            "SYN-ACKs and handshakes per second, veth, {} ({})",
            meta["machine"]["nproc"].as_str().unwrap_or("?").to_string() + " cores",
            meta["date"].as_str().unwrap_or("")
        ),
    )?;
    if let Some(l) = &cli.latest {
        std::fs::write(l, &md)?;
    }
    println!("{prefix}.md\n{prefix}.json\n{prefix}.png");
    print!("{md}");
    Ok(())
}
