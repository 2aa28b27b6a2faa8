//! `/api/datasets?uri=s3://bucket/prefix`: what a dataset prefix holds.

use crate::StoreApi;
use crate::error::Failure;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tread_data::inspect::Inspection;
use tread_data::{Dataset, ObjectDir};

/// Images fetched at once while inspecting.
const INSPECT_CONCURRENCY: usize = 16;

/// Keys of each class a caller gets, for a grid of thumbnails.
const SAMPLES_PER_CLASS: usize = 12;

/// `?uri=…` of the dataset route.
#[derive(Deserialize)]
pub struct DatasetQuery {
    uri: String,
}

/// A dataset: its inspection and a few keys of each class.
#[derive(Serialize)]
pub struct DatasetView {
    uri: String,
    /// The bucket the keys are in.
    bucket: String,
    #[serde(flatten)]
    inspection: Inspection,
    /// Per class, in class order: up to [`SAMPLES_PER_CLASS`] full keys.
    samples: Vec<Vec<String>>,
}

/// `GET /api/datasets?uri=s3://bucket/prefix`: classes, counts, sizes,
/// unreadable images (every image is fetched and decoded) and samples.
pub async fn inspect(
    State(api): State<Arc<StoreApi>>,
    Query(q): Query<DatasetQuery>,
) -> Result<Json<DatasetView>, Failure> {
    let dir = ObjectDir::open_as(&q.uri, &api.s3).await?;
    let ObjectDir::S3 { bucket, prefix, .. } = &dir else {
        return Err(Failure::invalid(format!(
            "{:?} is not in the store: use s3://bucket/prefix",
            q.uri
        )));
    };
    let (bucket, prefix) = (bucket.clone(), prefix.clone());
    let dataset = Dataset::from_listing(&q.uri, dir.list().await?)
        .map_err(|e| Failure::invalid(e.to_string()))?;
    let mut samples = vec![Vec::new(); dataset.classes.len()];
    for sample in &dataset.samples {
        let keys = &mut samples[sample.class];
        if keys.len() < SAMPLES_PER_CLASS {
            keys.push(format!("{prefix}{}", sample.key));
        }
    }
    // Decoding runs on all cores and would hold a server thread; its own
    // thread drives the fetches too, so the runtime's threads stay free.
    let runtime = tokio::runtime::Handle::current();
    let inspection = tokio::task::spawn_blocking(move || {
        runtime.block_on(tread_data::inspect::inspect(
            &dir,
            &dataset,
            INSPECT_CONCURRENCY,
        ))
    })
    .await
    .map_err(|e| Failure::internal(format!("inspecting {}: {e}", q.uri)))?;
    Ok(Json(DatasetView {
        uri: q.uri,
        bucket,
        inspection,
        samples,
    }))
}
