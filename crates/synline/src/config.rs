//! The daemon's configuration: a TOML file or `--listen` flags, every listener setting of the
//! spec under the name Linux gives it, so an operator can carry a kernel configuration over.
//!
//! ```toml
//! [stack]
//! somaxconn = 4096          # net.core.somaxconn
//! max_requests = 1048576    # hard cap on live request socks (the memory bound)
//!
//! [[listener]]
//! address = "198.18.0.1:8080"
//! backlog = 4096                 # listen(2) backlog, capped by somaxconn
//! tcp_syncookies = 1             # 0 never, 1 when the SYN queue is full, 2 always
//! tcp_synack_retries = 5         # TCP_SYNCNT
//! tcp_abort_on_overflow = 0
//! TCP_DEFER_ACCEPT = 0           # seconds
//! TCP_MAXSEG = 0                 # 0: unset
//! IP_TTL = 64                    # IPv6: hop limit
//! IPV6_TCLASS = 0
//! tcp_timestamps = 1             # 0 off, 1 random offset, 2 zero offset
//! tcp_ecn = 2
//! tcp_sack = 1
//! tcp_window_scaling = 1
//! tcp_rmem = [4096, 131072, 33554432]
//! mtu = 1500                     # route MTU: the MSS we announce is MTU - 40 (IPv6: 60)
//! ```
//! On the command line: `--listen 198.18.0.1:8080,backlog=128,tcp_syncookies=2,IP_TTL=32`
//! (`syncookies=` and the other keys without their `tcp_` prefix are accepted too).

use anyhow::Result;
use std::net::SocketAddr;
use std::path::Path;
use synline_core::{ListenerConfig, StackConfig, SyncookieMode};

/// One listener: address, backlog and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub addr: SocketAddr,
    pub backlog: i32,
    pub config: ListenerConfig,
    /// Which of the settings the application's own socket also has were given here: those
    /// override what the kernel handoff reads from the application's listener.
    pub given: Given,
}

/// Settings given explicitly (in the file or on `--listen`), rather than defaulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Given {
    pub backlog: bool,
    pub defer_accept: bool,
    pub maxseg: bool,
    pub timestamps: bool,
    pub sack: bool,
    pub window_scaling: bool,
    pub syncookies: bool,
}

/// Everything the daemon is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub stack: StackConfig,
    pub listeners: Vec<ListenerSpec>,
}

