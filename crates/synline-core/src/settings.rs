//! Listener settings (spec section 1), at their Linux defaults, changeable at run time.
//!
//! Each listener carries its own copy of what Linux spreads over sysctls and socket options,
//! under the Linux names so an operator can carry a kernel configuration over:
//! `tcp_syncookies`, `tcp_synack_retries` (TCP_SYNCNT), `tcp_abort_on_overflow`,
//! `TCP_DEFER_ACCEPT`, `TCP_MAXSEG`, `IP_TTL`/`IPV6_UNICAST_HOPS`, `IPV6_TCLASS`, `tcp_rmem`,
//! `tcp_ecn`, `tcp_timestamps`, `tcp_sack`, `tcp_window_scaling`, and the route MTU the kernel
//! would take from the FIB.
//!
//! The hot path reads them as relaxed atomics (one read-mostly cache line); a writer stores
//! field by field, so a reader may see a mix of old and new fields for one segment, as a
//! kernel reader of several sysctls may.

use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU8, Ordering::Relaxed};

/// `tcp_syncookies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncookieMode {
    /// 0: never send cookies; a full SYN queue drops (TCPReqQFullDrop).
    Never,
    /// 1: cookies only while the SYN queue is full (qlen > B). The Linux default.
    WhenFull,
    /// 2: every SYN gets a cookie; no request socks at all.
    Always,
}

impl SyncookieMode {
    /// From the sysctl value.
    pub fn from_sysctl(v: u8) -> Option<Self> {
        match v {
            0 => Some(SyncookieMode::Never),
            1 => Some(SyncookieMode::WhenFull),
            2 => Some(SyncookieMode::Always),
            _ => None,
        }
    }

    /// The sysctl value.
    pub fn sysctl(self) -> u8 {
        self as u8
    }
}

/// A plain copy of a listener's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `tcp_syncookies` (default 1).
    pub syncookies: SyncookieMode,
    /// `tcp_synack_retries` (default 5; 0: no retransmission, as the sysctl means it;
    /// TCP_SYNCNT overrides it in the daemon's configuration when non-zero). At most
    /// [`MAX_SYNCNT`].
    pub synack_retries: u8,
    /// `tcp_abort_on_overflow` (default off).
    pub abort_on_overflow: bool,
    /// TCP_DEFER_ACCEPT in seconds, as set with setsockopt (default 0). Converted to
    /// retransmissions like the kernel's `secs_to_retrans` (T-7, R-8).
    pub defer_accept_secs: u32,
    /// TCP_MAXSEG (0: unset).
    pub maxseg: u16,
    /// IP_TTL / IPV6_UNICAST_HOPS of replies (default 64).
    pub ttl: u8,
    /// IPV6_TCLASS of replies (default 0). IPv4 replies carry TOS 0.
    pub tclass: u8,
    /// `tcp_rmem` = min, default, max (default 4096 131072 33554432, the 6.16+ values).
    pub rmem: [u32; 3],
    /// `tcp_ecn` (0 off, 1 on, 2 accept when asked; default 2). The server side accepts ECN
    /// with 1 or 2.
    pub ecn: u8,
    /// `tcp_timestamps` (0 off, 1 random offset, 2 zero offset; default 1).
    pub timestamps: u8,
    /// `tcp_sack` (default on).
    pub sack: bool,
    /// `tcp_window_scaling` (default on).
    pub window_scaling: bool,
    /// Route MTU used for the MSS we announce (X-3: MTU - 40 for IPv4, MTU - 60 for IPv6).
    pub mtu: u16,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            syncookies: SyncookieMode::WhenFull,
            synack_retries: 5,
            abort_on_overflow: false,
            defer_accept_secs: 0,
            maxseg: 0,
            ttl: 64,
            tclass: 0,
            rmem: [4096, 131072, 33554432],
            ecn: 2,
            timestamps: 1,
            sack: true,
            window_scaling: true,
            mtu: 1500,
        }
    }
}

