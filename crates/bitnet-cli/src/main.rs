//! The `bitnet` binary: parses the command line and calls the library crates.

use clap::Parser;

/// bitnet: inference for 1-bit (ternary) LLMs.
#[derive(Parser)]
#[command(name = "bitnet", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
