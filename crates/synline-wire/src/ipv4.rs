//! IPv4 headers (RFC 791). Options are skipped via IHL, never interpreted.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------+-------+---------------+-------------------------------+
//! |Version|  IHL  | DSCP      |ECN|          Total Length         |
//! +-------+-------+---------------+-----+-------------------------+
//! |         Identification        |Flags|     Fragment Offset     |
//! +---------------+---------------+-----+-------------------------+
//! |  Time to Live |    Protocol   |        Header Checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        Source Address                         |
//! +---------------------------------------------------------------+
//! |                     Destination Address                       |
//! +---------------------------------------------------------------+
//! |              Options (IHL > 5), skipped                       |
//! ```

use crate::checksum;
use crate::{Error, Result};
use core::net::Ipv4Addr;

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// The DF bit in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// The MF bit.
pub const FLAG_MF: u16 = 0x2000;
/// Mask of the fragment offset.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// A view over an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` after checking version 4, IHL >= 5 and
    /// `header_len <= total_len <= buffer length` (bytes past total_len are link padding).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Ipv4Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 4 || p.header_len() < HEADER_LEN {
            return Err(Error::BadIpHeader);
        }
        let total = usize::from(p.total_len());
        if total < p.header_len() {
            return Err(Error::BadIpHeader);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` without checks: only for buffers `new_checked` accepted before.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn be16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// IP version (4).
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole TOS byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }

    /// The ECN field (RFC 3168): 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE.
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length.
    pub fn total_len(&self) -> u16 {
        self.be16(field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.be16(field::IDENT)
    }

    /// Flags and fragment offset word.
    pub fn flags_frag(&self) -> u16 {
        self.be16(field::FLAGS_FRAG)
    }

    /// DF set.
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & FLAG_DF != 0
    }

    /// MF set or a non-zero offset: part of a fragmented datagram.
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// Stored header checksum.
    pub fn checksum(&self) -> u16 {
        self.be16(field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header checksum (options included) verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(checksum::accumulate(0, &self.b()[..self.header_len()]))
    }

    /// The payload: from the end of the options to total_len (link padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// Writes version 4 and the IHL for `header_len` bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.bm()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the TOS byte.
    pub fn set_tos(&mut self, v: u8) {
        self.bm()[field::TOS] = v;
    }

    /// Sets total length.
    pub fn set_total_len(&mut self, v: u16) {
        self.bm()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets identification.
    pub fn set_ident(&mut self, v: u16) {
        self.bm()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags/fragment-offset word.
    pub fn set_flags_frag(&mut self, v: u16) {
        self.bm()[field::FLAGS_FRAG].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.bm()[field::TTL] = v;
    }

    /// Sets protocol.
    pub fn set_protocol(&mut self, v: u8) {
        self.bm()[field::PROTOCOL] = v;
    }

    /// Stores a checksum value.
    pub fn set_checksum(&mut self, v: u16) {
        self.bm()[field::CHECKSUM].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::DST].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let h = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..h]);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 198.18.0.2 -> 198.18.0.1, TCP, 40 bytes, DF, TTL 64, with a filled checksum.
    fn header() -> [u8; 20] {
        let mut h = [
            0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 18, 0, 2,
            198, 18, 0, 1,
        ];
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn parse() {
        let mut buf = [0u8; 40];
        buf[..20].copy_from_slice(&header());
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert!(p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 6);
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn options_skipped_via_ihl() {
        // IHL 6: one word of options (NOP NOP NOP EOL) before the payload.
        let mut buf = [0u8; 44];
        buf[..20].copy_from_slice(&header());
        buf[0] = 0x46;
        buf[2..4].copy_from_slice(&44u16.to_be_bytes());
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        buf[24] = 0xaa;
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload()[0], 0xaa);
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn link_padding_excluded() {
        let mut buf = [0u8; 60];
        buf[..20].copy_from_slice(&header());
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn truncated_at_every_byte() {
        let mut buf = [0u8; 40];
        buf[..20].copy_from_slice(&header());
        for n in 0..40 {
            assert_eq!(
                Ipv4Packet::new_checked(&buf[..n]).unwrap_err(),
                Error::Truncated,
                "n = {n}"
            );
        }
    }

    #[test]
    fn bad_lengths() {
        let mut buf = [0u8; 40];
        buf[..20].copy_from_slice(&header());
        let mut b = buf;
        b[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIpHeader
        );
        let mut b = buf;
        b[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIpHeader
        );
        let mut b = buf;
        b[2..4].copy_from_slice(&19u16.to_be_bytes()); // total below the header
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIpHeader
        );
        let mut b = buf;
        b[0] = 0x4f; // IHL 15 = 60 bytes > total 40
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::BadIpHeader
        );
    }

    #[test]
    fn fragments_detected() {
        let mut buf = [0u8; 40];
        buf[..20].copy_from_slice(&header());
        buf[6] = 0x20; // MF
        assert!(Ipv4Packet::new_checked(&buf[..]).unwrap().is_fragment());
        buf[6] = 0x00;
        buf[7] = 0x01; // offset 8
        assert!(Ipv4Packet::new_checked(&buf[..]).unwrap().is_fragment());
    }
}
