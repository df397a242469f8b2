//! `synline-xdp-cost`: what synline's XDP program costs per frame, by kind of frame (issue 13,
//! target 3: at most 25 ns per redirected frame).
//!
//! Loads the program (not attached anywhere), puts listeners in its map as `synline run`
//! would, and times it with `BPF_PROG_TEST_RUN` and a repeat count: the kernel runs the
//! program `--repeat` times on the same frame and reports the mean time per run. Each case is
//! timed `--rounds` times; the median is printed. The frames:
//!
//! - `nop`: not synline's program but a two-instruction one (`r0 = XDP_PASS; exit`) on the
//!   same SYN: the test-run loop's own cost per run, the floor under every other row;
//! - `arp`: an ARP frame, which synline's program passes at its first check;
//! - `syn_exact_v4`: a Linux SYN to a listener bound to its address (the flood of bench/
//!   compare.sh), up to `bpf_redirect_map` (no socket is registered, so the helper returns
//!   the XDP_PASS fallback: the redirect itself, the kernel's work, is not in the figure);
//! - `syn_wildcard_v4`: the same SYN to a listener bound to 0.0.0.0;
//! - `syn_exact_v6`: an IPv6 SYN to an exact listener (on the same port as the IPv4 one);
//! - `syn_shared_port_v4`: a SYN to one of two IPv4 listeners on one port (the hash lookup);
//! - `other_port_v4`: a SYN to a port nobody listens on (the traffic the program passes).
//!
//! The program's cost per redirected frame is a `syn_*` row minus the `nop` floor. Prints a Markdown table and, with `--json`, one JSON object.
//!
//! ```text
//! sudo synline-xdp-cost --repeat 2000000 --rounds 3
//! ```

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use synline_bench::{V4_SYN, V6_SYN};
use synline_wire::checksum;
use synline_xdp::{XdpAction, XdpCounters, XdpProgram};

