//! SYN cookies (spec section 10): answering a SYN without keeping state, and recognising the
//! ACK that comes back. The kernel's `net/ipv4/syncookies.c` and `net/ipv6/syncookies.c`.
//!
//! # The cookie (K-1)
//! The ISS of a cookie SYN-ACK is
//! ```text
//!   ISS = H0(4-tuple) + client ISN + (count << 24) + ((H1(4-tuple, count) + idx) mod 2^24)
//!
//!    31          24 23                                              0
//!   +--------------+-------------------------------------------------+
//!   |    count     |         H1(4-tuple, count) + idx  (mod 2^24)    |   + H0(4-tuple) + ISN
//!   +--------------+-------------------------------------------------+
//! ```
//! `count` is the minute counter (`now / 60 s`), `idx` the index of the peer's MSS in the
//! family's table (K-2, V-3), H0 and H1 keyed SipHash under two separate secrets. Checking
//! (K-5) runs it backwards: subtract H0 + ISN, read the age from the top byte (0 or 1 minute
//! is accepted), subtract H1 for that minute, and the rest must be an index below 4.
//!
//! # Options in the timestamp (K-3)
//! A cookie has no room for window scale, SACK and ECN, so when the SYN had timestamps they
//! ride in the low 6 bits of our TSval, and come back in the ACK's TSecr:
//! ```text
//!    31                                      6   5     4     3    0
//!   +-----------------------------------------+-----+------+-------+
//!   |        ms clock, low 6 bits replaced     | ECN | SACK | wscale|   + ts_off
//!   +-----------------------------------------+-----+------+-------+
//!                                                  wscale 0xF: no window scaling
//! ```
//! The clock part is lowered by 64 ms when the options would make it run ahead of the clock.
//!
//! # Secrets and rotation
//! The caller passes the two secrets in. Rotating them keeps the previous pair for 120 s
//! (two cookie periods), the whole life of a cookie, so no cookie issued before a rotation is
//! refused because of it.

use crate::flow::FlowKey;
use crate::secure_seq::keyed;
use core::time::Duration;

/// Previous cookie secret pairs kept. A pair validates cookies for two minutes after it is
/// retired (a cookie issued just before the rotation lives that long), so with rotations at
/// most once a minute two previous pairs cover every live cookie. Rotating faster retires
/// the oldest pair early: its cookies fail (SyncookiesFailed) and those clients retry.
pub(crate) const PREVIOUS_COOKIE_KEYS: usize = 2;

/// Cookie secrets, with retired pairs kept for the life of their cookies.
#[derive(Debug, Clone)]
pub(crate) struct CookieKeys {
    pub current: [[u8; 16]; 2],
    /// Retired pairs, newest first, with the time each was retired.
    pub previous: [Option<([[u8; 16]; 2], Duration)>; PREVIOUS_COOKIE_KEYS],
}

impl CookieKeys {
    pub fn new(current: [[u8; 16]; 2]) -> Self {
        CookieKeys {
            current,
            previous: [None; PREVIOUS_COOKIE_KEYS],
        }
    }

    /// Makes `keys` current and retires the current pair at `now`.
    pub fn rotate(&mut self, keys: [[u8; 16]; 2], now: Duration) {
        self.previous.rotate_right(1);
        self.previous[0] = Some((self.current, now));
        self.current = keys;
    }
}

/// Bits of the cookie below the minute counter.
pub const COOKIEBITS: u32 = 24;
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// K-1: cookies of age 0 and 1 minutes are accepted.
pub const MAX_SYNCOOKIE_AGE: u32 = 2;
/// K-1: seconds per count.
pub const SYNCOOKIE_PERIOD_SECS: u64 = 60;
/// K-2: IPv4 MSS table.
pub const MSS_TABLE_V4: [u16; 4] = [536, 1300, 1440, 1460];
/// V-3: IPv6 MSS table.
pub const MSS_TABLE_V6: [u16; 4] = [1220, 1420, 1440, 8940];

/// K-3: TSval option bits.
const TSBITS: u32 = 6;
const TS_OPT_WSCALE_MASK: u32 = 0x0f;
const TS_OPT_SACK: u32 = 1 << 4;
const TS_OPT_ECN: u32 = 1 << 5;

/// K-1: the minute counter (`tcp_cookie_time`).
#[inline]
pub fn cookie_time(now: Duration) -> u32 {
    (now.as_secs() / SYNCOOKIE_PERIOD_SECS) as u32
}

/// The table for a family.
#[inline]
pub fn mss_table(v6: bool) -> &'static [u16; 4] {
    if v6 {
        &MSS_TABLE_V6
    } else {
        &MSS_TABLE_V4
    }
}

