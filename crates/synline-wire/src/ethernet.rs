//! Ethernet II frames with at most one IEEE 802.1Q tag.
//!
//! ```text
//! untagged:  | dst (6) | src (6) | ethertype (2) | payload
//! tagged:    | dst (6) | src (6) | 0x8100 (2) | TCI (2) | ethertype (2) | payload
//! ```
//! A second tag (QinQ) is not unwrapped: its inner 0x8100/0x88a8 shows up as the EtherType and
//! the frame is reported as not IP, never misread.

use crate::{Error, Result};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType (TPID) of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// A MAC address.
pub type MacAddr = [u8; 6];

/// A view over an Ethernet frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer`, checking it holds the whole header (including the tag, if any).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = EthernetFrame { buffer };
        let b = f.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if f.is_tagged() && b.len() < VLAN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(f)
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn be16(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn mac(&self, r: core::ops::Range<usize>) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[r]);
        m
    }

    /// Destination MAC.
    pub fn dst_addr(&self) -> MacAddr {
        self.mac(field::DST)
    }

    /// Source MAC.
    pub fn src_addr(&self) -> MacAddr {
        self.mac(field::SRC)
    }

    /// Whether the outer EtherType is an 802.1Q tag.
    pub fn is_tagged(&self) -> bool {
        self.be16(field::ETHERTYPE) == ETHERTYPE_VLAN
    }

    /// The 802.1Q tag control information (PCP, DEI, VLAN id), if tagged.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged().then(|| self.be16(field::VLAN_TCI))
    }

    /// The EtherType of the payload (behind the tag, if any).
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.be16(field::INNER_ETHERTYPE)
        } else {
            self.be16(field::ETHERTYPE)
        }
    }

    /// Length of the header, 14 or 18.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Sets the source MAC.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    /// Swaps source and destination MACs: the first step of every reply built in place.
    pub fn swap_addrs(&mut self) {
        let (dst, src) = (self.dst_addr(), self.src_addr());
        self.set_dst_addr(src);
        self.set_src_addr(dst);
    }

    /// Everything after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// Writes an Ethernet header (with a tag if `vlan` is set) at the start of `buf`; returns its
/// length. `emit::emit_segment` starts every frame it builds from nothing here.
pub fn emit_header(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    vlan: Option<u16>,
    ethertype: u16,
) -> Result<usize> {
    let len = if vlan.is_some() {
        VLAN_HEADER_LEN
    } else {
        HEADER_LEN
    };
    let b = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    b[field::DST].copy_from_slice(&dst);
    b[field::SRC].copy_from_slice(&src);
    match vlan {
        Some(tci) => {
            b[field::ETHERTYPE].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            b[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
            b[field::INNER_ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
        }
        None => b[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes()),
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 14] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    const TAGGED: [u8; 18] = [
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x0a, 0x86, 0xdd,
    ];

    #[test]
    fn untagged() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.vlan_tci(), None);
        assert_eq!(f.header_len(), 14);
        assert!(f.payload().is_empty());
    }

    #[test]
    fn tagged() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.vlan_tci(), Some(0x200a));
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.header_len(), 18);
    }

    #[test]
    fn truncated_at_every_byte() {
        for n in 0..UNTAGGED.len() {
            assert_eq!(
                EthernetFrame::new_checked(&UNTAGGED[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        for n in 0..TAGGED.len() {
            assert_eq!(
                EthernetFrame::new_checked(&TAGGED[..n]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn emit_then_parse() {
        let mut b = [0u8; 18];
        assert_eq!(
            emit_header(&mut b, [1; 6], [2; 6], Some(7), ETHERTYPE_IPV6),
            Ok(18)
        );
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(
            (f.dst_addr(), f.src_addr(), f.vlan_tci(), f.ethertype()),
            ([1; 6], [2; 6], Some(7), ETHERTYPE_IPV6)
        );
        assert_eq!(
            emit_header(&mut b[..13], [1; 6], [2; 6], None, ETHERTYPE_IPV4),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn swap() {
        let mut b = UNTAGGED;
        let mut f = EthernetFrame::new_checked(&mut b[..]).unwrap();
        f.swap_addrs();
        assert_eq!(f.dst_addr(), [2, 0, 0, 0, 0, 2]);
        assert_eq!(f.src_addr(), [2, 0, 0, 0, 0, 1]);
    }
}
