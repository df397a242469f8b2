//! parse_frame on arbitrary bytes, then every reply builder on whatever parses.
//!
//! The parser must never panic (malformed input is an `Error`), and a reply we build from a
//! frame it accepted must itself parse with both checksums right: the engine sends these
//! without looking at them again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synline_wire::reply::{build_ack, build_rst, build_synack, IpParams, SynAck};
use synline_wire::{parse_frame, Error, OptionsOut, ParsedFrame, SeqNumber, TcpFlags, Timestamps};

/// Room a UMEM chunk leaves after the received frame; a SYN-ACK grows at most by 20 option
/// bytes over a bare SYN, so 64 is always enough.
const ROOM: usize = 64;

/// The reply in `buf[..n]` parses, fits the buffer, and answers `rx`: swapped endpoints, same
/// family and VLAN tag, no payload.
fn check_reply(what: &str, buf: &[u8], n: usize, rx: &ParsedFrame, flags: TcpFlags) -> ParsedFrame {
    assert!(n <= buf.len(), "{what}: length {n} past the buffer");
    let p = parse_frame(&buf[..n]).unwrap_or_else(|e| panic!("{what}: built reply rejected: {e}"));
    assert_eq!(p.layout.end, n, "{what}");
    assert_eq!(p.layout.family, rx.layout.family, "{what}");
    assert_eq!(p.seg.vlan, rx.seg.vlan, "{what}");
    assert_eq!((p.seg.src, p.seg.dst), (rx.seg.dst, rx.seg.src), "{what}");
    assert_eq!(
        (p.seg.src_port, p.seg.dst_port),
        (rx.seg.dst_port, rx.seg.src_port),
        "{what}"
    );
    assert_eq!(
        (p.seg.eth_src, p.seg.eth_dst),
        (rx.seg.eth_dst, rx.seg.eth_src),
        "{what}"
    );
    assert_eq!(p.seg.payload_len, 0, "{what}");
    assert_eq!(p.seg.flags, flags, "{what}");
    p
}

fn room(data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(data.len() + ROOM);
    b.extend_from_slice(data);
    b.resize(data.len() + ROOM, 0);
    b
}

fuzz_target!(|data: &[u8]| {
    let Ok(rx) = parse_frame(data) else { return };
    let s = rx.seg;
    // Caller values drawn from the frame itself, so the fuzzer steers them too.
    let ip = IpParams {
        ttl: s.window as u8,
        tos: (s.window >> 8) as u8,
        flow_label: s.ack.0,
    };
    let ts = s.options.timestamps.map(|t| Timestamps {
        tsval: t.tsecr ^ 0x5a5a_5a5a,
        tsecr: t.tsval,
    });

    // SYN-ACK (X-1..X-5, V-5), with the options S-7 read echoed as negotiated.
    let options = OptionsOut {
        mss: Some(s.options.mss.unwrap_or(1460)),
        wscale: s.options.wscale,
        sack_permitted: s.options.sack_permitted,
        timestamps: ts,
    };
    let ece = s.flags.contains(TcpFlags::ECE | TcpFlags::CWR);
    let synack = SynAck {
        iss: SeqNumber(s.ack.0 ^ 0x1234_5678),
        window: s.window,
        ece,
        options,
    };
    let mut buf = room(data);
    let n = build_synack(&mut buf, &rx, &ip, &synack).expect("64 bytes of room always fit");
    let flags = if ece {
        TcpFlags::SYN_ACK | TcpFlags::ECE
    } else {
        TcpFlags::SYN_ACK
    };
    let p = check_reply("SYN-ACK", &buf, n, &rx, flags);
    assert_eq!(p.seg.seq, synack.iss);
    assert_eq!(p.seg.ack, s.seq + 1);
    assert_eq!(p.seg.options.wscale, options.wscale);
    assert_eq!(p.seg.options.sack_permitted, options.sack_permitted);
    assert_eq!(p.seg.options.timestamps, options.timestamps);

    // RST (P-1).
    let mut buf = room(data);
    match build_rst(&mut buf, &rx, &ip) {
        Err(Error::ReplyToRst) => assert!(s.flags.rst()),
        Err(e) => panic!("RST: {e}"),
        Ok(n) => {
            assert!(!s.flags.rst());
            if s.flags.ack() {
                let p = check_reply("RST", &buf, n, &rx, TcpFlags::RST);
                assert_eq!(p.seg.seq, s.ack);
            } else {
                let p = check_reply("RST", &buf, n, &rx, TcpFlags::RST | TcpFlags::ACK);
                assert_eq!((p.seg.seq, p.seg.ack), (SeqNumber(0), s.end_seq()));
            }
        }
    }

    // ACK (P-2).
    let mut buf = room(data);
    let n = build_ack(&mut buf, &rx, &ip, s.ack, s.end_seq(), s.window, ts).expect("ACK fits");
    let p = check_reply("ACK", &buf, n, &rx, TcpFlags::ACK);
    assert_eq!(p.seg.options.timestamps, ts);
});
