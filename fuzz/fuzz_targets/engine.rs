//! The whole engine under hostile input: a stack with IPv4 and IPv6 listeners, settings taken
//! from the first input bytes, then a stream of length-prefixed frames fed one by one with the
//! clock moving, timers polled between them. Nothing may panic, and every frame the engine
//! sends must parse with valid checksums.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use synline_core::{AddressFamily, ListenerConfig, Secrets, Stack, StackConfig, SyncookieMode, Verdict};

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, backlog, flags, step], mut rest)) = data.split_first_chunk::<4>() else { return };
    let cfg = ListenerConfig {
        syncookies: SyncookieMode::from_sysctl(mode % 3).unwrap(),
        abort_on_overflow: flags & 1 != 0,
        defer_accept_secs: u32::from(flags >> 4),
        timestamps: (flags >> 1) % 3,
        sack: flags & 8 != 0,
        ..ListenerConfig::default()
    };
    let stack = Stack::new(StackConfig { max_requests: 64, somaxconn: 16, requests_per_worker_hint: 16, ..StackConfig::default() }, Secrets::from_seed(1));
    let mut socks = Vec::new();
    for (fam, addr) in [(AddressFamily::Inet, "0.0.0.0:8080"), (AddressFamily::Inet6, "[::]:8080")] {
        let mut s = stack.socket(fam).unwrap();
        s.set_config(cfg).unwrap();
        s.bind(addr.parse().unwrap()).unwrap();
        s.listen(i32::from(backlog % 8)).unwrap();
        socks.push(s);
    }
    let mut w = stack.worker(0).unwrap();
    let mut now = Duration::from_secs(1000);
    let mut buf = vec![0u8; 2048];
    while let Some((&[hi, lo], tail)) = rest.split_first_chunk::<2>() {
        let len = (usize::from(hi) << 8 | usize::from(lo)).min(tail.len()).min(1600);
        let (frame, next) = tail.split_at(len);
        rest = next;
        buf[..len].copy_from_slice(frame);
        if let Verdict::Transmit(n) = w.handle_frame(&mut buf, len, now) {
            synline_wire::parse_frame(&buf[..n]).expect("a reply the engine sends always parses");
        }
        now += Duration::from_millis(u64::from(step) * 16);
        while let Some(n) = w.poll_timers(now, &mut buf) {
            synline_wire::parse_frame(&buf[..n]).expect("a retransmission always parses");
        }
        for s in &socks {
            while s.accept().is_ok() {}
        }
    }
});
