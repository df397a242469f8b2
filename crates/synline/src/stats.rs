//! The daemon's counters as operators read them: `synline stats` (nstat's format, from a unix
//! socket) and the Prometheus endpoint (metrics.rs) render the same [`View`], which the main
//! loop refreshes every 50 ms and keeps one second of history of, for the rate column.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where each daemon's stats socket lives: `/run/synline/IFACE.sock`, one per interface (a
/// second daemon on the same interface could not attach anyway).
pub const SOCKET_DIR: &str = "/run/synline";

/// The default stats socket of the daemon on `iface`.
pub fn default_socket(iface: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{iface}.sock"))
}

/// One listener's gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerGauges {
    pub addr: SocketAddr,
    /// qlen: request socks (the SYN queue).
    pub qlen: u32,
    /// young: requests that have not had a SYN-ACK retransmitted.
    pub young: u32,
    /// B.
    pub backlog: u32,
    /// Children in the engine's accept list.
    pub accept_queue: u32,
    /// With `--accept kernel`: whether an application listens, and its kernel accept queue
    /// (`sk_ack_backlog`, `sk_max_ack_backlog`).
    pub app: Option<(bool, u32, u32)>,
}

/// Everything counted at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Every counter under its nstat name (the engine's, the XDP program's, the handoff's, the
    /// output's).
    pub counters: Vec<(String, u64)>,
    /// Per-queue counters (unsuffixed names), by queue.
    pub queues: Vec<Vec<(&'static str, u64)>>,
    pub listeners: Vec<ListenerGauges>,
}

/// The latest sample, and one about a second older for rates.
#[derive(Debug)]
pub struct View {
    pub latest: Sample,
    latest_at: Instant,
    older: Option<(Sample, Instant)>,
    newest_old: Option<(Sample, Instant)>,
}

impl Default for View {
    fn default() -> Self {
        View {
            latest: Sample::default(),
            latest_at: Instant::now(),
            older: None,
            newest_old: None,
        }
    }
}

impl View {
    /// Takes a new sample; keeps the previous second's for rates.
    pub fn update(&mut self, s: Sample) {
        let now = Instant::now();
        // Keep a sample between 1 and 2 s old as the rate base.
        match &self.newest_old {
            Some((_, at)) if now.duration_since(*at) < Duration::from_secs(1) => {}
            _ => {
                self.older = self.newest_old.take();
                self.newest_old = Some((self.latest.clone(), self.latest_at));
            }
        }
        self.latest = s;
        self.latest_at = now;
    }

