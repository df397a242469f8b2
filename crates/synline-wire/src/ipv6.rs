//! IPv6 fixed headers (RFC 8200). Extension headers are not walked: a packet whose next header
//! is not TCP is reported as such by [`crate::frame`], never misparsed.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                  Source Address (128 bits)                    |
//! |               Destination Address (128 bits)                  |
//! ```

use crate::{Error, Result};
use core::net::Ipv6Addr;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` after checking version 6 and `40 + payload_len <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv6Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 6 {
            return Err(Error::BadIpHeader);
        }
        if HEADER_LEN + usize::from(p.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` without checks: for buffers `new_checked` accepted, or headers being built.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn word0(&self) -> u32 {
        let b = &self.b()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// IP version (6).
    pub fn version(&self) -> u8 {
        (self.word0() >> 28) as u8
    }

    /// Traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.word0() >> 20) as u8
    }

    /// The ECN bits of the traffic class.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.word0() & 0x000f_ffff
    }

    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        let b = &self.b()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.b()[field::SRC]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.b()[field::DST]);
        Ipv6Addr::from(a)
    }

    /// The payload (link padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label (low 20 bits of `flow`).
    pub fn set_version_tc_flow(&mut self, tclass: u8, flow: u32) {
        let w = (6u32 << 28) | (u32::from(tclass) << 20) | (flow & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&w.to_be_bytes());
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets next header.
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v;
    }

    /// Sets hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> [u8; 60] {
        let mut b = [0u8; 60];
        let mut p = Ipv6Packet { buffer: &mut b[..] };
        p.set_version_tc_flow(0x02, 0xabcde);
        p.set_payload_len(20);
        p.set_next_header(6);
        p.set_hop_limit(64);
        p.set_src_addr("2001:2::2".parse().unwrap());
        p.set_dst_addr("2001:2::1".parse().unwrap());
        b
    }

    #[test]
    fn parse() {
        let b = packet();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x02);
        assert_eq!(p.ecn(), 2);
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.payload_len(), 20);
        assert_eq!(p.next_header(), 6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:2::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn truncated_at_every_byte() {
        let b = packet();
        for n in 0..b.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&b[..n]).unwrap_err(),
                Error::Truncated,
                "n = {n}"
            );
        }
    }

    #[test]
    fn wrong_version() {
        let mut b = packet();
        b[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIpHeader
        );
    }
}
