//! Moving an install's catalog to another database (`tread migrate`): from
//! the data dir's SQLite file to the PostgreSQL several processes share.

use crate::db::Database;
use crate::error::DbError;
use crate::migrate::Part;
use crate::params;
use crate::tx::{Engine, Tx};
use crate::value::Row;

/// How many rows each table holds, in both databases after a copy.
pub type TableCounts = Vec<(&'static str, u64)>;

impl Database {
    /// Copies every table of `parts` from this database into `target`,
    /// which must hold no table at all: `target` gets the parts' tables by
    /// their migrations, then every row in one transaction (all or
    /// nothing), read from one consistent state of this database. Answers
    /// the row counts, checked equal on both sides.
    pub async fn copy_into(
        &self,
        target: &Database,
        parts: &'static [&'static Part],
    ) -> Result<TableCounts, DbError> {
        let tables = target.read(table_count).await?;
        if tables > 0 {
            return Err(DbError::Other(format!(
                "{} is not empty ({tables} tables): migrate into a new database",
                target.target()
            )));
        }
        for part in parts {
            self.migrate(part).await?;
            target.migrate(part).await?;
        }
        let rows = self.read(move |tx| read_all(tx, parts)).await?;
        target
            .write(move |tx| {
                // Rows the migrations seeded give way to the source's.
                for (table, _, _) in rows.iter().rev() {
                    tx.execute(&format!("DELETE FROM {table}"), params![])?;
                }
                for (table, columns, rows) in &rows {
                    insert_all(tx, table, columns, rows)?;
                }
                Ok::<_, DbError>(())
            })
            .await?;
        let source = self.read(move |tx| counts(tx, parts)).await?;
        let copied = target.read(move |tx| counts(tx, parts)).await?;
        if source != copied {
            return Err(DbError::Other(format!(
                "the copy's row counts differ: {source:?} in {}, {copied:?} in {}",
                self.target(),
                target.target()
            )));
        }
        Ok(copied)
    }
}

/// A table's name, columns and rows.
type TableRows = (&'static str, Vec<String>, Vec<Row>);

fn table_count(tx: &mut Tx<'_>) -> Result<i64, DbError> {
    let sql = match tx.engine() {
        Engine::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        }
    };
    tx.query_one(sql, params![])?.get(0)
}

fn columns(tx: &mut Tx<'_>, table: &str) -> Result<Vec<String>, DbError> {
    let sql = match tx.engine() {
        Engine::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
        Engine::Postgres => {
            "SELECT column_name::TEXT FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
        }
    };
    tx.query(sql, params![table])?
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Column names quoted for SQL, as one list.
fn column_list(columns: &[String]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    quoted.join(", ")
}

fn read_all(tx: &mut Tx<'_>, parts: &[&Part]) -> Result<Vec<TableRows>, DbError> {
    let mut all = Vec::new();
    for table in parts.iter().flat_map(|p| p.tables.iter().copied()) {
        let columns = columns(tx, table)?;
        let rows = tx.query(
            &format!("SELECT {} FROM {table}", column_list(&columns)),
            params![],
        )?;
        all.push((table, columns, rows));
    }
    Ok(all)
}

fn insert_all(
    tx: &mut Tx<'_>,
    table: &str,
    columns: &[String],
    rows: &[Row],
) -> Result<(), DbError> {
    let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        column_list(columns),
        placeholders.join(", ")
    );
    for row in rows {
        tx.execute(&sql, &row.0)?;
    }
    if tx.engine() == Engine::Postgres && columns.iter().any(|c| c == "id") {
        // Rows came with their ids; the next one the table numbers follows them.
        tx.query(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table} \
                 HAVING MAX(id) IS NOT NULL"
            ),
            params![],
        )?;
    }
    Ok(())
}

fn counts(tx: &mut Tx<'_>, parts: &[&Part]) -> Result<TableCounts, DbError> {
    let mut counts = Vec::new();
    for table in parts.iter().flat_map(|p| p.tables.iter().copied()) {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), params![])?
            .get(0)?;
        counts.push((table, u64::try_from(n).unwrap_or_default()));
    }
    Ok(counts)
}
