//! Integration tests of the store: a real server on a loopback port driven by
//! the `aws-sdk-s3` client.

// One module per family of operations; `common` builds a fresh world per test.
mod common;
mod full_disk;
mod list;
mod multipart;
mod nas;
mod objects;
mod security;
