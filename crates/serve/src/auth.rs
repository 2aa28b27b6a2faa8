//! The bearer token that guards the management API (and inference when the
//! server is exposed beyond loopback). Generated at first start into the
//! data dir, readable only by its owner; the CLI reads it from there.

use rand::Rng;
use rand::distr::Alphanumeric;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Name of the token file inside the data dir.
pub const TOKEN_FILE: &str = "api-token";

/// A bearer token.
#[derive(Clone)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(…)")
    }
}

impl ApiToken {
    /// Wraps a token given by the user (`TREAD_TOKEN`).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The token file of a data dir.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(TOKEN_FILE)
    }

    /// Reads the data dir's token, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(data_dir)?;
        let path = Self::path(data_dir);
        let token: String = format!(
            "tread_{}",
            rand::rng()
                .sample_iter(&Alphanumeric)
                .take(40)
                .map(char::from)
                .collect::<String>()
        );
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(token.as_bytes())?;
                file.sync_all()?;
                Ok(Self(token))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Self::read(data_dir),
            Err(e) => Err(e),
        }
    }

    /// Reads the data dir's token.
    pub fn read(data_dir: &Path) -> std::io::Result<Self> {
        let value = fs::read_to_string(Self::path(data_dir))?;
        Ok(Self(value.trim().to_string()))
    }

    /// The token, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        same_secret(&self.0, presented)
    }
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ (the API token, the console's form tokens).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_is_created_once_owner_only_and_read_back() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = ApiToken::load_or_create(dir.path())?;
        let mode = fs::metadata(ApiToken::path(dir.path()))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ApiToken::load_or_create(dir.path())?;
        assert_eq!(first.secret(), again.secret());
        assert!(first.matches(again.secret()));
        assert!(!first.matches("tread_wrong"));
        assert!(!first.matches(""));
        Ok(())
    }
}
