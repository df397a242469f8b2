//! The wire crate's hot path, one frame per iteration.
//!
//! - `parse_syn`: `parse_frame` of a Linux IPv4 SYN (MSS, SACK, TS, NOP, WS): both checksums,
//!   S-7 options.
//! - `copy_74`: copying the 74-byte SYN into a 2048-byte buffer, alone: the in-place benches
//!   below do this copy every iteration to start from a fresh SYN, so subtract it from them.
//! - `syn_to_synack_v4` / `_v6`: copy, parse, derive the option decisions, build the
//!   SYN-ACK in place (X-1..X-5, V-5) with both checksums.
//! - `syn_to_synack_v4_pipelined`: the same work, but each iteration copies the SYN into one of
//!   16 chunks and processes the chunk copied 8 iterations earlier. Parsing bytes stored a few
//!   cycles before stalls on store forwarding (a 16-byte store read back by narrower loads that
//!   straddle it), which a frame written by the NIC's DMA never does: this is the closer figure
//!   for the engine.
//! - `rst`: copy the client's ACK, parse it, build the P-1 RST in place.
//!
//! Run with `cargo bench -p synline-bench --bench wire`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use synline_bench::{V4_ACK, V4_SYN, V6_SYN};
use synline_wire::reply::{build_rst, build_synack, IpParams, SynAck};
use synline_wire::{parse_frame, OptionsOut, ParsedFrame, SeqNumber, Timestamps};

/// An AF_XDP UMEM chunk.
const CHUNK: usize = 2048;

/// The decisions a listener with every option on makes for `syn`: MSS always, WS, SACK
/// and TS as offered, TSecr = the SYN's TSval.
fn decisions(syn: &ParsedFrame) -> SynAck {
    let o = syn.seg.options;
    SynAck {
        iss: SeqNumber(0xd9da_0b24),
        window: if o.timestamps.is_some() { 65160 } else { 64240 },
        ece: false,
        options: OptionsOut {
            mss: Some(1460),
            wscale: o.wscale.map(|_| 10),
            sack_permitted: o.sack_permitted,
            timestamps: o.timestamps.map(|t| Timestamps {
                tsval: 0xb517_7b6f,
                tsecr: t.tsval,
            }),
        },
    }
}

/// Copy, parse, build: what the engine does for one SYN.
fn syn_to_synack(chunk: &mut [u8; CHUNK], syn: &[u8], ip: &IpParams) -> usize {
    chunk[..syn.len()].copy_from_slice(syn);
    let p = parse_frame(&chunk[..syn.len()]).unwrap();
    let d = decisions(&p);
    build_synack(chunk, &p, ip, &d).unwrap()
}

fn wire(c: &mut Criterion) {
    // Sanity: the benched paths work on these frames (a panic here beats a fast wrong number).
    let mut chunk = [0u8; CHUNK];
    let n = syn_to_synack(&mut chunk, &V4_SYN, &IpParams::default());
    assert_eq!(n, 74);
    parse_frame(&chunk[..n]).unwrap();

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));

    g.bench_function("parse_syn", |b| {
        b.iter(|| parse_frame(black_box(&V4_SYN[..])).unwrap())
    });

    g.bench_function("copy_74", |b| {
        let mut chunk = [0u8; CHUNK];
        b.iter(|| {
            black_box(&mut chunk)[..V4_SYN.len()].copy_from_slice(black_box(&V4_SYN[..]));
            black_box(&chunk);
        })
    });

    g.bench_function("syn_to_synack_v4", |b| {
        let mut chunk = [0u8; CHUNK];
        let ip = IpParams::default();
        b.iter(|| syn_to_synack(black_box(&mut chunk), black_box(&V4_SYN[..]), &ip))
    });

    g.bench_function("syn_to_synack_v6", |b| {
        let mut chunk = [0u8; CHUNK];
        let ip = IpParams {
            flow_label: 0xe02b8,
            ..IpParams::default()
        };
        b.iter(|| syn_to_synack(black_box(&mut chunk), black_box(&V6_SYN[..]), &ip))
    });

    g.bench_function("syn_to_synack_v4_pipelined", |b| {
        let mut ring = vec![[0u8; CHUNK]; 16];
        for c in ring.iter_mut() {
            c[..V4_SYN.len()].copy_from_slice(&V4_SYN);
        }
        let ip = IpParams::default();
        let mut i = 0usize;
        b.iter(|| {
            let ring = black_box(&mut ring);
            ring[i % 16][..V4_SYN.len()].copy_from_slice(black_box(&V4_SYN[..]));
            let chunk = &mut ring[(i + 8) % 16];
            let p = parse_frame(&chunk[..V4_SYN.len()]).unwrap();
            let d = decisions(&p);
            i += 1;
            build_synack(chunk, &p, &ip, &d).unwrap()
        })
    });

    g.bench_function("rst", |b| {
        let mut chunk = [0u8; CHUNK];
        let ip = IpParams::default();
        b.iter(|| {
            let chunk = black_box(&mut chunk);
            chunk[..V4_ACK.len()].copy_from_slice(black_box(&V4_ACK[..]));
            let p = parse_frame(&chunk[..V4_ACK.len()]).unwrap();
            build_rst(chunk, &p, &ip).unwrap()
        })
    });

    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
