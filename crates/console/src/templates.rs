//! The page templates, shipped inside the binary and parsed once at start.
//!
//! minijinja rather than a compile-time template crate: it is already in
//! tread's build (tract's), escapes HTML by default for `.html` templates,
//! and renders the API's JSON as it comes. A test renders every template,
//! so a template that does not parse fails the build's tests, not a page.

use crate::error::ConsoleError;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use minijinja::{Environment, Value, context};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    (
        "pipelines.html",
        include_str!("../templates/pipelines.html"),
    ),
    ("pipeline.html", include_str!("../templates/pipeline.html")),
    ("runs.html", include_str!("../templates/runs.html")),
    ("run.html", include_str!("../templates/run.html")),
    (
        "schedules.html",
        include_str!("../templates/schedules.html"),
    ),
    ("models.html", include_str!("../templates/models.html")),
    ("model.html", include_str!("../templates/model.html")),
    ("compare.html", include_str!("../templates/compare.html")),
    (
        "endpoints.html",
        include_str!("../templates/endpoints.html"),
    ),
    ("endpoint.html", include_str!("../templates/endpoint.html")),
    (
        "instances.html",
        include_str!("../templates/instances.html"),
    ),
    ("buckets.html", include_str!("../templates/buckets.html")),
    ("bucket.html", include_str!("../templates/bucket.html")),
    ("object.html", include_str!("../templates/object.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("access.html", include_str!("../templates/access.html")),
    ("keys.html", include_str!("../templates/keys.html")),
    ("dataset.html", include_str!("../templates/dataset.html")),
    (
        "_run_live.html",
        include_str!("../templates/_run_live.html"),
    ),
    (
        "_confusion.html",
        include_str!("../templates/_confusion.html"),
    ),
    (
        "_runs_table.html",
        include_str!("../templates/_runs_table.html"),
    ),
];

/// The parsed templates.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Parses every template. A template that does not parse is a bug that
    /// the tests catch; here it is logged and its pages fail visibly.
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("console template {name} does not parse: {e}");
            }
        }
        Self { env }
    }

    /// Renders `name` with `values` as a page with `status`.
    pub fn render(&self, name: &str, values: Value, status: StatusCode) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(values)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("console template {name}: {e:#}");
                let failure = ConsoleError::Internal(format!("page {name} could not be drawn"));
                (failure.status(), Html(failure.to_string())).into_response()
            }
        }
    }

    /// The sign-in page, with the reason a previous attempt failed.
    pub fn sign_in(&self, next: &str, message: Option<&str>, status: StatusCode) -> Response {
        self.render("sign_in.html", context! { next, message }, status)
    }

    /// A page explaining `error`, with a way back.
    pub fn error(&self, error: &ConsoleError) -> Response {
        let status = error.status();
        let values = context! {
            status => status.as_u16(),
            reason => status.canonical_reason().unwrap_or("error"),
            message => error.to_string(),
        };
        self.render("error.html", values, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            let added = env.add_template(name, source);
            assert!(added.is_ok(), "{name}: {added:?}");
        }
    }
}
