//! The application's own kernel listeners, as the daemon's kernel handoff needs them: which
//! exist (sock_diag), how full their accept queues are (`sk_ack_backlog` against
//! `sk_max_ack_backlog`, S-4/K-7's test), and the socket options the application set on them
//! (TCP_DEFER_ACCEPT and TCP_MAXSEG, read from the owning process's own socket with
//! `pidfd_getfd`).
//!
//! A dump of the TCP listeners of one family is one netlink request:
//!
//! ```text
//!  nlmsghdr (16)       inet_diag_req_v2 (56)
//!  len type=20 flags   family proto=6 ext pad | states=1<<TCP_LISTEN | sockid (48, zero)
//!                      = SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST|NLM_F_DUMP
//! ```
//!
//! and each answer an `inet_diag_msg` (72 bytes: family, state, timer, retrans, sockid, expires,
//! rqueue, wqueue, uid, inode) followed by attributes. For a listener the kernel puts
//! `sk_ack_backlog` in rqueue and `sk_max_ack_backlog` in wqueue (`inet_diag_msg_common_fill`
//! callers, `tcp_diag_get_info`), and an IPv6 socket carries INET_DIAG_SKV6ONLY.
#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

use crate::syscall;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const TCP_LISTEN: u32 = 10;
const INET_DIAG_SKV6ONLY: u16 = 11;
const NLMSG_HDR: usize = 16;
const DIAG_MSG: usize = 72;

/// One listening TCP socket of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelListener {
    /// Its address (unspecified: a wildcard).
    pub addr: SocketAddr,
    /// Children waiting for accept() (`sk_ack_backlog`).
    pub ack_backlog: u32,
    /// listen()'s backlog, capped by somaxconn (`sk_max_ack_backlog`).
    pub max_ack_backlog: u32,
    /// The socket's inode (`socket:[inode]` in /proc/PID/fd).
    pub inode: u32,
    /// An IPv6 socket with IPV6_V6ONLY (an IPv6 wildcard without it also takes IPv4).
    pub v6only: bool,
}

impl KernelListener {
    /// The accept queue as S-4 tests it: (len, max).
    pub fn accept_queue(&self) -> (u32, u32) {
        (self.ack_backlog, self.max_ack_backlog)
    }
}

/// The kernel listener that takes connections for `addr`: an exact match first, then the
/// wildcard of the family, then (for IPv4) an IPv6 wildcard without IPV6_V6ONLY.
pub fn serving(listeners: &[KernelListener], addr: SocketAddr) -> Option<&KernelListener> {
    let port = |l: &&KernelListener| l.addr.port() == addr.port();
    let exact = listeners
        .iter()
        .filter(port)
        .find(|l| l.addr.ip() == addr.ip() && !addr.ip().is_unspecified());
    exact
        .or_else(|| {
            listeners
                .iter()
                .filter(port)
                .find(|l| l.addr.is_ipv6() == addr.is_ipv6() && l.addr.ip().is_unspecified())
        })
        .or_else(|| {
            listeners.iter().filter(port).find(|l| {
                addr.is_ipv4() && l.addr.is_ipv6() && l.addr.ip().is_unspecified() && !l.v6only
            })
        })
}

/// A NETLINK_SOCK_DIAG socket and its buffer.
#[derive(Debug)]
pub struct SockDiag {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
}

impl SockDiag {
    /// `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG)`.
    pub fn open() -> io::Result<SockDiag> {
        Ok(SockDiag {
            fd: syscall::sock_diag_socket()?,
            buf: vec![0; 64 * 1024],
            seq: 0,
        })
    }

    /// Every TCP listener of this network namespace, both families.
    pub fn listeners(&mut self) -> io::Result<Vec<KernelListener>> {
        let mut out = Vec::new();
        for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            self.dump(family, &mut out)?;
        }
        Ok(out)
    }

    fn dump(&mut self, family: u8, out: &mut Vec<KernelListener>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        const REQ_LEN: usize = NLMSG_HDR + 56;
        let mut req = [0u8; REQ_LEN];
        req[0..4].copy_from_slice(&(REQ_LEN as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[16] = family;
        req[17] = libc::IPPROTO_TCP as u8;
        req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        syscall::netlink_send(self.fd.as_fd(), &req)?;
        loop {
            let n = syscall::netlink_recv(self.fd.as_fd(), &mut self.buf)?;
            let mut off = 0;
            while off + NLMSG_HDR <= n {
                let b = &self.buf[off..n];
                let len = u32::from_ne_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(b[4..6].try_into().expect("2 bytes"));
                if len < NLMSG_HDR || len > b.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "short netlink message",
                    ));
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = b
                            .get(16..20)
                            .map(|e| i32::from_ne_bytes(e.try_into().expect("4 bytes")))
                            .unwrap_or(-libc::EIO);
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    SOCK_DIAG_BY_FAMILY => {
                        if let Some(l) = parse_diag_msg(&b[NLMSG_HDR..len]) {
                            out.push(l);
                        }
                    }
                    _ => {}
                }
                off += (len + 3) & !3;
            }
        }
    }
}

