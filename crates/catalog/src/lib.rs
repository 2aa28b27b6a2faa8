//! The metadata database every part of tread keeps its tables in: an SQLite
//! file in the data dir for one machine, or one PostgreSQL database shared by
//! several gateways and daemons.
//!
//! This crate opens it ([`Target`], [`Database`]), brings each part's tables
//! to the version its code expects ([`Part`], [`Migration`]) and runs
//! transactions ([`Tx`]) with one SQL text for both engines: `$1`, `$2`…
//! placeholders, `ON CONFLICT`, `RETURNING`, `BOOLEAN`, `BIGINT`. It owns only
//! `catalog_migrations`, `catalog_changes` and `catalog_leases`; the tables
//! are the parts'.

mod copy;
mod db;
mod error;
mod lease;
mod migrate;
mod retry;
mod target;
pub mod testing;
mod tx;
mod value;

pub use copy::TableCounts;
pub use db::{Database, OpenOptions};
pub use error::DbError;
pub use lease::Lease;
pub use migrate::{Migration, Part, Step};
pub use retry::{PERSIST_PATIENCE, persist};
pub use target::{SQLITE_FILE, Target};
pub use tx::{Engine, Tx};
pub use value::{FromValue, Row, Value};
