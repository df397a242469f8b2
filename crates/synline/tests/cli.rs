//! The binary's command line, without privileges or namespaces: `synline check`, the bounds
//! of `replay --tail`, `--help` naming every enum value, and the generated man pages and
//! completions a package installs.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_synline");

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("synline-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `synline check` exits 0 on a good configuration and names every problem of a bad one
/// (exit 1), like `nginx -t`.
#[test]
fn check_names_every_problem_or_exits_zero() {
    let d = dir("check");
    let good = d.join("good.toml");
    std::fs::write(
        &good,
        "[stack]\nsomaxconn = 1024\n[[listener]]\naddress = \"198.18.0.1:80\"\ntcp_syncookies = 2\n[[listener]]\naddress = \"[2001:2::1]:80\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("is fine: 2 listener(s)"),
        "{}",
        text(&out.stdout)
    );

    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "[[listener]]\naddress = \"198.18.0.1:80\"\nmtu = 70000\nTCP_MAXSEG = 1\ntcp_synack_retries = 255\n[[listener]]\naddress = \"198.18.0.1:80\"\n[bogus]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .args(["--listen", "198.18.0.1:81,TCP_MAXSEG=99999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for want in [
        "5 problems",
        "mtu must be 576..=65535, not 70000",
        "TCP_MAXSEG must be 0 (unset) or 88..=32767, not 1",
        "tcp_synack_retries must be 0..=127",
        "unknown section \"bogus\"",
        "--listen 198.18.0.1:81,TCP_MAXSEG=99999: TCP_MAXSEG must be",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(err.contains(&bad.display().to_string()), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `replay --tail 18446744073709551615` panicked (duration overflow); now clap refuses it.
#[test]
fn replay_tail_is_bounded() {
    let out = Command::new(BIN)
        .args([
            "replay",
            "/nonexistent.pcap",
            "--out",
            "/dev/null",
            "--listen",
            "198.18.0.1:80",
        ])
        .args(["--tail", "18446744073709551615"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--tail"),
        "{}",
        text(&out.stderr)
    );
}

/// `run --help` lists the values of every enum flag.
#[test]
fn help_lists_enum_values() {
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let h = text(&out.stdout);
    for want in [
        "--xdp-mode <XDP_MODE>",
        "auto",
        "native",
        "generic",
        "zerocopy",
        "--accept <ACCEPT>",
        "kernel",
        "log",
        "--log-format <LOG_FORMAT>",
        "json",
    ] {
        assert!(h.contains(want), "{want}:\n{h}");
    }
    assert!(h.matches("Possible values:").count() >= 5, "{h}");
}

/// The man pages and completions the .deb installs.
#[test]
fn generates_man_pages_and_completions() {
    let d = dir("gen");
    for what in ["man", "completions"] {
        let out = Command::new(BIN)
            .args(["generate", what, "--dir"])
            .arg(&d)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    for f in [
        "synline.1",
        "synline-run.1",
        "synline-check.1",
        "synline.bash",
        "_synline",
        "synline.fish",
    ] {
        let p = d.join(f);
        assert!(
            p.exists(),
            "{f} missing in {:?}",
            std::fs::read_dir(&d).unwrap().collect::<Vec<_>>()
        );
    }
    let run = std::fs::read_to_string(d.join("synline-run.1")).unwrap();
    assert!(
        run.contains("zerocopy") && run.contains("key\\-file"),
        "{run}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
