//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use std::fs;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::{NasStore, blocking, timestamp};
use crate::atomic::FileOwnership;
use crate::catalog::DEFAULT_VOLUME;
use crate::error::{IoContext, StoreError};
use crate::key::HIDDEN_DIR;

pub(super) async fn list_buckets(
    store: &NasStore,
    _req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let buckets = store
        .live()
        .buckets
        .values()
        .map(|b| Bucket {
            name: Some(b.name.clone()),
            creation_date: timestamp(&b.created),
            bucket_region: None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        ..Default::default()
    }))
}

pub(super) async fn create_bucket(
    store: &NasStore,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let name = req.input.bucket;
    store
        .catalog()
        .bucket_create(&name, DEFAULT_VOLUME, &name, FileOwnership::default())
        .await
        .map_err(StoreError::from)?;
    store.reload().await.map_err(StoreError::from)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(super) async fn head_bucket(
    store: &NasStore,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    store.bucket(&req.input.bucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some("us-east-1".into()),
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location(
    store: &NasStore,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    store.bucket(&req.input.bucket)?;
    // us-east-1 is reported as an empty LocationConstraint, as AWS does.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: None,
    }))
}

/// Removes the bucket from the catalog; the directory and its files stay, as on ONTAP.
pub(super) async fn delete_bucket(
    store: &NasStore,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = store.bucket(&req.input.bucket)?;
    let root = bucket.root.clone();
    let has_objects = blocking(move || {
        let mut entries =
            fs::read_dir(&root).io_context(|| format!("listing {}", root.display()))?;
        Ok(entries.any(|e| e.map(|e| e.file_name() != HIDDEN_DIR).unwrap_or(true)))
    })
    .await?;
    if has_objects {
        return Err(StoreError::BucketNotEmpty(bucket.name.clone()).into());
    }
    store
        .catalog()
        .bucket_delete(&bucket.name)
        .await
        .map_err(StoreError::from)?;
    store.reload().await.map_err(StoreError::from)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}
