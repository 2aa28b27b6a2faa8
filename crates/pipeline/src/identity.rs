//! Each pipeline's own S3 identity in tread's store: user, group and policy
//! `pipeline-<name>`. By default the policy reads the data prefix and writes
//! the model prefixes the train steps name; a pipeline file's `policy`
//! attaches a named policy instead.

use crate::catalog::StepKeys;
use crate::service::PipelineError;
use crate::spec::{PipelineSpec, Step};
use std::path::PathBuf;
use tread_store::catalog::{Catalog as StoreCatalog, CatalogError};

/// Creates pipeline users in the store of a data dir.
pub struct Identities {
    data_dir: PathBuf,
    changed: Box<dyn Fn() + Send + Sync>,
}

impl Identities {
    /// Users go into the store catalog of `data_dir`; `changed` is called
    /// after each change, so a running S3 server knows a new user before
    /// the pipeline's first step uses it.
    pub fn new(data_dir: PathBuf, changed: Box<dyn Fn() + Send + Sync>) -> Self {
        Self { data_dir, changed }
    }

    /// Refuses a pipeline whose data or model bucket is not in this store:
    /// its runs could never read or write there, and the data trigger
    /// would only fail to list it.
    pub fn check_buckets(&self, spec: &PipelineSpec) -> Result<(), PipelineError> {
        let uris = std::iter::once(("data", spec.data.as_str())).chain(
            spec.steps.iter().filter_map(|s| match s {
                Step::Train(train) => Some(("out", train.out.as_str())),
                _ => None,
            }),
        );
        let mut wanted: Vec<(&str, &str)> = uris
            .filter_map(|(field, uri)| Some((field, bucket_of(uri)?)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let store = StoreCatalog::open(&self.data_dir).map_err(store_error)?;
        let known = store.bucket_list().map_err(store_error)?;
        wanted.retain(|(_, bucket)| !known.iter().any(|b| b.name == *bucket));
        match wanted.first() {
            None => Ok(()),
            Some((field, bucket)) => Err(PipelineError::Invalid(format!(
                "{field}: bucket {bucket} does not exist in this store: create it with `tread s3 bucket create {bucket} --volume VOLUME`, or name an existing bucket"
            ))),
        }
    }

    /// Makes sure the pipeline's user, group and policy exist and match the
    /// file; returns the user and its keys (new keys only on creation).
    /// `None` when the data is not in a bucket.
    pub fn ensure(
        &self,
        spec: &PipelineSpec,
        known: Option<StepKeys>,
    ) -> Result<Option<(String, StepKeys)>, PipelineError> {
        if !spec.data.starts_with("s3://") {
            return Ok(None);
        }
        let name = format!("pipeline-{}", spec.name);
        let mut store = StoreCatalog::open(&self.data_dir).map_err(store_error)?;
        let policy = match &spec.policy {
            Some(policy) => {
                let known = store.policy_list().map_err(store_error)?;
                if !known.contains(policy) {
                    return Err(PipelineError::Invalid(format!(
                        "policy {policy} does not exist: use FullAccess, ReadOnlyAccess or a policy made with `tread s3 policy create`"
                    )));
                }
                policy.clone()
            }
            None => {
                store
                    .policy_put(&name, &default_policy(spec))
                    .map_err(store_error)?;
                name.clone()
            }
        };
        let existing = store
            .user_list()
            .map_err(store_error)?
            .into_iter()
            .find(|u| u.user == name);
        let keys = match (existing, known) {
            (Some(user), Some(keys)) if user.access_key_id == keys.access_key_id => keys,
            (Some(_), _) => rekey(store.user_rotate_key(&name))?,
            (None, _) => rekey(store.user_create(&name))?,
        };
        let policies = std::slice::from_ref(&policy);
        match store.group_create(&name, std::slice::from_ref(&name), policies) {
            Ok(_) => {}
            Err(CatalogError::AlreadyExists { .. }) => {
                // The file may name another policy than at the last apply.
                store
                    .group_set_policies(&name, policies)
                    .map_err(store_error)?;
                match store.group_add_user(&name, &name) {
                    Ok(()) | Err(CatalogError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(store_error(e)),
                }
            }
            Err(e) => return Err(store_error(e)),
        }
        (self.changed)();
        Ok(Some((name, keys)))
    }
}

fn store_error(e: CatalogError) -> PipelineError {
    PipelineError::Identity(e.to_string())
}

fn rekey(
    keys: Result<tread_store::catalog::UserKeys, CatalogError>,
) -> Result<StepKeys, PipelineError> {
    keys.map(|k| StepKeys {
        access_key_id: k.access_key_id,
        secret_access_key: k.secret_access_key,
    })
    .map_err(store_error)
}

/// The bucket of an `s3://bucket/prefix` URI; `None` for a directory.
fn bucket_of(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix("s3://")?;
    Some(rest.split_once('/').map_or(rest, |(bucket, _)| bucket))
}

/// Read on the data prefix, read and write on every train step's `out`.
fn default_policy(spec: &PipelineSpec) -> String {
    let mut buckets = Vec::new();
    let mut read = Vec::new();
    let mut write = Vec::new();
    let mut add = |uri: &str, to: &mut Vec<String>| {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            buckets.push(format!("arn:aws:s3:::{bucket}"));
            to.push(format!(
                "arn:aws:s3:::{bucket}/{}*",
                prefix.trim_end_matches('*')
            ));
        }
    };
    add(&spec.data, &mut read);
    for step in &spec.steps {
        if let Step::Train(train) = step {
            add(&train.out, &mut write);
        }
    }
    buckets.sort();
    buckets.dedup();
    let mut statements = vec![
        serde_json::json!({"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": buckets}),
        serde_json::json!({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": read}),
    ];
    if !write.is_empty() {
        statements.push(serde_json::json!({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], "Resource": write}));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}
