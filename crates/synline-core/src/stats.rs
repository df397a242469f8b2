//! Counters under their nstat names (spec section 14), plus one counter per drop reason.
//!
//! The kernel keeps SNMP counters per CPU and sums them when read. synline keeps them per
//! worker for the same reason: each worker is the only writer of its [`WorkerStats`], so an
//! increment is a relaxed load and store (two plain moves on x86), never a locked instruction
//! or a cache line bouncing between cores; a reader sums every worker's block with relaxed
//! loads ([`Stats::snapshot`]), which is all `nstat` promises too.

use crate::drop_reason::DropReason;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! mib {
    ($( $(#[$doc:meta])* $field:ident => $name:literal ),* $(,)?) => {
        /// Identifies one nstat counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        #[repr(u8)]
        pub enum Mib { $( $(#[$doc])* $field ),* }

        impl Mib {
            /// Every counter, in index order.
            pub const ALL: &'static [Mib] = &[ $( Mib::$field ),* ];

            /// The nstat name (`TcpExt...` or `Tcp...`).
            pub const fn name(self) -> &'static str {
                match self { $( Mib::$field => $name ),* }
            }
        }
    };
}

mib! {
    /// S-4, C-1, K-7.
    ListenOverflows => "TcpExtListenOverflows",
    /// Every listener-side drop.
    ListenDrops => "TcpExtListenDrops",
    /// S-2 with cookies off.
    TCPReqQFullDrop => "TcpExtTCPReqQFullDrop",
    /// S-2: a cookie chosen.
    TCPReqQFullDoCookies => "TcpExtTCPReqQFullDoCookies",
    /// K-2.
    SyncookiesSent => "TcpExtSyncookiesSent",
    /// K-5 success.
    SyncookiesRecv => "TcpExtSyncookiesRecv",
    /// K-5 failure.
    SyncookiesFailed => "TcpExtSyncookiesFailed",
    ///
    EmbryonicRsts => "TcpExtEmbryonicRsts",
    ///
    TCPDeferAcceptDrop => "TcpExtTCPDeferAcceptDrop",
    /// suppressed answers.
    TCPACKSkippedSynRecv => "TcpExtTCPACKSkippedSynRecv",
    ///
    PAWSEstab => "TcpExtPAWSEstab",
    /// 6.15 TSecr check.
    TSEcrRejected => "TcpExtTSEcrRejected",
    /// 6.18 RFC 5961 challenge ACK on a request.
    TCPChallengeACK => "TcpExtTCPChallengeACK",
    /// T-3.
    TCPTimeouts => "TcpExtTCPTimeouts",
    ///
    TCPSynRetrans => "TcpExtTCPSynRetrans",
    /// P-3 (ICMP: not handled yet, kept so the counter set is complete).
    OutOfWindowIcmps => "TcpExtOutOfWindowIcmps",
    /// C-2.
    PassiveOpens => "TcpPassiveOpens",
    ///
    AttemptFails => "TcpAttemptFails",
    /// Every segment sent.
    OutSegs => "TcpOutSegs",
    /// Every RST sent.
    OutRsts => "TcpOutRsts",
    ///
    RetransSegs => "TcpRetransSegs",
    /// Every TCP segment received.
    InSegs => "TcpInSegs",
    /// D-1.
    InErrs => "TcpInErrs",
    /// D-1.
    InCsumErrors => "TcpInCsumErrors",
    /// synline: SYNs that reached a listener (section 4), for the daemon's SYNs/s.
    SynRecv => "SynlineInSyns",
    /// synline: SYN-ACKs sent, request, cookie and retransmitted alike.
    SynAckSent => "SynlineOutSynAcks",
}

const N_MIB: usize = Mib::ALL.len();

/// One worker's counters. Single writer (the worker), any number of readers.
#[derive(Debug)]
pub struct WorkerStats {
    mib: [AtomicU64; N_MIB],
    drops: [AtomicU64; DropReason::COUNT],
    /// Segments handed to another worker (the flow's owner) or received from one.
    handoffs: AtomicU64,
    /// Live request socks in the worker's shard (a gauge).
    requests: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            mib: [const { AtomicU64::new(0) }; N_MIB],
            drops: [const { AtomicU64::new(0) }; DropReason::COUNT],
            handoffs: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }
}

/// Single-writer increment: a relaxed load and a relaxed store, no read-modify-write.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

impl WorkerStats {
    /// Adds one to `m`. Must only be called by the owning worker.
    #[inline]
    pub fn inc(&self, m: Mib) {
        bump(&self.mib[m as usize]);
    }

    /// Adds one to the counter of `r`.
    #[inline]
    pub fn dropped(&self, r: DropReason) {
        bump(&self.drops[r as usize]);
    }

    /// Sets the live-request gauge.
    #[inline]
    pub fn set_requests(&self, n: usize) {
        self.requests.store(n as u64, Relaxed);
    }

    /// The live-request gauge.
    pub fn requests(&self) -> usize {
        self.requests.load(Relaxed) as usize
    }

    /// Adds one to the hand-off counter.
    #[inline]
    pub fn handoff(&self) {
        bump(&self.handoffs);
    }
}

/// A summed view of every worker's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    mib: [u64; N_MIB],
    drops: [u64; DropReason::COUNT],
    /// Segments handed over between workers.
    pub handoffs: u64,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            mib: [0; N_MIB],
            drops: [0; DropReason::COUNT],
            handoffs: 0,
        }
    }
}

impl Snapshot {
    /// Value of an nstat counter.
    pub fn get(&self, m: Mib) -> u64 {
        self.mib[m as usize]
    }

    /// Number of drops for `r`.
    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// Total drops over every reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds one worker's block.
    pub fn add(&mut self, w: &WorkerStats) {
        for (a, b) in self.mib.iter_mut().zip(&w.mib) {
            *a += b.load(Relaxed);
        }
        for (a, b) in self.drops.iter_mut().zip(&w.drops) {
            *a += b.load(Relaxed);
        }
        self.handoffs += w.handoffs.load(Relaxed);
    }

    /// `(name, value)` of every counter, nstat counters first, then drop reasons.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Mib::ALL
            .iter()
            .map(|m| (m.name(), self.get(*m)))
            .chain(DropReason::ALL.iter().map(|r| (r.name(), self.drops(*r))))
            .chain(core::iter::once(("SynlineHandoffs", self.handoffs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nstat_names() {
        assert_eq!(Mib::ListenOverflows.name(), "TcpExtListenOverflows");
        assert_eq!(Mib::PassiveOpens.name(), "TcpPassiveOpens");
        for (i, m) in Mib::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
    }

    #[test]
    fn snapshot_sums_workers() {
        let (a, b) = (WorkerStats::default(), WorkerStats::default());
        a.inc(Mib::InSegs);
        b.inc(Mib::InSegs);
        b.dropped(DropReason::Paws);
        let mut s = Snapshot::default();
        s.add(&a);
        s.add(&b);
        assert_eq!(s.get(Mib::InSegs), 2);
        assert_eq!(s.drops(DropReason::Paws), 1);
        assert_eq!(s.total_drops(), 1);
    }
}
