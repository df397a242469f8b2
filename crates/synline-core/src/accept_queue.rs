//! Children and the per-listener accept list (spec section 9 and 11).
//!
//! The kernel's accept queue is a spinlocked FIFO with an atomic `sk_ack_backlog` beside it.
//! Here it is a lock-free MPMC queue (crossbeam's `SegQueue`), so any worker may append and
//! any application thread may `accept()`, with `ack_backlog` kept as the kernel keeps it. The
//! bound B + 1 (C-1, C-7) is enforced by reserving a place in `ack_backlog` with a
//! compare-and-swap before the push, so two workers racing at the limit cannot both get in:
//! the list never holds more than B + 1 children.
//!
//! Memory follows what is live, as the kernel's list does, not the configured bound: the
//! queue is a chain of 31-slot blocks, allocated as children arrive and freed as they are
//! accepted (one allocation per 31 children, none per packet otherwise). An array sized for
//! the largest B + 1 would preallocate somaxconn + 1 children per listener: 6.4 GB for a
//! somaxconn of 10^8, and an abort for 2^32 - 1.

use crate::flow::FlowKey;
use core::net::SocketAddr;
use core::sync::atomic::{AtomicU32, Ordering};
use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;
use synline_wire::SeqNumber;

/// State of a child when it is handed over (C-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// ESTABLISHED.
    Established,
    /// CLOSE_WAIT: the third ACK carried a FIN.
    CloseWait,
}

/// Timestamps of a child (RFC 7323).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildTimestamps {
    /// TS.Recent: the peer's last TSval we accepted.
    pub ts_recent: u32,
    /// Our offset: TSval = ms clock + ts_off.
    pub ts_off: u32,
    /// The TSecr of the segment that completed the handshake: our TSval it echoed. An
    /// embedder that continues the connection elsewhere (the kernel, through the daemon's
    /// handoff) continues its timestamps from it.
    pub ts_ecr: u32,
}

/// A connection that completed the handshake: everything an embedding TCP stack needs to take
/// over without guessing (C-2, C-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// Our address and port.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our MAC (the one the peer sent to).
    pub eth_local: [u8; 6],
    /// The peer's MAC.
    pub eth_peer: [u8; 6],
    /// 802.1Q TCI the handshake carried.
    pub vlan: Option<u16>,
    /// ISS.
    pub iss: SeqNumber,
    /// IRS.
    pub irs: SeqNumber,
    /// SND.NXT = ISS + 1 (C-2).
    pub snd_nxt: SeqNumber,
    /// RCV.NXT: IRS + 1, plus any data and FIN the third ACK carried in order.
    pub rcv_nxt: SeqNumber,
    /// SND.WND = the third ACK's window << peer shift (C-2).
    pub snd_wnd: u32,
    /// The window we announced in the SYN-ACK.
    pub rcv_wnd: u32,
    /// MSS the peer accepts (mss_clamp; from the cookie table for cookie children).
    pub mss: u16,
    /// Peer's window shift, if both sides scale.
    pub snd_wscale: Option<u8>,
    /// Our window shift (0 when the peer did not offer scaling).
    pub rcv_wscale: u8,
    /// SACK permitted.
    pub sack: bool,
    /// Timestamps, if negotiated.
    pub timestamps: Option<ChildTimestamps>,
    /// ECN negotiated.
    pub ecn: bool,
    /// Bytes that came with the third ACK at RCV.NXT (C-8). Empty for a bare ACK, and then
    /// nothing is allocated.
    pub data: Vec<u8>,
    /// ESTABLISHED or CLOSE_WAIT.
    pub state: ChildState,
    /// Made from a SYN cookie (K-7) rather than a request sock.
    pub from_cookie: bool,
}

impl Child {
    /// The child's 4-tuple as a table key.
    pub fn key(&self) -> FlowKey {
        let o = |a: SocketAddr| match a.ip() {
            core::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            core::net::IpAddr::V6(a) => a.octets(),
        };
        FlowKey {
            laddr: o(self.local),
            raddr: o(self.remote),
            lport: self.local.port(),
            rport: self.remote.port(),
            v6: self.local.is_ipv6(),
        }
    }
}

/// The accept list of one listener.
#[derive(Debug, Default)]
pub struct AcceptQueue {
    queue: SegQueue<Child>,
    /// `sk_ack_backlog`, on its own cache line (written by every push and pop, while the
    /// queue's read-only fields beside it are read by both).
    ack_backlog: CachePadded<AtomicU32>,
}

impl AcceptQueue {
    /// An empty list (nothing allocated until the first child).
    pub fn new() -> Self {
        AcceptQueue {
            queue: SegQueue::new(),
            ack_backlog: CachePadded::new(AtomicU32::new(0)),
        }
    }

    /// `sk_ack_backlog`.
    pub fn ack_backlog(&self) -> u32 {
        self.ack_backlog.load(Ordering::Relaxed)
    }

    /// `sk_acceptq_is_full`: ack_backlog > B (S-4, C-1).
    pub fn is_full(&self, backlog: u32) -> bool {
        self.ack_backlog() > backlog
    }

    /// C-7: append at the tail, unless the list is full (C-1); gives the child back then.
    #[allow(clippy::result_large_err)] // the child comes back by value, as it went in: no allocation
    pub fn push(&self, child: Child, backlog: u32) -> Result<(), Child> {
        let reserved = self
            .ack_backlog
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                if n > backlog {
                    None
                } else {
                    Some(n + 1)
                }
            });
        if reserved.is_err() {
            return Err(child);
        }
        self.queue.push(child);
        Ok(())
    }

    /// take the head (FIFO).
    pub fn pop(&self) -> Option<Child> {
        let c = self.queue.pop()?;
        self.ack_backlog.fetch_sub(1, Ordering::AcqRel);
        Some(c)
    }

    /// Children waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// No child waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
