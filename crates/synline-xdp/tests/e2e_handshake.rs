//! End to end with the real Linux kernel as the client: `synline_xdp` attached natively to the
//! server end of a veth pair, an AF_XDP socket on its queue, the poll-mode worker running the
//! `synline-core` engine, and kernel `connect()` calls from the other end, IPv4 and IPv6, with
//! the client's tcp_timestamps, tcp_sack and tcp_window_scaling toggled. The children on the
//! accept lists must be the clients' connections, with the options the clients offered, and
//! the counters must add up. Traffic for no listener (ping, a kernel TCP server on another
//! port) must still reach the kernel.
//!
//! Three processes, because an interface and its ifindex only exist inside their namespace:
//! the test itself (the "parent") makes two namespaces joined by a veth pair and removes them
//! on drop, also when the test fails; it re-runs its own binary under `ip netns exec` in the
//! server namespace (the "server", told apart by an environment variable), which runs the
//! XDP/AF_XDP side; the server runs the binary once more in the client namespace (the
//! "client") for each round of connect() calls.
//!
//! Addresses: 198.18.0.1/24 and 2001:2::1/64 (server), 198.18.0.2/24 and 2001:2::2/64
//! (client). Checksum offloads are off on both ends: a veth otherwise hands the receiver
//! segments whose TCP checksum is not filled in, which the engine rightly drops.
//!
//! Needs root, iproute2 and ethtool. Without them the test says why and returns, except under
//! CI=true, where it fails.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use synline_testns::{ifindex_in, must, run, VethPair, VethSpec};

use synline_core::{AddressFamily, Child, ChildState, Mib, Secrets, Socket, Stack, StackConfig};
use synline_xdp::{
    AttachMode, BindMode, Port, PortConfig, RoundCtx, WorkerConfig, XskConfig, XskMode, XskQueue,
};

const TEST: &str = "kernel_clients_complete_handshakes_over_af_xdp";
/// "server" or "client": which part this process runs.
const ROLE_ENV: &str = "SYNLINE_E2E_ROLE";
/// For the server: the client's namespace. For the client: the addresses to connect to.
const ARG_ENV: &str = "SYNLINE_E2E_ARG";

const SRV_DEV: &str = "srv";
const CLI_DEV: &str = "cli";
const V4_SRV: &str = synline_testns::SRV_V4;
const V6_SRV: &str = synline_testns::SRV_V6;
/// The engine's listeners.
const PORT: u16 = 8080;
/// A kernel TCP server's port, in the server namespace.
const KERNEL_PORT: u16 = 2222;
const GREETING: &[u8] = b"kernel here\n";

fn log_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rerun(ns: &str, role: &str, arg: &str, secs: u32) -> Output {
    let exe = std::env::current_exe().unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns, "timeout", &secs.to_string()])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(ARG_ENV, arg)
        .output()
        .unwrap()
}

#[test]
fn kernel_clients_complete_handshakes_over_af_xdp() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("server") => return server(),
        Ok("client") => return client(),
        _ => {}
    }
    if !synline_testns::require(TEST, &["ethtool", "sysctl"]) {
        return;
    }
    let net = VethPair::new(&VethSpec {
        tag: "synh",
        srv_dev: SRV_DEV,
        cli_dev: CLI_DEV,
        queues: 1,
    });
    let out = rerun(&net.server, "server", &net.client, 180);
    let log = log_of(&out);
    eprintln!("server in {}:\n{log}", net.server);
    assert!(out.status.success(), "the server part failed (see above)");
    assert!(log.contains("1 passed"), "the server ran no test");
}

// ---- the client, in the client namespace ----

/// Connects to each address of `ARG_ENV` (comma separated) and prints
/// `E2E <target> <local address>` for each; reads the kernel server's greeting.
fn client() {
    let targets = std::env::var(ARG_ENV).unwrap();
    let mut streams = Vec::new();
    for t in targets.split(',') {
        let target: SocketAddr = t.parse().unwrap();
        let s = TcpStream::connect_timeout(&target, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect({target}): {e}"));
        if target.port() == KERNEL_PORT {
            let mut buf = [0u8; GREETING.len()];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            (&s).read_exact(&mut buf).unwrap();
            assert_eq!(buf, GREETING);
        }
        println!("E2E {target} {}", s.local_addr().unwrap());
        streams.push(s);
    }
}

// ---- the server, in the server namespace ----

/// The options a round's client offers, set as the client namespace's sysctls.
#[derive(Debug, Clone, Copy)]
struct Round {
    timestamps: bool,
    sack: bool,
    window_scaling: bool,
}

const ROUNDS: [Round; 4] = [
    Round {
        timestamps: true,
        sack: true,
        window_scaling: true,
    },
    Round {
        timestamps: false,
        sack: false,
        window_scaling: false,
    },
    Round {
        timestamps: true,
        sack: false,
        window_scaling: false,
    },
    Round {
        timestamps: false,
        sack: true,
        window_scaling: true,
    },
];

fn ifindex(dev: &str) -> u32 {
    ifindex_in(None, dev)
}

fn listen(stack: &Stack, addr: SocketAddr) -> Socket {
    let fam = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let mut s = stack.socket(fam).unwrap();
    s.bind(addr).unwrap();
    s.listen(128).unwrap();
    s
}

/// A kernel TCP server on `KERNEL_PORT` that greets every connection, until `stop`.
fn kernel_server(stop: Arc<AtomicBool>) -> thread::JoinHandle<usize> {
    let l = TcpListener::bind((V4_SRV, KERNEL_PORT)).unwrap();
    l.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.write_all(GREETING).unwrap();
                    served += 1;
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        served
    })
}

