//! End-to-end tests of the `tread` binary: real processes, real HTTP on loopback.

// `common` starts the binary; one module per scenario.
mod beyond;
mod browser;
mod catalog;
mod common;
mod console;
mod console_store;
mod crash;
mod gateways;
mod isolation;
mod pipeline;
mod quality;
mod s3_cli;
mod serve;
mod slurm;
mod train;
