//! TCP options: the parser of spec rule S-7 and the emitter of the X-4 layouts.
//!
//! Parsing follows the kernel's `tcp_parse_options` on a SYN:
//! - kind 0 (EOL) ends parsing; kind 1 (NOP) is one byte;
//! - any other kind needs a length byte; a length below 2 or running past the header stops
//!   parsing, and what was read so far is kept;
//! - unknown kinds are skipped by their length; a repeated option overwrites the earlier one;
//! - MSS (2) only at length 4, and a value of 0 is ignored; WS (3) only at length 3, shift clamped
//!   to 14 (RFC 7323 section 2.3); SACK-permitted (4) only at length 2; timestamps (8) only at
//!   length 10.
//!
//! Whether the local settings allow SACK, WS or timestamps is the engine's decision, not the
//! parser's.
//!
//! Emission writes the kernel's `tcp_options_write` layouts, every option 32-bit aligned (X-4):
//! ```text
//! MSS                        02 04 mm mm
//! TS (+ SACK-permitted)      04 02 08 0a vv vv vv vv ee ee ee ee
//! TS (no SACK-permitted)     01 01 08 0a vv vv vv vv ee ee ee ee
//! SACK-permitted without TS  01 01 04 02
//! WS                         01 03 03 ss
//! ```
//! At most 20 bytes (data offset 10). SACK-permitted never comes first.

/// Option kinds.
pub mod kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation.
    pub const NOP: u8 = 1;
    /// Maximum segment size.
    pub const MSS: u8 = 2;
    /// Window scale.
    pub const WS: u8 = 3;
    /// SACK permitted.
    pub const SACK_PERM: u8 = 4;
    /// Timestamps.
    pub const TS: u8 = 8;
}

/// Largest window shift (RFC 7323 section 2.3).
pub const MAX_WSCALE: u8 = 14;

/// The timestamps option values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamps {
    /// TSval: the sender's clock.
    pub tsval: u32,
    /// TSecr: the echo of the peer's last TSval.
    pub tsecr: u32,
}

/// The options a segment carried, as S-7 reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// MSS (never 0: a 0 is ignored).
    pub mss: Option<u16>,
    /// Window shift, clamped to 14.
    pub wscale: Option<u8>,
    /// SACK-permitted seen.
    pub sack_permitted: bool,
    /// Timestamps seen.
    pub timestamps: Option<Timestamps>,
}

impl TcpOptions {
    /// Parses the option bytes of a TCP header (S-7). Never fails: malformed options stop parsing.
    ///
    /// Written with slice patterns rather than indices: every length is checked by the pattern
    /// itself, so the loop has no bounds checks left (this runs on every SYN).
    pub fn parse(opts: &[u8]) -> TcpOptions {
        if let Some(o) = Self::parse_linux_syn(opts) {
            return o;
        }
        if let Some(o) = Self::parse_aligned_timestamps(opts) {
            return o;
        }
        let mut out = TcpOptions::default();
        let mut rest = opts;
        loop {
            rest = match rest {
                [] | [kind::EOL, ..] => break,
                [kind::NOP, tail @ ..] => tail,
                // Every other kind needs a length byte that covers itself and fits in the header;
                // a kind byte with no room for its length stops parsing too.
                [k, size, ..] => {
                    let size = usize::from(*size);
                    if size < 2 || size > rest.len() {
                        break;
                    }
                    let (opt, tail) = rest.split_at(size);
                    match (*k, opt) {
                        (kind::MSS, &[_, _, a, b]) => {
                            let mss = u16::from_be_bytes([a, b]);
                            if mss != 0 {
                                out.mss = Some(mss);
                            }
                        }
                        (kind::WS, &[_, _, shift]) => out.wscale = Some(shift.min(MAX_WSCALE)),
                        (kind::SACK_PERM, &[_, _]) => out.sack_permitted = true,
                        (kind::TS, &[_, _, v0, v1, v2, v3, e0, e1, e2, e3]) => {
                            out.timestamps = Some(Timestamps {
                                tsval: u32::from_be_bytes([v0, v1, v2, v3]),
                                tsecr: u32::from_be_bytes([e0, e1, e2, e3]),
                            })
                        }
                        _ => {}
                    }
                    tail
                }
                [_] => break,
            };
        }
        out
    }
}

