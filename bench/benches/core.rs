//! The engine's hot paths, per frame, with 1 k and 1 M live request socks:
//! - `syn_synack_insert`: a SYN parsed, a request inserted, the SYN-ACK built in place;
//! - `third_ack_child`: a third ACK checked, the child made and appended to the accept list;
//! - `cookie_synack`: a SYN answered with a cookie (tcp_syncookies = 2);
//! - `cookie_ack_child`: a cookie ACK checked and turned into a child.
//!
//! Frames are prepared untimed, each in its own 256-byte buffer, and processed in place as an
//! AF_XDP worker would (no copy in the timed loop). Work is done in chunks: after each chunk
//! the table is brought back to its size untimed (children accepted, requests removed by
//! their ACKs), so the 1 M case stays at 1 M. Also prints the memory a live request costs,
//! from the process's resident size before and after filling the table.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use synline_core::{
    AddressFamily, ListenerConfig, Secrets, Socket, Stack, StackConfig, SyncookieMode, Verdict,
    Worker,
};
use synline_wire::emit::{emit_segment, SegmentSpec};
use synline_wire::reply::{IpParams, TcpParams};
use synline_wire::{parse_frame, OptionsOut, SeqNumber, TcpFlags, Timestamps};

const BUF: usize = 256;
const CHUNK: usize = 4096;
const SERVER: &str = "198.18.0.1:80";

struct Setup {
    stack: Stack,
    sock: Socket,
    w: Worker,
    now: Duration,
}

fn setup(mode: SyncookieMode, capacity: usize) -> Setup {
    let somaxconn = (capacity as u32 + CHUNK as u32 * 2).max(4096);
    let stack = Stack::new(
        StackConfig {
            somaxconn,
            max_requests: capacity + CHUNK * 4,
            requests_per_worker_hint: capacity + CHUNK * 4,
            ..StackConfig::default()
        },
        Secrets::from_seed(7),
    );
    let mut sock = stack.socket(AddressFamily::Inet).unwrap();
    sock.set_config(ListenerConfig {
        syncookies: mode,
        ..ListenerConfig::default()
    })
    .unwrap();
    sock.bind(SERVER.parse().unwrap()).unwrap();
    sock.listen(somaxconn as i32).unwrap();
    let w = stack.worker(0).unwrap();
    Setup {
        stack,
        sock,
        w,
        now: Duration::from_secs(10_000),
    }
}

/// Client `i`: a distinct 4-tuple from 198.18.0.0/15.
fn client(i: u32) -> SocketAddr {
    let a = 0xc612_0000u32 | ((i >> 14) & 0x1ffff);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), 1024 + (i & 0x3fff) as u16)
}

fn frame(buf: &mut [u8], c: SocketAddr, flags: TcpFlags, seq: u32, ack: u32, options: OptionsOut) {
    let spec = SegmentSpec {
        eth_src: [2, 0, 0, 0, 0, 2],
        eth_dst: [2, 0, 0, 0, 0, 1],
        vlan: None,
        src: c.ip(),
        dst: SERVER.parse::<SocketAddr>().unwrap().ip(),
        ip: IpParams {
            ttl: 64,
            tos: 0,
            flow_label: 0,
        },
        src_port: c.port(),
        dst_port: 80,
        tcp: TcpParams {
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 64240,
            options,
        },
        payload: &[],
    };
    emit_segment(buf, &spec).unwrap();
}

fn linux_syn_options() -> OptionsOut {
    OptionsOut {
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: 12345,
            tsecr: 0,
        }),
    }
}

/// SYNs for clients `first..first + n`, each in its own buffer; returns (buffers, lengths).
fn syns(first: u32, n: usize) -> (Vec<[u8; BUF]>, Vec<usize>) {
    let mut bufs = vec![[0u8; BUF]; n];
    let mut lens = Vec::with_capacity(n);
    for (k, b) in bufs.iter_mut().enumerate() {
        let c = client(first + k as u32);
        frame(b, c, TcpFlags::SYN, 1000 + k as u32, 0, linux_syn_options());
        lens.push(parse_frame(b).unwrap().layout.end);
    }
    (bufs, lens)
}

