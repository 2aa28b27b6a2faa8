//! The named endpoints a server answers for: which model each serves, and
//! the deploys, rollbacks and deletes that change that without downtime.

use crate::batcher::{BatchOptions, Batcher};
use crate::catalog::{AlsoRecord, Catalog, NewRevision, Revision};
use crate::contract::Contract;
use crate::metrics::Metrics;
use crate::model::{LoadError, LoadedModel, ModelInfo, fetch_and_load};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use thiserror::Error;

/// Why an endpoint could not be changed.
#[derive(Debug, Error)]
pub enum DeployError {
    /// The endpoint name is not allowed.
    #[error(
        "endpoint name {0:?} is not valid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit"
    )]
    InvalidName(String),
    /// No endpoint has that name.
    #[error("endpoint {0} does not exist")]
    NotFound(String),
    /// Rollback asked of an endpoint that never served another model.
    #[error("endpoint {0} has no earlier model to roll back to")]
    NoPrevious(String),
    /// `rollback --to` named a version the endpoint never served.
    #[error("endpoint {endpoint} never served version {version}; its history holds {known}")]
    UnknownVersion {
        /// The endpoint.
        endpoint: String,
        /// The version asked for.
        version: String,
        /// The versions it did serve, comma-separated.
        known: String,
    },
    /// `rollback --to` named the version the endpoint serves now.
    #[error("endpoint {endpoint} already serves version {version}")]
    AlreadyServes {
        /// The endpoint.
        endpoint: String,
        /// The version it serves.
        version: String,
    },
    /// The new model would change what the endpoint's clients rely on, and
    /// that was not asked for.
    #[error(
        "{what} would change endpoint {endpoint}'s contract, which its clients rely on:\n  {changes}\n  now: {current}\n  new: {new}\npass --allow-contract-change (API: \"allow_contract_change\": true) to change the contract on purpose, or deploy the model to a new endpoint",
        changes = changes.join("\n  ")
    )]
    ContractChange {
        /// The endpoint.
        endpoint: String,
        /// `deploying <uri>` or `rolling back to <version>`.
        what: String,
        /// What the endpoint promises now.
        current: Box<Contract>,
        /// What the new model would promise.
        new: Box<Contract>,
        /// The parts that differ, one line each.
        changes: Vec<String>,
    },
    /// The model could not be fetched, checked or warmed up; the endpoint
    /// keeps what it served.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The catalog database failed.
    #[error(transparent)]
    Catalog(#[from] tread_catalog::DbError),
    /// The inference thread could not start.
    #[error("cannot start the inference thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A model taking traffic on an endpoint. Requests hold it for their whole
/// life, so a swap never cuts one short.
pub struct Deployment {
    /// The endpoint's name.
    pub endpoint: String,
    /// What the model is.
    pub info: ModelInfo,
    /// The revision that put it there.
    pub revision: Revision,
    batcher: Batcher,
}

impl Deployment {
    /// Class probabilities for one preprocessed image.
    pub async fn infer(&self, input: Vec<f32>) -> Result<Vec<f32>, String> {
        self.batcher.infer(input).await
    }
}

/// An endpoint as `describe` and `list` show it.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointView {
    /// Its name.
    pub name: String,
    /// `InService`, or `Failed` when its model could not be loaded at start.
    pub status: &'static str,
    /// The model it serves.
    pub model: Option<ModelInfo>,
    /// Why it is not in service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The path that answers predictions.
    pub invocations: String,
    /// Every deploy and rollback, oldest first.
    pub history: Vec<Revision>,
}

/// How a deploy may change an endpoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeployOptions {
    /// Let the new model change the classes or the input the endpoint's
    /// clients rely on; the change is recorded in the endpoint's history.
    pub allow_contract_change: bool,
}

/// Where a rollback goes, and whether it may change the contract.
#[derive(Clone, Debug, Default)]
pub struct RollbackOptions {
    /// The model version to return to; `None` goes one step back.
    pub to: Option<String>,
    /// Let the older model change the classes or the input (a rollback
    /// across a deploy that changed them changes them back).
    pub allow_contract_change: bool,
}