impl TcpOptions {
    /// The fast path for the SYN every Linux client sends, 20 bytes in this order:
    ///
    /// ```text
    ///   0     2        4     6     8                  16    17    18    19
    ///   +-----+--------+-----+-----+--------+---------+-----+-----+-----+-----+
    ///   |02 04| MSS    |04 02|08 0a| TSval  | TSecr   | 01  |03 03| WS  |
    ///   +-----+--------+-----+-----+--------+---------+-----+-----+-----+
    /// ```
    ///
    /// One compare of the eight fixed bytes instead of the walk; what the walk would read
    /// from these bytes, field for field (S-7: MSS 0 is no MSS, the shift is clamped), which
    /// `parse_matches_reference` checks on every input.
    #[inline(always)]
    fn parse_linux_syn(opts: &[u8]) -> Option<TcpOptions> {
        let &[2, 4, m0, m1, 4, 2, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3, 1, 3, 3, ws] = opts else {
            return None;
        };
        let mss = u16::from_be_bytes([m0, m1]);
        Some(TcpOptions {
            mss: (mss != 0).then_some(mss),
            wscale: Some(ws.min(MAX_WSCALE)),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: u32::from_be_bytes([v0, v1, v2, v3]),
                tsecr: u32::from_be_bytes([e0, e1, e2, e3]),
            }),
        })
    }

    /// The fast path for the ACKs of a timestamp connection, `01 01 08 0a TSval TSecr`: the
    /// kernel's `tcp_parse_aligned_timestamp` (RFC 7323 appendix A's layout).
    #[inline(always)]
    fn parse_aligned_timestamps(opts: &[u8]) -> Option<TcpOptions> {
        let &[1, 1, 8, 10, v0, v1, v2, v3, e0, e1, e2, e3] = opts else {
            return None;
        };
        Some(TcpOptions {
            timestamps: Some(Timestamps {
                tsval: u32::from_be_bytes([v0, v1, v2, v3]),
                tsecr: u32::from_be_bytes([e0, e1, e2, e3]),
            }),
            ..TcpOptions::default()
        })
    }
}

/// The options of a reply, written in the kernel's order (X-4).
///
/// The SYN-ACK sets `mss` (always, X-3) and the rest as negotiated; the P-2 ACK sets only
/// `timestamps`, which gives `01 01 08 0a ...`; an RST sets nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptionsOut {
    /// MSS to announce.
    pub mss: Option<u16>,
    /// Our window shift.
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack_permitted: bool,
    /// Timestamps.
    pub timestamps: Option<Timestamps>,
}

