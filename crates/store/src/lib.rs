//! S3 over NAS: volumes, NAS buckets, key→path mapping, IAM, and the s3s
//! backend that serves plain directories as S3 buckets. Knows nothing of ML.

mod atomic;
mod backend;
mod bucket;
pub mod catalog;
mod checksum;
mod compact;
pub mod error;
mod front;
mod hot;
pub mod iam;
pub mod key;
mod meta;
pub mod server;
mod upload;

pub use atomic::FileOwnership;
pub use backend::{NasStore, StoreOptions};
pub use catalog::Catalog;
pub use key::ObjectKey;
pub use server::{S3Server, ServerOptions};
