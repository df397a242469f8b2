//! One AF_XDP socket per (interface, rx queue), with its own UMEM and the four rings:
//!
//! ```text
//!            user space                          kernel
//!   free pool --produce--> FILL ring   --> NIC/copy writes a frame
//!   RX batch  <--consume-- RX ring     <-- redirected by synline_xdp
//!   TX batch  --produce--> TX ring     --> sent (copy mode: on sendto)
//!   free pool <--consume-- COMPLETION  <-- sent frames come back
//! ```
//!
//! A [`Frame`] is a frame that user space owns: it was taken from the RX or completion ring,
//! or from the free pool, and is in no ring. It is not `Clone`, and producing it onto the
//! fill or TX ring moves it back to the kernel, so the one rule of xsk-rs's unsafe API ("do
//! not touch a frame the kernel owns") holds by construction; each frame also carries the id
//! of the queue whose UMEM it lives in, checked on every use.
//!
//! The bind mode is the kernel's to choose unless forced ([`BindMode`]): zero-copy where the
//! driver has it, copy otherwise; [`XskQueue::mode`] says which one the queue got, read back
//! from the kernel (`XDP_OPTIONS`) rather than assumed.
//!
//! The socket is bound with `XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`: libxdp loads no program of its
//! own. The caller attaches synline's ([`crate::XdpProgram`]) and registers [`XskQueue::fd`]
//! with [`crate::XdpProgram::set_socket`].
//!
//! All `unsafe` of the AF_XDP side is here and in `syscall.rs`.

use std::fmt;
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::syscall::{self, Kick};

/// How to bind the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy where the driver has it, copy otherwise (the kernel's own fallback); the
    /// mode obtained is read back and reported by [`XskQueue::mode`].
    Auto,
    /// `XDP_COPY`: the kernel copies each frame between the NIC's buffers and the UMEM.
    Copy,
    /// `XDP_ZEROCOPY`: the NIC reads and writes the UMEM; binding fails if the driver cannot.
    ZeroCopy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::Auto => "auto",
            BindMode::Copy => "copy",
            BindMode::ZeroCopy => "zero-copy",
        })
    }
}

/// The mode a bound socket runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XskMode {
    /// Copy mode. TX needs a `sendto()` kick every batch, whatever need_wakeup says.
    Copy,
    /// Zero-copy mode.
    ZeroCopy,
}

impl fmt::Display for XskMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XskMode::Copy => "copy",
            XskMode::ZeroCopy => "zero-copy",
        })
    }
}

/// Preferred busy polling (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`): the
/// worker runs the driver's NAPI loop itself instead of waiting for interrupts. Pair it with
/// the interface's `napi_defer_hard_irqs` and `gro_flush_timeout`. Measure before using it:
/// it stalled on some kernel and driver pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds to busy poll in a blocking call.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: frames per NAPI poll.
    pub budget: u16,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            usecs: 20,
            budget: 64,
        }
    }
}

/// Settings of one queue's socket and UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Bytes per UMEM frame: 2048 or 4096 (a power of two the kernel accepts). Frames start
    /// with the kernel's 256 bytes of XDP headroom, so 4096 leaves 3840 for the packet.
    pub frame_size: u32,
    /// Frames in the UMEM. The fill ring gets up to `ring_size` of them; the rest are the
    /// free pool (TX in flight, the reserve of engine-originated frames).
    pub frame_count: u32,
    /// Descriptors in each of the four rings (a power of two).
    pub ring_size: u32,
    /// How to bind.
    pub bind_mode: BindMode,
    /// `XDP_USE_NEED_WAKEUP`: the driver may sleep, and says when it needs a wakeup, so an
    /// idle queue costs no syscalls.
    pub need_wakeup: bool,
    /// Preferred busy polling; off (`None`) by default.
    pub busy_poll: Option<BusyPoll>,
    /// How long to keep retrying a bind that fails with EBUSY: the kernel releases a queue
    /// some milliseconds (about 20 on veth) after its last socket closed.
    pub bind_retry: Duration,
}