impl OptionsOut {
    /// Bytes the options take (a multiple of 4, at most 20).
    pub const fn len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamps.is_some() {
            n += 12;
        } else if self.sack_permitted {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 4;
        }
        n
    }

    /// Whether no option is written.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The options' contribution to a one's-complement checksum, computed from the values
    /// (congruent modulo 0xffff to `checksum::accumulate` over what [`emit`](Self::emit) writes,
    /// and zero exactly when nothing is written), so a builder need not read the bytes back.
    #[inline]
    pub const fn checksum_sum(&self) -> u64 {
        let mut s = 0;
        if let Some(mss) = self.mss {
            s += ((kind::MSS as u64) << 8 | 4) + mss as u64;
        }
        if let Some(ts) = self.timestamps {
            s += if self.sack_permitted {
                (kind::SACK_PERM as u64) << 8 | 2
            } else {
                (kind::NOP as u64) << 8 | kind::NOP as u64
            };
            s += ((kind::TS as u64) << 8 | 10) + ts.tsval as u64 + ts.tsecr as u64;
        } else if self.sack_permitted {
            s += ((kind::NOP as u64) << 8 | kind::NOP as u64) + ((kind::SACK_PERM as u64) << 8 | 2);
        }
        if let Some(ws) = self.wscale {
            s += ((kind::NOP as u64) << 8 | kind::WS as u64) + (3 << 8 | ws as u64);
        }
        s
    }

    /// Writes the options into `buf[..self.len()]`; returns the length, or `None` if `buf` is short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let n = self.len();
        let out = buf.get_mut(..n)?;
        let mut i = 0;
        if let Some(mss) = self.mss {
            let m = mss.to_be_bytes();
            out[i..i + 4].copy_from_slice(&[kind::MSS, 4, m[0], m[1]]);
            i += 4;
        }
        if let Some(ts) = self.timestamps {
            // SACK-permitted rides in the two bytes the timestamps would pad with NOPs.
            let head = if self.sack_permitted {
                [kind::SACK_PERM, 2]
            } else {
                [kind::NOP, kind::NOP]
            };
            out[i..i + 2].copy_from_slice(&head);
            out[i + 2..i + 4].copy_from_slice(&[kind::TS, 10]);
            out[i + 4..i + 8].copy_from_slice(&ts.tsval.to_be_bytes());
            out[i + 8..i + 12].copy_from_slice(&ts.tsecr.to_be_bytes());
            i += 12;
        } else if self.sack_permitted {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::NOP, kind::SACK_PERM, 2]);
            i += 4;
        }
        if let Some(ws) = self.wscale {
            out[i..i + 4].copy_from_slice(&[kind::NOP, kind::WS, 3, ws]);
            i += 4;
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The SYN options of a Linux client with every option on.
    const LINUX_SYN: [u8; 20] = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn s7_linux_syn() {
        let o = TcpOptions::parse(&LINUX_SYN);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some(Timestamps { tsval: 1, tsecr: 0 }));
        assert_eq!(o.wscale, Some(7));
    }

    #[test]
    fn s7_eol_ends_parsing() {
        let o = TcpOptions::parse(&[0, 2, 4, 5, 0xb4]);
        assert_eq!(o, TcpOptions::default());
    }

    #[test]
    fn s7_nop_skipped() {
        let o = TcpOptions::parse(&[1, 1, 1, 2, 4, 5, 0xb4]);
        assert_eq!(o.mss, Some(1460));
    }

    #[test]
    fn s7_bad_length_stops_and_keeps_what_was_read() {
        // MSS, then a SACK-permitted with length 1: stop, keep MSS, never see the WS after it.
        let o = TcpOptions::parse(&[2, 4, 5, 0xb4, 4, 1, 1, 3, 3, 7]);
        assert_eq!(o.mss, Some(1460));
        assert!(!o.sack_permitted);
        assert_eq!(o.wscale, None);
        // Length 0 stops as well.
        let o = TcpOptions::parse(&[4, 2, 99, 0, 3, 3, 7]);
        assert!(o.sack_permitted);
        assert_eq!(o.wscale, None);
    }

    #[test]
    fn s7_length_past_header_stops() {
        let o = TcpOptions::parse(&[4, 2, 8, 10, 0, 0, 0, 1]);
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, None);
        // A kind byte with no room for its length.
        let o = TcpOptions::parse(&[4, 2, 3]);
        assert!(o.sack_permitted);
        assert_eq!(o.wscale, None);
    }

    #[test]
    fn s7_unknown_kinds_ignored() {
        // Kind 30 (MPTCP) with 4 bytes, kind 254 experimental with 2.
        let o = TcpOptions::parse(&[30, 4, 0, 0, 254, 2, 3, 3, 5]);
        assert_eq!(o.wscale, Some(5));
    }

    #[test]
    fn s7_repeated_option_overwrites() {
        let o = TcpOptions::parse(&[2, 4, 5, 0xb4, 2, 4, 2, 0x18, 3, 3, 2, 3, 3, 9]);
        assert_eq!(o.mss, Some(536));
        assert_eq!(o.wscale, Some(9));
    }

    #[test]
    fn s7_mss_only_at_length_4_and_zero_ignored() {
        assert_eq!(TcpOptions::parse(&[2, 3, 5, 1, 1]).mss, None);
        assert_eq!(TcpOptions::parse(&[2, 6, 5, 0xb4, 0, 0]).mss, None);
        assert_eq!(TcpOptions::parse(&[2, 4, 0, 0]).mss, None);
        // A zero does not erase an earlier value.
        assert_eq!(
            TcpOptions::parse(&[2, 4, 5, 0xb4, 2, 4, 0, 0]).mss,
            Some(1460)
        );
    }

    #[test]
    fn s7_ws_only_at_length_3_and_clamped() {
        assert_eq!(TcpOptions::parse(&[3, 3, 14]).wscale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 3, 15]).wscale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 3, 255]).wscale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 4, 7, 0]).wscale, None);
    }

    #[test]
    fn s7_sack_and_ts_lengths() {
        assert!(!TcpOptions::parse(&[4, 3, 0]).sack_permitted);
        assert_eq!(
            TcpOptions::parse(&[8, 8, 0, 0, 0, 1, 0, 0]).timestamps,
            None
        );
        assert_eq!(
            TcpOptions::parse(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2]).timestamps,
            Some(Timestamps { tsval: 1, tsecr: 2 })
        );
    }

    #[test]
    fn x4_layouts_byte_for_byte() {
        let ts = Some(Timestamps {
            tsval: 0x01020304,
            tsecr: 0x05060708,
        });
        let mut b = [0u8; 20];
        let all = OptionsOut {
            mss: Some(1460),
            wscale: Some(10),
            sack_permitted: true,
            timestamps: ts,
        };
        assert_eq!(all.emit(&mut b), Some(20));
        assert_eq!(
            b,
            [2, 4, 5, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 10]
        );

        let no_sack = OptionsOut {
            sack_permitted: false,
            ..all
        };
        assert_eq!(no_sack.emit(&mut b), Some(20));
        assert_eq!(
            b,
            [2, 4, 5, 0xb4, 1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 10]
        );

        let no_ts = OptionsOut {
            timestamps: None,
            ..all
        };
        assert_eq!(no_ts.emit(&mut b), Some(12));
        assert_eq!(b[..12], [2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 10]);

        let mss_only = OptionsOut {
            mss: Some(536),
            ..OptionsOut::default()
        };
        assert_eq!(mss_only.emit(&mut b), Some(4));
        assert_eq!(b[..4], [2, 4, 2, 0x18]);

        // The P-2 ACK: NOP NOP TS.
        let ack = OptionsOut {
            timestamps: ts,
            ..OptionsOut::default()
        };
        assert_eq!(ack.emit(&mut b), Some(12));
        assert_eq!(b[..12], [1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8]);

        assert_eq!(all.emit(&mut [0u8; 19]), None);
    }

    fn arb_out() -> impl Strategy<Value = OptionsOut> {
        (
            proptest::option::of(1u16..),
            proptest::option::of(0u8..=14),
            any::<bool>(),
            proptest::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(mss, wscale, sack_permitted, ts)| OptionsOut {
                mss,
                wscale,
                sack_permitted,
                timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
            })
    }

    /// The straightforward index-based S-7 parser, kept as the reference the slice-pattern
    /// version must agree with on every input.
    fn reference_parse(opts: &[u8]) -> TcpOptions {
        let mut out = TcpOptions::default();
        let mut i = 0;
        while i < opts.len() {
            let k = opts[i];
            if k == kind::EOL {
                break;
            }
            if k == kind::NOP {
                i += 1;
                continue;
            }
            let Some(&size) = opts.get(i + 1) else { break };
            let size = usize::from(size);
            if size < 2 || size > opts.len() - i {
                break;
            }
            let body = &opts[i + 2..i + size];
            match (k, size) {
                (kind::MSS, 4) => {
                    let mss = u16::from_be_bytes([body[0], body[1]]);
                    if mss != 0 {
                        out.mss = Some(mss);
                    }
                }
                (kind::WS, 3) => out.wscale = Some(body[0].min(MAX_WSCALE)),
                (kind::SACK_PERM, 2) => out.sack_permitted = true,
                (kind::TS, 10) => {
                    out.timestamps = Some(Timestamps {
                        tsval: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                        tsecr: u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
                    })
                }
                _ => {}
            }
            i += size;
        }
        out
    }

    /// Option-shaped bytes: mostly real kinds and plausible lengths, so the differential test
    /// reaches deep into the list instead of stopping at the first random length.
    fn optionish() -> impl Strategy<Value = std::vec::Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                4 => prop::sample::select(std::vec![0u8, 1, 2, 3, 4, 8, 30, 254]),
                2 => 0u8..12,
                1 => any::<u8>(),
            ],
            0..40,
        )
    }

    proptest! {
        /// Emit then parse gives back what was emitted.
        #[test]
        fn round_trip(o in arb_out()) {
            let mut b = [0u8; 20];
            let n = o.emit(&mut b).unwrap();
            prop_assert_eq!(n % 4, 0);
            let p = TcpOptions::parse(&b[..n]);
            prop_assert_eq!(p.mss, o.mss);
            prop_assert_eq!(p.wscale, o.wscale);
            prop_assert_eq!(p.sack_permitted, o.sack_permitted);
            prop_assert_eq!(p.timestamps, o.timestamps);
        }

        /// The checksum contribution computed from the values is the one summed over the bytes.
        #[test]
        fn checksum_sum_matches_emitted_bytes(o in arb_out(), mss0 in any::<bool>()) {
            let o = OptionsOut { mss: if mss0 { Some(0) } else { o.mss }, ..o };
            let mut b = [0u8; 20];
            let n = o.emit(&mut b).unwrap();
            let bytes = crate::checksum::accumulate(0, &b[..n]);
            prop_assert_eq!(crate::checksum::fold(o.checksum_sum()), crate::checksum::fold(bytes));
            prop_assert_eq!(o.checksum_sum() == 0, bytes == 0);
        }

        /// The slice-pattern parser is the reference parser, on any bytes.
        #[test]
        fn parse_matches_reference(b in optionish()) {
            prop_assert_eq!(TcpOptions::parse(&b), reference_parse(&b));
        }

        /// The fast paths read Linux's SYN layout and the aligned timestamps exactly as the
        /// walk does, whatever the values (MSS 0, shifts above 14, any timestamps), and a
        /// layout one byte off falls back to the walk with the same result.
        #[test]
        fn s7_fast_paths_match_reference(
            mss in any::<u16>(), ws in any::<u8>(), tsval in any::<u32>(), tsecr in any::<u32>(),
            flip in 0usize..20, byte in any::<u8>(),
        ) {
            let mut syn = [0u8; 20];
            syn[..4].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
            syn[4..8].copy_from_slice(&[4, 2, 8, 10]);
            syn[8..12].copy_from_slice(&tsval.to_be_bytes());
            syn[12..16].copy_from_slice(&tsecr.to_be_bytes());
            syn[16..].copy_from_slice(&[1, 3, 3, ws]);
            prop_assert_eq!(TcpOptions::parse(&syn), reference_parse(&syn));
            let mut ts = [1u8, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
            ts[4..8].copy_from_slice(&tsval.to_be_bytes());
            ts[8..].copy_from_slice(&tsecr.to_be_bytes());
            prop_assert_eq!(TcpOptions::parse(&ts), reference_parse(&ts));
            syn[flip] = byte;
            prop_assert_eq!(TcpOptions::parse(&syn), reference_parse(&syn));
            ts[flip % 12] = byte;
            prop_assert_eq!(TcpOptions::parse(&ts), reference_parse(&ts));
        }

        /// Any bytes parse without panicking, and the result respects S-7's bounds.
        #[test]
        fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let o = TcpOptions::parse(&b);
            prop_assert!(o.wscale.unwrap_or(0) <= MAX_WSCALE);
            prop_assert!(o.mss != Some(0));
        }
    }
}