/// Third ACKs answering the SYN-ACKs now in `bufs`.
fn acks(bufs: &mut [[u8; BUF]], lens: &mut [usize]) {
    for (b, len) in bufs.iter_mut().zip(lens.iter_mut()) {
        let sa = parse_frame(&b[..]).unwrap().seg;
        let c = SocketAddr::new(sa.dst, sa.dst_port);
        let ts = sa.options.timestamps.map(|t| Timestamps {
            tsval: 12346,
            tsecr: t.tsval,
        });
        let opts = OptionsOut {
            timestamps: ts,
            ..OptionsOut::default()
        };
        frame(
            b,
            c,
            TcpFlags::ACK,
            sa.ack.0,
            sa.seq.0.wrapping_add(1),
            opts,
        );
        *len = parse_frame(&b[..]).unwrap().layout.end;
    }
}

fn run_all(
    w: &mut Worker,
    bufs: &mut [[u8; BUF]],
    lens: &[usize],
    now: Duration,
    expect: fn(Verdict) -> bool,
) -> Duration {
    let mut bad = None;
    let t = Instant::now();
    for (b, &len) in bufs.iter_mut().zip(lens) {
        let v = w.handle_frame(b, len, now);
        if !expect(v) {
            bad = Some(v);
        }
        black_box(v);
    }
    let e = t.elapsed();
    assert!(
        bad.is_none(),
        "unexpected verdict {bad:?}: the benchmark would measure the wrong path"
    );
    e
}

fn is_tx(v: Verdict) -> bool {
    matches!(v, Verdict::Transmit(_))
}

fn is_consumed(v: Verdict) -> bool {
    v == Verdict::Consumed
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

/// Fills the table with `n` requests (clients from 1 << 24 on, never reused by the timed part).
fn fill(s: &mut Setup, n: usize) {
    let before = rss_bytes();
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        let (mut bufs, lens) = syns((1 << 24) + done as u32, k);
        run_all(&mut s.w, &mut bufs, &lens, s.now, is_tx);
        done += k;
    }
    assert_eq!(s.w.requests(), n);
    let after = rss_bytes();
    if n >= 100_000 {
        eprintln!(
            "memory: {} live requests, {:.0} bytes each (resident size delta, table and timer links included)",
            n,
            (after.saturating_sub(before)) as f64 / n as f64
        );
    }
}

fn bench_requests(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for &live in &[1_000usize, 1_000_000] {
        let mut s = setup(SyncookieMode::Never, live);
        fill(&mut s, live);
        let mut next = 0u32;
        g.bench_with_input(
            BenchmarkId::new("syn_synack_insert", live),
            &live,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let k = CHUNK.min(left);
                        let (mut bufs, mut lens) = syns(next, k);
                        next = next.wrapping_add(k as u32) % (1 << 23);
                        total += run_all(&mut s.w, &mut bufs, &lens, s.now, is_tx);
                        // Untimed: back to `live` requests (third ACKs, accept).
                        acks(&mut bufs, &mut lens);
                        run_all(&mut s.w, &mut bufs, &lens, s.now, is_consumed);
                        while s.sock.accept().is_ok() {}
                        left -= k;
                    }
                    total
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("third_ack_child", live), &live, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let k = CHUNK.min(left);
                    let (mut bufs, mut lens) = syns(next, k);
                    next = next.wrapping_add(k as u32) % (1 << 23);
                    run_all(&mut s.w, &mut bufs, &lens, s.now, is_tx);
                    acks(&mut bufs, &mut lens);
                    total += run_all(&mut s.w, &mut bufs, &lens, s.now, is_consumed);
                    while s.sock.accept().is_ok() {}
                    left -= k;
                }
                total
            })
        });
        assert_eq!(s.w.requests(), live, "the table stayed at its size");
        drop(s.stack);
    }
    g.finish();
}

