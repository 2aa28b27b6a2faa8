//! The next fire times of any schedule expression, in UTC with the local
//! time beside: what `tread schedule next`, `GET /api/schedules/next` and
//! the console's pipeline page show.

use chrono::{Local, TimeZone};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tread_schedule::Schedule;

use crate::service::PipelineError;

/// Fire times listed when the caller does not say.
pub const DEFAULT_FIRES: usize = 10;
/// Most fire times one preview lists.
pub const MAX_FIRES: usize = 100;

/// An expression's next fire times.
#[derive(Debug, Serialize)]
pub struct SchedulePreview {
    /// The expression in canonical form.
    pub expression: String,
    /// Fires are strictly after this time (RFC 3339, UTC). A `rate(...)`
    /// counts its intervals from here, as a pipeline applied now would.
    pub after: String,
    /// In order; fewer than asked when the schedule stops firing.
    pub fires: Vec<Fire>,
}

/// One fire time.
#[derive(Debug, Serialize)]
pub struct Fire {
    /// RFC 3339 in UTC, the time the scheduler uses.
    pub utc: String,
    /// The same instant in this machine's time zone, RFC 3339 with its offset.
    pub local: String,
}

/// Parses `expression` and lists up to `count` fire times after `after`.
/// A bad expression is [`PipelineError::Invalid`] with the parser's message.
pub fn preview(
    expression: &str,
    after: OffsetDateTime,
    count: usize,
) -> Result<SchedulePreview, PipelineError> {
    if !(1..=MAX_FIRES).contains(&count) {
        return Err(PipelineError::Invalid(format!(
            "the number of fire times must be 1-{MAX_FIRES}, not {count}"
        )));
    }
    let schedule: Schedule = expression
        .parse()
        .map_err(|e: tread_schedule::ScheduleError| PipelineError::Invalid(e.to_string()))?;
    let fires = schedule
        .upcoming(after, after, count)
        .into_iter()
        .map(fire)
        .collect();
    Ok(SchedulePreview {
        expression: schedule.to_string(),
        after: rfc3339(after),
        fires,
    })
}

/// Parses an RFC 3339 time given as the preview's start; now (to the
/// second) when `None`.
pub fn after_or_now(text: Option<&str>) -> Result<OffsetDateTime, PipelineError> {
    let Some(text) = text else {
        // Whole seconds: a rate's fires count from here, and a fraction
        // would only clutter them.
        let now = OffsetDateTime::now_utc();
        return Ok(now.replace_nanosecond(0).unwrap_or(now));
    };
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        PipelineError::Invalid(format!(
            "`{text}` is not an RFC 3339 time such as 2026-12-24T18:00:00Z ({e})"
        ))
    })
}

fn fire(at: OffsetDateTime) -> Fire {
    // chrono reads the zone from TZ or /etc/localtime for each instant, so
    // daylight saving is right on both sides of a change; `time` refuses the
    // local offset once a process has threads.
    let local = Local
        .timestamp_opt(at.unix_timestamp(), at.nanosecond())
        .single()
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| rfc3339(at));
    Fire {
        utc: rfc3339(at),
        local,
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    // Formatting a UTC time with a four-digit year cannot fail; the schedule
    // crate's years are 1970-2199.
    utc.format(&Rfc3339).unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lists_canonical_expression_and_utc_fires() -> Result<(), PipelineError> {
        let p = preview(
            "cron(0 9 ? * mon-fri *)",
            datetime!(2026-12-04 10:00 UTC),
            3,
        )?;
        assert_eq!(p.expression, "cron(0 9 ? * MON-FRI *)");
        let utc: Vec<&str> = p.fires.iter().map(|f| f.utc.as_str()).collect();
        assert_eq!(
            utc,
            [
                "2026-12-07T09:00:00Z",
                "2026-12-08T09:00:00Z",
                "2026-12-09T09:00:00Z"
            ]
        );
        Ok(())
    }

    #[test]
    fn refuses_bad_expressions_and_counts_with_the_reason() {
        let after = datetime!(2026-12-04 10:00 UTC);
        for (expression, count, reason) in [
            (
                "cron(0 0 ? * MON/2 *)",
                10,
                "allows `/` only in the minutes",
            ),
            ("every day", 10, "is not a schedule expression"),
            ("rate(1 day)", 0, "must be 1-100"),
            ("rate(1 day)", 101, "must be 1-100"),
        ] {
            match preview(expression, after, count) {
                Err(PipelineError::Invalid(message)) => {
                    assert!(message.contains(reason), "{expression}: {message}")
                }
                other => panic!("{expression} x{count}: expected a refusal, got {other:?}"),
            }
        }
    }
}
