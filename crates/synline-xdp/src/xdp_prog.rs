//! The loader of `synline_xdp` (`bpf/synline.bpf.c`): load it, tell it the listeners, attach it
//! to an interface, give it each queue's AF_XDP socket, read its counters.
//!
//! The program sends to the rx queue's AF_XDP socket exactly the TCP segments addressed to a
//! listener in its `listeners` map (the exact address first, then the wildcard of the same
//! family, as the engine's listener lookup does), and passes everything else to the
//! kernel stack. Why each frame went where it went is in [`XdpCounters`].

use std::fmt;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, MapCore, MapFlags, MapHandle, OpenObject, Program, ProgramInput, TcHookBuilder, Xdp,
    XdpFlags, TC_INGRESS,
};

use crate::link::{self, Hook, Occupant};

/// Handle and priority of the clsact TC filters that synline attached before it used tcx
/// links: a filter an older version left behind is removed when the handoff starts.
const LEGACY_TC_HANDLE: u32 = 0x5e1;
const LEGACY_TC_PRIORITY: u32 = 1;

use crate::bpf::{types, SynlineSkel, SynlineSkelBuilder};

/// Bytes of a key of the `listeners` map (`struct listener_key` in `bpf/synline.h`):
///
/// ```text
///   0      1      2             4                                  20
///   +------+------+-------------+----------------------------------+
///   |family| pad  | port (be16) | addr: 16 bytes, network order    |
///   +------+------+-------------+----------------------------------+
/// ```
///
/// `family` is 4 or 6, `pad` 0; an IPv4 address fills `addr[0..4]` and leaves the rest zero.
/// An all-zero `addr` is the wildcard of its family for that port.
pub const LISTENER_KEY_LEN: usize = 20;

// The C compiler laid the struct out; its BTF produced `types::listener_key`. These fail the
// build if `synline.h` and `listener_key_bytes` ever disagree.
const _: () = assert!(size_of::<types::listener_key>() == LISTENER_KEY_LEN);
const _: () = assert!(offset_of!(types::listener_key, port) == 2);
const _: () = assert!(offset_of!(types::listener_key, addr) == 4);
const _: () = assert!(size_of::<types::listener_val>() == LISTENER_VAL_LEN);

/// Bytes of a value of the `listeners` map (`struct listener_val` in `bpf/synline.h`).
const LISTENER_VAL_LEN: usize = 20;

/// Bytes of a `listen_ports` element (`struct port_entry` in `bpf/synline.h`):
///
/// ```text
///   0      1      2      4                        24                       44     48
///   +------+------+------+------------------------+------------------------+------+
///   |kinds |single| pad  | listener_key (20)      | listener_val (20)      | pad  |
///   +------+------+------+------------------------+------------------------+------+
/// ```
const PORT_ENTRY_LEN: usize = 48;
const _: () = assert!(size_of::<types::port_entry>() == PORT_ENTRY_LEN);
const _: () = assert!(offset_of!(types::port_entry, key) == 4);
const _: () = assert!(offset_of!(types::port_entry, val) == 24);

/// The bit of a `listen_ports` entry (bpf/maps.h) that a listener key stands for: exact
/// address or wildcard.
fn port_kind(key: &[u8]) -> u8 {
    if key[4..LISTENER_KEY_LEN].iter().all(|&b| b == 0) {
        0x2
    } else {
        0x1
    }
}

/// The index of `addr`'s entry in `listen_ports` (bpf/maps.h): the port, plus 65536 for IPv6.
fn port_index(addr: SocketAddr) -> u32 {
    u32::from(addr.port()) + if addr.is_ipv6() { 65536 } else { 0 }
}

/// `struct listener_key` for `addr`. An IPv4-mapped IPv6 address stays IPv6: like the engine's
/// listener table, the program matches families as they are on the wire.
pub fn listener_key_bytes(addr: SocketAddr) -> [u8; LISTENER_KEY_LEN] {
    let mut key = [0u8; LISTENER_KEY_LEN];
    match addr {
        SocketAddr::V4(a) => {
            key[0] = 4;
            key[4..8].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            key[0] = 6;
            key[4..20].copy_from_slice(&a.ip().octets());
        }
    }
    key[2..4].copy_from_slice(&addr.port().to_be_bytes());
    key
}

/// How to attach the program to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (`XDP_FLAGS_DRV_MODE`): before any skb is built. veth has it.
    Native,
    /// In the generic stack (`XDP_FLAGS_SKB_MODE`): works on every interface, after an skb has
    /// been allocated; AF_XDP then only runs in copy mode.
    Generic,
    /// Native, else generic when the driver has no native XDP (`EOPNOTSUPP`) or refuses this
    /// program's settings (`EINVAL`, e.g. an MTU too large for it).
    Auto,
}

impl AttachMode {
    fn link_flags(self) -> u32 {
        self.flags().bits()
    }

    fn flags(self) -> XdpFlags {
        match self {
            AttachMode::Native => XdpFlags::DRV_MODE,
            AttachMode::Generic => XdpFlags::SKB_MODE,
            // Only asked of the kernel after being resolved to one of the two above.
            AttachMode::Auto => XdpFlags::NONE,
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Auto => "auto",
        })
    }
}

