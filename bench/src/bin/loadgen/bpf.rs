//! Loading `loadgen.bpf.c` (beside this file): the configuration (read-only data set before
//! load), the attachment of `lg_xdp`, its counters, and its live-frames generator runs.

use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

use anyhow::{bail, Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, MapCore, MapFlags, OpenObject, Program, ProgramInput, ProgramMut, Xdp, XdpFlags,
};

use crate::frame::{OptSet, Prefix};

#[allow(clippy::all, dead_code, unused_imports, non_camel_case_types)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/loadgen.skel.rs"));
}

use skel::{types, LoadgenSkel, LoadgenSkelBuilder};

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: frames of a BPF_PROG_RUN really go out (XDP_TX/REDIRECT).
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 2;

/// Number of slots of `lg_counters` (`LG_CNT_MAX`).
const COUNTER_SLOTS: u32 = 12;

// `struct xdp_md` as the kernel takes it for the run's context: six u32.
const _: () = assert!(size_of::<types::xdp_md>() == 24);

/// The run's parameters the programs are compiled against (`cfg_*` in `loadgen.bpf.c`).
#[derive(Debug, Clone)]
pub struct Config {
    /// ISN key.
    pub key: [u32; 2],
    /// Client prefix; its family is the target's.
    pub src_net: Prefix,
    /// A /24 (host order) sources must avoid, for an IPv4 prefix wider than /24 that contains
    /// the target's /24.
    pub excl24: Option<u32>,
    /// The target.
    pub dst: SocketAddr,
    pub opts: OptSet,
    /// TSval of our SYNs and ACKs (with [`OptSet::Linux`]).
    pub tsval: u32,
    /// Answer valid SYN-ACKs of marked flows with the third ACK.
    pub answer: bool,
}

/// The receive-side counters of `lg_xdp` (`enum lg_counter` in `bench/src/bin/loadgen/loadgen.h`), summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub valid: u64,
    pub invalid: u64,
    pub bad_len: u64,
    pub bad_csum: u64,
    pub bad_ack: u64,
    pub bad_opts: u64,
    pub handshakes: u64,
    /// Replies (third ACKs, RSTs) that could not be written.
    pub reply_failed: u64,
    pub rst: u64,
    /// RSTs sent for other segments of the target (the FIN of an accepted connection...).
    pub resets_sent: u64,
    pub passed: u64,
    pub gen_err: u64,
}

impl Counters {
    fn slot_mut(&mut self, slot: u32) -> &mut u64 {
        match slot {
            0 => &mut self.valid,
            1 => &mut self.invalid,
            2 => &mut self.bad_len,
            3 => &mut self.bad_csum,
            4 => &mut self.bad_ack,
            5 => &mut self.bad_opts,
            6 => &mut self.handshakes,
            7 => &mut self.reply_failed,
            8 => &mut self.rst,
            9 => &mut self.resets_sent,
            10 => &mut self.passed,
            _ => &mut self.gen_err,
        }
    }

    /// SYN-ACKs received from the target for our sources, valid or not.
    pub fn answered(&self) -> u64 {
        self.valid + self.invalid
    }
}

/// What a generator run of `lg_xdp` makes, told by the tag in the frame's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gen {
    /// Flood SYNs (`LG_META_GEN_FLOOD`: port mark bit cleared).
    Flood,
    /// SYNs of completing clients (`LG_META_GEN_COMPLETE`: mark bit set).
    Complete,
}

impl Gen {
    fn tag(self) -> u32 {
        match self {
            Gen::Flood => 0x4c47_0001,
            Gen::Complete => 0x4c47_0002,
        }
    }

    /// The input of a generator run: the tag as 4 bytes of metadata, then the template.
    pub fn input(self, template: &[u8]) -> Vec<u8> {
        let mut v = self.tag().to_ne_bytes().to_vec();
        v.extend_from_slice(template);
        v
    }
}

/// Bytes of metadata before the frame in a generator run.
pub const META_LEN: usize = 4;

/// The loaded object. Dropping it detaches `lg_xdp` if [`Loadgen::attach`] attached it and
/// it is still ours.
pub struct Loadgen {
    skel: LoadgenSkel<'static>,
    rx_on: Option<(i32, String)>,
}

impl Loadgen {
    /// Opens the embedded object, writes `cfg` into its read-only data and loads it (maps
    /// created, programs verified). Needs root or CAP_BPF + CAP_NET_ADMIN.
    pub fn load(cfg: &Config) -> Result<Self> {
        Self::load_with_template(cfg, &[])
    }

