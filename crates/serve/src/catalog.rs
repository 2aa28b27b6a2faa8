//! Endpoint definitions in the data dir's SQLite file, so endpoints come
//! back with their models after a restart. Every deploy or rollback adds a
//! row; the active row is what the endpoint serves.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS serve_endpoints (name TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS serve_endpoint_versions (
    endpoint TEXT NOT NULL REFERENCES serve_endpoints(name) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    model_uri TEXT NOT NULL,
    model_version TEXT NOT NULL,
    action TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint, seq));
";

/// One deploy or rollback of an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Revision {
    /// 1 for the first deploy, then counting up.
    pub seq: i64,
    /// The artifact deployed.
    pub model_uri: String,
    /// The model's own version id.
    pub model_version: String,
    /// `deploy` or `rollback`.
    pub action: String,
    /// RFC 3339 time of the change.
    pub deployed_at: String,
    /// Whether this revision is what the endpoint serves.
    pub active: bool,
}

/// The endpoints table, behind one connection.
pub struct Catalog {
    conn: Mutex<Connection>,
}

type Result<T> = std::result::Result<T, rusqlite::Error>;

impl Catalog {
    /// Opens (creating if needed) the database file and its tables.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut conn)
    }

    /// Every endpoint name, sorted.
    pub fn endpoints(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name FROM serve_endpoints ORDER BY name")?;
            stmt.query_map([], |r| r.get(0))?.collect()
        })
    }

    /// An endpoint's revisions, oldest first.
    pub fn revisions(&self, endpoint: &str) -> Result<Vec<Revision>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, model_uri, model_version, action, deployed_at, active
                 FROM serve_endpoint_versions WHERE endpoint = ?1 ORDER BY seq",
            )?;
            stmt.query_map([endpoint], |r| {
                Ok(Revision {
                    seq: r.get(0)?,
                    model_uri: r.get(1)?,
                    model_version: r.get(2)?,
                    action: r.get(3)?,
                    deployed_at: r.get(4)?,
                    active: r.get(5)?,
                })
            })?
            .collect()
        })
    }

    /// Records that `endpoint` now serves `model_uri`, creating the endpoint
    /// on its first deploy. Returns the new revision.
    pub fn activate(
        &self,
        endpoint: &str,
        model_uri: &str,
        model_version: &str,
        action: &str,
        now: &str,
    ) -> Result<Revision> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO serve_endpoints (name, created) VALUES (?1, ?2)",
                params![endpoint, now],
            )?;
            let seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM serve_endpoint_versions WHERE endpoint = ?1",
                [endpoint],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE serve_endpoint_versions SET active = 0 WHERE endpoint = ?1",
                [endpoint],
            )?;
            tx.execute(
                "INSERT INTO serve_endpoint_versions
                 (endpoint, seq, model_uri, model_version, action, deployed_at, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![endpoint, seq, model_uri, model_version, action, now],
            )?;
            tx.commit()?;
            Ok(Revision {
                seq,
                model_uri: model_uri.to_string(),
                model_version: model_version.to_string(),
                action: action.to_string(),
                deployed_at: now.to_string(),
                active: true,
            })
        })
    }

    /// Removes an endpoint and its history; false when it did not exist.
    pub fn delete(&self, endpoint: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM serve_endpoints WHERE name = ?1", [endpoint])? > 0))
    }

    /// Whether the endpoint is defined.
    pub fn exists(&self, endpoint: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM serve_endpoints WHERE name = ?1",
                [endpoint],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }
}
