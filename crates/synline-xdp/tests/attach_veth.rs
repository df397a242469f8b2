//! Attaching `synline_xdp` for real, in each mode, to one end of a veth pair whose ends live in
//! two throwaway network namespaces (198.18.0.0/15 addresses), removed on drop also when the
//! test fails. aya's integration tests are the model.
//!
//! An ifindex only means something inside its namespace, and the netlink calls of
//! `bpf_xdp_attach` run in the caller's: so the test re-runs its own binary under
//! `ip netns exec` (the "child", told apart by an environment variable) for the part that
//! attaches, while the parent owns the namespaces.
//!
//! Needs root and iproute2. Without them the test says why and returns, except under CI=true,
//! where it fails.

use std::net::TcpListener;
use std::process::Command;
use synline_testns::{ifindex_in, run, VethPair, VethSpec};

use synline_xdp::{AttachMode, XdpCounters, XdpError, XdpProgram};

const CHILD_ENV: &str = "SYNLINE_XDP_VETH_CHILD";
/// The end under test, in namespace `{base}-a`, and its peer in `{base}-b`.
const DEV: &str = "a";
const PEER: &str = "b";
const ADDR: &str = synline_testns::SRV_V4;
/// A listener port with no AF_XDP socket behind it.
const LISTEN_PORT: u16 = 7777;
/// A port a kernel socket listens on.
const KERNEL_PORT: u16 = 2222;

/// Two namespaces joined by a veth pair; deleted on drop.
#[test]
fn attach_modes_on_veth() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return in_namespace();
    }
    if !synline_testns::require("attach_modes_on_veth", &["ethtool", "sysctl"]) {
        return;
    }
    let net = VethPair::new(&VethSpec {
        tag: "synx",
        srv_dev: DEV,
        cli_dev: PEER,
        queues: 1,
    });
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &net.server])
        .arg(exe)
        .args([
            "--exact",
            "attach_modes_on_veth",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &net.client)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child in {}:\n{log}", net.server);
    assert!(log.contains("1 passed"), "the child ran no test:\n{log}");
    eprintln!("child in {}:\n{log}", net.server);
}

// ---- the child, inside namespace a ----

fn ifindex(dev: &str) -> u32 {
    ifindex_in(None, dev)
}

/// What `ip link` says is attached to `dev` here: "xdp", "xdpgeneric" or "".
fn xdp_shown(dev: &str) -> &'static str {
    synline_testns::xdp_shown(None, dev)
}

/// Opens a TCP connection from the peer namespace; true if it was accepted.
fn connect_from_peer(peer_ns: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{ADDR}/{port}");
    run(&[
        "ip", "netns", "exec", peer_ns, "timeout", "5", "bash", "-c", &script,
    ])
    .status
    .success()
}

