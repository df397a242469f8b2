//! `synline-loadgen selftest`: the XDP programs run by the kernel (BPF_PROG_RUN, nothing
//! sent) on frames made here, for both families, every option set, with and without answers.
//!
//! The generator is run on its own output again and again, as live-frames mode does with its
//! recycled pages, and every frame it makes is checked in full: checksums, source within the
//! prefix (and outside the target's /24), port range and mark bit, ISN. The receiver gets a
//! valid SYN-ACK for each kind of flow and one broken in each way it checks, plus the frames it
//! must leave alone; each case compares the action and the whole counter set before and after,
//! and the third ACK it writes is parsed and checked field by field.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, ensure, Context, Result};

use crate::bpf::{self, Config, Counters, Gen, Loadgen};
use crate::frame::{self, Mac, OptSet, Parsed, Prefix, Seg, PORT_MARK, PORT_MIN};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const CLIENT_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
const SERVER_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);

/// Frames the generator makes per program and configuration.
const GEN_ROUNDS: usize = 300;

pub fn run() -> Result<()> {
    let mut checks = 0usize;
    for (dst, net) in [
        ("198.18.0.1:8080", "198.18.0.0/15"),
        ("198.18.0.1:8080", "198.18.128.0/17"),
        ("[2001:2::1]:8080", "2001:2:0:8000::/64"),
        ("[2001:2::1]:443", "2001:2::ab00:0/104"),
    ] {
        for opts in [OptSet::None, OptSet::Mss, OptSet::Linux] {
            for answer in [false, true] {
                let dst: SocketAddr = dst.parse().unwrap();
                let net: Prefix = net.parse().unwrap();
                checks += case(dst, net, opts, answer).with_context(|| {
                    format!(
                        "selftest: target {dst}, sources {net}, options {}, answer {answer}",
                        opts.name()
                    )
                })?;
            }
        }
    }
    println!("selftest: {checks} checks passed");
    Ok(())
}

