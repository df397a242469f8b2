//! Everything `synline run` can check before it touches the NIC, checked together: a start
//! that will fail fails here, naming every problem, with nothing attached (flags used to be
//! refused only after "XDP attached").

use crate::config::Config;
use crate::run::RunOptions;
use anyhow::{bail, Result};
use std::net::IpAddr;
use synline_xdp::{link, BindMode, XskConfig};

/// Capabilities by bit number (`linux/capability.h`).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_NICE: u32 = 23;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What the daemon needs, and why (deploy/synline.service grants exactly these; README).
pub const NEEDED_CAPS: &[(u32, &str, &str)] = &[
    (
        CAP_BPF,
        "CAP_BPF",
        "load the XDP and TC programs, create their maps",
    ),
    (
        CAP_PERFMON,
        "CAP_PERFMON",
        "the verifier's rules for programs that read packet memory through pointers",
    ),
    (
        CAP_NET_ADMIN,
        "CAP_NET_ADMIN",
        "attach XDP and tcx links, create the handoff TAP, sock_diag",
    ),
    (CAP_NET_RAW, "CAP_NET_RAW", "AF_XDP sockets"),
    (
        CAP_IPC_LOCK,
        "CAP_IPC_LOCK",
        "pin the UMEM frames (beyond RLIMIT_MEMLOCK)",
    ),
];

/// The effective capability set (`CapEff` in /proc/self/status).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Whether the workers may run under SCHED_FIFO at `prio`, which `run` does by default: tried
/// on a throwaway thread, as CAP_SYS_NICE alone does not say (a real-time cgroup budget of 0,
/// a unit with RestrictRealtime=yes or a container refuses it all the same).
pub fn realtime_works(prio: i32) -> bool {
    has(effective_caps(), CAP_SYS_NICE)
        && std::thread::spawn(move || synline_xdp::set_fifo_priority(prio).is_ok())
            .join()
            .unwrap_or(false)
}

/// The capabilities `run` lacks, by name and use.
pub fn missing_caps(opts: &RunOptions) -> Vec<String> {
    let caps = effective_caps();
    let mut missing: Vec<String> = NEEDED_CAPS
        .iter()
        .filter(|(c, _, _)| {
            // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8 had only it).
            !has(caps, *c) && !((*c == CAP_BPF || *c == CAP_PERFMON) && has(caps, CAP_SYS_ADMIN))
        })
        .map(|(_, n, why)| format!("{n} ({why})"))
        .collect();
    if opts.sched_fifo.is_some() && !has(caps, CAP_SYS_NICE) {
        missing.push("CAP_SYS_NICE (--sched-fifo)".into());
    }
    missing
}

/// Every address on every interface of this namespace, with the interface, from
/// `ip -j addr show`.
fn local_addrs() -> Result<Vec<(String, IpAddr)>> {
    let out = std::process::Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .map_err(|e| anyhow::anyhow!("run `ip -j addr show` (iproute2): {e}"))?;
    if !out.status.success() {
        bail!(
            "ip addr show: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or("").to_string();
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                addrs.push((name.clone(), ip));
            }
        }
    }
    Ok(addrs)
}

/// Checks that each listener's address is local, and says where: on the NIC, or on another
/// interface (a VIP on `lo` or a dummy, as direct server return and anycast layouts have it:
/// the kernel takes such an address on any interface, and the XDP program sees its traffic
/// on the NIC when the router sends it there). An address on no interface is refused: the
/// kernel would not take the connection the engine hands it.
pub fn check_addresses(config: &Config, iface: &str, problems: &mut Vec<String>) -> Vec<String> {
    let addrs = match local_addrs() {
        Ok(a) => a,
        Err(e) => {
            problems.push(format!("{e:#}"));
            return Vec::new();
        }
    };
    let mut notes = Vec::new();
    for l in &config.listeners {
        let ip = l.addr.ip();
        if ip.is_unspecified() {
            continue;
        }
        let on: Vec<&str> = addrs
            .iter()
            .filter(|(_, a)| *a == ip)
            .map(|(n, _)| n.as_str())
            .collect();
        if on.contains(&iface) {
            continue;
        }
        match on.first() {
            Some(other) => notes.push(format!(
                "listener {}: {ip} is on {other}, not {iface}: served when {iface} receives its traffic (a VIP: direct server return, anycast)",
                l.addr
            )),
            None => problems.push(format!(
                "listener {}: {ip} is on no interface here; put it on {iface}, or on lo or a dummy interface as a VIP (`ip addr add {ip}/{} dev lo`)",
                l.addr,
                if ip.is_ipv4() { 32 } else { 128 }
            )),
        }
    }
    notes
}

/// CPUs that exist and are online (`/sys/devices/system/cpu/online`: "0-3,6").
fn online_cpus() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            cpus.extend(a..=b);
        }
    }
    cpus
}

/// What the checks found out, for the start.
pub struct Checked {
    pub queues: u32,
    pub notes: Vec<String>,
}

/// Every check that needs nothing attached; problems are added to `problems`.
pub fn check(
    opts: &RunOptions,
    config: &Config,
    xsk: &XskConfig,
    problems: &mut Vec<String>,
) -> Checked {
    let missing = missing_caps(opts);
    if !missing.is_empty() {
        problems.push(format!(
            "missing capabilities: {} (run as root, or grant them: deploy/synline.service)",
            missing.join(", ")
        ));
    }
    let mut queues = 0;
    match synline_xdp::iface::ifindex(&opts.iface) {
        Ok(ifindex) => {
            match synline_xdp::iface::rx_queues(&opts.iface) {
                Ok(q) => queues = q,
                Err(e) => problems.push(e.to_string()),
            }
            if opts.bind_mode == BindMode::ZeroCopy {
                match link::xdp_features(ifindex) {
                    Ok(f) if f != 0 && f & link::XDP_ACT_XSK_ZEROCOPY == 0 => problems.push(format!(
                        "--bind-mode zerocopy: the driver of {} has no AF_XDP zero-copy (veth has none); use --bind-mode auto or copy",
                        opts.iface
                    )),
                    _ => {}
                }
            }
        }
        Err(e) => problems.push(format!("--iface {}: {e}", opts.iface)),
    }
    if let Err(e) = xsk.check() {
        problems.push(format!("--ring-size/--frames: {e}"));
    }
    if let Some(b) = opts.batch.filter(|&b| b > xsk.ring_size as usize) {
        problems.push(format!(
            "--batch {b}: more than the ring size ({}); a round never finds more frames than that",
            xsk.ring_size
        ));
    }
    let online = online_cpus();
    for c in &opts.cpus {
        if !online.contains(c) {
            problems.push(format!(
                "--cpus: CPU {c} is not online here (online: {online:?})"
            ));
        }
    }
    let notes = check_addresses(config, &opts.iface, problems);
    Checked { queues, notes }
}
