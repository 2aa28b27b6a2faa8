//! End-to-end tests of the `tread` binary: real processes, real HTTP on loopback.

// `common` starts the binary; one module per scenario.
mod common;
mod crash;
mod pipeline;
mod s3_cli;
mod serve;
mod train;
