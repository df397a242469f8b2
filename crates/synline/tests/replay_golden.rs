//! Behaviour pinned byte for byte: every kernel fixture (a Linux 6.18 SYN per option set and
//! family, crates/synline-wire/tests/fixtures) replayed through `synline replay` with seed 0
//! must give exactly the pcap in `tests/replay_golden/`: the SYN-ACK, its timer
//! retransmissions at the times the timer wheel makes them due, and nothing else.
//!
//! A refactor that changes any byte or any departure time fails here. When a change of
//! behaviour is intended, regenerate with `SYNLINE_BLESS=1 cargo test -p synline --test
//! replay_golden` and say why in the commit.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_synline");

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../synline-wire/tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 18, "fixtures in {}", dir.display());
    v
}

#[test]
fn replay_of_every_fixture_is_byte_identical_to_its_golden() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay_golden");
    let out_dir = std::env::temp_dir().join(format!("synline-golden-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let bless = std::env::var_os("SYNLINE_BLESS").is_some();
    let mut differ = Vec::new();
    for f in fixtures() {
        let name = f.file_name().unwrap().to_owned();
        let out = out_dir.join(&name);
        let run = Command::new(BIN)
            .arg("replay")
            .arg(&f)
            .arg("--out")
            .arg(&out)
            .args([
                "--listen",
                "198.18.0.1:8080",
                "--listen",
                "[2001:2::1]:8080",
            ])
            .args(["--seed", "0", "--tail", "70"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "replay {}: {}",
            f.display(),
            String::from_utf8_lossy(&run.stderr)
        );
        let got = std::fs::read(&out).unwrap();
        let want_path = golden.join(&name);
        if bless {
            std::fs::write(&want_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read(&want_path).unwrap_or_else(|e| {
            panic!("{}: {e} (bless with SYNLINE_BLESS=1)", want_path.display())
        });
        if got != want {
            differ.push(name.to_string_lossy().into_owned());
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
    assert!(differ.is_empty(), "replay output changed for {differ:?}");
}
