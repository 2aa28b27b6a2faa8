//! The console's pages and actions. Each page asks the API for what it
//! shows; an API failure becomes an error page with the API's message.

use crate::Console;
use crate::error::ConsoleError;
use crate::session::{ActionForm, Session, check_form};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{StatusCode, Uri};
use minijinja::{Value, context};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::sync::Arc;

type Shared = State<Arc<Console>>;

/// Fire times a pipeline page lists.
const PIPELINE_FIRES: usize = 10;

/// Runs the overview lists.
const RECENT_RUNS: usize = 10;

/// What [`escaped`] leaves as it is: letters, digits and RFC 3986's other
/// unreserved characters, so `handed-ep` stays readable in the address bar.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or query value, escaped for a console or API path.
pub(crate) fn escaped(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Renders `template` with the session's form token added to `values`, or
/// the error page.
pub(crate) fn page(
    console: &Console,
    session: &Session,
    template: &str,
    values: Result<Value, ConsoleError>,
) -> Response {
    match values {
        Ok(values) => {
            let values = context! { form_token => &session.form_token, ..values };
            console.pages.render(template, values, StatusCode::OK)
        }
        Err(e) => console.pages.error(&e),
    }
}

/// `page` as the answer to a form the API refused (400), when `refused`:
/// the form is shown again with the message, and the status says so.
pub(crate) fn refusal_status(mut page: Response, refused: bool) -> Response {
    if refused && page.status() == StatusCode::OK {
        *page.status_mut() = StatusCode::BAD_REQUEST;
    }
    page
}

/// Where an action leads: the page at `to`, or the error page when the
/// action failed (so a failed action never shows a page claiming success).
pub(crate) fn after_action(console: &Console, to: Result<String, ConsoleError>) -> Response {
    match to {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => console.pages.error(&e),
    }
}

/// `/` → the console.
pub async fn to_console() -> Redirect {
    Redirect::to("/console/")
}

/// Health, recent runs, endpoints and today's and this month's cost.
pub async fn overview(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    let values = async {
        let runs = c.api.get(&format!("/api/runs?limit={RECENT_RUNS}")).await?;
        let endpoints = c.api.get("/api/endpoints").await?;
        let pipelines = c.api.get("/api/pipelines").await?;
        let instances = c.api.get("/api/instances").await?;
        let today = crate::cost::today();
        Ok::<_, ConsoleError>(context! {
            runs => Value::from_serialize(&runs),
            endpoints => Value::from_serialize(&endpoints),
            pipelines => Value::from_serialize(&pipelines),
            cost => Value::from_serialize(crate::cost::Cost::of(&instances, &today)),
        })
    }
    .await;
    page(&c, &s, "overview.html", values)
}

/// Every instance, with cost today, this month, per day and per pipeline.
pub async fn instances(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    let values = c.api.get("/api/instances").await.map(|instances| {
        context! {
            cost => Value::from_serialize(crate::cost::Cost::of(&instances, &crate::cost::today())),
            breakdown => Value::from_serialize(crate::cost::Breakdown::of(&instances)),
            instances => Value::from_serialize(&instances),
        }
    });
    page(&c, &s, "instances.html", values)
}

/// Every pipeline with its schedule, state and last run.
pub async fn pipelines(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    let values = c
        .api
        .get("/api/pipelines")
        .await
        .map(|p| context! { pipelines => Value::from_serialize(&p) });
    page(&c, &s, "pipelines.html", values)
}

/// One pipeline: its file, its next fire times, its runs, and its actions.
pub async fn pipeline(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    pipeline_page(&c, &s, &name, None).await
}

/// An edited pipeline file the API refused: the text as sent, the
/// parser's message, and the line it names.
#[derive(Serialize)]
struct RefusedFile {
    source: String,
    message: String,
    line: Option<usize>,
}

async fn pipeline_page(
    c: &Console,
    s: &Session,
    name: &str,
    refused: Option<RefusedFile>,
) -> Response {
    let refusing = refused.is_some();
    let values = async {
        let pipeline = c
            .api
            .get(&format!("/api/pipelines/{}", escaped(name)))
            .await?;
        let schedule = pipeline.get("schedule").and_then(Json::as_str);
        let fires = match schedule {
            Some(expr) => Some(
                c.api
                    .get(&format!(
                        "/api/schedules/next?expr={}&n={PIPELINE_FIRES}",
                        escaped(expr)
                    ))
                    .await?,
            ),
            None => None,
        };
        let runs = c
            .api
            .get(&format!("/api/runs?pipeline={}&limit=50", escaped(name)))
            .await?;
        Ok::<_, ConsoleError>(context! {
            pipeline => Value::from_serialize(&pipeline),
            fires => Value::from_serialize(&fires),
            runs => Value::from_serialize(&runs),
            refused => Value::from_serialize(&refused),
        })
    }
    .await;
    refusal_status(page(c, s, "pipeline.html", values), refusing)
}

/// The edit form of a pipeline's file.
#[derive(Deserialize)]
pub struct EditedFile {
    form_token: String,
    source: String,
}

/// Applies an edited pipeline file, then shows the pipeline it defines; a
/// file the parser refuses is shown again with its message and the line it
/// names, and nothing is saved.
pub async fn apply_pipeline(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<EditedFile>,
) -> Response {
    if let Err(e) = check_form(&s, &form.form_token) {
        return c.pages.error(&e);
    }
    // A browser sends a textarea's lines ending in CR LF.
    let source = form.source.replace("\r\n", "\n");
    match c.api.post("/api/pipelines", source.clone()).await {
        Ok(applied) => {
            let applied = applied.get("name").and_then(Json::as_str).unwrap_or(&name);
            Redirect::to(&format!("/console/pipelines/{}", escaped(applied))).into_response()
        }
        Err(ConsoleError::Api { status, message }) if status.is_client_error() => {
            let line = error_line(&message);
            let refused = RefusedFile {
                source,
                message,
                line,
            };
            pipeline_page(&c, &s, &name, Some(refused)).await
        }
        Err(e) => c.pages.error(&e),
    }
}

/// The line a parser's message names: serde_json's `… at line 5 column 6`
/// or the TOML parser's `… at line 5, column 6`.
pub(crate) fn error_line(message: &str) -> Option<usize> {
    let (_, after) = message.split_once(" at line ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Pause, resume or run a pipeline now, then show where that led.
pub async fn pipeline_action(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        let base = format!("/api/pipelines/{}", escaped(&name));
        let back = format!("/console/pipelines/{}", escaped(&name));
        match action.as_str() {
            "pause" | "resume" => {
                c.api.post(&format!("{base}/{action}"), "").await?;
                Ok::<_, ConsoleError>(back)
            }
            "run" => {
                let run = c.api.post(&format!("{base}/runs"), "").await?;
                let id = run.get("id").and_then(Json::as_i64).unwrap_or_default();
                Ok(format!("/console/runs/{id}"))
            }
            _ => Err(ConsoleError::NotFound(format!("{back}/{action}"))),
        }
    }
    .await;
    after_action(&c, done)
}

/// The runs query of the runs page.
#[derive(Deserialize)]
pub struct RunsFilter {
    pipeline: Option<String>,
    state: Option<String>,
}

/// Runs, newest first, by pipeline and state.
pub async fn runs(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Query(filter): Query<RunsFilter>,
) -> Response {
    let pipeline = filter.pipeline.filter(|p| !p.is_empty());
    let state = filter.state.filter(|p| !p.is_empty());
    let values = async {
        let mut query = "/api/runs?limit=200".to_owned();
        for (name, value) in [("pipeline", &pipeline), ("state", &state)] {
            if let Some(value) = value {
                query.push_str(&format!("&{name}={}", escaped(value)));
            }
        }
        let runs = c.api.get(&query).await?;
        let pipelines = c.api.get("/api/pipelines").await?;
        Ok::<_, ConsoleError>(context! {
            runs => Value::from_serialize(&runs),
            pipelines => Value::from_serialize(&pipelines),
            pipeline,
            state,
        })
    }
    .await;
    page(&c, &s, "runs.html", values)
}

/// One run: its steps, its instance, every training step's curves and
/// every step's log. While the run goes on, the page's script swaps in
/// [`run_live`] every few seconds, so the curves grow and the logs follow.
pub async fn run(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    page(&c, &s, "run.html", run_values(&c, id).await)
}

/// The live part of a run's page alone, for its script.
pub async fn run_live(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
) -> Response {
    page(&c, &s, "_run_live.html", run_values(&c, id).await)
}

async fn run_values(c: &Console, id: i64) -> Result<Value, ConsoleError> {
    // A missing run is the API's 404 ("run N does not exist"), shown as a
    // 404 page.
    let run = c.api.get(&format!("/api/runs/{id}")).await?;
    let steps = run
        .get("steps")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let (mut logs, mut curves) = (Vec::new(), Vec::new());
    for step in steps {
        let index = step.get("index").and_then(Json::as_i64).unwrap_or_default();
        if step.get("metrics_uri").is_some() {
            let path = format!("/api/runs/{id}/metrics?step={index}");
            curves.push(crate::curves::Curves::of(&c.api.get(&path).await?)?);
        }
        let log = c
            .api
            .get(&format!("/api/runs/{id}/logs?step={index}"))
            .await?;
        logs.push(serde_json::json!({ "step": step, "text": log.get("text") }));
    }
    let state = run.get("state").and_then(Json::as_str).unwrap_or_default();
    Ok(context! {
        live => matches!(state, "queued" | "running"),
        run => Value::from_serialize(&run),
        logs => Value::from_serialize(&logs),
        curves => Value::from_serialize(&curves),
    })
}

/// Cancels a run, then shows it.
pub async fn cancel_run(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        c.api.post(&format!("/api/runs/{id}/cancel"), "").await?;
        Ok(format!("/console/runs/{id}"))
    }
    .await;
    after_action(&c, done)
}

/// The schedule page's query.
#[derive(Deserialize)]
pub struct ScheduleForm {
    expr: Option<String>,
    n: Option<usize>,
}

/// The next fire times of any expression, or the parser's message.
pub async fn schedules(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Query(q): Query<ScheduleForm>,
) -> Response {
    let expr = q.expr.filter(|e| !e.trim().is_empty());
    let n = q.n.unwrap_or(PIPELINE_FIRES);
    let (fires, message) = match &expr {
        None => (None, None),
        Some(e) => match c
            .api
            .get(&format!("/api/schedules/next?expr={}&n={n}", escaped(e)))
            .await
        {
            Ok(fires) => (Some(fires), None),
            Err(ConsoleError::Api { status, message }) if status.is_client_error() => {
                (None, Some(message))
            }
            Err(e) => return c.pages.error(&e),
        },
    };
    let values = context! {
        expr,
        n,
        fires => Value::from_serialize(&fires),
        message,
    };
    page(&c, &s, "schedules.html", Ok(values))
}

/// The console's two scripts, shipped in the binary: `upload.js` (a bucket
/// page's files straight to the store) and `live.js` (a running run's page
/// kept current).
pub async fn script(State(c): Shared, Path(name): Path<String>) -> Response {
    let script = match name.as_str() {
        "upload.js" => include_str!("../assets/upload.js"),
        "live.js" => include_str!("../assets/live.js"),
        _ => return not_found_page(&c, &format!("/console/assets/{name}")),
    };
    let javascript = [(http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")];
    (javascript, script).into_response()
}

/// Any other console path.
pub async fn not_found(State(c): Shared, uri: Uri) -> Response {
    not_found_page(&c, uri.path())
}

/// The 404 page for a console path.
pub(crate) fn not_found_page(console: &Console, path: &str) -> Response {
    console
        .pages
        .error(&ConsoleError::NotFound(format!("a console page at {path}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_a_parser_names_is_found() {
        let json = "policy bad: invalid policy document: expected `,` or `}` at line 5 column 6";
        assert_eq!(error_line(json), Some(5));
        let toml = "TOML parse error at line 12, column 3\n   |\n12 | kind =";
        assert_eq!(error_line(toml), Some(12));
        assert_eq!(
            error_line("policy must contain at least one Statement"),
            None
        );
    }
}
