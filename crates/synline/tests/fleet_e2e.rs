//! A fleet in namespaces: a router with an equal-cost multipath route (L4 hash,
//! `fib_multipath_hash_policy=1`) for the service address 198.18.100.1 to two synline hosts,
//! each handing its connections to a local server that answers with the host's name; kernel
//! clients and the loadgen on the far side.
//!
//! ```text
//!   cli 198.18.1.2 --- 198.18.1.1 rtr 198.18.2.1 --- 198.18.2.2 h1 (lo: 198.18.100.1)
//!                                     198.18.3.1 --- 198.18.3.2 h2 (lo: 198.18.100.1)
//! ```
//!
//! Checked: connections spread over both hosts and every client is served, during a loadgen
//! flood; then, with the clients' bare third ACKs held back (nft in the client namespace), the
//! route loses a next hop in the middle of their handshakes: in fleet mode the ACKs that now
//! land on the other host still complete there (its counters show it made those children);
//! with per-host secrets (the control) they are reset.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use synline_testns::{must, run, text};

const BIN: &str = env!("CARGO_BIN_EXE_synline");
const VIP: &str = "198.18.100.1";
const PORT: &str = "8080";

/// Four namespaces, removed on drop.
struct Fleet {
    ns: [String; 4],
    dir: PathBuf,
    py: String,
}

impl Fleet {
    fn cli(&self) -> &str {
        &self.ns[0]
    }
    fn rtr(&self) -> &str {
        &self.ns[1]
    }
    fn host(&self, i: usize) -> &str {
        &self.ns[2 + i]
    }

