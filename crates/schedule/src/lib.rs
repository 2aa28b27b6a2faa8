//! AWS EventBridge schedule expressions: `rate(...)`, `cron(...)` and `at(...)`.
//!
//! Parses an expression, prints it back in canonical form and computes the
//! next fire time. All times are UTC; cron schedules have minute resolution.
//!
//! The parser is hand-written because no Rust crate implements this grammar
//! as-is: `cron` reads six fields as seconds-first and lacks `L`/`W`/`#`,
//! `croner` numbers weekdays the Unix way (0 = Sunday) and treats `?` as `*`,
//! and `saffron` has neither the year field nor `?`. Reusing any of them would
//! mean translating expressions and still fixing their semantics.
//!
//! Where the EventBridge documentation is silent, this crate chooses:
//! - `nW` for a day the month lacks (`31W` in April) skips that month, like plain `31`;
//! - a step may not exceed the field's span (`*/61` in minutes is an error);
//! - `nL` and `n#k` accept weekday names as well as numbers (`FRIL`, `FRI#3`);
//! - the keywords `rate`, `cron`, `at` and the rate units are lower-case only,
//!   while cron names and `L`/`W` are case-insensitive;
//! - a rate never fires before its anchor.
//!
//! ```
//! use tread_schedule::Schedule;
//! use time::macros::datetime;
//!
//! let schedule: Schedule = "cron(0 9 ? * mon-fri *)".parse()?;
//! assert_eq!(schedule.to_string(), "cron(0 9 ? * MON-FRI *)");
//! let anchor = datetime!(2026-01-01 00:00 UTC); // only used by rate(...)
//! let next = schedule.next_after(anchor, datetime!(2026-11-26 10:00 UTC));
//! assert_eq!(next, Some(datetime!(2026-11-27 09:00 UTC)));
//! # Ok::<(), tread_schedule::ScheduleError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod at;
mod cron;
mod error;
mod rate;

use std::fmt;
use std::str::FromStr;

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

pub use cron::Cron;
pub use error::{CronField, ScheduleError};
pub use rate::{Rate, RateUnit};

/// A parsed EventBridge schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// `rate(value unit)`: every interval, counted from an anchor time.
    Rate(Rate),
    /// `cron(minutes hours day-of-month month day-of-week year)`, in UTC.
    Cron(Cron),
    /// `at(yyyy-mm-ddThh:mm:ss)`: once, at this UTC time.
    At(PrimitiveDateTime),
}

impl Schedule {
    /// The first fire time strictly after `after`, in UTC; `None` when the
    /// schedule never fires again.
    ///
    /// `anchor` is only used by [`Schedule::Rate`]: the fires are
    /// `anchor + k * interval` for k >= 0 (pass the pipeline's creation or
    /// last fire time). Cron and at schedules ignore it.
    pub fn next_after(
        &self,
        anchor: OffsetDateTime,
        after: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        match self {
            Schedule::Rate(rate) => rate.next_after(anchor, after),
            Schedule::Cron(cron) => cron.next_after(after),
            Schedule::At(time) => {
                let time = time.assume_offset(UtcOffset::UTC);
                (time > after).then_some(time)
            }
        }
    }

    /// Up to `count` fire times strictly after `after`, in order: fewer
    /// when the schedule stops firing (an `at`, or a cron's last year).
    /// `anchor` is as in [`Schedule::next_after`].
    pub fn upcoming(
        &self,
        anchor: OffsetDateTime,
        after: OffsetDateTime,
        count: usize,
    ) -> Vec<OffsetDateTime> {
        std::iter::successors(self.next_after(anchor, after), |&fire| {
            self.next_after(anchor, fire)
        })
        .take(count)
        .collect()
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let trimmed = expression.trim();
        if trimmed.starts_with("rate(") {
            expression.parse().map(Schedule::Rate)
        } else if trimmed.starts_with("cron(") {
            expression.parse().map(Schedule::Cron)
        } else if trimmed.starts_with("at(") {
            at::parse(expression).map(Schedule::At)
        } else {
            Err(ScheduleError::UnknownForm {
                expression: expression.to_owned(),
            })
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Rate(rate) => rate.fmt(f),
            Schedule::Cron(cron) => cron.fmt(f),
            Schedule::At(time) => f.write_str(&at::format(*time)),
        }
    }
}

/// The text between `keyword(` and the final `)`, or `None` if `text` is not
/// shaped like that call.
fn call_arguments<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    text.strip_prefix(keyword)?
        .strip_prefix('(')?
        .strip_suffix(')')
}