/// Ring sizes taken: powers of two in this range. Below 64 a ring holds less than one RX
/// batch; above 32768 a ring's descriptors alone take more than the frames a queue needs.
pub const RING_SIZES: std::ops::RangeInclusive<u32> = 64..=32768;
/// Most UMEM frames per queue: 2^20 frames of 4 KB is 4 GB of pinned memory per queue.
pub const MAX_FRAMES: u32 = 1 << 20;

impl XskConfig {
    /// Checks the settings without a syscall, so a daemon can refuse them before it touches
    /// the NIC: the problem in words.
    pub fn check(&self) -> Result<(), String> {
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(format!(
                "frame size must be 2048 or 4096, not {}",
                self.frame_size
            ));
        }
        if !self.ring_size.is_power_of_two() || !RING_SIZES.contains(&self.ring_size) {
            return Err(format!(
                "ring size must be a power of two from {} to {}, not {}",
                RING_SIZES.start(),
                RING_SIZES.end(),
                self.ring_size
            ));
        }
        if self.frame_count < self.ring_size || self.frame_count > MAX_FRAMES {
            return Err(format!(
                "frames must be from the ring size ({}: the fill ring needs that many) to {MAX_FRAMES}, not {}",
                self.ring_size, self.frame_count
            ));
        }
        Ok(())
    }
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_size: 4096,
            frame_count: 4096,
            ring_size: 2048,
            bind_mode: BindMode::Auto,
            need_wakeup: true,
            busy_poll: None,
            bind_retry: Duration::from_millis(500),
        }
    }
}

/// A failed AF_XDP call, naming the call and the interface and queue.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// A setting the kernel would refuse, caught before asking it.
    #[error("AF_XDP settings for {iface} queue {queue}: {what}")]
    Config {
        /// Interface.
        iface: String,
        /// rx queue.
        queue: u32,
        /// What is wrong.
        what: String,
    },
    /// mmap of the frame area or `XDP_UMEM_REG`.
    #[error("create UMEM ({frames} frames of {frame_size} bytes) for {iface} queue {queue}: xsk_umem__create: {source}")]
    Umem {
        /// Interface.
        iface: String,
        /// rx queue.
        queue: u32,
        /// Frames asked for.
        frames: u32,
        /// Bytes per frame.
        frame_size: u32,
        /// Why (ENOMEM: raise RLIMIT_MEMLOCK or use fewer frames).
        source: io::Error,
    },
    /// `socket(AF_XDP)`, the ring setup or `bind`: ENODEV for no such interface, EPERM
    /// without CAP_NET_RAW, EBUSY when another socket holds the queue, EOPNOTSUPP for
    /// zero-copy on a driver without it, EINVAL for a queue the interface does not have.
    #[error("bind AF_XDP socket to {iface} queue {queue} ({mode} mode): xsk_socket__create_shared: {source}")]
    Bind {
        /// Interface.
        iface: String,
        /// rx queue.
        queue: u32,
        /// The mode asked for.
        mode: BindMode,
        /// Why.
        source: io::Error,
    },
    /// A socket option on the bound socket.
    #[error("{call}({option}) on the AF_XDP socket of {iface} queue {queue}: {source}")]
    SockOpt {
        /// `setsockopt` or `getsockopt`.
        call: &'static str,
        /// The option's name.
        option: &'static str,
        /// Interface.
        iface: String,
        /// rx queue.
        queue: u32,
        /// Why.
        source: io::Error,
    },
    /// A `sendto`, `recvfrom` or `poll` on the socket in the data path.
    #[error("{call} on the AF_XDP socket of {iface} queue {queue}: {source}")]
    Io {
        /// The call.
        call: &'static str,
        /// Interface.
        iface: String,
        /// rx queue.
        queue: u32,
        /// Why.
        source: io::Error,
    },
}

impl XskError {
    /// The errno behind the error, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            XskError::Config { .. } => None,
            XskError::Umem { source, .. }
            | XskError::Bind { source, .. }
            | XskError::SockOpt { source, .. }
            | XskError::Io { source, .. } => source.raw_os_error(),
        }
    }
}

