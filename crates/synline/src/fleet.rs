//! Fleet keys: the secrets of every host behind one service address, derived from one master
//! secret, so that any host validates any host's cookie (README, "More than one machine").
//!
//! ```text
//!   master (32 bytes, the fleet key file, 0600, the same on every host)
//!     |
//!     +- HKDF-SHA256(master, info = "synline/v1/isn")         -> ISN key       (Q-3)
//!     +- HKDF-SHA256(master, info = "synline/v1/ts_off")      -> TS offset key (Q-4)
//!     +- HKDF-SHA256(master, info = "synline/v1/flow_label")  -> flow label key (V-5)
//!     +- HKDF-SHA256(master, info = "synline/v1/cookie" || epoch, 8 bytes big-endian)
//!                                                              -> cookie pair (K-1), 2 x 16 bytes
//!   epoch = floor(unix time / rotation period)
//! ```
//!
//! Every host computes the same pair for the same epoch, so rotation happens in step without
//! any message between hosts: at each epoch boundary every host makes the new pair current and
//! keeps the previous one for its cookies' two-minute life. Hosts must share the rotation
//! period (`--cookie-rotate`) and a clock (NTP): a host whose clock is behind by `d` refuses
//! cookies of the first `d` of each new epoch from a host already in it. The ts_off key is
//! shared because the cookie's options live in the TSval less that offset (K-6). The request
//! table's seed stays per host: it only has to be unguessable, not shared.
//!
//! HKDF (RFC 5869) from RustCrypto's `hkdf` with SHA-256: a standard KDF, where a home-made
//! construction over SipHash would have to argue its own security.

use crate::keyfile;
use anyhow::{bail, Context, Result};
use hkdf::Hkdf;
use sha2::Sha256;
use std::path::{Path, PathBuf};
use synline_core::Secrets;

/// The fleet's master secret.
#[derive(Clone)]
pub struct FleetKey {
    master: [u8; 32],
    path: PathBuf,
}

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FleetKey({})", self.path.display())
    }
}

const HEADER: &str =
    "# synline fleet master secret: the same file on every host of the fleet (0600)\n";

impl FleetKey {
    /// Reads a fleet key file (private to the daemon's user, as a key file).
    pub fn load(path: &Path) -> Result<FleetKey> {
        let text = keyfile::read_private(path, "fleet key")?;
        let hex: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<String>()
            .split_whitespace()
            .collect();
        let mut master = [0u8; 32];
        if hex.len() != 64 {
            bail!(
                "fleet key {}: 64 hex digits (32 bytes) expected, found {} characters",
                path.display(),
                hex.len()
            );
        }
        for (i, b) in master.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .with_context(|| format!("fleet key {}: not hex", path.display()))?;
        }
        Ok(FleetKey {
            master,
            path: path.to_path_buf(),
        })
    }

    /// Writes a new master secret to `path` (0600); refuses to replace an existing file.
    pub fn generate(path: &Path) -> Result<()> {
        if std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{} exists: a fleet key is made once and copied to every host",
                path.display()
            );
        }
        let r = keyfile::random_secrets()?;
        let mut master = [0u8; 32];
        master[..16].copy_from_slice(&r.isn);
        master[16..].copy_from_slice(&r.ts_off);
        let hex: String = master.iter().map(|b| format!("{b:02x}")).collect();
        keyfile::write_private(path, &format!("{HEADER}{hex}\n"))
    }

    fn derive<const N: usize>(&self, info: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        Hkdf::<Sha256>::new(None, &self.master)
            .expand(info, &mut out)
            .expect("N is far below 255 * 32");
        out
    }

    /// The cookie secret pair of `epoch`.
    pub fn cookie_pair(&self, epoch: u64) -> [[u8; 16]; 2] {
        let mut info = b"synline/v1/cookie".to_vec();
        info.extend_from_slice(&epoch.to_be_bytes());
        let k: [u8; 32] = self.derive(&info);
        [
            k[..16].try_into().expect("16 bytes"),
            k[16..].try_into().expect("16 bytes"),
        ]
    }

    /// The stack's secrets at `epoch`: shared ISN, ts_off and flow-label keys, the epoch's
    /// cookie pair, and this host's own table seed.
    pub fn secrets(&self, epoch: u64, table_seed: u64) -> Secrets {
        Secrets {
            isn: self.derive(b"synline/v1/isn"),
            ts_off: self.derive(b"synline/v1/ts_off"),
            flow_label: self.derive(b"synline/v1/flow_label"),
            cookie: self.cookie_pair(epoch),
            table_seed,
        }
    }
}

/// The epoch of `unix_secs` for a rotation period of `period_secs`.
pub fn epoch(unix_secs: u64, period_secs: u64) -> u64 {
    unix_secs / period_secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key(master: u8) -> FleetKey {
        FleetKey {
            master: [master; 32],
            path: PathBuf::new(),
        }
    }

    /// Same master, same epoch: the same pair on every host; another epoch or master: another.
    #[test]
    fn every_host_derives_the_same_pair_per_epoch() {
        assert_eq!(key(1).cookie_pair(7), key(1).cookie_pair(7));
        assert_ne!(key(1).cookie_pair(7), key(1).cookie_pair(8));
        assert_ne!(key(1).cookie_pair(7), key(2).cookie_pair(7));
        let (a, b) = (key(1).secrets(7, 1), key(1).secrets(7, 2));
        assert_eq!(
            (a.isn, a.ts_off, a.flow_label, a.cookie),
            (b.isn, b.ts_off, b.flow_label, b.cookie)
        );
        assert_ne!(a.table_seed, b.table_seed);
        assert_ne!(a.isn, a.ts_off);
        assert_eq!(epoch(1_796_299_131, 600), 2_993_831);
    }

    /// RFC 5869 test case 1 through the same crate call, so the KDF is the standard one.
    #[test]
    fn hkdf_is_rfc5869() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0..=12).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .unwrap();
        let hex: String = okm.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    #[test]
    fn generated_once_private_and_read_back() {
        let d = std::env::temp_dir().join(format!("synline-fleet-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("fleet.key");
        FleetKey::generate(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(FleetKey::generate(&p).is_err(), "never replaced");
        let k = FleetKey::load(&p).unwrap();
        assert_eq!(k.cookie_pair(1), FleetKey::load(&p).unwrap().cookie_pair(1));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(FleetKey::load(&p).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
