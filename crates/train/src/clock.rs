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