/// The kernel's counters of one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskKernelStats {
    /// Received frames dropped for other reasons (e.g. larger than a frame).
    pub rx_dropped: u64,
    /// Received frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Times the kernel found the TX ring empty when kicked.
    pub tx_ring_empty: u64,
}

/// A UMEM frame owned by user space (in no ring). See the module docs.
#[derive(Debug)]
pub struct Frame {
    desc: FrameDesc,
    owner: u32,
}

impl Frame {
    /// Bytes of packet in the frame.
    pub fn len(&self) -> usize {
        self.desc.lengths().data()
    }

    /// Whether the frame holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ids that tie a [`Frame`] to the queue whose UMEM it lives in.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// One AF_XDP socket bound to (interface, rx queue), its UMEM and rings, and the pool of
/// frames user space holds. `Send`: bind it anywhere, then move it to its worker thread.
pub struct XskQueue {
    // Each ring holds a handle on the socket, and the socket one on the UMEM: xsk-rs deletes
    // them in the right order whatever the field order.
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    umem: Umem,
    /// Frames user space owns that are in no ring and no [`Frame`].
    free: Vec<FrameDesc>,
    /// Where ring consumers write.
    scratch: Vec<FrameDesc>,
    id: u32,
    iface: String,
    queue: u32,
    mode: XskMode,
    need_wakeup: bool,
    busy_poll: bool,
    ring_size: u32,
    frame_count: u32,
}

const _: () = {
    const fn send<T: Send>() {}
    send::<XskQueue>();
};

impl fmt::Debug for XskQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskQueue")
            .field("iface", &self.iface)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("fd", &self.fd().as_raw_fd())
            .field("free", &self.free.len())
            .finish_non_exhaustive()
    }
}

/// xsk-rs reports a failed libxdp call as a reason with the errno as its source.
fn errno_of(e: &(dyn std::error::Error + 'static)) -> io::Error {
    match e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io) => match io.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::other(io.to_string()),
        },
        None => io::Error::other(e.to_string()),
    }
}