/// Every endpoint of the server.
pub struct Endpoints {
    live: RwLock<BTreeMap<String, Arc<Deployment>>>,
    failed: RwLock<BTreeMap<String, String>>,
    catalog: Catalog,
    options: BatchOptions,
    metrics: Arc<Metrics>,
    changes: tokio::sync::Mutex<()>,
    /// The catalog's generation the live models were last checked against.
    synced: std::sync::atomic::AtomicI64,
}

/// How often a server looks whether another process (a second `tread up`
/// on the same catalog) deployed or rolled back: half the time the issue
/// allows a deploy to reach every daemon, leaving the rest for the load.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

impl Endpoints {
    /// Opens the endpoint catalog in `db`.
    pub async fn open(
        db: tread_catalog::Database,
        options: BatchOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeployError> {
        Ok(Self {
            live: RwLock::default(),
            failed: RwLock::default(),
            catalog: Catalog::new(db).await?,
            options,
            metrics,
            changes: tokio::sync::Mutex::new(()),
            synced: std::sync::atomic::AtomicI64::new(-1),
        })
    }

    /// The metrics the endpoints report to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads every endpoint's active model, as after a restart. An endpoint
    /// whose model fails stays listed as `Failed` with the reason.
    pub async fn restore(&self) -> Result<(), DeployError> {
        self.sync().await
    }

    /// Brings the live models in line with the catalog when another process
    /// changed it: an endpoint whose active revision is not the one loaded
    /// gets that revision's model, loaded beside the old one and swapped in;
    /// a deleted endpoint goes. A model that fails to load leaves the old
    /// one serving (or, with none, the endpoint `Failed`).
    pub async fn sync(&self) -> Result<(), DeployError> {
        use std::sync::atomic::Ordering;
        let generation = self.catalog.generation().await?;
        if generation == self.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_change_at_a_time = self.changes.lock().await;
        let names = self.catalog.endpoints().await?;
        for name in &names {
            self.sync_one(name).await?;
        }
        let gone: Vec<String> = read(&self.live)
            .keys()
            .chain(read(&self.failed).keys())
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in gone {
            self.forget(&name);
            tracing::info!(endpoint = %name, "endpoint deleted elsewhere");
        }
        self.synced.store(generation, Ordering::Release);
        Ok(())
    }

    async fn sync_one(&self, name: &str) -> Result<(), DeployError> {
        let Some(active) = self.active_revision(name).await? else {
            return Ok(());
        };
        if self
            .current(name)
            .is_some_and(|d| d.revision.seq == active.seq)
        {
            return Ok(());
        }
        match fetch_and_load(&active.model_uri).await {
            Ok(model) => self.install(name, model, active),
            Err(e) => {
                tracing::error!(endpoint = %name, error = %e, "the endpoint's model could not be loaded");
                if self.current(name).is_none() {
                    write(&self.failed).insert(name.to_string(), e.to_string());
                }
                Ok(())
            }
        }
    }

    /// Follows changes other processes make to the endpoints, every
    /// [`FOLLOW_INTERVAL`], for as long as the future is polled.
    pub async fn follow(&self) {
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.sync().await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot follow endpoint changes; the endpoints keep serving what they have");
                }
                Err(_) => {}
            }
        }
    }

    /// Why a defined endpoint has no model loaded, if that is so.
    pub fn unavailable(&self, name: &str) -> Option<String> {
        read(&self.failed).get(name).cloned()
    }

    /// Whether every defined endpoint has its model loaded.
    pub fn all_in_service(&self) -> bool {
        read(&self.failed).is_empty()
    }

    /// The model an endpoint serves now.
    pub fn current(&self, name: &str) -> Option<Arc<Deployment>> {
        read(&self.live).get(name).cloned()
    }

    /// Deploys `uri` to `name` (creating the endpoint if new). The model is
    /// loaded and warmed beside the old one, then swapped in at once; if it
    /// fails, or would change the endpoint's contract without
    /// `options.allow_contract_change`, the endpoint keeps its old model.
    pub async fn deploy(
        &self,
        name: &str,
        uri: &str,
        options: DeployOptions,
    ) -> Result<EndpointView, DeployError> {
        self.deploy_recording(name, uri, options, None).await
    }

    /// [`Endpoints::deploy`], recording `also` in the transaction that
    /// records the deploy: the registry's promotion changes with the
    /// endpoint or not at all.
    pub async fn deploy_recording(
        &self,
        name: &str,
        uri: &str,
        options: DeployOptions,
        also: Option<AlsoRecord>,
    ) -> Result<EndpointView, DeployError> {
        check_name(name)?;
        let _one_change_at_a_time = self.changes.lock().await;
        let model = fetch_and_load(uri).await?;
        let what = format!("deploying {uri}");
        let change = self
            .contract_change(name, &model.info, &what, options.allow_contract_change)
            .await?;
        self.activate(name, model, "deploy", change, None, also)
            .await?;
        self.describe(name).await
    }

    /// Returns `name` to an earlier model: the one served before the current
    /// one (again: one further back), or the version `options.to`.
    pub async fn rollback(
        &self,
        name: &str,
        options: &RollbackOptions,
    ) -> Result<EndpointView, DeployError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let history = self.history(name).await?;
        let target = match &options.to {
            Some(version) => version_target(name, &history, version)?,
            None => previous(&history).ok_or_else(|| DeployError::NoPrevious(name.to_string()))?,
        };
        let model = fetch_and_load(&target.model_uri).await?;
        let what = format!("rolling back to version {}", target.model_version);
        let change = self
            .contract_change(name, &model.info, &what, options.allow_contract_change)
            .await?;
        self.activate(name, model, "rollback", change, Some(target.seq), None)
            .await?;
        self.describe(name).await
    }

    /// What the endpoint promises its clients now: its live model's
    /// contract, or (when that failed to load) the one recorded for it.
    pub async fn contract(&self, name: &str) -> Result<Option<Contract>, DeployError> {
        if let Some(live) = self.current(name) {
            return Ok(Some(Contract::of(&live.info)));
        }
        Ok(self.active_revision(name).await?.and_then(|r| r.contract))
    }

    /// The revision the catalog says `name` serves.
    async fn active_revision(&self, name: &str) -> Result<Option<Revision>, DeployError> {
        let revisions = self.catalog.revisions(name).await?.unwrap_or_default();
        Ok(revisions.into_iter().find(|r| r.active))
    }

    /// Checks `info` against the endpoint's contract: `Ok(None)` when it
    /// keeps it, `Ok(Some(summary))` when it changes it and that is allowed.
    async fn contract_change(
        &self,
        name: &str,
        info: &ModelInfo,
        what: &str,
        allow: bool,
    ) -> Result<Option<String>, DeployError> {
        let Some(current) = self.contract(name).await? else {
            return Ok(None);
        };
        let new = Contract::of(info);
        let changes = current.changes_to(&new);
        if changes.is_empty() {
            return Ok(None);
        }
        if !allow {
            return Err(DeployError::ContractChange {
                endpoint: name.to_string(),
                what: what.to_string(),
                current: Box::new(current),
                new: Box::new(new),
                changes,
            });
        }
        tracing::warn!(endpoint = %name, changes = %changes.join("; "), "endpoint contract changed on request");
        Ok(Some(changes.join("; ")))
    }

    /// Removes an endpoint; requests in flight finish on its model.
    pub async fn delete(&self, name: &str) -> Result<(), DeployError> {
        let _one_change_at_a_time = self.changes.lock().await;
        if !self.catalog.delete(name).await? {
            return Err(DeployError::NotFound(name.to_string()));
        }
        self.forget(name);
        Ok(())
    }

    /// Drops an endpoint's model; requests in flight finish on it.
    fn forget(&self, name: &str) {
        write(&self.failed).remove(name);
        if let Some(old) = write(&self.live).remove(name) {
            self.metrics
                .set_model(name, Some((&old.info.version, &old.info.uri)), None);
        }
    }

    /// One endpoint's state and history.
    pub async fn describe(&self, name: &str) -> Result<EndpointView, DeployError> {
        let history = self.history(name).await?;
        let live = self.current(name);
        let error = read(&self.failed).get(name).cloned();
        Ok(EndpointView {
            name: name.to_string(),
            status: if live.is_some() {
                "InService"
            } else {
                "Failed"
            },
            model: live.map(|d| d.info.clone()),
            error,
            invocations: format!("/endpoints/{name}/invocations"),
            history,
        })
    }

    /// Every endpoint, by name.
    pub async fn list(&self) -> Result<Vec<EndpointView>, DeployError> {
        let mut views = Vec::new();
        for name in self.catalog.endpoints().await? {
            views.push(self.describe(&name).await?);
        }
        Ok(views)
    }

    async fn history(&self, name: &str) -> Result<Vec<Revision>, DeployError> {
        self.catalog
            .revisions(name)
            .await?
            .ok_or_else(|| DeployError::NotFound(name.to_string()))
    }

    async fn activate(
        &self,
        name: &str,
        model: LoadedModel,
        action: &str,
        contract_change: Option<String>,
        restores: Option<i64>,
        also: Option<AlsoRecord>,
    ) -> Result<(), DeployError> {
        let new = NewRevision {
            model_uri: model.info.uri.clone(),
            model_version: model.info.version.clone(),
            action: action.to_string(),
            now: tread_train::clock::now_rfc3339(),
            contract: Contract::of(&model.info),
            contract_change,
            restores,
        };
        let revision = self.catalog.activate(name, new, also).await?;
        self.install(name, model, revision)
    }

    fn install(
        &self,
        name: &str,
        model: LoadedModel,
        revision: Revision,
    ) -> Result<(), DeployError> {
        let info = model.info.clone();
        let batcher = Batcher::start(model, name.to_string(), self.options, self.metrics.clone())?;
        let deployment = Arc::new(Deployment {
            endpoint: name.to_string(),
            info,
            revision,
            batcher,
        });
        let new = (deployment.info.version.clone(), deployment.info.uri.clone());
        let old = write(&self.live).insert(name.to_string(), deployment);
        write(&self.failed).remove(name);
        self.metrics.set_model(
            name,
            old.as_ref()
                .map(|o| (o.info.version.as_str(), o.info.uri.as_str())),
            Some((&new.0, &new.1)),
        );
        tracing::info!(endpoint = %name, version = %new.0, uri = %new.1, "endpoint serves a new model");
        Ok(())
    }
}

