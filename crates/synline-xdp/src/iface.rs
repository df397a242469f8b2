//! The interface a port opens, resolved once: its index and its RX queue count.
#![forbid(unsafe_code)]

use std::io;

/// The interface could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    /// No interface of that name in this network namespace.
    #[error("no such interface {iface:?} in this network namespace (if_nametoindex: {source})")]
    NoSuchInterface {
        /// The name asked for.
        iface: String,
        /// Why.
        source: io::Error,
    },
    /// Its queues could not be listed.
    #[error("list the queues of {iface} ({path}): {source}")]
    Queues {
        /// Interface.
        iface: String,
        /// The sysfs directory read.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// `if_nametoindex(iface)`, read from sysfs (the same value, without `unsafe`).
pub fn ifindex(iface: &str) -> Result<u32, IfaceError> {
    let err = |source| IfaceError::NoSuchInterface {
        iface: iface.to_owned(),
        source,
    };
    if iface.is_empty() || iface.contains('/') || iface == "." || iface == ".." {
        return Err(err(io::Error::from_raw_os_error(libc::ENODEV)));
    }
    let s = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex")).map_err(err)?;
    s.trim()
        .parse()
        .map_err(|_| err(io::Error::from_raw_os_error(libc::ENODEV)))
}

/// RX queues of the interface: each needs an AF_XDP socket, or the listener traffic RSS puts
/// on it is answered by nobody. At least 1.
pub fn rx_queues(iface: &str) -> Result<u32, IfaceError> {
    ifindex(iface)?;
    let path = format!("/sys/class/net/{iface}/queues");
    let n = std::fs::read_dir(&path)
        .map_err(|source| IfaceError::Queues {
            iface: iface.to_owned(),
            path: path.clone(),
            source,
        })?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    Ok(n.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolves() {
        assert_eq!(ifindex("lo").unwrap(), 1);
        assert!(rx_queues("lo").unwrap() >= 1);
    }

    #[test]
    fn names_that_are_paths_are_refused() {
        for bad in ["", "..", ".", "a/b", "no-such-if0"] {
            let e = ifindex(bad).unwrap_err();
            assert!(e.to_string().contains("no such interface"), "{bad}: {e}");
            let e = rx_queues(bad).unwrap_err();
            assert!(e.to_string().contains("no such interface"), "{bad}: {e}");
        }
    }
}