impl XskQueue {
    /// Creates the UMEM, binds an AF_XDP socket to `iface` rx queue `queue`, and puts up to
    /// `ring_size` frames on the fill ring. Needs CAP_NET_RAW (and CAP_IPC_LOCK or enough
    /// RLIMIT_MEMLOCK for the UMEM). Retries EBUSY for `config.bind_retry`.
    pub fn new(iface: &str, queue: u32, config: &XskConfig) -> Result<Self, XskError> {
        let cfg_err = |what: String| XskError::Config {
            iface: iface.to_owned(),
            queue,
            what,
        };
        config.check().map_err(cfg_err)?;
        let frame_size =
            FrameSize::new(config.frame_size).map_err(|e| cfg_err(format!("frame size: {e}")))?;
        let ring =
            QueueSize::new(config.ring_size).map_err(|e| cfg_err(format!("ring size: {e}")))?;
        let frames = NonZeroU32::new(config.frame_count)
            .ok_or_else(|| cfg_err("frame count: 0".to_owned()))?;
        let name: Interface = iface
            .parse()
            .map_err(|_| cfg_err("interface name contains a NUL byte".to_owned()))?;
        let umem_config = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .frame_headroom(0)
            .build()
            .map_err(|e| cfg_err(format!("UMEM: {e}")))?;

        let (umem, descs) = Umem::new(umem_config, frames, false).map_err(|e| XskError::Umem {
            iface: iface.to_owned(),
            queue,
            frames: config.frame_count,
            frame_size: config.frame_size,
            source: errno_of(&e),
        })?;

        let mut bind = match config.bind_mode {
            BindMode::Auto => BindFlags::empty(),
            BindMode::Copy => BindFlags::XDP_COPY,
            BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
        };
        if config.need_wakeup {
            bind |= BindFlags::XDP_USE_NEED_WAKEUP;
        }
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();

        let deadline = Instant::now() + config.bind_retry;
        let (tx, rx, rings) = loop {
            // SAFETY: the UMEM is fresh and not shared with any other socket, so no other
            // socket from it is bound to (iface, queue); and INHIBIT_PROG_LOAD is set, which
            // is what xsk-rs asks of a shared UMEM anyway.
            let r = unsafe { Socket::new(socket_config, &umem, &name, queue) };
            match r {
                Ok(ok) => break ok,
                Err(e) => {
                    let source = errno_of(&e);
                    if source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    return Err(XskError::Bind {
                        iface: iface.to_owned(),
                        queue,
                        mode: config.bind_mode,
                        source,
                    });
                }
            }
        };
        // A fresh UMEM always creates a new context, which comes with its own fill and
        // completion rings.
        let Some((fill, comp)) = rings else {
            return Err(XskError::Bind {
                iface: iface.to_owned(),
                queue,
                mode: config.bind_mode,
                source: io::Error::other("libxdp returned no fill and completion rings"),
            });
        };

        let mut q = XskQueue {
            tx,
            rx,
            fill,
            comp,
            umem,
            free: descs,
            scratch: vec![FrameDesc::default(); config.ring_size as usize],
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            iface: iface.to_owned(),
            queue,
            mode: XskMode::Copy,
            need_wakeup: config.need_wakeup,
            busy_poll: config.busy_poll.is_some(),
            ring_size: config.ring_size,
            frame_count: config.frame_count,
        };
        let flags =
            syscall::xdp_options(q.fd()).map_err(|e| q.sockopt("getsockopt", "XDP_OPTIONS", e))?;
        q.mode = if flags & libc::XDP_OPTIONS_ZEROCOPY != 0 {
            XskMode::ZeroCopy
        } else {
            XskMode::Copy
        };
        if let Some(bp) = config.busy_poll {
            let fd = q.fd();
            let set = |name, option, value: u32| {
                syscall::setsockopt_int(
                    fd,
                    libc::SOL_SOCKET,
                    name,
                    i32::try_from(value).unwrap_or(i32::MAX),
                )
                .map_err(|e| (option, e))
            };
            set(syscall::SO_PREFER_BUSY_POLL, "SO_PREFER_BUSY_POLL", 1)
                .and_then(|()| set(syscall::SO_BUSY_POLL, "SO_BUSY_POLL", bp.usecs))
                .and_then(|()| {
                    set(
                        syscall::SO_BUSY_POLL_BUDGET,
                        "SO_BUSY_POLL_BUDGET",
                        u32::from(bp.budget),
                    )
                })
                .map_err(|(option, e)| q.sockopt("setsockopt", option, e))?;
        }
        q.refill(0);
        Ok(q)
    }

    fn sockopt(&self, call: &'static str, option: &'static str, source: io::Error) -> XskError {
        XskError::SockOpt {
            call,
            option,
            iface: self.iface.clone(),
            queue: self.queue,
            source,
        }
    }

    fn io_err(&self, call: &'static str, source: io::Error) -> XskError {
        XskError::Io {
            call,
            iface: self.iface.clone(),
            queue: self.queue,
            source,
        }
    }