/// Every problem of a configuration, each naming where it is (file and listener, or the
/// `--listen` flag), the key, the value and the rule: `synline check` prints them all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<String>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_slice() {
            [one] => f.write_str(one),
            all => {
                write!(f, "{} problems in the configuration:", all.len())?;
                for p in all {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Problems {}

/// Default backlog when none is given: somaxconn, as `listen(fd, SOMAXCONN)` would.
const DEFAULT_BACKLOG: i32 = 4096;

/// A value as the file or a flag gives it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(i64),
    Ints(Vec<i64>),
    Other(String),
}

impl Val {
    fn from_toml(v: &toml::Value) -> Val {
        match v {
            toml::Value::Integer(i) => Val::Int(*i),
            toml::Value::Array(a) if a.iter().all(|x| x.is_integer()) => {
                Val::Ints(a.iter().filter_map(|x| x.as_integer()).collect())
            }
            other => Val::Other(other.to_string()),
        }
    }

    fn from_flag(key: &str, v: &str) -> Val {
        let v = v.trim();
        if key.ends_with("rmem") {
            if let Ok(n) = v
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<i64>, _>>()
            {
                return Val::Ints(n);
            }
        }
        v.parse()
            .map_or_else(|_| Val::Other(v.to_string()), Val::Int)
    }

    /// An integer in `lo..=hi`, or the problem in words.
    fn int(&self, key: &str, lo: i64, hi: i64, rule: &str) -> Result<i64, String> {
        match self {
            Val::Int(i) if (lo..=hi).contains(i) => Ok(*i),
            Val::Int(i) => Err(format!("{key} must be {rule}, not {i}")),
            Val::Ints(_) => Err(format!("{key} must be {rule}, not a list")),
            Val::Other(s) => Err(format!("{key} must be {rule}, not {s:?}")),
        }
    }
}

/// A listener being built from its keys.
struct Draft {
    backlog: Option<i32>,
    config: ListenerConfig,
    syncnt: Option<u8>,
    given: Given,
}

impl Draft {
    fn new() -> Self {
        Draft {
            backlog: None,
            config: ListenerConfig::default(),
            syncnt: None,
            given: Given::default(),
        }
    }

    /// One key. Names are Linux's (sysctls and socket options); the short forms without
    /// `tcp_` and in lower case are taken too.
    fn set(&mut self, key: &str, v: &Val) -> Result<(), String> {
        let c = &mut self.config;
        let flag01 = |k| v.int(k, 0, 1, "0 or 1").map(|i| i == 1);
        let tri = |k| v.int(k, 0, 2, "0, 1 or 2").map(|i| i as u8);
        match key {
            "backlog" => {
                let b = v.int(
                    key,
                    i64::from(i32::MIN),
                    i64::from(i32::MAX),
                    "an int (listen(2)'s backlog)",
                )?;
                self.backlog = Some(b as i32);
                self.given.backlog = true;
            }
            "tcp_syncookies" | "syncookies" => {
                let m = tri("tcp_syncookies")?;
                c.syncookies = SyncookieMode::from_sysctl(m).expect("0..=2");
                self.given.syncookies = true;
            }
            "tcp_synack_retries" | "synack_retries" => {
                c.synack_retries = v.int(
                    "tcp_synack_retries",
                    0,
                    127,
                    "0..=127 (MAX_TCP_SYNCNT; 0: no retransmission)",
                )? as u8;
            }
            "TCP_SYNCNT" | "syncnt" => {
                // setsockopt(TCP_SYNCNT) takes 1..=MAX_TCP_SYNCNT; it overrides the sysctl.
                self.syncnt = Some(v.int("TCP_SYNCNT", 1, 127, "1..=127 (MAX_TCP_SYNCNT)")? as u8);
            }
            "tcp_abort_on_overflow" | "abort_on_overflow" => {
                c.abort_on_overflow = flag01("tcp_abort_on_overflow")?;
            }
            "TCP_DEFER_ACCEPT" | "defer_accept" => {
                c.defer_accept_secs = v.int(
                    "TCP_DEFER_ACCEPT",
                    0,
                    i64::from(i32::MAX),
                    "0..=2147483647 seconds",
                )? as u32;
                self.given.defer_accept = true;
            }
            "TCP_MAXSEG" | "maxseg" => {
                let m = v.int("TCP_MAXSEG", 0, 32767, "0 (unset) or 88..=32767")?;
                if m != 0 && m < 88 {
                    return Err(format!(
                        "TCP_MAXSEG must be 0 (unset) or 88..=32767, not {m}"
                    ));
                }
                c.maxseg = m as u16;
                self.given.maxseg = true;
            }
            "IP_TTL" | "ttl" => c.ttl = v.int("IP_TTL", 1, 255, "1..=255")? as u8,
            "IPV6_TCLASS" | "tclass" => c.tclass = v.int("IPV6_TCLASS", 0, 255, "0..=255")? as u8,
            "tcp_timestamps" | "timestamps" => {
                c.timestamps = tri("tcp_timestamps")?;
                self.given.timestamps = true;
            }
            "tcp_ecn" | "ecn" => c.ecn = tri("tcp_ecn")?,
            "tcp_sack" | "sack" => {
                c.sack = flag01("tcp_sack")?;
                self.given.sack = true;
            }
            "tcp_window_scaling" | "window_scaling" => {
                c.window_scaling = flag01("tcp_window_scaling")?;
                self.given.window_scaling = true;
            }
            "tcp_rmem" | "rmem" => {
                let rule = "three numbers min <= default <= max, each 1..=2147483647";
                match v {
                    Val::Ints(n)
                        if n.len() == 3
                            && n.iter().all(|x| (1..=i64::from(i32::MAX)).contains(x))
                            && n[0] <= n[1]
                            && n[1] <= n[2] =>
                    {
                        c.rmem = [n[0] as u32, n[1] as u32, n[2] as u32];
                    }
                    Val::Ints(n) => return Err(format!("tcp_rmem must be {rule}, not {n:?}")),
                    _ => return Err(format!("tcp_rmem must be {rule}")),
                }
            }
            "mtu" => c.mtu = v.int("mtu", 576, 65535, "576..=65535")? as u16,
            other => return Err(format!("unknown setting {other:?}")),
        }
        Ok(())
    }

    fn finish(mut self, addr: SocketAddr) -> Result<ListenerSpec, String> {
        if let Some(n) = self.syncnt {
            self.config.synack_retries = n;
        }
        // Linux's limits again, as the engine checks them (it refuses the same with EINVAL).
        self.config.validate().map_err(|e| e.to_string())?;
        Ok(ListenerSpec {
            addr,
            backlog: self.backlog.unwrap_or(DEFAULT_BACKLOG),
            config: self.config,
            given: self.given,
        })
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not ADDR:PORT (IPv6: [ADDR]:PORT)"))?;
    if addr.port() == 0 {
        return Err(format!("{addr}: port 0 is not a port to listen on"));
    }
    Ok(addr)
}

impl Config {
    fn empty() -> Config {
        Config {
            stack: StackConfig::default(),
            listeners: Vec::new(),
        }
    }

    /// Parses a TOML configuration; `origin` names it in the problems (a file's path).
    fn add_toml(&mut self, origin: &str, text: &str, problems: &mut Vec<String>) {
        let table: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{origin}: {}", e.to_string().trim_end()));
                return;
            }
        };
        for (section, value) in &table {
            match (section.as_str(), value) {
                ("stack", toml::Value::Table(t)) => {
                    for (k, v) in t {
                        let v = Val::from_toml(v);
                        let r = match k.as_str() {
                            "somaxconn" => v
                                .int(
                                    k,
                                    0,
                                    i64::from(i32::MAX),
                                    "0..=2147483647 (net.core.somaxconn)",
                                )
                                .map(|n| self.stack.somaxconn = n as u32),
                            "max_requests" => v
                                .int(k, 1, 1 << 32, "1..=4294967296")
                                .map(|n| self.stack.max_requests = n as usize),
                            other => Err(format!("unknown setting {other:?}")),
                        };
                        if let Err(e) = r {
                            problems.push(format!("{origin}: [stack]: {e}"));
                        }
                    }
                }
                ("listener", toml::Value::Array(ls)) => {
                    for (i, l) in ls.iter().enumerate() {
                        let at = format!("{origin}: [[listener]] #{}", i + 1);
                        let Some(t) = l.as_table() else {
                            problems.push(format!("{at}: not a table"));
                            continue;
                        };
                        let addr = match t.get("address").map(|a| a.as_str()) {
                            Some(Some(a)) => parse_addr(a),
                            Some(None) => Err("address must be a string \"ADDR:PORT\"".into()),
                            None => Err("no address = \"ADDR:PORT\"".into()),
                        };
                        let at = match &addr {
                            Ok(a) => format!("{at} ({a})"),
                            Err(_) => at,
                        };
                        let keys = t
                            .iter()
                            .filter(|(k, _)| *k != "address")
                            .map(|(k, v)| Ok((k.as_str(), Val::from_toml(v))));
                        self.add_listener(&at, addr, keys, problems);
                    }
                }
                ("stack", _) => problems.push(format!("{origin}: stack must be a table [stack]")),
                ("listener", _) => problems.push(format!(
                    "{origin}: listener must be an array of tables [[listener]]"
                )),
                (other, _) => problems.push(format!(
                    "{origin}: unknown section {other:?} (there are [stack] and [[listener]])"
                )),
            }
        }
    }

    /// Adds a `--listen ADDR:PORT[,key=value...]` flag.
    fn add_listen_flag(&mut self, flag: &str, problems: &mut Vec<String>) {
        let at = format!("--listen {flag}");
        let mut parts = flag.split(',');
        let addr = parse_addr(parts.next().unwrap_or_default());
        let keys = parts.map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim(), Val::from_flag(k.trim(), v))),
            None => Err(format!("{kv:?} is not key=value")),
        });
        self.add_listener(&at, addr, keys, problems);
    }

    /// One listener from its address and keys (the file's or a flag's), each problem named
    /// under `at`; added when there is none.
    fn add_listener<'k>(
        &mut self,
        at: &str,
        addr: Result<SocketAddr, String>,
        keys: impl Iterator<Item = Result<(&'k str, Val), String>>,
        problems: &mut Vec<String>,
    ) {
        let mut d = Draft::new();
        let mut ok = true;
        if let Err(e) = &addr {
            problems.push(format!("{at}: {e}"));
            ok = false;
        }
        for kv in keys {
            if let Err(e) = kv.and_then(|(k, v)| d.set(k, &v)) {
                problems.push(format!("{at}: {e}"));
                ok = false;
            }
        }
        if let (true, Ok(a)) = (ok, addr) {
            match d.finish(a) {
                Ok(spec) => self.listeners.push(spec),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
    }

    /// Parses a TOML configuration.
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<Config, Problems> {
        let mut c = Config::empty();
        let mut problems = Vec::new();
        c.add_toml("configuration", text, &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(Problems(problems))
        }
    }

    /// Configuration from an optional file and `--listen` flags, with every problem found
    /// (not only the first): at least one listener, no address twice.
    pub fn check(file: Option<&Path>, listen: &[String]) -> Result<Config, Problems> {
        let mut c = Config::empty();
        let mut problems = Vec::new();
        if let Some(p) = file {
            match std::fs::read_to_string(p) {
                Ok(text) => c.add_toml(&p.display().to_string(), &text, &mut problems),
                Err(e) => problems.push(format!("{}: {e}", p.display())),
            }
        }
        for l in listen {
            c.add_listen_flag(l, &mut problems);
        }
        let mut seen = std::collections::HashSet::new();
        for l in &c.listeners {
            if !seen.insert(l.addr) {
                problems.push(format!("listener {} is configured twice", l.addr));
            }
        }
        if c.listeners.is_empty() && problems.is_empty() {
            problems.push(
                "no listener: give --listen ADDR:PORT or a --config file with [[listener]]".into(),
            );
        }
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(Problems(problems))
        }
    }

    /// [`Config::check`] as an error for the daemon's start.
    pub fn load(file: Option<&Path>, listen: &[String]) -> Result<Config> {
        Ok(Config::check(file, listen)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_linux_defaults() {
        let c = Config::from_toml("[[listener]]\naddress = \"198.18.0.1:80\"\n").unwrap();
        assert_eq!(c.listeners[0].config, ListenerConfig::default());
        assert_eq!(c.listeners[0].backlog, 4096);
        assert_eq!(c.stack.somaxconn, 4096);
    }

    #[test]
    fn every_key_in_toml() {
        let c = Config::from_toml(
            r#"
            [stack]
            somaxconn = 128
            max_requests = 1000
            [[listener]]
            address = "[2001:2::1]:443"
            backlog = 16
            tcp_syncookies = 2
            tcp_synack_retries = 3
            tcp_abort_on_overflow = 1
            TCP_DEFER_ACCEPT = 5
            TCP_MAXSEG = 1200
            IP_TTL = 32
            IPV6_TCLASS = 8
            tcp_timestamps = 2
            tcp_ecn = 0
            tcp_sack = 0
            tcp_window_scaling = 0
            tcp_rmem = [4096, 131072, 6291456]
            mtu = 9000
            "#,
        )
        .unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.addr, "[2001:2::1]:443".parse().unwrap());
        assert_eq!(l.backlog, 16);
        assert_eq!(
            l.config,
            ListenerConfig {
                syncookies: SyncookieMode::Always,
                synack_retries: 3,
                abort_on_overflow: true,
                defer_accept_secs: 5,
                maxseg: 1200,
                ttl: 32,
                tclass: 8,
                rmem: [4096, 131072, 6291456],
                ecn: 0,
                timestamps: 2,
                sack: false,
                window_scaling: false,
                mtu: 9000,
            }
        );
        assert_eq!((c.stack.somaxconn, c.stack.max_requests), (128, 1000));
    }

    fn flag(f: &str) -> Result<Config, Problems> {
        Config::check(None, &[f.to_string()])
    }

    #[test]
    fn listen_flags() {
        let c = flag("198.18.0.1:8080,backlog=16,syncookies=2,IP_TTL=7,tcp_rmem=1 2 3").unwrap();
        let l = &c.listeners[0];
        assert_eq!(
            (l.backlog, l.config.syncookies, l.config.ttl, l.config.rmem),
            (16, SyncookieMode::Always, 7, [1, 2, 3])
        );
        assert!(flag("198.18.0.1:8080,bogus=1").is_err());
        assert!(flag("198.18.0.1:8080,tcp_syncookies=3").is_err());
        assert!(flag("not-an-address").is_err());
        assert!(flag("198.18.0.1:0").is_err());
    }

    /// Out-of-range values name the key, the value and the rule (they used to say "out of
    /// range integral type conversion attempted").
    #[test]
    fn out_of_range_values_name_their_key() {
        for (f, want) in [
            (
                "198.18.0.1:80,mtu=70000",
                "mtu must be 576..=65535, not 70000",
            ),
            (
                "198.18.0.1:80,TCP_MAXSEG=99999",
                "TCP_MAXSEG must be 0 (unset) or 88..=32767, not 99999",
            ),
            (
                "198.18.0.1:80,TCP_MAXSEG=1",
                "TCP_MAXSEG must be 0 (unset) or 88..=32767, not 1",
            ),
            (
                "198.18.0.1:80,tcp_synack_retries=255",
                "tcp_synack_retries must be 0..=127",
            ),
            ("198.18.0.1:80,TCP_SYNCNT=0", "TCP_SYNCNT must be 1..=127"),
            (
                "198.18.0.1:80,IP_TTL=300",
                "IP_TTL must be 1..=255, not 300",
            ),
        ] {
            let e = flag(f).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(f), "{f}: {e}");
        }
        let e = Config::from_toml("[[listener]]\naddress = \"198.18.0.1:80\"\nmtu = 70000\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("198.18.0.1:80") && e.contains("mtu must be 576..=65535, not 70000"),
            "{e}"
        );
    }

    /// tcp_synack_retries=0 stays 0 (no retransmission); TCP_SYNCNT overrides the sysctl.
    #[test]
    fn synack_retries_zero_is_kept_and_syncnt_overrides() {
        let c = flag("198.18.0.1:80,tcp_synack_retries=0").unwrap();
        assert_eq!(c.listeners[0].config.synack_retries, 0);
        let c = flag("198.18.0.1:80,tcp_synack_retries=0,TCP_SYNCNT=3").unwrap();
        assert_eq!(c.listeners[0].config.synack_retries, 3);
    }

    /// Every problem is named, not only the first, each with its file and listener.
    #[test]
    fn every_problem_is_named_with_its_file() {
        let dir = std::env::temp_dir().join(format!("synline-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(
            &p,
            "[stack]\nsomaxconn = -1\n[[listener]]\naddress = \"198.18.0.1:80\"\nmtu = 70000\ntcp_sack = 2\n[[listener]]\naddress = \"nowhere\"\n[[listener]]\naddress = \"198.18.0.1:81\"\n[[listener]]\naddress = \"198.18.0.1:81\"\n",
        )
        .unwrap();
        let e = Config::check(Some(&p), &["198.18.0.1:82,mtu=1".to_string()]).unwrap_err();
        let file = p.display().to_string();
        assert_eq!(e.0.len(), 6, "{e}");
        for want in [
            "[stack]: somaxconn must be",
            "[[listener]] #1 (198.18.0.1:80): mtu must be",
            "[[listener]] #1 (198.18.0.1:80): tcp_sack must be 0 or 1, not 2",
            "[[listener]] #2: \"nowhere\" is not ADDR:PORT",
        ] {
            assert!(
                e.0.iter().any(|l| l.starts_with(&file) && l.contains(want)),
                "{want}: {e}"
            );
        }
        assert!(
            e.0.iter()
                .any(|l| l == "listener 198.18.0.1:81 is configured twice"),
            "{e}"
        );
        assert!(
            e.0.iter()
                .any(|l| l.starts_with("--listen 198.18.0.1:82,mtu=1: mtu")),
            "{e}"
        );
        // A syntax error names the file and the line.
        std::fs::write(&p, "[[listener]\naddress = 1\n").unwrap();
        let e = Config::check(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.starts_with(&file) && e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_toml(
            "[[listener]]\naddress = \"198.18.0.1:80\"\ntcp_syncokies = 1\n"
        )
        .is_err());
    }
}
