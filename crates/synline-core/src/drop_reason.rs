//! Why the engine dropped a frame: one typed reason per exit, as the kernel's
//! `include/net/dropreason-core.h` gives `kfree_skb_reason()` one. Every drop is counted per
//! reason (see [`crate::stats`]); the nstat counters of spec section 14 are counted beside it
//! where the kernel counts them.

/// A typed drop reason. `#[repr(u8)]` so it indexes the per-reason counter array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than its headers say.
    Truncated,
    /// IPv4 header malformed or its checksum wrong.
    IpHeader,
    /// TCP data offset < 5 (D-1: InErrs).
    TcpHeader,
    /// TCP checksum wrong (D-1: InCsumErrors + InErrs).
    TcpChecksum,
    /// IPv6 extension header before TCP: not parsed, counted, never passed unseen.
    Ipv6ExtensionHeader,
    /// IPv4 fragment: no reassembly.
    Fragment,
    /// L2 destination is a group address (D-1).
    NotHostL2,
    /// S-1 / V-2: destination is broadcast, multicast or not unicast.
    NotUnicast,
    /// V-2: IPv4-mapped IPv6 source.
    V4MappedSource,
    /// L-2: RST to a listener.
    ListenerRst,
    /// L-2: SYN+FIN.
    SynFin,
    /// L-2: neither SYN, ACK nor RST.
    NoFlags,
    /// S-2: SYN queue full (qlen > B) and SYN cookies off.
    SynQueueFull,
    /// S-4, C-1, K-7: accept queue full (ack_backlog > B).
    AcceptQueueFull,
    /// S-6: the global cap on live requests is reached (the engine's memory bound).
    RequestCap,
    /// another SYN of the same 4-tuple won the insert.
    SynRace,
    /// PAWS rejected the segment.
    Paws,
    /// 6.15: TSecr is not a TSval of our SYN-ACKs.
    TsecrRejected,
    /// out of window.
    OutOfWindow,
    /// the answer was suppressed by the 500 ms rate limit.
    RateLimited,
    /// an in-window RST (at RCV.NXT) killed the request; nothing is sent back.
    RequestReset,
    /// no ACK on a segment to a request.
    NoAck,
    /// bare ACK under TCP_DEFER_ACCEPT.
    DeferAccept,
    /// accept queue full, request kept (abort_on_overflow = 0).
    AcceptQueueFullKeep,
    /// request of a closed listener.
    ListenerClosed,
    /// K-5: a cookie ACK that decoded but whose options are disabled here (K-6).
    CookieOptions,
    /// The reply did not fit the buffer.
    BufferTooSmall,
    /// A segment for a flow this worker does not own could not be handed over (queue full).
    HandoffFull,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 28] = [
        DropReason::Truncated,
        DropReason::IpHeader,
        DropReason::TcpHeader,
        DropReason::TcpChecksum,
        DropReason::Ipv6ExtensionHeader,
        DropReason::Fragment,
        DropReason::NotHostL2,
        DropReason::NotUnicast,
        DropReason::V4MappedSource,
        DropReason::ListenerRst,
        DropReason::SynFin,
        DropReason::NoFlags,
        DropReason::SynQueueFull,
        DropReason::AcceptQueueFull,
        DropReason::RequestCap,
        DropReason::SynRace,
        DropReason::Paws,
        DropReason::TsecrRejected,
        DropReason::OutOfWindow,
        DropReason::RateLimited,
        DropReason::RequestReset,
        DropReason::NoAck,
        DropReason::DeferAccept,
        DropReason::AcceptQueueFullKeep,
        DropReason::ListenerClosed,
        DropReason::CookieOptions,
        DropReason::BufferTooSmall,
        DropReason::HandoffFull,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Counter name, in the style of `SNMP_MIB_ITEM` names: `SynlineDrop<Reason>`.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "SynlineDropTruncated",
            DropReason::IpHeader => "SynlineDropIpHeader",
            DropReason::TcpHeader => "SynlineDropTcpHeader",
            DropReason::TcpChecksum => "SynlineDropTcpChecksum",
            DropReason::Ipv6ExtensionHeader => "SynlineDropIpv6ExtensionHeader",
            DropReason::Fragment => "SynlineDropFragment",
            DropReason::NotHostL2 => "SynlineDropNotHostL2",
            DropReason::NotUnicast => "SynlineDropNotUnicast",
            DropReason::V4MappedSource => "SynlineDropV4MappedSource",
            DropReason::ListenerRst => "SynlineDropListenerRst",
            DropReason::SynFin => "SynlineDropSynFin",
            DropReason::NoFlags => "SynlineDropNoFlags",
            DropReason::SynQueueFull => "SynlineDropSynQueueFull",
            DropReason::AcceptQueueFull => "SynlineDropAcceptQueueFull",
            DropReason::RequestCap => "SynlineDropRequestCap",
            DropReason::SynRace => "SynlineDropSynRace",
            DropReason::Paws => "SynlineDropPaws",
            DropReason::TsecrRejected => "SynlineDropTsecrRejected",
            DropReason::OutOfWindow => "SynlineDropOutOfWindow",
            DropReason::RateLimited => "SynlineDropRateLimited",
            DropReason::RequestReset => "SynlineDropRequestReset",
            DropReason::NoAck => "SynlineDropNoAck",
            DropReason::DeferAccept => "SynlineDropDeferAccept",
            DropReason::AcceptQueueFullKeep => "SynlineDropAcceptQueueFullKeep",
            DropReason::ListenerClosed => "SynlineDropListenerClosed",
            DropReason::CookieOptions => "SynlineDropCookieOptions",
            DropReason::BufferTooSmall => "SynlineDropBufferTooSmall",
            DropReason::HandoffFull => "SynlineDropHandoffFull",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?}");
        }
    }
}
