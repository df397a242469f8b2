//! The key file: the daemon's secrets (ISN, timestamp offsets, flow labels, the request
//! table's seed, and the SYN-cookie pairs) kept across restarts.
//!
//! A cookie is the only state of a handshake in cookie mode, so a restart that draws new
//! secrets fails every cookie issued just before it: the client's third ACK finds no request
//! and a cookie the new secrets do not know, and gets an RST. With the secrets in a file, an
//! upgrade or a restart breaks no cookie in flight (a stateful handshake in flight, whose
//! request sock lived in the old process, is still reset). The file is created on first start (0600, from
//! the kernel's random source), rewritten atomically (a temporary file renamed over it) at
//! each cookie rotation, and refused when anyone but its owner may read it.
//!
//! ```text
//! # synline secrets: private to the daemon (0600); rotated by it
//! version 1
//! isn 0f3a...            16 bytes, hex
//! ts_off ...
//! flow_label ...
//! table_seed 8 bytes, hex
//! cookie HEX HEX UNIX    the current pair and when it became current (wall clock, seconds)
//! retired HEX HEX UNIX   a previous pair and when it was retired (newest first, at most 2)
//! ```
//!
//! Wall-clock times, because the engine's monotonic clock does not survive a reboot: a
//! retired pair is restored only while its cookies can still live (two minutes).

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use synline_core::Secrets;

/// How long a retired cookie pair validates (K-5: a cookie lives two minutes).
const COOKIE_LIFE: Duration = Duration::from_secs(120);
/// Retired pairs kept (the engine keeps as many).
const RETIRED: usize = 2;

/// A cookie secret pair with a wall-clock time (became current, or was retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub keys: [[u8; 16]; 2],
    pub at: u64,
}

/// What the file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    pub secrets: Secrets,
    /// When the current cookie pair became current.
    pub rotated_at: u64,
    /// Retired pairs, newest first.
    pub retired: Vec<Pair>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Fresh secrets from the kernel's random source.
pub fn random_secrets() -> Result<Secrets> {
    let mut b = [0u8; 16 * 5 + 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("read /dev/urandom for the ISN, timestamp and cookie secrets")?;
    let k = |i: usize| -> [u8; 16] { b[i * 16..i * 16 + 16].try_into().expect("16 bytes") };
    Ok(Secrets {
        isn: k(0),
        ts_off: k(1),
        flow_label: k(2),
        cookie: [k(3), k(4)],
        table_seed: u64::from_le_bytes(b[80..88].try_into().expect("8 bytes")),
    })
}

/// A fresh cookie pair.
pub fn random_cookie_pair() -> Result<[[u8; 16]; 2]> {
    Ok(random_secrets()?.cookie)
}

impl Keys {
    fn render(&self) -> String {
        let s = &self.secrets;
        let mut out = String::from(
            "# synline secrets: private to the daemon (0600); rotated by it\nversion 1\n",
        );
        let _ = writeln!(out, "isn {}", hex(&s.isn));
        let _ = writeln!(out, "ts_off {}", hex(&s.ts_off));
        let _ = writeln!(out, "flow_label {}", hex(&s.flow_label));
        let _ = writeln!(out, "table_seed {}", hex(&s.table_seed.to_be_bytes()));
        let _ = writeln!(
            out,
            "cookie {} {} {}",
            hex(&s.cookie[0]),
            hex(&s.cookie[1]),
            self.rotated_at
        );
        for p in &self.retired {
            let _ = writeln!(
                out,
                "retired {} {} {}",
                hex(&p.keys[0]),
                hex(&p.keys[1]),
                p.at
            );
        }
        out
    }

    fn parse(text: &str) -> Result<Keys, String> {
        let (mut isn, mut ts_off, mut flow_label, mut seed, mut cookie) =
            (None, None, None, None, None);
        let mut retired = Vec::new();
        let mut version = false;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The line itself is not repeated: it may hold a secret.
            let key = line.split_whitespace().next().unwrap_or("").to_string();
            let bad = || format!("line {}: {key:?} line is not understood", n + 1);
            let f: Vec<&str> = line.split_whitespace().collect();
            let pair = |f: &[&str]| -> Option<Pair> {
                Some(Pair {
                    keys: [unhex(f.get(1)?)?, unhex(f.get(2)?)?],
                    at: f.get(3)?.parse().ok()?,
                })
            };
            match f[0] {
                "version" if f.get(1) == Some(&"1") => version = true,
                "isn" => isn = Some(f.get(1).and_then(|h| unhex(h)).ok_or_else(bad)?),
                "ts_off" => ts_off = Some(f.get(1).and_then(|h| unhex(h)).ok_or_else(bad)?),
                "flow_label" => flow_label = Some(f.get(1).and_then(|h| unhex(h)).ok_or_else(bad)?),
                "table_seed" => {
                    seed = Some(u64::from_be_bytes(
                        f.get(1).and_then(|h| unhex(h)).ok_or_else(bad)?,
                    ))
                }
                "cookie" => cookie = Some(pair(&f).ok_or_else(bad)?),
                "retired" if retired.len() < RETIRED => retired.push(pair(&f).ok_or_else(bad)?),
                "retired" => {}
                _ => return Err(bad()),
            }
        }
        let missing = |k: &str| format!("no {k} line");
        if !version {
            return Err("no \"version 1\" line".into());
        }
        let cookie = cookie.ok_or_else(|| missing("cookie"))?;
        Ok(Keys {
            secrets: Secrets {
                isn: isn.ok_or_else(|| missing("isn"))?,
                ts_off: ts_off.ok_or_else(|| missing("ts_off"))?,
                flow_label: flow_label.ok_or_else(|| missing("flow_label"))?,
                cookie: cookie.keys,
                table_seed: seed.ok_or_else(|| missing("table_seed"))?,
            },
            rotated_at: cookie.at,
            retired,
        })
    }

    /// Makes `keys` the current cookie pair, retiring the current one now.
    pub fn rotate(&mut self, keys: [[u8; 16]; 2]) {
        let now = unix_now();
        self.retired.insert(
            0,
            Pair {
                keys: self.secrets.cookie,
                at: now,
            },
        );
        self.retired.truncate(RETIRED);
        self.secrets.cookie = keys;
        self.rotated_at = now;
    }

    /// The retired pairs whose cookies may still be alive, oldest first, each with how long
    /// ago it was retired: what the engine is given after a restart.
    pub fn live_retired(&self) -> Vec<([[u8; 16]; 2], Duration)> {
        let now = unix_now();
        self.retired
            .iter()
            .rev()
            .map(|p| (p.keys, Duration::from_secs(now.saturating_sub(p.at))))
            .filter(|(_, ago)| *ago < COOKIE_LIFE)
            .collect()
    }

    /// Seconds since the current pair became current.
    pub fn age(&self) -> Duration {
        Duration::from_secs(unix_now().saturating_sub(self.rotated_at))
    }
}

