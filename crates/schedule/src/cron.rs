//! `cron(minutes hours day-of-month month day-of-week year)`, evaluated in UTC.

mod days;
mod field;
mod next;
mod value_set;

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::ScheduleError;
use days::{DaySpec, MonthDays, WeekDays};
use field::{FieldError, HOURS, MINUTES, MONTH, YEAR};
use value_set::{ValueSet, YearSet};

/// A parsed `cron(...)` schedule.
///
/// Exactly one of day-of-month and day-of-week is `?`; the other decides
/// which days fire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cron {
    minutes: ValueSet,
    hours: ValueSet,
    days: DaySpec,
    months: ValueSet,
    years: YearSet,
    /// The six fields as written, upper-cased, for printing back.
    canonical_fields: Vec<String>,
}

impl Cron {
    /// The first fire time strictly after `after` (seconds are always zero),
    /// in UTC; `None` if the expression never fires after it (e.g. all its
    /// years are past, or it names a day that never occurs such as 30 FEB).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        next::next_fire(self, after)
    }
}

/// A mistake in a cron expression, before the expression text is attached.
enum CronProblem {
    /// The expression as a whole (field count, the `?` rule).
    Shape(String),
    /// One field.
    Field(FieldError),
}

impl From<FieldError> for CronProblem {
    fn from(error: FieldError) -> Self {
        CronProblem::Field(error)
    }
}

impl FromStr for Cron {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let parsed = match crate::call_arguments(expression.trim(), "cron") {
            Some(fields) => parse_fields(fields),
            None => Err(CronProblem::Shape(
                "expected `cron(minutes hours day-of-month month day-of-week year)`, \
                 e.g. `cron(0 9 ? * MON-FRI *)`"
                    .into(),
            )),
        };
        parsed.map_err(|problem| match problem {
            CronProblem::Shape(problem) => ScheduleError::Cron {
                expression: expression.to_owned(),
                problem,
            },
            CronProblem::Field(error) => ScheduleError::CronField {
                expression: expression.to_owned(),
                field: error.field,
                value: error.value,
                problem: error.problem,
            },
        })
    }
}

fn parse_fields(text: &str) -> Result<Cron, CronProblem> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [minutes, hours, day_of_month, month, day_of_week, year] = fields[..] else {
        return Err(CronProblem::Shape(field_count_problem(fields.len())));
    };
    Ok(Cron {
        minutes: MINUTES.parse_list(minutes)?,
        hours: HOURS.parse_list(hours)?,
        days: parse_days(day_of_month, day_of_week)?,
        months: MONTH.parse_list(month)?,
        years: YEAR.parse_list(year)?,
        canonical_fields: fields
            .iter()
            .map(|field| field.to_ascii_uppercase())
            .collect(),
    })
}

fn field_count_problem(count: usize) -> String {
    let hint = match count {
        5 => " (the year field is required; use `*` for every year)",
        7 => " (there is no seconds field; the first field is minutes)",
        _ => "",
    };
    format!(
        "expected 6 fields `minutes hours day-of-month month day-of-week year`, found {count}{hint}"
    )
}

fn parse_days(day_of_month: &str, day_of_week: &str) -> Result<DaySpec, CronProblem> {
    match (day_of_month == "?", day_of_week == "?") {
        (true, true) => Err(CronProblem::Shape(
            "day-of-month and day-of-week are both `?`; exactly one of them must be `?` \
             and the other must select days"
                .into(),
        )),
        (false, false) => Err(CronProblem::Shape(format!(
            "exactly one of day-of-month (`{day_of_month}`) and day-of-week (`{day_of_week}`) \
             must be `?`, e.g. `cron(0 9 * * ? *)` or `cron(0 9 ? * MON *)`"
        ))),
        (false, true) => Ok(DaySpec::OfMonth(MonthDays::parse(day_of_month)?)),
        (true, false) => Ok(DaySpec::OfWeek(WeekDays::parse(day_of_week)?)),
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.canonical_fields.join(" "))
    }
}