/// Largest window shift (RFC 7323).
pub const MAX_WSCALE: u8 = 14;
/// `TCP_MIN_MSS`: the smallest TCP_MAXSEG Linux accepts (`do_tcp_setsockopt`).
pub const MIN_MAXSEG: u16 = 88;
/// `MAX_TCP_WINDOW`: the largest TCP_MAXSEG Linux accepts.
pub const MAX_MAXSEG: u16 = 32767;
/// `MAX_TCP_SYNCNT`: the most SYN-ACK retransmissions taken. Linux's TCP_SYNCNT stops here;
/// its sysctl takes up to 255, a request then living for over eight hours at RTO_MAX: synline
/// refuses that too.
pub const MAX_SYNCNT: u8 = 127;
/// Smallest route MTU taken (the IPv4 minimum a TCP host must reassemble, RFC 791).
pub const MIN_MTU: u16 = 576;

/// A listener setting outside what Linux accepts: the key (Linux's name) and the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The setting's Linux name.
    pub key: &'static str,
    /// What it must be.
    pub rule: &'static str,
}

impl core::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} must be {}", self.key, self.rule)
    }
}

impl core::error::Error for InvalidSetting {}

impl ListenerConfig {
    /// Checks every setting: Linux's own limits where Linux has them (TCP_MAXSEG 88..=32767 and
    /// IP_TTL 1..=255 as `setsockopt` checks them, the 0..=2 sysctl ranges), and synline's
    /// where Linux is looser (tcp_rmem ordered and non-zero, an MTU of at least 576; Linux
    /// takes any positive tcp_rmem and an IPv4 MTU down to 68). [`crate::Socket::set_config`]
    /// refuses a config that fails with EINVAL.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |key, rule| Err(InvalidSetting { key, rule });
        if self.maxseg != 0 && !(MIN_MAXSEG..=MAX_MAXSEG).contains(&self.maxseg) {
            return bad("TCP_MAXSEG", "0 (unset) or 88..=32767");
        }
        if self.synack_retries > MAX_SYNCNT {
            return bad("tcp_synack_retries", "0..=127 (MAX_TCP_SYNCNT)");
        }
        if self.ttl == 0 {
            return bad("IP_TTL", "1..=255");
        }
        if self.timestamps > 2 {
            return bad("tcp_timestamps", "0, 1 or 2");
        }
        if self.ecn > 2 {
            return bad("tcp_ecn", "0, 1 or 2");
        }
        let [min, def, max] = self.rmem;
        if min == 0 || min > def || def > max {
            return bad("tcp_rmem", "0 < min <= default <= max");
        }
        if self.mtu < MIN_MTU {
            return bad("mtu", "at least 576");
        }
        Ok(())
    }

    /// TCP_DEFER_ACCEPT as a number of SYN-ACK retransmissions: the kernel's
    /// `secs_to_retrans(secs, TCP_TIMEOUT_INIT / HZ, TCP_RTO_MAX / HZ)`: the smallest count
    /// whose cumulative backoff (1, 2, 4, ... s, capped at 120) covers the seconds.
    pub fn defer_accept_retrans(&self) -> u8 {
        let secs = self.defer_accept_secs;
        if secs == 0 {
            return 0;
        }
        let (mut timeout, mut period, mut res) = (1u32, 1u32, 1u8);
        while secs > period && res < 255 {
            res += 1;
            timeout = (timeout << 1).min(120);
            period += timeout;
        }
        res
    }

    /// The MSS we announce: route MSS capped by TCP_MAXSEG.
    pub fn adv_mss(&self, v6: bool) -> u16 {
        let route = self.mtu.saturating_sub(if v6 { 60 } else { 40 });
        if self.maxseg != 0 {
            route.min(self.maxseg)
        } else {
            route
        }
    }

    /// Our window shift (Q-5, section 0): `ilog2(tcp_rmem[2]) - 15`, clamped to 0..=14, as
    /// `tcp_select_initial_window` computes it. 10 with the 6.16+ default of 32 MB.
    pub fn rcv_wscale(&self) -> u8 {
        let space = self.rmem[2].max(1);
        let log = 31 - space.leading_zeros();
        (log.saturating_sub(15) as u8).min(MAX_WSCALE)
    }

    /// The initial receive window: the space of `tcp_rmem[1]` at the default 50 %
    /// scaling ratio, capped at 65535, rounded down to a multiple of the MSS we will receive
    /// (announced MSS less 12 bytes when timestamps are on). 65160 / 64240 with defaults on a
    /// 1500-byte IPv4 path, as measured on 6.18.
    pub fn rcv_wnd(&self, v6: bool, tstamp: bool) -> u16 {
        let space = (self.rmem[1] / 2).min(65535);
        let mss = u32::from(self.adv_mss(v6))
            .saturating_sub(if tstamp { 12 } else { 0 })
            .max(1);
        let w = if space > mss {
            space - space % mss
        } else {
            space
        };
        w as u16
    }
}