/// The server's side of the test: the engine's listeners, and what the clients see.
struct Server<'a> {
    client_ns: &'a str,
    sock4: Socket,
    sock6: Socket,
    /// Children accepted while looking for another one.
    extra: Vec<Child>,
    connections: u64,
    report: String,
}

impl Server<'_> {
    /// Sets the client's TCP options.
    fn client_options(&self, r: Round) {
        let b = |on: bool| if on { "1" } else { "0" };
        must(&[
            "ip",
            "netns",
            "exec",
            self.client_ns,
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv4.tcp_timestamps={}", b(r.timestamps)),
            &format!("net.ipv4.tcp_sack={}", b(r.sack)),
            &format!("net.ipv4.tcp_window_scaling={}", b(r.window_scaling)),
        ]);
    }

    /// Runs a client that connects to each of `targets`; returns (target, client address).
    fn connect(&self, targets: &[SocketAddr]) -> Vec<(SocketAddr, SocketAddr)> {
        let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        let out = rerun(self.client_ns, "client", &list.join(","), 60);
        let log = log_of(&out);
        assert!(out.status.success(), "client to {targets:?}:\n{log}");
        // libtest prints "test NAME ... " before the client's first line.
        let got: Vec<(SocketAddr, SocketAddr)> = log
            .lines()
            .filter_map(|l| l.find("E2E ").map(|i| &l[i + 4..]))
            .map(|l| {
                let (t, local) = l.split_once(' ').unwrap();
                (t.parse().unwrap(), local.parse().unwrap())
            })
            .collect();
        assert_eq!(got.len(), targets.len(), "client to {targets:?}:\n{log}");
        got
    }

    /// The child of `remote` on the accept list of `target`'s listener, waiting up to 3 s for
    /// the third ACK to be processed (connect() returns when the SYN-ACK arrives, before
    /// that), checked against what the client offered.
    fn accept(&mut self, target: SocketAddr, remote: SocketAddr, offered: Round) -> Child {
        let sock = if target.is_ipv6() {
            &self.sock6
        } else {
            &self.sock4
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let c = loop {
            if let Some(i) = self.extra.iter().position(|c| c.remote == remote) {
                break self.extra.swap_remove(i);
            }
            match sock.accept() {
                Ok(c) => self.extra.push(c),
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no child from {remote} on the accept list of {target}: {e}"),
            }
        };
        self.connections += 1;
        writeln!(
            self.report,
            "{offered:?} {} -> {}: mss {} wscale {:?}/{} sack {} ts {:?}",
            c.remote, c.local, c.mss, c.snd_wscale, c.rcv_wscale, c.sack, c.timestamps
        )
        .unwrap();
        // The 4-tuple is the client's.
        assert_eq!((c.local, c.remote), (target, remote), "{c:?}");
        assert_eq!(c.state, ChildState::Established, "{c:?}");
        assert!(!c.from_cookie, "{c:?}");
        assert!(c.data.is_empty(), "{c:?}");
        // What the client offered was negotiated.
        assert_eq!(c.sack, offered.sack, "{offered:?}: {c:?}");
        assert_eq!(
            c.timestamps.is_some(),
            offered.timestamps,
            "{offered:?}: {c:?}"
        );
        assert_eq!(
            c.snd_wscale.is_some(),
            offered.window_scaling,
            "{offered:?}: {c:?}"
        );
        if !offered.window_scaling {
            assert_eq!(c.rcv_wscale, 0, "{c:?}");
        }
        // The client's MSS on a 1500-byte veth: 1460 for IPv4, 1440 for IPv6.
        let mss = if target.is_ipv6() { 1440 } else { 1460 };
        assert_eq!(c.mss, mss, "{c:?}");
        assert!(!c.ecn, "the client did not ask for ECN: {c:?}");
        c
    }
}

