//! Endpoint definitions in the data dir's SQLite file, so endpoints come
//! back with their models after a restart. Every deploy or rollback adds a
//! row; the active row is what the endpoint serves.

use crate::contract::Contract;
use serde::Serialize;
use tread_catalog::{Database, DbError, Engine, Migration, Part, Row, Step, Tx, params};

/// The serve part's tables and their migrations.
pub static PART: Part = Part {
    name: "serve",
    migrations: &[
        Migration {
            version: 1,
            name: "endpoints and their revisions",
            step: Step::Sql(
                "CREATE TABLE IF NOT EXISTS serve_endpoints (name TEXT PRIMARY KEY, created TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS serve_endpoint_versions (
                     endpoint TEXT NOT NULL REFERENCES serve_endpoints(name) ON DELETE CASCADE,
                     seq BIGINT NOT NULL,
                     model_uri TEXT NOT NULL,
                     model_version TEXT NOT NULL,
                     action TEXT NOT NULL,
                     deployed_at TEXT NOT NULL,
                     active BOOLEAN NOT NULL DEFAULT FALSE,
                     PRIMARY KEY (endpoint, seq));",
            ),
        },
        Migration {
            version: 2,
            name: "contracts and rollbacks",
            step: Step::Code(add_missing_columns),
        },
    ],
    tables: &["serve_endpoints", "serve_endpoint_versions"],
};

/// Columns added after the first release, with their types. Databases
/// written before migrations were recorded may have them already.
/// `contract` is the JSON of the model's [`Contract`]; `contract_change`
/// says what a deploy allowed to change; `restores` is the revision a
/// rollback went back to.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("contract", "TEXT"),
    ("contract_change", "TEXT"),
    ("restores", "BIGINT"),
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
pub struct NewRevision {
    /// The artifact.
    pub model_uri: String,
    /// The model's own version id.
    pub model_version: String,
    /// `deploy` or `rollback`.
    pub action: String,
    /// RFC 3339 time of the change.
    pub now: String,
    /// The model's contract.
    pub contract: Contract,
    /// What changed of the contract, when allowed.
    pub contract_change: Option<String>,
    /// For a rollback, the revision brought back.
    pub restores: Option<i64>,
}

/// The endpoints tables.
#[derive(Clone)]
pub struct Catalog {
    db: Database,
}

type Result<T> = std::result::Result<T, DbError>;

const REVISION_COLUMNS: &str = "seq, model_uri, model_version, action, deployed_at, active, \
                                contract, contract_change, restores";

impl Catalog {
    /// The catalog in `db`, its tables brought up to date.
    pub async fn new(db: Database) -> Result<Self> {
        db.migrate(&PART).await?;
        Ok(Self { db })
    }

    /// Every endpoint name, sorted.
    pub async fn endpoints(&self) -> Result<Vec<String>> {
        self.db
            .read(|tx| {
                let rows = tx.query("SELECT name FROM serve_endpoints ORDER BY name", params![])?;
                rows.iter().map(|r| r.get(0)).collect()
            })
            .await
    }

    /// An endpoint's revisions, oldest first; `None` when it is not defined.
    pub async fn revisions(&self, endpoint: &str) -> Result<Option<Vec<Revision>>> {
        let endpoint = endpoint.to_string();
        self.db
            .read(move |tx| {
                let defined = tx.query_opt(
                    "SELECT 1 FROM serve_endpoints WHERE name = $1",
                    params![&endpoint],
                )?;
                if defined.is_none() {
                    return Ok(None);
                }
                let rows = tx.query(
                    &format!(
                        "SELECT {REVISION_COLUMNS} FROM serve_endpoint_versions \
                         WHERE endpoint = $1 ORDER BY seq"
                    ),
                    params![&endpoint],
                )?;
                rows.iter().map(revision).collect::<Result<_>>().map(Some)
            })
            .await
    }

    /// Records that `endpoint` now serves `new.model_uri`, creating the
    /// endpoint on its first deploy, and `also` (the registry's promotion)
    /// in the same transaction. Returns the new revision.
    pub async fn activate(
        &self,
        endpoint: &str,
        new: NewRevision,
        mut also: Option<AlsoRecord>,
    ) -> Result<Revision> {
        let endpoint = endpoint.to_string();
        self.db
            .write(move |tx| {
                let revision = activate_in(tx, &endpoint, &new)?;
                if let Some(also) = also.as_mut() {
                    also(tx)?;
                }
                Ok(revision)
            })
            .await
    }

