//! Writes that must not be lost to a database that is away for a moment.

use crate::error::DbError;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`persist`] keeps trying: long enough for a PostgreSQL restart
/// or fail-over, short enough that a run does not hang on a lost database.
pub const PERSIST_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `write` until it succeeds, fails for a reason that is not transient
/// (see [`DbError::is_transient`]), or [`PERSIST_PATIENCE`] has passed,
/// pausing 0.1 s, doubling up to 5 s, between tries. Every retry and the
/// final failure are logged with `what`. `write` must be safe to run twice:
/// a commit whose answer was lost is tried again.
pub async fn persist<T, F, Fut>(what: &str, mut write: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let deadline = Instant::now() + PERSIST_PATIENCE;
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_transient() && Instant::now() + pause < deadline => {
                tracing::warn!(error = %e, "the catalog failed to record {what}; trying again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, "the catalog failed to record {what}");
                return Err(e);
            }
        }
    }
}
