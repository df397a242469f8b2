//! The kernel handoff: every connection the engine accepts becomes an ordinary kernel TCP
//! socket in the accept queue of the application's own listener, so an unmodified server
//! (nginx, a Python service) gets it from its own `accept()`.
//!
//! ```text
//!  client          NIC: XDP (synline_xdp)            worker (engine)               kernel
//!  SYN ----------> SYN: AF_XDP ------------------->  conn_request: request or
//!                                                    cookie, SYN-ACK in place
//!      <-------------------------------------------- SYN-ACK
//!  ACK ----------> no kernel socket, not handed:
//!                  AF_XDP ------------------------->  check_req / cookie: child
//!                                                    hand_over():
//!                                                     1. handed[4-tuple] = attrs
//!                                                     2. the ACK (+data, FIN) as the
//!                                                        peer sent it -> TAP
//!                  TAP ingress (synline_tap):  <------
//!                  redirect into the NIC's ingress
//!                  NIC TC ingress (synline_tc): handed? listener? bpf_sk_assign_tcp_reqsk()
//!                                                                   -> TCP makes the child
//!                                                                      from the request,
//!                                                                      queues it: accept()
//!  data, ACKs ---> kernel socket: XDP_PASS (KERNEL_FLOW) ------------------------------->
//!      <---------------------------------------------------------------- the app's replies
//! ```
//!
//! Why this shape (measured here, Linux 6.18, see the README and bench/results):
//! - The kfunc runs only in TC and takes the ISNs from the segment without checking them, so
//!   the engine validates first and the kernel is told only of flows the engine accepted.
//! - The engine's last segment must still reach the kernel: a server that speaks first gets
//!   no other. It is rebuilt from the child (`Worker::write_child_ack`, with the data that came
//!   with it) and written into a TAP whose TC program redirects it into the NIC's ingress, so
//!   it arrives with the NIC as its input interface (strict rp_filter holds; a TUN carrying
//!   the bare IP packet was refused by loose and strict rp_filter on IPv4).
//! - `bpf_sk_assign_tcp_reqsk()` succeeding does not mean a child was made (a full accept
//!   queue drops it), so the `handed` entry outlives one use: the peer's next segment passes
//!   XDP because of it and tries again in TC. TC removes the entry once the socket exists; an
//!   LRU map drops the oldest of the rest (flows that never send again), so it never fills.
//! - After that, per packet of an established connection, XDP pays one socket lookup and
//!   passes the segment; synline adds nothing else.
//!
//! The kfunc wants `net.ipv4.tcp_syncookies` != 0 (the child is made on the cookie path), and
//! refuses options the kernel has turned off by sysctl; the daemon checks both at start.
#![forbid(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use libbpf_rs::{MapCore, MapFlags, MapHandle};
use synline_core::{Child, Worker};

use crate::iface;
use crate::syscall;
use crate::xdp_prog::{XdpError, XdpProgram};

/// Bytes of a key of the `handed` map (`struct flow_key` in `bpf/synline.h`).
pub const FLOW_KEY_LEN: usize = 40;
/// Bytes of a value of the `handed` map (`struct handed_val`).
pub const HANDED_VAL_LEN: usize = 32;
/// Entries of the `handed` map (`SYNLINE_MAX_HANDED`), an LRU hash: the oldest go first.
pub const MAX_HANDED: u32 = 262144;

/// `struct flow_key` for a connection from `peer` to `local` (same family).
///
/// ```text
///   0      1      2            4            6      8             24            40
///   +------+------+------------+------------+------+-------------+-------------+
///   |family| pad  | sport (be) | dport (be) | pad  | saddr (16)  | daddr (16)  |
///   +------+------+------------+------------+------+-------------+-------------+
/// ```
pub fn flow_key_bytes(peer: SocketAddr, local: SocketAddr) -> [u8; FLOW_KEY_LEN] {
    let mut k = [0u8; FLOW_KEY_LEN];
    k[2..4].copy_from_slice(&peer.port().to_be_bytes());
    k[4..6].copy_from_slice(&local.port().to_be_bytes());
    match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V4(l)) => {
            k[0] = 4;
            k[8..12].copy_from_slice(&p.ip().octets());
            k[24..28].copy_from_slice(&l.ip().octets());
        }
        (p, l) => {
            k[0] = 6;
            let o = |a: SocketAddr| match a {
                SocketAddr::V6(a) => a.ip().octets(),
                SocketAddr::V4(a) => a.ip().to_ipv6_mapped().octets(),
            };
            k[8..24].copy_from_slice(&o(p));
            k[24..40].copy_from_slice(&o(l));
        }
    }
    k
}

