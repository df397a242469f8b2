//! Test support shared by synline's end-to-end suites (synline-xdp, the daemon, the load
//! generator): running commands, deciding whether a privileged test may run here, and a pair
//! of throwaway network namespaces joined by a veth pair.
//!
//! The addresses are from the benchmarking ranges only (RFC 2544 198.18.0.0/15, RFC 5180
//! 2001:2::/48): the server end is 198.18.0.1/24 and 2001:2::1/64, the client end 198.18.0.2/24
//! and 2001:2::2/64. Nothing here sends traffic; the tests do, inside the namespaces.
//!
//! Under `CI=true` a test that cannot get its privileges or tools fails loudly
//! ([`require`] panics); elsewhere it prints why and skips.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The server end's IPv4 address.
pub const SRV_V4: &str = "198.18.0.1";
/// The client end's IPv4 address.
pub const CLI_V4: &str = "198.18.0.2";
/// The server end's IPv6 address.
pub const SRV_V6: &str = "2001:2::1";
/// The client end's IPv6 address.
pub const CLI_V6: &str = "2001:2::2";

/// Runs a command; panics only if it cannot start.
pub fn run(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout (panics with both streams if not).
pub fn must(cmd: &[&str]) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Whether CI runs this (`CI=true`): then a test that cannot run must fail.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Why a namespace test cannot run here, if it cannot: not root, a tool missing (each of
/// `tools` must start with `--version`), or `ip netns add` refused (root without
/// CAP_SYS_ADMIN, as in an unprivileged container).
pub fn missing(tools: &[&str]) -> Option<String> {
    // Root and namespaces, probed once per test process (tests run in parallel threads).
    static PRIVILEGES: OnceLock<Option<String>> = OnceLock::new();
    let privileges = PRIVILEGES.get_or_init(|| {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        if !root {
            return Some("not root (network namespaces, XDP and AF_XDP need it)".into());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Some("ip (iproute2) is not installed".into());
        }
        let probe = format!("stn-{}-probe", std::process::id());
        let ok = run(&["ip", "netns", "add", &probe]).status.success();
        let _ = run(&["ip", "netns", "del", &probe]);
        (!ok).then(|| "`ip netns add` fails (no CAP_SYS_ADMIN?)".into())
    });
    if privileges.is_some() {
        return privileges.clone();
    }
    tools
        .iter()
        .find(|t| Command::new(t).arg("--version").output().is_err())
        .map(|t| format!("{t} is not installed"))
}

/// True when `test` can run here. Otherwise panics under CI=true, or prints why and returns
/// false (the caller returns: a skip).
pub fn require(test: &str, tools: &[&str]) -> bool {
    match missing(tools) {
        None => true,
        Some(why) => {
            assert!(!ci(), "{test}: CI=true but {why}");
            eprintln!("{test} skipped: {why}");
            false
        }
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// How to build a [`VethPair`].
#[derive(Debug, Clone, Copy)]
pub struct VethSpec<'a> {
    /// A short tag in the namespaces' names (with the pid and a counter: unique per run).
    pub tag: &'a str,
    /// The server end's device name.
    pub srv_dev: &'a str,
    /// The client end's device name.
    pub cli_dev: &'a str,
    /// RX and TX queues of each end (veth's default is 1).
    pub queues: u32,
}

/// A server and a client namespace joined by a veth pair, with the addresses of the module
/// docs, loopback up, router advertisements ignored, and checksum offload off on both ends (a
/// veth otherwise hands the receiver segments whose TCP checksum is not filled in, which the
/// engine rightly drops). Both namespaces, and with them the veth pair and anything attached
/// to it, are deleted on drop, also when the test fails.
#[derive(Debug)]
pub struct VethPair {
    /// The server namespace.
    pub server: String,
    /// The client namespace.
    pub client: String,
    /// The server end's device.
    pub srv_dev: String,
    /// The client end's device.
    pub cli_dev: String,
}

impl VethPair {
    /// Makes the namespaces and the pair.
    pub fn new(spec: &VethSpec<'_>) -> VethPair {
        let base = format!(
            "{}-{}-{}",
            spec.tag,
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let me = VethPair {
            server: format!("{base}-s"),
            client: format!("{base}-c"),
            srv_dev: spec.srv_dev.to_owned(),
            cli_dev: spec.cli_dev.to_owned(),
        };
        let (s, c) = (me.server.as_str(), me.client.as_str());
        must(&["ip", "netns", "add", s]);
        must(&["ip", "netns", "add", c]);
        let q = spec.queues.max(1).to_string();
        let qs = ["numtxqueues", &q, "numrxqueues", &q];
        let mut cmd = vec!["ip", "-n", s, "link", "add", "name", spec.srv_dev];
        cmd.extend(qs);
        cmd.extend(["type", "veth", "peer", "name", spec.cli_dev]);
        cmd.extend(qs);
        cmd.extend(["netns", c]);
        must(&cmd);
        for (ns, dev, v4, v6) in [
            (s, spec.srv_dev, SRV_V4, SRV_V6),
            (c, spec.cli_dev, CLI_V4, CLI_V6),
        ] {
            must(&["ip", "-n", ns, "link", "set", "dev", "lo", "up"]);
            must(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv6.conf.default.accept_ra=0",
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                dev,
            ]);
            must(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            must(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off",
            ]);
            must(&["ip", "-n", ns, "link", "set", "dev", dev, "up"]);
        }
        me
    }

    /// `cmd` in namespace `ns`, not started yet.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    /// The interface index of `dev` in namespace `ns`.
    pub fn ifindex(&self, ns: &str, dev: &str) -> u32 {
        ifindex_in(Some(ns), dev)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// The interface index of `dev`, in namespace `ns` or in the current one.
pub fn ifindex_in(ns: Option<&str>, dev: &str) -> u32 {
    let mut cmd = vec!["ip"];
    if let Some(ns) = ns {
        cmd.extend(["-n", ns]);
    }
    cmd.extend(["-o", "link", "show", "dev", dev]);
    // "3: srv@if2: <...>": the index is before the first colon.
    let line = must(&cmd);
    line.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no index in {line:?}"))
}

/// What `ip link` says is attached to `dev` (in `ns` or here): "xdp" (native), "xdpgeneric"
/// or "" (nothing).
pub fn xdp_shown(ns: Option<&str>, dev: &str) -> &'static str {
    let mut cmd = vec!["ip"];
    if let Some(ns) = ns {
        cmd.extend(["-n", ns]);
    }
    cmd.extend(["-d", "link", "show", "dev", dev]);
    let out = must(&cmd);
    if out.contains("xdpgeneric") {
        "xdpgeneric"
    } else if out.contains(" xdp ") || out.contains("prog/xdp") {
        "xdp"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn must_returns_stdout_and_panics_with_stderr() {
        assert_eq!(must(&["echo", "hi"]), "hi\n");
        let e =
            std::panic::catch_unwind(|| must(&["sh", "-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(msg.contains("oops"), "{msg}");
    }

    /// A pair is made and, on drop, gone (skips without root, fails under CI).
    #[test]
    fn veth_pair_is_removed_on_drop() {
        if !require("veth_pair_is_removed_on_drop", &["ethtool", "sysctl"]) {
            return;
        }
        let names = {
            let p = VethPair::new(&VethSpec {
                tag: "stn",
                srv_dev: "s0",
                cli_dev: "c0",
                queues: 2,
            });
            assert!(p.ifindex(&p.server, "s0") > 1);
            assert_eq!(xdp_shown(Some(&p.client), "c0"), "");
            let rx = p
                .exec(&p.client, &["ls", "/sys/class/net/c0/queues"])
                .output()
                .unwrap();
            assert!(text(&rx.stdout).contains("rx-1"), "{}", text(&rx.stdout));
            (p.server.clone(), p.client.clone())
        };
        let list = must(&["ip", "netns", "list"]);
        assert!(
            !list.contains(&names.0) && !list.contains(&names.1),
            "{list}"
        );
    }
}