/// The atomic store of a [`ListenerConfig`].
#[derive(Debug)]
pub struct ListenerSettings {
    syncookies: AtomicU8,
    synack_retries: AtomicU8,
    abort_on_overflow: AtomicBool,
    defer_accept_secs: AtomicU32,
    maxseg: AtomicU16,
    ttl: AtomicU8,
    tclass: AtomicU8,
    rmem: [AtomicU32; 3],
    ecn: AtomicU8,
    timestamps: AtomicU8,
    sack: AtomicBool,
    window_scaling: AtomicBool,
    mtu: AtomicU16,
}

impl ListenerSettings {
    /// Settings holding `c`.
    pub fn new(c: &ListenerConfig) -> Self {
        let s = ListenerSettings {
            syncookies: AtomicU8::new(0),
            synack_retries: AtomicU8::new(0),
            abort_on_overflow: AtomicBool::new(false),
            defer_accept_secs: AtomicU32::new(0),
            maxseg: AtomicU16::new(0),
            ttl: AtomicU8::new(0),
            tclass: AtomicU8::new(0),
            rmem: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            ecn: AtomicU8::new(0),
            timestamps: AtomicU8::new(0),
            sack: AtomicBool::new(false),
            window_scaling: AtomicBool::new(false),
            mtu: AtomicU16::new(0),
        };
        s.store(c);
        s
    }

    /// Reads every field.
    #[inline]
    pub fn load(&self) -> ListenerConfig {
        ListenerConfig {
            syncookies: SyncookieMode::from_sysctl(self.syncookies.load(Relaxed))
                .unwrap_or(SyncookieMode::WhenFull),
            synack_retries: self.synack_retries.load(Relaxed),
            abort_on_overflow: self.abort_on_overflow.load(Relaxed),
            defer_accept_secs: self.defer_accept_secs.load(Relaxed),
            maxseg: self.maxseg.load(Relaxed),
            ttl: self.ttl.load(Relaxed),
            tclass: self.tclass.load(Relaxed),
            rmem: [
                self.rmem[0].load(Relaxed),
                self.rmem[1].load(Relaxed),
                self.rmem[2].load(Relaxed),
            ],
            ecn: self.ecn.load(Relaxed),
            timestamps: self.timestamps.load(Relaxed),
            sack: self.sack.load(Relaxed),
            window_scaling: self.window_scaling.load(Relaxed),
            mtu: self.mtu.load(Relaxed),
        }
    }

