//! tread's web console: pages for buckets, access, datasets, pipelines,
//! runs, schedules, models, endpoints and instances, rendered on the server from templates shipped
//! inside the binary.
//!
//! The console is a client of the management API: each page asks the same
//! router the CLI talks to, in process and with the API token, and renders
//! the JSON it answers. It never opens a catalog itself, so what it shows
//! is what the API answers. A person signs in with the API token once; the
//! console then keeps a session in an HttpOnly, SameSite=Strict cookie, and
//! every action (a form POST) also carries the session's own form token.

mod access;
mod api;
mod buckets;
mod chart;
mod cost;
mod curves;
mod datasets;
mod endpoints;
mod error;
mod models;
mod pages;
mod session;
mod templates;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use std::sync::Arc;
use tread_serve::auth::ApiToken;
use tread_serve::http::MAX_BODY_BYTES;

pub use api::Api;
pub use error::ConsoleError;

/// Where the console's pages live.
pub const PREFIX: &str = "/console";

/// What every console handler shares.
pub struct Console {
    api: Api,
    sessions: session::Sessions,
    pages: templates::Pages,
}

/// The console's routes in front of `api`: requests under [`PREFIX`] are
/// pages, every other request goes on to `api` unchanged. `token` is the
/// API token a person signs in with.
pub fn router(api: Router, token: ApiToken) -> Router {
    let console = Arc::new(Console {
        api: Api::new(api.clone(), token),
        sessions: session::Sessions::default(),
        pages: templates::Pages::new(),
    });
    let signed_in = Router::new()
        .route("/console", get(pages::overview))
        .route("/console/", get(pages::overview))
        .route("/console/pipelines", get(pages::pipelines))
        .route("/console/pipelines/{name}", get(pages::pipeline))
        .route(
            "/console/pipelines/{name}/apply",
            post(pages::apply_pipeline),
        )
        .route(
            "/console/pipelines/{name}/{action}",
            post(pages::pipeline_action),
        )
        .route("/console/runs", get(pages::runs))
        .route("/console/runs/{id}", get(pages::run))
        .route("/console/runs/{id}/live", get(pages::run_live))
        .route("/console/runs/{id}/cancel", post(pages::cancel_run))
        .route("/console/schedules", get(pages::schedules))
        .route("/console/instances", get(pages::instances))
        .route("/console/endpoints", get(endpoints::endpoints))
        .route("/console/endpoints/{name}", get(endpoints::endpoint))
        .route(
            "/console/endpoints/{name}/try",
            // A photo as large as the inference routes take, not axum's 2 MB.
            post(endpoints::try_it).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            "/console/endpoints/{name}/rollback",
            post(endpoints::rollback),
        )
        .route("/console/models", get(models::models))
        .route("/console/models/compare", get(models::compare))
        .route("/console/models/{name}/{version}", get(models::model))
        .route(
            "/console/models/{name}/{version}/promote",
            post(models::promote),
        )
        .route(
            "/console/buckets",
            get(buckets::buckets).post(buckets::create_bucket),
        )
        .route("/console/buckets/{bucket}", get(buckets::bucket))
        .route("/console/buckets/{bucket}/object", get(buckets::object))
        .route("/console/buckets/{bucket}/download", get(buckets::download))
        .route(
            "/console/buckets/{bucket}/delete",
            get(buckets::confirm_delete).post(buckets::delete),
        )
        .route(
            "/console/buckets/{bucket}/upload/{step}",
            post(buckets::upload_step),
        )
        .route("/console/access", get(access::access))
        .route("/console/access/users", post(access::create_user))
        .route(
            "/console/access/users/{user}/rotate",
            post(access::rotate_keys),
        )
        .route("/console/access/groups", post(access::create_group))
        .route(
            "/console/access/groups/{group}/members",
            post(access::member),
        )
        .route(
            "/console/access/groups/{group}/policies",
            post(access::group_policies),
        )
        .route("/console/access/policies", post(access::create_policy))
        .route(
            "/console/access/{kind}/{name}/delete",
            get(access::confirm_delete).post(access::delete),
        )
        .route("/console/datasets", get(datasets::dataset))
        .route("/console/assets/{script}", get(pages::script))
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/{*rest}", get(pages::not_found))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            session::require_session,
        ));
    Router::new()
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .merge(signed_in)
        .route("/", get(pages::to_console))
        .with_state(console)
        .fallback_service(api)
}
