//! `synline-loadgen` end to end, against the Linux kernel's own listener.
//!
//! Two throwaway network namespaces joined by a veth pair, removed on drop, also when a check
//! fails: the client side (`c0`, 198.18.0.2/24, 2001:2::2/64) where the loadgen runs, and the
//! server side (`s0`, 198.18.0.1/24, 2001:2::1/64) with a python3 listener on port 8080 of both
//! addresses, `net.ipv4.tcp_syncookies=2`, routes back to the whole client prefix through the
//! client, and the loadgen's XDP_PASS program on `s0` (a veth only takes XDP frames when its
//! receiving end runs XDP). Checksum offload is off on both ends: with it, the kernel's
//! SYN-ACKs would reach the client's XDP program with partial checksums.
//!
//! Checked: the programs on hand-made frames (`selftest`); a flood gets valid SYN-ACKs and no
//! invalid one, for every option set and both families; handshake and mix modes complete
//! handshakes, and the kernel counts them (TcpPassiveOpens).
//!
//! Needs root, iproute2, ethtool and python3. Without them each test says why and returns,
//! except under CI=true, where it fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use synline_testns::{must, VethPair, VethSpec};

const BIN: &str = env!("CARGO_BIN_EXE_synline-loadgen");
const PORT: u16 = 8080;

/// Whether this test can run here; if not, panics under CI=true, else says why.
fn can_run(test: &str) -> bool {
    synline_testns::require(test, &["ethtool", "python3", "sysctl"])
}

/// Accepts and closes connections on every address given, until killed.
const LISTENER: &str = r#"
import selectors, socket, sys
sel = selectors.DefaultSelector()
for addr in sys.argv[2:]:
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(sys.argv[1])))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        while True:
            try:
                c, _ = key.fileobj.accept()
            except BlockingIOError:
                break
            c.close()
"#;

/// The two namespaces, the veth pair, the listener. Dropping kills the listener and deletes
/// the namespaces (which takes the veth pair and its XDP programs with it).
struct Topology {
    client: String,
    server: String,
    listener: Option<Child>,
    _pair: VethPair,
}

impl Topology {
    fn new(tag: &str) -> Self {
        let pair = VethPair::new(&VethSpec {
            tag: &format!("lg{tag}"),
            srv_dev: "s0",
            cli_dev: "c0",
            queues: 1,
        });
        let mut t = Topology {
            client: pair.client.clone(),
            server: pair.server.clone(),
            listener: None,
            _pair: pair,
        };
        let s = t.server.clone();
        // The server answers every client address through the client: a route with a gateway,
        // so that one neighbour entry serves them all (a device route would need an ARP or ND
        // resolution per random address, which nobody answers).
        let client_mac = t.in_client(&["cat", "/sys/class/net/c0/address"]);
        let client_mac = client_mac.trim();
        for (net, gw) in [
            ("198.18.0.0/15", "198.18.0.2"),
            ("2001:2::/48", "2001:2::2"),
        ] {
            must(&["ip", "-n", &s, "route", "add", net, "via", gw, "dev", "s0"]);
            must(&[
                "ip",
                "-n",
                &s,
                "neigh",
                "replace",
                gw,
                "lladdr",
                client_mac,
                "dev",
                "s0",
                "nud",
                "permanent",
            ]);
        }
        t.in_server(&["sysctl", "-qw", "net.ipv4.tcp_syncookies=2"]);
        let pass = t.in_server(&[BIN, "xdp-pass", "--iface", "s0"]);
        assert!(pass.contains("lg_pass attached"), "{pass}");

        let mut child = Command::new("ip")
            .args(["netns", "exec", &s, "python3", "-c", LISTENER])
            .args([&PORT.to_string(), "198.18.0.1", "2001:2::1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning the python3 listener");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        t.listener = Some(child);
        assert_eq!(line.trim(), "listening", "the listener did not start");
        t
    }

    fn in_client(&self, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.client];
        v.extend_from_slice(cmd);
        must(&v)
    }

