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

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStack {
    somaxconn: Option<u32>,
    max_requests: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    address: String,
    backlog: Option<i32>,
    tcp_syncookies: Option<u8>,
    tcp_synack_retries: Option<u8>,
    tcp_abort_on_overflow: Option<u8>,
    #[serde(rename = "TCP_DEFER_ACCEPT")]
    defer_accept: Option<u32>,
    #[serde(rename = "TCP_MAXSEG")]
    maxseg: Option<u16>,
    #[serde(rename = "IP_TTL")]
    ttl: Option<u8>,
    #[serde(rename = "IPV6_TCLASS")]
    tclass: Option<u8>,
    tcp_timestamps: Option<u8>,
    tcp_ecn: Option<u8>,
    tcp_sack: Option<u8>,
    tcp_window_scaling: Option<u8>,
    tcp_rmem: Option<[u32; 3]>,
    mtu: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    stack: FileStack,
    #[serde(default)]
    listener: Vec<FileListener>,
}

/// Default backlog when none is given: somaxconn, as `listen(fd, SOMAXCONN)` would.
const DEFAULT_BACKLOG: i32 = 4096;

fn bool01(key: &str, v: u8) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => bail!("{key} must be 0 or 1, not {v}"),
    }
}

impl FileListener {
    fn into_spec(self) -> Result<ListenerSpec> {
        let addr: SocketAddr = self
            .address
            .parse()
            .with_context(|| format!("listener address {:?}", self.address))?;
        if addr.port() == 0 {
            bail!("listener {addr}: port 0 is not a port to listen on");
        }
        let mut c = ListenerConfig::default();
        if let Some(v) = self.tcp_syncookies {
            c.syncookies = SyncookieMode::from_sysctl(v)
                .with_context(|| format!("tcp_syncookies must be 0, 1 or 2, not {v}"))?;
        }
        if let Some(v) = self.tcp_synack_retries {
            c.synack_retries = v;
        }
        if let Some(v) = self.tcp_abort_on_overflow {
            c.abort_on_overflow = bool01("tcp_abort_on_overflow", v)?;
        }
        if let Some(v) = self.defer_accept {
            c.defer_accept_secs = v;
        }
        if let Some(v) = self.maxseg {
            c.maxseg = v;
        }
        if let Some(v) = self.ttl {
            c.ttl = v;
        }
        if let Some(v) = self.tclass {
            c.tclass = v;
        }
        if let Some(v) = self.tcp_timestamps {
            c.timestamps = v;
        }
        if let Some(v) = self.tcp_ecn {
            c.ecn = v;
        }
        if let Some(v) = self.tcp_sack {
            c.sack = bool01("tcp_sack", v)?;
        }
        if let Some(v) = self.tcp_window_scaling {
            c.window_scaling = bool01("tcp_window_scaling", v)?;
        }
        if let Some(v) = self.tcp_rmem {
            c.rmem = v;
        }
        if let Some(v) = self.mtu {
            c.mtu = v;
        }
        // Linux's limits, checked by the engine (which refuses the same config with EINVAL).
        c.validate()
            .map_err(|e| anyhow::anyhow!("listener {addr}: {e}"))?;
        Ok(ListenerSpec {
            addr,
            backlog: self.backlog.unwrap_or(DEFAULT_BACKLOG),
            config: c,
            given: Given {
                backlog: self.backlog.is_some(),
                defer_accept: self.defer_accept.is_some(),
                maxseg: self.maxseg.is_some(),
                timestamps: self.tcp_timestamps.is_some(),
                sack: self.tcp_sack.is_some(),
                window_scaling: self.tcp_window_scaling.is_some(),
                syncookies: self.tcp_syncookies.is_some(),
            },
        })
    }
}

