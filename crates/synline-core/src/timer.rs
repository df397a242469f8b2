//! The SYN-ACK timer: the kernel's `reqsk_timer_handler` with `syn_ack_recalc` and
//! `inet_rtx_syn_ack` (inet_connection_sock.c): rules T-1..T-8.
//!
//! The caller drives it: [`Worker::poll_timers`] handles the requests whose timers are due
//! and returns as soon as one needs a SYN-ACK retransmitted, written into the caller's buffer.
//! Call it until it returns `None`.
//!
//! A retransmission the caller cannot send (for AF_XDP: no free TX descriptor or frame) is
//! simply not asked for: the caller stops polling and comes back later, and the timers stay
//! due. That keeps the core's T-4 ("a failed retransmit with acked == 0 drops R") for the one
//! failure the core can see, a buffer too small for the SYN-ACK.

use crate::request_table::flag;
use crate::stats::Mib;
use crate::worker::Worker;
use core::time::Duration;

/// Initial SYN-ACK timeout (`TCP_TIMEOUT_INIT`): the first firing.
pub const TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// Largest SYN-ACK timeout (`TCP_RTO_MAX`).
pub const RTO_MAX: Duration = Duration::from_secs(120);

/// T-5 `reqsk_timeout`: the request's current RTO, min(1 s << num_timeout, 120 s).
pub fn reqsk_timeout(num_timeout: u8) -> Duration {
    if num_timeout >= 7 {
        return RTO_MAX;
    }
    (TIMEOUT_INIT * (1u32 << num_timeout)).min(RTO_MAX)
}

/// T-2: `max_syn_ack_retries` lowered for this firing when the queue is crowded with
/// requests that never answered: with q = qlen and y = young, if 2q > max(8, B), the retry
/// budget drops by one for every doubling of y that q still reaches, down to 2.
pub fn pruned_max_retries(synack_retries: u8, qlen: u32, young: u32, backlog: u32) -> u8 {
    let mut max = synack_retries;
    if u64::from(qlen) << 1 > u64::from(backlog.max(8)) {
        let mut y2 = u64::from(young) << 1;
        while max > 2 {
            if u64::from(qlen) < y2 {
                break;
            }
            max -= 1;
            y2 <<= 1;
        }
    }
    max
}

/// T-2, T-7: `syn_ack_recalc`: (expire, resend).
pub fn syn_ack_recalc(num_timeout: u8, max_retries: u8, defer: u8, acked: bool) -> (bool, bool) {
    if defer == 0 {
        return (num_timeout >= max_retries, true);
    }
    let expire = num_timeout >= max_retries && (!acked || num_timeout >= defer);
    let resend = !acked || num_timeout >= defer - 1;
    (expire, resend)
}

impl Worker {
    /// When the next timer is due ([`Self::poll_timers`] has nothing to do before then); `None`
    /// with no request alive. The caller may sleep until this time or until a frame arrives,
    /// as quinn-proto's `poll_timeout`. A timer fires at most one wheel tick (about 1.05 ms)
    /// after its expiry, like the kernel's jiffy.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.reqs.next_deadline()
    }

    /// Whether other workers may hand this one segments ([`Self::poll_handoff`]): with more
    /// than one worker. Those arrive without a frame on this worker's queue, so a caller that
    /// sleeps should not sleep long.
    pub fn receives_handoffs(&self) -> bool {
        self.shared.config.workers > 1
    }

    /// Runs due timers; returns the length of a retransmitted SYN-ACK written into `buf`, or
    /// `None` when no timer that needs sending is due.
    pub fn poll_timers(&mut self, now: Duration, buf: &mut [u8]) -> Option<usize> {
        while let Some(id) = self.reqs.pop_expired(now) {
            // The listener through this worker's reference, borrowed briefly: no refcount
            // traffic on the shared listener per firing.
            let slot = self.reqs.get(id).listener;
            // T-3.
            self.stats.inc(Mib::TCPTimeouts);
            // T-1: the listener closed: drop silently.
            if !self.lrefs.get(slot).is_listening() {
                self.remove_request(id);
                continue;
            }
            let (cfg, max) = {
                let l = self.lrefs.get(slot);
                let cfg = l.config();
                // tcp_synack_retries as the sysctl means it: 0 is no retransmission at all
                // (the daemon's TCP_SYNCNT, where 0 means unset, resolves before here).
                (
                    cfg,
                    pruned_max_retries(cfg.synack_retries, l.qlen(), l.young(), l.backlog()),
                )
            };
            let r = self.reqs.get(id);
            let acked = r.has(flag::ACKED);
            let (expire, resend) =
                syn_ack_recalc(r.num_timeout, max, cfg.defer_accept_retrans(), acked);
            // T-4.
            if expire {
                self.remove_request(id);
                continue;
            }
            let sent = if resend {
                self.write_synack_rtx(buf, None, id, &cfg, now)
            } else {
                None
            };
            if resend && sent.is_none() && !acked {
                self.remove_request(id);
                continue;
            }
            // T-5: young falls at the first timeout; re-arm with the doubled RTO.
            if self.reqs.get(id).num_timeout == 0 {
                self.lrefs.get(slot).young_dec();
            }
            let r = self.reqs.get_mut(id);
            r.num_timeout = r.num_timeout.saturating_add(1);
            let rto = reqsk_timeout(r.num_timeout);
            self.reqs.rearm(id, now + rto);
            if let Some(n) = sent {
                return Some(n);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t5_reqsk_timeout_backoff() {
        let secs: Vec<u64> = (0..9).map(|n| reqsk_timeout(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
    }

    /// T-2's table with R_max 5.
    #[test]
    fn t2_pruning_table() {
        let b = 128;
        let q = 100; // 2q = 200 > max(8, 128)
        assert_eq!(pruned_max_retries(5, q, 51, b), 5, "q < 2y");
        assert_eq!(pruned_max_retries(5, q, 50, b), 4, "q = 2y");
        assert_eq!(pruned_max_retries(5, q, 26, b), 4, "2y <= q < 4y");
        assert_eq!(pruned_max_retries(5, q, 25, b), 3, "q = 4y");
        assert_eq!(pruned_max_retries(5, q, 13, b), 3, "4y <= q < 8y");
        assert_eq!(pruned_max_retries(5, q, 12, b), 2, "q >= 8y");
        assert_eq!(pruned_max_retries(5, q, 0, b), 2, "y = 0");
        // Not crowded: 2q <= max(8, B).
        assert_eq!(pruned_max_retries(5, 64, 0, b), 5);
        assert_eq!(pruned_max_retries(5, 4, 0, 0), 5);
        assert_eq!(pruned_max_retries(5, 5, 0, 0), 2);
    }

    #[test]
    fn t7_defer_accept_recalc() {
        // Without defer: expire at R_max, always resend.
        assert_eq!(syn_ack_recalc(4, 5, 0, true), (false, true));
        assert_eq!(syn_ack_recalc(5, 5, 0, false), (true, true));
        // With defer D = 3 and acked: keep quiet until D-1, then resend; expire needs D too.
        assert_eq!(syn_ack_recalc(0, 5, 3, true), (false, false));
        assert_eq!(syn_ack_recalc(2, 5, 3, true), (false, true));
        assert_eq!(syn_ack_recalc(5, 5, 3, true), (true, true));
        assert_eq!(
            syn_ack_recalc(5, 5, 7, true),
            (false, false),
            "acked, D = 7: quiet until 6"
        );
        assert_eq!(syn_ack_recalc(6, 5, 7, true), (false, true));
        assert_eq!(syn_ack_recalc(5, 5, 7, false), (true, true));
    }
}
