//! `--metrics ADDR:PORT`: the counters and gauges in Prometheus' text exposition format
//! (version 0.0.4), on `GET /metrics`; `GET /healthz` answers 200 while the daemon runs its
//! workers (what a routing daemon's health check ties an anycast announcement to).
//!
//! Names: every nstat counter becomes `synline_<snake_case>_total` with the nstat name in its
//! HELP (`TcpExtSyncookiesSent` -> `synline_tcp_ext_syncookies_sent_total`); per-queue
//! counters carry a `queue` label; per-listener gauges a `listener` label:
//!
//! ```text
//! synline_listener_syn_queue{listener="198.18.0.1:80"}        qlen
//! synline_listener_young{...}                                 young
//! synline_listener_backlog{...}                               B
//! synline_listener_accept_queue{...}                          the engine's accept list
//! synline_listener_app_up{...}                                an application listens (handoff)
//! synline_listener_app_accept_queue{...}                      its kernel accept queue
//! synline_listener_app_accept_queue_max{...}                  ... and that queue's bound
//! ```
//!
//! A small HTTP/1.0 server on one thread: a scrape is a few kilobytes every few seconds.

use crate::stats::View;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `TcpExtTCPReqQFullDrop` -> `tcp_ext_tcp_req_q_full_drop`: a word starts at an upper-case
/// letter after a lower-case one or a digit, and at the last capital of a run followed by a
/// lower-case letter (`TCPSyn` -> `tcp_syn`).
pub fn snake(name: &str) -> String {
    let c: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The Prometheus name of an nstat counter.
pub fn metric_name(nstat: &str) -> String {
    let s = snake(nstat);
    let s = s.strip_prefix("synline_").unwrap_or(&s);
    format!("synline_{s}_total")
}

/// The exposition text of `view`.
pub fn render(view: &View) -> String {
    let mut out = String::new();
    let s = &view.latest;
    for (n, v) in &s.counters {
        // The one value among them that is a state, not a count.
        if n == "SynlineTcLastAssignErrno" {
            let _ = writeln!(out, "# HELP synline_tc_last_assign_errno the last errno bpf_sk_assign_tcp_reqsk() returned (0: none)\n# TYPE synline_tc_last_assign_errno gauge\nsynline_tc_last_assign_errno {v}");
            continue;
        }
        let m = metric_name(n);
        let _ = writeln!(out, "# HELP {m} nstat {n}\n# TYPE {m} counter\n{m} {v}");
    }
    // Per-queue counters: one family per name, a sample per queue.
    if let Some(first) = s.queues.first() {
        for (i, (n, _)) in first.iter().enumerate() {
            let m = metric_name(n);
            let _ = writeln!(
                out,
                "# HELP {m} nstat {n}Q<queue>, per rx queue\n# TYPE {m} counter"
            );
            for (q, c) in s.queues.iter().enumerate() {
                if let Some((_, v)) = c.get(i) {
                    let _ = writeln!(out, "{m}{{queue=\"{q}\"}} {v}");
                }
            }
        }
    }
    type Gauge = (
        &'static str,
        &'static str,
        fn(&crate::stats::ListenerGauges) -> Option<u64>,
    );
    let gauges: [Gauge; 7] = [
        ("syn_queue", "request socks of the listener (qlen)", |l| {
            Some(l.qlen.into())
        }),
        (
            "young",
            "requests without a SYN-ACK retransmission (young)",
            |l| Some(l.young.into()),
        ),
        ("backlog", "the listener's backlog B", |l| {
            Some(l.backlog.into())
        }),
        (
            "accept_queue",
            "children in the engine's accept list",
            |l| Some(l.accept_queue.into()),
        ),
        (
            "app_up",
            "1 when an application listens behind the listener (--accept kernel)",
            |l| l.app.map(|(up, _, _)| u64::from(up)),
        ),
        (
            "app_accept_queue",
            "the application's kernel accept queue (sk_ack_backlog)",
            |l| l.app.map(|(_, q, _)| q.into()),
        ),
        (
            "app_accept_queue_max",
            "the application's accept queue bound (sk_max_ack_backlog)",
            |l| l.app.map(|(_, _, m)| m.into()),
        ),
    ];
    for (name, help, get) in gauges {
        let samples: Vec<(String, u64)> = s
            .listeners
            .iter()
            .filter_map(|l| get(l).map(|v| (l.addr.to_string(), v)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        let m = format!("synline_listener_{name}");
        let _ = writeln!(out, "# HELP {m} {help}\n# TYPE {m} gauge");
        for (addr, v) in samples {
            let _ = writeln!(out, "{m}{{listener=\"{addr}\"}} {v}");
        }
    }
    out
}

/// The bound endpoint (bound before anything is attached, so a taken port fails the start).
pub struct Metrics {
    listener: TcpListener,
}

impl Metrics {
    pub fn bind(addr: SocketAddr) -> Result<Metrics> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("--metrics {addr}: bind"))?;
        Ok(Metrics { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop`. `healthy` says whether the workers run.
    pub fn serve(
        self,
        view: Arc<Mutex<View>>,
        healthy: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> Result<()> {
        self.listener
            .set_nonblocking(true)
            .context("metrics: set_nonblocking")?;
        std::thread::Builder::new()
            .name("synline-metrics".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match self.listener.accept() {
                        Ok((c, _)) => {
                            // A thread per scrape: a client that trickles its request cannot
                            // hold up /healthz for the next (each ends within a second).
                            let (view, healthy) = (view.clone(), healthy.clone());
                            let _ = std::thread::Builder::new()
                                .name("synline-scrape".into())
                                .spawn(move || answer(c, &view, &healthy));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .context("spawn the metrics thread")?;
        Ok(())
    }
}

fn answer(c: TcpStream, view: &Mutex<View>, healthy: &AtomicBool) -> std::io::Result<()> {
    c.set_nonblocking(false)?;
    c.set_read_timeout(Some(Duration::from_millis(500)))?;
    c.set_write_timeout(Some(Duration::from_secs(1)))?;
    // At most 8 KB of request: the line, and headers read and ignored up to the blank line.
    let mut r = BufReader::new(std::io::Read::take(c.try_clone()?, 8192));
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut h = String::new();
    while r.read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            view.lock().map(|v| render(&v)).unwrap_or_default(),
        ),
        ("GET", "/healthz") if healthy.load(Ordering::Relaxed) => {
            ("200 OK", "text/plain", "ok\n".to_owned())
        }
        ("GET", "/healthz") => (
            "503 Service Unavailable",
            "text/plain",
            "stopping\n".to_owned(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "synline serves /metrics and /healthz\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let mut w = c;
    write!(
        w,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ListenerGauges, Sample};

    #[test]
    fn nstat_names_become_snake_case_counters() {
        for (n, m) in [
            (
                "TcpExtSyncookiesSent",
                "synline_tcp_ext_syncookies_sent_total",
            ),
            (
                "TcpExtTCPReqQFullDrop",
                "synline_tcp_ext_tcp_req_q_full_drop_total",
            ),
            ("TcpPassiveOpens", "synline_tcp_passive_opens_total"),
            ("SynlineXskRxFrames", "synline_xsk_rx_frames_total"),
            ("TCPSynRetrans", "synline_tcp_syn_retrans_total"),
            ("SynlineDropIpv6ExtHdr", "synline_drop_ipv6_ext_hdr_total"),
        ] {
            assert_eq!(metric_name(n), m);
        }
    }

    #[test]
    fn exposition_has_counters_queues_and_listener_gauges() {
        let mut v = View::default();
        v.update(Sample {
            counters: vec![("TcpExtSyncookiesSent".into(), 5)],
            queues: vec![
                vec![("SynlineXskRxFrames", 3)],
                vec![("SynlineXskRxFrames", 4)],
            ],
            listeners: vec![ListenerGauges {
                addr: "198.18.0.1:80".parse().unwrap(),
                qlen: 7,
                young: 6,
                backlog: 4096,
                accept_queue: 0,
                app: Some((true, 1, 511)),
            }],
        });
        let t = render(&v);
        for want in [
            "# TYPE synline_tcp_ext_syncookies_sent_total counter\nsynline_tcp_ext_syncookies_sent_total 5\n",
            "synline_xsk_rx_frames_total{queue=\"0\"} 3\nsynline_xsk_rx_frames_total{queue=\"1\"} 4\n",
            "synline_listener_syn_queue{listener=\"198.18.0.1:80\"} 7\n",
            "synline_listener_app_accept_queue_max{listener=\"198.18.0.1:80\"} 511\n",
        ] {
            assert!(t.contains(want), "{want}\n---\n{t}");
        }
    }
}