fn server() {
    let client_ns = std::env::var(ARG_ENV).unwrap();
    let v4: SocketAddr = format!("{V4_SRV}:{PORT}").parse().unwrap();
    let v6: SocketAddr = format!("[{V6_SRV}]:{PORT}").parse().unwrap();
    let kernel: SocketAddr = format!("{V4_SRV}:{KERNEL_PORT}").parse().unwrap();

    // The veth end has one rx queue (veth's default): it needs one socket, on queue 0.
    let queues = std::fs::read_dir(format!("/sys/class/net/{SRV_DEV}/queues"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("rx-")
        })
        .count();
    assert_eq!(queues, 1, "rx queues of {SRV_DEV}");

    // Forcing zero-copy on veth fails (EOPNOTSUPP), naming the call, the interface and the
    // queue.
    let zc = XskQueue::new(
        SRV_DEV,
        0,
        &XskConfig {
            bind_mode: BindMode::ZeroCopy,
            bind_retry: Duration::ZERO,
            ..XskConfig::default()
        },
    )
    .unwrap_err();
    eprintln!("zero-copy forced: {zc}");
    assert!(
        zc.to_string()
            .starts_with("bind AF_XDP socket to srv queue 0 (zero-copy mode): "),
        "{zc}"
    );
    assert_eq!(zc.raw_os_error(), Some(libc::EOPNOTSUPP), "{zc}");

    // The port: both listeners in the program's map, attached in the driver, and the AF_XDP
    // socket of queue 0 (veth has no zero-copy, so Auto must report copy mode).
    let t = Instant::now();
    let mut port = Port::open(&PortConfig {
        iface: SRV_DEV.to_owned(),
        listeners: vec![v4, v6],
        attach: AttachMode::Native,
        xsk: XskConfig::default(),
        kernel_flows: false,
    })
    .unwrap();
    eprintln!(
        "{SRV_DEV}: {:?} XDP, queues {:?} (opened in {:?})",
        port.attach_mode(),
        port.queue_modes(),
        t.elapsed()
    );
    assert_eq!(port.attach_mode(), AttachMode::Native);
    assert_eq!(port.queue_modes(), [XskMode::Copy]);
    assert_eq!(port.ifindex(), ifindex(SRV_DEV));

    // The engine, listening on the same addresses.
    let stack = Stack::new(StackConfig::default(), Secrets::from_seed(0x5e1f));
    let mut srv = Server {
        client_ns: &client_ns,
        sock4: listen(&stack, v4),
        sock6: listen(&stack, v6),
        extra: Vec::new(),
        connections: 0,
        report: String::new(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let stats = port.queue_shared()[0].clone();
    let stats = &stats.worker;
    let kernel_stop = Arc::new(AtomicBool::new(false));
    let kernel_srv = kernel_server(kernel_stop.clone());
    let mut lossy = (0, 0);
    let workers = port
        .spawn(
            &stack,
            &WorkerConfig {
                name: "e2e".to_owned(),
                cpus: vec![0],
                ..WorkerConfig::default()
            },
            stop.clone(),
            |_| |_: &mut RoundCtx<'_>| {},
        )
        .unwrap();

    thread::scope(|s| {
        // Whatever happens below, the worker stops.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = StopOnDrop(&stop);

        // Not for a listener: the kernel still answers.
        for (flag, addr) in [("-4", V4_SRV), ("-6", V6_SRV)] {
            let ping = run(&[
                "ip", "netns", "exec", &client_ns, "ping", flag, "-c", "2", "-W", "2", addr,
            ]);
            assert!(ping.status.success(), "ping {addr}: {}", log_of(&ping));
        }

        // Kernel clients with each combination of options, both families; and the kernel
        // server, every round.
        for round in ROUNDS {
            srv.client_options(round);
            for (target, local) in srv.connect(&[v4, v6, kernel]) {
                if target != kernel {
                    srv.accept(target, local, round);
                }
            }
        }

        // SYN-ACKs lost for 2.5 s (a blackhole rule in the client for segments from the
        // listener, ahead of the local table): the engine's timer retransmits from the
        // reserve (T-6: at 1 s and 3 s), and the connection completes once they get through.
        let before = (
            stack.stats().get(Mib::TCPTimeouts),
            stats.snapshot().reserve_tx,
        );
        srv.client_options(ROUNDS[0]);
        let ns = client_ns.as_str();
        let port = PORT.to_string();
        must(&[
            "ip", "-n", ns, "rule", "add", "pref", "100", "lookup", "local",
        ]);
        must(&["ip", "-n", ns, "rule", "del", "pref", "0"]);
        must(&[
            "ip",
            "-n",
            ns,
            "rule",
            "add",
            "pref",
            "10",
            "iif",
            CLI_DEV,
            "from",
            V4_SRV,
            "ipproto",
            "tcp",
            "sport",
            &port,
            "blackhole",
        ]);
        let lift = s.spawn(move || {
            thread::sleep(Duration::from_millis(2500));
            must(&["ip", "-n", ns, "rule", "del", "pref", "10"]);
        });
        let t = Instant::now();
        let got = srv.connect(&[v4]);
        let took = t.elapsed();
        lift.join().unwrap();
        srv.accept(v4, got[0].1, ROUNDS[0]);
        let after = (
            stack.stats().get(Mib::TCPTimeouts),
            stats.snapshot().reserve_tx,
        );
        lossy = (after.0 - before.0, after.1 - before.1);
        eprintln!(
            "lost SYN-ACKs: connected after {took:?}, {} timer firings, {} frames from the reserve",
            lossy.0, lossy.1
        );
        assert!(took >= Duration::from_secs(2), "{took:?}");

        assert!(
            srv.extra.is_empty(),
            "children nobody connected: {:?}",
            srv.extra
        );

        // Let the clients' FINs reach the engine (answered with RSTs), then stop the worker.
        thread::sleep(Duration::from_millis(200));
    });
    workers.join().unwrap();
    kernel_stop.store(true, Ordering::Relaxed);
    let served = kernel_srv.join().unwrap();
    eprint!("{}", srv.report);

    let q = stats.snapshot();
    let engine = stack.stats();
    let xdp = port.xdp_counters().unwrap();
    let kstats = port.queue_shared()[0].kernel();
    eprintln!("queue: {q:?}");
    eprintln!("kernel, AF_XDP socket: {kstats:?}");
    eprintln!("XDP program: {xdp:?}");
    for (name, v) in engine.iter().filter(|&(_, v)| v != 0) {
        eprintln!("engine: {name} {v}");
    }

    let rounds = ROUNDS.len() as u64;
    let connections = srv.connections;
    assert_eq!(connections, 2 * rounds + 1);
    assert_eq!(served as u64, rounds, "the kernel server's connections");
    assert_eq!(
        engine.get(Mib::PassiveOpens),
        connections,
        "TcpPassiveOpens"
    );
    assert_eq!(engine.get(Mib::SyncookiesSent), 0);
    assert_eq!(engine.get(Mib::ListenDrops), 0);
    // The lost SYN-ACKs were retransmitted by the timer, in frames of the reserve.
    assert!(lossy.0 >= 1 && lossy.1 >= 1, "{lossy:?}");
    assert!(engine.get(Mib::TCPSynRetrans) >= lossy.1, "TCPSynRetrans");
    // Each connection: SYN and ACK received, a SYN-ACK sent from the SYN's frame.
    assert!(q.rx_frames >= 2 * connections, "{q:?}");
    assert!(q.tx_frames >= connections, "{q:?}");
    assert_eq!(
        engine.get(Mib::OutSegs),
        q.tx_frames,
        "every segment made left"
    );
    assert_eq!(q.tx_ring_full, 0, "{q:?}");
    assert_eq!(q.not_for_engine, 0, "{q:?}");
    assert_eq!(q.timer_polls_deferred, 0, "{q:?}");
    // Copy mode: every batch with a reply was kicked.
    assert!(q.wakeups >= connections, "{q:?}");
    // Everything redirected reached the worker; nothing for a listener went to the kernel.
    assert_eq!(xdp.no_socket, 0, "{xdp:?}");
    assert!(xdp.redirected >= q.rx_frames, "{xdp:?} vs {q:?}");
    assert!(xdp.redirected <= q.rx_frames + 2, "{xdp:?} vs {q:?}");
    assert!(
        xdp.not_listener >= 2 * rounds,
        "kernel server traffic: {xdp:?}"
    );
    assert!(xdp.not_tcp >= 4, "pings: {xdp:?}");
    assert_eq!(kstats.rx_dropped + kstats.rx_ring_full, 0, "{kstats:?}");
    assert_eq!(
        kstats.tx_invalid_descs + kstats.rx_invalid_descs,
        0,
        "{kstats:?}"
    );

    // The queue is free again once its socket is gone (retrying the EBUSY of the first
    // milliseconds); this time with busy polling, whose socket options veth accepts.
    let t = Instant::now();
    let busy = XskConfig {
        busy_poll: Some(synline_xdp::BusyPoll::default()),
        ..XskConfig::default()
    };
    let again = XskQueue::new(SRV_DEV, 0, &busy).unwrap();
    eprintln!("re-bound queue 0 with busy polling in {:?}", t.elapsed());
    drop(again);
    port.close().unwrap();
    let link = must(&["ip", "-d", "link", "show", "dev", SRV_DEV]);
    assert!(
        !link.contains("prog/xdp"),
        "XDP left on after close: {link}"
    );
}
