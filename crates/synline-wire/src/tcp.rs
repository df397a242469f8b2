//! TCP headers (RFC 9293, section 3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |          Source Port          |       Destination Port        |
//! +-------------------------------+-------------------------------+
//! |                        Sequence Number                        |
//! +---------------------------------------------------------------+
//! |                    Acknowledgment Number                      |
//! +-------+-------+-+-+-+-+-+-+-+-+-------------------------------+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! +-------+-------+-+-+-+-+-+-+-+-+-------------------------------+
//! |           Checksum            |         Urgent Pointer        |
//! +-------------------------------+-------------------------------+
//! |                Options (data offset > 5)                      |
//! ```

use crate::seq::SeqNumber;
use crate::{Error, Result};

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DOFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS: usize = 20;
}

/// The eight flag bits of byte 13.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// SYN.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// RST.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// PSH.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// ACK.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// URG.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECE (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// CWR (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);
    /// SYN|ACK.
    pub const SYN_ACK: TcpFlags = TcpFlags(0x12);

    /// Whether every bit of `other` is set.
    #[inline]
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    #[inline]
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// SYN set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    /// ACK set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
    /// RST set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    /// FIN set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [&str; 8] = ["F", "S", "R", "P", ".", "U", "E", "W"];
        f.write_str("[")?;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                f.write_str(n)?;
            }
        }
        f.write_str("]")
    }
}

/// A view over a TCP segment (header, options, payload): the IP payload, exactly.
#[derive(Debug, Clone)]
pub struct TcpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` after checking the fixed header fits, data offset >= 5 (else
    /// [`Error::BadTcpHeader`], D-1's InErrs), and the options fit.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = TcpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.header_len() < HEADER_LEN {
            return Err(Error::BadTcpHeader);
        }
        if p.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    /// Wraps `buffer` without checks: for buffers `new_checked` accepted, or headers being built.
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn be16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn be32(&self, r: core::ops::Range<usize>) -> u32 {
        let b = &self.b()[r];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.be16(field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.be16(field::DST_PORT)
    }
    /// Sequence number.
    pub fn seq(&self) -> SeqNumber {
        SeqNumber(self.be32(field::SEQ))
    }
    /// Acknowledgment number (meaningful only with ACK set).
    pub fn ack(&self) -> SeqNumber {
        SeqNumber(self.be32(field::ACK))
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::DOFF] >> 4) * 4
    }
    /// Flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.b()[field::FLAGS])
    }
    /// Window (unscaled, as on the wire).
    pub fn window(&self) -> u16 {
        self.be16(field::WINDOW)
    }
    /// Stored checksum.
    pub fn checksum(&self) -> u16 {
        self.be16(field::CHECKSUM)
    }
    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        self.be16(field::URGENT)
    }
    /// The option bytes.
    pub fn options(&self) -> &[u8] {
        &self.b()[field::OPTIONS..self.header_len()]
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn put16(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    fn put32(&mut self, r: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets source port.
    pub fn set_src_port(&mut self, v: u16) {
        self.put16(field::SRC_PORT, v)
    }
    /// Sets destination port.
    pub fn set_dst_port(&mut self, v: u16) {
        self.put16(field::DST_PORT, v)
    }
    /// Sets sequence number.
    pub fn set_seq(&mut self, v: SeqNumber) {
        self.put32(field::SEQ, v.0)
    }
    /// Sets acknowledgment number.
    pub fn set_ack(&mut self, v: SeqNumber) {
        self.put32(field::ACK, v.0)
    }
    /// Sets the data offset for `header_len` bytes, clearing the reserved bits.
    pub fn set_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::DOFF] = ((header_len / 4) as u8) << 4;
    }
    /// Sets flags.
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }
    /// Sets window.
    pub fn set_window(&mut self, v: u16) {
        self.put16(field::WINDOW, v)
    }
    /// Stores a checksum.
    pub fn set_checksum(&mut self, v: u16) {
        self.put16(field::CHECKSUM, v)
    }
    /// Sets the urgent pointer.
    pub fn set_urgent(&mut self, v: u16) {
        self.put16(field::URGENT, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40000 -> 8080, seq 1000, SYN, doff 6 with an MSS option.
    const SYN: [u8; 24] = [
        0x9c, 0x40, 0x1f, 0x90, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
        2, 4, 5, 0xb4,
    ];

    #[test]
    fn parse() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 8080);
        assert_eq!(p.seq(), SeqNumber(1000));
        assert_eq!(p.header_len(), 24);
        assert!(p.flags().syn() && !p.flags().ack());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert!(p.payload().is_empty());
    }

    #[test]
    fn truncated_at_every_byte() {
        for n in 0..SYN.len() {
            assert_eq!(
                TcpPacket::new_checked(&SYN[..n]).unwrap_err(),
                Error::Truncated,
                "n = {n}"
            );
        }
    }

    #[test]
    fn data_offset_below_five_is_bad_header() {
        for doff in 0..5u8 {
            let mut b = SYN;
            b[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&b[..]).unwrap_err(),
                Error::BadTcpHeader
            );
        }
    }

    #[test]
    fn data_offset_past_end_is_truncated() {
        let mut b = SYN;
        b[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn flags_debug() {
        assert_eq!(
            std::format!("{:?}", TcpFlags::SYN_ACK | TcpFlags::ECE),
            "[S.E]"
        );
    }
}
