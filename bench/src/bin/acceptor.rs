//! `synline-acceptor`: a fast accept loop for the Linux kernel listener in the comparison.
//!
//! One listening socket (`listen(fd, --backlog)`, capped by `net.core.somaxconn`), `--threads`
//! threads blocked in `accept4()` on it, each connection closed at once with `SO_LINGER` 0,
//! so the kernel sends an RST, as `synline run` resets every connection it accepts (no FIN,
//! no TIME_WAIT). A python accept loop caps the kernel near 100k connections/s here; this one
//! costs a few microseconds per connection, on the cores it is pinned to.
//!
//! Prints `listening` on stdout when ready, and on SIGINT/SIGTERM the count it accepted.
//!
//! ```text
//! synline-acceptor --listen 198.18.0.1:8080 --backlog 65535 --threads 2 --cpus 1
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "synline-acceptor",
    about = "accept() and reset connections, fast"
)]
struct Cli {
    /// ADDR:PORT to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// listen()'s backlog (the kernel caps it at net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    backlog: i32,
    /// Accepting threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin accepting thread i to the i-th CPU of this list (round robin).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
}

fn check(r: libc::c_int, what: &str) -> Result<libc::c_int> {
    if r < 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(r)
}

fn listen(addr: SocketAddr, backlog: i32) -> Result<OwnedFd> {
    let fam = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscalls on a descriptor this function owns; the sockaddr structs are
    // zeroed, filled, and passed with their own size.
    unsafe {
        let fd = check(
            libc::socket(fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            "socket()",
        )?;
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        check(
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ),
            "setsockopt(SO_REUSEADDR)",
        )?;
        match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                check(
                    libc::bind(
                        fd.as_raw_fd(),
                        &sa as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    ),
                    "bind()",
                )?;
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                check(
                    libc::bind(
                        fd.as_raw_fd(),
                        &sa as *const _ as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    ),
                    "bind()",
                )?;
            }
        }
        check(libc::listen(fd.as_raw_fd(), backlog), "listen()")?;
        Ok(fd)
    }
}

fn pin(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; the call only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            "sched_setaffinity",
        )?;
    }
    Ok(())
}

/// Accepts until `stop`; a connection is reset at once (SO_LINGER 0, then close).
fn accept_loop(fd: libc::c_int, accepted: &AtomicU64, stop: &AtomicBool) -> Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: accept4 with null address pointers; the returned descriptor is ours and
        // closed below.
        let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        if c < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR | libc::ECONNABORTED | libc::EAGAIN) => continue,
                // shutdown() of the listener at the end.
                Some(libc::EINVAL | libc::EBADF) if stop.load(Ordering::Relaxed) => break,
                _ => return Err(e).context("accept4()"),
            }
        }
        // SAFETY: `c` is a socket this thread owns; linger is a valid struct of its size.
        unsafe {
            libc::setsockopt(
                c,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
            libc::close(c);
        }
        accepted.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let fd =
        listen(cli.listen, cli.backlog).with_context(|| format!("listening on {}", cli.listen))?;
    let raw = fd.as_raw_fd();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("sigaction")?;
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for i in 0..cli.threads {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        let cpu = (!cli.cpus.is_empty()).then(|| cli.cpus[i % cli.cpus.len()]);
        threads.push(std::thread::spawn(move || -> Result<()> {
            if let Some(c) = cpu {
                pin(c)?;
            }
            accept_loop(raw, &accepted, &stop)
        }));
    }
    println!("listening");
    std::io::stdout().flush()?;
    while !stop.load(Ordering::Relaxed) && !threads.iter().any(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    // Wakes the threads blocked in accept4() (EINVAL).
    // SAFETY: shutdown on the listening socket we own.
    unsafe { libc::shutdown(raw, libc::SHUT_RDWR) };
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("an accepting thread panicked"))??;
    }
    println!("accepted {}", accepted.load(Ordering::Relaxed));
    drop(fd);
    Ok(())
}
