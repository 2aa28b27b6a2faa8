//! The one error of the catalog layer, classified so each part can answer
//! with the right status: a lost or busy database is worth retrying (503), a
//! taken name is the caller's conflict, the rest is a fault (500).

/// Why a catalog call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be opened at start. Names the database,
    /// never its password.
    #[error(
        "cannot open the catalog database {target}: {reason}; check --database-url or TREAD_DATABASE_URL"
    )]
    Unreachable {
        /// The database, as [`crate::Target`] shows it.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The connection was lost, or none could be had in time, while serving;
    /// the transaction did not commit (or, lost during COMMIT, its outcome is
    /// unknown). Worth retrying later.
    #[error("the catalog database is unavailable: {0}")]
    Unavailable(String),
    /// The database stayed locked (SQLite) or the transaction kept
    /// conflicting with others (PostgreSQL) after waiting and retrying.
    /// Worth retrying later.
    #[error("the catalog database is busy: {0}")]
    Busy(String),
    /// A unique or primary key was already taken.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database holds a part's tables at a newer version than this
    /// binary knows.
    #[error(
        "the catalog's {part} tables are at version {found}, newer than this tread knows ({known}): upgrade tread"
    )]
    SchemaTooNew {
        /// The part owning the tables.
        part: &'static str,
        /// The version found in the database.
        found: i64,
        /// The newest version this binary has.
        known: i64,
    },
    /// A migration failed; none of it was applied.
    #[error("catalog migration {part} {version} ({name}) failed: {reason}")]
    Migration {
        /// The part owning the migration.
        part: &'static str,
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// What the database said.
        reason: String,
    },
    /// A column did not hold what the code reads from it.
    #[error("catalog column {column}: {reason}")]
    Decode {
        /// The column's index in the row.
        column: usize,
        /// What was expected and found.
        reason: String,
    },
    /// Anything else the database refused (a bug, a full disk).
    #[error("catalog database: {0}")]
    Other(String),
}

impl DbError {
    /// Whether the same call may succeed later: the database was lost or
    /// busy, not the request wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, DbError::Unavailable(_) | DbError::Busy(_))
    }

    pub(crate) fn from_sqlite(e: rusqlite::Error) -> DbError {
        use rusqlite::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(code, _) => match code.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => DbError::Busy(e.to_string()),
                ErrorCode::ConstraintViolation
                    if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    DbError::Conflict(e.to_string())
                }
                _ => DbError::Other(e.to_string()),
            },
            _ => DbError::Other(e.to_string()),
        }
    }

    pub(crate) fn from_postgres(e: postgres::Error) -> DbError {
        use postgres::error::SqlState;
        let Some(code) = e.code() else {
            // No SQLSTATE: the socket, the protocol or a closed connection.
            return DbError::Unavailable(e.to_string());
        };
        let text = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        if *code == SqlState::UNIQUE_VIOLATION {
            DbError::Conflict(text)
        } else if is_conflict(code) || *code == SqlState::TOO_MANY_CONNECTIONS {
            DbError::Busy(text)
        } else if code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            DbError::Unavailable(text)
        } else {
            DbError::Other(text)
        }
    }
}

/// Serialization failures and deadlocks: the transaction lost to a
/// concurrent one and may simply run again.
pub(crate) fn is_conflict(code: &postgres::error::SqlState) -> bool {
    use postgres::error::SqlState;
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}
