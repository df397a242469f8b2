//! Initial sequence numbers, timestamp offsets and IPv6 flow labels (Q-3, Q-4, V-5): the
//! kernel's `net/core/secure_seq.c`.
//!
//! All are keyed SipHash-2-4 over the 4-tuple under secrets the caller passes in (the core
//! draws no randomness); the binary draws them from the OS at start.

use crate::flow::FlowKey;
use core::time::Duration;

/// Keys for every keyed hash of the engine. Generate each from a cryptographic random source.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    /// ISS.
    pub isn: [u8; 16],
    /// timestamp offset per address pair.
    pub ts_off: [u8; 16],
    /// V-5: IPv6 flow label.
    pub flow_label: [u8; 16],
    /// K-1: the two SYN-cookie hashes H0 and H1.
    pub cookie: [[u8; 16]; 2],
    /// Seed of the request table's hash, so a peer cannot aim its 4-tuples at one bucket.
    pub table_seed: u64,
}

impl core::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Secrets expanded from one 64-bit seed with SipHash. For tests and deterministic replays
    /// only: a deployment draws every key from the OS.
    pub fn from_seed(seed: u64) -> Secrets {
        let mut master = [0u8; 16];
        master[..8].copy_from_slice(&seed.to_le_bytes());
        let key = |i: u64| {
            let mut k = [0u8; 16];
            for (j, chunk) in k.chunks_mut(8).enumerate() {
                let word = keyed(
                    &master,
                    &[i.to_le_bytes(), (j as u64).to_le_bytes()].concat(),
                );
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            k
        };
        Secrets {
            isn: key(1),
            ts_off: key(2),
            flow_label: key(3),
            cookie: [key(4), key(5)],
            table_seed: u64::from_le_bytes(key(6)[..8].try_into().unwrap_or([0; 8])),
        }
    }
}

/// Keyed SipHash-2-4 of `data`.
#[inline]
pub(crate) fn keyed(key: &[u8; 16], data: &[u8]) -> u64 {
    crate::siphash::siphash24(key, data)
}

/// ISS = keyed SipHash(4-tuple) + (clock ns >> 6). The clock term makes the ISS of a
/// given 4-tuple advance by 2^32 every ~275 s (RFC 6528's 4-microsecond-ish clock), so a
/// reincarnated connection starts above the old one.
pub fn secure_tcp_seq(s: &Secrets, key: &FlowKey, now: Duration) -> u32 {
    let mut buf = [0u8; 36];
    let n = key.hash_input(&mut buf);
    (keyed(&s.isn, &buf[..n]) as u32).wrapping_add((now.as_nanos() >> 6) as u32)
}

/// the per-address-pair timestamp offset (tcp_timestamps = 1).
pub fn secure_tcp_ts_off(s: &Secrets, key: &FlowKey) -> u32 {
    let mut buf = [0u8; 36];
    let n = key.addr_pair_input(&mut buf);
    keyed(&s.ts_off, &buf[..n]) as u32
}

/// V-5: a 20-bit flow label per request that changes with each retransmission, as the
/// kernel's auto flow labels change when a retransmission rehashes `sk_txhash`. Never 0,
/// since 0 means "no label".
pub fn flow_label(s: &Secrets, key: &FlowKey, attempt: u8) -> u32 {
    let mut buf = [0u8; 37];
    let mut t = [0u8; 36];
    let n = key.hash_input(&mut t);
    buf[..n].copy_from_slice(&t[..n]);
    buf[n] = attempt;
    let l = (keyed(&s.flow_label, &buf[..n + 1]) as u32) & 0x000f_ffff;
    if l == 0 {
        1
    } else {
        l
    }
}

/// TSval clock: milliseconds (the kernel's `tcp_clock_ms`), 32 bits, wrapping.
#[inline]
pub fn ts_clock_ms(now: Duration) -> u32 {
    now.as_millis() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(rport: u16) -> FlowKey {
        FlowKey {
            laddr: [1; 16],
            raddr: [2; 16],
            lport: 80,
            rport,
            v6: true,
        }
    }

    #[test]
    fn q3_iss_depends_on_tuple_and_secret_and_advances_with_clock() {
        let s = Secrets::from_seed(1);
        let t = Duration::from_secs(10);
        let a = secure_tcp_seq(&s, &key(1000), t);
        assert_ne!(a, secure_tcp_seq(&s, &key(1001), t));
        assert_ne!(a, secure_tcp_seq(&Secrets::from_seed(2), &key(1000), t));
        // 64 ns later the ISS is one higher: monotonic for a given 4-tuple.
        assert_eq!(
            secure_tcp_seq(&s, &key(1000), t + Duration::from_nanos(64)),
            a.wrapping_add(1)
        );
    }

    #[test]
    fn q4_ts_off_per_address_pair() {
        let s = Secrets::from_seed(1);
        assert_eq!(
            secure_tcp_ts_off(&s, &key(1)),
            secure_tcp_ts_off(&s, &key(2))
        );
    }

    #[test]
    fn v5_flow_label_changes_on_retransmit() {
        let s = Secrets::from_seed(1);
        let a = flow_label(&s, &key(1), 0);
        assert!(a != 0 && a <= 0xfffff);
        assert_ne!(a, flow_label(&s, &key(1), 1));
    }
}
