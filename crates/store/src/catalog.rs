//! The store's tables in the catalog database: volumes, buckets, users,
//! groups and policies. Admin commands write them directly and mark the
//! store's generation; a running gateway sees the generation move and
//! reloads.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use tread_catalog::{Database, DbError, Migration, Part, Row, Step, Tx, params};

use crate::atomic::FileOwnership;
use crate::iam::policy::Policy;

/// The volume that S3 CreateBucket puts new buckets in.
pub const DEFAULT_VOLUME: &str = "default";

/// The store part's tables and their migrations.
pub static PART: Part = Part {
    name: "store",
    migrations: &[
        Migration {
            version: 1,
            name: "volumes, buckets, users, groups, policies",
            // `"user"` quoted: a reserved word in PostgreSQL (renamed by 2).
            step: Step::Sql(
                "CREATE TABLE IF NOT EXISTS store_volumes (name TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE);
                 CREATE TABLE IF NOT EXISTS store_buckets (
                     name TEXT PRIMARY KEY, volume TEXT NOT NULL REFERENCES store_volumes(name),
                     nas_path TEXT NOT NULL, mode BIGINT NOT NULL, uid BIGINT, gid BIGINT, created TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS store_users (
                     name TEXT PRIMARY KEY, access_key_id TEXT NOT NULL UNIQUE,
                     secret_access_key TEXT NOT NULL, created TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS store_groups (name TEXT PRIMARY KEY);
                 CREATE TABLE IF NOT EXISTS store_group_users (
                     grp TEXT NOT NULL REFERENCES store_groups(name) ON DELETE CASCADE,
                     \"user\" TEXT NOT NULL REFERENCES store_users(name) ON DELETE CASCADE,
                     PRIMARY KEY (grp, \"user\"));
                 CREATE TABLE IF NOT EXISTS store_group_policies (
                     grp TEXT NOT NULL REFERENCES store_groups(name) ON DELETE CASCADE,
                     policy TEXT NOT NULL, PRIMARY KEY (grp, policy));
                 CREATE TABLE IF NOT EXISTS store_policies (name TEXT PRIMARY KEY, document TEXT NOT NULL);",
            ),
        },
        Migration {
            version: 2,
            name: "group members in a column named member",
            step: Step::Sql("ALTER TABLE store_group_users RENAME COLUMN \"user\" TO member"),
        },
        Migration {
            version: 3,
            name: "a bucket's location constraint",
            step: Step::Sql("ALTER TABLE store_buckets ADD COLUMN location TEXT"),
        },
    ],
    tables: &[
        "store_volumes",
        "store_buckets",
        "store_users",
        "store_groups",
        "store_policies",
        "store_group_users",
        "store_group_policies",
    ],
};

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
    /// The catalog database failed.
    #[error(transparent)]
    Db(#[from] DbError),
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
    /// The location constraint the bucket was created with (S3's
    /// CreateBucket), if any; none means `us-east-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
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
    /// Principals by access key id, shared: every request looks its
    /// signer up, and a clone would copy each of its policies.
    pub principals: BTreeMap<String, Arc<Principal>>,
    /// Buckets by name.
    pub buckets: BTreeMap<String, BucketRecord>,
}

/// The store's tables.
#[derive(Clone)]
pub struct Catalog {
    db: Database,
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
    // A dot next to a dot or hyphen would make an empty or hyphen-edged DNS label.
    let ok_labels = ["..", ".-", "-."].iter().all(|pair| !name.contains(pair));
    let ip_form = name.parse::<std::net::Ipv4Addr>().is_ok();
    let reserved = RESERVED_BUCKET_PREFIXES.iter().any(|p| name.starts_with(p))
        || RESERVED_BUCKET_SUFFIXES.iter().any(|s| name.ends_with(s));
    if (3..=63).contains(&name.len()) && ok_chars && ok_ends && ok_labels && !ip_form && !reserved {
        Ok(())
    } else {
        Err(CatalogError::Invalid(format!(
            "invalid bucket name {name:?}: use 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, \
             with no dot beside another dot or a hyphen, not an IP address, not starting with {} nor ending with {}",
            RESERVED_BUCKET_PREFIXES.join(", "),
            RESERVED_BUCKET_SUFFIXES.join(", ")
        )))
    }
}

/// Bucket name beginnings S3 keeps for itself.
const RESERVED_BUCKET_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];

/// Bucket name endings S3 keeps for access points and directory buckets.
const RESERVED_BUCKET_SUFFIXES: [&str; 4] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3"];

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

impl Catalog {
    /// The store's tables in `db`, brought up to date, with the default
    /// volume `<data_dir>/volumes/default`.
    pub async fn new(db: Database, data_dir: &Path) -> Result<Self> {
        fs::create_dir_all(data_dir)?;
        let data_dir = fs::canonicalize(data_dir)?;
        db.migrate(&PART).await?;
        let catalog = Self { db, data_dir };
        let path = catalog.data_dir.join("volumes").join(DEFAULT_VOLUME);
        fs::create_dir_all(&path)?;
        let path = path.to_string_lossy().into_owned();
        catalog
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO store_volumes (name, path) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    params![DEFAULT_VOLUME, &path],
                )
                .map_err(CatalogError::from)
            })
            .await?;
        Ok(catalog)
    }

    /// The database the tables live in.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A write that running gateways notice: it marks the store's
    /// generation in the same transaction.
    async fn write<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.db
            .write(move |tx| {
                let value = f(tx)?;
                tx.changed(PART.name)?;
                Ok(value)
            })
            .await
    }

    /// How many times the store's tables changed: a gateway reloads when
    /// this moves.
    pub async fn generation(&self) -> Result<i64> {
        Ok(self.db.generation(PART.name).await?)
    }

    /// Registers `path` (created if missing) as volume `name`.
    pub async fn volume_create(&self, name: &str, path: &Path) -> Result<Volume> {
        validate_name("volume", name)?;
        fs::create_dir_all(path)?;
        let path = fs::canonicalize(path)?;
        let row = params![name, path.to_string_lossy().into_owned()].to_vec();
        let owned = name.to_string();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO store_volumes (name, path) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &row,
            )?;
            new(inserted, "volume (or a volume at that path)", &owned)
        })
        .await?;
        Ok(Volume {
            name: name.into(),
            path,
        })
    }

    /// All volumes, by name.
    pub async fn volume_list(&self) -> Result<Vec<Volume>> {
        self.db
            .read(|tx| {
                let rows = tx.query(
                    "SELECT name, path FROM store_volumes ORDER BY name",
                    params![],
                )?;
                Ok(rows
                    .iter()
                    .map(volume_row)
                    .collect::<std::result::Result<_, DbError>>()?)
            })
            .await
    }

    /// Creates NAS bucket `name` over `nas_path` ("" = the volume root) of `volume`.
    /// The directory is created if missing; a bucket whose directory overlaps
    /// another bucket's is refused.
    pub async fn bucket_create(
        &self,
        name: &str,
        volume: &str,
        nas_path: &str,
        ownership: FileOwnership,
        location: Option<&str>,
    ) -> Result<BucketRecord> {
        validate_bucket_name(name)?;
        // Kept as given and answered by GetBucketLocation; us-east-1 is none, as on S3.
        let location = location
            .filter(|l| !l.is_empty() && *l != "us-east-1")
            .map(str::to_string);
        let nas_path = nas_path.trim_matches('/').to_string();
        if nas_path
            .split('/')
            .any(|s| s == ".." || s == "." || s == crate::key::HIDDEN_DIR)
        {
            return Err(CatalogError::Invalid(format!(
                "--nas-path {nas_path:?} must be a plain directory inside the volume"
            )));
        }
        let (name, volume, data_dir) =
            (name.to_string(), volume.to_string(), self.data_dir.clone());
        let created = now();
        // The overlap check and the insert are one transaction: two gateways
        // creating overlapping buckets at once cannot both succeed.
        self.write(move |tx| {
            let vol = volume_named(tx, &volume)?;
            let root = vol.path.join(&nas_path);
            if data_dir.starts_with(&root) {
                return Err(CatalogError::Invalid(format!(
                    "bucket {name} at {} would serve tread's own data dir {} (its catalog holds secret keys); \
                     choose a --nas-path beside it or move the data dir (--data-dir)",
                    root.display(),
                    data_dir.display()
                )));
            }
            let existing = buckets(tx, &data_dir)?;
            if existing.iter().any(|b| b.name == name) {
                return Err(CatalogError::AlreadyExists {
                    kind: "bucket",
                    name: name.clone(),
                });
            }
            for other in existing {
                if other.root.starts_with(&root) || root.starts_with(&other.root) {
                    return Err(CatalogError::Invalid(format!(
                        "bucket {name} would overlap bucket {} at {}; choose another --nas-path",
                        other.name,
                        other.root.display()
                    )));
                }
            }
            fs::create_dir_all(&root)?;
            let inserted = tx.execute(
                "INSERT INTO store_buckets (name, volume, nas_path, mode, uid, gid, created, location) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                params![&name, &volume, &nas_path, ownership.mode, ownership.uid, ownership.gid, &created, location.clone()],
            )?;
            new(inserted, "bucket", &name)?;
            Ok(BucketRecord {
                name: name.clone(),
                volume: volume.clone(),
                nas_path: nas_path.clone(),
                root,
                volume_root: vol.path,
                ownership,
                created: created.clone(),
                location: location.clone(),
                data_dir: data_dir.clone(),
            })
        })
        .await
    }

    /// All buckets, by name.
    pub async fn bucket_list(&self) -> Result<Vec<BucketRecord>> {
        let data_dir = self.data_dir.clone();
        self.db.read(move |tx| buckets(tx, &data_dir)).await
    }

    /// Removes bucket `name` from the catalog; its directory and files stay (as on ONTAP).
    pub async fn bucket_delete(&self, name: &str) -> Result<()> {
        let owned = name.to_string();
        self.write(move |tx| {
            let n = tx.execute("DELETE FROM store_buckets WHERE name = $1", params![&owned])?;
            found(n, "bucket", &owned)
        })
        .await
    }

    /// Creates user `name` with fresh keys; the secret is returned only here.
    pub async fn user_create(&self, name: &str) -> Result<UserKeys> {
        validate_name("user", name)?;
        let (id, secret) = new_keys();
        let row = params![name, &id, &secret, now()].to_vec();
        let owned = name.to_string();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO store_users (name, access_key_id, secret_access_key, created) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &row,
            )?;
            new(inserted, "user", &owned)
        })
        .await?;
        Ok(UserKeys {
            user: name.into(),
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Replaces user `name`'s keys; the old ones stop working at once.
    pub async fn user_rotate_key(&self, name: &str) -> Result<UserKeys> {
        let owned = name.to_string();
        self.write(move |tx| rotate_keys(tx, &owned)).await
    }

    /// Deletes user `name` and its group memberships.
    pub async fn user_delete(&self, name: &str) -> Result<()> {
        let owned = name.to_string();
        self.write(move |tx| {
            let n = tx.execute("DELETE FROM store_users WHERE name = $1", params![&owned])?;
            found(n, "user", &owned)
        })
        .await
    }

    /// All users with their groups (never their secrets).
    pub async fn user_list(&self) -> Result<Vec<UserInfo>> {
        self.db
            .read(|tx| {
                let rows = tx.query(
                    "SELECT u.name, u.access_key_id, COALESCE(string_agg(g.grp, ',' ORDER BY g.grp), '') \
                     FROM store_users u LEFT JOIN store_group_users g ON g.member = u.name \
                     GROUP BY u.name, u.access_key_id ORDER BY u.name",
                    params![],
                )?;
                rows.iter()
                    .map(|r| {
                        Ok(UserInfo {
                            user: r.get(0)?,
                            access_key_id: r.get(1)?,
                            groups: split_list(r.get(2)?),
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Creates group `name` with `users` as members and `policies` attached.
    pub async fn group_create(
        &self,
        name: &str,
        users: &[String],
        policies: &[String],
    ) -> Result<GroupInfo> {
        validate_name("group", name)?;
        let group = GroupInfo {
            name: name.into(),
            users: users.to_vec(),
            policies: policies.to_vec(),
        };
        let wanted = group.clone();
        self.write(move |tx| {
            check_policies_exist(tx, &wanted.policies)?;
            let inserted = tx.execute(
                "INSERT INTO store_groups (name) VALUES ($1) ON CONFLICT DO NOTHING",
                params![&wanted.name],
            )?;
            new(inserted, "group", &wanted.name)?;
            set_policies(tx, &wanted.name, &wanted.policies)?;
            for user in &wanted.users {
                insert_member(tx, &wanted.name, user)?;
            }
            Ok(())
        })
        .await?;
        Ok(group)
    }

    /// Adds `user` to `group`.
    pub async fn group_add_user(&self, group: &str, user: &str) -> Result<()> {
        let (group, user) = (group.to_string(), user.to_string());
        self.write(move |tx| {
            group_exists(tx, &group)?;
            insert_member(tx, &group, &user)
        })
        .await
    }

    /// Makes `policies` exactly the policies attached to `group`.
    pub async fn group_set_policies(&self, group: &str, policies: &[String]) -> Result<()> {
        let (group, policies) = (group.to_string(), policies.to_vec());
        self.write(move |tx| {
            group_exists(tx, &group)?;
            check_policies_exist(tx, &policies)?;
            set_policies(tx, &group, &policies)
        })
        .await
    }

    /// Removes `user` from `group`.
    pub async fn group_remove_user(&self, group: &str, user: &str) -> Result<()> {
        let row = params![group, user].to_vec();
        let membership = format!("{user} in {group}");
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM store_group_users WHERE grp = $1 AND member = $2",
                &row,
            )?;
            found(n, "membership of user in group", &membership)
        })
        .await
    }

    /// All groups with members and policies.
    pub async fn group_list(&self) -> Result<Vec<GroupInfo>> {
        self.db
            .read(|tx| {
                let rows = tx.query(
                    "SELECT name,
                       (SELECT COALESCE(string_agg(member, ',' ORDER BY member), '')
                        FROM store_group_users WHERE grp = name),
                       (SELECT COALESCE(string_agg(policy, ',' ORDER BY policy), '')
                        FROM store_group_policies WHERE grp = name)
                     FROM store_groups ORDER BY name",
                    params![],
                )?;
                rows.iter()
                    .map(|r| {
                        Ok(GroupInfo {
                            name: r.get(0)?,
                            users: split_list(r.get(1)?),
                            policies: split_list(r.get(2)?),
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Makes sure `user` exists with working keys and belongs to `group`,
    /// which exists with exactly `policies` attached (built-in or custom;
    /// an unknown one is refused), all in one transaction, so no gateway
    /// ever sees the user without its group. An existing user keeps or
    /// loses its keys as `keep` says; fresh keys stop the old ones at once.
    /// `tread up` (its own user), `tread demo` (its S3 user) and each
    /// pipeline's identity are made this way.
    pub async fn ensure_member(
        &self,
        user: &str,
        group: &str,
        policies: &[String],
        keep: KeepKeys<'_>,
    ) -> Result<Member> {
        validate_name("user", user)?;
        validate_name("group", group)?;
        let (user, group, policies) = (user.to_string(), group.to_string(), policies.to_vec());
        let keep = match keep {
            KeepKeys::None => Some(None),
            KeepKeys::IfCurrent(id) => Some(Some(id.to_string())),
            KeepKeys::Any => None,
        };
        self.write(move |tx| {
            check_policies_exist(tx, &policies)?;
            let current = tx.query_opt(
                "SELECT access_key_id, secret_access_key FROM store_users WHERE name = $1",
                params![&user],
            )?;
            let (keys, created) = match current {
                None => {
                    let (id, secret) = new_keys();
                    tx.execute(
                        "INSERT INTO store_users (name, access_key_id, secret_access_key, created) \
                         VALUES ($1, $2, $3, $4)",
                        params![&user, &id, &secret, now()],
                    )?;
                    let keys = UserKeys {
                        user: user.clone(),
                        access_key_id: id,
                        secret_access_key: secret,
                    };
                    (keys, true)
                }
                Some(row) => {
                    let id: String = row.get(0)?;
                    let kept = match &keep {
                        Some(wanted) => wanted.as_deref() == Some(id.as_str()),
                        None => true,
                    };
                    if kept {
                        let keys = UserKeys {
                            user: user.clone(),
                            access_key_id: id,
                            secret_access_key: row.get(1)?,
                        };
                        (keys, false)
                    } else {
                        (rotate_keys(tx, &user)?, false)
                    }
                }
            };
            tx.execute(
                "INSERT INTO store_groups (name) VALUES ($1) ON CONFLICT DO NOTHING",
                params![&group],
            )?;
            set_policies(tx, &group, &policies)?;
            insert_member(tx, &group, &user)?;
            Ok(Member { keys, created })
        })
        .await
    }

    /// Stores a custom policy after checking that it parses.
    pub async fn policy_create(&self, name: &str, document: &str) -> Result<()> {
        check_custom_policy(name, document)?;
        let row = params![name, document].to_vec();
        let owned = name.to_string();
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO store_policies (name, document) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &row,
            )?;
            new(inserted, "policy", &owned)
        })
        .await
    }

    /// Creates custom policy `name` or replaces its document; groups that
    /// have it keep it, so a pipeline's access follows its file.
    pub async fn policy_put(&self, name: &str, document: &str) -> Result<()> {
        check_custom_policy(name, document)?;
        let row = params![name, document].to_vec();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO store_policies (name, document) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET document = excluded.document",
                &row,
            )?;
            Ok(())
        })
        .await
    }

    /// Policy names: the built-in ones, then custom ones.
    pub async fn policy_list(&self) -> Result<Vec<String>> {
        let custom: Vec<String> = self
            .db
            .read(|tx| {
                let rows = tx.query("SELECT name FROM store_policies ORDER BY name", params![])?;
                rows.iter()
                    .map(|r| r.get(0))
                    .collect::<std::result::Result<_, DbError>>()
            })
            .await?;
        let mut names = vec!["FullAccess".to_string(), "ReadOnlyAccess".to_string()];
        names.extend(custom);
        Ok(names)
    }

    /// The document of policy `name`: a built-in one's as
    /// [`Policy::builtin_document`] gives it, a custom one's as stored.
    pub async fn policy_document(&self, name: &str) -> Result<String> {
        if let Some(document) = Policy::builtin_document(name) {
            return Ok(document.to_string());
        }
        let owned = name.to_string();
        self.db
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT document FROM store_policies WHERE name = $1",
                    params![&owned],
                )?;
                match row {
                    Some(row) => Ok(row.get(0)?),
                    None => Err(CatalogError::NotFound {
                        kind: "policy",
                        name: owned,
                    }),
                }
            })
            .await
    }

    /// Deletes a custom policy; groups that had it lose it.
    pub async fn policy_delete(&self, name: &str) -> Result<()> {
        let owned = name.to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "DELETE FROM store_policies WHERE name = $1",
                params![&owned],
            )?;
            found(n, "custom policy", &owned)?;
            tx.execute(
                "DELETE FROM store_group_policies WHERE policy = $1",
                params![&owned],
            )?;
            Ok(())
        })
        .await
    }

    /// Reads users, their policies and all buckets in one transaction.
    pub async fn snapshot(&self) -> Result<CatalogSnapshot> {
        let data_dir = self.data_dir.clone();
        self.db.read(move |tx| snapshot(tx, &data_dir)).await
    }
}

