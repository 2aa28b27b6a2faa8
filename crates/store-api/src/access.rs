//! `/api/users`, `/api/groups`, `/api/policies`: who may do what in the
//! store, as `tread s3 user|group|policy` manages it. A user's secret key
//! is in the answer that creates or rotates it, and nowhere else.

use crate::error::Failure;
use crate::{API_USER, DAEMON_USER, StoreApi};
use axum::Json;
use axum::extract::{Path, State};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tread_store::catalog::{GroupInfo, UserInfo, UserKeys};
use tread_store::iam::policy::Policy;

type Shared = State<Arc<StoreApi>>;
type Answer<T> = Result<Json<T>, Failure>;

/// Every user with its groups (never a secret).
pub async fn users(State(api): Shared) -> Answer<Vec<UserInfo>> {
    Ok(Json(api.store.catalog().user_list().await?))
}

/// What `POST /api/users` takes.
#[derive(Deserialize)]
pub struct NewUser {
    name: String,
}

/// Creates a user; the answer holds its keys, shown this once.
pub async fn create_user(
    State(api): Shared,
    Json(new): Json<NewUser>,
) -> Result<(StatusCode, Json<UserKeys>), Failure> {
    let keys = api.store.catalog().user_create(&new.name).await?;
    api.store.reload().await?;
    Ok((StatusCode::CREATED, Json(keys)))
}

/// Replaces a user's keys; the old ones stop working at once.
pub async fn rotate_keys(State(api): Shared, Path(user): Path<String>) -> Answer<UserKeys> {
    let keys = api.store.catalog().user_rotate_key(&user).await?;
    api.store.reload().await?;
    Ok(Json(keys))
}

/// Deletes a user and its memberships; tread's own users stay, as the
/// daemons act through them.
pub async fn delete_user(
    State(api): Shared,
    Path(user): Path<String>,
) -> Result<StatusCode, Failure> {
    if [API_USER, DAEMON_USER].contains(&user.as_str()) {
        return Err(Failure::conflict(format!(
            "{user} is tread's own user: the daemons act through it, so it cannot be deleted"
        )));
    }
    api.store.catalog().user_delete(&user).await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every group with its members and policies.
pub async fn groups(State(api): Shared) -> Answer<Vec<GroupInfo>> {
    Ok(Json(api.store.catalog().group_list().await?))
}

/// What `POST /api/groups` takes.
#[derive(Deserialize)]
pub struct NewGroup {
    name: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    policies: Vec<String>,
}

/// Creates a group with members and policies.
pub async fn create_group(
    State(api): Shared,
    Json(new): Json<NewGroup>,
) -> Result<(StatusCode, Json<GroupInfo>), Failure> {
    let catalog = api.store.catalog();
    catalog
        .group_create(&new.name, &new.users, &new.policies)
        .await?;
    api.store.reload().await?;
    let group = GroupInfo {
        name: new.name,
        users: new.users,
        policies: new.policies,
    };
    Ok((StatusCode::CREATED, Json(group)))
}

/// Adds a user to a group.
pub async fn add_member(
    State(api): Shared,
    Path((group, user)): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    api.store.catalog().group_add_user(&group, &user).await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user from a group.
pub async fn remove_member(
    State(api): Shared,
    Path((group, user)): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    api.store.catalog().group_remove_user(&group, &user).await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes the body's list exactly the group's policies.
pub async fn set_policies(
    State(api): Shared,
    Path(group): Path<String>,
    Json(policies): Json<Vec<String>>,
) -> Result<StatusCode, Failure> {
    api.store
        .catalog()
        .group_set_policies(&group, &policies)
        .await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A policy and its document.
#[derive(Serialize)]
pub struct PolicyView {
    name: String,
    /// FullAccess and ReadOnlyAccess are built in and cannot change.
    builtin: bool,
    document: String,
}

/// Every policy with its document: the built-in ones, then custom ones.
pub async fn policies(State(api): Shared) -> Answer<Vec<PolicyView>> {
    let catalog = api.store.catalog();
    let mut views = Vec::new();
    for name in catalog.policy_list().await? {
        let document = catalog.policy_document(&name).await?;
        views.push(view(name, document));
    }
    Ok(Json(views))
}

/// One policy with its document.
pub async fn policy(State(api): Shared, Path(name): Path<String>) -> Answer<PolicyView> {
    let document = api.store.catalog().policy_document(&name).await?;
    Ok(Json(view(name, document)))
}

/// What `POST /api/policies` takes.
#[derive(Deserialize)]
pub struct NewPolicy {
    name: String,
    document: String,
}

/// Creates a custom policy; a document that does not parse is refused with
/// the parser's message (its line and column when the JSON is malformed).
pub async fn create_policy(
    State(api): Shared,
    Json(new): Json<NewPolicy>,
) -> Result<(StatusCode, Json<PolicyView>), Failure> {
    api.store
        .catalog()
        .policy_create(&new.name, &new.document)
        .await?;
    api.store.reload().await?;
    Ok((StatusCode::CREATED, Json(view(new.name, new.document))))
}

/// Deletes a custom policy; groups that had it lose it.
pub async fn delete_policy(
    State(api): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, Failure> {
    api.store.catalog().policy_delete(&name).await?;
    api.store.reload().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn view(name: String, document: String) -> PolicyView {
    PolicyView {
        builtin: Policy::builtin(&name).is_some(),
        name,
        document,
    }
}
