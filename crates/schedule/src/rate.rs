//! `rate(value unit)`: a fixed interval counted from an anchor time.

use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::ScheduleError;

/// The unit of a [`Rate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateUnit {
    /// `minute` / `minutes`.
    Minutes,
    /// `hour` / `hours`.
    Hours,
    /// `day` / `days`.
    Days,
}

impl RateUnit {
    fn seconds(self) -> i64 {
        match self {
            RateUnit::Minutes => 60,
            RateUnit::Hours => 60 * 60,
            RateUnit::Days => 24 * 60 * 60,
        }
    }

    fn singular(self) -> &'static str {
        match self {
            RateUnit::Minutes => "minute",
            RateUnit::Hours => "hour",
            RateUnit::Days => "day",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            RateUnit::Minutes => "minutes",
            RateUnit::Hours => "hours",
            RateUnit::Days => "days",
        }
    }

    /// The unit and whether it was written in the singular.
    fn from_word(word: &str) -> Option<(RateUnit, bool)> {
        [RateUnit::Minutes, RateUnit::Hours, RateUnit::Days]
            .into_iter()
            .find_map(|unit| {
                if word == unit.singular() {
                    Some((unit, true))
                } else if word == unit.plural() {
                    Some((unit, false))
                } else {
                    None
                }
            })
    }
}

/// A `rate(value unit)` schedule: fires every `value` units after an anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    value: u32,
    unit: RateUnit,
}

impl Rate {
    /// How many units lie between two fires (at least 1).
    pub fn value(&self) -> u32 {
        self.value
    }

    /// The unit of [`Rate::value`].
    pub fn unit(&self) -> RateUnit {
        self.unit
    }

    /// The time between two fires.
    pub fn interval(&self) -> Duration {
        Duration::seconds(self.interval_seconds())
    }

    fn interval_seconds(&self) -> i64 {
        i64::from(self.value) * self.unit.seconds()
    }

    /// The first `anchor + k * interval` (k >= 0) strictly after `after`, in UTC.
    ///
    /// k starts at 0 so a rate never fires before its anchor: when `after`
    /// precedes the anchor, the anchor itself is the next fire.
    /// `None` only when the result is beyond the range `time` can represent.
    pub fn next_after(
        &self,
        anchor: OffsetDateTime,
        after: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let next = if after < anchor {
            anchor
        } else {
            // whole_seconds truncates, which is the floor here because the
            // elapsed time is not negative; +1 makes the result strictly later.
            let elapsed = (after - anchor).whole_seconds();
            let intervals = elapsed / self.interval_seconds() + 1;
            let offset = intervals.checked_mul(self.interval_seconds())?;
            anchor.checked_add(Duration::seconds(offset))?
        };
        next.checked_to_offset(UtcOffset::UTC)
    }
}

impl FromStr for Rate {
    type Err = ScheduleError;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let problem = |problem: String| ScheduleError::Rate {
            expression: expression.to_owned(),
            problem,
        };
        let inner = crate::call_arguments(expression.trim(), "rate")
            .ok_or_else(|| problem("expected `rate(value unit)`, e.g. `rate(5 minutes)`".into()))?;
        let [value, unit] = inner.split_whitespace().collect::<Vec<_>>()[..] else {
            return Err(problem(
                "expected a value and a unit inside the parentheses, e.g. `rate(5 minutes)`".into(),
            ));
        };
        parse_rate(value, unit).map_err(problem)
    }
}

fn parse_rate(value: &str, unit: &str) -> Result<Rate, String> {
    let value = parse_positive(value)?;
    let Some((unit, singular)) = RateUnit::from_word(unit) else {
        return Err(format!(
            "unit `{unit}` is not supported: use minute(s), hour(s) or day(s) in lower case"
        ));
    };
    match (value == 1, singular) {
        (true, false) => Err(format!(
            "a value of 1 takes the singular unit: `rate(1 {})`",
            unit.singular()
        )),
        (false, true) => Err(format!(
            "a value above 1 takes the plural unit: `rate({value} {})`",
            unit.plural()
        )),
        _ => Ok(Rate { value, unit }),
    }
}

fn parse_positive(text: &str) -> Result<u32, String> {
    let not_positive = || format!("value `{text}` must be a whole number of at least 1");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_positive());
    }
    match text.parse::<u32>() {
        Ok(0) => Err(not_positive()),
        Ok(value) => Ok(value),
        Err(_) => Err(format!(
            "value `{text}` is too large (at most {})",
            u32::MAX
        )),
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.value == 1 {
            self.unit.singular()
        } else {
            self.unit.plural()
        };
        write!(f, "rate({} {unit})", self.value)
    }
}