    fn in_server(&self, cmd: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.server];
        v.extend_from_slice(cmd);
        must(&v)
    }

    /// Runs the loadgen on c0 against `dst` and returns its JSON summary.
    fn loadgen(&self, dst: &str, args: &[&str]) -> serde_json::Value {
        let mut v = vec![BIN, "--iface", "c0", "--dst", dst, "--json", "--quiet"];
        v.extend_from_slice(args);
        let out = self.in_client(&v);
        let j: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("loadgen {args:?} printed {out:?}: {e}"));
        eprintln!("loadgen {dst} {args:?}: {j}");
        j
    }

    /// The server's TcpPassiveOpens (`/proc/net/snmp`).
    fn passive_opens(&self) -> u64 {
        let snmp = self.in_server(&["cat", "/proc/net/snmp"]);
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|n| n == "PassiveOpens")
            .expect("PassiveOpens in /proc/net/snmp");
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
    }
}

fn num(j: &serde_json::Value, key: &str) -> u64 {
    j[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {j}"))
}

/// A flood: valid SYN-ACKs came back, none invalid, and every answer was one of ours.
fn check_flood(j: &serde_json::Value) {
    assert!(num(j, "sent") > 0, "nothing sent: {j}");
    assert!(num(j, "valid") > 0, "no valid SYN-ACK: {j}");
    assert_eq!(num(j, "invalid"), 0, "invalid SYN-ACKs: {j}");
    assert_eq!(num(j, "answered"), num(j, "valid"), "{j}");
    assert!(num(j, "valid") <= num(j, "sent"), "{j}");
    assert_eq!(num(j, "handshakes"), 0, "a flood completed handshakes: {j}");
}

#[test]
fn selftest_on_handmade_frames() {
    if !can_run("selftest_on_handmade_frames") {
        return;
    }
    let out = must(&[BIN, "selftest"]);
    assert!(out.contains("checks passed"), "{out}");
}

#[test]
fn against_the_kernel_listener() {
    if !can_run("against_the_kernel_listener") {
        return;
    }
    let t = Topology::new("k");
    let v4 = format!("198.18.0.1:{PORT}");
    let v6 = format!("[2001:2::1]:{PORT}");

    // Floods, flat out, every option set, both families.
    check_flood(&t.loadgen(&v4, &["--duration", "2", "--options", "linux"]));
    for opts in ["none", "mss"] {
        check_flood(&t.loadgen(&v4, &["--duration", "0.5", "--options", opts]));
    }
    check_flood(&t.loadgen(&v6, &["--duration", "0.5", "--options", "linux"]));
    // A counted flood stops at its count.
    let j = t.loadgen(&v4, &["--count", "10000", "--threads", "2"]);
    check_flood(&j);
    assert_eq!(num(&j, "sent"), 10_000, "{j}");

    // Handshakes: every flow completes, the kernel creates the connections.
    for (dst, opts) in [(&v4, "linux"), (&v4, "none"), (&v6, "mss")] {
        let before = t.passive_opens();
        let j = t.loadgen(
            dst,
            &[
                "--mode",
                "handshake",
                "--rate",
                "10000",
                "--duration",
                "1",
                "--options",
                opts,
            ],
        );
        let opened = t.passive_opens() - before;
        eprintln!("TcpPassiveOpens +{opened}");
        assert_eq!(num(&j, "invalid"), 0, "{j}");
        assert!(num(&j, "handshakes") > 0, "no handshake: {j}");
        assert_eq!(num(&j, "reply_failed"), 0, "{j}");
        assert!(num(&j, "handshakes") <= num(&j, "valid"), "{j}");
        assert!(
            opened > 0 && opened <= num(&j, "handshakes"),
            "TcpPassiveOpens +{opened} for {} third ACKs",
            num(&j, "handshakes")
        );
        // At this rate the python listener keeps up: nearly every handshake is accepted.
        assert!(
            opened * 10 >= num(&j, "handshakes") * 8,
            "TcpPassiveOpens +{opened} for {} third ACKs",
            num(&j, "handshakes")
        );
    }

    // Mix: a flood plus completing clients.
    let before = t.passive_opens();
    let j = t.loadgen(
        &v4,
        &[
            "--mode",
            "mix",
            "--complete-rate",
            "5000",
            "--duration",
            "1",
        ],
    );
    assert_eq!(num(&j, "invalid"), 0, "{j}");
    assert!(num(&j, "sent_completing") > 0, "{j}");
    assert!(num(&j, "handshakes") > 0, "{j}");
    assert!(num(&j, "valid") > num(&j, "handshakes"), "{j}");
    assert!(
        t.passive_opens() > before,
        "the kernel opened nothing in mix mode"
    );
}
