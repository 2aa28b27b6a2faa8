//! Identity and access: policies in the AWS grammar, and the s3s hooks that
//! authenticate each request (SigV4 secret lookup) and authorize it (policy check).

pub mod access;
pub mod policy;
