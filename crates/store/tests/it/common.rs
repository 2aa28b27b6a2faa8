//! A fresh store per test: temp volume, bucket, users, a server on port 0.

use std::path::PathBuf;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use tread_catalog::testing::TestDb;
use tread_store::catalog::{Catalog, UserKeys};
use tread_store::{FileOwnership, NasStore, S3Server, ServerOptions, StoreOptions};

/// The bucket every test starts with, over the volume root.
pub const BUCKET: &str = "fsxn-ontap";

/// A running store with one NAS bucket and users of each kind.
pub struct TestStore {
    /// The catalog database, dropped (its schema with it) after the store.
    _db: TestDb,
    /// Kept so the temp directory lives as long as the test.
    _dir: tempfile::TempDir,
    /// The store's tables, for admin changes as `tread s3` makes them.
    pub catalog: Catalog,
    /// The data dir (catalog).
    pub data_dir: PathBuf,
    /// The volume root, which is also the root of [`BUCKET`].
    pub volume: PathBuf,
    /// The endpoint URL.
    pub url: String,
    /// The store behind the server, for calling its maintenance directly.
    pub store: NasStore,
    /// A client of a user in a FullAccess group.
    pub s3: Client,
    /// Keys of that user.
    pub full: UserKeys,
    /// Keys of a user in a ReadOnlyAccess group.
    pub read_only: UserKeys,
    /// Keys of a user in no group.
    pub no_group: UserKeys,
}

impl TestStore {
    /// Starts a store on an ephemeral loopback port.
    pub async fn start() -> Self {
        Self::start_with(StoreOptions::default(), FileOwnership::default()).await
    }

    /// Starts a store with `options`, its bucket writing files with `ownership`.
    pub async fn start_with(options: StoreOptions, ownership: FileOwnership) -> Self {
        Self::start_on(options, ownership, |_| Ok(()))
            .await
            .expect("start")
    }

    /// Starts a store whose volume directory `prepare` sets up first (say, a
    /// small file system mounted there); fails if `prepare` does.
    pub async fn start_on(
        options: StoreOptions,
        ownership: FileOwnership,
        prepare: impl FnOnce(&std::path::Path) -> Result<(), String>,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let volume = dir.path().join("vol1");
        std::fs::create_dir_all(&volume).expect("volume dir");
        prepare(&volume)?;
        let db = TestDb::new(&data_dir);
        let cat = Catalog::new(db.open().await, &data_dir)
            .await
            .expect("catalog");
        cat.volume_create("vol1", &volume).await.expect("volume");
        cat.bucket_create(BUCKET, "vol1", "", ownership, None)
            .await
            .expect("bucket");
        let full = cat.user_create("s3user").await.expect("user");
        let read_only = cat.user_create("reader").await.expect("user");
        let no_group = cat.user_create("nobody").await.expect("user");
        cat.group_create("s3group", &["s3user".into()], &["FullAccess".into()])
            .await
            .expect("group");
        cat.group_create("readers", &["reader".into()], &["ReadOnlyAccess".into()])
            .await
            .expect("group");

        let store = NasStore::open(cat.clone(), options).await.expect("store");
        store.spawn_background_tasks();
        let options = ServerOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Default::default()
        };
        let server = S3Server::bind(store.clone(), &options).await.expect("bind");
        let url = server.url();
        tokio::spawn(server.run(std::future::pending()));
        let s3 = client(&url, &full);
        let volume = std::fs::canonicalize(&volume).expect("canonical volume");
        Ok(Self {
            _db: db,
            _dir: dir,
            catalog: cat,
            data_dir,
            volume,
            url,
            store,
            s3,
            full,
            read_only,
            no_group,
        })
    }

    /// A path-style client for `keys`.
    pub fn client(&self, keys: &UserKeys) -> Client {
        client(&self.url, keys)
    }
}

/// A path-style `aws-sdk-s3` client for `url` with `keys`.
pub fn client(url: &str, keys: &UserKeys) -> Client {
    client_with(url, &keys.access_key_id, &keys.secret_access_key)
}

/// A path-style client with arbitrary (possibly wrong) keys.
pub fn client_with(url: &str, id: &str, secret: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .build();
    Client::from_conf(config)
}

/// A failed SDK call.
type SdkError<E> = aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

/// The S3 error code of a failed SDK call.
pub fn code<E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
    err: &SdkError<E>,
) -> String {
    match err {
        aws_sdk_s3::error::SdkError::ServiceError(e) => {
            e.err().code().unwrap_or("<no code>").to_string()
        }
        other => format!("<not a service error: {other:?}>"),
    }
}

/// The HTTP status of a failed SDK call.
pub fn status<E>(err: &SdkError<E>) -> u16 {
    err.raw_response().map_or(0, |r| r.status().as_u16())
}

/// Puts `body` under `key` in [`BUCKET`].
pub async fn put(s3: &Client, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// Reads the whole object under `key` in [`BUCKET`].
pub async fn get(s3: &Client, key: &str) -> Vec<u8> {
    get_in(s3, BUCKET, key).await
}

/// Reads the whole object under `key` in `bucket`.
pub async fn get_in(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed) % 31) as u8
                ^ seed
        })
        .collect()
}

/// The keys of a listing page (`out.contents()`, v1 or v2), in order.
pub fn listed_keys(contents: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    contents
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

/// The common prefixes of a listing page (`out.common_prefixes()`), in order.
pub fn listed_prefixes(prefixes: &[aws_sdk_s3::types::CommonPrefix]) -> Vec<String> {
    prefixes
        .iter()
        .filter_map(|p| p.prefix().map(String::from))
        .collect()
}
