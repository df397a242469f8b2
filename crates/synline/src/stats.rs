//! `synline stats`: the counters in nstat's format, read from a running daemon's stats socket.

use std::fmt::Write as _;
use synline_core::Snapshot;

/// Default path of the daemon's stats socket.
pub const DEFAULT_SOCKET: &str = "/run/synline/stats.sock";

/// nstat's layout: `#kernel`-style header, then name, value and rate columns.
pub fn nstat(s: &Snapshot, extra: &[(String, u64)]) -> String {
    let mut out = String::from("#synline\n");
    for (name, v) in s
        .iter()
        .map(|(n, v)| (n.to_string(), v))
        .chain(extra.iter().cloned())
    {
        let _ = writeln!(out, "{name:<32}{v:<19}0.0");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nstat_layout() {
        let s = Snapshot::default();
        let text = nstat(&s, &[("SynlineXdpRedirected".into(), 7)]);
        assert!(text.starts_with("#synline\n"));
        assert!(text.contains("TcpExtListenOverflows           0                  0.0\n"));
        assert!(text.contains("SynlineXdpRedirected            7                  0.0\n"));
    }
}
