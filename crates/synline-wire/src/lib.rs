//! `synline-wire`: typed, bounds-checked views over the frames synline reads and writes.
//!
//! The model is smoltcp's `wire` module: a `Packet<T: AsRef<[u8]>>` view per header whose
//! `new_checked` validates every length once, so that no accessor can panic afterwards; getters
//! live in `impl<T: AsRef<[u8]>>`, setters in `impl<T: AsMut<[u8]>>`; byte ranges are named
//! constants in a private `field` module.
//!
//! On top of the views:
//! - [`tcp_options`]: the option parser of spec rule S-7 and the emitter of the X-4 layouts;
//! - [`frame`]: one pass over Ethernet (+ one 802.1Q tag), IPv4 or IPv6 and TCP that checks both
//!   checksums (D-1) and returns a small `Copy` summary the engine decides on;
//! - [`reply`]: turns the received frame, in its own buffer, into the SYN-ACK (X-1..X-5, V-5),
//!   the RST of P-1 or the ACK of P-2. The caller decides every TCP value; the builders only write;
//! - [`reflect`]: a segment turned around in place with no engine at all (the benchmark's
//!   reply ceiling).
//!
//! The crate is `no_std`, never allocates and never panics on any input: everything that can fail
//! returns a small `Copy` [`Error`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod checksum;
pub mod emit;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod reflect;
pub mod reply;
pub mod seq;
pub mod tcp;
pub mod tcp_options;

#[cfg(test)]
mod test_frames;

pub use frame::{parse_frame, Family, Layout, ParsedFrame, Segment};
pub use seq::SeqNumber;
pub use tcp::TcpFlags;
pub use tcp_options::{OptionsOut, TcpOptions, Timestamps};

/// Why a frame could not be read or a reply could not be written.
///
/// Small and `Copy` on purpose: the engine maps each variant onto a drop reason and a counter,
/// on the hot path, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says.
    Truncated,
    /// IPv4/IPv6 header is malformed: wrong version, IHL < 5, total length below the header.
    BadIpHeader,
    /// TCP data offset below 5 words (D-1: counted as InErrs by the kernel).
    BadTcpHeader,
    /// IPv4 header checksum does not verify.
    BadIpChecksum,
    /// TCP checksum does not verify (D-1: InCsumErrors + InErrs).
    BadTcpChecksum,
    /// EtherType is neither IPv4 nor IPv6 (ARP, LLDP, a second VLAN tag...).
    NotIp,
    /// The IP payload is not TCP.
    NotTcp,
    /// IPv6 with an extension header before TCP: reported, never misparsed.
    Ipv6ExtensionHeader,
    /// An IPv4 fragment: the engine does not reassemble.
    Fragment,
    /// The reply would not fit in the buffer the frame arrived in.
    BufferTooSmall,
    /// Asked to answer an RST: P-1 forbids it.
    ReplyToRst,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = match self {
            Error::Truncated => "truncated frame",
            Error::BadIpHeader => "malformed IP header",
            Error::BadTcpHeader => "TCP data offset below 5",
            Error::BadIpChecksum => "bad IPv4 header checksum",
            Error::BadTcpChecksum => "bad TCP checksum",
            Error::NotIp => "not IPv4 or IPv6",
            Error::NotTcp => "not TCP",
            Error::Ipv6ExtensionHeader => "IPv6 extension header before TCP",
            Error::Fragment => "IPv4 fragment",
            Error::BufferTooSmall => "reply does not fit in the buffer",
            Error::ReplyToRst => "never answer an RST",
        };
        f.write_str(s)
    }
}

impl core::error::Error for Error {}

/// Result with the crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
