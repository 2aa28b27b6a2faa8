//! `/api/buckets`: NAS buckets, as `tread s3 bucket` manages them.

use crate::StoreApi;
use crate::error::Failure;
use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use tread_store::FileOwnership;
use tread_store::catalog::BucketRecord;

type Shared = State<Arc<StoreApi>>;

/// Every bucket, by name.
pub async fn list(State(api): Shared) -> Result<Json<Vec<BucketRecord>>, Failure> {
    Ok(Json(api.store.catalog().bucket_list().await?))
}

/// What `POST /api/buckets` takes.
#[derive(Deserialize)]
pub struct NewBucket {
    name: String,
    /// The volume; `default` when absent.
    volume: Option<String>,
    /// The directory inside the volume (`""` for its root); the bucket's
    /// name when absent, so that buckets made here never overlap.
    nas_path: Option<String>,
    /// The location constraint GetBucketLocation answers.
    location: Option<String>,
}

/// Creates a bucket (its directory too, if missing), with the server's
/// own file owner and mode 644, as `tread s3 bucket create` does by default.
pub async fn create(
    State(api): Shared,
    Json(new): Json<NewBucket>,
) -> Result<(StatusCode, Json<BucketRecord>), Failure> {
    let catalog = api.store.catalog();
    let bucket = catalog
        .bucket_create(
            &new.name,
            new.volume.as_deref().unwrap_or("default"),
            new.nas_path.as_deref().unwrap_or(&new.name),
            FileOwnership::default(),
            new.location.as_deref(),
        )
        .await?;
    api.store.reload().await?;
    Ok((StatusCode::CREATED, Json(bucket)))
}

/// Removes a bucket from S3; its directory and files stay.
pub async fn delete(State(api): Shared, Path(bucket): Path<String>) -> Result<StatusCode, Failure> {
    api.store.catalog().bucket_delete(&bucket).await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}