/// The kernel's `struct bpf_tcp_req_attrs` for a child: what the request the kernel builds
/// must carry so that its child is the connection the engine negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReqAttrs {
    /// The peer's TSval (TS.Recent).
    pub rcv_tsval: u32,
    /// Our TSval the peer echoed: the kernel's timestamps continue from it.
    pub rcv_tsecr: u32,
    /// The peer's MSS (mss_clamp).
    pub mss: u16,
    /// Our window shift.
    pub rcv_wscale: u8,
    /// The peer's window shift.
    pub snd_wscale: u8,
    /// ECN negotiated.
    pub ecn_ok: bool,
    /// Window scaling negotiated.
    pub wscale_ok: bool,
    /// SACK negotiated.
    pub sack_ok: bool,
    /// Timestamps negotiated.
    pub tstamp_ok: bool,
}

/// Why a child cannot be handed over.
#[derive(Debug, thiserror::Error)]
pub enum HandoffFailure {
    /// The peer's MSS is below what the kfunc accepts (536 for IPv4, 1220 for IPv6).
    #[error("peer MSS {0} below the kernel's minimum for bpf_sk_assign_tcp_reqsk")]
    MssTooSmall(u16),
    /// Another failure of the map update.
    #[error("bpf_map_update_elem on map handed: {0}")]
    Map(#[source] libbpf_rs::Error),
    /// The frame could not be built (a buffer too small for the data).
    #[error("building the re-injected ACK: {0}")]
    Frame(synline_wire::Error),
    /// `write()` to the TAP failed. The `handed` entry is in: the peer's next segment, if it
    /// sends one, completes the handoff through the NIC. (A frame the kernel drops after the
    /// write, on an overloaded backlog, is not seen here at all.)
    #[error("write to the TAP: {0}")]
    Tap(#[source] io::Error),
}

impl ReqAttrs {
    /// The attributes of `child`, or why it cannot be handed over.
    pub fn of(child: &Child) -> Result<ReqAttrs, HandoffFailure> {
        let min = if child.local.is_ipv6() { 1220 } else { 536 };
        if child.mss < min {
            return Err(HandoffFailure::MssTooSmall(child.mss));
        }
        let ts = child.timestamps;
        Ok(ReqAttrs {
            rcv_tsval: ts.map_or(0, |t| t.ts_recent),
            rcv_tsecr: ts.map_or(0, |t| t.ts_ecr),
            mss: child.mss,
            rcv_wscale: if child.snd_wscale.is_some() {
                child.rcv_wscale
            } else {
                0
            },
            snd_wscale: child.snd_wscale.unwrap_or(0),
            ecn_ok: child.ecn,
            wscale_ok: child.snd_wscale.is_some(),
            sack_ok: child.sack,
            tstamp_ok: ts.is_some(),
        })
    }

    /// `struct handed_val`: the 20 bytes of `struct bpf_tcp_req_attrs` (reserved zero), then
    /// `created` (the daemon's seconds), IRS and ISS (host order; TC lets only the segment at
    /// IRS + 1 acking ISS + 1 make the kernel's request).
    ///
    /// ```text
    ///  0        4        8     10 11 12 13 14 15 16 17    20        24     28     32
    ///  +--------+--------+------+--+--+--+--+--+--+--+-----+---------+------+------+
    ///  |rcv_tsval|rcv_tsecr| mss |rw|sw|ec|wo|so|to|uo|rsvd |created  | irs  | iss  |
    ///  +--------+--------+------+--+--+--+--+--+--+--+-----+---------+------+------+
    /// ```
    pub fn handed_val(&self, created: u32, irs: u32, iss: u32) -> [u8; HANDED_VAL_LEN] {
        let mut v = [0u8; HANDED_VAL_LEN];
        v[0..4].copy_from_slice(&self.rcv_tsval.to_ne_bytes());
        v[4..8].copy_from_slice(&self.rcv_tsecr.to_ne_bytes());
        v[8..10].copy_from_slice(&self.mss.to_ne_bytes());
        v[10] = self.rcv_wscale;
        v[11] = self.snd_wscale;
        v[12] = u8::from(self.ecn_ok);
        v[13] = u8::from(self.wscale_ok);
        v[14] = u8::from(self.sack_ok);
        v[15] = u8::from(self.tstamp_ok);
        // v[16] usec_ts_ok = 0, v[17..20] reserved = 0.
        v[20..24].copy_from_slice(&created.to_ne_bytes());
        v[24..28].copy_from_slice(&irs.to_ne_bytes());
        v[28..32].copy_from_slice(&iss.to_ne_bytes());
        v
    }
}

/// The handoff's counters (user-space side; the TC side is in [`crate::XdpCounters`]).
#[derive(Debug, Default)]
pub struct HandoffStats {
    handed: AtomicU64,
    mss_too_small: AtomicU64,
    map_errors: AtomicU64,
    frame_errors: AtomicU64,
    tap_errors: AtomicU64,
}

impl HandoffStats {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Names in nstat style, with their values.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            ("SynlineKernelHandoffs", self.handed.load(Relaxed)),
            (
                "SynlineKernelHandoffMssTooSmall",
                self.mss_too_small.load(Relaxed),
            ),
            (
                "SynlineKernelHandoffMapErrors",
                self.map_errors.load(Relaxed),
            ),
            (
                "SynlineKernelHandoffFrameErrors",
                self.frame_errors.load(Relaxed),
            ),
            (
                "SynlineKernelHandoffTapErrors",
                self.tap_errors.load(Relaxed),
            ),
        ]
    }

