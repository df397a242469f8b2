//! The 4-tuple that names a connection, seen from our side.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use synline_wire::Segment;

/// A connection's 4-tuple: local (the listener's side) and remote (the peer's side).
///
/// Addresses are kept as 16 bytes (IPv4 as `::ffff:a.b.c.d`) so one key type serves both
/// families in one table; `v6` tells them apart, so an IPv4 flow and the IPv6 flow of its
/// mapped address are different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    /// Local address.
    pub laddr: [u8; 16],
    /// Remote address.
    pub raddr: [u8; 16],
    /// Local port.
    pub lport: u16,
    /// Remote port.
    pub rport: u16,
    /// IPv6 (else IPv4).
    pub v6: bool,
}

/// Hashed as five 64-bit words: the derived `Hash` would feed the arrays byte-slice by
/// byte-slice with length prefixes, which showed up in profiles of the SYN path.
impl core::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, h: &mut H) {
        let w = |b: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        h.write_u64(w(&self.laddr, 0));
        h.write_u64(w(&self.laddr, 8));
        h.write_u64(w(&self.raddr, 0));
        h.write_u64(w(&self.raddr, 8));
        h.write_u64(u64::from(self.lport) | u64::from(self.rport) << 16 | u64::from(self.v6) << 32);
    }
}

fn octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

impl FlowKey {
    /// The key of a received segment: its destination is our local side.
    pub fn of(seg: &Segment) -> FlowKey {
        FlowKey {
            laddr: octets(seg.dst),
            raddr: octets(seg.src),
            lport: seg.dst_port,
            rport: seg.src_port,
            v6: seg.dst.is_ipv6(),
        }
    }

    fn addr(&self, b: [u8; 16]) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
        }
    }

    /// Local address.
    pub fn local_addr(&self) -> IpAddr {
        self.addr(self.laddr)
    }

    /// Remote address.
    pub fn remote_addr(&self) -> IpAddr {
        self.addr(self.raddr)
    }

    /// The bytes the keyed hashes of and K-1 read: the kernel hashes
    /// (saddr, daddr, sport, dport) of the incoming segment, i.e. remote first.
    /// IPv4 hashes 12 bytes, IPv6 the full 128-bit addresses (V-4).
    pub fn hash_input(&self, out: &mut [u8; 36]) -> usize {
        let p = [self.rport.to_be_bytes(), self.lport.to_be_bytes()];
        if self.v6 {
            out[..16].copy_from_slice(&self.raddr);
            out[16..32].copy_from_slice(&self.laddr);
            out[32..34].copy_from_slice(&p[0]);
            out[34..36].copy_from_slice(&p[1]);
            36
        } else {
            out[..4].copy_from_slice(&self.raddr[12..]);
            out[4..8].copy_from_slice(&self.laddr[12..]);
            out[8..10].copy_from_slice(&p[0]);
            out[10..12].copy_from_slice(&p[1]);
            12
        }
    }

    /// Only the address pair (Q-4's timestamp offset is per address pair).
    pub fn addr_pair_input(&self, out: &mut [u8; 36]) -> usize {
        if self.v6 {
            out[..16].copy_from_slice(&self.raddr);
            out[16..32].copy_from_slice(&self.laddr);
            32
        } else {
            out[..4].copy_from_slice(&self.raddr[12..]);
            out[4..8].copy_from_slice(&self.laddr[12..]);
            8
        }
    }
}
