//! The s3s backend: `impl S3 for NasStore` hands each operation to its family
//! file (`bucket`, `object`, `list`, `multipart`), inside a span named after
//! the operation with its bucket and key.

mod bucket;
mod list;
mod multipart;
mod object;
mod read_ahead;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::bucket::NasBucket;
use crate::catalog::{Catalog, CatalogError, CatalogSnapshot, Principal};
use crate::error::StoreError;
use crate::hot::HotObjects;
use crate::meta::ListedEtags;

/// How the store behaves beyond what the catalog says.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Multipart uploads idle longer than this are aborted by the sweeper.
    pub abandoned_upload_age: Duration,
    /// Temp files unmodified for longer than this were left by a crash
    /// and are removed by the sweeper.
    pub stale_temp_age: Duration,
    /// How often the catalog is checked for changes made by admin commands
    /// and other gateways.
    pub reload_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            abandoned_upload_age: Duration::from_secs(7 * 24 * 3600),
            // An upload whose client sends nothing for an hour has long
            // timed out.
            stale_temp_age: Duration::from_secs(3600),
            reload_interval: Duration::from_millis(500),
        }
    }
}

/// What the server serves right now: the catalog snapshot and the opened buckets.
#[derive(Debug, Default)]
struct Live {
    snapshot: CatalogSnapshot,
    buckets: BTreeMap<String, Arc<NasBucket>>,
}

struct Inner {
    catalog: Catalog,
    live: RwLock<Arc<Live>>,
    options: StoreOptions,
    listed: Arc<ListedEtags>,
    hot: Arc<HotObjects>,
    read_ahead: read_ahead::ReadAhead,
}

/// The S3 store over NAS buckets. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct NasStore {
    inner: Arc<Inner>,
}

impl NasStore {
    /// The store over `catalog`, with every bucket it lists opened.
    pub async fn open(catalog: Catalog, options: StoreOptions) -> Result<Self, CatalogError> {
        let store = Self {
            inner: Arc::new(Inner {
                catalog,
                live: RwLock::new(Arc::default()),
                options,
                listed: Arc::default(),
                hot: Arc::default(),
                read_ahead: read_ahead::ReadAhead::default(),
            }),
        };
        store.reload().await?;
        Ok(store)
    }

    /// The catalog the store serves.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// Re-reads the catalog, keeping already-opened buckets whose definition is unchanged.
    pub async fn reload(&self) -> Result<(), CatalogError> {
        let snapshot = self.inner.catalog.snapshot().await?;
        let store = self.clone();
        // Opening a bucket touches its directory, which may be on a slow NAS.
        tokio::task::spawn_blocking(move || store.serve(snapshot))
            .await
            .map_err(|e| CatalogError::Io(std::io::Error::other(e)))
    }

    /// Serves `snapshot` from now on.
    fn serve(&self, snapshot: CatalogSnapshot) {
        let old = self.live();
        let mut buckets = BTreeMap::new();
        for (name, record) in &snapshot.buckets {
            let reused = old
                .buckets
                .get(name)
                .filter(|b| b.root == record.root && b.ownership == record.ownership);
            let bucket = match reused {
                Some(b) => Arc::clone(b),
                None => match NasBucket::open(
                    record,
                    Arc::clone(&self.inner.listed),
                    Arc::clone(&self.inner.hot),
                ) {
                    Ok(b) => Arc::new(b),
                    Err(e) => {
                        tracing::error!(bucket = %name, error = %e, "cannot open bucket; it is not served");
                        continue;
                    }
                },
            };
            buckets.insert(name.clone(), bucket);
        }
        let live = Arc::new(Live { snapshot, buckets });
        *self
            .inner
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = live;
    }