    fn failed(&self, f: &HandoffFailure) {
        Self::bump(match f {
            HandoffFailure::MssTooSmall(_) => &self.mss_too_small,
            HandoffFailure::Map(_) => &self.map_errors,
            HandoffFailure::Frame(_) => &self.frame_errors,
            HandoffFailure::Tap(_) => &self.tap_errors,
        });
    }
}

/// Setting up the handoff failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffSetupError {
    /// `open("/dev/net/tun")` or `ioctl(TUNSETIFF)` for the TAP.
    #[error("create TAP {name} (open /dev/net/tun, ioctl TUNSETIFF): {source}")]
    Tap {
        /// The TAP's name.
        name: String,
        /// Why (ENOENT: no tun module; EPERM without CAP_NET_ADMIN).
        source: io::Error,
    },
    /// `ioctl(SIOCSIFFLAGS)` bringing the TAP up.
    #[error("bring TAP {name} up (ioctl SIOCSIFFLAGS): {source}")]
    LinkUp {
        /// The TAP's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// The TAP's index.
    #[error(transparent)]
    Iface(#[from] iface::IfaceError),
    /// Attaching the TC programs, or the map handle.
    #[error(transparent)]
    Xdp(#[from] XdpError),
}

/// The handoff of one port: its TAP (a queue per worker) and the `handed` map.
#[derive(Debug)]
pub struct KernelHandoff {
    tap_name: String,
    tap_ifindex: u32,
    taps: Vec<File>,
    map: MapHandle,
    stats: Arc<HandoffStats>,
}

impl KernelHandoff {
    /// Creates TAP `slh<nic_ifindex>` with `queues` queues, brings it up, and attaches the
    /// program's TC side to the NIC and the TAP. The TAP goes when its last queue's fd closes.
    pub fn open(
        prog: &mut XdpProgram,
        nic_ifindex: u32,
        queues: u32,
    ) -> Result<KernelHandoff, HandoffSetupError> {
        let name = format!("slh{nic_ifindex}");
        let tap_err = |source| HandoffSetupError::Tap {
            name: name.clone(),
            source,
        };
        let mut taps = Vec::new();
        for _ in 0..queues.max(1) {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open("/dev/net/tun")
                .map_err(tap_err)?;
            syscall::tap_attach(&f, &name).map_err(tap_err)?;
            taps.push(f);
        }
        // No addresses, no IPv6 autoconfiguration: the TAP only carries frames inwards.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        syscall::set_link_up(&name).map_err(|source| HandoffSetupError::LinkUp {
            name: name.clone(),
            source,
        })?;
        let tap_ifindex = iface::ifindex(&name)?;
        prog.attach_handoff(nic_ifindex, tap_ifindex)?;
        let map = prog.handed_map()?;
        Ok(KernelHandoff {
            tap_name: name,
            tap_ifindex,
            taps,
            map,
            stats: Arc::default(),
        })
    }

    /// The TAP's name.
    pub fn tap_name(&self) -> &str {
        &self.tap_name
    }

    /// The TAP's interface index.
    pub fn tap_ifindex(&self) -> u32 {
        self.tap_ifindex
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<HandoffStats> {
        &self.stats
    }

    /// The handoff of queue `q`, for its worker's thread (each queue once).
    pub fn queue(&mut self, q: u32) -> Option<QueueHandoff> {
        let tap = self.taps.get(q as usize)?.try_clone().ok()?;
        Some(QueueHandoff {
            tap,
            map: MapHandle::try_from(&self.map).ok()?,
            stats: self.stats.clone(),
            buf: vec![0u8; 4096],
        })
    }
}

/// One worker's side of the handoff: its TAP queue, a map handle and a frame buffer.
#[derive(Debug)]
pub struct QueueHandoff {
    tap: File,
    map: MapHandle,
    stats: Arc<HandoffStats>,
    buf: Vec<u8>,
}

impl QueueHandoff {
    /// Hands `child` to the kernel: its last segment built, its attributes into `handed`,
    /// then the segment into the TAP. On an error before the map has the entry, the caller
    /// resets the peer (the kernel would have nothing for it); a TAP error leaves the entry for
    /// the peer's next segment. Every failure is counted.
    pub fn hand_over(
        &mut self,
        engine: &Worker,
        child: &Child,
        now_secs: u32,
    ) -> Result<(), HandoffFailure> {
        let r = self.try_hand_over(engine, child, now_secs);
        match &r {
            Ok(()) => HandoffStats::bump(&self.stats.handed),
            Err(f) => self.stats.failed(f),
        }
        r
    }

    /// Re-injects a frame the engine gave back (a late segment of a flow it has just handed
    /// over, `StackConfig::accepted_grace`) into the kernel through the TAP, which sends it
    /// into the NIC's ingress: the kernel's socket, or TC's handoff, takes it from there.
    pub fn pass_on(&mut self, frame: &[u8]) -> bool {
        match syscall::write_frame(self.tap.as_fd(), frame) {
            Ok(_) => true,
            Err(_) => {
                HandoffStats::bump(&self.stats.tap_errors);
                false
            }
        }
    }

    fn try_hand_over(
        &mut self,
        engine: &Worker,
        child: &Child,
        now_secs: u32,
    ) -> Result<(), HandoffFailure> {
        let attrs = ReqAttrs::of(child)?;
        let n = engine
            .write_child_ack(child, &mut self.buf)
            .map_err(HandoffFailure::Frame)?;
        let key = flow_key_bytes(child.remote, child.local);
        self.map
            .update(
                &key,
                &attrs.handed_val(now_secs, child.irs.0, child.iss.0),
                MapFlags::ANY,
            )
            .map_err(HandoffFailure::Map)?;
        syscall::write_frame(self.tap.as_fd(), &self.buf[..n]).map_err(HandoffFailure::Tap)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_key_layout_v4_and_v6() {
        let k = flow_key_bytes(
            "198.18.0.2:40000".parse().unwrap(),
            "198.18.0.1:80".parse().unwrap(),
        );
        assert_eq!(k[..8], [4, 0, 0x9c, 0x40, 0, 80, 0, 0]);
        assert_eq!(k[8..12], [198, 18, 0, 2]);
        assert_eq!(k[12..24], [0; 12]);
        assert_eq!(k[24..28], [198, 18, 0, 1]);
        assert_eq!(k[28..], [0; 12]);
        let k6 = flow_key_bytes(
            "[2001:2::2]:40000".parse().unwrap(),
            "[2001:2::1]:443".parse().unwrap(),
        );
        assert_eq!(k6[0], 6);
        assert_eq!(k6[8..10], [0x20, 0x01]);
        assert_eq!(k6[23], 2);
        assert_eq!(k6[39], 1);
    }

    #[test]
    fn attrs_bytes_are_the_kernels_struct() {
        let a = ReqAttrs {
            rcv_tsval: 0x0102_0304,
            rcv_tsecr: 0x0506_0708,
            mss: 1460,
            rcv_wscale: 10,
            snd_wscale: 7,
            ecn_ok: false,
            wscale_ok: true,
            sack_ok: true,
            tstamp_ok: true,
        };
        let v = a.handed_val(99, 0x1111_2222, 0x3333_4444);
        assert_eq!(u32::from_ne_bytes(v[0..4].try_into().unwrap()), 0x0102_0304);
        assert_eq!(u32::from_ne_bytes(v[4..8].try_into().unwrap()), 0x0506_0708);
        assert_eq!(u16::from_ne_bytes(v[8..10].try_into().unwrap()), 1460);
        assert_eq!(v[10..20], [10, 7, 0, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(u32::from_ne_bytes(v[20..24].try_into().unwrap()), 99);
        assert_eq!(
            u32::from_ne_bytes(v[24..28].try_into().unwrap()),
            0x1111_2222
        );
        assert_eq!(
            u32::from_ne_bytes(v[28..32].try_into().unwrap()),
            0x3333_4444
        );
    }
}