    /// [`Loadgen::load`], with the SYN template the generator restores pages from when a
    /// target answered in XDP over them (`cfg_tmpl` in `loadgen.bpf.c`; empty: none).
    pub fn load_with_template(cfg: &Config, template: &[u8]) -> Result<Self> {
        let skel = open_and_load(|ro| {
            if !template.is_empty() && template.len() <= ro.cfg_tmpl.len() {
                ro.cfg_tmpl[..template.len()].copy_from_slice(template);
                ro.cfg_tmpl_len = template.len() as u32;
            }
            ro.cfg_key0 = cfg.key[0];
            ro.cfg_key1 = cfg.key[1];
            ro.cfg_opt_set = cfg.opts.raw();
            ro.cfg_tsval = cfg.tsval.to_be();
            ro.cfg_answer = u32::from(cfg.answer);
            ro.cfg_dst_port = cfg.dst.port().to_be();
            match (cfg.dst.ip(), cfg.src_net.addr) {
                (IpAddr::V4(d), IpAddr::V4(_)) => {
                    let (net, mask) = cfg.src_net.v4_net_mask().expect("IPv4 prefix");
                    ro.cfg_dst_addr = u32::from_ne_bytes(d.octets());
                    ro.cfg_src_net = net;
                    ro.cfg_src_mask = mask;
                    ro.cfg_excl_net = cfg.excl24.unwrap_or(0);
                }
                (IpAddr::V6(d), IpAddr::V6(_)) => {
                    let (hi, lo, lo_mask) = cfg.src_net.v6_parts().expect("IPv6 prefix");
                    for (w, c) in ro.cfg_dst_addr6.iter_mut().zip(d.octets().chunks_exact(4)) {
                        *w = u32::from_ne_bytes(c.try_into().unwrap());
                    }
                    for (w, h) in ro.cfg_src6_hi.iter_mut().zip(hi) {
                        *w = u32::from_ne_bytes(h);
                    }
                    ro.cfg_src6_lo_net = lo;
                    ro.cfg_src6_lo_mask = lo_mask;
                }
                _ => bail!(
                    "--src-net {} and --dst {} are of different families",
                    cfg.src_net,
                    cfg.dst
                ),
            }
            Ok(())
        })?;
        Ok(Loadgen { skel, rx_on: None })
    }

    /// Loads the object with an all-zero configuration (for `lg_pass` and `lg_drop`).
    pub fn load_plain() -> Result<Self> {
        let skel = open_and_load(|_| Ok(()))?;
        Ok(Loadgen { skel, rx_on: None })
    }

    /// Attaches `lg_xdp` to `ifname` (index `ifindex`) in native mode; refuses if an XDP
    /// program is already attached there. The generator needs it attached (see `lg_xdp`).
    pub fn attach(&mut self, ifindex: i32, ifname: &str) -> Result<()> {
        attach_native(&self.skel.progs.lg_xdp, ifindex, ifname)?;
        self.rx_on = Some((ifindex, ifname.to_owned()));
        Ok(())
    }

    /// Attaches `lg_pass` (or `lg_drop`) to `ifname` in native mode and leaves it there: a
    /// netlink XDP attachment outlives the process (remove it with `ip link set dev IF xdp
    /// off`).
    pub fn attach_sink_forever(&self, drop: bool, ifindex: i32, ifname: &str) -> Result<u32> {
        let prog = if drop {
            &self.skel.progs.lg_drop
        } else {
            &self.skel.progs.lg_pass
        };
        attach_native(prog, ifindex, ifname)?;
        Program::id_from_fd(prog.as_fd()).with_context(|| {
            format!(
                "bpf_prog_get_info_by_fd ({})",
                prog.name().to_string_lossy()
            )
        })
    }

    /// Detaches `lg_xdp` if it is still the program attached where we put it.
    pub fn detach(&mut self) -> Result<()> {
        let Some((ifindex, ifname)) = self.rx_on.take() else {
            return Ok(());
        };
        let fd = self.skel.progs.lg_xdp.as_fd();
        let ours = Program::id_from_fd(fd).context("bpf_prog_get_info_by_fd (lg_xdp)")?;
        let xdp = Xdp::new(fd);
        let current = xdp
            .query_id(ifindex, XdpFlags::DRV_MODE)
            .with_context(|| format!("bpf_xdp_query_id on {ifname} (ifindex {ifindex})"))?;
        if current != ours {
            return Ok(());
        }
        xdp.detach(ifindex, XdpFlags::DRV_MODE)
            .with_context(|| format!("bpf_xdp_detach on {ifname} (ifindex {ifindex})"))
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let mut c = Counters::default();
        for slot in 0..COUNTER_SLOTS {
            let per_cpu = self
                .skel
                .maps
                .lg_counters
                .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
                .with_context(|| format!("bpf_map_lookup_elem on map lg_counters (slot {slot})"))?
                .unwrap_or_default();
            *c.slot_mut(slot) = per_cpu
                .iter()
                .filter_map(|v| v.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                .fold(0u64, u64::wrapping_add);
        }
        Ok(c)
    }

    /// `lg_xdp`, for [`run_live`] and test runs (may be used from any thread: the skeleton is
    /// `Sync`, and a run only reads the program's fd).
    pub fn prog(&self) -> &ProgramMut<'static> {
        &self.skel.progs.lg_xdp
    }
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            eprintln!("synline-loadgen: {e:#}");
        }
    }
}

