//! `synline run --accept kernel` (the default): the application's own kernel listener is the
//! accept list. This file is the daemon's side of it: what the kernel must allow before a
//! connection can be handed to it, and the watch on the application's listeners.
//!
//! Every 50 ms the daemon asks the kernel (sock_diag) for its TCP listeners, and for each
//! synline listener:
//! - **the application listens** (a kernel listener serves the address): the XDP program
//!   sends its SYNs to the engine; the engine's S-4/K-7 test the kernel listener's accept
//!   queue (`sk_ack_backlog > sk_max_ack_backlog`); its backlog, TCP_DEFER_ACCEPT and
//!   TCP_MAXSEG become the engine listener's, unless given on `--listen` or in the file;
//! - **nothing listens**: the listener leaves the XDP program's map, so SYNs reach the kernel,
//!   which answers them with an RST, as Linux does for a closed port. Requests in flight
//!   die with it, as a closed listener's do.

use crate::config::{Given, ListenerSpec};
use anyhow::{bail, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use synline_core::{Listener, ListenerConfig};
use synline_xdp::{kernel_listener, KernelListener, SockDiag, XdpProgram};

/// How often the application's listeners are looked at.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(50);

fn sysctl(name: &str) -> Option<u32> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What the kernel in this network namespace lets `bpf_sk_assign_tcp_reqsk()` build: the
/// child comes from the cookie path (`tcp_syncookies` must not be 0), and an option the kernel
/// has switched off by sysctl makes it refuse. The engine must then not negotiate it: such a
/// setting is switched off on the listener (and said), unless given explicitly, which is an
/// error.
pub fn fit_to_kernel(specs: &mut [ListenerSpec]) -> Result<Vec<String>> {
    if sysctl("net.ipv4.tcp_syncookies") == Some(0) {
        bail!("the kernel handoff needs net.ipv4.tcp_syncookies=1 or 2 in this network namespace (the kernel makes each child on its cookie path); set it with `sysctl -w net.ipv4.tcp_syncookies=1`, or use --accept log");
    }
    let mut notes = Vec::new();
    for s in specs.iter_mut() {
        type Check = (&'static str, bool, bool, fn(&mut ListenerConfig));
        let checks: [Check; 4] = [
            (
                "tcp_timestamps",
                s.config.timestamps != 0,
                s.given.timestamps,
                |c| c.timestamps = 0,
            ),
            ("tcp_sack", s.config.sack, s.given.sack, |c| c.sack = false),
            (
                "tcp_window_scaling",
                s.config.window_scaling,
                s.given.window_scaling,
                |c| c.window_scaling = false,
            ),
            ("tcp_ecn", s.config.ecn != 0, false, |c| c.ecn = 0),
        ];
        for (key, on, given, off) in checks {
            if on && sysctl(&format!("net.ipv4.{key}")) == Some(0) {
                if given {
                    bail!("listener {}: {key}=1 given, but net.ipv4.{key}=0 in this namespace: the kernel would refuse every handoff (set the sysctl, or drop the key)", s.addr);
                }
                off(&mut s.config);
                notes.push(format!(
                    "listener {}: {key} off, as net.ipv4.{key}=0 here",
                    s.addr
                ));
            }
        }
    }
    Ok(notes)
}

/// One synline listener and the application listener behind it.
#[derive(Clone)]
pub struct AppListener {
    pub addr: SocketAddr,
    spec: ListenerSpec,
    listener: Arc<Listener>,
    base: ListenerConfig,
    backlog: u32,
    given: Given,
    somaxconn: u32,
    /// The inode of the kernel listener serving it, when there is one.
    serving: Option<u32>,
    /// The application's accept queue as last seen: (ack_backlog, max_ack_backlog).
    pub app_queue: Option<(u32, u32)>,
}

impl AppListener {
    pub fn new(spec: &ListenerSpec, listener: Arc<Listener>, somaxconn: u32) -> Self {
        AppListener {
            addr: spec.addr,
            spec: spec.clone(),
            base: listener.config(),
            backlog: listener.backlog(),
            listener,
            given: spec.given,
            somaxconn,
            serving: None,
            app_queue: None,
        }
    }

    /// Whether this watch was made for `spec` (a reload keeps it then).
    pub fn spec_is(&self, spec: &ListenerSpec) -> bool {
        self.spec == *spec
    }

    /// Whether an application listens.
    pub fn serving(&self) -> bool {
        self.serving.is_some()
    }
}

/// A change in words, for the log.
pub fn describe(c: &Change) -> String {
    match c {
        Change::Up(addr, k, took) => format!(
            "{addr}: the application listens ({} backlog {}): its SYNs go to the engine, its connections to its accept(); {took}",
            k.addr, k.max_ack_backlog
        ),
        Change::Down(addr) => format!(
            "{addr}: no application listens: its SYNs go to the kernel, which resets them"
        ),
    }
}

/// What one look changed, for the log.
pub enum Change {
    Up(SocketAddr, KernelListener, String),
    Down(SocketAddr),
}

/// Looks at the kernel's listeners once and brings the XDP map and the engine listeners in
/// line (module docs). `first`: every listener is reported, and those nobody serves leave
/// the map.
pub fn poll(
    diag: &mut SockDiag,
    apps: &mut [AppListener],
    prog: &XdpProgram,
    first: bool,
) -> Result<Vec<Change>> {
    let kernel = diag.listeners()?;
    let mut changes = Vec::new();
    for a in apps.iter_mut() {
        let now = kernel_listener::serving(&kernel, a.addr).copied();
        a.app_queue = now.map(|k| (k.ack_backlog, k.max_ack_backlog));
        match (a.serving, now) {
            (_, Some(k)) => {
                a.listener
                    .set_embedder_queue(Some((k.ack_backlog, k.max_ack_backlog)));
                if a.serving != Some(k.inode) {
                    let what = adopt(a, &k);
                    if a.serving.is_none() {
                        prog.add_listener(a.addr)?;
                    }
                    a.serving = Some(k.inode);
                    changes.push(Change::Up(a.addr, k, what));
                }
            }
            (Some(_), None) => {
                prog.remove_listener(a.addr)?;
                a.listener.set_embedder_queue(None);
                a.serving = None;
                changes.push(Change::Down(a.addr));
            }
            (None, None) => {
                if first {
                    prog.remove_listener(a.addr)?;
                    changes.push(Change::Down(a.addr));
                }
            }
        }
    }
    Ok(changes)
}

/// Takes the application socket's settings where it has them and `--listen` did not give
/// them: the backlog (`sk_max_ack_backlog`, already capped by the kernel's somaxconn),
/// TCP_DEFER_ACCEPT and TCP_MAXSEG. Returns what was taken, for the log.
fn adopt(a: &AppListener, k: &KernelListener) -> String {
    let mut c = a.base;
    let mut took = Vec::new();
    if !a.given.backlog {
        let b = k.max_ack_backlog.min(a.somaxconn);
        a.listener.set_backlog(b);
        took.push(format!("backlog={b}"));
    } else {
        a.listener.set_backlog(a.backlog);
    }
    if let Some(o) = kernel_listener::app_socket_options(k.inode) {
        if !a.given.defer_accept {
            c.defer_accept_secs = o.defer_accept_secs;
            took.push(format!("TCP_DEFER_ACCEPT={}", o.defer_accept_secs));
        }
        if !a.given.maxseg {
            c.maxseg = o.maxseg.unwrap_or(0);
            if let Some(m) = o.maxseg {
                took.push(format!("TCP_MAXSEG={m}"));
            }
        }
    } else {
        took.push("(its socket options could not be read)".to_owned());
    }
    if c.validate().is_ok() {
        a.listener.set_config(&c);
    }
    took.join(" ")
}
