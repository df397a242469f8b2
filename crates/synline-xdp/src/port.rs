//! A port: synline on one interface. The one owner of the datapath's composition, so that the
//! daemon, the bench tools and the tests keep only their settings, their per-round hook and
//! their output.
//!
//! ```text
//!  Port::open(PortConfig)                      Port::spawn(stack, WorkerConfig, stop, hook)
//!   1. resolve the ifindex and RX queues once     one thread "<name>-q<i>" per queue:
//!   2. load the XDP program, fill its               pin (cpus[i % n]), SCHED_FIFO,
//!      listener map, attach it                      loop { Datapath::poll_once(now);
//!   3. one XskQueue per RX queue, each in                  hook(&mut RoundCtx);
//!      the XSKMAP                                          Datapath::idle() }
//!                                                   until `stop` or a socket error
//!  Port::close(): detach (also on drop)
//! ```
//!
//! The program stays with the `Port` on the thread that opened it (libbpf's object is not
//! `Send`); the queues move to their workers. Every step names what failed, and a failure after
//! the attach detaches again before returning (the program's `Drop`), so nothing is left on
//! the interface.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use synline_core::{Stack, Worker};

use crate::datapath::{Datapath, DatapathConfig, QueueHook, QueueStats, Round};
use crate::iface::{self, IfaceError};
use crate::sched::{self, SchedError};
use crate::xdp_prog::{AttachMode, XdpCounters, XdpError, XdpProgram};
use crate::xsk::{XskConfig, XskError, XskKernelStats, XskMode, XskQueue};

/// What to open: the interface, the listeners its XDP program redirects, and how to attach
/// and bind.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// The interface, in the current network namespace.
    pub iface: String,
    /// The addresses whose TCP segments go to the AF_XDP sockets (an unspecified address is
    /// the wildcard of its family).
    pub listeners: Vec<SocketAddr>,
    /// How to attach the XDP program.
    pub attach: AttachMode,
    /// Each queue's socket and UMEM.
    pub xsk: XskConfig,
    /// Pass segments of kernel-owned connections from the first frame on (the kernel
    /// handoff): set before the attach, so that a restart in front of a serving application
    /// sends none of its live connections' segments to sockets nobody reads yet.
    pub kernel_flows: bool,
}

/// How the workers run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Thread names are `<name>-q<queue>`.
    pub name: String,
    /// Pin queue i's worker to `cpus[i % len]`; no pinning when empty.
    pub cpus: Vec<usize>,
    /// Run the workers under SCHED_FIFO at this priority (see [`sched::set_fifo_priority`]).
    pub sched_fifo: Option<i32>,
    /// The poll loop's settings.
    pub datapath: DatapathConfig,
    /// The reply ceiling instead of the engine: every received frame is sent straight back,
    /// addresses swapped ([`Datapath::reflect_once`]); the stack's workers are left alone.
    /// For benchmarks (`synline-rxdrop --reflect`), never for service.
    pub reflector: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "synline".to_owned(),
            cpus: Vec::new(),
            sched_fifo: None,
            datapath: DatapathConfig::default(),
            reflector: false,
        }
    }
}