/// The models still to roll back through, oldest first, as the deploys
/// that brought them: a deploy pushes its revision; a rollback goes back to
/// the revision it restored, dropping what was above it (or, for `--to` a
/// model rolled back past earlier, pushes that revision again).
fn served_stack(history: &[Revision]) -> Vec<&Revision> {
    let mut stack: Vec<&Revision> = Vec::new();
    for revision in history {
        let restored = match revision.restores {
            Some(seq) => history.iter().find(|r| r.seq == seq),
            // A rollback recorded before `restores` existed: it went back to
            // the latest earlier model with its URI.
            None if revision.action == "rollback" => {
                let below = stack.len().saturating_sub(1);
                stack[..below]
                    .iter()
                    .rev()
                    .find(|r| r.model_uri == revision.model_uri)
                    .copied()
            }
            None => None,
        };
        match restored {
            Some(target) => match stack.iter().rposition(|r| r.seq == target.seq) {
                Some(at) => stack.truncate(at + 1),
                None => stack.push(target),
            },
            None => stack.push(revision),
        }
    }
    stack
}

/// The revision a plain rollback returns to: the latest model below the
/// current one on the stack that is not the same artifact.
fn previous(history: &[Revision]) -> Option<&Revision> {
    let stack = served_stack(history);
    let (current, below) = stack.split_last()?;
    below
        .iter()
        .rev()
        .find(|r| r.model_uri != current.model_uri)
        .copied()
}

