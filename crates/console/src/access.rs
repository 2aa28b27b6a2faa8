//! The access page: users (keys shown once, at creation and rotation),
//! groups and their members and policies, and policies, whose documents
//! are checked by the store's parser with its message shown on the form.

use crate::Console;
use crate::api::Method;
use crate::error::ConsoleError;
use crate::pages::{after_action, error_line, escaped, page, refusal_status};
use crate::session::{ActionForm, Session, check_form};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{HeaderValue, header};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use std::sync::Arc;

type Shared = State<Arc<Console>>;

/// Where the access page is.
const ACCESS: &str = "/console/access";

/// A refused form, shown again on the page with the API's message.
#[derive(Default, Serialize)]
struct Refused {
    /// Which form: `user`, `group`, `member` or `policy`.
    form: &'static str,
    message: String,
    /// What was entered, to fill the form again.
    entered: Json,
    /// The line of a policy document the parser stopped at.
    line: Option<usize>,
}

/// Users, groups and policies, with their forms.
pub async fn access(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    access_page(&c, &s, None).await
}

async fn access_page(c: &Console, s: &Session, refused: Option<Refused>) -> Response {
    let refusing = refused.is_some();
    let values = async {
        let users = c.api.get("/api/users").await?;
        let groups = c.api.get("/api/groups").await?;
        let policies = c.api.get("/api/policies").await?;
        Ok::<_, ConsoleError>(context! {
            users => Value::from_serialize(&users),
            groups => Value::from_serialize(&groups),
            policies => Value::from_serialize(&policies),
            refused => Value::from_serialize(&refused),
        })
    }
    .await;
    refusal_status(page(c, s, "access.html", values), refusing)
}

/// One access form's call to the API: which form it came from, and what
/// it asks.
struct Call {
    /// `user`, `group`, `member` or `policy`.
    form: &'static str,
    method: Method,
    path: String,
    body: Json,
}

/// Checks the form's token and sends `call` to the API; its answer is
/// shown by `shown`. A refusal (4xx) shows the access page again with the
/// message beside the form, anything else the error page.
async fn act(
    c: &Console,
    s: &Session,
    form_token: &str,
    call: Call,
    shown: impl FnOnce(Json) -> Response,
) -> Response {
    if let Err(e) = check_form(s, form_token) {
        return c.pages.error(&e);
    }
    match c.api.send_json(call.method, &call.path, &call.body).await {
        Ok(answer) => shown(answer),
        Err(ConsoleError::Api { status, message }) if status.is_client_error() => {
            let line = (call.form == "policy")
                .then(|| error_line(&message))
                .flatten();
            let refused = Refused {
                form: call.form,
                message,
                entered: call.body,
                line,
            };
            access_page(c, s, Some(refused)).await
        }
        Err(e) => c.pages.error(&e),
    }
}

/// After a change: the access page, showing it.
fn back_to_access(_: Json) -> Response {
    Redirect::to(ACCESS).into_response()
}

/// A form with one name.
#[derive(Deserialize)]
pub struct NameForm {
    form_token: String,
    name: String,
}

/// Creates a user and shows its keys, this once.
pub async fn create_user(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Form(form): Form<NameForm>,
) -> Response {
    let call = Call {
        form: "user",
        method: Method::POST,
        path: "/api/users".to_owned(),
        body: json!({ "name": form.name.trim() }),
    };
    let shown = |keys: Json| keys_page(&c, &s, &keys, "created");
    act(&c, &s, &form.form_token, call, shown).await
}

/// Replaces a user's keys and shows the new ones, this once.
pub async fn rotate_keys(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(user): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let rotated = async {
        check_form(&s, &form.form_token)?;
        let path = format!("/api/users/{}/keys", escaped(&user));
        c.api.post(&path, "").await
    }
    .await;
    match rotated {
        Ok(keys) => keys_page(&c, &s, &keys, "rotated"),
        Err(e) => c.pages.error(&e),
    }
}