/// A step of opening or running a port failed.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The interface is not there.
    #[error(transparent)]
    Iface(#[from] IfaceError),
    /// Loading the XDP program.
    #[error("load the XDP program: {0}")]
    Load(#[source] XdpError),
    /// Putting a listener in the program's map.
    #[error("add listener {addr} to the XDP map: {source}")]
    Listener {
        /// The listener.
        addr: SocketAddr,
        /// Why.
        source: XdpError,
    },
    /// Attaching the program (EBUSY/EEXIST: a program is already attached).
    #[error("attach XDP to {iface}: {source}")]
    Attach {
        /// Interface.
        iface: String,
        /// Why.
        source: XdpError,
    },
    /// Registering a queue's socket in the XSKMAP.
    #[error("put queue {queue}'s socket in the XSKMAP: {source}")]
    XskMap {
        /// rx queue.
        queue: u32,
        /// Why.
        source: XdpError,
    },
    /// Detaching the program.
    #[error("detach the XDP program from {iface}: {source}")]
    Detach {
        /// Interface.
        iface: String,
        /// Why.
        source: XdpError,
    },
    /// An AF_XDP socket: binding it, or a call on it in the data path.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// Pinning or scheduling a worker.
    #[error(transparent)]
    Sched(#[from] SchedError),
    /// The engine has no worker for this queue (its `StackConfig::workers` is too small).
    #[error("the engine has no worker {queue} (StackConfig::workers is smaller than the {queues} queue(s) of the port)")]
    NoEngineWorker {
        /// rx queue.
        queue: u32,
        /// The port's queues.
        queues: u32,
    },
    /// The queues were already handed to workers.
    #[error("the port's workers were already spawned")]
    AlreadySpawned,
    /// `std::thread::Builder::spawn`.
    #[error("spawn the worker thread of queue {queue}: {source}")]
    Spawn {
        /// rx queue.
        queue: u32,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("the worker thread of queue {queue} panicked")]
    Panicked {
        /// rx queue.
        queue: u32,
    },
}

/// One queue's counters: the worker's own, and the kernel's for its AF_XDP socket
/// (`getsockopt(XDP_STATISTICS)`): frames the kernel dropped before the socket saw them, for a
/// full RX ring or an empty fill ring, which no user-space counter can see. The worker refreshes
/// the kernel's every 1024 rounds, at least once a second, and when it stops.
#[derive(Debug, Default)]
pub struct QueueShared {
    /// The worker's counters.
    pub worker: QueueStats,
    kernel: Mutex<XskKernelStats>,
}

impl QueueShared {
    /// The kernel's counters as last read.
    pub fn kernel(&self) -> XskKernelStats {
        self.kernel.lock().map(|k| *k).unwrap_or_default()
    }

    fn read_kernel(&self, xsk: &XskQueue) {
        if let (Ok(k), Ok(mut slot)) = (xsk.kernel_stats(), self.kernel.lock()) {
            *slot = k;
        }
    }

    /// Both sets of counters under their nstat names (`SynlineXskRxFrames`), for one queue.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = self.worker.snapshot().named().to_vec();
        let k = self.kernel();
        out.extend([
            ("SynlineXskKernRxDropped", k.rx_dropped),
            ("SynlineXskKernRxRingFull", k.rx_ring_full),
            ("SynlineXskKernFillRingEmpty", k.rx_fill_ring_empty),
            ("SynlineXskKernRxInvalidDescs", k.rx_invalid_descs),
            ("SynlineXskKernTxInvalidDescs", k.tx_invalid_descs),
        ]);
        out
    }

    /// [`QueueShared::counters`] with the names suffixed by the queue (`SynlineXskRxFramesQ0`).
    pub fn named(&self, queue: u32) -> Vec<(String, u64)> {
        self.counters()
            .into_iter()
            .map(|(n, v)| (format!("{n}Q{queue}"), v))
            .collect()
    }
}

/// What the per-round hook gets: the queue's engine worker, its socket and loop, the round's
/// `now` and what the round did. The daemon drains accept lists here; a bench tool may do
/// nothing.
pub struct RoundCtx<'a> {
    /// The rx queue.
    pub queue: u32,
    /// The engine's worker of this queue.
    pub engine: &'a mut Worker,
    /// The round's time (the engine's clock).
    pub now: Duration,
    /// What the round did.
    pub round: Round,
    datapath: &'a mut Datapath,
    xsk: &'a mut XskQueue,
}

impl RoundCtx<'_> {
    /// Writes a frame that no received frame carries (a child's RST, say) into a free frame
    /// and queues it for TX: see [`Datapath::originate`].
    pub fn originate(
        &mut self,
        write: impl FnOnce(&mut Worker, &mut [u8]) -> Option<usize>,
    ) -> bool {
        let engine = &mut *self.engine;
        self.datapath.originate(self.xsk, |buf| write(engine, buf))
    }
}

