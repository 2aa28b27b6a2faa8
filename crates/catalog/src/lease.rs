//! Leases: which of several processes does a job only one may do (fire the
//! schedules), with a term so that another takes over when the holder dies.

use crate::db::Database;
use crate::error::DbError;
use crate::params;
use crate::tx::{Engine, Tx};
use std::time::Duration;

/// A named lease one process at a time holds for a term, renewed by calling
/// [`Lease::hold`] again before the term ends. Terms are counted on the
/// database's clock, so the processes' own clocks need not agree.
#[derive(Clone)]
pub struct Lease {
    db: Database,
    name: String,
    holder: String,
    term: Duration,
}

impl Lease {
    /// The lease `name`, asked for as `holder` (unique per process: two
    /// processes with one holder name would both hold it), for `term`.
    pub fn new(db: Database, name: &str, holder: &str, term: Duration) -> Lease {
        Lease {
            db,
            name: name.to_string(),
            holder: holder.to_string(),
            term,
        }
    }

    /// Takes the lease if it is free or its term ran out, or renews it if
    /// this holder has it; answers whether this holder has it now, for a
    /// full term from before the call.
    pub async fn hold(&self) -> Result<bool, DbError> {
        let (name, holder, term) = (self.name.clone(), self.holder.clone(), self.term);
        self.db
            .write(move |tx| {
                let now = database_now(tx)?;
                let expires = now + term.as_secs_f64();
                let taken = tx.execute(
                    "INSERT INTO catalog_leases (name, holder, expires_unix) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = $2, expires_unix = $3
                     WHERE catalog_leases.holder = $2 OR catalog_leases.expires_unix < $4",
                    params![name.as_str(), holder.as_str(), expires, now],
                )?;
                Ok(taken == 1)
            })
            .await
    }

    /// Gives the lease up, so another process takes it at once rather than
    /// after the term.
    pub async fn release(&self) -> Result<(), DbError> {
        let (name, holder) = (self.name.clone(), self.holder.clone());
        self.db
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM catalog_leases WHERE name = $1 AND holder = $2",
                    params![name.as_str(), holder.as_str()],
                )
                .map(drop)
            })
            .await
    }

    /// Who holds the lease now, if anyone does.
    pub async fn holder(&self) -> Result<Option<String>, DbError> {
        let name = self.name.clone();
        self.db
            .read(move |tx| {
                let now = database_now(tx)?;
                tx.query_opt(
                    "SELECT holder FROM catalog_leases WHERE name = $1 AND expires_unix >= $2",
                    params![name.as_str(), now],
                )?
                .map(|r| r.get(0))
                .transpose()
            })
            .await
    }

    /// Of the leases named `prefix…`, the rest of the names of those held
    /// now: the daemons alive, when each holds `daemon:<its name>`.
    pub async fn held_with_prefix(db: &Database, prefix: &str) -> Result<Vec<String>, DbError> {
        let prefix = prefix.to_string();
        db.read(move |tx| {
            let now = database_now(tx)?;
            let rows = tx.query(
                "SELECT name FROM catalog_leases WHERE expires_unix >= $1",
                params![now],
            )?;
            let mut held = Vec::new();
            for row in rows {
                let name: String = row.get(0)?;
                if let Some(rest) = name.strip_prefix(&prefix) {
                    held.push(rest.to_string());
                }
            }
            Ok(held)
        })
        .await
    }

    /// The term the lease is held for.
    pub fn term(&self) -> Duration {
        self.term
    }
}

/// The database's clock, in seconds since 1970.
fn database_now(tx: &mut Tx<'_>) -> Result<f64, DbError> {
    let sql = match tx.engine() {
        Engine::Sqlite => "SELECT (julianday('now') - 2440587.5) * 86400.0",
        Engine::Postgres => "SELECT EXTRACT(EPOCH FROM clock_timestamp())::DOUBLE PRECISION",
    };
    tx.query_one(sql, params![])?.get(0)
}
