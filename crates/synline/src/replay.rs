//! `synline replay IN.pcap --out OUT.pcap`: a capture through the engine, with virtual time
//! taken from the capture's timestamps; every frame the engine would send (replies, timer
//! retransmissions, the RSTs that close logged children) goes to OUT.pcap at the time it
//! would leave. Deterministic for a given seed, so a field report can be replayed without a
//! NIC and a capture can serve as a regression test.

use crate::child_log;
use crate::config::Config;
use crate::pcap;
use anyhow::{Context, Result};
use std::time::Duration;
use synline_core::{AddressFamily, Secrets, Snapshot, Socket, Stack, Verdict, Worker};

/// What a replay did.
#[derive(Debug)]
pub struct Summary {
    pub frames_in: usize,
    pub frames_out: usize,
    pub children: usize,
    pub stats: Snapshot,
}

struct Replay<W: std::io::Write> {
    worker: Worker,
    socks: Vec<Socket>,
    out: pcap::Writer<W>,
    buf: Vec<u8>,
    frames_out: usize,
    children: usize,
    json: Box<dyn FnMut(String)>,
}

impl<W: std::io::Write> Replay<W> {
    fn emit(&mut self, at: Duration, n: usize) -> Result<()> {
        self.frames_out += 1;
        self.out.write(at, &self.buf[..n])
    }

    /// Runs the timers due up to `to`, jumping from deadline to deadline
    /// ([`Worker::poll_timeout`]): each retransmission leaves at the moment the engine's timer
    /// wheel makes it due, at most one tick (about 1.05 ms) after its expiry.
    fn timers(&mut self, from: Duration, to: Duration) -> Result<()> {
        while let Some(due) = self.worker.poll_timeout() {
            if due > to {
                break;
            }
            // Each call moves the wheel past `due`, so the next deadline is later.
            let t = due.max(from);
            while let Some(n) = self.worker.poll_timers(t, &mut self.buf) {
                self.emit(t, n)?;
            }
        }
        Ok(())
    }

    /// Logs and resets every child waiting on an accept list.
    fn drain(&mut self, at: Duration) -> Result<()> {
        for i in 0..self.socks.len() {
            while let Ok(c) = self.socks[i].accept() {
                self.children += 1;
                (self.json)(child_log::json_line(&c, std::time::UNIX_EPOCH + at));
                if let Ok(n) = self.worker.write_child_rst(&c, &mut self.buf) {
                    self.emit(at, n)?;
                }
            }
        }
        Ok(())
    }
}