    /// The socket, for [`crate::XdpProgram::set_socket`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to the socket that `self.tx` (and the other rings)
        // keep open for as long as `self` lives, which outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.tx.fd().as_raw_fd()) }
    }

    /// The mode the kernel bound the socket in.
    pub fn mode(&self) -> XskMode {
        self.mode
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The rx queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Frames in the UMEM.
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// The kernel's counters for this socket (`XDP_STATISTICS`).
    pub fn kernel_stats(&self) -> Result<XskKernelStats, XskError> {
        let s = self
            .tx
            .fd()
            .xdp_statistics()
            .map_err(|e| self.sockopt("getsockopt", "XDP_STATISTICS", e))?;
        Ok(XskKernelStats {
            rx_dropped: s.rx_dropped(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }

    // ---- the data path's view (crate::datapath) ----

    /// Frames in the free pool.
    pub(crate) fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Moves up to `max` received frames from the RX ring into `out`.
    pub(crate) fn receive(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let max = max.min(self.scratch.len());
        // SAFETY: `consume` only writes the descriptors of frames of this socket's UMEM into
        // `scratch`; each is now owned by user space and becomes one `Frame`.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        out.extend(self.scratch[..n].iter().map(|&desc| Frame {
            desc,
            owner: self.id,
        }));
        n
    }

    /// Moves the frames the kernel finished sending from the completion ring to the pool.
    pub(crate) fn reap_completions(&mut self) -> usize {
        let mut total = 0;
        loop {
            // SAFETY: as for `receive`: descriptors of this UMEM's frames, now ours.
            let n = unsafe { self.comp.consume(&mut self.scratch) };
            self.free.extend_from_slice(&self.scratch[..n]);
            total += n;
            if n < self.scratch.len() {
                return total;
            }
        }
    }

    /// Gives the kernel free frames to receive into, keeping `keep` in the pool. Returns
    /// (frames given, whether the fill ring was empty before).
    pub(crate) fn refill(&mut self, keep: usize) -> (usize, bool) {
        let slots = self.fill.nb_free_exact() as usize;
        let was_empty = slots == self.ring_size as usize;
        let n = slots.min(self.free.len().saturating_sub(keep));
        if n == 0 {
            return (0, was_empty);
        }
        let from = self.free.len() - n;
        // SAFETY: the pool's frames belong to this UMEM and are in no ring; `n` is within
        // the ring's free slots, so all of them go (produce is all or nothing), and the
        // pool forgets them at once.
        let done = unsafe { self.fill.produce(&self.free[from..]) };
        debug_assert_eq!(done, n);
        self.free.truncate(self.free.len() - done);
        (done, was_empty)
    }

    /// Whether the fill ring asks for a wakeup (need_wakeup mode).
    pub(crate) fn fill_needs_wakeup(&self) -> bool {
        self.need_wakeup && self.fill.needs_wakeup()
    }

    /// Whether sent frames need a `sendto()` kick: always in copy mode (the kernel sends
    /// only from the syscall) and without need_wakeup; otherwise when the driver asks.
    pub(crate) fn tx_needs_kick(&self) -> bool {
        self.mode == XskMode::Copy || !self.need_wakeup || self.tx.needs_wakeup()
    }

    /// Whether busy polling was asked for.
    pub(crate) fn busy_polling(&self) -> bool {
        self.busy_poll
    }

    /// Free TX slots, at least `want` if there are (never more than there are).
    pub(crate) fn tx_room(&mut self, want: usize) -> usize {
        self.tx.nb_free(want as u32) as usize
    }

    /// Puts as many frames of `frames` (from the front) on the TX ring as it has room for,
    /// removing them from `frames`; the rest stay there. Returns how many went.
    pub(crate) fn transmit(&mut self, frames: &mut Vec<Frame>) -> usize {
        let room = self.tx_room(frames.len());
        let n = room.min(frames.len()).min(self.scratch.len());
        if n == 0 {
            return 0;
        }
        for (slot, f) in self.scratch.iter_mut().zip(frames.iter()).take(n) {
            assert_eq!(f.owner, self.id, "frame of another queue's UMEM");
            *slot = f.desc;
            slot.set_options(0);
        }
        // SAFETY: the descriptors are of frames of this UMEM (owner checked) that user space
        // owns, and `n` is within the ring's free slots, so all go; their `Frame`s are
        // dropped right after, so nothing in user space refers to them any more.
        let done = unsafe { self.tx.produce(&self.scratch[..n]) };
        debug_assert_eq!(done, n);
        frames.drain(..done);
        done
    }

    /// Returns a frame to the free pool.
    pub(crate) fn recycle(&mut self, f: Frame) {
        assert_eq!(f.owner, self.id, "frame of another queue's UMEM");
        self.free.push(f.desc);
    }

    /// Takes a frame from the free pool, empty, for a packet user space writes.
    pub(crate) fn take_free(&mut self) -> Option<Frame> {
        let mut desc = self.free.pop()?;
        // SAFETY: a pool frame of this UMEM, in no ring, and `desc` is exclusively ours.
        unsafe { self.umem.data_mut(&mut desc) }.cursor().set_pos(0);
        Some(Frame {
            desc,
            owner: self.id,
        })
    }

    /// Runs `op` on the whole packet area of `f` (from the packet's start to the frame's
    /// end, so a reply may be longer than what came in) and the packet's length. The
    /// packet's length is unchanged afterwards; see [`XskQueue::set_len`].
    pub(crate) fn with_buffer<R>(
        &self,
        f: &mut Frame,
        op: impl FnOnce(&mut [u8], usize) -> R,
    ) -> R {
        assert_eq!(f.owner, self.id, "frame of another queue's UMEM");
        let len = f.len();
        // SAFETY: `f` is a frame of this UMEM (owner checked) that user space owns (it is in
        // no ring while a `Frame` exists), and `&mut Frame` makes this the only access.
        let mut data = unsafe { self.umem.data_mut(&mut f.desc) };
        let cap = {
            let mut c = data.cursor();
            let cap = c.buf_len();
            c.set_pos(cap);
            cap
        };
        debug_assert!(cap >= len);
        let r = op(data.contents_mut(), len);
        data.cursor().set_pos(len);
        r
    }

    /// Sets the packet length of `f` (clamped to the frame), e.g. to a reply's length.
    pub(crate) fn set_len(&self, f: &mut Frame, len: usize) {
        assert_eq!(f.owner, self.id, "frame of another queue's UMEM");
        // SAFETY: as in `with_buffer`.
        unsafe { self.umem.data_mut(&mut f.desc) }
            .cursor()
            .set_pos(len);
    }

    /// One `sendto()` kick.
    pub(crate) fn kick_tx(&self) -> Result<Kick, XskError> {
        syscall::kick_tx(self.fd()).map_err(|e| self.io_err("sendto", e))
    }

    /// Wakes the driver's RX side: `recvfrom()` with busy polling (it runs NAPI here),
    /// a zero-timeout `poll()` otherwise.
    pub(crate) fn wake_rx(&self) -> Result<(), XskError> {
        if self.busy_poll {
            syscall::wake_rx(self.fd()).map_err(|e| self.io_err("recvfrom", e))
        } else {
            syscall::poll_in(self.fd(), Duration::ZERO)
                .map(drop)
                .map_err(|e| self.io_err("poll", e))
        }
    }

    /// Sleeps in `poll()` until frames arrive or `timeout` passes.
    pub(crate) fn wait_rx(&self, timeout: Duration) -> Result<bool, XskError> {
        syscall::poll_in(self.fd(), timeout).map_err(|e| self.io_err("poll", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_what_the_docs_say() {
        let c = XskConfig::default();
        assert_eq!(
            (c.frame_size, c.frame_count, c.ring_size),
            (4096, 4096, 2048)
        );
        assert_eq!(c.bind_mode, BindMode::Auto);
        assert!(c.need_wakeup);
        assert_eq!(c.busy_poll, None);
    }

    #[test]
    fn bad_settings_are_refused_before_any_syscall() {
        let bad = [
            XskConfig {
                frame_size: 1024,
                ..XskConfig::default()
            },
            XskConfig {
                frame_size: 3000,
                ..XskConfig::default()
            },
            XskConfig {
                ring_size: 1000,
                ..XskConfig::default()
            },
            XskConfig {
                frame_count: 0,
                ..XskConfig::default()
            },
            XskConfig {
                frame_count: 1024,
                ..XskConfig::default()
            },
        ];
        for c in bad {
            let e = XskQueue::new("lo", 0, &c).unwrap_err();
            assert!(matches!(e, XskError::Config { .. }), "{c:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with("AF_XDP settings for lo queue 0: "),
                "{e}"
            );
        }
    }

    #[test]
    fn bind_error_names_call_interface_and_queue() {
        let e = XskError::Bind {
            iface: "eth9".into(),
            queue: 3,
            mode: BindMode::ZeroCopy,
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        };
        let s = e.to_string();
        assert!(
            s.starts_with(
                "bind AF_XDP socket to eth9 queue 3 (zero-copy mode): xsk_socket__create_shared: "
            ),
            "{s}"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EOPNOTSUPP));
    }
}
