//! The s3s authentication and authorization hooks over the store's catalog.
//! Auth and access are always installed together: s3s runs access checks only
//! when an auth provider is set.

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{CopySource, PostObjectInput};
use s3s::{S3Request, S3Result, s3_error};

use super::policy::{is_allowed, required_permission};
use crate::backend::NasStore;
use crate::front::FormFileName;

/// Looks up secret keys of object users for SigV4 verification.
pub struct CatalogAuth(pub NasStore);

#[async_trait::async_trait]
impl S3Auth for CatalogAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.principal(access_key) {
            Some(p) => Ok(SecretKey::from(p.secret.clone())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key id you provided does not exist"
            )),
        }
    }
}

/// The longest a presigned URL may be valid on S3: seven days, in seconds.
const MAX_PRESIGNED_SECONDS: u64 = 7 * 24 * 3600;

/// Refuses a presigned URL valid for longer than S3 allows; s3s checks only
/// that it has not expired yet. Of each pair only the name is decoded until
/// the one sought: decoding every value of every request (the credential's
/// `%2F` makes a copy) was 1.5 % of a presigned GET's server time.
fn check_presigned_lifetime(uri: &http::Uri) -> S3Result<()> {
    let expires = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let (name, _) = form_urlencoded::parse(name.as_bytes()).next()?;
            if name != "X-Amz-Expires" {
                return None;
            }
            form_urlencoded::parse(pair.as_bytes()).next()
        });
    match expires {
        Some((_, seconds))
            if seconds
                .parse::<u64>()
                .is_ok_and(|s| s <= MAX_PRESIGNED_SECONDS) =>
        {
            Ok(())
        }
        Some(_) => Err(s3_error!(
            AuthorizationQueryParametersError,
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be at most 604800 seconds"
        )),
        None => Ok(()),
    }
}

/// Authorizes each request against the caller's group policies; deny wins and
/// anything not allowed is denied.
pub struct PolicyAccess(pub NasStore);

#[async_trait::async_trait]
impl S3Access for PolicyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(creds) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous access is not allowed; sign the request"
            ));
        };
        let Some(principal) = self.0.principal(&creds.access_key) else {
            return Err(s3_error!(InvalidAccessKeyId));
        };
        check_presigned_lifetime(cx.uri())?;
        let op = cx.s3_op().name();
        let path = cx.s3_path();
        let deny = || s3_error!(AccessDenied, "access denied");
        // DeleteObjects names its keys in the body: the backend checks each
        // one. A browser form's POST names its key in the form, which
        // `post_object` checks once s3s has read it.
        if matches!(op, "DeleteObjects" | "PostObject") {
            return Ok(());
        }
        let bucket = path.get_bucket_name();
        let Some((action, resource)) = required_permission(op, bucket, path.get_object_key())
        else {
            // With a bucket, no mapping means an operation tread does not
            // implement: say so, as S3 does, rather than blame the policy.
            return Err(match bucket {
                Some(_) => s3_error!(NotImplemented, "{op} is not implemented by tread"),
                None => deny(),
            });
        };
        if !is_allowed(&principal.policies, action, &resource) {
            return Err(deny());
        }
        if matches!(op, "CopyObject" | "UploadPartCopy") {
            let source = cx
                .headers()
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let Ok(CopySource::Bucket { bucket, key, .. }) = CopySource::parse(source) else {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-copy-source must be bucket/key"
                ));
            };
            if !is_allowed(
                &principal.policies,
                "s3:GetObject",
                &format!("arn:aws:s3:::{bucket}/{key}"),
            ) {
                return Err(deny());
            }
        }
        Ok(())
    }

    /// A browser form's upload is a PutObject of the form's key, in which
    /// `${filename}` stands for the name the form gave its file (as in S3:
    /// the key is settled here, before it is authorized and stored).
    async fn post_object(&self, req: &mut S3Request<PostObjectInput>) -> S3Result<()> {
        if let Some(FormFileName(name)) = req.extensions.get::<FormFileName>() {
            req.input.key = req.input.key.replace("${filename}", name);
        }
        let signer = self.0.signer(req.credentials.as_ref());
        let resource = format!("arn:aws:s3:::{}/{}", req.input.bucket, req.input.key);
        if signer.is_some_and(|p| is_allowed(&p.policies, "s3:PutObject", &resource)) {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "access denied"))
        }
    }
}
