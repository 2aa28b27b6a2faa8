//! The store's part of tread's management API, mounted by `tread up` behind
//! the API token beside the pipeline routes:
//!
//! - `/api/buckets`: NAS buckets (list, create, delete), and per bucket its
//!   objects by prefix, an object's details, deletion, and presigned URLs
//!   that move bytes between a browser and the store directly;
//! - `/api/users`, `/api/groups`, `/api/policies`: who may do what;
//! - `/api/datasets`: the classes, counts and unreadable images under a
//!   prefix.
//!
//! Admin changes go to the store's catalog, and the store reloads at once.
//! Objects are read as an S3 client reads them, through the store's own S3
//! endpoint as the API's user, so what the API shows is what S3 answers.

mod access;
mod buckets;
mod datasets;
mod error;
mod objects;

use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;
use tread_data::S3Access;
use tread_store::NasStore;

pub use error::Failure;

/// The S3 user the API acts as on objects: full access, keys kept in the
/// catalog, shared by every daemon on it.
pub const API_USER: &str = "tread-api";

/// The S3 user `tread up` fetches models for endpoints as: read-only.
pub const DAEMON_USER: &str = "tread-daemon";

/// What the routes share.
pub struct StoreApi {
    store: NasStore,
    s3: S3Access,
    client: aws_sdk_s3::Client,
}

impl StoreApi {
    /// The API over `store`, reaching its objects at `s3` (the store's own
    /// endpoint, with [`API_USER`]'s keys).
    pub fn new(store: NasStore, s3: S3Access) -> Self {
        let client = s3.client();
        Self { store, s3, client }
    }
}

/// Every route of the store's part of the API.
pub fn router(api: StoreApi) -> Router {
    Router::new()
        .route("/api/buckets", get(buckets::list).post(buckets::create))
        .route(
            "/api/buckets/{bucket}",
            axum::routing::delete(buckets::delete),
        )
        .route("/api/buckets/{bucket}/objects", get(objects::list))
        .route(
            "/api/buckets/{bucket}/object",
            get(objects::head).delete(objects::delete),
        )
        .route("/api/buckets/{bucket}/presign", post(objects::presign))
        .route(
            "/api/buckets/{bucket}/uploads",
            post(objects::begin_upload).delete(objects::abort_upload),
        )
        .route(
            "/api/buckets/{bucket}/uploads/complete",
            post(objects::complete_upload),
        )
        .route("/api/users", get(access::users).post(access::create_user))
        .route(
            "/api/users/{user}",
            axum::routing::delete(access::delete_user),
        )
        .route("/api/users/{user}/keys", post(access::rotate_keys))
        .route(
            "/api/groups",
            get(access::groups).post(access::create_group),
        )
        .route(
            "/api/groups/{group}/users/{user}",
            put(access::add_member).delete(access::remove_member),
        )
        .route("/api/groups/{group}/policies", put(access::set_policies))
        .route(
            "/api/policies",
            get(access::policies).post(access::create_policy),
        )
        .route(
            "/api/policies/{policy}",
            get(access::policy).delete(access::delete_policy),
        )
        .route("/api/datasets", get(datasets::inspect))
        .with_state(Arc::new(api))
}