#[derive(Parser, Debug)]
#[command(
    name = "synline-xdp-cost",
    about = "synline's XDP program's cost per frame (BPF_PROG_TEST_RUN with a repeat count)"
)]
struct Cli {
    /// Runs per timing (the kernel reports their mean).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000_000))]
    repeat: u32,
    /// Timings per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// A real Linux SYN (`synline_bench::V4_SYN` / `V6_SYN`, to 198.18.0.1:8080 / [2001:2::1]:8080)
/// sent to `port` instead, its TCP checksum updated (RFC 1624).
fn syn_to(fixture: &[u8], port: u16) -> Result<Vec<u8>> {
    let mut f = fixture.to_vec();
    let l4 = synline_wire::parse_frame(&f)
        .map_err(|e| anyhow::anyhow!("the SYN fixture does not parse: {e}"))?
        .layout
        .l4;
    let old = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
    let csum = u16::from_be_bytes([f[l4 + 16], f[l4 + 17]]);
    f[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
    f[l4 + 16..l4 + 18].copy_from_slice(&checksum::update16(csum, old, port).to_be_bytes());
    Ok(f)
}

fn arp() -> Vec<u8> {
    let mut f = vec![0u8; 42];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f
}

/// The floor: an XDP program of two instructions, `r0 = XDP_PASS; exit`, loaded with
/// `bpf_prog_load()` (no object file needed for two instructions).
fn nop_program() -> Result<std::os::fd::OwnedFd> {
    use libbpf_rs::libbpf_sys as sys;
    use std::os::fd::FromRawFd;
    // Registers 0 (the bitfield's zero): r0 = XDP_PASS; exit.
    let mov = sys::bpf_insn {
        code: (sys::BPF_ALU64 | sys::BPF_MOV | sys::BPF_K) as u8,
        imm: sys::XDP_PASS as i32,
        ..Default::default()
    };
    let exit = sys::bpf_insn {
        code: (sys::BPF_JMP | sys::BPF_EXIT) as u8,
        ..Default::default()
    };
    let insns = [mov, exit];
    // SAFETY: the name and license are NUL-terminated literals, `insns` holds `insns.len()`
    // instructions and outlives the call, and a null `opts` asks for libbpf's defaults.
    let fd = unsafe {
        sys::bpf_prog_load(
            sys::BPF_PROG_TYPE_XDP,
            c"synline_nop".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            std::ptr::null_mut(),
        )
    };
    anyhow::ensure!(
        fd >= 0,
        "bpf_prog_load(the nop floor): {}",
        std::io::Error::from_raw_os_error(-fd)
    );
    // SAFETY: `fd` was just returned by bpf_prog_load and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// BPF_PROG_TEST_RUN of the nop program: its mean time per run.
fn nop_run(prog: &std::os::fd::OwnedFd, frame: &[u8], repeat: u32) -> Result<Duration> {
    use libbpf_rs::libbpf_sys as sys;
    use std::os::fd::AsRawFd;
    let mut opts = sys::bpf_test_run_opts {
        sz: size_of::<sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_size_in: frame.len() as u32,
        repeat: repeat as i32,
        ..Default::default()
    };
    // SAFETY: `opts` is a valid, sized bpf_test_run_opts whose input buffer lives through the
    // call; there is no output buffer.
    let r = unsafe { sys::bpf_prog_test_run_opts(prog.as_raw_fd(), &mut opts) };
    anyhow::ensure!(
        r == 0,
        "BPF_PROG_TEST_RUN(the nop floor): {}",
        std::io::Error::from_raw_os_error(-r)
    );
    Ok(Duration::from_nanos(u64::from(opts.duration)))
}

/// The counter a case's every run must add one to.
type Path = fn(&XdpCounters) -> u64;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let prog = XdpProgram::load()
        .context("load the XDP program (root or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)")?;
    // One listener per port and family (the program's common case), and one port shared by
    // two listeners of a family (its hash-lookup path).
    for l in [
        "198.18.0.1:8080",
        "0.0.0.0:8081",
        "[2001:2::1]:8080",
        "198.18.0.1:9000",
        "198.18.0.2:9000",
    ] {
        prog.add_listener(l.parse()?)
            .with_context(|| format!("listener {l}"))?;
    }
    // Each case's path, checked on the counters: under BPF_PROG_TEST_RUN a listener match
    // falls back to XDP_PASS for want of a socket and counts in `no_socket`, so a SYN case that
    // missed its listener (or a pass that matched one) cannot hide behind the same action.
    let redirect: Path = |c| c.no_socket;
    let not_listener: Path = |c| c.not_listener;
    let not_ip: Path = |c| c.not_ip;
    let cases: [(&str, Vec<u8>, Path); 6] = [
        ("arp", arp(), not_ip),
        ("syn_exact_v4", syn_to(&V4_SYN, 8080)?, redirect),
        ("syn_wildcard_v4", syn_to(&V4_SYN, 8081)?, redirect),
        ("syn_exact_v6", syn_to(&V6_SYN, 8080)?, redirect),
        ("syn_shared_port_v4", syn_to(&V4_SYN, 9000)?, redirect),
        ("other_port_v4", syn_to(&V4_SYN, 9999)?, not_listener),
    ];
    let mut rows = Vec::new();
    let nop = nop_program()?;
    let mut times = Vec::with_capacity(cli.rounds);
    for _ in 0..cli.rounds.max(1) {
        times.push(nop_run(&nop, &cases[1].1, cli.repeat)?);
    }
    rows.push(("nop", median(times)));
    for (name, frame, path) in &cases {
        let mut times = Vec::with_capacity(cli.rounds);
        for _ in 0..cli.rounds.max(1) {
            let before = prog.counters()?;
            let (action, t) = prog
                .test_run_repeat(frame, cli.repeat)
                .with_context(|| format!("BPF_PROG_TEST_RUN on {name}"))?;
            let after = prog.counters()?;
            let (runs, on_path) = (
                u64::from(cli.repeat),
                path(&after).wrapping_sub(path(&before)),
            );
            anyhow::ensure!(
                action == XdpAction::Pass && on_path == runs,
                "{name}: the program returned {action:?}, and {on_path} of {runs} runs took \
                 the expected path (counters after: {after:?})"
            );
            times.push(t);
        }
        rows.push((*name, median(times)));
    }
    let floor = rows[0].1; // nop
    if cli.json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(n, t)| (n.to_string(), (t.as_secs_f64() * 1e9).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "repeat": cli.repeat, "rounds": cli.rounds, "ns_per_run": obj })
        );
    } else {
        println!("| frame | ns per run | the program's own (above `nop`) |");
        println!("|---|---:|---:|");
        for (n, t) in &rows {
            println!(
                "| `{n}` | {:.0} | {:.0} |",
                t.as_secs_f64() * 1e9,
                t.saturating_sub(floor).as_secs_f64() * 1e9
            );
        }
    }
    Ok(())
}