/// What an XDP program returned (`enum xdp_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpAction {
    /// `XDP_ABORTED`.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: the kernel stack gets the frame.
    Pass,
    /// `XDP_TX`.
    Tx,
    /// `XDP_REDIRECT`: to the AF_XDP socket of the rx queue.
    Redirect,
    /// Anything else.
    Other(u32),
}

impl XdpAction {
    /// The action of a return value.
    pub fn from_raw(v: u32) -> Self {
        use libbpf_rs::libbpf_sys as sys;
        match v {
            sys::XDP_ABORTED => XdpAction::Aborted,
            sys::XDP_DROP => XdpAction::Drop,
            sys::XDP_PASS => XdpAction::Pass,
            sys::XDP_TX => XdpAction::Tx,
            sys::XDP_REDIRECT => XdpAction::Redirect,
            v => XdpAction::Other(v),
        }
    }
}

/// The program's counters (`enum synline_counter` in `bpf/synline.h`), summed over CPUs.
///
/// Every frame counts once in `redirected` or `passed`; every passed frame also counts once in
/// exactly one reason, so `passed` is the sum of `no_socket` through `malformed` and
/// `kernel_flow`. The `tc_*` counters are the TC programs' of the kernel handoff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Addressed to a listener and redirected to the rx queue's AF_XDP socket.
    pub redirected: u64,
    /// Passed to the kernel stack, for any of the reasons below.
    pub passed: u64,
    /// Addressed to a listener, but no AF_XDP socket is registered for the rx queue: the
    /// kernel got it (and will answer with a RST). A setup error when non-zero.
    pub no_socket: u64,
    /// TCP to no listener (neither exact nor wildcard).
    pub not_listener: u64,
    /// IP, but not TCP (ICMP, UDP...).
    pub not_tcp: u64,
    /// Not IP (ARP, LLDP, a second VLAN tag...).
    pub not_ip: u64,
    /// IPv6 with an extension header: not parsed, so never matched.
    pub ipv6_ext_hdr: u64,
    /// IPv4 fragment: the engine does not reassemble.
    pub ip_fragment: u64,
    /// Truncated, or an impossible header field.
    pub malformed: u64,
    /// Kernel handoff on: a segment of a connection the kernel owns (its socket, or a flow
    /// the engine handed over), passed untouched.
    pub kernel_flow: u64,
    /// TC: `bpf_sk_assign_tcp_reqsk()` took a handed-over segment.
    pub tc_assigned: u64,
    /// TC: the kfunc refused a handed-over segment ([`XdpProgram::last_assign_errno`]); the
    /// kernel resets the peer.
    pub tc_assign_failed: u64,
    /// TC: a handed-over segment found no kernel listener (the application is gone); the
    /// kernel resets the peer.
    pub tc_no_listener: u64,
    /// TC: a handed-over flow whose kernel socket exists now; its `handed` entry removed.
    pub tc_established: u64,
    /// TC: frames re-injected through the TAP and sent into the NIC's ingress.
    pub tc_reinjected: u64,
    /// TC: a segment of a handed-over flow other than the handshake's next, before the kernel
    /// has the socket: dropped (it must not make a request from the wrong ISNs); resent.
    pub tc_held: u64,
    /// The flood path: a SYN answered in XDP with a cookie SYN-ACK (XDP_TX). Every such SYN
    /// also counts, for the engine's counters, as InSegs, SynRecv, SyncookiesSent, SynAckSent
    /// and OutSegs (the daemon adds them in).
    pub cookie_synacks: u64,
    /// ... of a listener in mode 1 (the engine's TCPReqQFullDoCookies).
    pub cookie_reqqfull: u64,
    /// A SYN to a listener in cookie mode that the XDP program left to the engine (not the
    /// plain case: IP options, data, a bad checksum, an unusual option list; no secrets yet).
    pub cookie_to_engine: u64,
    /// A frame resized for a cookie SYN-ACK that could not be rewritten: dropped.
    pub cookie_failed: u64,
}

/// Number of slots of the `counters` map (`SYNLINE_CNT_MAX`).
const COUNTER_SLOTS: u32 = 20;

