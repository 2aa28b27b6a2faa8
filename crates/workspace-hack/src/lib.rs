//! Empty on purpose: this crate exists for its `[dependencies]`, which make the
//! binary's build and `cargo test --workspace` resolve the same features. See
//! its Cargo.toml and "One build for both commands" in the README.