fn open_and_load(
    set: impl FnOnce(&mut types::rodata) -> Result<()>,
) -> Result<LoadgenSkel<'static>> {
    // The skeleton borrows the slot of its libbpf object for its whole life: one small leak
    // per load (a process loads once or a few times), as crates/synline-xdp does.
    let slot: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = LoadgenSkelBuilder::default()
        .open(slot)
        .context("bpf_object__open_skeleton (loadgen.bpf.o)")?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("loadgen.bpf.o has no .rodata map")?;
    set(ro)?;
    open.load().map_err(|e| {
        let hint = if e.kind() == ErrorKind::PermissionDenied {
            " (needs root, or CAP_BPF and CAP_NET_ADMIN)"
        } else {
            " (a verifier rejection is logged above by libbpf)"
        };
        anyhow::Error::new(e).context(format!("bpf_object__load_skeleton (loadgen.bpf.o){hint}"))
    })
}

fn attach_native(prog: &ProgramMut<'_>, ifindex: i32, ifname: &str) -> Result<()> {
    let xdp = Xdp::new(prog.as_fd());
    xdp.attach(ifindex, XdpFlags::UPDATE_IF_NOEXIST | XdpFlags::DRV_MODE)
        .map_err(|e| {
            // EBUSY (16) has no ErrorKind of its own.
            let busy =
                e.kind() == ErrorKind::AlreadyExists || e.to_string().contains("os error 16");
            let hint = match e.kind() {
                _ if busy => format!(
                    " (an XDP program is already attached; `ip link set dev {ifname} xdp off` \
                     removes it)"
                ),
                ErrorKind::Unsupported => " (the driver has no native XDP)".to_owned(),
                _ => String::new(),
            };
            anyhow::Error::new(e).context(format!(
                "bpf_xdp_attach ({} on {ifname}, ifindex {ifindex}, native mode){hint}",
                prog.name().to_string_lossy()
            ))
        })
}

/// The run context of a generator run: a `struct xdp_md` with `data` (where the frame starts
/// after the metadata), `data_end` (the input's length, as the kernel requires) and
/// `ingress_ifindex` (where XDP_TX sends the frames; 0 for no device) set.
pub fn gen_ctx(ifindex: i32, input_len: usize) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[0..4].copy_from_slice(&(META_LEN as u32).to_ne_bytes());
    ctx[4..8].copy_from_slice(&(input_len as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&(ifindex as u32).to_ne_bytes());
    ctx
}

/// Runs `prog` on `repeat` copies of `input` ([`Gen::input`]) in live-frames mode: each
/// frame it returns XDP_TX for leaves through the interface of `ctx` ([`gen_ctx`]).
pub fn run_live(
    prog: &ProgramMut<'_>,
    ctx: &mut [u8; 24],
    input: &[u8],
    repeat: u32,
) -> Result<()> {
    let frame = input;
    let input = ProgramInput {
        context_in: Some(&mut ctx[..]),
        data_in: Some(frame),
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        repeat,
        ..ProgramInput::default()
    };
    prog.test_run(input).with_context(|| {
        format!(
            "bpf_prog_test_run_opts ({}, live frames, {repeat} frames of {} bytes)",
            prog.name().to_string_lossy(),
            frame.len()
        )
    })?;
    Ok(())
}

/// Runs `prog` once on `frame` without sending anything; returns the action and the frame as
/// the program left it. With `gen`, as a generator run (metadata tag before the frame; the
/// program removes it).
pub fn run_once(prog: &ProgramMut<'_>, frame: &[u8], gen: Option<Gen>) -> Result<(u32, Vec<u8>)> {
    let data = match gen {
        Some(g) => g.input(frame),
        None => frame.to_vec(),
    };
    let mut ctx = gen_ctx(0, data.len());
    let mut out = vec![0u8; data.len() + 256];
    let input = ProgramInput {
        context_in: gen.map(|_| &mut ctx[..]),
        data_in: Some(&data),
        data_out: Some(&mut out),
        ..ProgramInput::default()
    };
    let o = prog.test_run(input).with_context(|| {
        format!(
            "bpf_prog_test_run_opts ({}, {} bytes)",
            prog.name().to_string_lossy(),
            frame.len()
        )
    })?;
    let ret = o.return_value;
    let len = o.data.map(|d| d.len()).unwrap_or(0);
    out.truncate(len);
    // The generator drops its tag from the frame's metadata before the frame leaves
    // (loadgen.bpf.c): the output is then the frame alone. Should a tag still be there, it
    // goes.
    if gen.is_some() && out.len() == frame.len() + META_LEN {
        out.drain(..META_LEN);
    }
    Ok((ret, out))
}