fn case(dst: SocketAddr, net: Prefix, opts: OptSet, answer: bool) -> Result<usize> {
    let excl24 = match dst.ip() {
        IpAddr::V4(d) if net.len < 24 && net.contains(dst.ip()) => Some(u32::from(d) & 0xffff_ff00),
        _ => None,
    };
    let cfg = Config {
        key: [0x0123_4567, 0x89ab_cdef],
        src_net: net,
        excl24,
        dst,
        opts,
        tsval: 0x1122_3344,
        answer,
    };
    let lg = Loadgen::load(&cfg)?;
    let template = frame::syn_template(CLIENT_MAC, SERVER_MAC, &net, dst, opts, cfg.tsval);
    let mut checks = 0;

    // ---- generator runs ----
    let mut last = [None, None];
    for (k, which) in [Gen::Flood, Gen::Complete].into_iter().enumerate() {
        let mut f = template.clone();
        let mut sources = HashSet::new();
        for round in 0..GEN_ROUNDS {
            let (ret, out) = bpf::run_once(lg.prog(), &f, Some(which))?;
            ensure!(ret == XDP_TX, "{which:?} round {round}: action {ret}");
            ensure!(out.len() == template.len(), "{which:?}: length changed");
            let p = frame::parse_tcp(&out)?;
            check_syn(&p, &cfg, which)
                .with_context(|| format!("{which:?} round {round}: {p:?}"))?;
            sources.insert(p.src);
            checks += 1;
            f = out;
        }
        ensure!(
            sources.len() > GEN_ROUNDS * 9 / 10,
            "{which:?}: only {} distinct sources in {GEN_ROUNDS} SYNs",
            sources.len()
        );
        last[k] = Some(frame::parse_tcp(&f)?);
    }
    let [Some(flood), Some(marked)] = last else {
        unreachable!()
    };
    let c0 = lg.counters()?;
    ensure!(c0 == Counters::default(), "the generator counted: {c0:?}");

    // ---- receive side ----
    let theirs = 0xa5a5_0000;
    let good = |p: &Parsed| synack(p, opts, theirs, isn_of(p, &cfg) + 1, 0x12, None);
    let mut rx = |name: &str, f: &[u8], want: u32, delta: Counters| -> Result<Vec<u8>> {
        let before = lg.counters()?;
        let (ret, out) = bpf::run_once(lg.prog(), f, None)?;
        let after = lg.counters()?;
        ensure!(ret == want, "{name}: action {ret}, expected {want}");
        let got = diff(&after, &before);
        ensure!(
            got == delta,
            "{name}: counters moved by {got:?}, expected {delta:?}"
        );
        checks += 1;
        Ok(out)
    };
    let valid = Counters {
        valid: 1,
        ..Counters::default()
    };
    let invalid = |reason: fn(&mut Counters) -> &mut u64| {
        let mut c = Counters {
            invalid: 1,
            ..Counters::default()
        };
        *reason(&mut c) = 1;
        c
    };

    rx("valid SYN-ACK, flood flow", &good(&flood), XDP_DROP, valid)?;
    if answer {
        let out = rx(
            "valid SYN-ACK, completing flow",
            &good(&marked),
            XDP_TX,
            Counters {
                valid: 1,
                handshakes: 1,
                ..Counters::default()
            },
        )?;
        check_ack(&out, &marked, &cfg, theirs)?;
    } else {
        rx(
            "valid SYN-ACK, marked flow, flood mode",
            &good(&marked),
            XDP_DROP,
            valid,
        )?;
    }

    let mut f = good(&flood);
    let last_byte = f.len() - 1;
    f[last_byte] ^= 0x40;
    rx("TCP checksum", &f, XDP_DROP, invalid(|c| &mut c.bad_csum))?;
    if dst.is_ipv4() {
        let mut f = good(&flood);
        f[frame::ETH_LEN + 4] ^= 1; // IP ID, the header checksum not fixed
        rx(
            "IPv4 header checksum",
            &f,
            XDP_DROP,
            invalid(|c| &mut c.bad_csum),
        )?;
    }
    let f = synack(&flood, opts, theirs, isn_of(&flood, &cfg) + 2, 0x12, None);
    rx("ACK = ISN + 2", &f, XDP_DROP, invalid(|c| &mut c.bad_ack))?;
    let f = synack(&flood, opts, theirs, isn_of(&flood, &cfg), 0x12, None);
    rx("ACK = ISN", &f, XDP_DROP, invalid(|c| &mut c.bad_ack))?;
    let bad_opts: Vec<u8> = match opts {
        // TSecr not ours.
        OptSet::Linux => {
            let mut o = synack_options(opts, theirs, cfg.tsval);
            o[15] ^= 1;
            o
        }
        // No MSS in its place.
        _ => vec![1, 1, 1, 1],
    };
    let f = synack(
        &flood,
        opts,
        theirs,
        isn_of(&flood, &cfg) + 1,
        0x12,
        Some(&bad_opts),
    );
    rx("options", &f, XDP_DROP, invalid(|c| &mut c.bad_opts))?;
    if opts == OptSet::Linux {
        let mut o = synack_options(opts, theirs, cfg.tsval);
        o[19] = 15; // WS above 14
        let f = synack(
            &flood,
            opts,
            theirs,
            isn_of(&flood, &cfg) + 1,
            0x12,
            Some(&o),
        );
        rx(
            "window scale 15",
            &f,
            XDP_DROP,
            invalid(|c| &mut c.bad_opts),
        )?;
    }
    let f = synack(
        &flood,
        opts,
        theirs,
        isn_of(&flood, &cfg) + 1,
        0x12,
        Some(&[]),
    );
    rx("no options", &f, XDP_DROP, invalid(|c| &mut c.bad_len))?;

    let passed = Counters {
        passed: 1,
        ..Counters::default()
    };
    let rst = synack(&flood, opts, 0, isn_of(&flood, &cfg) + 1, 0x14, Some(&[]));
    rx(
        "RST",
        &rst,
        XDP_DROP,
        Counters {
            rst: 1,
            ..Counters::default()
        },
    )?;
    for (name, flags) in [("FIN", 0x11), ("pure ACK", 0x10), ("PSH", 0x18)] {
        let f = synack(&flood, opts, 0, isn_of(&flood, &cfg) + 1, flags, Some(&[]));
        let out = rx(
            name,
            &f,
            XDP_TX,
            Counters {
                resets_sent: 1,
                ..Counters::default()
            },
        )?;
        check_rst(&out, &flood, isn_of(&flood, &cfg) + 1).context(name)?;
    }
    let f = synack(&flood, opts, 0, 0, 0x01, Some(&[]));
    rx("FIN without ACK", &f, XDP_PASS, passed)?;
    let mut other_port = flood.clone();
    other_port.dport = dst.port().wrapping_add(1);
    rx(
        "SYN-ACK from another port",
        &good(&other_port),
        XDP_PASS,
        passed,
    )?;
    let mut other_net = flood.clone();
    other_net.src = match dst {
        SocketAddr::V4(_) => "192.0.2.5".parse().unwrap(),
        SocketAddr::V6(_) => "2001:db8::5".parse().unwrap(),
    };
    rx(
        "SYN-ACK to another prefix",
        &good(&other_net),
        XDP_PASS,
        passed,
    )?;
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&SERVER_MAC.0);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    rx("ARP", &arp, XDP_PASS, passed)?;
    Ok(checks)
}