/// The latest deploy of `version` in the history, for `rollback --to`.
fn version_target<'a>(
    name: &str,
    history: &'a [Revision],
    version: &str,
) -> Result<&'a Revision, DeployError> {
    if history
        .iter()
        .any(|r| r.active && r.model_version == version)
    {
        return Err(DeployError::AlreadyServes {
            endpoint: name.to_string(),
            version: version.to_string(),
        });
    }
    let deploys = || history.iter().filter(|r| r.action == "deploy");
    deploys()
        .rev()
        .find(|r| r.model_version == version)
        .ok_or_else(|| {
            let mut known: Vec<&str> = Vec::new();
            for r in deploys() {
                if !known.contains(&r.model_version.as_str()) {
                    known.push(&r.model_version);
                }
            }
            DeployError::UnknownVersion {
                endpoint: name.to_string(),
                version: version.to_string(),
                known: known.join(", "),
            }
        })
}

/// SageMaker's endpoint-name rule, with `_` allowed: 1–63 letters, digits,
/// `-` or `_`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_name(name: &str) -> Result<(), DeployError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(DeployError::InvalidName(name.to_string()))
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One history row: `(action, version, restores)`.
    type Row<'a> = (&'a str, &'a str, Option<i64>);

    /// A history from rows, the last active; each version has its own URI.
    fn history(rows: &[Row<'_>]) -> Vec<Revision> {
        rows.iter()
            .enumerate()
            .map(|(i, (action, version, restores))| Revision {
                seq: i as i64 + 1,
                model_uri: format!("/models/{version}/model.tar.gz"),
                model_version: version.to_string(),
                action: action.to_string(),
                deployed_at: String::new(),
                active: i + 1 == rows.len(),
                contract: None,
                contract_change: None,
                restores: *restores,
            })
            .collect()
    }

    #[test]
    fn rollback_walks_back_through_the_history() {
        let d = |v| ("deploy", v, None);
        let r = |v, seq| ("rollback", v, Some(seq));
        let legacy = |v| ("rollback", v, None);
        // (history, version a plain rollback returns to)
        let cases: Vec<(Vec<Row<'_>>, Option<&str>)> = vec![
            (vec![d("v1")], None),
            (vec![d("v1"), d("v1")], None),
            (vec![d("v1"), d("v2")], Some("v1")),
            (vec![d("v1"), d("v2"), d("v3")], Some("v2")),
            // Rollback again goes one further back, then runs out.
            (vec![d("v1"), d("v2"), d("v3"), r("v2", 2)], Some("v1")),
            (
                vec![d("v1"), d("v2"), d("v3"), r("v2", 2), r("v1", 1)],
                None,
            ),
            // A deploy after rollbacks: back to what served before it.
            (vec![d("v1"), d("v2"), r("v1", 1), d("v3")], Some("v1")),
            // --to a version rolled back past, then back from it.
            (vec![d("v1"), d("v2"), r("v1", 1), r("v2", 2)], Some("v1")),
            // Rows written before `restores` existed.
            (vec![d("v1"), d("v2"), d("v3"), legacy("v2")], Some("v1")),
            (vec![d("v1"), d("v2"), legacy("v1")], None),
        ];
        for (rows, want) in cases {
            let h = history(&rows);
            let got = previous(&h).map(|r| r.model_version.as_str());
            assert_eq!(got, want, "{rows:?}");
        }
    }

    #[test]
    fn rollback_to_a_version_finds_its_latest_deploy() {
        let rows = [
            ("deploy", "v1", None),
            ("deploy", "v2", None),
            ("deploy", "v1", None),
            ("deploy", "v3", None),
        ];
        let h = history(&rows);
        assert_eq!(version_target("e", &h, "v1").map(|r| r.seq).ok(), Some(3));
        assert!(matches!(
            version_target("e", &h, "v3"),
            Err(DeployError::AlreadyServes { .. })
        ));
        match version_target("e", &h, "v9") {
            Err(DeployError::UnknownVersion { known, .. }) => assert_eq!(known, "v1, v2, v3"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn endpoint_names_follow_the_sagemaker_rule() {
        for good in ["tyre-quality-classifier", "a", "m_2", "A1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        let long = "x".repeat(64);
        for bad in ["", "-x", "a/b", "a b", "é", "../x", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