/// Which keys an existing user keeps in [`Catalog::ensure_member`].
#[derive(Clone, Copy, Debug)]
pub enum KeepKeys<'a> {
    /// Fresh keys.
    None,
    /// Its keys if its access key id is this one (a pipeline's user, whose
    /// keys the pipeline holds); fresh ones otherwise.
    IfCurrent(&'a str),
    /// Whatever keys it has: the daemons' own user, which every daemon
    /// sharing the catalog uses, so that none rotates another's keys.
    Any,
}

/// A user made sure to exist, in its group, with working keys.
#[derive(Clone, Debug)]
pub struct Member {
    /// The user's keys now: new ones, unless the kept access key was still current.
    pub keys: UserKeys,
    /// Whether the user was created by this call.
    pub created: bool,
}

fn snapshot(tx: &mut Tx<'_>, data_dir: &Path) -> Result<CatalogSnapshot> {
    let buckets = buckets(tx, data_dir)?
        .into_iter()
        .map(|b| (b.name.clone(), b))
        .collect();
    let mut custom = BTreeMap::new();
    for row in tx.query("SELECT name, document FROM store_policies", params![])? {
        let (name, document): (String, String) = (row.get(0)?, row.get(1)?);
        match Policy::parse(&document) {
            Ok(p) => {
                custom.insert(name, p);
            }
            Err(e) => {
                tracing::error!(policy = %name, error = %e, "stored policy does not parse; ignoring it")
            }
        }
    }
    let mut principals = BTreeMap::new();
    let rows = tx.query(
        "SELECT u.name, u.access_key_id, u.secret_access_key, gp.policy
         FROM store_users u
         LEFT JOIN store_group_users gu ON gu.member = u.name
         LEFT JOIN store_group_policies gp ON gp.grp = gu.grp",
        params![],
    )?;
    for row in rows {
        let (user, id, secret): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let policy: Option<String> = row.get(3)?;
        let entry = principals.entry(id).or_insert_with(|| Principal {
            user,
            secret,
            policies: Vec::new(),
        });
        if let Some(p) =
            policy.and_then(|name| Policy::builtin(&name).or_else(|| custom.get(&name).cloned()))
        {
            entry.policies.push(p);
        }
    }
    Ok(CatalogSnapshot {
        principals: principals
            .into_iter()
            .map(|(id, p)| (id, Arc::new(p)))
            .collect(),
        buckets,
    })
}

