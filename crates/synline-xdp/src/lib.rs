//! `synline-xdp`: where synline meets the NIC.
//!
//! - [`xdp_prog`]: the loader of the XDP program of `bpf/synline.bpf.c` (compiled by
//!   `build.rs` into a libbpf skeleton): it redirects exactly the TCP segments addressed to a
//!   configured listener to the rx queue's AF_XDP socket and passes everything else (ARP, ICMP,
//!   other ports) to the kernel, counting why.
//! - [`xsk`]: one AF_XDP socket per (interface, rx queue) with its UMEM and its fill,
//!   completion, RX and TX rings ([`XskQueue`]); the bind mode (zero-copy or copy) is chosen by
//!   the kernel unless forced, and reported.
//! - [`datapath`]: the poll-mode worker of one queue: batched RX into the `synline-core`
//!   engine, each reply sent in the frame that brought the segment, timer retransmissions from
//!   a reserve of frames ([`datapath::run`]).
//!
//! Start-up, in this order: [`XdpProgram::load`], [`XdpProgram::add_listener`],
//! [`XdpProgram::attach`], then for every rx queue of the interface [`XskQueue::new`] and
//! [`XdpProgram::set_socket`] (a queue without a socket has its listener traffic answered by
//! the kernel), then one thread per queue running [`datapath::run`]. The program stays on the
//! thread that loaded it; the queues move to their workers.
//!
//! Everything here needs root (or CAP_BPF + CAP_NET_ADMIN) at run time; errors name the failing
//! libbpf call and the interface, queue or listener it was about.
#![warn(missing_docs)]
// `unsafe` lives only in the generated skeleton and the AF_XDP modules, each block with a
// `// SAFETY:` line.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod bpf;
pub mod datapath;
#[allow(unsafe_code)]
mod syscall;
pub mod xdp_prog;
#[allow(unsafe_code)]
pub mod xsk;

pub use datapath::{Datapath, DatapathConfig, QueueCounters, QueueStats};
pub use xdp_prog::{AttachMode, XdpAction, XdpCounters, XdpError, XdpProgram};
pub use xsk::{
    monotonic_now, pin_current_thread, set_fifo_priority, BindMode, BusyPoll, XskConfig, XskError,
    XskKernelStats, XskMode, XskQueue,
};
