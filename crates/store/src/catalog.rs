//! The store's catalog in the data dir's SQLite file: volumes, buckets, users,
//! groups and policies. Admin commands write it directly; a running server
//! notices their commits through SQLite's `data_version` and reloads.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::atomic::FileOwnership;
use crate::iam::policy::Policy;

/// Name of the database file inside the data dir.
pub const DB_FILE: &str = "tread.db";
/// The volume that S3 CreateBucket puts new buckets in.
pub const DEFAULT_VOLUME: &str = "default";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS store_volumes (name TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS store_buckets (
    name TEXT PRIMARY KEY, volume TEXT NOT NULL REFERENCES store_volumes(name),
    nas_path TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER, gid INTEGER, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS store_users (
    name TEXT PRIMARY KEY, access_key_id TEXT NOT NULL UNIQUE, secret_access_key TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS store_groups (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS store_group_users (
    grp TEXT NOT NULL REFERENCES store_groups(name) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES store_users(name) ON DELETE CASCADE, PRIMARY KEY (grp, user));
CREATE TABLE IF NOT EXISTS store_group_policies (
    grp TEXT NOT NULL REFERENCES store_groups(name) ON DELETE CASCADE, policy TEXT NOT NULL, PRIMARY KEY (grp, policy));
CREATE TABLE IF NOT EXISTS store_policies (name TEXT PRIMARY KEY, document TEXT NOT NULL);
";

/// A catalog error, worded for the admin who ran the command.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The named thing does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// "volume", "bucket", …
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The name is taken.
    #[error("{kind} {name} already exists")]
    AlreadyExists {
        /// "volume", "bucket", …
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The request is not valid; the message says why and what to do.
    #[error("{0}")]
    Invalid(String),
    /// The policy document does not parse.
    #[error("policy {name}: {source}")]
    Policy {
        /// Policy name.
        name: String,
        /// Why it does not parse.
        source: crate::iam::policy::PolicyError,
    },
    /// SQLite failed.
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The file system failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, CatalogError>;

/// A volume: a directory that is, or will be, exported over NFS/SMB.
#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Absolute path of its root.
    pub path: PathBuf,
}

/// A NAS bucket's definition: a directory of a volume, served as a bucket.
#[derive(Debug, Clone, Serialize)]
pub struct BucketRecord {
    /// Bucket name.
    pub name: String,
    /// Volume it lives on.
    pub volume: String,
    /// Directory inside the volume ("" for the volume root).
    pub nas_path: String,
    /// Absolute path of the bucket root.
    pub root: PathBuf,
    /// Absolute path of the volume root (symlinks may not leave it).
    pub volume_root: PathBuf,
    /// Mode and owner given to object files.
    #[serde(skip)]
    pub ownership: FileOwnership,
    /// tread's data dir, which no path of the bucket may resolve into.
    #[serde(skip)]
    pub data_dir: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
}

/// An object user, without the secret key.
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    /// User name.
    pub user: String,
    /// Access key id.
    pub access_key_id: String,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
}

/// A user's keys, shown once at creation or rotation.
#[derive(Clone, Serialize)]
pub struct UserKeys {
    /// User name.
    pub user: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// A group with its members and policies.
#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Member user names.
    pub users: Vec<String>,
    /// Attached policy names.
    pub policies: Vec<String>,
}

/// What the server needs to authenticate and authorize one access key.
#[derive(Clone)]
pub struct Principal {
    /// User name.
    pub user: String,
    /// Secret key, for SigV4.
    pub secret: String,
    /// Policies of every group the user is in.
    pub policies: Vec<Policy>,
}

// Secrets stay out of logs: these types print everything but the secret key.
impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKeys")
            .field("user", &self.user)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user", &self.user)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

/// A consistent read of the catalog, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    /// Principals by access key id.
    pub principals: BTreeMap<String, Principal>,
    /// Buckets by name.
    pub buckets: BTreeMap<String, BucketRecord>,
}

/// An open connection to the catalog.
pub struct Catalog {
    conn: Connection,
    data_dir: PathBuf,
}

/// The current time as RFC 3339, the form timestamps take in the catalog and in upload records.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn new_keys() -> (String, String) {
    let id = format!(
        "TR{}",
        random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    );
    let secret: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    (id, secret)
}

/// Checks a bucket name against S3's rules (3–63 lowercase letters, digits, dots, hyphens).
pub fn validate_bucket_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&name.len()) && ok_chars && ok_ends && !name.contains("..") {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "invalid bucket name {name:?}: use 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
        )))
    }
}