fn volume_row(r: &Row) -> std::result::Result<Volume, DbError> {
    Ok(Volume {
        name: r.get(0)?,
        path: PathBuf::from(r.get::<String>(1)?),
    })
}

fn volume_named(tx: &mut Tx<'_>, name: &str) -> Result<Volume> {
    tx.query_opt(
        "SELECT name, path FROM store_volumes WHERE name = $1",
        params![name],
    )?
    .as_ref()
    .map(volume_row)
    .transpose()?
    .ok_or_else(|| CatalogError::NotFound {
        kind: "volume",
        name: name.into(),
    })
}

fn buckets(tx: &mut Tx<'_>, data_dir: &Path) -> Result<Vec<BucketRecord>> {
    let rows = tx.query(
        "SELECT b.name, b.volume, b.nas_path, b.mode, b.uid, b.gid, b.created, v.path, b.location
         FROM store_buckets b JOIN store_volumes v ON v.name = b.volume ORDER BY b.name",
        params![],
    )?;
    rows.iter()
        .map(|r| {
            let volume_root = PathBuf::from(r.get::<String>(7)?);
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
                location: r.get(8)?,
                volume_root,
                data_dir: data_dir.to_path_buf(),
            })
        })
        .collect()
}

fn rotate_keys(tx: &mut Tx<'_>, name: &str) -> Result<UserKeys> {
    let (id, secret) = new_keys();
    let n = tx.execute(
        "UPDATE store_users SET access_key_id = $2, secret_access_key = $3 WHERE name = $1",
        params![name, &id, &secret],
    )?;
    found(n, "user", name)?;
    Ok(UserKeys {
        user: name.into(),
        access_key_id: id,
        secret_access_key: secret,
    })
}