/// K-2: the largest table entry not above the peer's MSS (below the first: the first).
#[inline]
pub fn mss_index(peer_mss: u16, v6: bool) -> u32 {
    let t = mss_table(v6);
    let mut i = t.len() - 1;
    while i > 0 && peer_mss < t[i] {
        i -= 1;
    }
    i as u32
}

/// `cookie_hash(tuple, count, c)`: SipHash of the 4-tuple and the count under secret `c`.
#[inline]
fn cookie_hash(keys: &[[u8; 16]; 2], key: &FlowKey, count: u32, c: usize) -> u32 {
    let mut buf = [0u8; 40];
    let mut t = [0u8; 36];
    let n = key.hash_input(&mut t);
    buf[..n].copy_from_slice(&t[..n]);
    buf[n..n + 4].copy_from_slice(&count.to_be_bytes());
    keyed(&keys[c], &buf[..n + 4]) as u32
}

/// K-1: the cookie ISS for a SYN with sequence number `client_isn`.
pub fn cookie_init_sequence(
    keys: &[[u8; 16]; 2],
    key: &FlowKey,
    client_isn: u32,
    count: u32,
    idx: u32,
) -> u32 {
    cookie_hash(keys, key, 0, 0)
        .wrapping_add(client_isn)
        .wrapping_add(count << COOKIEBITS)
        .wrapping_add(cookie_hash(keys, key, count, 1).wrapping_add(idx) & COOKIEMASK)
}

/// K-5 under one pair of secrets: the MSS index the cookie carries, if valid and young enough.
/// `cookie` is SEG.ACK - 1 and `client_isn` SEG.SEQ - 1 of the ACK.
pub fn cookie_check_with(
    keys: &[[u8; 16]; 2],
    key: &FlowKey,
    cookie: u32,
    client_isn: u32,
    count: u32,
) -> Option<u32> {
    let c = cookie.wrapping_sub(cookie_hash(keys, key, 0, 0).wrapping_add(client_isn));
    let age = count.wrapping_sub(c >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
    if age >= MAX_SYNCOOKIE_AGE {
        return None;
    }
    let idx = c.wrapping_sub(cookie_hash(keys, key, count.wrapping_sub(age), 1)) & COOKIEMASK;
    (idx < MSS_TABLE_V4.len() as u32).then_some(idx)
}

/// K-5 with rotation: the current secrets, then each retired pair while its cookies live.
/// `now` is the caller's clock (the retirement times' clock); `count` the minute counter
/// (`cookie_time` of `now` plus `StackConfig::cookie_clock_offset`).
pub(crate) fn cookie_check(
    keys: &CookieKeys,
    key: &FlowKey,
    cookie: u32,
    client_isn: u32,
    now: Duration,
    count: u32,
) -> Option<u32> {
    if let Some(idx) = cookie_check_with(&keys.current, key, cookie, client_isn, count) {
        return Some(idx);
    }
    let life = Duration::from_secs(SYNCOOKIE_PERIOD_SECS * u64::from(MAX_SYNCOOKIE_AGE));
    keys.previous
        .iter()
        .flatten()
        .filter(|(_, retired)| now < *retired + life)
        .find_map(|(prev, _)| cookie_check_with(prev, key, cookie, client_isn, count))
}

/// Options a cookie carries in the timestamp (K-3, K-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CookieOptions {
    /// The peer's window shift, if it offered scaling.
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack: bool,
    /// ECN.
    pub ecn: bool,
}

/// K-3: the TSval (before adding ts_off) of a cookie SYN-ACK: the ms clock with its low 6 bits
/// replaced by the options, lowered by 64 if that would run ahead of the clock.
pub fn cookie_init_timestamp(now: Duration, o: &CookieOptions) -> u32 {
    let ts_now = now.as_millis() as u64;
    let mut options = match o.wscale {
        Some(w) => u32::from(w) & TS_OPT_WSCALE_MASK,
        None => TS_OPT_WSCALE_MASK,
    };
    if o.sack {
        options |= TS_OPT_SACK;
    }
    if o.ecn {
        options |= TS_OPT_ECN;
    }
    let mut ts = ((ts_now >> TSBITS) << TSBITS) | u64::from(options);
    if ts > ts_now {
        ts -= 1 << TSBITS;
    }
    ts as u32
}

/// Why a decoded cookie cannot be used (K-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The ACK has timestamps but they are disabled here.
    TimestampsOff,
    /// SACK came back but is disabled here.
    SackOff,
    /// A window shift above 14.
    BadWscale,
    /// Window scaling came back but is disabled here.
    WscaleOff,
    /// ECN came back but is disabled here.
    EcnOff,
}