    /// Reloads whenever an admin command or another gateway changes the
    /// store's tables, and sweeps what crashes and clients left behind
    /// (at start, then hourly); runs until the runtime stops.
    pub fn spawn_background_tasks(&self) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut last_generation = store.inner.catalog.generation().await.ok();
            let mut last_sweep = std::time::Instant::now() - Duration::from_secs(3600);
            loop {
                tokio::time::sleep(store.inner.options.reload_interval).await;
                let generation = match store.inner.catalog.generation().await {
                    Ok(generation) => Some(generation),
                    Err(e) => {
                        // Keep serving what was loaded; look again next tick.
                        tracing::warn!(error = %e, "cannot read the catalog's generation");
                        continue;
                    }
                };
                if generation != last_generation {
                    match store.reload().await {
                        Ok(()) => {
                            last_generation = generation;
                            tracing::info!("catalog changed; reloaded");
                        }
                        Err(e) => tracing::error!(error = %e, "catalog reload failed"),
                    }
                }
                if last_sweep.elapsed() >= Duration::from_secs(3600) {
                    last_sweep = std::time::Instant::now();
                    let s = store.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || s.sweep_leftovers()).await {
                        tracing::error!(error = %e, "the sweep of leftovers failed");
                    }
                }
            }
        });
    }

    /// Aborts multipart uploads idle for longer than
    /// [`StoreOptions::abandoned_upload_age`] and removes temp files older
    /// than [`StoreOptions::stale_temp_age`]: by age, so that what another
    /// gateway on the same volume is writing is never touched.
    pub fn sweep_leftovers(&self) {
        let options = &self.inner.options;
        for bucket in self.live().buckets.values() {
            multipart::sweep_abandoned(bucket, options.abandoned_upload_age);
            crate::atomic::sweep_tmp_dir(&bucket.tmp_dir(), options.stale_temp_age);
        }
    }

    fn live(&self) -> Arc<Live> {
        Arc::clone(
            &self
                .inner
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The opened bucket called `name`.
    fn bucket(&self, name: &str) -> Result<Arc<NasBucket>, StoreError> {
        self.live()
            .buckets
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchBucket(name.into()))
    }

    /// The principal holding `access_key`, as of the last reload.
    pub fn principal(&self, access_key: &str) -> Option<Arc<Principal>> {
        self.live().snapshot.principals.get(access_key).cloned()
    }

    /// The principal whose key signed a request, if any.
    pub fn signer(&self, credentials: Option<&s3s::auth::Credentials>) -> Option<Arc<Principal>> {
        credentials.and_then(|c| self.principal(&c.access_key))
    }

    /// Root directory of bucket `name`, if it exists.
    pub fn bucket_root(&self, name: &str) -> Option<PathBuf> {
        self.live().buckets.get(name).map(|b| b.root.clone())
    }
}

/// The owner of every bucket and object: the store is one account, whose
/// users (tread's S3 users) act within it, as IAM users do in S3.
fn store_owner() -> Owner {
    Owner {
        id: Some("tread".into()),
        display_name: Some("tread".into()),
    }
}

/// An S3 timestamp from the RFC 3339 form the catalog and upload records keep.
fn timestamp(rfc3339: &str) -> Option<Timestamp> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(Timestamp::from)
}

/// Runs quick file-system work for `bucket` (an object's lookup, a small
/// read): on the calling thread where the bucket is on a local file
/// system, where it takes microseconds, less than a hand-off to the
/// blocking pool and back (nginx, too, serves small files so); on the
/// blocking pool where a network file system may stall it.
async fn quick_io<T: Send + 'static>(
    bucket: &NasBucket,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    if bucket.is_local {
        f()
    } else {
        blocking(f).await
    }
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io {
            context: "a file-system task stopped".into(),
            source: std::io::Error::other(e),
        })?
}

#[async_trait::async_trait]
impl S3 for NasStore {
    #[tracing::instrument(level = "debug", skip_all)]

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        object::get_object_attributes(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete_object(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_objects(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket, key = %req.input.key))]

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }
    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %req.input.bucket))]

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }
}