fn check_policies_exist(tx: &mut Tx<'_>, policies: &[String]) -> Result<()> {
    for policy in policies.iter().filter(|p| Policy::builtin(p).is_none()) {
        let row = tx.query_opt(
            "SELECT 1 FROM store_policies WHERE name = $1",
            params![policy],
        )?;
        if row.is_none() {
            return Err(CatalogError::NotFound {
                kind: "policy",
                name: policy.clone(),
            });
        }
    }
    Ok(())
}

fn set_policies(tx: &mut Tx<'_>, group: &str, policies: &[String]) -> Result<()> {
    tx.execute(
        "DELETE FROM store_group_policies WHERE grp = $1",
        params![group],
    )?;
    for policy in policies {
        tx.execute(
            "INSERT INTO store_group_policies (grp, policy) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            params![group, policy],
        )?;
    }
    Ok(())
}

fn group_exists(tx: &mut Tx<'_>, group: &str) -> Result<()> {
    let row = tx.query_opt("SELECT 1 FROM store_groups WHERE name = $1", params![group])?;
    found(u64::from(row.is_some()), "group", group)
}

fn insert_member(tx: &mut Tx<'_>, group: &str, user: &str) -> Result<()> {
    let row = tx.query_opt("SELECT 1 FROM store_users WHERE name = $1", params![user])?;
    found(u64::from(row.is_some()), "user", user)?;
    tx.execute(
        "INSERT INTO store_group_users (grp, member) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        params![group, user],
    )?;
    Ok(())
}