fn bench_cookies(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    let mut s = setup(SyncookieMode::Always, 0);
    let mut next = 0u32;
    g.bench_function("cookie_synack", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = CHUNK.min(left);
                let (mut bufs, lens) = syns(next, k);
                next = next.wrapping_add(k as u32);
                total += run_all(&mut s.w, &mut bufs, &lens, s.now, is_tx);
                left -= k;
            }
            total
        })
    });
    g.bench_function("cookie_ack_child", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = CHUNK.min(left);
                let (mut bufs, mut lens) = syns(next, k);
                next = next.wrapping_add(k as u32);
                run_all(&mut s.w, &mut bufs, &lens, s.now, is_tx);
                acks(&mut bufs, &mut lens);
                total += run_all(&mut s.w, &mut bufs, &lens, s.now, is_consumed);
                while s.sock.accept().is_ok() {}
                left -= k;
            }
            total
        })
    });
    assert_eq!(s.w.requests(), 0, "K-4: no state");
    g.finish();
}

/// Two workers on two threads sharing one listener: qlen/young, ack_backlog and the accept
/// list are the cache lines they contend on. Each thread makes its own clients' handshakes
/// (SYN, then third ACK, each phase started together) and accepts from the shared list; the
/// time is the slower thread's SYN-plus-ACK time per handshake: ns per handshake per worker,
/// to compare with `syn_synack_insert` + `third_ack_child` on one worker.
fn bench_contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(6));
    let stack = Stack::new(
        StackConfig {
            workers: 2,
            somaxconn: 1 << 16,
            ..StackConfig::default()
        },
        Secrets::from_seed(11),
    );
    let mut sock = stack.socket(AddressFamily::Inet).unwrap();
    sock.set_config(ListenerConfig {
        syncookies: SyncookieMode::Never,
        ..ListenerConfig::default()
    })
    .unwrap();
    sock.bind(SERVER.parse().unwrap()).unwrap();
    sock.listen(1 << 16).unwrap();
    let sock = std::sync::Arc::new(sock);
    let workers = std::sync::Arc::new(std::sync::Mutex::new(vec![
        stack.worker(0).unwrap(),
        stack.worker(1).unwrap(),
    ]));
    let mut next = 0u32;
    g.bench_function("two_workers_one_listener_handshake", |b| {
        b.iter_custom(|iters| {
            let per = (iters as usize).max(1);
            let mut total = Duration::ZERO;
            let mut left = per;
            while left > 0 {
                let k = CHUNK.min(left);
                let mut ws = std::mem::take(&mut *workers.lock().unwrap());
                let frames: Vec<_> = (0..2)
                    .map(|t| syns(next + (t as u32) * (1 << 22), k))
                    .collect();
                next = next.wrapping_add(k as u32) % (1 << 22);
                let barrier = std::sync::Barrier::new(2);
                let elapsed = std::thread::scope(|scope| {
                    let hs: Vec<_> = ws
                        .iter_mut()
                        .zip(frames)
                        .map(|(w, (mut bufs, mut lens))| {
                            let (barrier, sock) = (&barrier, sock.clone());
                            scope.spawn(move || {
                                let now = Duration::from_secs(10_000);
                                // Both threads answer their SYNs at the same time...
                                barrier.wait();
                                let syn = run_all(w, &mut bufs, &lens, now, is_tx);
                                acks(&mut bufs, &mut lens);
                                // ...and turn their third ACKs into children at the same time.
                                barrier.wait();
                                let t = Instant::now();
                                for (b, &len) in bufs.iter_mut().zip(&lens) {
                                    black_box(w.handle_frame(b, len, now));
                                    let _ = sock.accept();
                                }
                                syn + t.elapsed()
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
                });
                // Acks that raced the accept list's bound were dropped: clear leftovers.
                while sock.accept().is_ok() {}
                *workers.lock().unwrap() = ws;
                total += elapsed;
                left -= k;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_requests, bench_cookies, bench_contention);
criterion_main!(benches);
