//! Each pipeline's own S3 identity in tread's store: user, group and policy
//! `pipeline-<name>`. By default the policy reads the data prefix and writes
//! the model prefixes the train steps name; a pipeline file's `policy`
//! attaches a named policy instead.

use crate::catalog::StepKeys;
use crate::service::PipelineError;
use crate::spec::{PipelineSpec, Step};
use tread_store::NasStore;
use tread_store::catalog::{CatalogError, KeepKeys};

/// Creates pipeline users in the store a daemon serves.
pub struct Identities {
    store: NasStore,
}

impl Identities {
    /// Users go into `store`'s catalog, and `store` reloads after each
    /// change, so it knows a new user before the pipeline's first step
    /// uses it.
    pub fn new(store: NasStore) -> Self {
        Self { store }
    }

    /// Refuses a pipeline whose data or model bucket is not in this store:
    /// its runs could never read or write there, and the data trigger
    /// would only fail to list it.
    pub async fn check_buckets(&self, spec: &PipelineSpec) -> Result<(), PipelineError> {
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
        let known = self
            .store
            .catalog()
            .bucket_list()
            .await
            .map_err(store_error)?;
        wanted.retain(|(_, bucket)| !known.iter().any(|b| b.name == *bucket));
        match wanted.first() {
            None => Ok(()),
            Some((field, bucket)) => Err(PipelineError::Invalid(format!(
                "{field}: bucket {bucket} does not exist in this store: create it with `tread s3 bucket create {bucket} --volume VOLUME`, or name an existing bucket"
            ))),
        }
    }

    /// Makes sure the pipeline's user, group and policy exist and match the
    /// file; returns the user and its keys (the `known` ones while they
    /// still work, new ones otherwise). `None` when the data is not in a
    /// bucket.
    pub async fn ensure(
        &self,
        spec: &PipelineSpec,
        known: Option<StepKeys>,
    ) -> Result<Option<(String, StepKeys)>, PipelineError> {
        if !spec.data.starts_with("s3://") {
            return Ok(None);
        }
        let name = format!("pipeline-{}", spec.name);
        let catalog = self.store.catalog();
        let policy = match &spec.policy {
            Some(policy) => policy.clone(),
            None => {
                catalog
                    .policy_put(&name, &default_policy(spec))
                    .await
                    .map_err(store_error)?;
                name.clone()
            }
        };
        let keep = known
            .as_ref()
            .map_or(KeepKeys::None, |k| KeepKeys::IfCurrent(&k.access_key_id));
        let member = catalog
            .ensure_member(&name, &name, std::slice::from_ref(&policy), keep)
            .await
            .map_err(|e| match e {
                CatalogError::NotFound { kind: "policy", .. } => PipelineError::Invalid(format!(
                    "policy {policy} does not exist: use FullAccess, ReadOnlyAccess or a policy made with `tread s3 policy create`"
                )),
                other => store_error(other),
            })?;
        if let Err(e) = self.store.reload().await {
            tracing::error!(error = %e, "the store did not reload its users");
        }
        let keys = StepKeys {
            access_key_id: member.keys.access_key_id,
            secret_access_key: member.keys.secret_access_key,
        };
        Ok(Some((name, keys)))
    }
}

fn store_error(e: CatalogError) -> PipelineError {
    PipelineError::Identity(e.to_string())
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