    /// How many times any process changed the endpoints: a server reloads
    /// when this moves.
    pub async fn generation(&self) -> Result<i64> {
        self.db.generation(PART.name).await
    }

    /// Removes an endpoint and its history; false when it did not exist.
    pub async fn delete(&self, endpoint: &str) -> Result<bool> {
        let endpoint = endpoint.to_string();
        self.db
            .write(move |tx| {
                let deleted = tx.execute(
                    "DELETE FROM serve_endpoints WHERE name = $1",
                    params![&endpoint],
                )? > 0;
                tx.changed(PART.name)?;
                Ok(deleted)
            })
            .await
    }
}

/// What else a deploy records in its transaction (the model registry's
/// promotion), so the two never disagree.
pub type AlsoRecord = Box<dyn FnMut(&mut Tx<'_>) -> Result<()> + Send + 'static>;

/// [`Catalog::activate`] inside a transaction the caller holds, so a deploy
/// can change the endpoint and the model registry together.
pub fn activate_in(tx: &mut Tx<'_>, endpoint: &str, new: &NewRevision) -> Result<Revision> {
    let contract = serde_json::to_string(&new.contract)
        .map_err(|e| DbError::Other(format!("writing a contract: {e}")))?;
    tx.execute(
        "INSERT INTO serve_endpoints (name, created) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        params![endpoint, &new.now],
    )?;
    let seq: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM serve_endpoint_versions WHERE endpoint = $1",
            params![endpoint],
        )?
        .get(0)?;
    tx.execute(
        "UPDATE serve_endpoint_versions SET active = FALSE WHERE endpoint = $1",
        params![endpoint],
    )?;
    let row = tx.query_one(
        &format!(
            "INSERT INTO serve_endpoint_versions \
             (endpoint, seq, model_uri, model_version, action, deployed_at, active, \
              contract, contract_change, restores) \
             VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $9) RETURNING {REVISION_COLUMNS}"
        ),
        params![
            endpoint,
            seq,
            &new.model_uri,
            &new.model_version,
            &new.action,
            &new.now,
            contract,
            new.contract_change.clone(),
            new.restores
        ],
    )?;
    tx.changed(PART.name)?;
    revision(&row)
}

fn revision(row: &Row) -> Result<Revision> {
    let contract: Option<String> = row.get(6)?;
    Ok(Revision {
        seq: row.get(0)?,
        model_uri: row.get(1)?,
        model_version: row.get(2)?,
        action: row.get(3)?,
        deployed_at: row.get(4)?,
        active: row.get(5)?,
        // A row this version cannot read is treated as one from before
        // contracts: no check rather than no endpoint.
        contract: contract.and_then(|c| serde_json::from_str(&c).ok()),
        contract_change: row.get(7)?,
        restores: row.get(8)?,
    })
}

