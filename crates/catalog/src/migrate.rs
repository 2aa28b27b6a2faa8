//! Each part's tables, brought to the version its code expects, in order,
//! once, whichever of several processes starting together gets there first.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Access, Database};
use crate::error::DbError;
use crate::params;
use crate::tx::{Engine, Tx};

/// A part's tables and how they came to be: `name` owns every table named
/// `<name>_…`, and `migrations` are applied in version order.
pub struct Part {
    /// The part: "store", "serve", "pipeline".
    pub name: &'static str,
    /// Its migrations, versions strictly increasing from 1.
    pub migrations: &'static [Migration],
    /// Its tables, each after those it references, in the order a copy
    /// fills them ([`Database::copy_into`]).
    pub tables: &'static [&'static str],
}

/// One change to a part's tables.
pub struct Migration {
    /// Its version, one more than the migration before it.
    pub version: i64,
    /// What it does, for the record and for errors.
    pub name: &'static str,
    /// How it does it.
    pub step: Step,
}

/// How a migration changes the tables.
pub enum Step {
    /// Statements both engines run as written.
    Sql(&'static str),
    /// Statements that differ by engine (an auto-numbered key, say).
    PerEngine {
        /// For SQLite.
        sqlite: &'static str,
        /// For PostgreSQL.
        postgres: &'static str,
    },
    /// Code, for a change that has to look before it acts.
    Code(fn(&mut Tx<'_>) -> Result<(), DbError>),
}

const OWN_TABLES: &str = "
CREATE TABLE IF NOT EXISTS catalog_migrations (
    part TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL, applied_unix BIGINT NOT NULL,
    PRIMARY KEY (part, version));
CREATE TABLE IF NOT EXISTS catalog_changes (part TEXT PRIMARY KEY, generation BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_unix DOUBLE PRECISION NOT NULL);
";

impl Database {
    /// Applies `part`'s migrations the database does not have yet, all in
    /// one transaction: a failure leaves the tables as they were. Several
    /// processes may call this at once; one applies, the others find it
    /// done. Refuses a database whose tables are newer than `part` knows.
    pub async fn migrate(&self, part: &'static Part) -> Result<(), DbError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.migrate_blocking(part))
            .await
            .map_err(|e| DbError::Other(format!("migrating the catalog: {e}")))?
    }

    /// [`Database::migrate`] on the calling thread, which must not be one of
    /// tokio's async workers.
    pub fn migrate_blocking(&self, part: &'static Part) -> Result<(), DbError> {
        check_order(part)?;
        self.transact(Access::Migrate, 0, |tx| {
            if tx.engine() == Engine::Postgres {
                // Held to the end of the transaction; per schema, so test
                // schemas on one server do not wait for each other.
                tx.batch(
                    "SELECT pg_advisory_xact_lock(hashtext('tread-migrate:' || current_schema()))",
                )?;
            }
            tx.batch(OWN_TABLES)?;
            let found: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM catalog_migrations WHERE part = $1",
                    params![part.name],
                )?
                .get(0)?;
            let known = part.migrations.last().map_or(0, |m| m.version);
            if found > known {
                return Err(DbError::SchemaTooNew {
                    part: part.name,
                    found,
                    known,
                });
            }
            for migration in part.migrations.iter().filter(|m| m.version > found) {
                apply(tx, part, migration)?;
            }
            Ok(())
        })
    }
}

fn apply(tx: &mut Tx<'_>, part: &Part, migration: &Migration) -> Result<(), DbError> {
    let failed = |e: DbError| DbError::Migration {
        part: part.name,
        version: migration.version,
        name: migration.name,
        reason: e.to_string(),
    };
    match (&migration.step, tx.engine()) {
        (Step::Sql(sql), _)
        | (Step::PerEngine { sqlite: sql, .. }, Engine::Sqlite)
        | (Step::PerEngine { postgres: sql, .. }, Engine::Postgres) => tx.batch(sql),
        (Step::Code(code), _) => code(tx),
    }
    .map_err(failed)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO catalog_migrations (part, version, name, applied_unix) VALUES ($1, $2, $3, $4)",
        params![part.name, migration.version, migration.name, now],
    )
    .map_err(failed)?;
    tracing::info!(
        part = part.name,
        version = migration.version,
        name = migration.name,
        "catalog migrated"
    );
    Ok(())
}

/// Versions run 1, 2, 3…: a gap or a repeat is a mistake in the code.
fn check_order(part: &Part) -> Result<(), DbError> {
    for (index, migration) in part.migrations.iter().enumerate() {
        if migration.version != index as i64 + 1 {
            return Err(DbError::Migration {
                part: part.name,
                version: migration.version,
                name: migration.name,
                reason: format!(
                    "it is number {} in the list; versions must run 1, 2, 3…",
                    index + 1
                ),
            });
        }
    }
    Ok(())
}
