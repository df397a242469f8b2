//! `synline-xdp`: where synline meets the NIC.
//!
//! - [`xdp_prog`]: the loader of the XDP program of `bpf/synline.bpf.c` (compiled by
//!   `build.rs` into a libbpf skeleton): it redirects exactly the TCP segments addressed to a
//!   configured listener to the rx queue's AF_XDP socket and passes everything else (ARP, ICMP,
//!   other ports) to the kernel, counting why.
//! - The AF_XDP side (UMEM, sockets, one worker per queue running the `synline-core` engine) comes
//!   in its own modules.
//!
//! Everything here needs root (or CAP_BPF + CAP_NET_ADMIN) at run time; errors name the failing
//! libbpf call and the interface, queue or listener it was about.
#![warn(missing_docs)]

mod bpf;
pub mod xdp_prog;

pub use xdp_prog::{AttachMode, XdpAction, XdpCounters, XdpError, XdpProgram};