/// Adds [`ADDED_COLUMNS`] that a database written by an older tread lacks.
fn add_missing_columns(tx: &mut Tx<'_>) -> Result<()> {
    let present_sql = match tx.engine() {
        Engine::Sqlite => {
            "SELECT 1 FROM pragma_table_info('serve_endpoint_versions') WHERE name = $1"
        }
        Engine::Postgres => {
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name = 'serve_endpoint_versions' AND column_name = $1"
        }
    };
    for (column, kind) in ADDED_COLUMNS {
        if tx.query_opt(present_sql, params![column])?.is_none() {
            tx.batch(&format!(
                "ALTER TABLE serve_endpoint_versions ADD COLUMN {column} {kind}"
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tread_catalog::testing::TestDb;
    use tread_catalog::{OpenOptions, Target};

    fn contract() -> Contract {
        Contract {
            classes: vec!["a".into(), "b".into()],
            input_shape: [3, 32, 32],
            mean: [0.5; 3],
            std: [0.25; 3],
        }
    }

    fn revision_of(version: &str, action: &str, restores: Option<i64>) -> NewRevision {
        NewRevision {
            model_uri: format!("/m/{version}"),
            model_version: version.into(),
            action: action.into(),
            now: "t1".into(),
            contract: contract(),
            contract_change: restores.map(|_| "classes [x] → [a, b]".to_string()),
            restores,
        }
    }

    #[tokio::test]
    async fn a_deploy_whose_other_record_fails_records_nothing_and_moves_the_generation_when_it_succeeds()
    -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| DbError::Other(e.to_string()))?;
        let test_db = TestDb::new(dir.path());
        let catalog = Catalog::new(test_db.open().await).await?;
        let before = catalog.generation().await?;
        let refused: AlsoRecord = Box::new(|_| Err(DbError::Other("the registry refused".into())));
        let failed = catalog
            .activate("tyre", revision_of("v1", "deploy", None), Some(refused))
            .await;
        assert!(failed.is_err());
        assert_eq!(
            catalog.revisions("tyre").await?,
            None,
            "no endpoint without its record"
        );
        assert_eq!(catalog.generation().await?, before);
        let noted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = noted.clone();
        let also: AlsoRecord = Box::new(move |tx| {
            tx.query_one("SELECT COUNT(*) FROM serve_endpoint_versions", params![])?;
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        catalog
            .activate("tyre", revision_of("v1", "deploy", None), Some(also))
            .await?;
        assert!(noted.load(std::sync::atomic::Ordering::SeqCst));
        assert!(
            catalog.generation().await? > before,
            "other servers see the deploy"
        );
        Ok(())
    }

    #[tokio::test]
    async fn deploys_roll_back_and_delete_on_either_engine() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| DbError::Other(e.to_string()))?;
        let test_db = TestDb::new(dir.path());
        let catalog = Catalog::new(test_db.open().await).await?;
        assert_eq!(catalog.revisions("tyre").await?, None);
        let first = catalog
            .activate("tyre", revision_of("v1", "deploy", None), None)
            .await?;
        let second = catalog
            .activate("tyre", revision_of("v2", "deploy", None), None)
            .await?;
        let back = catalog
            .activate("tyre", revision_of("v1", "rollback", Some(1)), None)
            .await?;
        assert_eq!((first.seq, second.seq, back.seq), (1, 2, 3));
        let history = catalog.revisions("tyre").await?.unwrap_or_default();
        let active: Vec<bool> = history.iter().map(|r| r.active).collect();
        assert_eq!(
            active,
            [false, false, true],
            "only the newest revision is served"
        );
        assert_eq!(history[2], back);
        assert_eq!(back.contract, Some(contract()));
        assert_eq!(catalog.endpoints().await?, ["tyre"]);
        assert!(catalog.delete("tyre").await?);
        assert!(!catalog.delete("tyre").await?);
        assert_eq!(
            catalog.revisions("tyre").await?,
            None,
            "the history went with it"
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_sqlite_file_from_before_contracts_gains_the_columns_and_keeps_its_rows()
    -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| DbError::Other(e.to_string()))?;
        let path = dir.path().join("old.db");
        let legacy = |e: rusqlite::Error| DbError::Other(e.to_string());
        {
            let old = rusqlite::Connection::open(&path).map_err(legacy)?;
            old.execute_batch(
                "CREATE TABLE serve_endpoints (name TEXT PRIMARY KEY, created TEXT NOT NULL);
                 CREATE TABLE serve_endpoint_versions (
                     endpoint TEXT NOT NULL REFERENCES serve_endpoints(name) ON DELETE CASCADE,
                     seq INTEGER NOT NULL, model_uri TEXT NOT NULL, model_version TEXT NOT NULL,
                     action TEXT NOT NULL, deployed_at TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 0,
                     PRIMARY KEY (endpoint, seq));
                 INSERT INTO serve_endpoints VALUES ('tyre', 't0');
                 INSERT INTO serve_endpoint_versions VALUES ('tyre', 1, '/m/v1', 'v1', 'deploy', 't0', 1);",
            )
            .map_err(legacy)?;
        }
        let open = || Database::open(Target::Sqlite(path.clone()), OpenOptions::default());
        let catalog = Catalog::new(open().await?).await?;
        let old = catalog.revisions("tyre").await?.unwrap_or_default();
        assert_eq!(
            (
                old.len(),
                old[0].active,
                old[0].contract.is_none(),
                old[0].restores
            ),
            (1, true, true, None)
        );
        let written = catalog
            .activate("tyre", revision_of("v2", "rollback", Some(1)), None)
            .await?;
        assert_eq!(
            catalog.revisions("tyre").await?.unwrap_or_default()[1],
            written
        );
        assert_eq!(written.contract, Some(contract()));
        // Opening again finds every migration applied.
        drop(catalog);
        let again = Catalog::new(open().await?).await?;
        assert_eq!(again.revisions("tyre").await?.unwrap_or_default().len(), 2);
        Ok(())
    }
}
