//! `synline-xdp`: where synline meets the NIC.
//!
//! - [`port`]: the one owner of the datapath's composition. [`Port::open`] resolves the
//!   interface, loads and attaches the XDP program with the listeners in its map, and binds
//!   one AF_XDP socket per RX queue; [`Port::spawn`] runs one worker thread per queue (pinned,
//!   optionally SCHED_FIFO) with a per-round hook for the caller. The daemon, the bench tools
//!   and the end-to-end tests all start here.
//! - [`xdp_prog`]: the loader of the XDP program of `bpf/synline.bpf.c` (compiled by
//!   `build.rs` into a libbpf skeleton): it redirects exactly the TCP segments addressed to a
//!   configured listener to the rx queue's AF_XDP socket and passes everything else (ARP, ICMP,
//!   other ports) to the kernel, counting why.
//! - [`xsk`]: one AF_XDP socket per (interface, rx queue) with its UMEM and its fill,
//!   completion, RX and TX rings ([`XskQueue`]); the bind mode (zero-copy or copy) is chosen by
//!   the kernel unless forced, and reported.
//! - [`datapath`]: one round of a queue's poll loop: batched RX into the `synline-core`
//!   engine, each reply sent in the frame that brought the segment, timer retransmissions from
//!   a reserve of frames, and the idle wait until a frame or the engine's next timer.
//! - [`handoff`]: the kernel handoff: each connection the engine accepts becomes a socket of
//!   the application's own kernel listener (`bpf_sk_assign_tcp_reqsk()` in TC, the engine's
//!   last segment re-injected through a TAP).
//! - [`kernel_listener`]: the application's kernel listeners (sock_diag) and the socket
//!   options it set on them.
//! - [`sched`]: CPU pinning, SCHED_FIFO and the monotonic clock of the workers.
//! - [`iface`]: the interface's index and RX queue count.
//!
//! Everything here needs root (or CAP_BPF + CAP_NET_ADMIN) at run time; errors name the failing
//! call and the interface, queue or listener it was about.
#![warn(missing_docs)]
// `unsafe` lives only in the generated skeleton, the AF_XDP modules, the raw syscalls and the
// libbpf calls libbpf-rs does not wrap (link.rs), each block with a `// SAFETY:` line.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bpf;
pub mod datapath;
pub mod handoff;
pub mod iface;
pub mod kernel_listener;
#[allow(unsafe_code)]
pub mod link;
pub mod port;
pub mod sched;
#[allow(unsafe_code)]
mod syscall;
pub mod xdp_prog;
#[allow(unsafe_code)]
pub mod xsk;

pub use datapath::{Datapath, DatapathConfig, QueueCounters, QueueHook, QueueStats, Round};
pub use handoff::{HandoffFailure, HandoffSetupError, HandoffStats, KernelHandoff, QueueHandoff};
pub use iface::IfaceError;
pub use kernel_listener::{AppSocketOptions, KernelListener, SockDiag};
pub use link::Occupant;
pub use port::{Port, PortConfig, PortError, QueueShared, RoundCtx, WorkerConfig, Workers};
pub use sched::{monotonic_now, pin_current_thread, set_fifo_priority, SchedError};
pub use xdp_prog::{AttachMode, XdpAction, XdpCounters, XdpError, XdpProgram};
pub use xsk::{BindMode, BusyPoll, XskConfig, XskError, XskKernelStats, XskMode, XskQueue};
