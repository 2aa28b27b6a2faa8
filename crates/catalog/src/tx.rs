//! A transaction on either engine, with one way to run SQL on both: `$1`,
//! `$2`… placeholders and [`Value`]s.

use crate::error::{DbError, is_conflict};
use crate::value::{Row, Value, from_postgres, from_sqlite};

/// Which engine a database runs on, for the rare statement that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, in the data dir.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A transaction: commits when the closure given to
/// [`crate::Database::read`] or [`crate::Database::write`] returns `Ok`,
/// rolls back otherwise.
pub struct Tx<'c> {
    inner: Inner<'c>,
    /// Whether PostgreSQL failed a statement because a concurrent
    /// transaction won: the whole closure may run again.
    pub(crate) conflicted: bool,
}

enum Inner<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    Postgres(postgres::Transaction<'c>),
}

impl<'c> Tx<'c> {
    pub(crate) fn sqlite(tx: rusqlite::Transaction<'c>) -> Self {
        Tx {
            inner: Inner::Sqlite(tx),
            conflicted: false,
        }
    }

    pub(crate) fn postgres(tx: postgres::Transaction<'c>) -> Self {
        Tx {
            inner: Inner::Postgres(tx),
            conflicted: false,
        }
    }

    /// The engine this transaction runs on.
    pub fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    /// Runs a statement; answers how many rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let mut statement = bind_sqlite(tx, sql, params)?;
                let changed = statement.raw_execute().map_err(DbError::from_sqlite)?;
                Ok(changed as u64)
            }
            Inner::Postgres(tx) => {
                let refs = postgres_params(params);
                let answer = tx.execute(sql, &refs);
                answer.map_err(|e| note_conflict(&mut self.conflicted, e))
            }
        }
    }

    /// Runs a query; answers its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match &mut self.inner {
            Inner::Sqlite(tx) => {
                let mut statement = bind_sqlite(tx, sql, params)?;
                let width = statement.column_count();
                let mut rows = statement.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(DbError::from_sqlite)? {
                    let values = (0..width)
                        .map(|i| row.get_ref(i).map(from_sqlite))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(DbError::from_sqlite)?;
                    out.push(Row(values));
                }
                Ok(out)
            }
            Inner::Postgres(tx) => {
                let refs = postgres_params(params);
                let answer = tx.query(sql, &refs);
                let rows = answer.map_err(|e| note_conflict(&mut self.conflicted, e))?;
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| from_postgres(row, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Row)
                    })
                    .collect()
            }
        }
    }

    /// Runs a query that answers at most one row.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(DbError::Other(format!(
                "expected at most one row, got {}: {sql}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    /// Runs a query that answers exactly one row.
    pub fn query_one(&mut self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| DbError::Other(format!("expected one row, got none: {sql}")))
    }

    /// Runs statements separated by `;`, without parameters (schema changes).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match &mut self.inner {
            Inner::Sqlite(tx) => tx.execute_batch(sql).map_err(DbError::from_sqlite),
            Inner::Postgres(tx) => tx
                .batch_execute(sql)
                .map_err(|e| note_conflict(&mut self.conflicted, e)),
        }
    }

    /// Records that `part`'s data changed, so processes that cache it (the
    /// S3 gateways' users and policies) reload; see
    /// [`crate::Database::generation`].
    pub fn changed(&mut self, part: &str) -> Result<(), DbError> {
        self.execute(
            "INSERT INTO catalog_changes (part, generation) VALUES ($1, 1) \
             ON CONFLICT (part) DO UPDATE SET generation = catalog_changes.generation + 1",
            &[Value::from(part)],
        )
        .map(drop)
    }

    pub(crate) fn commit(self) -> Result<(), (DbError, bool)> {
        match self.inner {
            Inner::Sqlite(tx) => tx.commit().map_err(|e| (DbError::from_sqlite(e), false)),
            Inner::Postgres(tx) => tx.commit().map_err(|e| {
                let conflicted = e.code().is_some_and(is_conflict);
                (DbError::from_postgres(e), conflicted)
            }),
        }
    }
}

/// Prepares `sql` (cached per connection) and binds `params` by name, `$1`
/// to the first: SQLite numbers `$N` parameters by first appearance, not by
/// N, so binding by position would swap `WHERE b = $2 AND a = $1`.
fn bind_sqlite<'t>(
    tx: &'t rusqlite::Transaction<'_>,
    sql: &str,
    params: &[Value],
) -> Result<rusqlite::CachedStatement<'t>, DbError> {
    let mut statement = tx.prepare_cached(sql).map_err(DbError::from_sqlite)?;
    if statement.parameter_count() != params.len() {
        return Err(DbError::Other(format!(
            "{} parameters given to a statement with {}: {sql}",
            params.len(),
            statement.parameter_count()
        )));
    }
    for (n, value) in params.iter().enumerate() {
        let name = format!("${}", n + 1);
        let index = statement
            .parameter_index(&name)
            .map_err(DbError::from_sqlite)?
            .ok_or_else(|| DbError::Other(format!("{sql}: has no parameter {name}")))?;
        statement
            .raw_bind_parameter(index, value)
            .map_err(DbError::from_sqlite)?;
    }
    Ok(statement)
}

fn postgres_params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn note_conflict(conflicted: &mut bool, e: postgres::Error) -> DbError {
    if e.code().is_some_and(is_conflict) {
        *conflicted = true;
    }
    DbError::from_postgres(e)
}
