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
    if matches!(cli.command, cli::Command::Train(_)) {
        keep_freed_memory();
    }
    init_tracing();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's option `purge_delay` (its index in v3's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc hands memory freed for a while back to the kernel, which zeroes
/// it again when it is next touched. A training step frees and takes back
/// its activations and gemm's packing buffers, so a run spent 13 % of its
/// time in the kernel's `clear_page` (perf, resnet-small at 112 px) and
/// faulted 40,000 times in two epochs instead of 1,500. A training process
/// is short and its peak is what it needs, so it keeps what it frees;
/// long-lived servers keep the default and return memory.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; mimalloc reads it at each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
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