/// synline on one interface: the attached program and, until [`Port::spawn`], the queues.
#[derive(Debug)]
pub struct Port {
    iface: String,
    ifindex: u32,
    mode: AttachMode,
    prog: XdpProgram,
    queues: Vec<XskQueue>,
    queue_modes: Vec<XskMode>,
    shared: Vec<Arc<QueueShared>>,
}

impl Port {
    /// Resolves the interface, loads the program with `cfg.listeners` in its map, attaches it,
    /// and binds one AF_XDP socket per RX queue, each registered in the XSKMAP.
    pub fn open(cfg: &PortConfig) -> Result<Port, PortError> {
        let ifindex = iface::ifindex(&cfg.iface)?;
        let n = iface::rx_queues(&cfg.iface)?;
        let mut prog = XdpProgram::load().map_err(PortError::Load)?;
        prog.set_kernel_flows(cfg.kernel_flows)
            .map_err(PortError::Load)?;
        for &addr in &cfg.listeners {
            prog.add_listener(addr)
                .map_err(|source| PortError::Listener { addr, source })?;
        }
        let mode = prog
            .attach(ifindex, cfg.attach)
            .map_err(|source| PortError::Attach {
                iface: cfg.iface.clone(),
                source,
            })?;
        // From here on, an early return drops `prog`, which detaches it.
        let mut queues = Vec::with_capacity(n as usize);
        for q in 0..n {
            let x = XskQueue::new(&cfg.iface, q, &cfg.xsk)?;
            prog.set_socket(q, x.fd())
                .map_err(|source| PortError::XskMap { queue: q, source })?;
            queues.push(x);
        }
        Ok(Port {
            iface: cfg.iface.clone(),
            ifindex,
            mode,
            queue_modes: queues.iter().map(|q| q.mode()).collect(),
            shared: (0..n).map(|_| Arc::default()).collect(),
            queues,
            prog,
        })
    }

    /// The interface's name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The mode the program was attached in (never `Auto`).
    pub fn attach_mode(&self) -> AttachMode {
        self.mode
    }

    /// The number of RX queues, each with its socket and, once spawned, its worker.
    pub fn queue_count(&self) -> u32 {
        self.shared.len() as u32
    }

    /// The bind mode each queue's socket got, read back from the kernel.
    pub fn queue_modes(&self) -> &[XskMode] {
        &self.queue_modes
    }

    /// The attached program (its maps and counters).
    pub fn program(&self) -> &XdpProgram {
        &self.prog
    }

    /// The attached program, to attach more to it (the kernel handoff's TC side).
    pub fn program_mut(&mut self) -> &mut XdpProgram {
        &mut self.prog
    }

    /// The XDP program's counters.
    pub fn xdp_counters(&self) -> Result<XdpCounters, XdpError> {
        self.prog.counters()
    }

    /// Each queue's counters, by queue.
    pub fn queue_shared(&self) -> &[Arc<QueueShared>] {
        &self.shared
    }

    /// Every queue's counters with nstat names.
    pub fn queue_counters(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (q, s) in self.shared.iter().enumerate() {
            out.extend(s.named(q as u32));
        }
        out
    }

