//! Flows whose child was just made, for an embedder whose established table the engine cannot
//! see (the daemon hands children to the kernel).
//!
//! D-2 looks up established sockets before the listener. The engine has no established table:
//! its embedder does, and normally looks there first. When the embedder's table is another
//! stack (the kernel, fed through the daemon's handoff), segments of a flow whose child was
//! just made may still reach the engine: they were already on their way (in the same RX batch,
//! or the AF_XDP ring) when the handoff happened. Answering them as the listener would (L-2:
//! an RST for an ACK) would kill the connection the engine has just accepted. For a short
//! grace after the child is made ([`crate::StackConfig::accepted_grace`]) such segments get
//! [`crate::Verdict::Pass`] instead: the embedder's established table decides, as D-2 says.
//!
//! A direct-mapped array of (key, until): O(1), no allocation after start; a collision forgets
//! the older flow, whose late segments then meet the listener as without the grace.

use crate::flow::FlowKey;
use core::time::Duration;

/// Slots per worker.
const SLOTS: usize = 4096;

#[derive(Debug)]
pub(crate) struct Accepted {
    slots: Vec<Option<(FlowKey, Duration)>>,
    grace: Duration,
}

impl Accepted {
    pub fn new(grace: Duration) -> Self {
        Accepted {
            slots: vec![None; SLOTS],
            grace,
        }
    }

    #[inline]
    fn slot(hash: u64) -> usize {
        (hash as usize) & (SLOTS - 1)
    }

    /// A child was made for `key` (whose table hash is `hash`) at `now`.
    pub fn insert(&mut self, key: FlowKey, hash: u64, now: Duration) {
        self.slots[Self::slot(hash)] = Some((key, now + self.grace));
    }

    /// Whether `key`'s child was made less than the grace ago.
    #[inline]
    pub fn contains(&self, key: &FlowKey, hash: u64, now: Duration) -> bool {
        matches!(self.slots[Self::slot(hash)], Some((k, until)) if k == *key && now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            laddr: [1; 16],
            raddr: [2; 16],
            lport: 80,
            rport: port,
            v6: false,
        }
    }

    #[test]
    fn a_flow_is_remembered_for_the_grace_only() {
        let mut a = Accepted::new(Duration::from_secs(1));
        let t = Duration::from_secs(10);
        a.insert(key(1), 7, t);
        assert!(a.contains(&key(1), 7, t));
        assert!(a.contains(&key(1), 7, t + Duration::from_millis(999)));
        assert!(!a.contains(&key(1), 7, t + Duration::from_secs(1)));
        assert!(!a.contains(&key(2), 7, t), "another key in the same slot");
        a.insert(key(2), 7, t);
        assert!(
            !a.contains(&key(1), 7, t),
            "a collision forgets the older flow"
        );
    }
}
