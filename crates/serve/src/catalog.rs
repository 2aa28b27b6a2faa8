//! Endpoint definitions in the data dir's SQLite file, so endpoints come
//! back with their models after a restart. Every deploy or rollback adds a
//! row; the active row is what the endpoint serves.

use crate::contract::Contract;
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

/// Columns added after the first release, with their types: added to an
/// older database when it is opened. `contract` is the JSON of the model's
/// [`Contract`]; `contract_change` says what a deploy allowed to change;
/// `restores` is the revision a rollback went back to.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("contract", "TEXT"),
    ("contract_change", "TEXT"),
    ("restores", "INTEGER"),
];

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
    /// What the model promises clients (absent in rows older than contracts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<Contract>,
    /// What this revision changed of the contract, when that was allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_change: Option<String>,
    /// For a rollback, the revision whose model it brought back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restores: Option<i64>,
}

/// A revision about to be recorded.
pub struct NewRevision<'a> {
    /// The artifact.
    pub model_uri: &'a str,
    /// The model's own version id.
    pub model_version: &'a str,
    /// `deploy` or `rollback`.
    pub action: &'a str,
    /// RFC 3339 time of the change.
    pub now: &'a str,
    /// The model's contract.
    pub contract: &'a Contract,
    /// What changed of the contract, when allowed.
    pub contract_change: Option<&'a str>,
    /// For a rollback, the revision brought back.
    pub restores: Option<i64>,
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
        add_missing_columns(&conn)?;
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
                "SELECT seq, model_uri, model_version, action, deployed_at, active,
                        contract, contract_change, restores
                 FROM serve_endpoint_versions WHERE endpoint = ?1 ORDER BY seq",
            )?;
            stmt.query_map([endpoint], |r| {
                let contract: Option<String> = r.get(6)?;
                Ok(Revision {
                    seq: r.get(0)?,
                    model_uri: r.get(1)?,
                    model_version: r.get(2)?,
                    action: r.get(3)?,
                    deployed_at: r.get(4)?,
                    active: r.get(5)?,
                    // A row this version cannot read is treated as one
                    // from before contracts: no check rather than no endpoint.
                    contract: contract.and_then(|c| serde_json::from_str(&c).ok()),
                    contract_change: r.get(7)?,
                    restores: r.get(8)?,
                })
            })?
            .collect()
        })
    }

    /// Records that `endpoint` now serves `new.model_uri`, creating the
    /// endpoint on its first deploy. Returns the new revision.
    pub fn activate(&self, endpoint: &str, new: &NewRevision<'_>) -> Result<Revision> {
        let contract = serde_json::to_string(new.contract)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO serve_endpoints (name, created) VALUES (?1, ?2)",
                params![endpoint, new.now],
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
                 (endpoint, seq, model_uri, model_version, action, deployed_at, active,
                  contract, contract_change, restores)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9)",
                params![
                    endpoint,
                    seq,
                    new.model_uri,
                    new.model_version,
                    new.action,
                    new.now,
                    contract,
                    new.contract_change,
                    new.restores
                ],
            )?;
            tx.commit()?;
            Ok(Revision {
                seq,
                model_uri: new.model_uri.to_string(),
                model_version: new.model_version.to_string(),
                action: new.action.to_string(),
                deployed_at: new.now.to_string(),
                active: true,
                contract: Some(new.contract.clone()),
                contract_change: new.contract_change.map(str::to_string),
                restores: new.restores,
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

/// Adds [`ADDED_COLUMNS`] that a database written by an older tread lacks.
fn add_missing_columns(conn: &Connection) -> Result<()> {
    let present: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('serve_endpoint_versions')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_>>()?;
    for (column, kind) in ADDED_COLUMNS {
        if !present.iter().any(|p| p == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE serve_endpoint_versions ADD COLUMN {column} {kind}"
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_from_before_contracts_gains_the_columns_and_keeps_its_rows() -> Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        let path = dir.path().join("old.db");
        {
            let old = Connection::open(&path)?;
            old.execute_batch(SCHEMA)?;
            old.execute_batch(
                "INSERT INTO serve_endpoints VALUES ('tyre', 't0');
                 INSERT INTO serve_endpoint_versions VALUES ('tyre', 1, '/m/v1', 'v1', 'deploy', 't0', 1);",
            )?;
        }
        let catalog = Catalog::open(&path)?;
        let old = catalog.revisions("tyre")?;
        assert_eq!(
            (old.len(), old[0].contract.is_none(), old[0].restores),
            (1, true, None)
        );
        let contract = Contract {
            classes: vec!["a".into(), "b".into()],
            input_shape: [3, 32, 32],
            mean: [0.5; 3],
            std: [0.25; 3],
        };
        let new = NewRevision {
            model_uri: "/m/v2",
            model_version: "v2",
            action: "rollback",
            now: "t1",
            contract: &contract,
            contract_change: Some("classes [x] → [a, b]"),
            restores: Some(1),
        };
        let written = catalog.activate("tyre", &new)?;
        assert_eq!(catalog.revisions("tyre")?[1], written);
        assert_eq!(written.contract.as_ref(), Some(&contract));
        // Opening again finds every column present.
        drop(catalog);
        assert_eq!(Catalog::open(&path)?.revisions("tyre")?.len(), 2);
        Ok(())
    }
}
