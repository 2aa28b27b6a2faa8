//! The error returned when a schedule expression cannot be parsed.

use std::fmt;

/// Why a schedule expression was rejected.
///
/// Every message quotes the expression, says what is wrong and what is
/// allowed instead, e.g. ``invalid cron expression `cron(0 3 ? * 0 *)`:
/// day-of-week field `0`: days are 1-7 (1 = SUN) or SUN-SAT``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The text is none of `rate(...)`, `cron(...)` or `at(...)`.
    #[error(
        "`{expression}` is not a schedule expression: expected `rate(value unit)`, \
         `cron(minutes hours day-of-month month day-of-week year)` or `at(yyyy-mm-ddThh:mm:ss)`"
    )]
    UnknownForm {
        /// The rejected text.
        expression: String,
    },

    /// A `rate(...)` expression is malformed.
    #[error("invalid rate expression `{expression}`: {problem}")]
    Rate {
        /// The rejected text.
        expression: String,
        /// What is wrong and what is allowed.
        problem: String,
    },

    /// A `cron(...)` expression is malformed as a whole (field count, the `?` rule).
    #[error("invalid cron expression `{expression}`: {problem}")]
    Cron {
        /// The rejected text.
        expression: String,
        /// What is wrong and what is allowed.
        problem: String,
    },

    /// One field of a `cron(...)` expression is malformed.
    #[error("invalid cron expression `{expression}`: {field} field `{value}`: {problem}")]
    CronField {
        /// The rejected text.
        expression: String,
        /// The field holding the mistake.
        field: CronField,
        /// The offending part of the field (the whole field or one list entry).
        value: String,
        /// What is wrong and what is allowed.
        problem: String,
    },

    /// An `at(...)` expression is malformed.
    #[error("invalid at expression `{expression}`: {problem}")]
    At {
        /// The rejected text.
        expression: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// The six fields of a cron expression, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    /// Minutes, 0-59.
    Minutes,
    /// Hours, 0-23 (UTC).
    Hours,
    /// Day of the month, 1-31, or `L`, `LW`, `nW`.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day of the week, 1-7 with 1 = SUN, or SUN-SAT, or `L`, `nL`, `n#k`.
    DayOfWeek,
    /// Year, 1970-2199.
    Year,
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minutes => "minutes",
            CronField::Hours => "hours",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        })
    }
}
