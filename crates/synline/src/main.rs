//! The `synline` binary.
//!
//! `synline demo` is the main job until the AF_XDP daemon exists (issue 6): it feeds a SYN
//! the Linux kernel sent (captured in a namespace, `deploy/fixtures/capture.sh`) through the
//! engine on an embedded default configuration, prints the SYN-ACK the engine built in the
//! SYN's own buffer next to the one the kernel sent for the same SYN, then completes the
//! handshake with the kernel's third ACK rewritten for our ISS, and prints the child and the
//! counters in nstat format.

mod demo;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "synline",
    version,
    about = "TCP passive opens at line rate over AF_XDP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Answer a captured kernel SYN with the engine, complete the handshake, print counters.
    Demo,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Demo => demo::run(),
    }
}
