//! Classic pcap files (the libpcap format tcpdump writes), Ethernet link type only.
//!
//! ```text
//! global header (24 bytes): magic a1b2c3d4 (us) or a1b23c4d (ns), version 2.4, zone, sigfigs,
//!                           snaplen, linktype (1 = Ethernet)
//! per record (16 bytes):    ts_sec, ts_usec (or ts_nsec), caplen, origlen; then caplen bytes
//! ```
//! Both byte orders are read; files are written little-endian with microseconds.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::time::Duration;

const LINKTYPE_ETHERNET: u32 = 1;

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Record {
    pub ts: Duration,
    pub data: Vec<u8>,
}

/// Reads every record of a pcap file.
pub fn read(mut r: impl Read) -> Result<Vec<Record>> {
    let mut b = Vec::new();
    r.read_to_end(&mut b).context("read pcap")?;
    if b.len() < 24 {
        bail!("pcap: {} bytes is shorter than the global header", b.len());
    }
    let magic = [b[0], b[1], b[2], b[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!("pcap: unknown magic {magic:02x?} (pcapng is not supported: convert with `tcpdump -r in -w out`)"),
    };
    let u32at = |i: usize| -> u32 {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let linktype = u32at(20) & 0x0fff_ffff;
    if linktype != LINKTYPE_ETHERNET {
        bail!("pcap: link type {linktype} is not Ethernet (1)");
    }
    let mut out = Vec::new();
    let mut i = 24;
    while i + 16 <= b.len() {
        let (sec, frac, caplen) = (u32at(i), u32at(i + 4), u32at(i + 8) as usize);
        let data = b
            .get(i + 16..i + 16 + caplen)
            .with_context(|| format!("pcap: record at byte {i} is truncated"))?;
        let ts = Duration::from_secs(u64::from(sec))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        out.push(Record {
            ts,
            data: data.to_vec(),
        });
        i += 16 + caplen;
    }
    if i != b.len() {
        bail!(
            "pcap: {} trailing bytes after the last whole record",
            b.len() - i
        );
    }
    Ok(out)
}

/// Writes pcap records.
pub struct Writer<W: Write> {
    w: W,
}

impl<W: Write> Writer<W> {
    /// Writes the global header.
    pub fn new(mut w: W) -> Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h).context("write pcap header")?;
        Ok(Writer { w })
    }

    /// Appends one frame.
    pub fn write(&mut self, ts: Duration, data: &[u8]) -> Result<()> {
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&(ts.as_secs() as u32).to_le_bytes());
        h.extend_from_slice(&ts.subsec_micros().to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        self.w.write_all(&h).context("write pcap record")?;
        self.w.write_all(data).context("write pcap record")?;
        Ok(())
    }

    /// Flushes and gives the writer back.
    pub fn finish(mut self) -> Result<W> {
        self.w.flush().context("flush pcap")?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.write(Duration::from_micros(1_500_000), &[1, 2, 3])
            .unwrap();
        w.write(Duration::from_secs(2), &[4; 60]).unwrap();
        let bytes = w.finish().unwrap();
        let r = read(&bytes[..]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].ts, Duration::from_micros(1_500_000));
        assert_eq!(r[0].data, [1, 2, 3]);
        assert_eq!(r[1].data.len(), 60);
        assert!(read(&bytes[..30]).is_err());
    }

    #[test]
    fn reads_the_kernel_fixtures() {
        let r = read(&include_bytes!("../../synline-wire/tests/fixtures/v6_all.pcap")[..]).unwrap();
        assert_eq!(r.len(), 3);
        assert!(synline_wire::parse_frame(&r[0].data).is_ok());
    }
}