fn in_namespace() {
    let peer_ns = std::env::var(CHILD_ENV).unwrap();
    let dev = ifindex(DEV);
    let lo = ifindex("lo");
    let listen = format!("{ADDR}:{LISTEN_PORT}").parse().unwrap();

    // Native on veth: segments for the listener are seen (no socket yet, so the kernel gets
    // them and refuses the connection); a kernel server on another port still answers.
    {
        let mut prog = XdpProgram::load().unwrap();
        prog.add_listener(listen).unwrap();
        assert_eq!(
            prog.attach(dev, AttachMode::Native).unwrap(),
            AttachMode::Native
        );
        assert_eq!(xdp_shown(DEV), "xdp");
        let server = TcpListener::bind((ADDR, KERNEL_PORT)).unwrap();
        assert!(
            connect_from_peer(&peer_ns, KERNEL_PORT),
            "kernel server unreachable under XDP"
        );
        drop(server);
        assert!(
            !connect_from_peer(&peer_ns, LISTEN_PORT),
            "no socket listens there"
        );
        let c = prog.counters().unwrap();
        eprintln!("native on veth: {c:?}");
        assert!(c.not_listener >= 2, "handshake to the kernel port: {c:?}"); // SYN, ACK
        assert!(c.no_socket >= 1, "SYN to the listener: {c:?}");
        assert!(c.not_ip >= 1, "the peer's ARP: {c:?}");
        assert_eq!(c.redirected, 0);
        assert_eq!(c.passed, total_reasons(&c));
        // A second attach in any mode is refused while ours is there, naming it and the
        // link that holds it (a running synline).
        let mut other = XdpProgram::load().unwrap();
        let err = other.attach(dev, AttachMode::Generic).unwrap_err();
        match &err {
            XdpError::Occupied { occupant, .. } => {
                assert_eq!(occupant.prog_id, prog.prog_id().unwrap());
                assert!(occupant.is_synline() && occupant.link_id.is_some(), "{err}");
            }
            e => panic!("{e}"),
        }
        assert!(err.to_string().contains("held by bpf_link"), "{err}");
        drop(other);
        assert_eq!(
            xdp_shown(DEV),
            "xdp",
            "a failed attach must not detach ours"
        );
    }
    assert_eq!(xdp_shown(DEV), "", "drop detaches");

    // An older synline attached by netlink and was killed: its program is still there (the
    // "EBUSY and no hint" of old). The next attach replaces it and says which it was.
    {
        let old = XdpProgram::load().unwrap();
        old.attach_netlink_for_test(dev, AttachMode::Native)
            .unwrap();
        let old_id = old.prog_id().unwrap();
        drop(old);
        assert_eq!(
            xdp_shown(DEV),
            "xdp",
            "a netlink attachment outlives its loader"
        );
        let mut prog = XdpProgram::load().unwrap();
        assert_eq!(
            prog.attach(dev, AttachMode::Native).unwrap(),
            AttachMode::Native
        );
        assert_eq!(prog.replaced(), Some(old_id));
        let shown = synline_testns::must(&["ip", "-d", "link", "show", "dev", DEV]);
        assert!(
            shown.contains(&format!("id {} ", prog.prog_id().unwrap())),
            "{shown}"
        );
    }
    assert_eq!(xdp_shown(DEV), "", "drop closes the link");

    // Generic on veth, detached explicitly.
    {
        let mut prog = XdpProgram::load().unwrap();
        assert_eq!(
            prog.attach(dev, AttachMode::Generic).unwrap(),
            AttachMode::Generic
        );
        assert_eq!(xdp_shown(DEV), "xdpgeneric");
        assert_eq!(prog.attached_mode(dev), Some(AttachMode::Generic));
        prog.detach(dev).unwrap();
        assert_eq!(xdp_shown(DEV), "");
        assert_eq!(prog.attached_mode(dev), None);
    }

    // Auto: native where the driver has it (veth), generic where not (lo).
    {
        let mut prog = XdpProgram::load().unwrap();
        assert_eq!(
            prog.attach(dev, AttachMode::Auto).unwrap(),
            AttachMode::Native
        );
        assert_eq!(
            prog.attach(lo, AttachMode::Auto).unwrap(),
            AttachMode::Generic
        );
        assert_eq!(xdp_shown("lo"), "xdpgeneric");
        prog.detach_all().unwrap();
        assert_eq!((xdp_shown(DEV), xdp_shown("lo")), ("", ""));
    }

    // Native where the driver has none: an error naming the call, the interface and the mode.
    {
        let mut prog = XdpProgram::load().unwrap();
        let err = prog.attach(lo, AttachMode::Native).unwrap_err().to_string();
        eprintln!("native on lo: {err}");
        assert!(
            err.starts_with(&format!(
                "bpf_link_create (BPF_XDP) on ifindex {lo} (native mode): "
            )),
            "{err}"
        );
        assert_eq!(xdp_shown("lo"), "");
    }
}

fn total_reasons(c: &XdpCounters) -> u64 {
    c.no_socket
        + c.not_listener
        + c.not_tcp
        + c.not_ip
        + c.ipv6_ext_hdr
        + c.ip_fragment
        + c.malformed
}
