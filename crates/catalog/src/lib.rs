//! The metadata database every part of tread keeps its tables in: an SQLite
//! file in the data dir for one machine, or one PostgreSQL database shared by
//! several gateways and daemons.
//!
//! This crate opens it ([`Target`], [`Database`]), brings each part's tables
//! to the version its code expects ([`Part`], [`Migration`]) and runs
//! transactions ([`Tx`]) with one SQL text for both engines: `$1`, `$2`…
//! placeholders, `ON CONFLICT`, `RETURNING`, `BOOLEAN`, `BIGINT`. It owns only
//! `catalog_migrations` and `catalog_changes`; the tables are the parts'.

mod db;
mod error;
mod migrate;
mod target;
pub mod testing;
mod tx;
mod value;

pub use db::{Database, OpenOptions};
pub use error::DbError;
pub use migrate::{Migration, Part, Step};
pub use target::{SQLITE_FILE, Target};
pub use tx::{Engine, Tx};
pub use value::{FromValue, Row, Value};
