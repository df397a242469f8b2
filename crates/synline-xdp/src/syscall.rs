//! The raw system calls beyond what xsk-rs and libbpf-rs wrap: AF_XDP socket options
//! (busy polling, the bound mode), the TX kick and RX wakeup, CPU pinning and the clock, and
//! for the kernel handoff the TAP device, sock_diag and another process's socket options.
//!
//! Each returns `io::Error::last_os_error()` on failure; the callers in [`crate::xsk`] add the
//! interface and queue. Together with `xsk.rs`, this is the only module with `unsafe`.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

use libc::{c_int, c_void, socklen_t};

/// `SO_BUSY_POLL`, `SO_PREFER_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` from
/// `include/uapi/asm-generic/socket.h` (x86-64 and arm64 use these; libc does not export them
/// for linux-gnu yet).
pub(crate) const SO_BUSY_POLL: c_int = 46;
pub(crate) const SO_PREFER_BUSY_POLL: c_int = 69;
pub(crate) const SO_BUSY_POLL_BUDGET: c_int = 70;

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
pub(crate) fn setsockopt_int(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: c_int,
) -> io::Result<()> {
    // SAFETY: the pointer is to a live local `c_int` and the length says exactly that; the
    // kernel only reads it during the call. `fd` is open for the borrow's lifetime.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast::<c_void>(),
            size_of::<c_int>() as socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, SOL_XDP, XDP_OPTIONS)`: the flags of a bound AF_XDP socket
/// (`XDP_OPTIONS_ZEROCOPY` when it runs in zero-copy mode).
pub(crate) fn xdp_options(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut opts = libc::xdp_options { flags: 0 };
    let mut len = size_of::<libc::xdp_options>() as socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the live local `opts`, and `len`
    // is its size; `fd` is open for the borrow's lifetime.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_OPTIONS,
            ptr::from_mut(&mut opts).cast::<c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(opts.flags)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What a TX kick (`sendto` on the socket) reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    /// The kernel took what was on the TX ring (in copy mode: sent it).
    Done,
    /// Copy mode sends at most a budget of descriptors per call (32 on 6.x) and says EAGAIN
    /// when more are left, or when the completion ring is full: kick again after reaping.
    Again,
    /// ENOBUFS, ENOMEM, EBUSY, ENETDOWN or EOVERFLOW (the kernel dropped a descriptor it
    /// found invalid, counted in `XDP_STATISTICS`): try again on the next round.
    Busy,
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`: the AF_XDP TX kick.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<Kick> {
    // SAFETY: a zero-length send with null buffer and address pointers, which AF_XDP
    // ignores; `fd` is open for the borrow's lifetime.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null(),
            0,
        )
    };
    if rc >= 0 {
        return Ok(Kick::Done);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) => Ok(Kick::Again),
        Some(
            libc::ENOBUFS
            | libc::ENOMEM
            | libc::EBUSY
            | libc::ENETDOWN
            | libc::EOVERFLOW
            | libc::EINTR,
        ) => Ok(Kick::Busy),
        _ => Err(e),
    }
}

/// `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`: wakes the driver to fill the RX ring,
/// and with preferred busy polling runs the NAPI loop in this thread.
pub(crate) fn wake_rx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffer and address pointers, which AF_XDP
    // ignores; `fd` is open for the borrow's lifetime.
    let rc = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if rc >= 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR) => Ok(()),
        _ => Err(e),
    }
}

