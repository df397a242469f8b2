//! Attaching through a `bpf_link`, and finding out who holds an interface's XDP hook.
//!
//! A program attached the old way (netlink, `bpf_xdp_attach`) stays on the interface until
//! somebody detaches it: a daemon killed by SIGKILL leaves it there, and the next start fails
//! with EBUSY. A program attached through a link (`BPF_LINK_CREATE`) stays only as long as the
//! link's last file descriptor: when the process dies, whatever killed it, the kernel closes
//! its fds and detaches the program. synline attaches its XDP program (`BPF_XDP`) and its two
//! TC programs (`BPF_TCX_INGRESS`, kernel 6.6+) that way and pins nothing, so nothing of it
//! outlives the process.
//!
//! Before attaching, [`occupant`] says what already holds the hook: a program of an older
//! synline attached by netlink is replaced, anything else is named with the command that
//! removes it (xdp_prog.rs).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::query::{LinkInfoIter, LinkTypeInfo, ProgInfoIter, ProgInfoQueryOptions};

/// Where to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// XDP, with `XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`.
    Xdp(u32),
    /// tcx ingress (the successor of the clsact qdisc's ingress filters).
    TcxIngress,
}

/// Creates a link attaching `prog` at `hook` of interface `ifindex`; the program stays
/// attached while the returned fd (or a dup of it) is open.
pub fn create(prog: BorrowedFd<'_>, ifindex: u32, hook: Hook) -> io::Result<OwnedFd> {
    let target = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let (attach_type, flags) = match hook {
        Hook::Xdp(flags) => (libbpf_sys::BPF_XDP, flags),
        Hook::TcxIngress => (libbpf_sys::BPF_TCX_INGRESS, 0),
    };
    let opts = libbpf_sys::bpf_link_create_opts {
        sz: size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        flags,
        ..Default::default()
    };
    // SAFETY: `prog` is a live program fd for the duration of the call; `opts` is a fully
    // initialised struct whose `sz` tells libbpf its size; the kernel copies it and keeps no
    // pointer into it.
    let fd = unsafe { libbpf_sys::bpf_link_create(prog.as_raw_fd(), target, attach_type, &opts) };
    if fd < 0 {
        // libbpf returns -errno (and sets errno).
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a non-negative return is a new link fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A program found on an interface's XDP hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupant {
    /// Its id (`ip link` and `bpftool prog` show it).
    pub prog_id: u32,
    /// Its name (`synline_xdp` for synline's; `xdp_dispatcher` for libxdp's).
    pub name: String,
    /// Generic (skb) mode rather than native.
    pub generic: bool,
    /// The link that holds it, if it was attached through one: its owner process is alive
    /// (or the link is pinned in bpffs).
    pub link_id: Option<u32>,
}

impl Occupant {
    /// synline's own program (of this or an older version).
    pub fn is_synline(&self) -> bool {
        self.name == "synline_xdp"
    }

    /// libxdp's multi-program dispatcher (`xdp-loader`, `xdp_program__attach`).
    pub fn is_libxdp_dispatcher(&self) -> bool {
        self.name.starts_with("xdp_dispatcher")
    }
}

/// The program on `ifindex`'s XDP hook, if any (native or generic; hardware offload is not
/// looked at).
pub fn occupant(ifindex: u32) -> io::Result<Option<Occupant>> {
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let q = query(index)?;
    let (prog_id, generic) = if q.drv_prog_id != 0 {
        (q.drv_prog_id, false)
    } else if q.skb_prog_id != 0 {
        (q.skb_prog_id, true)
    } else {
        return Ok(None);
    };
    let name = ProgInfoIter::with_query_opts(ProgInfoQueryOptions::default())
        .find(|p| p.id == prog_id)
        .map(|p| p.name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let link_id = LinkInfoIter::default()
        .find(|l| {
            l.prog_id == prog_id && matches!(&l.info, LinkTypeInfo::Xdp(x) if x.ifindex == ifindex)
        })
        .map(|l| l.id);
    Ok(Some(Occupant {
        prog_id,
        name,
        generic,
        link_id,
    }))
}

fn query(ifindex: i32) -> io::Result<libbpf_sys::bpf_xdp_query_opts> {
    let mut opts = libbpf_sys::bpf_xdp_query_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_query_opts>() as _,
        ..Default::default()
    };
    // SAFETY: `opts` is a fully initialised struct whose `sz` is its size; libbpf writes only
    // within it and keeps no pointer after returning.
    let r = unsafe { libbpf_sys::bpf_xdp_query(ifindex, 0, &mut opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    Ok(opts)
}

/// The driver's XDP feature flags (`enum netdev_xdp_act`, kernel 6.3+; 0 where unknown).
pub fn xdp_features(ifindex: u32) -> io::Result<u64> {
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(query(index)?.feature_flags)
}

/// `NETDEV_XDP_ACT_BASIC`: the driver runs XDP programs natively.
pub const XDP_ACT_BASIC: u64 = 1 << 0;
/// `NETDEV_XDP_ACT_XSK_ZEROCOPY`: AF_XDP zero-copy.
pub const XDP_ACT_XSK_ZEROCOPY: u64 = 1 << 3;

/// Detaches `prog` from `ifindex` where it was attached by netlink (not a link) in the given
/// mode, only if it is still that program (`XDP_FLAGS_REPLACE` with `old_prog_fd`). EBUSY
/// when a link holds the hook.
pub fn detach_netlink(ifindex: u32, prog: BorrowedFd<'_>, generic: bool) -> io::Result<()> {
    let index = i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let opts = libbpf_sys::bpf_xdp_attach_opts {
        sz: size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
        old_prog_fd: prog.as_raw_fd(),
        ..Default::default()
    };
    let mode = if generic {
        libbpf_sys::XDP_FLAGS_SKB_MODE
    } else {
        libbpf_sys::XDP_FLAGS_DRV_MODE
    };
    // SAFETY: `opts` is fully initialised with its size; `prog` is live for the call.
    let r =
        unsafe { libbpf_sys::bpf_xdp_detach(index, mode | libbpf_sys::XDP_FLAGS_REPLACE, &opts) };
    if r < 0 {
        return Err(io::Error::from_raw_os_error(-r));
    }
    Ok(())
}
