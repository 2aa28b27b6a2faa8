//! Which database a process opens: the data dir's SQLite file, or the
//! PostgreSQL server a `--database-url` names.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::DbError;

/// Name of the SQLite file inside the data dir.
pub const SQLITE_FILE: &str = "tread.db";

/// A database to open.
#[derive(Clone)]
pub enum Target {
    /// An SQLite file (created when missing), for one machine.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several processes and machines.
    Postgres(Box<postgres::Config>),
}

impl Target {
    /// `database_url` when one is given (`postgres://` or `postgresql://`,
    /// or `sqlite:///path` for one file several processes on one machine
    /// share; from `--database-url` or `TREAD_DATABASE_URL`), the data dir's
    /// SQLite file otherwise.
    pub fn resolve(database_url: Option<&str>, data_dir: &Path) -> Result<Target, DbError> {
        match database_url.map(str::trim) {
            None | Some("") => Ok(Target::Sqlite(data_dir.join(SQLITE_FILE))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let config = url.parse::<postgres::Config>().map_err(|e| {
                    DbError::Unreachable {
                        target: "the PostgreSQL URL given".into(),
                        // The parser's message never repeats the URL, so no password leaks.
                        reason: format!("it does not parse: {e}"),
                    }
                })?;
                Ok(Target::Postgres(Box::new(config)))
            }
            Some(url) if url.starts_with("sqlite:") => {
                // `sqlite:/path` or `sqlite:///path`, as SQLAlchemy and sqlx
                // spell it.
                let path = url.trim_start_matches("sqlite:");
                let path = path.strip_prefix("//").unwrap_or(path);
                if path.is_empty() {
                    return Err(DbError::Unreachable {
                        target: "the SQLite URL given".into(),
                        reason: "it names no file: write sqlite:///path/to/tread.db".into(),
                    });
                }
                Ok(Target::Sqlite(PathBuf::from(path)))
            }
            Some(_) => Err(DbError::Unreachable {
                target: "the database URL given".into(),
                reason: "only postgres:// (or postgresql://) and sqlite:/// URLs are known; \
                         leave the URL out to use the SQLite file in the data dir"
                    .into(),
            }),
        }
    }
}

/// Names the database without its password: `sqlite:<path>` or
/// `postgres://user@host:port/dbname`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Target::Postgres(config) => {
                write!(f, "postgres://")?;
                if let Some(user) = config.get_user() {
                    write!(f, "{user}@")?;
                }
                let hosts: Vec<String> = config
                    .get_hosts()
                    .iter()
                    .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
                    .map(|(host, port)| match host {
                        postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                        postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
                    })
                    .collect();
                write!(f, "{}", hosts.join(","))?;
                write!(f, "/{}", config.get_dbname().unwrap_or("(the user's name)"))
            }
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_means_the_data_dirs_sqlite_file() {
        let target = Target::resolve(None, Path::new("/srv/tread")).expect("resolves");
        assert!(matches!(&target, Target::Sqlite(p) if p == Path::new("/srv/tread/tread.db")));
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let url = "postgres://tread:s3cret-pw@db.example:6543/catalog";
        let target = Target::resolve(Some(url), Path::new("/x")).expect("resolves");
        let shown = target.to_string();
        assert_eq!(shown, "postgres://tread@db.example:6543/catalog");
        assert!(!format!("{target:?}").contains("s3cret-pw"));
    }

    #[test]
    fn a_sqlite_url_names_a_file_to_share() {
        for url in [
            "sqlite:///srv/shared/tread.db",
            "sqlite:/srv/shared/tread.db",
        ] {
            let target = Target::resolve(Some(url), Path::new("/x")).expect("resolves");
            assert!(
                matches!(&target, Target::Sqlite(p) if p == Path::new("/srv/shared/tread.db")),
                "{url}: {target}"
            );
        }
        assert!(Target::resolve(Some("sqlite://"), Path::new("/x")).is_err());
    }

    #[test]
    fn other_schemes_are_refused_with_what_to_do() {
        let err = Target::resolve(Some("mysql://db/x"), Path::new("/x")).expect_err("refused");
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn a_malformed_url_is_refused_without_echoing_it() {
        let err = Target::resolve(Some("postgres://u:pw@host:notaport/db"), Path::new("/x"))
            .expect_err("refused");
        assert!(!err.to_string().contains("pw@"), "{err}");
    }
}
