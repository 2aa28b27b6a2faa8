//! The named endpoints a server answers for: which model each serves, and
//! the deploys, rollbacks and deletes that change that without downtime.

use crate::batcher::{BatchOptions, Batcher};
use crate::catalog::{Catalog, Revision};
use crate::metrics::Metrics;
use crate::model::{LoadError, LoadedModel, ModelInfo, fetch_and_load};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
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
    /// The model could not be fetched, checked or warmed up; the endpoint
    /// keeps what it served.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Catalog(#[from] rusqlite::Error),
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

/// Every endpoint of the server.
pub struct Endpoints {
    live: RwLock<BTreeMap<String, Arc<Deployment>>>,
    failed: RwLock<BTreeMap<String, String>>,
    catalog: Catalog,
    options: BatchOptions,
    metrics: Arc<Metrics>,
    changes: tokio::sync::Mutex<()>,
}

impl Endpoints {
    /// Opens the endpoint catalog in the SQLite file at `db`.
    pub fn open(
        db: &Path,
        options: BatchOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeployError> {
        Ok(Self {
            live: RwLock::default(),
            failed: RwLock::default(),
            catalog: Catalog::open(db)?,
            options,
            metrics,
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// The metrics the endpoints report to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads every endpoint's active model, as after a restart. An endpoint
    /// whose model fails stays listed as `Failed` with the reason.
    pub async fn restore(&self) -> Result<(), DeployError> {
        for name in self.catalog.endpoints()? {
            let Some(active) = self
                .catalog
                .revisions(&name)?
                .into_iter()
                .find(|r| r.active)
            else {
                continue;
            };
            match fetch_and_load(&active.model_uri).await {
                Ok(model) => {
                    self.install(&name, model, active)?;
                    tracing::info!(endpoint = %name, "endpoint restored");
                }
                Err(e) => {
                    tracing::error!(endpoint = %name, error = %e, "endpoint could not be restored");
                    write(&self.failed).insert(name, e.to_string());
                }
            }
        }
        Ok(())
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
    /// fails, the endpoint keeps its old model.
    pub async fn deploy(&self, name: &str, uri: &str) -> Result<EndpointView, DeployError> {
        check_name(name)?;
        let _one_change_at_a_time = self.changes.lock().await;
        let model = fetch_and_load(uri).await?;
        self.activate(name, model, "deploy")?;
        self.describe(name)
    }

    /// Returns `name` to the model it served before its current one.
    pub async fn rollback(&self, name: &str) -> Result<EndpointView, DeployError> {
        let _one_change_at_a_time = self.changes.lock().await;
        let history = self.history(name)?;
        let current = history.iter().rev().find(|r| r.active);
        let target = current
            .and_then(|now| {
                history
                    .iter()
                    .rev()
                    .find(|r| r.seq < now.seq && r.model_uri != now.model_uri)
            })
            .ok_or_else(|| DeployError::NoPrevious(name.to_string()))?;
        let model = fetch_and_load(&target.model_uri).await?;
        self.activate(name, model, "rollback")?;
        self.describe(name)
    }

    /// Removes an endpoint; requests in flight finish on its model.
    pub async fn delete(&self, name: &str) -> Result<(), DeployError> {
        let _one_change_at_a_time = self.changes.lock().await;
        if !self.catalog.delete(name)? {
            return Err(DeployError::NotFound(name.to_string()));
        }
        write(&self.failed).remove(name);
        if let Some(old) = write(&self.live).remove(name) {
            self.metrics
                .set_model(name, Some((&old.info.version, &old.info.uri)), None);
        }
        Ok(())
    }

    /// One endpoint's state and history.
    pub fn describe(&self, name: &str) -> Result<EndpointView, DeployError> {
        let history = self.history(name)?;
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
    pub fn list(&self) -> Result<Vec<EndpointView>, DeployError> {
        self.catalog
            .endpoints()?
            .iter()
            .map(|name| self.describe(name))
            .collect()
    }

    fn history(&self, name: &str) -> Result<Vec<Revision>, DeployError> {
        if !self.catalog.exists(name)? {
            return Err(DeployError::NotFound(name.to_string()));
        }
        Ok(self.catalog.revisions(name)?)
    }

    fn activate(&self, name: &str, model: LoadedModel, action: &str) -> Result<(), DeployError> {
        let now = tread_train::clock::now_rfc3339();
        let revision =
            self.catalog
                .activate(name, &model.info.uri, &model.info.version, action, &now)?;
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