/// The key file of a daemon.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        KeyFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Keys> {
        let text = read_private(&self.path, "key file")?;
        Keys::parse(&text).map_err(|e| anyhow::anyhow!("key file {}: {e}", self.path.display()))
    }

    /// The keys in the file; `None` when there is no file.
    pub fn read_if_any(&self) -> Result<Option<Keys>> {
        if std::fs::symlink_metadata(&self.path).is_err() {
            return Ok(None);
        }
        self.read().map(Some)
    }

    /// New keys, written to a new file (0600).
    pub fn create(&self) -> Result<Keys> {
        let keys = Keys {
            secrets: random_secrets()?,
            rotated_at: unix_now(),
            retired: Vec::new(),
        };
        self.write(&keys)?;
        Ok(keys)
    }

    /// The keys in the file, or new ones written to a new file when there is none; `true`
    /// when the file was created.
    #[cfg(test)]
    pub fn load_or_create(&self) -> Result<(Keys, bool)> {
        match self.read_if_any()? {
            Some(k) => Ok((k, false)),
            None => self.create().map(|k| (k, true)),
        }
    }

    /// Writes `keys` atomically: a temporary file (0600) beside it, renamed over it.
    pub fn write(&self, keys: &Keys) -> Result<()> {
        write_private(&self.path, &keys.render())
    }
}

/// The text of a secrets file, refused unless it is a regular file of this daemon's user that
/// nobody else may read. `what` names the file in errors.
pub fn read_private(p: &Path, what: &str) -> Result<String> {
    let meta = std::fs::metadata(p).with_context(|| format!("stat {what} {}", p.display()))?;
    if !meta.is_file() {
        bail!("{what} {} is not a regular file", p.display());
    }
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "{what} {} is readable by others (mode {:o}): the secrets behind every cookie would leak; `chmod 600 {}`",
            p.display(),
            meta.permissions().mode() & 0o777,
            p.display()
        );
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        bail!(
            "{what} {} belongs to uid {}, not to this daemon's uid {euid}",
            p.display(),
            meta.uid()
        );
    }
    std::fs::read_to_string(p).with_context(|| format!("read {what} {}", p.display()))
}

/// Writes `text` to `p` atomically: a temporary file (0600) beside it, synced, renamed over it.
pub fn write_private(p: &Path, text: &str) -> Result<()> {
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    let r = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, p));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("write {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("synline-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn created_private_then_read_back_with_rotations() {
        let d = dir("roundtrip");
        let kf = KeyFile::new(d.join("sub/q.key"));
        let (mut k, created) = kf.load_or_create().unwrap();
        assert!(created);
        let mode = std::fs::metadata(kf.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        k.rotate([[1; 16], [2; 16]]);
        k.rotate([[3; 16], [4; 16]]);
        k.rotate([[5; 16], [6; 16]]);
        kf.write(&k).unwrap();
        let (back, created) = kf.load_or_create().unwrap();
        assert!(!created);
        assert_eq!(back, k);
        assert_eq!(back.secrets.cookie, [[5; 16], [6; 16]]);
        assert_eq!(back.retired.len(), 2);
        assert_eq!(back.retired[0].keys, [[3; 16], [4; 16]]);
        // Just retired: both still live, oldest first.
        let live = back.live_retired();
        assert_eq!(live.len(), 2);
        assert_eq!(live[0].0, [[1; 16], [2; 16]]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        let d = dir("perms");
        let kf = KeyFile::new(d.join("k"));
        kf.load_or_create().unwrap();
        std::fs::set_permissions(kf.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = kf.load_or_create().unwrap_err().to_string();
        assert!(
            e.contains("readable by others") && e.contains("chmod 600"),
            "{e}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn damaged_files_are_named() {
        for (text, want) in [
            ("", "no \"version 1\" line"),
            ("version 1\nisn zz\n", "line 2"),
            ("version 1\nbogus 1\n", "line 2"),
        ] {
            assert!(Keys::parse(text).unwrap_err().contains(want), "{text:?}");
        }
    }

    #[test]
    fn old_retired_pairs_are_not_restored() {
        let mut k = Keys {
            secrets: random_secrets().unwrap(),
            rotated_at: 0,
            retired: vec![Pair {
                keys: [[9; 16]; 2],
                at: unix_now() - 121,
            }],
        };
        assert!(k.live_retired().is_empty());
        k.retired[0].at = unix_now() - 60;
        assert_eq!(k.live_retired().len(), 1);
    }
}