impl Config {
    /// Parses a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config> {
        let f: File = toml::from_str(text).context("configuration")?;
        let mut stack = StackConfig::default();
        if let Some(v) = f.stack.somaxconn {
            stack.somaxconn = v;
        }
        if let Some(v) = f.stack.max_requests {
            stack.max_requests = v;
        }
        let listeners = f
            .listener
            .into_iter()
            .map(FileListener::into_spec)
            .collect::<Result<Vec<_>>>()?;
        Ok(Config { stack, listeners })
    }

    /// Adds a `--listen ADDR:PORT[,key=value...]` flag.
    pub fn add_listen_flag(&mut self, flag: &str) -> Result<()> {
        let mut parts = flag.split(',');
        let address = parts.next().unwrap_or_default().trim().to_string();
        let mut l = FileListener {
            address,
            ..FileListener::default()
        };
        for kv in parts {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--listen {flag}: {kv:?} is not key=value"))?;
            let num = |v: &str| -> Result<u32> {
                v.trim()
                    .parse::<u32>()
                    .with_context(|| format!("--listen {flag}: {k}={v} is not a number"))
            };
            let small = |v: &str| -> Result<u8> {
                u8::try_from(num(v)?)
                    .with_context(|| format!("--listen {flag}: {k}={v} is too large"))
            };
            match k.trim() {
                "backlog" => {
                    l.backlog = Some(
                        v.trim()
                            .parse()
                            .with_context(|| format!("--listen {flag}: backlog={v}"))?,
                    )
                }
                "tcp_syncookies" | "syncookies" => l.tcp_syncookies = Some(small(v)?),
                "tcp_synack_retries" | "synack_retries" | "TCP_SYNCNT" => {
                    l.tcp_synack_retries = Some(small(v)?)
                }
                "tcp_abort_on_overflow" | "abort_on_overflow" => {
                    l.tcp_abort_on_overflow = Some(small(v)?)
                }
                "TCP_DEFER_ACCEPT" | "defer_accept" => l.defer_accept = Some(num(v)?),
                "TCP_MAXSEG" | "maxseg" => l.maxseg = Some(u16::try_from(num(v)?)?),
                "IP_TTL" | "ttl" => l.ttl = Some(small(v)?),
                "IPV6_TCLASS" | "tclass" => l.tclass = Some(small(v)?),
                "tcp_timestamps" | "timestamps" => l.tcp_timestamps = Some(small(v)?),
                "tcp_ecn" | "ecn" => l.tcp_ecn = Some(small(v)?),
                "tcp_sack" | "sack" => l.tcp_sack = Some(small(v)?),
                "tcp_window_scaling" | "window_scaling" => l.tcp_window_scaling = Some(small(v)?),
                "tcp_rmem" | "rmem" => {
                    let v: Vec<u32> = v
                        .split_whitespace()
                        .map(|x| x.parse())
                        .collect::<Result<_, _>>()
                        .with_context(|| {
                            format!(
                                "--listen {flag}: tcp_rmem takes three numbers separated by spaces"
                            )
                        })?;
                    l.tcp_rmem = Some(v.try_into().map_err(|_| {
                        anyhow::anyhow!("--listen {flag}: tcp_rmem takes three numbers")
                    })?);
                }
                "mtu" => l.mtu = Some(u16::try_from(num(v)?)?),
                other => bail!("--listen {flag}: unknown setting {other:?}"),
            }
        }
        self.listeners
            .push(l.into_spec().with_context(|| format!("--listen {flag}"))?);
        Ok(())
    }

    /// Configuration from an optional file and `--listen` flags; at least one listener.
    pub fn load(file: Option<&std::path::Path>, listen: &[String]) -> Result<Config> {
        let mut c = match file {
            Some(p) => Config::from_toml(
                &std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?,
            )?,
            None => Config {
                stack: StackConfig::default(),
                listeners: Vec::new(),
            },
        };
        for l in listen {
            c.add_listen_flag(l)?;
        }
        if c.listeners.is_empty() {
            bail!("no listener: give --listen ADDR:PORT or a --config file with [[listener]]");
        }
        Ok(c)
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

    #[test]
    fn listen_flags() {
        let mut c = Config {
            stack: StackConfig::default(),
            listeners: vec![],
        };
        c.add_listen_flag("198.18.0.1:8080,backlog=16,syncookies=2,IP_TTL=7,tcp_rmem=1 2 3")
            .unwrap();
        let l = &c.listeners[0];
        assert_eq!(
            (l.backlog, l.config.syncookies, l.config.ttl, l.config.rmem),
            (16, SyncookieMode::Always, 7, [1, 2, 3])
        );
        assert!(c.add_listen_flag("198.18.0.1:8080,bogus=1").is_err());
        assert!(c
            .add_listen_flag("198.18.0.1:8080,tcp_syncookies=3")
            .is_err());
        assert!(c.add_listen_flag("not-an-address").is_err());
        assert!(c.add_listen_flag("198.18.0.1:0").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_toml(
            "[[listener]]\naddress = \"198.18.0.1:80\"\ntcp_syncokies = 1\n"
        )
        .is_err());
    }
}
