//! Signing in with the API token, the session cookie, and the form token
//! every action carries.

use crate::Console;
use crate::error::ConsoleError;
use axum::Form;
use axum::extract::{Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tread_serve::auth::same_secret;

/// The session cookie's name.
pub const COOKIE: &str = "tread_console";

/// A session ends after this long without a request.
const IDLE_LIMIT: Duration = Duration::from_secs(12 * 3600);

/// Random characters in a session id and a form token.
const SECRET_LEN: usize = 40;

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token every form of this session carries.
    pub form_token: String,
    last_seen: Instant,
}

/// The signed-in sessions, by id. Kept in memory: a restarted daemon asks
/// everyone to sign in again, which a token-based sign-in makes cheap.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn secret() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(SECRET_LEN)
        .map(char::from)
        .collect()
}

impl Sessions {
    /// A new session; its id goes into the cookie.
    fn open(&self) -> String {
        let id = secret();
        let session = Session {
            form_token: secret(),
            last_seen: Instant::now(),
        };
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        by_id.retain(|_, s| s.last_seen.elapsed() < IDLE_LIMIT);
        by_id.insert(id.clone(), session);
        id
    }

    /// The live session with this id, touched.
    fn find(&self, id: &str) -> Option<Session> {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        let session = by_id.get_mut(id)?;
        if session.last_seen.elapsed() >= IDLE_LIMIT {
            by_id.remove(id);
            return None;
        }
        session.last_seen = Instant::now();
        Some(session.clone())
    }

    fn close(&self, id: &str) {
        let mut by_id = self.by_id.lock().unwrap_or_else(PoisonError::into_inner);
        by_id.remove(id);
    }
}

/// The session id the request's cookie names, if any.
fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Lets a request through only with a live session, which it hands to
/// the page; otherwise sends the browser to sign in, and back here after.
pub async fn require_session(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = cookie_id(request.headers()).and_then(|id| console.sessions.find(&id));
    match session {
        Some(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        None => {
            let wanted = request
                .uri()
                .path_and_query()
                .map_or(crate::PREFIX, |p| p.as_str());
            let next = utf8_percent_encode(wanted, NON_ALPHANUMERIC);
            Redirect::to(&format!("{}/sign-in?next={next}", crate::PREFIX)).into_response()
        }
    }
}

/// Where to go after signing in: a console page, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") && !n.contains('\\') => n,
        _ => crate::PREFIX,
    }
}

/// The sign-in page's query.
#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// The sign-in form.
pub async fn sign_in_page(
    State(console): State<Arc<Console>>,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    console.pages.sign_in(next, None, StatusCode::OK)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

/// Checks the token and opens a session.
pub async fn sign_in(
    State(console): State<Arc<Console>>,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if !console.api.is_token(form.token.trim()) {
        let message = "That is not this server's API token. It is in the data dir's api-token file (readable by its owner only).";
        return console
            .pages
            .sign_in(next, Some(message), StatusCode::UNAUTHORIZED);
    }
    let id = console.sessions.open();
    redirect_setting_cookie(&console, next, &id)
}

/// A redirect to `to` that sets the session cookie to `id`, or clears it
/// when `id` is empty.
fn redirect_setting_cookie(console: &Console, to: &str, id: &str) -> Response {
    let lifetime = if id.is_empty() { "; Max-Age=0" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path={}; HttpOnly; SameSite=Strict{lifetime}",
        crate::PREFIX
    );
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            let mut response = Redirect::to(to).into_response();
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(e) => console
            .pages
            .error(&ConsoleError::Internal(format!("session cookie: {e}"))),
    }
}

/// A form that only carries its token (sign-out, pause, cancel…).
#[derive(Deserialize)]
pub struct ActionForm {
    /// The session's form token.
    pub form_token: String,
}

/// Refuses a form whose `form_token` is not the session's.
pub fn check_form(session: &Session, form_token: &str) -> Result<(), ConsoleError> {
    if same_secret(&session.form_token, form_token) {
        Ok(())
    } else {
        Err(ConsoleError::Forged)
    }
}

/// Ends the session and clears the cookie.
pub async fn sign_out(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(e) = check_form(&session, &form.form_token) {
        return console.pages.error(&e);
    }
    if let Some(id) = cookie_id(&headers) {
        console.sessions.close(&id);
    }
    redirect_setting_cookie(&console, &format!("{}/sign-in", crate::PREFIX), "")
}
