//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use std::fs;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::{NasStore, blocking, store_owner, timestamp};
use crate::atomic::FileOwnership;
use crate::catalog::DEFAULT_VOLUME;
use crate::error::{IoContext, StoreError};
use crate::key::HIDDEN_DIR;

/// The most buckets a ListBuckets page may ask for, as in S3.
const MAX_BUCKETS: i32 = 10_000;

/// ListBuckets in name order: `prefix` narrows it, `max-buckets` pages it and
/// the continuation token (the last name given) resumes after the page.
pub(super) async fn list_buckets(
    store: &NasStore,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let max = match input.max_buckets {
        None => usize::MAX,
        Some(n @ 1..=MAX_BUCKETS) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(StoreError::InvalidArgument(format!(
                "max-buckets {n} is out of range: give 1 to {MAX_BUCKETS}"
            ))
            .into());
        }
    };
    let prefix = input.prefix.as_deref().unwrap_or_default();
    let after = input.continuation_token.as_deref().unwrap_or_default();
    let live = store.live();
    let mut matching = live
        .buckets
        .values()
        .filter(|b| b.name.starts_with(prefix) && b.name.as_str() > after);
    let buckets: Vec<Bucket> = matching
        .by_ref()
        .take(max)
        .map(|b| Bucket {
            name: Some(b.name.clone()),
            creation_date: timestamp(&b.created),
            bucket_region: None,
        })
        .collect();
    let continuation_token = matching
        .next()
        .and_then(|_| buckets.last().and_then(|b| b.name.clone()));
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        continuation_token,
        owner: Some(store_owner()),
        prefix: input.prefix,
    }))
}

pub(super) async fn create_bucket(
    store: &NasStore,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let name = req.input.bucket;
    let location = req
        .input
        .create_bucket_configuration
        .and_then(|c| c.location_constraint)
        .map(|l| l.as_str().to_string());
    store
        .catalog()
        .bucket_create(
            &name,
            DEFAULT_VOLUME,
            &name,
            FileOwnership::default(),
            location.as_deref(),
        )
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
    let bucket = store.bucket(&req.input.bucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(
            bucket
                .location
                .clone()
                .unwrap_or_else(|| "us-east-1".into()),
        ),
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location(
    store: &NasStore,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let bucket = store.bucket(&req.input.bucket)?;
    // us-east-1 is reported as an empty LocationConstraint, as AWS does.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: bucket.location.clone().map(BucketLocationConstraint::from),
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