    fn new(py: &str) -> Fleet {
        let base = format!("flt-{}", std::process::id());
        let ns = ["cli", "rtr", "h1", "h2"].map(|n| format!("{base}-{n}"));
        let dir = std::env::temp_dir().join(&base);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = Fleet {
            ns,
            dir,
            py: py.to_string(),
        };
        for n in &f.ns {
            let _ = run(&["ip", "netns", "del", n]);
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
            f.sysctl(
                n,
                &[
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
            );
        }
        let (cli, rtr) = (f.cli().to_string(), f.rtr().to_string());
        // (namespace, its device, router's device, subnet)
        let links = [
            (cli.clone(), "veth-c", "r-c", 1),
            (f.host(0).to_string(), "veth-s", "r-h1", 2),
            (f.host(1).to_string(), "veth-s", "r-h2", 3),
        ];
        for (n, dev, rdev, net) in &links {
            must(&[
                "ip", "-n", n, "link", "add", dev, "type", "veth", "peer", "name", rdev, "netns",
                &rtr,
            ]);
            for (ns, d, host) in [(n.as_str(), *dev, 2), (rtr.as_str(), *rdev, 1)] {
                must(&[
                    "ip",
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("198.18.{net}.{host}/24"),
                    "dev",
                    d,
                ]);
                must(&[
                    "ip", "netns", "exec", ns, "ethtool", "-K", d, "tx", "off", "rx", "off",
                ]);
                must(&["ip", "-n", ns, "link", "set", d, "up"]);
            }
            must(&[
                "ip",
                "-n",
                n,
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{net}.1"),
            ]);
        }
        for h in 0..2 {
            must(&[
                "ip",
                "-n",
                f.host(h),
                "addr",
                "add",
                &format!("{VIP}/32"),
                "dev",
                "lo",
            ]);
            f.sysctl(f.host(h), &["net.ipv4.tcp_syncookies=1"]);
        }
        f.sysctl(
            &rtr,
            &[
                "net.ipv4.ip_forward=1",
                "net.ipv4.fib_multipath_hash_policy=1",
            ],
        );
        f.multipath();
        // The loadgen's random sources answer back to the client side.
        must(&[
            "ip",
            "-n",
            &rtr,
            "route",
            "add",
            "198.18.128.0/17",
            "via",
            "198.18.1.2",
        ]);
        f
    }

    fn sysctl(&self, ns: &str, kv: &[&str]) {
        let mut c = vec!["ip", "netns", "exec", ns, "sysctl", "-qw"];
        c.extend(kv);
        must(&c);
    }

    /// Both next hops, equal weights.
    fn multipath(&self) {
        must(&[
            "ip",
            "-n",
            self.rtr(),
            "route",
            "replace",
            &format!("{VIP}/32"),
            "nexthop",
            "via",
            "198.18.2.2",
            "weight",
            "1",
            "nexthop",
            "via",
            "198.18.3.2",
            "weight",
            "1",
        ]);
    }

    /// Only host `h`.
    fn only(&self, h: usize) {
        must(&[
            "ip",
            "-n",
            self.rtr(),
            "route",
            "replace",
            &format!("{VIP}/32"),
            "via",
            &format!("198.18.{}.2", h + 2),
        ]);
    }

    fn exec(&self, ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    fn client_json(&self, script: &str, args: &[&str]) -> Value {
        let mut cmd = vec!["timeout", "60", self.py.as_str(), "-c", script];
        cmd.extend(args);
        let out = self.exec(self.cli(), &cmd).output().unwrap();
        assert!(
            out.status.success(),
            "client: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = run(&["ip", "netns", "del", n]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background process, killed on drop.
struct Bg(Child);
impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server on each host: reads the client's line, answers with the host's name.
const SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        c.recv(100)
        c.sendall(sys.argv[3].encode())
    except OSError:
        pass
    c.close()
"#;

/// N clients one after another: each connects, says hello, reads the host's name.
const CLIENTS: &str = r#"
import json, socket, sys
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {}
for i in range(n):
    try:
        s = socket.create_connection((addr, port), timeout=5)
        s.sendall(b"hello")
        who = s.recv(100).decode() or "eof"
        s.close()
    except OSError as e:
        who = "error: " + str(e)
    res[who] = res.get(who, 0) + 1
print(json.dumps(res))
"#;

/// N clients whose bare third ACKs the test holds back: each connects (its ACK dropped by
/// nft), reports, waits for the go file, then sends its first data, which carries the same
/// ACK number, and reads the answer.
const HELD: &str = r#"
import json, os, socket, sys, time
addr, port, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
socks = []
for i in range(n):
    s = socket.create_connection((addr, port), timeout=5)
    socks.append(s)
print(json.dumps({"connected": n}), flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
res = {}
for s in socks:
    try:
        s.settimeout(5)
        s.sendall(b"moved")
        who = s.recv(100).decode() or "eof"
    except OSError as e:
        who = "error: " + type(e).__name__
    s.close()
    res[who] = res.get(who, 0) + 1
print(json.dumps(res), flush=True)
"#;

fn nstat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

struct Host {
    _server: Bg,
    daemon: Bg,
    sock: PathBuf,
    log: PathBuf,
}

impl Host {
    /// The daemon's counters; they are refreshed every 50 ms, so what happened up to now is
    /// in them after a short wait.
    fn stats(&self) -> HashMap<String, u64> {
        std::thread::sleep(Duration::from_millis(150));
        let out = Command::new(BIN)
            .args(["stats", "--socket"])
            .arg(&self.sock)
            .output()
            .unwrap();
        nstat(&text(&out.stdout))
    }
}

fn start_host(f: &Fleet, h: usize, key: &[&str]) -> Host {
    let ns = f.host(h).to_string();
    let name = format!("h{}", h + 1);
    let mut server = f
        .exec(&ns, &[f.py.as_str(), "-c", SERVER, VIP, PORT, &name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "listening");
    let sock = f.dir.join(format!("{name}.sock"));
    let log = f.dir.join(format!("{name}.log"));
    let mut cmd = vec![BIN, "run", "--iface", "veth-s", "--duration", "120"];
    let listen = format!("{VIP}:{PORT}");
    cmd.extend(["--listen", &listen]);
    cmd.extend(key);
    let daemon = f
        .exec(&ns, &cmd)
        .arg("--stats-socket")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("the application listens") && sock.exists() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{name} not up:\n{l}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Host {
        _server: Bg(server),
        daemon: Bg(daemon),
        sock,
        log,
    }
}

fn environment() -> Option<String> {
    if let Some(why) = synline_testns::missing(&["ethtool", "sysctl", "nft", "timeout"]) {
        assert!(!synline_testns::ci(), "CI=true but {why}");
        eprintln!("skipped: {why}");
        return None;
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    Some(text(&out.stdout).trim().to_string())
}

/// `synline-loadgen`, built beside this test by `cargo test --workspace`.
fn loadgen() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("synline-loadgen");
    p.exists().then_some(p)
}

/// Holds `n` handshakes at their third ACK, moves the route to the host that answered fewer
/// of the SYNs, releases them, and returns (what the clients read, the SYNs each host saw,
/// the host now routed to).
fn rehash(f: &Fleet, hosts: &[Host; 2], n: usize) -> (Value, [u64; 2], usize) {
    let go = f.dir.join("go");
    let _ = std::fs::remove_file(&go);
    let nft = |rule: &str| must(&["ip", "netns", "exec", f.cli(), "nft", rule]);
    nft("add table inet hold");
    nft("add chain inet hold out { type filter hook output priority 0; }");
    nft(&format!(
        "add rule inet hold out ip daddr {VIP} tcp dport {PORT} tcp flags == ack drop"
    ));
    let before = hosts
        .each_ref()
        .map(|h| h.stats().get("SynlineInSyns").copied().unwrap_or(0));
    let mut c = f
        .exec(
            f.cli(),
            &[
                "timeout",
                "60",
                f.py.as_str(),
                "-c",
                HELD,
                VIP,
                PORT,
                &n.to_string(),
            ],
        )
        .arg(&go)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.contains("connected"), "{line}");
    let syns = [0, 1].map(|i| hosts[i].stats()["SynlineInSyns"] - before[i]);
    let target = if syns[0] <= syns[1] { 0 } else { 1 };
    f.only(target);
    nft("delete table inet hold");
    std::fs::write(&go, "").unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let _ = c.wait();
    f.multipath();
    (
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")),
        syns,
        target,
    )
}

#[test]
fn ecmp_fleet_spreads_and_survives_a_rehash_in_the_middle_of_handshakes() {
    let Some(py) = environment() else { return };
    // Both tests use the same names for their namespaces: one after the other.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fleet::new(&py);
    let key = f.dir.join("fleet.key");
    let out = Command::new(BIN)
        .arg("fleet-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_s = key.to_str().unwrap().to_string();
    let hosts = [0, 1].map(|h| start_host(&f, h, &["--fleet-key", &key_s]));

    // 1. Spread: 60 clients through the multipath route, during a loadgen flood from the
    //    client side.
    let flood = loadgen().map(|lg| {
        // Live frames out of veth-c arrive only where the peer end runs an XDP program.
        must(&[
            "ip",
            "netns",
            "exec",
            f.rtr(),
            lg.to_str().unwrap(),
            "xdp-pass",
            "--iface",
            "r-c",
        ]);
        let mac = must(&[
            "ip",
            "netns",
            "exec",
            f.rtr(),
            "cat",
            "/sys/class/net/r-c/address",
        ]);
        Bg(f.exec(
            f.cli(),
            &[
                lg.to_str().unwrap(),
                "--iface",
                "veth-c",
                "--dst",
                &format!("{VIP}:{PORT}"),
                "--dst-mac",
                mac.trim(),
                "--rate",
                "2000",
                "--duration",
                "4",
                "--quiet",
            ],
        )
        .stdout(std::fs::File::create(f.dir.join("loadgen.out")).unwrap())
        .stderr(std::fs::File::create(f.dir.join("loadgen.err")).unwrap())
        .spawn()
        .unwrap())
    });
    assert!(
        flood.is_some() || !synline_testns::ci(),
        "CI=true but synline-loadgen was not built"
    );
    if flood.is_some() {
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = f.client_json(CLIENTS, &[VIP, PORT, "60"]);
    eprintln!("spread: {got}");
    let (h1, h2) = (
        got["h1"].as_u64().unwrap_or(0),
        got["h2"].as_u64().unwrap_or(0),
    );
    assert_eq!(h1 + h2, 60, "every client served by a host: {got}");
    assert!(h1 > 0 && h2 > 0, "both hosts serve: {got}");
    if flood.is_some() {
        let syns: u64 = hosts.iter().map(|h| h.stats()["SynlineInSyns"]).sum();
        eprintln!("SYNs at the hosts with the flood: {syns}");
        let lg = std::fs::read_to_string(f.dir.join("loadgen.err")).unwrap_or_default();
        assert!(
            syns > 500,
            "the flood reached the hosts: {syns}; loadgen: {lg}"
        );
    }
    drop(flood);
    let opens = hosts.each_ref().map(|h| h.stats()["SynlineKernelHandoffs"]);
    assert!(
        opens[0] >= h1 && opens[1] >= h2,
        "each host handed its own: {opens:?}"
    );

    // 2. The rehash: handshakes held at their third ACK move to the other host.
    let before = hosts.each_ref().map(|h| h.stats());
    let (got, syns, target) = rehash(&f, &hosts, 12);
    eprintln!(
        "fleet rehash: SYNs per host {syns:?}, route moved to h{}: {got}",
        target + 1
    );
    // SYN counts include the clients' SYN retransmissions, if any (same tuple, same host).
    let moved = syns[1 - target];
    assert!(moved > 0, "some handshakes moved");
    let name = format!("h{}", target + 1);
    assert_eq!(
        got[&name].as_u64(),
        Some(12),
        "every client served by h{}: {got}",
        target + 1
    );
    let after = hosts[target].stats();
    let d = |k: &str| after[k] - before[target][k];
    assert!(
        d("TcpExtSyncookiesRecv") >= 1,
        "h{} made the moved children from cookies",
        target + 1
    );
    assert_eq!(
        d("SynlineKernelHandoffs"),
        12,
        "h{} made every child",
        target + 1
    );
    for h in hosts {
        drop(h.daemon);
        let log = std::fs::read_to_string(&h.log).unwrap();
        assert!(log.contains("fleet mode"), "{log}");
    }
}

/// The control: per-host secrets (no fleet key), the same rehash: the moved handshakes are
/// reset by the host that never saw them, as Linux would.
#[test]
fn without_a_fleet_key_a_rehash_resets_the_moved_handshakes() {
    let Some(py) = environment() else { return };
    // Both tests use the same names for their namespaces: one after the other.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = Fleet::new(&py);
    let hosts = [0, 1].map(|h| start_host(&f, h, &["--no-key-file"]));
    let (got, syns, target) = rehash(&f, &hosts, 12);
    eprintln!(
        "control rehash: SYNs per host {syns:?}, route moved to h{}: {got}",
        target + 1
    );
    let moved = syns[1 - target];
    assert!(moved > 0);
    let name = format!("h{}", target + 1);
    let served = got[&name].as_u64().unwrap_or(0);
    let failed: u64 = got
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("error") || *k == "eof")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    // The moved ones are reset (their SYN count may include retransmissions); the rest served.
    assert!(failed >= 1 && failed <= moved, "{got}");
    assert_eq!(served + failed, 12, "{got}");
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
