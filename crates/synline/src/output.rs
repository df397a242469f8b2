//! The daemon's output, which never makes a worker (or the main loop) wait.
//!
//! A daemon whose stdout nobody reads must go on answering SYNs: when a worker wrote the
//! connection log itself, a full pipe blocked it in `pipe_write` and the datapath stopped
//! (connection 194 timed out), and SIGTERM could not end it. Here each stream (stdout for the
//! connection log, stderr for the log) is a bounded queue of lines and a writer thread; a
//! line that does not fit is dropped and counted (`SynlineConnLogDropped`,
//! `SynlineLogDropped`), never waited for. At exit the writers get a short grace to drain,
//! then the process leaves without them.
//!
//! The log is `tracing`'s, formatted as text or one JSON object a line, with timestamps and
//! levels; its writer is the stderr queue.

use crossbeam::channel::{bounded, Receiver, Sender, TrySendError};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines a stream holds while its reader is slow.
const QUEUE_LINES: usize = 1024;

/// One output stream: a bounded queue and the thread that writes it out.
#[derive(Clone)]
pub struct Stream {
    tx: Sender<String>,
    dropped: Arc<AtomicU64>,
}

/// The writer thread's end, to wait for at exit.
pub struct Drain {
    done: Receiver<()>,
}

impl Stream {
    /// A stream writing to `out` from its own thread.
    pub fn spawn(name: &str, mut out: impl Write + Send + 'static) -> (Stream, Drain) {
        let (tx, rx) = bounded::<String>(QUEUE_LINES);
        let (done_tx, done) = bounded::<()>(1);
        std::thread::Builder::new()
            .name(format!("synline-{name}"))
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    // Flushed when the queue runs dry: one write per burst, not per line.
                    // A failure is a reader gone (EPIPE): nothing more can be said there.
                    if out.write_all(line.as_bytes()).is_err()
                        || (rx.is_empty() && out.flush().is_err())
                    {
                        break;
                    }
                }
                let _ = out.flush();
                let _ = done_tx.send(());
            })
            .expect("spawn an output thread");
        (
            Stream {
                tx,
                dropped: Arc::default(),
            },
            Drain { done },
        )
    }

    /// Queues `line` (with its own line end); drops and counts it when the queue is full.
    pub fn send(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drain {
    /// Waits until every stream handle is dropped and the writer has written what it had, or
    /// until `deadline`. `false`: the reader is too slow and the rest is abandoned.
    pub fn wait(self, deadline: Instant) -> bool {
        self.done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

/// `tracing`'s writer: each formatted event goes to the stderr stream as one line.
#[derive(Clone)]
pub struct LogWriter(pub Stream);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event: time, level, message, fields.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`).
    Json,
}

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// And what an operator should look at (a refused reload, a replaced program).
    Warn,
    /// And the start, the listeners' changes, reloads, rotations, the status line.
    Info,
    /// And details.
    Debug,
}

/// Installs the log: `tracing` events at `level` and above, formatted as `format`, written
/// through the stderr stream. The first call wins (later ones are ignored).
pub fn init_log(stderr: &Stream, format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
    };
    let b = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(LogWriter(stderr.clone()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => b.with_ansi(false).try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-12-03T11:58:51.123456Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let t = |s: u64, us: u32| rfc3339(UNIX_EPOCH + Duration::new(s, us * 1000));
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(t(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(t(1_796_299_131, 123_456), "2026-12-03T11:58:51.123456Z");
    }

    /// A writer that never returns: lines past the queue are dropped and counted, and the
    /// sender never waits.
    #[test]
    fn a_stuck_reader_drops_lines_instead_of_blocking() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(0)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (s, drain) = Stream::spawn("test", Stuck);
        for i in 0..QUEUE_LINES + 100 {
            s.send(format!("{i}\n"));
        }
        // The writer holds one line, the queue QUEUE_LINES: at least 99 dropped.
        assert!(s.dropped() >= 99, "{}", s.dropped());
        drop(s);
        assert!(!drain.wait(Instant::now() + Duration::from_millis(50)));
    }
}