impl XdpCounters {
    /// Names in nstat style, with their values, in map slot order.
    pub fn named(&self) -> [(&'static str, u64); COUNTER_SLOTS as usize] {
        [
            ("SynlineXdpRedirected", self.redirected),
            ("SynlineXdpPassed", self.passed),
            ("SynlineXdpNoSocket", self.no_socket),
            ("SynlineXdpNotListener", self.not_listener),
            ("SynlineXdpNotTcp", self.not_tcp),
            ("SynlineXdpNotIp", self.not_ip),
            ("SynlineXdpIpv6ExtHdr", self.ipv6_ext_hdr),
            ("SynlineXdpIpFragment", self.ip_fragment),
            ("SynlineXdpMalformed", self.malformed),
            ("SynlineXdpKernelFlow", self.kernel_flow),
            ("SynlineTcAssigned", self.tc_assigned),
            ("SynlineTcAssignFailed", self.tc_assign_failed),
            ("SynlineTcNoListener", self.tc_no_listener),
            ("SynlineTcEstablished", self.tc_established),
            ("SynlineTcReinjected", self.tc_reinjected),
            ("SynlineTcHeld", self.tc_held),
            ("SynlineXdpCookieSynAcks", self.cookie_synacks),
            ("SynlineXdpCookieReqQFull", self.cookie_reqqfull),
            ("SynlineXdpCookieToEngine", self.cookie_to_engine),
            ("SynlineXdpCookieFailed", self.cookie_failed),
        ]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut u64 {
        match slot {
            0 => &mut self.redirected,
            1 => &mut self.passed,
            2 => &mut self.no_socket,
            3 => &mut self.not_listener,
            4 => &mut self.not_tcp,
            5 => &mut self.not_ip,
            6 => &mut self.ipv6_ext_hdr,
            7 => &mut self.ip_fragment,
            8 => &mut self.malformed,
            9 => &mut self.kernel_flow,
            10 => &mut self.tc_assigned,
            11 => &mut self.tc_assign_failed,
            12 => &mut self.tc_no_listener,
            13 => &mut self.tc_established,
            14 => &mut self.tc_reinjected,
            15 => &mut self.tc_held,
            16 => &mut self.cookie_synacks,
            17 => &mut self.cookie_reqqfull,
            18 => &mut self.cookie_to_engine,
            _ => &mut self.cookie_failed,
        }
    }
}

/// A failed BPF call, named as libbpf names it.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The kernel handoff's TC program: `bpf_link_create` (tcx ingress, kernel 6.6+).
    #[error("{call} on ifindex {ifindex} (tcx ingress): {source}")]
    Tc {
        /// The call.
        call: &'static str,
        /// The interface.
        ifindex: u32,
        /// Why.
        source: std::io::Error,
    },
    /// Another program holds the interface's XDP hook (see [`Occupant`] for what it is).
    #[error("ifindex {ifindex} already runs XDP program {} (id {}{}){}", .occupant.name, .occupant.prog_id, if .occupant.generic { ", generic mode" } else { "" }, match .occupant.link_id { Some(l) => format!(", held by bpf_link {l} of a running process"), None => String::new() })]
    Occupied {
        /// The interface.
        ifindex: u32,
        /// What is there.
        occupant: Occupant,
    },
    /// Asking the kernel what holds the XDP hook (`bpf_xdp_query`), or removing an older
    /// synline's program (`bpf_xdp_detach`).
    #[error("{call} on ifindex {ifindex}: {source}")]
    Query {
        /// The call.
        call: &'static str,
        /// The interface.
        ifindex: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The program's `.bss` is not memory-mapped (a libbpf without mmap support).
    #[error("the XDP program's .bss is not mmapped")]
    NoBss,
    /// Duplicating a map's fd for a worker.
    #[error("dup the fd of map handed: {0}")]
    MapHandle(#[source] libbpf_rs::Error),
    /// Opening the embedded object (parsing the ELF, no syscall yet).
    #[error("bpf_object__open_skeleton (synline.bpf.o): {0}")]
    Open(#[source] libbpf_rs::Error),
    /// Creating the maps and loading the program: EPERM without root/CAP_BPF; a verifier
    /// rejection is logged by libbpf on stderr.
    #[error("bpf_object__load_skeleton (synline.bpf.o): {0}")]
    Load(#[source] libbpf_rs::Error),
    /// The interface index does not fit the kernel's `int`.
    #[error("ifindex {0} out of range")]
    BadIfindex(u32),
    /// Attaching in one mode (`bpf_link_create`, `BPF_XDP`).
    #[error("bpf_link_create (BPF_XDP) on ifindex {ifindex} ({mode} mode): {source}")]
    Attach {
        /// Interface.
        ifindex: u32,
        /// Mode asked for.
        mode: AttachMode,
        /// Why.
        source: std::io::Error,
    },
    /// [`AttachMode::Auto`]: native failed in a way that allowed a fallback, then generic failed.
    #[error("bpf_link_create (BPF_XDP) on ifindex {ifindex}: native mode: {native}; generic mode: {generic}")]
    AttachAuto {
        /// Interface.
        ifindex: u32,
        /// Why native failed.
        native: std::io::Error,
        /// Why generic failed.
        #[source]
        generic: std::io::Error,
    },
    /// Asking the id of our own program.
    #[error("bpf_prog_get_info_by_fd (synline_xdp): {0}")]
    ProgId(#[source] libbpf_rs::Error),
    /// Adding or removing a listener.
    #[error("{call} on map listeners ({addr}): {source}")]
    Listener {
        /// `bpf_map_update_elem` or `bpf_map_delete_elem`.
        call: &'static str,
        /// The listener.
        addr: SocketAddr,
        /// Why (E2BIG: the map is full).
        source: libbpf_rs::Error,
    },
    /// Registering or removing a queue's AF_XDP socket.
    #[error("{call} on map xsks_map (queue {queue}): {source}")]
    Socket {
        /// `bpf_map_update_elem` or `bpf_map_delete_elem`.
        call: &'static str,
        /// rx queue index.
        queue: u32,
        /// Why (EOPNOTSUPP: not a bound AF_XDP socket; E2BIG: queue beyond the map).
        source: libbpf_rs::Error,
    },
    /// Reading a counter.
    #[error("bpf_map_lookup_elem on map counters (slot {slot}): {source}")]
    Counters {
        /// Slot of `enum synline_counter`.
        slot: u32,
        /// Why.
        source: libbpf_rs::Error,
    },
    /// Running the program on a frame.
    #[error("bpf_prog_test_run_opts (synline_xdp, {len} bytes): {source}")]
    TestRun {
        /// Frame length (the kernel refuses fewer than 14 bytes).
        len: usize,
        /// Why.
        source: libbpf_rs::Error,
    },
}

impl XdpError {
    /// The program could not be loaded for lack of privilege (not root, no CAP_BPF).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, XdpError::Load(e) if e.kind() == ErrorKind::PermissionDenied)
    }
}

/// An interface this loader attached the program to, how, and the link that keeps it there.
#[derive(Debug)]
struct Attachment {
    ifindex: u32,
    mode: AttachMode,
    /// Closing it detaches the program (link.rs); so does the death of the process.
    _link: OwnedFd,
}

/// The loaded program and its maps. Dropping it detaches the program from every interface it
/// was attached to by [`XdpProgram::attach`], then unloads it. Everything is attached through
/// `bpf_link`s (link.rs): if the process dies instead, the kernel detaches it all.
///
/// Not `Send`: libbpf's object is used from the thread that loaded it. The AF_XDP sockets and
/// the workers do not need it once [`XdpProgram::set_socket`] has run.
pub struct XdpProgram {
    skel: SynlineSkel<'static>,
    attached: Vec<Attachment>,
    /// tcx links of the kernel handoff (NIC ingress, TAP ingress), detached with the program.
    tc: Vec<(u32, OwnedFd)>,
    /// The id of an older synline's program that [`XdpProgram::attach`] replaced.
    replaced: Option<u32>,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the embedded object: creates the maps (empty: no listener, no socket) and runs
    /// the verifier. Needs root or CAP_BPF + CAP_NET_ADMIN.
    pub fn load() -> Result<Self, XdpError> {
        // The skeleton borrows the slot that holds its libbpf object for as long as it lives.
        // A 'static slot keeps this type free of a lifetime, at the price of one pointer-sized
        // allocation per load that is never freed; the BPF object in it is closed on drop.
        let slot: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
        let open = SynlineSkelBuilder::default()
            .open(slot)
            .map_err(XdpError::Open)?;
        let skel = open.load().map_err(XdpError::Load)?;
        Ok(XdpProgram {
            skel,
            attached: Vec::new(),
            tc: Vec::new(),
            replaced: None,
        })
    }

    /// Adds a listener: the program will redirect TCP segments to `addr`. An unspecified
    /// address (`0.0.0.0:P`, `[::]:P`) is the wildcard of its family. Adding twice is harmless.
    pub fn add_listener(&self, addr: SocketAddr) -> Result<(), XdpError> {
        let value = [0u8; LISTENER_VAL_LEN];
        self.skel
            .maps
            .listeners
            .update(&listener_key_bytes(addr), &value, MapFlags::ANY)
            .map_err(|source| XdpError::Listener {
                call: "bpf_map_update_elem",
                addr,
                source,
            })?;
        // After the listener is in the map (maps.h: a set bit always finds it).
        self.write_port_entry(addr, None)
    }

    /// Removes a listener; `false` if it was not there.
    pub fn remove_listener(&self, addr: SocketAddr) -> Result<bool, XdpError> {
        // Before it leaves the map: its bit goes unless another listener needs it.
        self.write_port_entry(addr, Some(addr))?;
        match self.skel.maps.listeners.delete(&listener_key_bytes(addr)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(XdpError::Listener {
                call: "bpf_map_delete_elem",
                addr,
                source,
            }),
        }
    }

    /// Rewrites `addr`'s entry of `listen_ports` (bpf/maps.h) from the listeners of its family
    /// on its port in the map, leaving out `leaving`: which of exact address and wildcard exist, so
    /// that the program looks up only what can hit, and, when one listener is left, a copy of
    /// its key and value, so that the program needs no hash lookup for it. A control-plane walk
    /// over at most `SYNLINE_MAX_LISTENERS` keys, once per listener change.
    fn write_port_entry(
        &self,
        addr: SocketAddr,
        leaving: Option<SocketAddr>,
    ) -> Result<(), XdpError> {
        let (port, family) = (addr.port(), listener_key_bytes(addr)[0]);
        let leaving = leaving.map(listener_key_bytes);
        let mut kinds = 0u8;
        let mut on_port = Vec::new();
        for key in self.skel.maps.listeners.keys() {
            if key.len() != LISTENER_KEY_LEN
                || key[0] != family
                || u16::from_be_bytes([key[2], key[3]]) != port
                || leaving.is_some_and(|l| l[..] == key[..])
            {
                continue;
            }
            kinds |= port_kind(&key);
            on_port.push(key);
        }
        let mut entry = [0u8; PORT_ENTRY_LEN];
        entry[0] = kinds;
        let mut single = false;
        if let [key] = &on_port[..] {
            let value = self
                .skel
                .maps
                .listeners
                .lookup(key, MapFlags::ANY)
                .map_err(|source| XdpError::Listener {
                    call: "bpf_map_lookup_elem",
                    addr,
                    source,
                })?;
            if let Some(v) = value.filter(|v| v.len() == LISTENER_VAL_LEN) {
                entry[4..24].copy_from_slice(key);
                entry[24..44].copy_from_slice(&v);
                single = true;
            }
        }
        // `single` flips only in a write that keeps key and value (maps.h): off before the
        // key changes, on after the new key is in place.
        let old = self.read_port(addr)?;
        if old[1] == 1 && old[4..44] != entry[4..44] {
            let mut off = old;
            off[1] = 0;
            self.write_port(addr, &off)?;
        }
        self.write_port(addr, &entry)?;
        if single {
            entry[1] = 1;
            self.write_port(addr, &entry)?;
        }
        Ok(())
    }

    /// `addr`'s entry of `listen_ports` as it is now.
    fn read_port(&self, addr: SocketAddr) -> Result<[u8; PORT_ENTRY_LEN], XdpError> {
        let current = self
            .skel
            .maps
            .listen_ports
            .lookup(&port_index(addr).to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| XdpError::Listener {
                call: "bpf_map_lookup_elem(listen_ports)",
                addr,
                source,
            })?;
        Ok(current
            .and_then(|e| <[u8; PORT_ENTRY_LEN]>::try_from(e).ok())
            .unwrap_or([0; PORT_ENTRY_LEN]))
    }

    /// `addr`'s entry of `listen_ports` becomes `entry`.
    fn write_port(&self, addr: SocketAddr, entry: &[u8; PORT_ENTRY_LEN]) -> Result<(), XdpError> {
        self.skel
            .maps
            .listen_ports
            .update(&port_index(addr).to_ne_bytes(), entry, MapFlags::ANY)
            .map_err(|source| XdpError::Listener {
                call: "bpf_map_update_elem(listen_ports)",
                addr,
                source,
            })
    }

    /// The copy of a port's only listener's value follows its updates (bpf/maps.h): when
    /// `addr`'s entry of `listen_ports` holds `addr`'s key, its value becomes `value`. Two system
    /// calls, as the daemon calls this for every listener every 50 ms.
    fn refresh_port_copy(
        &self,
        addr: SocketAddr,
        value: &[u8; LISTENER_VAL_LEN],
    ) -> Result<(), XdpError> {
        let key = listener_key_bytes(addr);
        let mut entry = self.read_port(addr)?;
        if entry[1] != 1 || entry[4..24] != key[..] || entry[24..44] == value[..] {
            return Ok(());
        }
        entry[24..44].copy_from_slice(value);
        self.write_port(addr, &entry)
    }

    /// The flood path (bpf/cookie.h): what the program needs of listener `addr` to answer its
    /// SYNs with cookie SYN-ACKs itself, byte for byte as the engine would, and whether it
    /// should (`cookie`: the listener is in cookie mode and its accept queue has room). Only
    /// updates a listener that is in the map (`false` if it is not: the kernel handoff may
    /// have taken it out while nobody listens).
    pub fn set_listener_cookie(
        &self,
        addr: SocketAddr,
        cfg: &synline_core::ListenerConfig,
        cookie: bool,
    ) -> Result<bool, XdpError> {
        let v6 = addr.is_ipv6();
        let v = types::listener_val {
            cookie: u32::from(cookie),
            timestamps: cfg.timestamps,
            sack: u8::from(cfg.sack),
            wscale_ok: u8::from(cfg.window_scaling),
            ecn: u8::from(cfg.ecn != 0),
            rcv_wscale: cfg.rcv_wscale(),
            ttl: cfg.ttl,
            tclass: if v6 { cfg.tclass } else { 0 },
            mode1: u8::from(cfg.syncookies == synline_core::SyncookieMode::WhenFull),
            maxseg: cfg.maxseg,
            adv_mss: cfg.adv_mss(v6),
            wnd_ts: cfg.rcv_wnd(v6, true),
            wnd_nots: cfg.rcv_wnd(v6, false),
        };
        // The map takes bytes: the fields in `struct listener_val` order (bpf/synline.h; the
        // size is checked at compile time above), host byte order.
        let mut value = [0u8; LISTENER_VAL_LEN];
        value[0..4].copy_from_slice(&v.cookie.to_ne_bytes());
        value[4..12].copy_from_slice(&[
            v.timestamps,
            v.sack,
            v.wscale_ok,
            v.ecn,
            v.rcv_wscale,
            v.ttl,
            v.tclass,
            v.mode1,
        ]);
        value[12..14].copy_from_slice(&v.maxseg.to_ne_bytes());
        value[14..16].copy_from_slice(&v.adv_mss.to_ne_bytes());
        value[16..18].copy_from_slice(&v.wnd_ts.to_ne_bytes());
        value[18..20].copy_from_slice(&v.wnd_nots.to_ne_bytes());
        match self
            .skel
            .maps
            .listeners
            .update(&listener_key_bytes(addr), &value, MapFlags::EXIST)
        {
            Ok(()) => self.refresh_port_copy(addr, &value).map(|()| true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(source) => Err(XdpError::Listener {
                call: "bpf_map_update_elem",
                addr,
                source,
            }),
        }
    }

    /// The flood path's secrets: the cookie pair the engine issues cookies with now, the
    /// timestamp-offset and flow-label keys, and the clock offset of the cookie minute
    /// (`StackConfig::cookie_clock_offset`). Written into the slot not in use, then made
    /// current, so the program never reads a pair half written. Call again at each rotation.
    pub fn set_cookie_secrets(
        &mut self,
        cookie: [[u8; 16]; 2],
        ts_off: [u8; 16],
        flow_label: [u8; 16],
        clock_offset: std::time::Duration,
    ) -> Result<(), XdpError> {
        let bss = self.bss()?;
        let next = (bss.cookie_slot as usize + 1) & 1;
        let k = &mut bss.cookie_keys[next];
        k.cookie = cookie;
        k.ts_off = ts_off;
        k.flow_label = flow_label;
        k.clock_offset_ns = clock_offset.as_nanos() as u64;
        k.ready = 1;
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        bss.cookie_slot = next as u32;
        Ok(())
    }

    /// Tests: the flood path's clock, fixed at `now` on the monotonic clock (`None`: the real
    /// `bpf_ktime_get_ns()`), so its SYN-ACKs can be compared with the engine's at the same
    /// instant.
    #[doc(hidden)]
    pub fn set_cookie_test_clock(
        &mut self,
        now: Option<std::time::Duration>,
    ) -> Result<(), XdpError> {
        let bss = self.bss()?;
        bss.cookie_test_now_ns = now.map_or(0, |d| d.as_nanos() as u64);
        // BPF_PROG_TEST_RUN has no AF_XDP socket on its queue: answer there anyway.
        bss.cookie_test_no_socket = u32::from(now.is_some());
        Ok(())
    }

    /// Registers the AF_XDP socket bound to rx queue `queue`: segments for a listener that
    /// arrive on that queue go to it. The kernel takes its own reference to the socket.
    pub fn set_socket(&self, queue: u32, socket: BorrowedFd<'_>) -> Result<(), XdpError> {
        let fd = socket.as_raw_fd() as u32;
        self.skel
            .maps
            .xsks_map
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| XdpError::Socket {
                call: "bpf_map_update_elem",
                queue,
                source,
            })
    }

    /// Forgets the socket of `queue`: its segments for a listener then reach the kernel and
    /// count as [`XdpCounters::no_socket`].
    pub fn clear_socket(&self, queue: u32) -> Result<(), XdpError> {
        match self.skel.maps.xsks_map.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(XdpError::Socket {
                call: "bpf_map_delete_elem",
                queue,
                source,
            }),
        }
    }

    /// Attaches the program to interface `ifindex` through a `bpf_link`; returns the mode it
    /// runs in (never [`AttachMode::Auto`]).
    ///
    /// What already holds the hook decides: nothing, fine; synline's own program attached by
    /// netlink (an older version, or one killed before it used links) is detached first and
    /// its id kept ([`XdpProgram::replaced`]); anything else, including a running synline
    /// (its link), is [`XdpError::Occupied`].
    pub fn attach(&mut self, ifindex: u32, mode: AttachMode) -> Result<AttachMode, XdpError> {
        i32::try_from(ifindex).map_err(|_| XdpError::BadIfindex(ifindex))?;
        let query = |call, source| XdpError::Query {
            call,
            ifindex,
            source,
        };
        if let Some(o) = link::occupant(ifindex).map_err(|e| query("bpf_xdp_query", e))? {
            if !o.is_synline() || o.link_id.is_some() {
                return Err(XdpError::Occupied {
                    ifindex,
                    occupant: o,
                });
            }
            let old = Program::fd_from_id(o.prog_id).map_err(|e| {
                query(
                    "bpf_prog_get_fd_by_id",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            match link::detach_netlink(ifindex, old.as_fd(), o.generic) {
                Ok(()) => self.replaced = Some(o.prog_id),
                // Raced with its owner, or a link after all: say who is there.
                Err(_) => {
                    return Err(XdpError::Occupied {
                        ifindex,
                        occupant: link::occupant(ifindex)
                            .map_err(|e| query("bpf_xdp_query", e))?
                            .unwrap_or(o),
                    })
                }
            }
        }
        let prog = self.skel.progs.synline_xdp.as_fd();
        let try_mode = |m: AttachMode| link::create(prog, ifindex, Hook::Xdp(m.link_flags()));
        let (used, link) = match mode {
            AttachMode::Native | AttachMode::Generic => {
                let l = try_mode(mode).map_err(|source| XdpError::Attach {
                    ifindex,
                    mode,
                    source,
                })?;
                (mode, l)
            }
            AttachMode::Auto => match try_mode(AttachMode::Native) {
                Ok(l) => (AttachMode::Native, l),
                Err(native)
                    if matches!(
                        native.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL)
                    ) =>
                {
                    let l =
                        try_mode(AttachMode::Generic).map_err(|generic| XdpError::AttachAuto {
                            ifindex,
                            native,
                            generic,
                        })?;
                    (AttachMode::Generic, l)
                }
                Err(source) => {
                    return Err(XdpError::Attach {
                        ifindex,
                        mode: AttachMode::Native,
                        source,
                    })
                }
            },
        };
        self.attached.push(Attachment {
            ifindex,
            mode: used,
            _link: link,
        });
        Ok(used)
    }

    /// The id of an older synline's program that [`XdpProgram::attach`] found attached by
    /// netlink and replaced.
    pub fn replaced(&self) -> Option<u32> {
        self.replaced
    }

    /// Attaches the program the way synline did before it used links (netlink, no link):
    /// it then stays after the process ends. Only for tests of [`XdpProgram::attach`]'s
    /// replacement of such a leftover.
    #[doc(hidden)]
    pub fn attach_netlink_for_test(&self, ifindex: u32, mode: AttachMode) -> Result<(), XdpError> {
        let index = i32::try_from(ifindex).map_err(|_| XdpError::BadIfindex(ifindex))?;
        Xdp::new(self.skel.progs.synline_xdp.as_fd())
            .attach(index, XdpFlags::UPDATE_IF_NOEXIST | mode.flags())
            .map_err(|e| XdpError::Attach {
                ifindex,
                mode,
                source: std::io::Error::other(e.to_string()),
            })
    }

    /// Detaches the program from `ifindex` if this loader attached it there (a link only ever
    /// detaches its own program).
    pub fn detach(&mut self, ifindex: u32) -> Result<(), XdpError> {
        // Closing the link detaches.
        self.attached.retain(|a| a.ifindex != ifindex);
        Ok(())
    }

    /// Turns the kernel handoff on (see `bpf/synline.bpf.c`): `synline_tc` on the ingress of
    /// the NIC `nic` and `synline_tap` on the ingress of the TAP `tap`, which sends re-injected
    /// frames into the NIC's ingress; then the XDP program starts passing the segments of
    /// kernel-owned connections. Detached with the program.
    pub fn attach_handoff(&mut self, nic: u32, tap: u32) -> Result<(), XdpError> {
        for (ifindex, prog) in [
            (nic, self.skel.progs.synline_tc.as_fd()),
            (tap, self.skel.progs.synline_tap.as_fd()),
        ] {
            let index = i32::try_from(ifindex).map_err(|_| XdpError::BadIfindex(ifindex))?;
            // A clsact filter of a synline from before tcx links (killed, so it never removed
            // it) would run the old program's TC side on every segment: remove it. Nothing
            // there is the usual case; the qdisc stays (other tools' filters may hang on it).
            let _ = TcHookBuilder::new(prog)
                .ifindex(index)
                .handle(LEGACY_TC_HANDLE)
                .priority(LEGACY_TC_PRIORITY)
                .hook(TC_INGRESS)
                .detach();
            let l =
                link::create(prog, ifindex, Hook::TcxIngress).map_err(|source| XdpError::Tc {
                    call: "bpf_link_create (BPF_TCX_INGRESS)",
                    ifindex,
                    source,
                })?;
            self.tc.push((ifindex, l));
        }
        let bss = self.bss()?;
        bss.nic_ifindex = nic;
        bss.handoff_on = 1;
        Ok(())
    }

    /// Turns the XDP side of the kernel handoff on or off without the TC side: segments of
    /// kernel-owned and handed-over connections pass (for tests and the per-packet cost
    /// measurement; [`XdpProgram::attach_handoff`] does it for the daemon).
    pub fn set_kernel_flows(&mut self, on: bool) -> Result<(), XdpError> {
        self.bss()?.handoff_on = u32::from(on);
        Ok(())
    }

    /// The program's globals (`.bss`), memory-mapped: writes reach the running program.
    fn bss(&mut self) -> Result<&mut crate::bpf::types::bss, XdpError> {
        self.skel
            .maps
            .bss_data
            .as_deref_mut()
            .ok_or(XdpError::NoBss)
    }

    /// A handle on the `handed` map for the workers (it may move to their threads).
    pub fn handed_map(&self) -> Result<MapHandle, XdpError> {
        MapHandle::try_from(&self.skel.maps.handed).map_err(XdpError::MapHandle)
    }

    /// The last error `bpf_sk_assign_tcp_reqsk()` returned (a negative errno; 0: none yet).
    pub fn last_assign_errno(&self) -> i64 {
        self.skel
            .maps
            .bss_data
            .as_deref()
            .map_or(0, |b| b.last_assign_errno)
    }

    /// Detaches from every interface (closes the links). XDP goes first: while it runs with
    /// the kernel handoff on, established segments keep passing.
    pub fn detach_all(&mut self) -> Result<(), XdpError> {
        self.attached.clear();
        self.tc.clear();
        Ok(())
    }

    /// The mode the program runs in on `ifindex`, if this loader attached it there.
    pub fn attached_mode(&self, ifindex: u32) -> Option<AttachMode> {
        self.attached
            .iter()
            .find(|a| a.ifindex == ifindex)
            .map(|a| a.mode)
    }

    /// The kernel's id of the loaded program (as `ip link` and `bpftool` show it).
    pub fn prog_id(&self) -> Result<u32, XdpError> {
        Program::id_from_fd(self.skel.progs.synline_xdp.as_fd()).map_err(XdpError::ProgId)
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let mut c = XdpCounters::default();
        for slot in 0..COUNTER_SLOTS {
            let per_cpu = self
                .skel
                .maps
                .counters
                .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| XdpError::Counters { slot, source })?
                .unwrap_or_default();
            let total = per_cpu
                .iter()
                .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                .fold(0u64, u64::wrapping_add);
            *c.slot_mut(slot) = total;
        }
        Ok(c)
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN) and returns its action and the
    /// frame as the program left it (an XDP_TX reply, say).
    pub fn test_run_output(&self, frame: &[u8]) -> Result<(XdpAction, Vec<u8>), XdpError> {
        let mut out = vec![0u8; frame.len() + 256];
        let input = ProgramInput {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..ProgramInput::default()
        };
        let o = self
            .skel
            .progs
            .synline_xdp
            .test_run(input)
            .map_err(|source| XdpError::TestRun {
                len: frame.len(),
                source,
            })?;
        let data = o.data.map(|d| d.to_vec()).unwrap_or_default();
        Ok((XdpAction::from_raw(o.return_value), data))
    }

    /// Runs the program `repeat` times on `frame` (BPF_PROG_TEST_RUN) and returns its action
    /// and the kernel's mean time per run: the program's own cost per frame, without a NIC.
    pub fn test_run_repeat(
        &self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(XdpAction, std::time::Duration), XdpError> {
        let input = ProgramInput {
            data_in: Some(frame),
            repeat,
            ..ProgramInput::default()
        };
        let out = self
            .skel
            .progs
            .synline_xdp
            .test_run(input)
            .map_err(|source| XdpError::TestRun {
                len: frame.len(),
                source,
            })?;
        Ok((XdpAction::from_raw(out.return_value), out.duration))
    }

    /// Runs the program once on `frame` (BPF_PROG_TEST_RUN), as if it arrived on rx queue 0
    /// of no device, and returns its action. The counters count the run. A listener match
    /// returns [`XdpAction::Pass`] and counts in [`XdpCounters::no_socket`] unless a socket is
    /// registered for queue 0. The kernel refuses frames shorter than an Ethernet header.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpAction, XdpError> {
        self.test_run_repeat(frame, 1).map(|(action, _)| action)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Nowhere to report to: a caller that wants the error calls detach_all() first.
        let _ = self.detach_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_kinds_match_the_bits_of_maps_h() {
        let k = |a: &str| port_kind(&listener_key_bytes(a.parse().unwrap()));
        assert_eq!(k("198.18.0.1:80"), 0x1);
        assert_eq!(k("0.0.0.0:80"), 0x2);
        assert_eq!(k("[2001:2::1]:80"), 0x1);
        assert_eq!(k("[::]:80"), 0x2);
        let i = |a: &str| port_index(a.parse().unwrap());
        assert_eq!((i("0.0.0.0:80"), i("[::]:80")), (80, 65536 + 80));
        assert_eq!(i("[2001:2::1]:65535"), 2 * 65536 - 1);
    }

    #[test]
    fn ipv4_key_layout() {
        let k = listener_key_bytes("198.18.0.1:80".parse().unwrap());
        assert_eq!(k[..8], [4, 0, 0, 80, 198, 18, 0, 1]);
        assert_eq!(k[8..], [0; 12]);
    }

    #[test]
    fn ipv6_key_layout() {
        let k = listener_key_bytes("[2001:2::1]:443".parse().unwrap());
        assert_eq!(k[..4], [6, 0, 0x01, 0xbb]);
        assert_eq!(
            k[4..],
            [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn wildcards_have_an_all_zero_address() {
        let k4 = listener_key_bytes("0.0.0.0:8080".parse().unwrap());
        let k6 = listener_key_bytes("[::]:8080".parse().unwrap());
        assert_eq!(k4[..4], [4, 0, 0x1f, 0x90]);
        assert_eq!(k6[..4], [6, 0, 0x1f, 0x90]);
        assert_eq!(k4[4..], [0; 16]);
        assert_eq!(k6[4..], [0; 16]);
    }

    #[test]
    fn ipv4_mapped_stays_ipv6() {
        let k = listener_key_bytes("[::ffff:198.18.0.1]:80".parse().unwrap());
        assert_eq!(k[0], 6);
    }

    #[test]
    fn counter_names_follow_slot_order() {
        let mut c = XdpCounters::default();
        for slot in 0..COUNTER_SLOTS {
            *c.slot_mut(slot) = u64::from(slot) + 1;
        }
        let values: Vec<u64> = c.named().iter().map(|&(_, v)| v).collect();
        assert_eq!(values, (1..=u64::from(COUNTER_SLOTS)).collect::<Vec<_>>());
    }
}