    /// Starts one worker thread per queue, each running `stack`'s worker of the same index
    /// until `stop` is set or its socket fails. `hook(queue)` makes each worker's
    /// [`QueueHook`] (a closure over [`RoundCtx`] is one: it runs after every round).
    pub fn spawn<H>(
        &mut self,
        stack: &Stack,
        cfg: &WorkerConfig,
        stop: Arc<AtomicBool>,
        mut hook: impl FnMut(u32) -> H,
    ) -> Result<Workers, PortError>
    where
        H: QueueHook + 'static,
    {
        if self.queues.is_empty() {
            return Err(PortError::AlreadySpawned);
        }
        let n = self.queue_count();
        let mut engines = Vec::with_capacity(n as usize);
        for q in 0..n {
            let w = stack.worker(q as usize).ok_or(PortError::NoEngineWorker {
                queue: q,
                queues: n,
            })?;
            engines.push(w);
        }
        let mut threads = Vec::with_capacity(n as usize);
        for ((q, xsk), engine) in (0..n).zip(self.queues.drain(..)).zip(engines) {
            let cpu = (!cfg.cpus.is_empty()).then(|| cfg.cpus[q as usize % cfg.cpus.len()]);
            let ctx = WorkerLoop {
                queue: q,
                xsk,
                engine,
                datapath: Datapath::new(cfg.datapath),
                shared: self.shared[q as usize].clone(),
                stop: stop.clone(),
                cpu,
                sched_fifo: cfg.sched_fifo,
                reflector: cfg.reflector,
            };
            let h = hook(q);
            let t = std::thread::Builder::new()
                .name(format!("{}-q{q}", cfg.name))
                .spawn(move || ctx.run(h));
            match t {
                Ok(t) => threads.push(t),
                Err(source) => {
                    // The ones already running stop and are joined (Workers' Drop).
                    drop(Workers {
                        threads,
                        stop: stop.clone(),
                    });
                    return Err(PortError::Spawn { queue: q, source });
                }
            }
        }
        Ok(Workers { threads, stop })
    }

    /// Detaches the program from the interface (dropping the port does too, errors ignored).
    pub fn close(mut self) -> Result<(), PortError> {
        self.prog.detach_all().map_err(|source| PortError::Detach {
            iface: self.iface.clone(),
            source,
        })
    }
}

/// The running workers of a port.
#[derive(Debug)]
pub struct Workers {
    threads: Vec<JoinHandle<Result<(), PortError>>>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    /// Asks every worker to stop after its current round.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a worker has ended (by `stop`, or by an error its [`Workers::join`] returns).
    pub fn any_finished(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// Stops and joins every worker; the first error.
    pub fn join(mut self) -> Result<(), PortError> {
        self.stop();
        let mut first = Ok(());
        for (q, t) in std::mem::take(&mut self.threads).into_iter().enumerate() {
            let r = t
                .join()
                .unwrap_or(Err(PortError::Panicked { queue: q as u32 }));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for Workers {
    /// Workers never outlive their handle: an early return between `spawn` and `join`
    /// stops and joins them (within one idle wait).
    fn drop(&mut self) {
        self.stop();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One queue's worker thread.
struct WorkerLoop {
    queue: u32,
    xsk: XskQueue,
    engine: Worker,
    datapath: Datapath,
    shared: Arc<QueueShared>,
    stop: Arc<AtomicBool>,
    cpu: Option<usize>,
    sched_fifo: Option<i32>,
    reflector: bool,
}

impl WorkerLoop {
    fn run(mut self, mut hook: impl QueueHook) -> Result<(), PortError> {
        if let Some(c) = self.cpu {
            sched::pin_current_thread(c)?;
        }
        if let Some(p) = self.sched_fifo {
            sched::set_fifo_priority(p)?;
        }
        let mut rounds = 0u32;
        let mut kernel_read = sched::monotonic_now();
        let r = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let now = sched::monotonic_now();
            let round = if self.reflector {
                self.datapath
                    .reflect_once(&mut self.xsk, &self.shared.worker)
            } else {
                self.datapath.poll_once(
                    &mut self.xsk,
                    &mut self.engine,
                    now,
                    &self.shared.worker,
                    &mut hook,
                )
            };
            let round = match round {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            hook.after_round(&mut RoundCtx {
                queue: self.queue,
                engine: &mut self.engine,
                now,
                round,
                datapath: &mut self.datapath,
                xsk: &mut self.xsk,
            });
            rounds = rounds.wrapping_add(1);
            // Every 1024 rounds under load, and at least each second when idle rounds sleep.
            if rounds.is_multiple_of(1024)
                || now.saturating_sub(kernel_read) >= Duration::from_secs(1)
            {
                self.shared.read_kernel(&self.xsk);
                kernel_read = now;
            }
            if let Err(e) = self.datapath.idle(&mut self.xsk, &self.engine, round, now) {
                break Err(e);
            }
        };
        self.shared.read_kernel(&self.xsk);
        r.map_err(PortError::from)
    }
}
