//! The poll-mode worker: one per NIC queue, it moves frames between its [`XskQueue`]'s rings
//! and its `synline_core` [`Worker`].
//!
//! One round ([`Datapath::poll_once`]):
//!
//! 1. reap the completion ring: frames the kernel sent go back to the free pool;
//! 2. take up to `batch` frames from the RX ring and hand each to
//!    [`Worker::handle_frame`] with the whole UMEM chunk as its buffer, so a reply may be
//!    longer than the segment it answers. [`Verdict::Transmit`] puts *the same frame* on the
//!    TX ring with the reply's length: the SYN-ACK, RST or ACK leaves in the frame the
//!    segment came in, without a copy. Any other verdict returns the frame to the pool;
//! 3. frames from other workers ([`Worker::poll_handoff`]) and due SYN-ACK retransmissions
//!    ([`Worker::poll_timers`]) are written into frames of the free pool (the reserve), each
//!    only while a frame and a TX slot are there for it;
//! 4. kick TX with `sendto()`: in copy mode after every batch, whatever need_wakeup says
//!    (copy mode sends only from the syscall, 32 frames per call on 6.x, so the kick repeats
//!    while the kernel answers EAGAIN, up to `max_kicks`); in zero-copy mode when the driver
//!    asks (need_wakeup) or always without need_wakeup;
//! 5. refill the fill ring from the pool, keeping `reserve` frames back;
//! 6. with nothing received, wake the RX side if the fill ring asks for it (or always with
//!    busy polling, where `recvfrom()` runs the driver's NAPI loop in this thread).
//!
//! An idle round whose only work left is a TX kick the kernel keeps refusing waits
//! [`KICK_RETRY`] before the next one, so that a worker under SCHED_FIFO never spins its core
//! away from the softirq work that frees TX slots.
//!
//! After an idle round (nothing received or sent) the loop sleeps in `poll()` until a frame
//! arrives or the engine's next timer is due ([`Worker::poll_timeout`]), but never longer than
//! [`DatapathConfig::idle_wait`] (so a stop request is seen), nor longer than
//! [`HANDOFF_POLL`] when other workers may hand segments over (they arrive without a frame on
//! this queue), when due timers were held back for want of a frame or TX slot (their deadline
//! has passed: trusting it would spin), or when the free pool is short of frames (the
//! completion ring gives them back without waking anyone). With `idle_wait` `None` it spins.
//!
//! # A full TX ring, and what it means for a request (spec Q-7, T-4)
//!
//! - A reply to a received segment that finds the TX ring full is dropped and counted
//!   ([`QueueCounters::tx_ring_full`]); its frame goes back to the pool. For the first
//!   SYN-ACK of a request this is Linux's Q-7, "a failed first send is ignored": the request
//!   is in the table already, and its timer retransmits the SYN-ACK one second later.
//! - A retransmission is never attempted without a free frame and a free TX slot: when
//!   either is missing, the worker stops polling timers for the round, and the due timers
//!   stay due and fire on a later round (microseconds to milliseconds later). So the engine
//!   never sees a failed retransmission from a full ring, and T-4's "a failed retransmit with
//!   acked == 0 drops R" keeps applying only to the failure the engine itself can see (a
//!   buffer too small for the SYN-ACK). A full TX ring is momentary back-pressure; dropping
//!   requests for it would turn a burst into lost connections. The rounds in which timers
//!   were held back are counted ([`QueueCounters::timer_polls_deferred`]). The same holds for
//!   hand-offs, which stay queued in the engine.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use synline_core::{Verdict, Worker};

use crate::syscall::Kick;
use crate::xsk::{Frame, XskError, XskQueue};

/// Settings of the poll loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatapathConfig {
    /// Frames taken from the RX ring per round; also the most hand-offs and timer
    /// retransmissions per round.
    pub batch: usize,
    /// Free frames kept out of the fill ring for engine-originated frames (timer
    /// retransmissions, hand-offs).
    pub reserve: usize,
    /// The longest an idle round sleeps in `poll()` (woken early by a frame, and cut short by
    /// the next timer); `None` spins.
    pub idle_wait: Option<Duration>,
    /// Most `sendto()` kicks per round while copy mode answers EAGAIN.
    pub max_kicks: u32,
}

