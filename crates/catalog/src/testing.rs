//! A fresh catalog per test, on the engine the test run asks for.
//!
//! Not behind a cargo feature: a feature only tests turn on would make
//! `cargo test --workspace` and the binary's build compile this crate, and
//! everything above it, twice (see `.ci/same-build`).

use std::path::{Path, PathBuf};

use crate::db::{Database, OpenOptions};
use crate::target::{SQLITE_FILE, Target};

/// The variable naming a PostgreSQL server for the tests (`postgres://…`):
/// set, every [`TestDb`] is a fresh schema there; unset, an SQLite file.
pub const TEST_DATABASE_URL: &str = "TREAD_TEST_DATABASE_URL";

/// A catalog of its own for one test: an SQLite file in the test's
/// directory, or a new schema on the server [`TEST_DATABASE_URL`] names,
/// dropped when this is.
pub struct TestDb {
    sqlite: PathBuf,
    postgres: Option<Schema>,
}

struct Schema {
    server: String,
    name: String,
}

impl TestDb {
    /// A fresh catalog; `dir` holds the SQLite file when there is one.
    ///
    /// # Panics
    /// When [`TEST_DATABASE_URL`] is set but the server cannot be reached:
    /// a test run that asked for PostgreSQL must not quietly use SQLite.
    #[allow(clippy::expect_used)]
    pub fn new(dir: &Path) -> TestDb {
        let postgres = std::env::var(TEST_DATABASE_URL).ok().map(|server| {
            let name = format!("t_{:016x}", rand::random::<u64>());
            let sql = format!("CREATE SCHEMA {name}");
            on_own_thread(&server, &sql)
                .expect("creating a test schema on TREAD_TEST_DATABASE_URL");
            Schema { server, name }
        });
        TestDb {
            sqlite: dir.join(SQLITE_FILE),
            postgres,
        }
    }

    /// The `--database-url` a `tread` process under test gets, `None` on
    /// SQLite (the data dir's file is the default).
    pub fn url(&self) -> Option<String> {
        self.postgres.as_ref().map(|schema| {
            let separator = if schema.server.contains('?') {
                '&'
            } else {
                '?'
            };
            format!(
                "{}{separator}options=-c%20search_path%3D{}",
                schema.server, schema.name
            )
        })
    }

    /// A `--database-url` several `tread` processes with data dirs of
    /// their own share: the schema's on PostgreSQL, the SQLite file's
    /// otherwise.
    pub fn shared_url(&self) -> String {
        self.url()
            .unwrap_or_else(|| format!("sqlite://{}", self.sqlite.display()))
    }

    /// The database to open.
    ///
    /// # Panics
    /// Never for a URL that [`TestDb::new`] accepted.
    #[allow(clippy::expect_used)]
    pub fn target(&self) -> Target {
        match self.url() {
            Some(url) => Target::resolve(Some(&url), Path::new("")).expect("a test URL parses"),
            None => Target::Sqlite(self.sqlite.clone()),
        }
    }

    /// Opens it.
    ///
    /// # Panics
    /// When it cannot be opened: the test cannot run.
    #[allow(clippy::expect_used)]
    pub async fn open(&self) -> Database {
        Database::open(self.target(), OpenOptions::default())
            .await
            .expect("opening the test catalog")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = &self.postgres {
            let sql = format!("DROP SCHEMA {} CASCADE", schema.name);
            if let Err(e) = on_own_thread(&schema.server, &sql) {
                eprintln!("could not drop test schema {}: {e}", schema.name);
            }
        }
    }
}

/// Runs one statement on a connection of its own, on a thread of its own:
/// tests build and drop these inside async code, where the synchronous
/// client may not run.
fn on_own_thread(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut client = url
            .parse::<postgres::Config>()
            .and_then(|config| config.connect(postgres::NoTls))
            .map_err(|e| e.to_string())?;
        client.batch_execute(&sql).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the thread stopped".to_string())?
}
