//! The internet checksum (RFC 1071), the IPv4/IPv6 pseudo headers, and the RFC 1624 update.
//!
//! Sums are carried in a `u64` accumulator of big-endian 32-bit words and folded at the end:
//! since 2^16 = 1 (mod 2^16 - 1), a 32-bit word `hi:lo` adds the same as the two 16-bit words
//! `hi + lo`, so reading four bytes at a time gives the RFC 1071 sum with half the additions.

use core::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// Adds `data` to a running one's-complement accumulator.
///
/// `data` must start at an even offset of the checksummed region (every header does); an odd
/// trailing byte is padded with zero as RFC 1071 says.
#[inline]
pub fn accumulate(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    match *words.remainder() {
        [a] => acc += u64::from(a) << 8,
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        _ => {}
    }
    acc
}

/// Folds an accumulator into 16 bits (end-around carry), without complementing.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to store in a header: the complement of the folded sum.
#[inline]
pub fn finish(acc: u64) -> u16 {
    !fold(acc)
}

/// Checksum of a byte slice on its own (for the IPv4 header).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// A region whose stored checksum is right sums to 0xffff (RFC 1071, section 2).
#[inline]
pub fn verifies(acc: u64) -> bool {
    fold(acc) == 0xffff
}

/// Accumulator primed with the IPv4 pseudo header (RFC 793, section 3.1).
///
/// ```text
///  0       8       16      24      32
/// +-------+-------+-------+-------+
/// |        source address         |
/// +-------+-------+-------+-------+
/// |      destination address      |
/// +-------+-------+-------+-------+
/// | zero  | proto |  TCP length   |
/// +-------+-------+-------+-------+
/// ```
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u64 {
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(proto) + u64::from(len)
}

/// Accumulator primed with the IPv6 pseudo header (RFC 8200, section 8.1): both addresses,
/// a 32-bit upper-layer length and the next-header value.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: u32) -> u64 {
    let acc = accumulate(0, &src.octets());
    let acc = accumulate(acc, &dst.octets());
    acc + u64::from(len) + u64::from(proto)
}

/// RFC 1624 (eqn. 3) incremental update: the new checksum after a 16-bit word of the region
/// changed from `old` to `new`, `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!csum) + u64::from(!old) + u64::from(new))
}

/// RFC 1624 update for a 32-bit field (an address or a sequence number): two 16-bit updates.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let c = update16(csum, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference RFC 1071 sum, 16 bits at a time, to check the 32-bit accumulator against.
    fn naive(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let w = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from(pair[0]) << 8
            };
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(accumulate(0, &data)), 0xddf2);
    }

    #[test]
    fn ipv4_header_known_value() {
        // The textbook IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with its checksum zeroed.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
    }

    proptest! {
        #[test]
        fn accumulate_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(checksum(&data), naive(&data));
        }

        /// RFC 1624: updating a word incrementally equals recomputing from scratch.
        #[test]
        fn incremental_equals_full(mut data in proptest::collection::vec(any::<u8>(), 2..120), idx in any::<usize>(), new in any::<u16>()) {
            let len = data.len() & !1;
            let i = (idx % (len / 2)) * 2;
            let before = checksum(&data[..len]);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data[..len]);
            let inc = update16(before, old, new);
            // 0x0000 and 0xffff are the same one's-complement value; RFC 1624 section 3 notes
            // the update may produce either when the sum is zero.
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0), "inc {inc:#x} full {full:#x}");
        }

        #[test]
        fn incremental_32_equals_full(mut data in proptest::collection::vec(any::<u8>(), 4..120), idx in any::<usize>(), new in any::<u32>()) {
            let len = data.len() & !3;
            let i = (idx % (len / 4)) * 4;
            let before = checksum(&data[..len]);
            let old = u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            data[i..i + 4].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data[..len]);
            let inc = update32(before, old, new);
            prop_assert!(inc == full || (inc ^ full) == 0xffff && (inc == 0 || full == 0));
        }

        /// A region whose checksum field is filled in verifies.
        #[test]
        fn filled_checksum_verifies(mut data in proptest::collection::vec(any::<u8>(), 4..120)) {
            data[0] = 0; data[1] = 0;
            let c = checksum(&data);
            data[0..2].copy_from_slice(&c.to_be_bytes());
            prop_assert!(verifies(accumulate(0, &data)));
        }
    }
}