fn check_syn(p: &Parsed, cfg: &Config, which: Gen) -> Result<()> {
    ensure!(p.ip_csum_ok, "IPv4 header checksum");
    ensure!(p.tcp_csum_ok, "TCP checksum");
    ensure!(p.len_ok, "length fields");
    ensure!(p.flags == 0x02, "flags {:#x}", p.flags);
    ensure!(
        p.dst == cfg.dst.ip() && p.dport == cfg.dst.port(),
        "destination"
    );
    ensure!(
        cfg.src_net.contains(p.src),
        "source {} outside {}",
        p.src,
        cfg.src_net
    );
    if let (Some(x), IpAddr::V4(a)) = (cfg.excl24, p.src) {
        ensure!(
            u32::from(a) & 0xffff_ff00 != x,
            "source {a} in the target's /24"
        );
    }
    ensure!(p.sport >= PORT_MIN, "port {}", p.sport);
    let marked = p.sport & PORT_MARK != 0;
    ensure!(
        marked == (which == Gen::Complete),
        "mark bit of port {}",
        p.sport
    );
    ensure!(p.seq == isn_of(p, cfg), "ISN {:#x}", p.seq);
    ensure!(p.ack == 0, "ACK field {:#x}", p.ack);
    Ok(())
}

/// The options a Linux target answers our option set with; TSval `theirs`, TSecr `echo`.
fn synack_options(opts: OptSet, theirs: u32, echo: u32) -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4];
    if opts == OptSet::Linux {
        o.extend_from_slice(&[4, 2, 8, 10]);
        o.extend_from_slice(&theirs.to_be_bytes());
        o.extend_from_slice(&echo.to_be_bytes());
        o.extend_from_slice(&[1, 3, 3, 7]);
    }
    o
}

/// The target's answer to SYN `p`: flags, ACK, and options as given (default: Linux's).
fn synack(p: &Parsed, opts: OptSet, theirs: u32, ack: u32, flags: u8, o: Option<&[u8]>) -> Vec<u8> {
    let tsecr = if opts == OptSet::Linux {
        u32::from_be_bytes(p.options[8..12].try_into().unwrap())
    } else {
        0
    };
    let default = synack_options(opts, theirs, tsecr);
    frame::tcp_frame(
        p.dst_mac,
        p.src_mac,
        p.dst,
        p.src,
        &Seg {
            sport: p.dport,
            dport: p.sport,
            seq: 0x7000_0000,
            ack,
            flags,
            window: 65160,
            options: o.unwrap_or(&default),
        },
    )
}