/// What the caller of a queue's poll loop does beside it, on the worker's thread. Every method
/// has a default that does nothing, so a closure `FnMut(&mut RoundCtx)` is a hook too (for
/// [`QueueHook::after_round`]).
pub trait QueueHook: Send {
    /// After each round (the daemon drains accept lists here).
    fn after_round(&mut self, _ctx: &mut crate::port::RoundCtx<'_>) {}

    /// Right after a received frame made a child ([`Verdict::Consumed`]), before the next
    /// frame of the batch: an embedder that moves children elsewhere (the kernel handoff) does
    /// it here, ahead of the flow's next segments.
    fn child_made(&mut self, _engine: &mut Worker) {}

    /// A frame the engine gave back ([`Verdict::Pass`]): true if the hook took it (the kernel
    /// handoff re-injects it into the kernel), false to count and drop it.
    fn pass(&mut self, _frame: &[u8]) -> bool {
        false
    }
}

impl<F> QueueHook for F
where
    F: FnMut(&mut crate::port::RoundCtx<'_>) + Send,
{
    fn after_round(&mut self, ctx: &mut crate::port::RoundCtx<'_>) {
        self(ctx)
    }
}

/// How long a round with nothing to do but a TX kick the kernel keeps refusing waits before the
/// next kick (woken early by a received frame).
pub const KICK_RETRY: Duration = Duration::from_micros(50);

/// The longest an idle worker sleeps while other workers may hand it segments.
pub const HANDOFF_POLL: Duration = Duration::from_millis(1);

impl Default for DatapathConfig {
    fn default() -> Self {
        DatapathConfig {
            batch: 64,
            reserve: 64,
            idle_wait: Some(Duration::from_millis(100)),
            max_kicks: 16,
        }
    }
}

/// One queue's counters. Single writer (its worker), any number of readers.
#[derive(Debug, Default)]
pub struct QueueStats {
    rx_frames: AtomicU64,
    tx_frames: AtomicU64,
    tx_ring_full: AtomicU64,
    fill_ring_empty: AtomicU64,
    wakeups: AtomicU64,
    not_for_engine: AtomicU64,
    timer_polls_deferred: AtomicU64,
    reserve_tx: AtomicU64,
    passed_on: AtomicU64,
}

/// A snapshot of [`QueueStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Frames taken from the RX ring.
    pub rx_frames: u64,
    /// Frames put on the TX ring (replies in place, retransmissions, hand-off replies).
    pub tx_frames: u64,
    /// Replies dropped because the TX ring was full (their frames recycled).
    pub tx_ring_full: u64,
    /// Refills that found the fill ring empty: the kernel had no frame to receive into
    /// (see also [`crate::XskKernelStats::rx_fill_ring_empty`]).
    pub fill_ring_empty: u64,
    /// `sendto()` kicks and RX wakeups (`poll()`/`recvfrom()`).
    pub wakeups: u64,
    /// Frames the engine would have given to the kernel ([`Verdict::Pass`]): the XDP
    /// program sent them here, so they are dropped. Non-zero means the program's listeners
    /// and the engine's disagree.
    pub not_for_engine: u64,
    /// Rounds in which timers were not polled for want of a free frame or TX slot.
    pub timer_polls_deferred: u64,
    /// Frames the engine originated in reserve frames and put on the TX ring (SYN-ACK
    /// retransmissions, replies to hand-offs); part of `tx_frames`.
    pub reserve_tx: u64,
    /// Frames the engine gave back ([`Verdict::Pass`]) that the queue's hook took (the
    /// kernel handoff re-injects them into the kernel).
    pub passed_on: u64,
}

impl QueueCounters {
    /// Names in nstat style, with their values.
    pub fn named(&self) -> [(&'static str, u64); 9] {
        [
            ("SynlineXskRxFrames", self.rx_frames),
            ("SynlineXskTxFrames", self.tx_frames),
            ("SynlineXskTxRingFull", self.tx_ring_full),
            ("SynlineXskFillRingEmpty", self.fill_ring_empty),
            ("SynlineXskWakeups", self.wakeups),
            ("SynlineXskNotForEngine", self.not_for_engine),
            ("SynlineXskTimerPollsDeferred", self.timer_polls_deferred),
            ("SynlineXskReserveTx", self.reserve_tx),
            ("SynlineXskPassedOn", self.passed_on),
        ]
    }
}

/// Adds to a counter that only this thread writes: a plain load and store, no locked
/// instruction.
#[inline]
fn bump(c: &AtomicU64, n: usize) {
    if n != 0 {
        c.store(c.load(Relaxed).wrapping_add(n as u64), Relaxed);
    }
}

impl QueueStats {
    /// The counters now.
    pub fn snapshot(&self) -> QueueCounters {
        QueueCounters {
            rx_frames: self.rx_frames.load(Relaxed),
            tx_frames: self.tx_frames.load(Relaxed),
            tx_ring_full: self.tx_ring_full.load(Relaxed),
            fill_ring_empty: self.fill_ring_empty.load(Relaxed),
            wakeups: self.wakeups.load(Relaxed),
            not_for_engine: self.not_for_engine.load(Relaxed),
            timer_polls_deferred: self.timer_polls_deferred.load(Relaxed),
            reserve_tx: self.reserve_tx.load(Relaxed),
            passed_on: self.passed_on.load(Relaxed),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Frames received.
    pub rx: usize,
    /// Frames put on the TX ring.
    pub tx: usize,
}

impl Round {
    /// Nothing received, nothing sent.
    pub fn is_idle(&self) -> bool {
        self.rx == 0 && self.tx == 0
    }
}

/// The poll loop's state: its settings and the batches it reuses (no allocation per round).
#[derive(Debug)]
pub struct Datapath {
    cfg: DatapathConfig,
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    /// Frames went on the TX ring and the kernel has not been told (or said EAGAIN).
    kick_pending: bool,
    /// The last round held due timers back for want of a frame or a TX slot: they are in the
    /// past, so the idle wait must not trust the deadline (it would be zero: a busy loop).
    timers_held: bool,
}

impl Datapath {
    /// A loop with `cfg`.
    pub fn new(cfg: DatapathConfig) -> Self {
        let batch = cfg.batch.max(1);
        Datapath {
            cfg: DatapathConfig { batch, ..cfg },
            rx: Vec::with_capacity(batch),
            tx: Vec::with_capacity(2 * batch),
            kick_pending: false,
            timers_held: false,
        }
    }

    /// After an idle round (nothing received or sent, no kick pending), waits in `poll()`
    /// until a frame arrives or `engine`'s next timer is due (see the module docs), or spins
    /// once when [`DatapathConfig::idle_wait`] is `None`. `now` is the round's time.
    pub fn idle(
        &mut self,
        queue: &mut XskQueue,
        engine: &Worker,
        round: Round,
        now: Duration,
    ) -> Result<(), XskError> {
        if !round.is_idle() {
            return Ok(());
        }
        if self.kick_pending {
            // Nothing came in or went out, and the kernel still has not taken the TX ring
            // (EAGAIN through every kick): wait a moment instead of spinning, so that a worker
            // under SCHED_FIFO leaves its core to the softirq work that frees TX slots.
            queue.wait_rx(KICK_RETRY)?;
            return Ok(());
        }
        let Some(mut wait) = self.cfg.idle_wait else {
            std::hint::spin_loop();
            return Ok(());
        };
        // Frames still out (on the TX or completion ring) come back without a wakeup, and a
        // fill ring short of them drops what arrives: look again soon.
        let pool_low = queue.free_frames() < self.cfg.reserve;
        if engine.receives_handoffs() || self.timers_held || pool_low {
            wait = wait.min(HANDOFF_POLL);
        }
        if !self.timers_held {
            if let Some(due) = engine.poll_timeout() {
                wait = wait.min(due.saturating_sub(now));
            }
        }
        if !wait.is_zero() {
            queue.wait_rx(wait)?;
        }
        Ok(())
    }

    /// One round (see the module docs).
    pub fn poll_once(
        &mut self,
        queue: &mut XskQueue,
        engine: &mut Worker,
        now: Duration,
        stats: &QueueStats,
        hook: &mut dyn QueueHook,
    ) -> Result<Round, XskError> {
        let (mut round, mut batch) = self.begin_round(queue, stats);
        let rx = round.rx;

        // Received segments, answered in place.
        for mut f in batch.drain(..) {
            let v = queue.with_buffer(&mut f, |buf, len| engine.handle_frame(buf, len, now));
            if v == Verdict::Consumed {
                hook.child_made(engine);
            }
            self.dispose(queue, f, Some(v), stats, hook);
        }
        self.rx = batch;
        round.tx += self.flush(queue, stats);

        // Engine-originated frames, from the pool, only with a frame and a slot for each.
        // `room` is never more than the ring's free slots, so all of them go out.
        let mut room = queue.tx_room(self.cfg.batch).min(self.cfg.batch);
        while room > 0 {
            let Some(mut f) = queue.take_free() else {
                break;
            };
            let v = queue.with_buffer(&mut f, |buf, _| engine.poll_handoff(buf, now));
            let done = v.is_none();
            room -= usize::from(matches!(v, Some(Verdict::Transmit(_))));
            if v == Some(Verdict::Consumed) {
                hook.child_made(engine);
            }
            self.dispose(queue, f, v, stats, hook);
            if done {
                break;
            }
        }
        let mut fired = 0;
        self.timers_held = false;
        loop {
            if room == 0 || queue.free_frames() == 0 {
                // Q-7/T-4 (module docs): the due timers wait for the next round.
                bump(&stats.timer_polls_deferred, 1);
                self.timers_held = true;
                break;
            }
            let Some(mut f) = queue.take_free() else {
                break;
            };
            match queue.with_buffer(&mut f, |buf, _| engine.poll_timers(now, buf)) {
                Some(n) => {
                    queue.set_len(&mut f, n);
                    self.tx.push(f);
                    room -= 1;
                    fired += 1;
                    if fired == self.cfg.batch {
                        break;
                    }
                }
                None => {
                    queue.recycle(f);
                    break;
                }
            }
        }
        let originated = self.flush(queue, stats);
        bump(&stats.reserve_tx, originated);
        round.tx += originated;

        self.end_round(queue, stats, rx)?;
        Ok(round)
    }

    /// Steps 1 and 2 of a round (module docs): completions reaped, up to `batch` frames taken
    /// from the RX ring and counted. The caller gives the batch back to `self.rx` (emptied) when
    /// done with it, so that no round allocates.
    fn begin_round(&mut self, queue: &mut XskQueue, stats: &QueueStats) -> (Round, Vec<Frame>) {
        queue.reap_completions();
        let rx = queue.receive(&mut self.rx, self.cfg.batch);
        bump(&stats.rx_frames, rx);
        let round = Round { rx, tx: 0 };
        (round, std::mem::take(&mut self.rx))
    }

    /// Steps 4 to 6 of a round (module docs): kick TX, refill the fill ring, wake the RX side
    /// after a round that received nothing.
    fn end_round(
        &mut self,
        queue: &mut XskQueue,
        stats: &QueueStats,
        rx: usize,
    ) -> Result<(), XskError> {
        self.kick(queue, stats)?;
        let (_, was_empty) = queue.refill(self.cfg.reserve);
        bump(&stats.fill_ring_empty, usize::from(was_empty));
        if rx == 0 && (queue.busy_polling() || queue.fill_needs_wakeup()) {
            bump(&stats.wakeups, 1);
            queue.wake_rx()?;
        }
        Ok(())
    }

    /// One round of the reply ceiling (`WorkerConfig::reflector`): the same rings, batches,
    /// kicks, refills and wakeups as [`Datapath::poll_once`], with
    /// [`synline_wire::reflect::reflect`] in the engine's place: each received frame goes back
    /// out of the frame it came in, addresses swapped. What it measures is the price of the
    /// path every AF_XDP answerer pays; a frame that is not TCP is recycled and counted as
    /// [`QueueCounters::not_for_engine`].
    pub fn reflect_once(
        &mut self,
        queue: &mut XskQueue,
        stats: &QueueStats,
    ) -> Result<Round, XskError> {
        let (mut round, mut batch) = self.begin_round(queue, stats);
        let rx = round.rx;
        for mut f in batch.drain(..) {
            match queue.with_buffer(&mut f, synline_wire::reflect::reflect) {
                Ok(n) => {
                    queue.set_len(&mut f, n);
                    self.tx.push(f);
                }
                Err(_) => {
                    bump(&stats.not_for_engine, 1);
                    queue.recycle(f);
                }
            }
        }
        self.rx = batch;
        round.tx += self.flush(queue, stats);
        self.end_round(queue, stats, rx)?;
        Ok(round)
    }

    /// Writes one frame that no received frame carries (a child's RST from the embedder, for
    /// instance) into a free frame of the pool and queues it for the next round's TX, where a
    /// full ring makes it a counted drop like any reply. False when no frame is free or
    /// `write` declines.
    pub fn originate(
        &mut self,
        queue: &mut XskQueue,
        write: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        let Some(mut f) = queue.take_free() else {
            return false;
        };
        match queue.with_buffer(&mut f, |buf, _| write(buf)) {
            Some(n) => {
                queue.set_len(&mut f, n);
                self.tx.push(f);
                self.kick_pending = true;
                true
            }
            None => {
                queue.recycle(f);
                false
            }
        }
    }

    /// A frame after the engine: onto the TX batch with the reply's length, or back to the
    /// pool.
    fn dispose(
        &mut self,
        queue: &mut XskQueue,
        mut f: Frame,
        v: Option<Verdict>,
        stats: &QueueStats,
        hook: &mut dyn QueueHook,
    ) {
        match v {
            Some(Verdict::Transmit(n)) => {
                queue.set_len(&mut f, n);
                self.tx.push(f);
            }
            Some(Verdict::Pass) => {
                let taken = queue.with_buffer(&mut f, |buf, len| {
                    buf.get(..len).is_some_and(|frame| hook.pass(frame))
                });
                bump(
                    if taken {
                        &stats.passed_on
                    } else {
                        &stats.not_for_engine
                    },
                    1,
                );
                queue.recycle(f);
            }
            Some(Verdict::Drop(_) | Verdict::Consumed | Verdict::HandedOff) | None => {
                queue.recycle(f)
            }
        }
    }

    /// Puts the TX batch on the ring; what does not fit is a counted drop.
    fn flush(&mut self, queue: &mut XskQueue, stats: &QueueStats) -> usize {
        if self.tx.is_empty() {
            return 0;
        }
        let sent = queue.transmit(&mut self.tx);
        bump(&stats.tx_frames, sent);
        bump(&stats.tx_ring_full, self.tx.len());
        for f in self.tx.drain(..) {
            queue.recycle(f);
        }
        self.kick_pending |= sent > 0;
        sent
    }

    fn kick(&mut self, queue: &mut XskQueue, stats: &QueueStats) -> Result<(), XskError> {
        if !self.kick_pending {
            return Ok(());
        }
        if !queue.tx_needs_kick() {
            self.kick_pending = false;
            return Ok(());
        }
        for _ in 0..self.cfg.max_kicks.max(1) {
            bump(&stats.wakeups, 1);
            match queue.kick_tx()? {
                Kick::Done => {
                    self.kick_pending = false;
                    break;
                }
                // More left (or the completion ring is full): make room and go again.
                Kick::Again => {
                    queue.reap_completions();
                }
                Kick::Busy => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_have_one_name_each() {
        let c = QueueCounters {
            rx_frames: 1,
            tx_frames: 2,
            tx_ring_full: 3,
            fill_ring_empty: 4,
            wakeups: 5,
            not_for_engine: 6,
            timer_polls_deferred: 7,
            reserve_tx: 8,
            passed_on: 9,
        };
        let named = c.named();
        let values: Vec<u64> = named.iter().map(|&(_, v)| v).collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let mut names: Vec<&str> = named.iter().map(|&(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 9);
    }

    #[test]
    fn single_writer_bump_adds() {
        let s = QueueStats::default();
        bump(&s.rx_frames, 3);
        bump(&s.rx_frames, 0);
        bump(&s.rx_frames, 2);
        assert_eq!(s.snapshot().rx_frames, 5);
    }

    #[test]
    fn a_zero_batch_is_one() {
        let d = Datapath::new(DatapathConfig {
            batch: 0,
            ..DatapathConfig::default()
        });
        assert_eq!(d.cfg.batch, 1);
    }
}