/// One `inet_diag_msg` and its attributes.
fn parse_diag_msg(m: &[u8]) -> Option<KernelListener> {
    if m.len() < DIAG_MSG || u32::from(m[1]) != TCP_LISTEN {
        return None;
    }
    let u32_at = |i: usize| u32::from_ne_bytes(m[i..i + 4].try_into().expect("4 bytes"));
    let port = u16::from_be_bytes([m[4], m[5]]);
    let ip: IpAddr = match i32::from(m[0]) {
        libc::AF_INET => Ipv4Addr::new(m[8], m[9], m[10], m[11]).into(),
        libc::AF_INET6 => Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).ok()?).into(),
        _ => return None,
    };
    let mut v6only = false;
    let mut a = DIAG_MSG;
    while a + 4 <= m.len() {
        let len = usize::from(u16::from_ne_bytes([m[a], m[a + 1]]));
        let ty = u16::from_ne_bytes([m[a + 2], m[a + 3]]);
        if len < 4 || a + len > m.len() {
            break;
        }
        if ty == INET_DIAG_SKV6ONLY && len >= 5 {
            v6only = m[a + 4] != 0;
        }
        a += (len + 3) & !3;
    }
    Some(KernelListener {
        addr: SocketAddr::new(ip, port),
        ack_backlog: u32_at(56),
        max_ack_backlog: u32_at(60),
        inode: u32_at(68),
        v6only,
    })
}

/// What the application set on its listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AppSocketOptions {
    /// TCP_DEFER_ACCEPT in seconds (the kernel gives back the seconds its retransmission
    /// count covers); 0 when unset.
    pub defer_accept_secs: u32,
    /// TCP_MAXSEG, when set (a listener without it reads back the default 536, taken as
    /// unset).
    pub maxseg: Option<u16>,
}

/// The socket options of the listener whose inode is `inode`, read from the socket itself:
/// the process holding it is found in /proc, and its fd duplicated with `pidfd_getfd`. `None`
/// when no process holds it (or /proc cannot be read, or the duplication is refused).
pub fn app_socket_options(inode: u32) -> Option<AppSocketOptions> {
    let (pid, fd) = find_socket_fd(inode)?;
    let sock = syscall::fd_of_process(pid, fd).ok()?;
    let defer = syscall::tcp_getsockopt_int(sock.as_fd(), libc::TCP_DEFER_ACCEPT).ok()?;
    let maxseg = syscall::tcp_getsockopt_int(sock.as_fd(), libc::TCP_MAXSEG).ok()?;
    Some(AppSocketOptions {
        defer_accept_secs: defer.max(0) as u32,
        maxseg: (maxseg > 0 && maxseg != 536).then(|| maxseg.min(i32::from(u16::MAX)) as u16),
    })
}

/// The first (pid, fd) whose /proc/PID/fd/FD link is `socket:[inode]`.
fn find_socket_fd(inode: u32) -> Option<(i32, i32)> {
    let want = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if std::fs::read_link(f.path()).is_ok_and(|l| l.as_os_str() == want.as_str()) {
                if let Some(fd) = f.file_name().to_str().and_then(|s| s.parse().ok()) {
                    return Some((pid, fd));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Our own listener shows up with its backlog, and its options read back through pidfd
    /// (needs no privilege for our own process).
    #[test]
    fn own_listener_is_found_with_its_backlog_and_options() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let Ok(mut diag) = SockDiag::open() else {
            eprintln!("skipped: no NETLINK_SOCK_DIAG here");
            return;
        };
        let all = diag.listeners().unwrap();
        let me = serving(&all, addr).expect("our listener in the dump");
        assert_eq!(me.addr, addr);
        assert_eq!(me.ack_backlog, 0);
        // std's listen() backlog is 128 (capped by somaxconn, 4096 by default).
        assert_eq!(me.max_ack_backlog, 128.min(somaxconn()));
        assert!(me.inode > 0);
        let o = app_socket_options(me.inode).expect("options of our own socket");
        assert_eq!(o, AppSocketOptions::default(), "nothing set yet");
        syscall::tcp_setsockopt_int(l.as_fd(), libc::TCP_DEFER_ACCEPT, 5).unwrap();
        syscall::tcp_setsockopt_int(l.as_fd(), libc::TCP_MAXSEG, 1200).unwrap();
        let o = app_socket_options(me.inode).expect("options of our own socket");
        // The kernel stores retransmissions and gives back the seconds they cover (7).
        assert!(o.defer_accept_secs >= 5, "{o:?}");
        assert_eq!(o.maxseg, Some(1200));
    }

    fn somaxconn() -> u32 {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096)
    }

    #[test]
    fn a_v4_address_is_served_by_a_dual_stack_wildcard() {
        let l = |a: &str, v6only| KernelListener {
            addr: a.parse().unwrap(),
            ack_backlog: 0,
            max_ack_backlog: 10,
            inode: 1,
            v6only,
        };
        let set = [l("[::]:80", false), l("198.18.0.1:81", false)];
        assert_eq!(
            serving(&set, "198.18.0.1:80".parse().unwrap()),
            Some(&set[0])
        );
        assert_eq!(
            serving(&set, "198.18.0.1:81".parse().unwrap()),
            Some(&set[1])
        );
        assert_eq!(serving(&set, "198.18.0.2:81".parse().unwrap()), None);
        let v6only = [l("[::]:80", true)];
        assert_eq!(serving(&v6only, "198.18.0.1:80".parse().unwrap()), None);
        assert_eq!(
            serving(&v6only, "[2001:2::1]:80".parse().unwrap()),
            Some(&v6only[0])
        );
    }
}