    /// Stores every field.
    pub fn store(&self, c: &ListenerConfig) {
        self.syncookies.store(c.syncookies.sysctl(), Relaxed);
        self.synack_retries.store(c.synack_retries, Relaxed);
        self.abort_on_overflow.store(c.abort_on_overflow, Relaxed);
        self.defer_accept_secs.store(c.defer_accept_secs, Relaxed);
        self.maxseg.store(c.maxseg, Relaxed);
        self.ttl.store(c.ttl, Relaxed);
        self.tclass.store(c.tclass, Relaxed);
        for (a, v) in self.rmem.iter().zip(c.rmem) {
            a.store(v, Relaxed);
        }
        self.ecn.store(c.ecn, Relaxed);
        self.timestamps.store(c.timestamps, Relaxed);
        self.sack.store(c.sack, Relaxed);
        self.window_scaling.store(c.window_scaling, Relaxed);
        self.mtu.store(c.mtu, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_defaults_match_measured_linux_6_18() {
        let c = ListenerConfig::default();
        assert_eq!(c.adv_mss(false), 1460);
        assert_eq!(c.adv_mss(true), 1440);
        assert_eq!(c.rcv_wnd(false, true), 65160);
        assert_eq!(c.rcv_wnd(false, false), 64240);
        assert_eq!(c.rcv_wscale(), 10);
        let old = ListenerConfig {
            rmem: [4096, 131072, 6291456],
            ..c
        };
        assert_eq!(old.rcv_wscale(), 7);
    }

    /// Linux's own limits (`do_tcp_setsockopt` for TCP_MAXSEG, `do_ip_setsockopt` for IP_TTL,
    /// the sysctl ranges): each bad value is named by its key, the edges pass.
    #[test]
    fn validate_takes_linux_limits() {
        let ok = ListenerConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let cases: [(ListenerConfig, &str); 11] = [
            (ListenerConfig { maxseg: 1, ..ok }, "TCP_MAXSEG"),
            (
                ListenerConfig {
                    synack_retries: 128,
                    ..ok
                },
                "tcp_synack_retries",
            ),
            (
                ListenerConfig {
                    synack_retries: 255,
                    ..ok
                },
                "tcp_synack_retries",
            ),
            (ListenerConfig { maxseg: 87, ..ok }, "TCP_MAXSEG"),
            (
                ListenerConfig {
                    maxseg: 32768,
                    ..ok
                },
                "TCP_MAXSEG",
            ),
            (ListenerConfig { ttl: 0, ..ok }, "IP_TTL"),
            (
                ListenerConfig {
                    timestamps: 3,
                    ..ok
                },
                "tcp_timestamps",
            ),
            (ListenerConfig { ecn: 3, ..ok }, "tcp_ecn"),
            (
                ListenerConfig {
                    rmem: [10, 5, 20],
                    ..ok
                },
                "tcp_rmem",
            ),
            (
                ListenerConfig {
                    rmem: [0, 5, 20],
                    ..ok
                },
                "tcp_rmem",
            ),
            (ListenerConfig { mtu: 575, ..ok }, "mtu"),
        ];
        for (c, key) in cases {
            assert_eq!(c.validate().map_err(|e| e.key), Err(key), "{c:?}");
        }
        for good in [
            ListenerConfig { maxseg: 88, ..ok },
            ListenerConfig {
                synack_retries: 0,
                ..ok
            },
            ListenerConfig {
                synack_retries: 127,
                ..ok
            },
            ListenerConfig {
                maxseg: 32767,
                ..ok
            },
            ListenerConfig {
                ttl: 255,
                mtu: 576,
                ..ok
            },
        ] {
            assert_eq!(good.validate(), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn x3_maxseg_caps_announced_mss() {
        let c = ListenerConfig {
            maxseg: 1000,
            ..ListenerConfig::default()
        };
        assert_eq!(c.adv_mss(false), 1000);
    }

    #[test]
    fn t7_defer_accept_secs_to_retrans() {
        let d = |s| {
            ListenerConfig {
                defer_accept_secs: s,
                ..ListenerConfig::default()
            }
            .defer_accept_retrans()
        };
        assert_eq!(d(0), 0);
        assert_eq!(d(1), 1);
        assert_eq!(d(2), 2);
        assert_eq!(d(3), 2);
        assert_eq!(d(4), 3);
        assert_eq!(d(30), 5);
    }

    #[test]
    fn load_store_round_trip() {
        let c = ListenerConfig {
            syncookies: SyncookieMode::Always,
            synack_retries: 2,
            abort_on_overflow: true,
            defer_accept_secs: 5,
            maxseg: 1200,
            ttl: 3,
            tclass: 4,
            rmem: [1, 2, 3],
            ecn: 0,
            timestamps: 2,
            sack: false,
            window_scaling: false,
            mtu: 9000,
        };
        assert_eq!(ListenerSettings::new(&c).load(), c);
    }
}