/// A user's new keys. Never stored by the browser: the answer says
/// `no-store`, so neither the cache nor the back button shows it again.
fn keys_page(c: &Console, s: &Session, keys: &Json, done: &str) -> Response {
    let values = context! { keys => Value::from_serialize(keys), done };
    let mut response = page(c, s, "keys.html", Ok(values));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What the delete question can be about.
pub async fn confirm_delete(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let what = match kind.as_str() {
        "users" => "user",
        "policies" => "policy",
        _ => return crate::pages::not_found_page(&c, &format!("{ACCESS}/{kind}")),
    };
    let values = context! {
        question => format!("Delete {what} {name}?"),
        action => format!("{ACCESS}/{kind}/{}/delete", escaped(&name)),
        back => ACCESS,
    };
    page(&c, &s, "confirm.html", Ok(values))
}

/// Deletes a user or a custom policy.
pub async fn delete(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((kind, name)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        match kind.as_str() {
            "users" | "policies" => {
                c.api
                    .delete(&format!("/api/{kind}/{}", escaped(&name)))
                    .await?;
                Ok(ACCESS.to_owned())
            }
            _ => Err(ConsoleError::NotFound(format!("{ACCESS}/{kind}"))),
        }
    }
    .await;
    after_action(&c, done)
}

/// The create-group form: members and policies comma-separated.
#[derive(Deserialize)]
pub struct GroupForm {
    form_token: String,
    name: String,
    #[serde(default)]
    users: String,
    #[serde(default)]
    policies: String,
}

fn listed(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Creates a group.
pub async fn create_group(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Form(form): Form<GroupForm>,
) -> Response {
    let call = Call {
        form: "group",
        method: Method::POST,
        path: "/api/groups".to_owned(),
        body: json!({
            "name": form.name.trim(), "users": listed(&form.users), "policies": listed(&form.policies),
        }),
    };
    act(&c, &s, &form.form_token, call, back_to_access).await
}

/// The member form: a user to add to or remove from a group.
#[derive(Deserialize)]
pub struct MemberForm {
    form_token: String,
    user: String,
    /// `add` or `remove`.
    change: String,
}

/// Adds a user to a group or removes one.
pub async fn member(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(group): Path<String>,
    Form(form): Form<MemberForm>,
) -> Response {
    let method = match form.change.as_str() {
        "remove" => Method::DELETE,
        _ => Method::PUT,
    };
    let user = form.user.trim();
    let call = Call {
        form: "member",
        method,
        path: format!("/api/groups/{}/users/{}", escaped(&group), escaped(user)),
        body: json!({ "group": group, "user": user }),
    };
    act(&c, &s, &form.form_token, call, back_to_access).await
}

/// The group-policies form: exactly these policies, comma-separated.
#[derive(Deserialize)]
pub struct GroupPoliciesForm {
    form_token: String,
    policies: String,
}

/// Makes a group's policies exactly the ones given.
pub async fn group_policies(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(group): Path<String>,
    Form(form): Form<GroupPoliciesForm>,
) -> Response {
    let call = Call {
        form: "member",
        method: Method::PUT,
        path: format!("/api/groups/{}/policies", escaped(&group)),
        body: Json::from(listed(&form.policies)),
    };
    act(&c, &s, &form.form_token, call, back_to_access).await
}

/// The create-policy form.
#[derive(Deserialize)]
pub struct PolicyForm {
    form_token: String,
    name: String,
    document: String,
}

/// Creates a custom policy; a document the parser refuses is shown again
/// with the message and the line it names marked.
pub async fn create_policy(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Form(form): Form<PolicyForm>,
) -> Response {
    let call = Call {
        form: "policy",
        method: Method::POST,
        path: "/api/policies".to_owned(),
        body: json!({ "name": form.name.trim(), "document": form.document }),
    };
    act(&c, &s, &form.form_token, call, back_to_access).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_in_a_field_is_split_at_commas() {
        assert_eq!(listed(" alice, ,bob "), vec!["alice", "bob"]);
    }
}
