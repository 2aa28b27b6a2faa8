//! Wall-clock formats for versions and logs.

use rand::Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Now as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A new model version id: UTC time to the second and four random hex
/// digits (`20261125T184012Z-3f2a`), so ids sort by time as plain strings
/// and two runs in the same second do not collide.
pub fn new_version_id() -> String {
    let stamp = OffsetDateTime::now_utc()
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    format!("{stamp}-{:04x}", rand::rng().random::<u16>())
}

/// Checks a version given by the caller (a pipeline's runner names it
/// before training starts, so that its metrics can be followed): it names
/// a folder under the output, so 1 to 64 letters, digits, `-`, `_` and
/// `.`, not starting with a dot.
pub fn check_version(version: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
    if version.is_empty()
        || version.len() > 64
        || version.starts_with('.')
        || !version.bytes().all(allowed)
    {
        return Err(format!(
            "version {version:?}: use 1 to 64 letters, digits, '-', '_' and '.', not starting with '.'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_versions_pass_the_check_and_paths_do_not() {
        assert!(check_version(&new_version_id()).is_ok());
        for bad in ["", "..", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}