/// `ppoll(fd, POLLIN, timeout)`: waits until the RX ring has frames or `timeout` passes;
/// true if it has. Also a wakeup for a driver that needs one.
pub(crate) fn poll_in(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // ppoll, not poll: a timer due in 400 µs must not become a 0 ms busy loop.
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one live local `pollfd` and the count says one; `ts` is a live local; a null
    // signal mask leaves the thread's mask as it is.
    let rc = unsafe { libc::ppoll(&mut p, 1, &ts, std::ptr::null()) };
    if rc >= 0 {
        return Ok(rc > 0);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINTR) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// `sched_setaffinity(0, {cpu})`: pins the calling thread to one CPU.
pub(crate) fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= 8 * size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu_set_t` is a plain bit array, for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked against the set's size above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the set is a live local of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sched_setscheduler(0, SCHED_FIFO, prio)`: the calling thread runs before any normal
/// thread of its CPU until it blocks.
pub(crate) fn set_fifo(prio: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: the parameter is a live local; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `clock_gettime(CLOCK_MONOTONIC)`: time since boot (without suspend), the clock the kernel's
/// own TCP timers and timestamps run on.
pub(crate) fn monotonic() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes one `timespec` into the live local. CLOCK_MONOTONIC cannot
    // fail with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

// ---- the kernel handoff: a TAP device, sock_diag, another process's socket options ----

/// `struct ifreq` with the name and the flags member (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

impl IfReqFlags {
    fn new(name: &str) -> io::Result<Self> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() >= 16 || b.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut r = IfReqFlags {
            name: [0; 16],
            flags: 0,
            _pad: [0; 22],
        };
        r.name[..b.len()].copy_from_slice(b);
        Ok(r)
    }
}

/// `ioctl(TUNSETIFF)`: attaches the open `/dev/net/tun` file to TAP `name` (created with the
/// first queue) as one more queue: IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE.
pub(crate) fn tap_attach(file: &std::fs::File, name: &str) -> io::Result<()> {
    let mut req = IfReqFlags::new(name)?;
    req.flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as libc::c_short;
    // SAFETY: `req` is a live, fully initialised `struct ifreq` of the size the kernel reads
    // and writes for TUNSETIFF; the fd is the open tun file.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF as _, &mut req) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `SIOCGIFFLAGS` then `SIOCSIFFLAGS` with IFF_UP: brings interface `name` up.
pub(crate) fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReqFlags::new(name)?;
    // SAFETY: `req` is a live `struct ifreq`; the kernel writes the flags member.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above; the kernel reads the name and flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `write(2)` of one frame to a TAP queue, not blocking (the fd is O_NONBLOCK): EAGAIN when
/// the kernel's queue is full.
pub(crate) fn write_frame(fd: BorrowedFd<'_>, frame: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice; the kernel only reads it.
    let n = unsafe { libc::write(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A NETLINK_SOCK_DIAG socket (SOCK_DGRAM, close-on-exec).
pub(crate) fn sock_diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `send(2)` of a whole netlink request to the kernel.
pub(crate) fn netlink_send(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<()> {
    // SAFETY: `sockaddr_nl` is plain data for which zeroes are valid; family set below.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the buffer and the address are live locals of the sizes passed.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recv(2)` of one netlink datagram into `buf`; its length.
pub(crate) fn netlink_recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A duplicate of file descriptor `fd` of process `pid` (`pidfd_open` + `pidfd_getfd`, Linux
/// 5.6+; needs PTRACE_MODE_ATTACH on the process, which root has).
pub(crate) fn fd_of_process(pid: i32, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(pid, 0) takes two integers and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pidfd` is a fresh fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd(pidfd, fd, 0) takes three integers and returns a new fd or -1.
    let dup = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(dup as i32) })
}

/// `setsockopt(fd, IPPROTO_TCP, opt, v)` for an int option.
#[cfg(test)]
pub(crate) fn tcp_setsockopt_int(fd: BorrowedFd<'_>, opt: c_int, v: c_int) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, opt, v)
}

/// `getsockopt(fd, IPPROTO_TCP, opt)` for an int option.
pub(crate) fn tcp_getsockopt_int(fd: BorrowedFd<'_>, opt: c_int) -> io::Result<c_int> {
    let mut v: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `v` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            opt,
            (&mut v as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_moves_forward() {
        let a = monotonic();
        let b = monotonic();
        assert!(b >= a);
        assert!(a > Duration::ZERO);
    }

    #[test]
    fn options_on_a_plain_socket_fail_cleanly() {
        // Not an AF_XDP socket: the kernel refuses SOL_XDP, the error comes back.
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsFd;
        assert!(xdp_options(s.as_fd()).is_err());
    }

    #[test]
    fn pinning_beyond_the_set_is_einval() {
        let e = pin_current_thread(1 << 20).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