/// The third ACK lg_xdp wrote in place of the SYN-ACK to SYN `syn`.
fn check_ack(out: &[u8], syn: &Parsed, cfg: &Config, theirs: u32) -> Result<()> {
    let a = frame::parse_tcp(out).context("third ACK")?;
    let ts = cfg.opts == OptSet::Linux;
    let ip_len = if cfg.dst.is_ipv4() { 20 } else { 40 };
    let want_len = 14 + ip_len + if ts { 32 } else { 20 };
    ensure!(
        out.len() == want_len,
        "third ACK of {} bytes, expected {want_len}",
        out.len()
    );
    ensure!(
        a.ip_csum_ok && a.tcp_csum_ok && a.len_ok,
        "third ACK checksums/lengths: {a:?}"
    );
    ensure!(
        (a.src_mac, a.dst_mac) == (CLIENT_MAC, SERVER_MAC),
        "third ACK MACs {} -> {}",
        a.src_mac,
        a.dst_mac
    );
    ensure!(
        (a.src, a.sport, a.dst, a.dport) == (syn.src, syn.sport, syn.dst, syn.dport),
        "third ACK 4-tuple: {a:?}"
    );
    ensure!(a.flags == 0x10, "third ACK flags {:#x}", a.flags);
    ensure!(
        a.seq == syn.seq.wrapping_add(1),
        "third ACK seq {:#x}",
        a.seq
    );
    ensure!(a.ack == 0x7000_0001, "third ACK ack {:#x}", a.ack);
    let mut want_opts = Vec::new();
    if ts {
        want_opts.extend_from_slice(&[1, 1, 8, 10]);
        want_opts.extend_from_slice(&cfg.tsval.to_be_bytes());
        want_opts.extend_from_slice(&theirs.to_be_bytes());
    }
    if a.options != want_opts {
        bail!(
            "third ACK options {:02x?}, expected {want_opts:02x?}",
            a.options
        );
    }
    Ok(())
}

/// The RST lg_xdp wrote in place of a segment from the target to the client of SYN `syn`,
/// whose ACK field was `their_ack`.
fn check_rst(out: &[u8], syn: &Parsed, their_ack: u32) -> Result<()> {
    let r = frame::parse_tcp(out).context("RST")?;
    let want_len = if syn.dst.is_ipv4() { 54 } else { 74 };
    ensure!(
        out.len() == want_len,
        "RST of {} bytes, expected {want_len}",
        out.len()
    );
    ensure!(
        r.ip_csum_ok && r.tcp_csum_ok && r.len_ok,
        "RST checksums/lengths: {r:?}"
    );
    ensure!(
        (r.src_mac, r.dst_mac) == (CLIENT_MAC, SERVER_MAC),
        "RST MACs {} -> {}",
        r.src_mac,
        r.dst_mac
    );
    ensure!(
        (r.src, r.sport, r.dst, r.dport) == (syn.src, syn.sport, syn.dst, syn.dport),
        "RST 4-tuple: {r:?}"
    );
    ensure!(r.flags == 0x04, "RST flags {:#x}", r.flags);
    ensure!(
        (r.seq, r.ack) == (their_ack, 0),
        "RST seq {:#x} ack {:#x}",
        r.seq,
        r.ack
    );
    ensure!(r.options.is_empty(), "RST options {:02x?}", r.options);
    Ok(())
}

fn diff(after: &Counters, before: &Counters) -> Counters {
    Counters {
        valid: after.valid - before.valid,
        invalid: after.invalid - before.invalid,
        bad_len: after.bad_len - before.bad_len,
        bad_csum: after.bad_csum - before.bad_csum,
        bad_ack: after.bad_ack - before.bad_ack,
        bad_opts: after.bad_opts - before.bad_opts,
        handshakes: after.handshakes - before.handshakes,
        reply_failed: after.reply_failed - before.reply_failed,
        rst: after.rst - before.rst,
        resets_sent: after.resets_sent - before.resets_sent,
        passed: after.passed - before.passed,
        gen_err: after.gen_err - before.gen_err,
    }
}

/// The ISN the generator gives the SYN `p`.
fn isn_of(p: &Parsed, cfg: &Config) -> u32 {
    frame::isn(frame::addr_word(p.src), p.sport, cfg.key)
}
