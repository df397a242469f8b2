//! Segments that reached a worker that does not own their flow, on their way to the others.
//!
//! RSS sends both directions of a flow to one queue, so this is rare (a changed RSS key, a
//! queue reconfiguration; see `request_table` for why the shards are per worker). When it
//! happens the segment travels round the workers, one hop at a time, until one holds its
//! request or every worker has seen it (then the listener answers, D-2's order).
//!
//! ```text
//!  worker A                    shared                           worker B
//!  parse + checksum once  ->   pool of 2 KB buffers (boxed,
//!  take a buffer, copy len     made once at start)         ->   pop, copy len bytes into
//!  bytes, push (parsed         queue[B]: Handoff { parsed,      its own frame, buffer back
//!  summary, hops, buffer)      hops, len, buffer }              to the pool, rcv_parsed()
//! ```
//!
//! What crosses is the parsed frame (the `ParsedFrame` summary and layout, by value, about a
//! hundred bytes) and a pointer to the bytes: never a 2 KB array by value, and the receiver
//! does not parse or verify checksums again. Nothing is allocated per segment; with the pool
//! empty or the receiver's queue full the segment is dropped and counted (HandoffFull).

use crossbeam::queue::ArrayQueue;
use synline_wire::ParsedFrame;

/// Largest frame a hand-off carries (an AF_XDP chunk of 2048 bytes).
pub const HANDOFF_FRAME: usize = 2048;

type Buffer = Box<[u8; HANDOFF_FRAME]>;

/// A parsed segment on its way to another worker.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The parse the first worker made (offsets into `bytes`).
    pub parsed: ParsedFrame,
    /// Workers it has visited.
    pub hops: u8,
    len: u16,
    bytes: Buffer,
}

impl Handoff {
    /// The frame's bytes.
    pub fn frame(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The queues between workers and the buffers they carry.
#[derive(Debug)]
pub(crate) struct Handoffs {
    queues: Vec<ArrayQueue<Handoff>>,
    pool: ArrayQueue<Buffer>,
}

/// Why a segment could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandoffFull;

impl Handoffs {
    /// Queues of `capacity` for `workers` workers, and a buffer for every slot (none with one
    /// worker: nothing is ever handed over).
    pub fn new(workers: usize, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let buffers = if workers > 1 { workers * capacity } else { 0 };
        let pool = ArrayQueue::new(buffers.max(1));
        for _ in 0..buffers {
            let _ = pool.push(Box::new([0u8; HANDOFF_FRAME]));
        }
        Handoffs {
            queues: (0..workers).map(|_| ArrayQueue::new(capacity)).collect(),
            pool,
        }
    }

    /// Copies `frame` into a pooled buffer and queues it with its parse for worker `to`.
    pub fn push(
        &self,
        to: usize,
        frame: &[u8],
        parsed: ParsedFrame,
        hops: u8,
    ) -> Result<(), HandoffFull> {
        let len = u16::try_from(frame.len()).map_err(|_| HandoffFull)?;
        if frame.len() > HANDOFF_FRAME {
            return Err(HandoffFull);
        }
        let queue = self.queues.get(to).ok_or(HandoffFull)?;
        let mut bytes = self.pool.pop().ok_or(HandoffFull)?;
        bytes[..frame.len()].copy_from_slice(frame);
        let h = Handoff {
            parsed,
            hops,
            len,
            bytes,
        };
        queue.push(h).map_err(|h| {
            let _ = self.pool.push(h.bytes);
            HandoffFull
        })
    }

    /// The next segment for worker `id`, if any.
    pub fn pop(&self, id: usize) -> Option<Handoff> {
        self.queues.get(id)?.pop()
    }

    /// Gives a delivered segment's buffer back to the pool.
    pub fn recycle(&self, h: Handoff) {
        let _ = self.pool.push(h.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synline_wire::emit::{emit_segment, SegmentSpec};
    use synline_wire::reply::{IpParams, TcpParams};
    use synline_wire::{parse_frame, OptionsOut, SeqNumber, TcpFlags};

    fn frame() -> Vec<u8> {
        let mut buf = vec![0u8; 200];
        let n = emit_segment(
            &mut buf,
            &SegmentSpec {
                eth_src: [2, 0, 0, 0, 0, 2],
                eth_dst: [2, 0, 0, 0, 0, 1],
                vlan: None,
                src: "198.18.0.2".parse().unwrap(),
                dst: "198.18.0.1".parse().unwrap(),
                ip: IpParams::default(),
                src_port: 40000,
                dst_port: 80,
                tcp: TcpParams {
                    seq: SeqNumber(1),
                    ack: SeqNumber(2),
                    flags: TcpFlags::ACK,
                    window: 100,
                    options: OptionsOut::default(),
                },
                payload: b"data",
            },
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn a_handoff_carries_the_bytes_and_the_parse() {
        let h = Handoffs::new(2, 4);
        let f = frame();
        let p = parse_frame(&f).unwrap();
        h.push(1, &f, p, 1).unwrap();
        assert!(h.pop(0).is_none());
        let got = h.pop(1).unwrap();
        assert_eq!(got.frame(), &f[..]);
        assert_eq!(got.parsed, p);
        assert_eq!(got.hops, 1);
        h.recycle(got);
    }

    /// The pool bounds what is in flight: all buffers out means HandoffFull, and a recycled
    /// buffer makes room again; a full queue gives its buffer back.
    #[test]
    fn buffers_are_bounded_and_come_back() {
        let h = Handoffs::new(2, 2);
        let f = frame();
        let p = parse_frame(&f).unwrap();
        for _ in 0..2 {
            h.push(1, &f, p, 1).unwrap();
        }
        assert_eq!(
            h.push(1, &f, p, 1),
            Err(HandoffFull),
            "worker 1's queue is full"
        );
        for _ in 0..2 {
            h.push(0, &f, p, 1).unwrap();
        }
        assert_eq!(h.push(0, &f, p, 1), Err(HandoffFull), "pool empty");
        let got = h.pop(1).unwrap();
        h.recycle(got);
        // Queue 0 is full: the buffer the push took goes back, so worker 1 gets one.
        assert_eq!(h.push(0, &f, p, 1), Err(HandoffFull));
        h.push(1, &f, p, 1).unwrap();
    }

    #[test]
    fn an_oversized_frame_or_a_single_worker_hands_nothing() {
        let f = frame();
        let p = parse_frame(&f).unwrap();
        let h = Handoffs::new(2, 2);
        let big = [0u8; HANDOFF_FRAME + 1];
        assert_eq!(h.push(1, &big, p, 1), Err(HandoffFull));
        assert_eq!(h.push(2, &f, p, 1), Err(HandoffFull), "no worker 2");
        let one = Handoffs::new(1, 8);
        assert_eq!(
            one.push(0, &f, p, 1),
            Err(HandoffFull),
            "no pool with one worker"
        );
    }
}