/// K-6: the options of a cookie ACK. `tsecr` is the ACK's TSecr minus our ts_off, `None`
/// when the ACK has no timestamps (then no WS, SACK or ECN).
pub fn cookie_timestamp_decode(
    tsecr: Option<u32>,
    timestamps_on: bool,
    sack_on: bool,
    wscale_on: bool,
    ecn_on: bool,
) -> Result<CookieOptions, DecodeError> {
    let Some(tsecr) = tsecr else {
        return Ok(CookieOptions::default());
    };
    if !timestamps_on {
        return Err(DecodeError::TimestampsOff);
    }
    let sack = tsecr & TS_OPT_SACK != 0;
    if sack && !sack_on {
        return Err(DecodeError::SackOff);
    }
    let ecn = tsecr & TS_OPT_ECN != 0;
    if ecn && !ecn_on {
        return Err(DecodeError::EcnOff);
    }
    let ws = tsecr & TS_OPT_WSCALE_MASK;
    if ws == TS_OPT_WSCALE_MASK {
        return Ok(CookieOptions {
            wscale: None,
            sack,
            ecn,
        });
    }
    if ws > 14 {
        return Err(DecodeError::BadWscale);
    }
    if !wscale_on {
        return Err(DecodeError::WscaleOff);
    }
    Ok(CookieOptions {
        wscale: Some(ws as u8),
        sack,
        ecn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEYS: [[u8; 16]; 2] = [[7; 16], [9; 16]];

    fn key(v6: bool, rport: u16) -> FlowKey {
        let mut laddr = [0u8; 16];
        let mut raddr = [0u8; 16];
        if v6 {
            laddr[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
            raddr[..4].copy_from_slice(&[0x20, 0x01, 0, 2]);
            raddr[15] = 2;
            laddr[15] = 1;
        } else {
            laddr[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 1]);
            raddr[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 2]);
        }
        FlowKey {
            laddr,
            raddr,
            lport: 80,
            rport,
            v6,
        }
    }

    #[test]
    fn k2_mss_index() {
        assert_eq!(mss_index(100, false), 0);
        assert_eq!(mss_index(536, false), 0);
        assert_eq!(mss_index(1299, false), 0);
        assert_eq!(mss_index(1300, false), 1);
        assert_eq!(mss_index(1460, false), 3);
        assert_eq!(mss_index(9000, false), 3);
        assert_eq!(mss_index(1220, true), 0);
        assert_eq!(mss_index(1440, true), 2);
        assert_eq!(mss_index(9000, true), 3);
    }

    #[test]
    fn k5_age_two_rejected() {
        let k = key(false, 1234);
        let c = cookie_init_sequence(&KEYS, &k, 1000, 50, 3);
        assert_eq!(cookie_check_with(&KEYS, &k, c, 1000, 50), Some(3));
        assert_eq!(cookie_check_with(&KEYS, &k, c, 1000, 51), Some(3));
        assert_eq!(cookie_check_with(&KEYS, &k, c, 1000, 52), None);
        // A cookie from the future is not young either.
        assert_eq!(cookie_check_with(&KEYS, &k, c, 1000, 49), None);
    }

    #[test]
    fn k5_rotation_keeps_old_cookies_for_their_life() {
        let k = key(true, 1);
        let old = [[1; 16], [2; 16]];
        let now = Duration::from_secs(600);
        let c = cookie_init_sequence(&old, &k, 5, cookie_time(now), 1);
        let mut keys = CookieKeys::new(old);
        keys.rotate(KEYS, now);
        assert_eq!(
            cookie_check(
                &keys,
                &k,
                c,
                5,
                now + Duration::from_secs(30),
                cookie_time(now + Duration::from_secs(30))
            ),
            Some(1)
        );
        // Older than two periods: gone with its secrets.
        assert_eq!(
            cookie_check(
                &keys,
                &k,
                c,
                5,
                now + Duration::from_secs(121),
                cookie_time(now + Duration::from_secs(121))
            ),
            None
        );
        let no_prev = CookieKeys::new(KEYS);
        assert_eq!(
            cookie_check(&no_prev, &k, c, 5, now, cookie_time(now)),
            None
        );
        // Two rotations a minute apart: the pair retired first still covers its cookies.
        let mut twice = CookieKeys::new(old);
        twice.rotate([[5; 16], [6; 16]], now);
        twice.rotate(KEYS, now + Duration::from_secs(60));
        assert_eq!(
            cookie_check(
                &twice,
                &k,
                c,
                5,
                now + Duration::from_secs(70),
                cookie_time(now + Duration::from_secs(70))
            ),
            Some(1)
        );
    }

    #[test]
    fn k3_timestamp_never_ahead_of_clock() {
        for ms in [0u64, 1, 63, 64, 65, 1000, 123_456_789] {
            for o in [
                CookieOptions {
                    wscale: None,
                    sack: true,
                    ecn: true,
                },
                CookieOptions {
                    wscale: Some(14),
                    sack: false,
                    ecn: false,
                },
                CookieOptions {
                    wscale: Some(0),
                    sack: true,
                    ecn: false,
                },
            ] {
                let now = Duration::from_millis(ms + 1_000_000);
                let ts = cookie_init_timestamp(now, &o);
                assert!(u64::from(ts) <= ms + 1_000_000, "ts {ts} ahead of {ms}");
                assert!(u64::from(ts) + 128 > ms + 1_000_000);
                assert_eq!(
                    cookie_timestamp_decode(Some(ts), true, true, true, true),
                    Ok(o)
                );
            }
        }
    }

    #[test]
    fn k6_disabled_options_rejected() {
        let o = CookieOptions {
            wscale: Some(7),
            sack: true,
            ecn: true,
        };
        let ts = cookie_init_timestamp(Duration::from_secs(100), &o);
        assert_eq!(
            cookie_timestamp_decode(Some(ts), false, true, true, true),
            Err(DecodeError::TimestampsOff)
        );
        assert_eq!(
            cookie_timestamp_decode(Some(ts), true, false, true, true),
            Err(DecodeError::SackOff)
        );
        assert_eq!(
            cookie_timestamp_decode(Some(ts), true, true, false, true),
            Err(DecodeError::WscaleOff)
        );
        assert_eq!(
            cookie_timestamp_decode(Some(ts), true, true, true, false),
            Err(DecodeError::EcnOff)
        );
        assert_eq!(
            cookie_timestamp_decode(None, false, false, false, false),
            Ok(CookieOptions::default())
        );
        // wscale 15 is "none"; 0xE = 14 is fine; the field cannot say more than 15.
        assert_eq!(
            cookie_timestamp_decode(Some(0x0f), true, true, false, true)
                .unwrap()
                .wscale,
            None
        );
    }

    proptest! {
        /// K-1/K-5: every MSS-table entry round-trips, for both families, at ages 0 and 1.
        #[test]
        fn k1_round_trip(v6 in any::<bool>(), rport in any::<u16>(), isn in any::<u32>(), count in any::<u32>(), idx in 0u32..4, age in 0u32..2) {
            let k = key(v6, rport);
            let c = cookie_init_sequence(&KEYS, &k, isn, count, idx);
            prop_assert_eq!(cookie_check_with(&KEYS, &k, c, isn, count.wrapping_add(age)), Some(idx));
        }

        /// A changed 4-tuple, client ISN or secret, or a forged value, is rejected (up to the
        /// 4-in-2^24 chance of a random hit, which proptest will not find).
        ///
        /// The client ISN is added, not hashed, as in Linux: an ISN off by d < 4 reads back as
        /// MSS index idx - d, which is still a valid index. That only moves the peer's own MSS
        /// within the table; changes of 4 and more are rejected.
        #[test]
        fn k5_forgeries_rejected(v6 in any::<bool>(), rport in 1u16.., isn in any::<u32>(), count in any::<u32>(), idx in 0u32..4, forged in any::<u32>(), d in 4u32..(1 << 24) - 4) {
            let k = key(v6, rport);
            let c = cookie_init_sequence(&KEYS, &k, isn, count, idx);
            prop_assert_eq!(cookie_check_with(&KEYS, &key(v6, rport - 1), c, isn, count), None);
            prop_assert_eq!(cookie_check_with(&KEYS, &k, c, isn.wrapping_add(d), count), None);
            prop_assert_eq!(cookie_check_with(&[[3; 16], [4; 16]], &k, c, isn, count), None);
            if forged != c {
                prop_assert_eq!(cookie_check_with(&KEYS, &k, forged, isn, count), None);
            }
        }

        /// K-3/K-6: every option combination survives the timestamp.
        #[test]
        fn k3_options_round_trip(ws in proptest::option::of(0u8..=14), sack in any::<bool>(), ecn in any::<bool>(), ms in any::<u32>()) {
            let o = CookieOptions { wscale: ws, sack, ecn };
            let ts = cookie_init_timestamp(Duration::from_millis(u64::from(ms) + 64), &o);
            prop_assert_eq!(cookie_timestamp_decode(Some(ts), true, true, true, true), Ok(o));
        }
    }
}
