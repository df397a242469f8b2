//! The reply ceiling's whole "engine": a received TCP segment turned around in its own frame.
//!
//! [`reflect`] is what an AF_XDP SYN answerer cannot do without: it swaps the Ethernet, IP and
//! TCP addresses, marks the segment SYN-ACK and acknowledges its sequence number, so that the
//! frame goes back to its sender looking like an answer. It reads no option, keeps no state,
//! checks no checksum and draws no ISN: the benchmark's reflector (`synline-rxdrop --reflect`)
//! runs it on synline's own rings to measure the price of the receive-and-send path alone, the
//! ceiling any engine on that path stays under (issue 13, target 1).
//!
//! ```text
//!  in:   [dst mac|src mac|..] [.. src ip|dst ip] [sport|dport|seq=S |ack=0  |..|SYN    |csum]
//!  out:  [src mac|dst mac|..] [.. dst ip|src ip] [dport|sport|seq=S |ack=S+1|..|SYN+ACK|csum']
//! ```
//!
//! The swaps leave both checksums as they were (one's-complement sums do not depend on the
//! order of their words, RFC 1071); only the ACK field and the flags byte change, and the TCP
//! checksum follows them incrementally (RFC 1624). The SYN's options stay: the reply is as long
//! as the SYN, a few bytes shorter than synline's SYN-ACK at most.

use crate::checksum;
use crate::ethernet::{self, EthernetFrame};
use crate::ipv4::Ipv4Packet;
use crate::ipv6::Ipv6Packet;
use crate::tcp::{TcpFlags, TcpPacket};
use crate::{Error, Result};

/// Turns the TCP segment in `frame[..len]` around in place (module docs). Returns the length
/// to send, `len`. Never panics; a frame that is not Ethernet + IPv4/IPv6 + TCP is an error
/// and is left unchanged.
pub fn reflect(frame: &mut [u8], len: usize) -> Result<usize> {
    let frame = frame.get_mut(..len).ok_or(Error::Truncated)?;
    let eth = EthernetFrame::new_checked(&*frame)?;
    let (l3, ethertype) = (eth.header_len(), eth.ethertype());
    let (src_mac, dst_mac) = (eth.src_addr(), eth.dst_addr());
    // Every check first, then the writes: a frame that is not TCP is left as it came.
    let (l4, v6) = match ethertype {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(&frame[l3..])?;
            if ip.protocol() != checksum::PROTO_TCP {
                return Err(Error::NotTcp);
            }
            (l3 + ip.header_len(), false)
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(&frame[l3..])?;
            if ip.next_header() != checksum::PROTO_TCP {
                return Err(Error::NotTcp);
            }
            (l3 + crate::ipv6::HEADER_LEN, true)
        }
        _ => return Err(Error::NotIp),
    };
    TcpPacket::new_checked(frame.get(l4..).ok_or(Error::Truncated)?)?;
    if v6 {
        let mut ip = Ipv6Packet::new_unchecked(&mut frame[l3..]);
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(d);
        ip.set_dst_addr(s);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..]);
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(d);
        ip.set_dst_addr(s);
    }
    let mut tcp = TcpPacket::new_unchecked(&mut frame[l4..]);
    let (sport, dport, seq) = (tcp.src_port(), tcp.dst_port(), tcp.seq());
    let (old_ack, old_flags) = (tcp.ack(), tcp.flags());
    let ack = seq + 1;
    let flags = TcpFlags::SYN_ACK;
    tcp.set_src_port(dport);
    tcp.set_dst_port(sport);
    tcp.set_ack(ack);
    tcp.set_flags(flags);
    // The flags byte is the low half of the 16-bit word at offset 12 (data offset above it).
    let word12 = |f: TcpFlags| u16::from_be_bytes([0, f.0]);
    let mut csum = tcp.checksum();
    csum = checksum::update32(csum, old_ack.0, ack.0);
    csum = checksum::update16(csum, word12(old_flags), word12(flags));
    tcp.set_checksum(csum);
    let mut eth = EthernetFrame::new_checked(&mut *frame)?;
    eth.set_src_addr(dst_mac);
    eth.set_dst_addr(src_mac);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_frame;
    use crate::test_frames::FrameSpec;

    fn turned(spec: &FrameSpec) {
        let mut f = spec.build();
        let before = parse_frame(&f).expect("a valid SYN");
        let len = f.len();
        assert_eq!(reflect(&mut f, len), Ok(len));
        // The checksums still verify: parse_frame checks both (D-1).
        let after = parse_frame(&f).expect("the reflected frame verifies");
        let (b, a) = (before.seg, after.seg);
        assert_eq!((a.src, a.dst), (b.dst, b.src));
        assert_eq!((a.src_port, a.dst_port), (b.dst_port, b.src_port));
        assert_eq!((a.eth_src, a.eth_dst), (b.eth_dst, b.eth_src));
        assert_eq!(a.flags, TcpFlags::SYN_ACK);
        assert_eq!(a.ack, b.seq + 1);
        assert_eq!((a.seq, a.options), (b.seq, b.options));
    }

    #[test]
    fn a_v4_syn_comes_back_as_a_syn_ack_with_valid_checksums() {
        turned(&FrameSpec::v4_syn());
    }

    #[test]
    fn a_v6_syn_comes_back_as_a_syn_ack_with_valid_checksums() {
        turned(&FrameSpec::v6_syn());
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        let mut short = [0u8; 20];
        assert_eq!(reflect(&mut short, 10), Err(Error::Truncated));
        assert_eq!(reflect(&mut short, 20), Err(Error::NotIp));
        assert_eq!(reflect(&mut short, 64), Err(Error::Truncated));
        let mut f = FrameSpec::v4_syn().build();
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let len = f.len();
        assert_eq!(reflect(&mut f, len), Err(Error::NotIp));
        let udp = FrameSpec {
            proto: 17,
            ..FrameSpec::v4_syn()
        };
        let mut f = udp.build();
        let (len, before) = (f.len(), f.clone());
        assert_eq!(reflect(&mut f, len), Err(Error::NotTcp));
        assert_eq!(f, before, "a frame that is not TCP is left as it came");
        for cut in 0..FrameSpec::v4_syn().build().len() {
            let mut f = FrameSpec::v4_syn().build();
            let _ = reflect(&mut f, cut);
        }
    }
}
