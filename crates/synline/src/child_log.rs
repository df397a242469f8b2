//! What the daemon does with a completed connection until an application takes them over:
//! one JSON line per child (4-tuple, negotiated options, the first bytes of any data), then
//! the child is reset with an RST, as Linux's listener close resets unaccepted children.

use std::fmt::Write as _;
use synline_core::{Child, ChildState};

/// Bytes of data shown in the log line.
pub const DATA_SHOWN: usize = 64;

/// The JSON line of a child, stamped with `time` (RFC 3339, UTC).
pub fn json_line(c: &Child, time: std::time::SystemTime) -> String {
    let mut hex = String::with_capacity(DATA_SHOWN * 2);
    for b in c.data.iter().take(DATA_SHOWN) {
        let _ = write!(hex, "{b:02x}");
    }
    let ts = c
        .timestamps
        .map(|t| serde_json::json!({ "ts_recent": t.ts_recent, "ts_off": t.ts_off }));
    serde_json::json!({
        "time": crate::output::rfc3339(time),
        "event": "accept",
        "local": c.local.to_string(),
        "remote": c.remote.to_string(),
        "iss": c.iss.0,
        "irs": c.irs.0,
        "mss": c.mss,
        "snd_wscale": c.snd_wscale,
        "rcv_wscale": c.rcv_wscale,
        "sack": c.sack,
        "timestamps": ts,
        "ecn": c.ecn,
        "snd_wnd": c.snd_wnd,
        "syncookie": c.from_cookie,
        "state": match c.state { ChildState::Established => "ESTABLISHED", ChildState::CloseWait => "CLOSE_WAIT" },
        "data_len": c.data.len(),
        "data_hex": hex,
        "data_text": String::from_utf8_lossy(&c.data[..c.data.len().min(DATA_SHOWN)]),
    })
    .to_string()
}
