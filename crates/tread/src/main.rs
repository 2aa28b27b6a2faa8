//! The `tread` binary: the command line and the wiring of the parts. The work
//! itself lives in the library crates (`tread-store`, …).

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

/// Large transfers allocate a fresh buffer per chunk; glibc's malloc maps and
/// unmaps each one (page faults, kernel zeroing), mimalloc reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread exists, so every thread inherits it.
    tread_nn::fpenv::flush_denormals_to_zero();
    let cli = cli::Cli::parse();
    init_tracing();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TREAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off,hyper=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