/// `AlreadyExists` when an insert added no row. Inside the transaction, so
/// the refused write rolls back and running gateways do not reload.
fn new(rows: u64, kind: &'static str, name: &str) -> Result<()> {
    if rows == 0 {
        return Err(CatalogError::AlreadyExists {
            kind,
            name: name.into(),
        });
    }
    Ok(())
}

/// `NotFound` when a statement touched no row.
fn found(rows: u64, kind: &'static str, name: &str) -> Result<()> {
    if rows == 0 {
        return Err(CatalogError::NotFound {
            kind,
            name: name.into(),
        });
    }
    Ok(())
}

fn split_list(joined: String) -> Vec<String> {
    joined
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tread_catalog::testing::TestDb;

    /// A catalog of its own on the test run's engine, with its data dir.
    struct TestCatalog {
        catalog: Catalog,
        _db: TestDb,
        dir: tempfile::TempDir,
    }

    async fn open() -> TestCatalog {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = TestDb::new(dir.path());
        let catalog = Catalog::new(db.open().await, &dir.path().join("tread-data"))
            .await
            .expect("open");
        TestCatalog {
            catalog,
            _db: db,
            dir,
        }
    }

    fn doc(action: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
        )
    }

    #[tokio::test]
    async fn users_groups_and_policies_reach_the_snapshot() {
        let t = open().await;
        let cat = &t.catalog;
        let keys = cat.user_create("s3user").await.expect("user");
        cat.group_create("s3group", &["s3user".into()], &["FullAccess".into()])
            .await
            .expect("group");
        let snap = cat.snapshot().await.expect("snapshot");
        let p = &snap.principals[&keys.access_key_id];
        assert_eq!(p.secret, keys.secret_access_key);
        assert_eq!(p.policies.len(), 1);
        assert!(matches!(
            cat.user_create("s3user").await,
            Err(CatalogError::AlreadyExists { .. })
        ));
        let users = cat.user_list().await.expect("users");
        assert_eq!(users[0].groups, ["s3group"]);
        let groups = cat.group_list().await.expect("groups");
        assert_eq!(
            (groups[0].users.clone(), groups[0].policies.clone()),
            (vec!["s3user".to_string()], vec!["FullAccess".to_string()])
        );
    }

    #[tokio::test]
    async fn every_admin_write_moves_the_generation() {
        let t = open().await;
        let cat = &t.catalog;
        let before = cat.generation().await.expect("generation");
        cat.user_create("u").await.expect("user");
        cat.policy_put("p", &doc("s3:GetObject"))
            .await
            .expect("policy");
        assert_eq!(cat.generation().await.expect("generation"), before + 2);
        assert!(cat.user_delete("nobody").await.is_err());
        assert_eq!(
            cat.generation().await.expect("generation"),
            before + 2,
            "a refused write changes nothing"
        );
    }

    #[tokio::test]
    async fn a_policy_put_again_replaces_its_document_and_groups_keep_or_swap_it() {
        use crate::iam::policy::Decision;
        let t = open().await;
        let cat = &t.catalog;
        cat.policy_put("p", &doc("s3:GetObject"))
            .await
            .expect("create");
        let keys = cat.user_create("u").await.expect("user");
        cat.group_create("g", &["u".into()], &["p".into()])
            .await
            .expect("group");
        cat.policy_put("p", &doc("s3:PutObject"))
            .await
            .expect("replace");
        let snap = cat.snapshot().await.expect("snapshot");
        let policies = &snap.principals[&keys.access_key_id].policies;
        assert_eq!(policies.len(), 1, "the group kept the policy");
        let decide = |action| policies[0].evaluate(action, "arn:aws:s3:::b/k");
        assert_eq!(decide("s3:PutObject"), Decision::Allow);
        assert_eq!(decide("s3:GetObject"), Decision::NotApplicable);
        cat.group_set_policies("g", &["FullAccess".into()])
            .await
            .expect("set policies");
        let snap = cat.snapshot().await.expect("snapshot");
        let policies = &snap.principals[&keys.access_key_id].policies;
        assert_eq!(policies.len(), 1, "set, not added");
        assert_eq!(
            policies[0].evaluate("s3:DeleteObject", "arn:aws:s3:::b/k"),
            Decision::Allow
        );
        assert!(
            cat.policy_put("FullAccess", &doc("s3:GetObject"))
                .await
                .is_err()
        );
        assert!(cat.policy_put("q", "{").await.is_err());
        cat.group_set_policies("g", &["p".into()])
            .await
            .expect("back to p");
        cat.policy_delete("p").await.expect("delete");
        let snap = cat.snapshot().await.expect("snapshot");
        assert!(
            snap.principals[&keys.access_key_id].policies.is_empty(),
            "groups lose a deleted policy"
        );
    }

    #[tokio::test]
    async fn overlapping_buckets_are_refused() {
        let t = open().await;
        let cat = &t.catalog;
        cat.volume_create("vol1", &t.dir.path().join("vol1"))
            .await
            .expect("volume");
        cat.bucket_create("outer", "vol1", "", FileOwnership::default(), None)
            .await
            .expect("bucket");
        let err = cat
            .bucket_create("inner", "vol1", "sub", FileOwnership::default(), None)
            .await
            .expect_err("overlap");
        assert!(err.to_string().contains("overlap"), "{err}");
        let names: Vec<String> = cat
            .bucket_list()
            .await
            .expect("list")
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, ["outer"]);
    }

    #[tokio::test]
    async fn a_bucket_may_not_serve_the_data_dir() {
        let t = open().await;
        let cat = &t.catalog;
        cat.volume_create("here", t.dir.path())
            .await
            .expect("volume");
        let err = cat
            .bucket_create("everything", "here", "", FileOwnership::default(), None)
            .await
            .expect_err("exposes");
        assert!(err.to_string().contains("data dir"), "{err}");
        cat.bucket_create("beside", "here", "data", FileOwnership::default(), None)
            .await
            .expect("a sibling directory is fine");
    }

    #[tokio::test]
    async fn debug_output_never_shows_secrets() {
        let t = open().await;
        let keys = t.catalog.user_create("u").await.expect("user");
        let snap = t.catalog.snapshot().await.expect("snapshot");
        let printed = format!("{keys:?} {snap:?}");
        assert!(!printed.contains(&keys.secret_access_key), "{printed}");
        assert!(printed.contains(&keys.access_key_id));
    }

    #[tokio::test]
    async fn ensure_member_creates_keeps_or_rotates_keys_and_restores_membership() {
        let t = open().await;
        let cat = &t.catalog;
        let full = ["FullAccess".to_string()];
        let first = cat
            .ensure_member("u", "g", &full, KeepKeys::None)
            .await
            .expect("first");
        assert!(first.created);
        let kept = cat
            .ensure_member(
                "u",
                "g",
                &full,
                KeepKeys::IfCurrent(&first.keys.access_key_id),
            )
            .await
            .expect("kept");
        assert_eq!(
            (kept.created, &kept.keys.secret_access_key),
            (false, &first.keys.secret_access_key)
        );
        let rotated = cat
            .ensure_member("u", "g", &full, KeepKeys::None)
            .await
            .expect("rotated");
        assert_ne!(rotated.keys.access_key_id, first.keys.access_key_id);
        let snap = cat.snapshot().await.expect("snapshot");
        assert!(
            !snap.principals.contains_key(&first.keys.access_key_id),
            "the old key stops working"
        );
        let any = cat
            .ensure_member("u", "g", &full, KeepKeys::Any)
            .await
            .expect("any");
        assert_eq!(
            any.keys.access_key_id, rotated.keys.access_key_id,
            "KeepKeys::Any keeps whatever keys the user has"
        );
        cat.policy_put("extra", &doc("s3:GetObject"))
            .await
            .expect("policy");
        cat.group_set_policies("g", &["FullAccess".into(), "extra".into()])
            .await
            .expect("extra");
        cat.user_delete("u").await.expect("delete");
        let back = cat
            .ensure_member("u", "g", &full, KeepKeys::None)
            .await
            .expect("back");
        assert!(back.created);
        let groups = cat.group_list().await.expect("groups");
        assert_eq!(
            groups[0].users,
            ["u"],
            "a recreated user is back in its group"
        );
        assert_eq!(
            groups[0].policies,
            ["FullAccess"],
            "the group has exactly the policies asked for"
        );
        let before = cat.snapshot().await.expect("snapshot");
        let err = cat
            .ensure_member("v", "g", &["missing".into()], KeepKeys::None)
            .await
            .expect_err("unknown policy");
        assert!(
            matches!(err, CatalogError::NotFound { kind: "policy", .. }),
            "{err}"
        );
        let after = cat.snapshot().await.expect("snapshot");
        assert_eq!(
            before.principals.len(),
            after.principals.len(),
            "nothing was made"
        );
    }

    #[tokio::test]
    async fn an_sqlite_file_from_before_migrations_keeps_its_users_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tread.db");
        {
            let old = rusqlite::Connection::open(&path).expect("legacy file");
            old.execute_batch(
                "CREATE TABLE store_users (name TEXT PRIMARY KEY, access_key_id TEXT NOT NULL UNIQUE,
                     secret_access_key TEXT NOT NULL, created TEXT NOT NULL);
                 CREATE TABLE store_groups (name TEXT PRIMARY KEY);
                 CREATE TABLE store_group_users (
                     grp TEXT NOT NULL REFERENCES store_groups(name) ON DELETE CASCADE,
                     user TEXT NOT NULL REFERENCES store_users(name) ON DELETE CASCADE, PRIMARY KEY (grp, user));
                 INSERT INTO store_users VALUES ('u', 'AKOLD', 'secret', 't0');
                 INSERT INTO store_groups VALUES ('g');
                 INSERT INTO store_group_users VALUES ('g', 'u');",
            )
            .expect("legacy tables");
        }
        let db = Database::open(
            tread_catalog::Target::Sqlite(path),
            tread_catalog::OpenOptions::default(),
        )
        .await
        .expect("open");
        let cat = Catalog::new(db, dir.path()).await.expect("migrates");
        let users = cat.user_list().await.expect("users");
        assert_eq!(
            (users[0].access_key_id.as_str(), users[0].groups.clone()),
            ("AKOLD", vec!["g".to_string()])
        );
    }
}
