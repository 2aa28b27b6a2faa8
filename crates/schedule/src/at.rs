//! `at(yyyy-mm-ddThh:mm:ss)`: a one-time schedule (EventBridge Scheduler), in UTC.

use time::PrimitiveDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::ScheduleError;

const AT_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

/// Parses a whole `at(...)` expression.
pub(crate) fn parse(expression: &str) -> Result<PrimitiveDateTime, ScheduleError> {
    let problem = |problem: String| ScheduleError::At {
        expression: expression.to_owned(),
        problem,
    };
    let inner = crate::call_arguments(expression.trim(), "at").ok_or_else(|| {
        problem("expected `at(yyyy-mm-ddThh:mm:ss)`, e.g. `at(2026-11-26T09:30:00)`".into())
    })?;
    PrimitiveDateTime::parse(inner.trim(), AT_FORMAT).map_err(|error| {
        problem(format!(
            "`{}` is not a date and time of the form yyyy-mm-ddThh:mm:ss ({error})",
            inner.trim()
        ))
    })
}

/// Writes the canonical `at(...)` text.
pub(crate) fn format(time: PrimitiveDateTime) -> String {
    // The format has only numeric components of a valid value, so it cannot fail;
    // fall back to the ISO-like Display of `time` rather than panic.
    match time.format(AT_FORMAT) {
        Ok(text) => format!("at({text})"),
        Err(_) => format!("at({time})"),
    }
}