/// Replays `input` into `output` with the listeners of `config`.
pub fn run(
    input: &[pcap::Record],
    output: impl std::io::Write + 'static,
    config: &Config,
    seed: u64,
    tail: Duration,
    json: Box<dyn FnMut(String)>,
) -> Result<Summary> {
    let stack = Stack::new(
        synline_core::StackConfig {
            workers: 1,
            ..config.stack
        },
        Secrets::from_seed(seed),
    );
    let mut socks = Vec::new();
    for l in &config.listeners {
        let fam = if l.addr.is_ipv6() {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let mut s = stack.socket(fam)?;
        s.set_config(l.config)?;
        s.bind(l.addr).with_context(|| format!("bind {}", l.addr))?;
        s.listen(l.backlog)?;
        socks.push(s);
    }
    let worker = stack.worker(0).context("worker 0")?;
    let mut r = Replay {
        worker,
        socks,
        out: pcap::Writer::new(output)?,
        buf: vec![0u8; 4096],
        frames_out: 0,
        children: 0,
        json,
    };
    let mut now = input.first().map_or(Duration::ZERO, |f| f.ts);
    for rec in input {
        let t = rec.ts.max(now);
        r.timers(now, t)?;
        now = t;
        let len = rec.data.len().min(r.buf.len());
        r.buf[..len].copy_from_slice(&rec.data[..len]);
        if let Verdict::Transmit(n) = r.worker.handle_frame(&mut r.buf, len, now) {
            r.emit(now, n)?;
        }
        r.drain(now)?;
    }
    r.timers(now, now + tail)?;
    r.out.finish()?;
    Ok(Summary {
        frames_in: input.len(),
        frames_out: r.frames_out,
        children: r.children,
        stats: stack.stats(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use synline_wire::emit::{emit_segment, SegmentSpec};
    use synline_wire::reply::{IpParams, TcpParams};
    use synline_wire::{parse_frame, OptionsOut, TcpFlags, Timestamps};

    fn fixture() -> Vec<pcap::Record> {
        pcap::read(&include_bytes!("../../synline-wire/tests/fixtures/v4_all.pcap")[..]).unwrap()
    }

    fn config() -> Config {
        Config::load(None, &["198.18.0.1:8080".to_string()]).unwrap()
    }

    /// Runs a replay into memory; returns the frames out and the JSON lines.
    fn replay(input: &[pcap::Record], seed: u64) -> (Vec<pcap::Record>, Vec<String>) {
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l2 = lines.clone();
        run(
            input,
            Shared(bytes.clone()),
            &config(),
            seed,
            Duration::from_secs(70),
            Box::new(move |l| l2.lock().unwrap().push(l)),
        )
        .unwrap();
        let out = pcap::read(&bytes.lock().unwrap()[..]).unwrap();
        let lines = lines.lock().unwrap().clone();
        (out, lines)
    }

    /// The kernel's third ACK acknowledges the kernel's ISS, not ours: R-3 resets it, and the
    /// request runs its timeline (T-6) to expiry. Same seed, same bytes.
    #[test]
    fn kernel_capture_replays_deterministically() {
        let input = fixture();
        let (out, lines) = replay(&input, 1);
        assert!(lines.is_empty());
        let p: Vec<_> = out
            .iter()
            .map(|r| parse_frame(&r.data).unwrap().seg)
            .collect();
        assert_eq!(p.len(), 7);
        assert!(p[0].flags.syn() && p[0].flags.ack());
        let ack3 = parse_frame(&input[2].data).unwrap().seg;
        assert_eq!(
            (p[1].flags, p[1].seq),
            (TcpFlags::RST, ack3.ack),
            "P-1: SEQ = SEG.ACK"
        );
        let t0 = out[0].ts;
        for (r, due) in out[2..].iter().zip([1u64, 3, 7, 15, 31]) {
            let at = r.ts - t0;
            assert!(
                at >= Duration::from_secs(due)
                    && at < Duration::from_secs(due) + Duration::from_millis(12),
                "{at:?}"
            );
        }
        assert!(p[2..].iter().all(|s| s.seq == p[0].seq), "X-6: same ISS");
        let again = replay(&input, 1).0;
        assert!(out
            .iter()
            .zip(&again)
            .all(|(a, b)| a.data == b.data && a.ts == b.ts));
    }

    /// A handshake completed inside the capture: the child is logged as JSON and reset.
    #[test]
    fn completed_handshake_is_logged_and_reset() {
        let input = fixture();
        let syn = parse_frame(&input[0].data).unwrap().seg;
        let (first, _) = replay(&input[..1], 2);
        let synack = parse_frame(&first[0].data).unwrap().seg;
        let spec = SegmentSpec {
            eth_src: syn.eth_src,
            eth_dst: syn.eth_dst,
            vlan: None,
            src: syn.src,
            dst: syn.dst,
            ip: IpParams {
                ttl: 64,
                tos: 0,
                flow_label: 0,
            },
            src_port: syn.src_port,
            dst_port: syn.dst_port,
            tcp: TcpParams {
                seq: syn.seq + 1,
                ack: synack.seq + 1,
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window: 502,
                options: OptionsOut {
                    timestamps: Some(Timestamps {
                        tsval: 7,
                        tsecr: synack.options.timestamps.unwrap().tsval,
                    }),
                    ..OptionsOut::default()
                },
            },
            payload: b"hello",
        };
        let mut buf = vec![0u8; 256];
        let n = emit_segment(&mut buf, &spec).unwrap();
        let input = vec![
            input[0].clone(),
            pcap::Record {
                ts: input[0].ts + Duration::from_millis(5),
                data: buf[..n].to_vec(),
            },
        ];
        let (out, lines) = replay(&input, 2);
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["remote"], format!("{}:{}", syn.src, syn.src_port));
        assert_eq!(v["data_text"], "hello");
        assert_eq!(v["snd_wscale"], 7);
        assert_eq!(v["sack"], true);
        let rst = parse_frame(&out[1].data).unwrap().seg;
        assert!(
            rst.flags.rst() && rst.seq == synack.seq + 1 && rst.ack == syn.seq + 6,
            "A-2 reset of the child"
        );
        assert_eq!(out.len(), 2, "no retransmissions after the child was made");
    }
}