/// A custom policy needs a valid name that is not a built-in's, and a
/// document that parses.
fn check_custom_policy(name: &str, document: &str) -> Result<()> {
    validate_name("policy", name)?;
    if Policy::builtin(name).is_some() {
        return Err(CatalogError::AlreadyExists {
            kind: "built-in policy",
            name: name.into(),
        });
    }
    Policy::parse(document).map_err(|source| CatalogError::Policy {
        name: name.into(),
        source,
    })?;
    Ok(())
}

fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@+=".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "invalid {kind} name {name:?}: use 1 to 64 letters, digits and -_.@+="
        )))
    }
}

/// Makes the database file readable by its owner only: it holds secret
/// keys. By path, never by opening it: closing any descriptor of the file
/// would drop every POSIX lock this process holds on it, SQLite's included,
/// and let another client delete the write-ahead log under our connections.
/// SQLite gives its `-wal` and `-shm` files the database's mode.
fn owner_only(db_path: &Path) -> Result<()> {
    let mode = fs::metadata(db_path)?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(db_path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

impl Catalog {
    /// Opens (creating if needed) the catalog in `data_dir`, applying migrations
    /// and creating the default volume `<data_dir>/volumes/default`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir)?;
        let data_dir = fs::canonicalize(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let conn = Connection::open(&db_path)?;
        owner_only(&db_path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        let catalog = Self { conn, data_dir };
        catalog.ensure_default_volume()?;
        Ok(catalog)
    }

    fn ensure_default_volume(&self) -> Result<()> {
        let path = self.data_dir.join("volumes").join(DEFAULT_VOLUME);
        fs::create_dir_all(&path)?;
        self.conn.execute(
            "INSERT OR IGNORE INTO store_volumes (name, path) VALUES (?1, ?2)",
            params![DEFAULT_VOLUME, path.to_string_lossy()],
        )?;
        Ok(())
    }

    /// SQLite's counter of commits made by other connections; changes when an admin command writes.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Registers `path` (created if missing) as volume `name`.
    pub fn volume_create(&self, name: &str, path: &Path) -> Result<Volume> {
        validate_name("volume", name)?;
        fs::create_dir_all(path)?;
        let path = fs::canonicalize(path)?;
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO store_volumes (name, path) VALUES (?1, ?2)",
            params![name, path.to_string_lossy()],
        )?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "volume (or a volume at that path)",
                name: name.into(),
            });
        }
        Ok(Volume {
            name: name.into(),
            path,
        })
    }

    /// All volumes, by name.
    pub fn volume_list(&self) -> Result<Vec<Volume>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, path FROM store_volumes ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(Volume {
                name: r.get(0)?,
                path: PathBuf::from(r.get::<_, String>(1)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn volume(&self, name: &str) -> Result<Volume> {
        self.conn
            .query_row(
                "SELECT name, path FROM store_volumes WHERE name = ?1",
                [name],
                |r| {
                    Ok(Volume {
                        name: r.get(0)?,
                        path: PathBuf::from(r.get::<_, String>(1)?),
                    })
                },
            )
            .optional()?
            .ok_or_else(|| CatalogError::NotFound {
                kind: "volume",
                name: name.into(),
            })
    }

    /// Creates NAS bucket `name` over `nas_path` ("" = the volume root) of `volume`.
    /// The directory is created if missing; a bucket whose directory overlaps
    /// another bucket's is refused.
    pub fn bucket_create(
        &self,
        name: &str,
        volume: &str,
        nas_path: &str,
        ownership: FileOwnership,
    ) -> Result<BucketRecord> {
        validate_bucket_name(name)?;
        let vol = self.volume(volume)?;
        let nas_path = nas_path.trim_matches('/');
        if nas_path
            .split('/')
            .any(|s| s == ".." || s == "." || s == crate::key::HIDDEN_DIR)
        {
            return Err(CatalogError::Invalid(format!(
                "--nas-path {nas_path:?} must be a plain directory inside the volume"
            )));
        }
        let root = vol.path.join(nas_path);
        if self.data_dir.starts_with(&root) {
            return Err(CatalogError::Invalid(format!(
                "bucket {name} at {} would serve tread's own data dir {} (its catalog holds secret keys); \
                 choose a --nas-path beside it or move the data dir (--data-dir)",
                root.display(),
                self.data_dir.display()
            )));
        }
        for other in self.bucket_list()? {
            if other.root.starts_with(&root) || root.starts_with(&other.root) {
                return Err(CatalogError::Invalid(format!(
                    "bucket {name} would overlap bucket {} at {}; choose another --nas-path",
                    other.name,
                    other.root.display()
                )));
            }
        }
        fs::create_dir_all(&root)?;
        let created = now();
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO store_buckets (name, volume, nas_path, mode, uid, gid, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![name, volume, nas_path, ownership.mode, ownership.uid, ownership.gid, created],
        )?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "bucket",
                name: name.into(),
            });
        }
        Ok(BucketRecord {
            name: name.into(),
            volume: volume.into(),
            nas_path: nas_path.into(),
            root,
            volume_root: vol.path,
            ownership,
            created,
            data_dir: self.data_dir.clone(),
        })
    }

    /// All buckets, by name.
    pub fn bucket_list(&self) -> Result<Vec<BucketRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT b.name, b.volume, b.nas_path, b.mode, b.uid, b.gid, b.created, v.path
             FROM store_buckets b JOIN store_volumes v ON v.name = b.volume ORDER BY b.name",
        )?;
        let rows = stmt.query_map([], |r| {
            let volume_root = PathBuf::from(r.get::<_, String>(7)?);
            let nas_path: String = r.get(2)?;
            Ok(BucketRecord {
                name: r.get(0)?,
                volume: r.get(1)?,
                root: volume_root.join(&nas_path),
                nas_path,
                ownership: FileOwnership {
                    mode: r.get(3)?,
                    uid: r.get(4)?,
                    gid: r.get(5)?,
                },
                created: r.get(6)?,
                volume_root,
                data_dir: self.data_dir.clone(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes bucket `name` from the catalog; its directory and files stay (as on ONTAP).
    pub fn bucket_delete(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM store_buckets WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "bucket",
                name: name.into(),
            });
        }
        Ok(())
    }

    /// Creates user `name` with fresh keys; the secret is returned only here.
    pub fn user_create(&self, name: &str) -> Result<UserKeys> {
        validate_name("user", name)?;
        let (id, secret) = new_keys();
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO store_users (name, access_key_id, secret_access_key, created) VALUES (?1, ?2, ?3, ?4)",
            params![name, id, secret, now()],
        )?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "user",
                name: name.into(),
            });
        }
        Ok(UserKeys {
            user: name.into(),
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Replaces user `name`'s keys; the old ones stop working at once.
    pub fn user_rotate_key(&self, name: &str) -> Result<UserKeys> {
        let (id, secret) = new_keys();
        let n = self.conn.execute(
            "UPDATE store_users SET access_key_id = ?2, secret_access_key = ?3 WHERE name = ?1",
            params![name, id, secret],
        )?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "user",
                name: name.into(),
            });
        }
        Ok(UserKeys {
            user: name.into(),
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Deletes user `name` and its group memberships.
    pub fn user_delete(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM store_users WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "user",
                name: name.into(),
            });
        }
        Ok(())
    }

    /// All users with their groups (never their secrets).
    pub fn user_list(&self) -> Result<Vec<UserInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT u.name, u.access_key_id, COALESCE(group_concat(g.grp, ','), '')
             FROM store_users u LEFT JOIN store_group_users g ON g.user = u.name GROUP BY u.name ORDER BY u.name",
        )?;
        let rows = stmt.query_map([], |r| {
            let groups: String = r.get(2)?;
            Ok(UserInfo {
                user: r.get(0)?,
                access_key_id: r.get(1)?,
                groups: groups
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn check_policy_exists(&self, policy: &str) -> Result<()> {
        if Policy::builtin(policy).is_some() {
            return Ok(());
        }
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM store_policies WHERE name = ?1",
                [policy],
                |r| r.get(0),
            )
            .optional()?;
        found.map(|_| ()).ok_or_else(|| CatalogError::NotFound {
            kind: "policy",
            name: policy.into(),
        })
    }

    /// Creates group `name` with `users` as members and `policies` attached.
    pub fn group_create(
        &mut self,
        name: &str,
        users: &[String],
        policies: &[String],
    ) -> Result<GroupInfo> {
        validate_name("group", name)?;
        for p in policies {
            self.check_policy_exists(p)?;
        }
        let tx = self.conn.transaction()?;
        if tx.execute(
            "INSERT OR IGNORE INTO store_groups (name) VALUES (?1)",
            [name],
        )? == 0
        {
            return Err(CatalogError::AlreadyExists {
                kind: "group",
                name: name.into(),
            });
        }
        for p in policies {
            tx.execute(
                "INSERT OR IGNORE INTO store_group_policies (grp, policy) VALUES (?1, ?2)",
                [name, p],
            )?;
        }
        for u in users {
            insert_member(&tx, name, u)?;
        }
        tx.commit()?;
        Ok(GroupInfo {
            name: name.into(),
            users: users.to_vec(),
            policies: policies.to_vec(),
        })
    }

    /// Adds `user` to `group`.
    pub fn group_add_user(&self, group: &str, user: &str) -> Result<()> {
        self.group_exists(group)?;
        insert_member(&self.conn, group, user)
    }

    /// Makes `policies` exactly the policies attached to `group`.
    pub fn group_set_policies(&mut self, group: &str, policies: &[String]) -> Result<()> {
        self.group_exists(group)?;
        for p in policies {
            self.check_policy_exists(p)?;
        }
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM store_group_policies WHERE grp = ?1", [group])?;
        for p in policies {
            tx.execute(
                "INSERT INTO store_group_policies (grp, policy) VALUES (?1, ?2)",
                [group, p.as_str()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes `user` from `group`.
    pub fn group_remove_user(&self, group: &str, user: &str) -> Result<()> {
        let n = self.conn.execute(
            "DELETE FROM store_group_users WHERE grp = ?1 AND user = ?2",
            [group, user],
        )?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "membership of user in group",
                name: format!("{user} in {group}"),
            });
        }
        Ok(())
    }

    fn group_exists(&self, group: &str) -> Result<()> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM store_groups WHERE name = ?1",
                [group],
                |r| r.get(0),
            )
            .optional()?;
        found.map(|_| ()).ok_or_else(|| CatalogError::NotFound {
            kind: "group",
            name: group.into(),
        })
    }

    /// All groups with members and policies.
    pub fn group_list(&self) -> Result<Vec<GroupInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT name,
               (SELECT COALESCE(group_concat(user, ','), '') FROM store_group_users WHERE grp = name),
               (SELECT COALESCE(group_concat(policy, ','), '') FROM store_group_policies WHERE grp = name)
             FROM store_groups ORDER BY name",
        )?;
        let split = |s: String| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        let rows = stmt.query_map([], |r| {
            Ok(GroupInfo {
                name: r.get(0)?,
                users: split(r.get(1)?),
                policies: split(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores a custom policy after checking that it parses.
    pub fn policy_create(&self, name: &str, document: &str) -> Result<()> {
        check_custom_policy(name, document)?;
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO store_policies (name, document) VALUES (?1, ?2)",
            [name, document],
        )?;
        if inserted == 0 {
            return Err(CatalogError::AlreadyExists {
                kind: "policy",
                name: name.into(),
            });
        }
        Ok(())
    }

    /// Creates custom policy `name` or replaces its document; groups that
    /// have it keep it, so a pipeline's access follows its file.
    pub fn policy_put(&self, name: &str, document: &str) -> Result<()> {
        check_custom_policy(name, document)?;
        self.conn.execute(
            "INSERT INTO store_policies (name, document) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET document = excluded.document",
            [name, document],
        )?;
        Ok(())
    }

    /// Policy names: the built-in ones, then custom ones.
    pub fn policy_list(&self) -> Result<Vec<String>> {
        let mut names = vec!["FullAccess".to_string(), "ReadOnlyAccess".to_string()];
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM store_policies ORDER BY name")?;
        for name in stmt.query_map([], |r| r.get(0))? {
            names.push(name?);
        }
        Ok(names)
    }

    /// Deletes a custom policy; groups that had it lose it.
    pub fn policy_delete(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM store_policies WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(CatalogError::NotFound {
                kind: "custom policy",
                name: name.into(),
            });
        }
        self.conn
            .execute("DELETE FROM store_group_policies WHERE policy = ?1", [name])?;
        Ok(())
    }

    /// Reads users, their policies and all buckets in one transaction.
    pub fn snapshot(&mut self) -> Result<CatalogSnapshot> {
        let buckets = self
            .bucket_list()?
            .into_iter()
            .map(|b| (b.name.clone(), b))
            .collect();
        let tx = self.conn.transaction()?;
        let mut custom = BTreeMap::new();
        for row in tx
            .prepare("SELECT name, document FROM store_policies")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        {
            let (name, doc) = row?;
            match Policy::parse(&doc) {
                Ok(p) => {
                    custom.insert(name, p);
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "stored policy does not parse; ignoring it")
                }
            }
        }
        let mut principals = BTreeMap::new();
        let mut stmt = tx.prepare(
            "SELECT u.name, u.access_key_id, u.secret_access_key, gp.policy
             FROM store_users u
             LEFT JOIN store_group_users gu ON gu.user = u.name
             LEFT JOIN store_group_policies gp ON gp.grp = gu.grp",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (user, id, secret, policy) = row?;
            let entry = principals.entry(id).or_insert_with(|| Principal {
                user,
                secret,
                policies: Vec::new(),
            });
            if let Some(p) = policy
                .and_then(|name| Policy::builtin(&name).or_else(|| custom.get(&name).cloned()))
            {
                entry.policies.push(p);
            }
        }
        Ok(CatalogSnapshot {
            principals,
            buckets,
        })
    }
}

fn insert_member(conn: &Connection, group: &str, user: &str) -> Result<()> {
    let user_found: Option<String> = conn
        .query_row(
            "SELECT name FROM store_users WHERE name = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    if user_found.is_none() {
        return Err(CatalogError::NotFound {
            kind: "user",
            name: user.into(),
        });
    }
    conn.execute(
        "INSERT OR IGNORE INTO store_group_users (grp, user) VALUES (?1, ?2)",
        [group, user],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_and_policies_reach_the_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(dir.path()).expect("open");
        let keys = cat.user_create("s3user").expect("user");
        cat.group_create("s3group", &["s3user".into()], &["FullAccess".into()])
            .expect("group");
        let snap = cat.snapshot().expect("snapshot");
        let p = &snap.principals[&keys.access_key_id];
        assert_eq!(p.secret, keys.secret_access_key);
        assert_eq!(p.policies.len(), 1);
        assert!(matches!(
            cat.user_create("s3user"),
            Err(CatalogError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn a_policy_put_again_replaces_its_document_and_groups_keep_or_swap_it() {
        use crate::iam::policy::Decision;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(dir.path()).expect("open");
        let doc = |action: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
            )
        };
        cat.policy_put("p", &doc("s3:GetObject")).expect("create");
        let keys = cat.user_create("u").expect("user");
        cat.group_create("g", &["u".into()], &["p".into()])
            .expect("group");
        cat.policy_put("p", &doc("s3:PutObject")).expect("replace");
        let snap = cat.snapshot().expect("snapshot");
        let policies = &snap.principals[&keys.access_key_id].policies;
        assert_eq!(policies.len(), 1, "the group kept the policy");
        let decide = |action| policies[0].evaluate(action, "arn:aws:s3:::b/k");
        assert_eq!(decide("s3:PutObject"), Decision::Allow);
        assert_eq!(decide("s3:GetObject"), Decision::NotApplicable);
        cat.group_set_policies("g", &["FullAccess".into()])
            .expect("set policies");
        let snap = cat.snapshot().expect("snapshot");
        let policies = &snap.principals[&keys.access_key_id].policies;
        assert_eq!(policies.len(), 1, "set, not added");
        assert_eq!(
            policies[0].evaluate("s3:DeleteObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert!(cat.policy_put("FullAccess", &doc("s3:GetObject")).is_err());
        assert!(cat.policy_put("q", "{").is_err());
    }

    #[test]
    fn overlapping_buckets_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = Catalog::open(&dir.path().join("data")).expect("open");
        cat.volume_create("vol1", &dir.path().join("vol1"))
            .expect("volume");
        cat.bucket_create("outer", "vol1", "", FileOwnership::default())
            .expect("bucket");
        let err = cat
            .bucket_create("inner", "vol1", "sub", FileOwnership::default())
            .expect_err("overlap");
        assert!(err.to_string().contains("overlap"), "{err}");
    }

    #[test]
    fn a_bucket_may_not_serve_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cat = Catalog::open(&dir.path().join("tread-data")).expect("open");
        cat.volume_create("here", dir.path()).expect("volume");
        let err = cat
            .bucket_create("everything", "here", "", FileOwnership::default())
            .expect_err("exposes");
        assert!(err.to_string().contains("data dir"), "{err}");
        cat.bucket_create("beside", "here", "data", FileOwnership::default())
            .expect("a sibling directory is fine");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cat = Catalog::open(dir.path()).expect("open");
        let keys = cat.user_create("u").expect("user");
        let snap = cat.snapshot().expect("snapshot");
        let printed = format!("{keys:?} {snap:?}");
        assert!(!printed.contains(&keys.secret_access_key), "{printed}");
        assert!(printed.contains(&keys.access_key_id));
    }

    #[test]
    fn database_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        Catalog::open(dir.path()).expect("open");
        let mode = fs::metadata(dir.path().join(DB_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