    /// Per-second rates of the counters over the last second or two (0 before that).
    pub fn rates(&self) -> Vec<f64> {
        let Some((old, at)) = self.older.as_ref().or(self.newest_old.as_ref()) else {
            return vec![0.0; self.latest.counters.len()];
        };
        let dt = self.latest_at.duration_since(*at).as_secs_f64();
        self.latest
            .counters
            .iter()
            .map(|(n, v)| {
                let before = old.counters.iter().find(|(m, _)| m == n).map_or(0, |x| x.1);
                if dt > 0.0 {
                    v.saturating_sub(before) as f64 / dt
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The whole view in nstat's layout: a `#synline` header, then name, value and rate;
    /// per-queue counters suffixed by their queue (`SynlineXskRxFramesQ0`).
    pub fn nstat(&self) -> String {
        let rates = self.rates();
        let mut rows: Vec<(String, u64, f64)> = self
            .latest
            .counters
            .iter()
            .zip(rates)
            .map(|((n, v), r)| (n.clone(), *v, r))
            .collect();
        let base = self.older.as_ref().or(self.newest_old.as_ref());
        let dt = base.map_or(0.0, |(_, at)| {
            self.latest_at.duration_since(*at).as_secs_f64()
        });
        for (q, c) in self.latest.queues.iter().enumerate() {
            rows.extend(c.iter().map(|(n, v)| {
                let before = base
                    .and_then(|(s, _)| s.queues.get(q))
                    .and_then(|old| old.iter().find(|(m, _)| m == n))
                    .map_or(0, |x| x.1);
                let r = if dt > 0.0 {
                    v.saturating_sub(before) as f64 / dt
                } else {
                    0.0
                };
                (format!("{n}Q{q}"), *v, r)
            }));
        }
        nstat_rows(&rows)
    }
}

/// nstat's layout for rows of (name, value, rate).
pub fn nstat_rows(rows: &[(String, u64, f64)]) -> String {
    let mut out = String::from("#synline\n");
    for (name, v, r) in rows {
        let _ = writeln!(out, "{name:<32}{v:<19}{r:.1}");
    }
    out
}

/// nstat's layout of a snapshot and extra counters, without rates (replay, the exit totals).
pub fn nstat(s: &synline_core::Snapshot, extra: &[(String, u64)]) -> String {
    let rows: Vec<(String, u64, f64)> = s
        .iter()
        .map(|(n, v)| (n.to_string(), v))
        .chain(extra.iter().cloned())
        .map(|(n, v)| (n, v, 0.0))
        .collect();
    nstat_rows(&rows)
}

/// The stats socket, checked and bound before anything is attached.
pub struct StatsSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatsSocket {
    /// Checks that `path` can be bound: its directory exists or can be made, and what is
    /// there already is a socket nobody answers on (a daemon that died). A live one (a daemon
    /// answers on it) and anything that is not a socket are refused: this runs as root and
    /// must not delete an operator's file.
    pub fn check(path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if dir.exists() && !dir.is_dir() {
                bail!(
                    "--stats-socket {}: {} is not a directory",
                    path.display(),
                    dir.display()
                );
            }
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "--stats-socket {}: create {}",
                    path.display(),
                    dir.display()
                )
            })?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(path).is_ok() {
                    bail!("--stats-socket {}: another synline answers on it (one daemon per interface; give this one its own --stats-socket)", path.display());
                }
                Ok(())
            }
            Ok(_) => bail!(
                "--stats-socket {}: the path exists and is not a socket; refusing to replace it",
                path.display()
            ),
            Err(_) => Ok(()),
        }
    }

    /// Binds `path` after [`StatsSocket::check`] (again: time passed), replacing a dead
    /// daemon's socket. The daemon binds it last, once it serves: its appearance says the
    /// daemon is up.
    pub fn bind(path: &Path) -> Result<StatsSocket> {
        StatsSocket::check(path)?;
        if path.exists() {
            std::fs::remove_file(path)
                .with_context(|| format!("remove the stale stats socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("bind the stats socket {}", path.display()))?;
        // Readable by the daemon's group too (an operator in group synline runs `synline
        // stats`), whatever the umask (the unit's is 0077).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .with_context(|| format!("chmod the stats socket {}", path.display()))?;
        Ok(StatsSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// Serves `view` in nstat's format, one snapshot per connection, until `stop`; removes
    /// the socket file then.
    pub fn serve(self, view: Arc<Mutex<View>>, stop: Arc<AtomicBool>) -> Result<()> {
        self.listener
            .set_nonblocking(true)
            .context("stats socket: set_nonblocking")?;
        std::thread::Builder::new()
            .name("synline-stats".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match self.listener.accept() {
                        Ok((mut c, _)) => {
                            let text = view.lock().map(|v| v.nstat()).unwrap_or_default();
                            let _ = c.set_write_timeout(Some(Duration::from_secs(1)));
                            let _ = c.write_all(text.as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
                let _ = std::fs::remove_file(&self.path);
            })
            .context("spawn the stats thread")?;
        Ok(())
    }
}

/// The socket `synline stats` reads: the given one, the interface's, or the only one in
/// [`SOCKET_DIR`].
pub fn find_socket(socket: Option<PathBuf>, iface: Option<&str>) -> Result<PathBuf> {
    if let Some(s) = socket {
        return Ok(s);
    }
    if let Some(i) = iface {
        return Ok(default_socket(i));
    }
    let found: Vec<PathBuf> = std::fs::read_dir(SOCKET_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no synline stats socket in {SOCKET_DIR} (is `synline run` running?)"),
        many => bail!(
            "several daemons run ({}): say which with --iface or --socket",
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nstat_layout() {
        let text = nstat(
            &synline_core::Snapshot::default(),
            &[("SynlineXdpRedirected".into(), 7)],
        );
        assert!(text.starts_with("#synline\n"));
        assert!(text.contains("TcpExtListenOverflows           0                  0.0\n"));
        assert!(text.contains("SynlineXdpRedirected            7                  0.0\n"));
    }

    /// The rate column shows what a counter did over the last second or so (it said 0.0
    /// whatever happened).
    #[test]
    fn rates_are_per_second_over_the_last_samples() {
        let mut v = View::default();
        let s = |n| Sample {
            counters: vec![("TcpExtSyncookiesSent".into(), n)],
            ..Sample::default()
        };
        v.update(s(0));
        std::thread::sleep(Duration::from_millis(300));
        v.update(s(300));
        let r = v.rates()[0];
        // 300 in ~0.3 s (scheduling can only make the interval longer).
        assert!(r > 100.0 && r <= 1000.0, "{r}");
        assert!(
            v.nstat().contains("TcpExtSyncookiesSent            300"),
            "{}",
            v.nstat()
        );
    }

    /// A path that is not a socket is refused and left alone; a dead daemon's socket is
    /// replaced; a live daemon's is refused.
    #[test]
    fn stats_socket_path_rules() {
        let d = std::env::temp_dir().join(format!("synline-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("precious");
        std::fs::write(&file, "keep me").unwrap();
        let e = StatsSocket::bind(&file).err().unwrap().to_string();
        assert!(e.contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        let sock = d.join("s.sock");
        let live = StatsSocket::bind(&sock).unwrap();
        let e = StatsSocket::bind(&sock).err().unwrap().to_string();
        assert!(e.contains("another synline answers"), "{e}");
        drop(live); // the file stays, nobody answers: stale
        assert!(sock.exists());
        StatsSocket::bind(&sock).unwrap();
        // A parent that is a file.
        let e = StatsSocket::bind(&file.join("x.sock"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
