//! The day-of-month and day-of-week fields: exactly one of them selects days,
//! including the special forms `L`, `LW`, `nW` (day-of-month) and `L`, `nL`,
//! `n#k` (day-of-week), which depend on the month's calendar.

use time::{Date, Month};

use super::field::{DAY_OF_MONTH, DAY_OF_WEEK, FieldError, parse_number};
use super::value_set::ValueSet;

/// Which days of a month fire; the other day field was `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DaySpec {
    OfMonth(MonthDays),
    OfWeek(WeekDays),
}

/// A day-of-month field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MonthDays {
    /// Listed days; days the month lacks (e.g. 31 in April) are skipped.
    Listed(ValueSet),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last Monday-Friday of the month.
    LastWeekday,
    /// `nW`: the Monday-Friday nearest day n, without leaving the month.
    NearestWeekday(u8),
}

/// A day-of-week field; weekdays are numbered 1 = SUN ... 7 = SAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WeekDays {
    /// Listed weekdays (`L` alone means 7, Saturday).
    Listed(ValueSet),
    /// `nL`: the last weekday n of the month.
    LastOfMonth(u8),
    /// `n#k`: the k-th weekday n of the month (k = 1-5).
    Nth { weekday: u8, occurrence: u8 },
}

const LIST_CHARACTERS: [char; 4] = [',', '-', '/', '*'];

impl MonthDays {
    pub(crate) fn parse(text: &str) -> Result<MonthDays, FieldError> {
        let upper = text.to_ascii_uppercase();
        if upper == "L" {
            return Ok(MonthDays::Last);
        }
        if upper == "LW" {
            return Ok(MonthDays::LastWeekday);
        }
        if upper.starts_with("L-") {
            return Err(DAY_OF_MONTH.error(
                text,
                "offsets from the last day such as `L-3` are not supported by EventBridge; \
                 use `L` (last day) or `LW` (last weekday)",
            ));
        }
        if let Some(day) = upper
            .strip_suffix('W')
            .filter(|day| parse_number(day).is_some())
        {
            let day = DAY_OF_MONTH
                .parse_value(day)
                .map_err(|error| error.within(text))?;
            // DAY_OF_MONTH caps the value at 31
            return Ok(MonthDays::NearestWeekday(day as u8));
        }
        DAY_OF_MONTH.parse_list(text).map(MonthDays::Listed)
    }

    fn days_in(&self, month: &MonthCalendar) -> ValueSet {
        let mut days = ValueSet::empty(1);
        match *self {
            MonthDays::Listed(listed) => {
                for day in listed
                    .iter_from(1)
                    .take_while(|&day| day <= u16::from(month.length))
                {
                    days.insert(day);
                }
            }
            MonthDays::Last => days.insert(u16::from(month.length)),
            MonthDays::LastWeekday => days.insert(u16::from(month.nearest_weekday(month.length))),
            MonthDays::NearestWeekday(day) if day <= month.length => {
                days.insert(u16::from(month.nearest_weekday(day)));
            }
            // `31W` in a 30-day month: like plain `31`, the month is skipped.
            MonthDays::NearestWeekday(_) => {}
        }
        days
    }
}

impl WeekDays {
    pub(crate) fn parse(text: &str) -> Result<WeekDays, FieldError> {
        let upper = text.to_ascii_uppercase();
        if upper == "L" {
            let mut saturday = ValueSet::empty(1);
            saturday.insert(7);
            return Ok(WeekDays::Listed(saturday));
        }
        if let Some((weekday, occurrence)) = upper.split_once('#') {
            return Self::parse_nth(text, weekday, occurrence);
        }
        if text.contains('/') {
            return Err(DAY_OF_WEEK.error(
                text,
                "EventBridge allows `/` only in the minutes, hours, day-of-month, month and \
                 year fields; list the weekdays instead, e.g. `MON,WED,FRI`",
            ));
        }
        if let Some(weekday) = upper
            .strip_suffix('L')
            .filter(|weekday| !weekday.contains(LIST_CHARACTERS))
        {
            // DAY_OF_WEEK caps the value at 7
            let weekday = DAY_OF_WEEK
                .parse_value(weekday)
                .map_err(|error| error.within(text))?;
            return Ok(WeekDays::LastOfMonth(weekday as u8));
        }
        DAY_OF_WEEK.parse_list(text).map(WeekDays::Listed)
    }

    fn parse_nth(text: &str, weekday: &str, occurrence: &str) -> Result<WeekDays, FieldError> {
        if text.contains(LIST_CHARACTERS) {
            return Err(DAY_OF_WEEK.error(
                text,
                "`#` must be the whole field, e.g. `3#2`; it cannot be part of a list, range or step",
            ));
        }
        if weekday.is_empty() {
            return Err(DAY_OF_WEEK.error(text, "`#` needs a weekday before it, e.g. `3#2`"));
        }
        let weekday = DAY_OF_WEEK
            .parse_value(weekday)
            .map_err(|error| error.within(text))?;
        match parse_number(occurrence) {
            Some(occurrence @ 1..=5) => Ok(WeekDays::Nth {
                // DAY_OF_WEEK caps the value at 7
                weekday: weekday as u8,
                occurrence: occurrence as u8,
            }),
            _ => Err(DAY_OF_WEEK.error(
                text,
                "the occurrence after `#` must be 1-5, e.g. `3#2` = the second Tuesday",
            )),
        }
    }

    fn days_in(&self, month: &MonthCalendar) -> ValueSet {
        let mut days = ValueSet::empty(1);
        match *self {
            WeekDays::Listed(weekdays) => {
                for day in 1..=month.length {
                    if weekdays.contains(u16::from(month.weekday(day))) {
                        days.insert(u16::from(day));
                    }
                }
            }
            WeekDays::LastOfMonth(weekday) => {
                let back = (month.weekday(month.length) + 7 - weekday) % 7;
                days.insert(u16::from(month.length - back));
            }
            WeekDays::Nth {
                weekday,
                occurrence,
            } => {
                let first = 1 + (weekday + 7 - month.weekday(1)) % 7;
                let day = first + 7 * (occurrence - 1);
                // No 5th Monday this month: skip the month.
                if day <= month.length {
                    days.insert(u16::from(day));
                }
            }
        }
        days
    }
}

impl DaySpec {
    /// The days of `month` in `year` that fire.
    pub(crate) fn days_in(&self, year: i32, month: Month) -> ValueSet {
        let Some(calendar) = MonthCalendar::new(year, month) else {
            return ValueSet::empty(1);
        };
        match self {
            DaySpec::OfMonth(days) => days.days_in(&calendar),
            DaySpec::OfWeek(days) => days.days_in(&calendar),
        }
    }
}

/// The facts about one month that the day rules need.
struct MonthCalendar {
    length: u8,
    /// Weekday of the 1st, 1 = SUN ... 7 = SAT.
    first_weekday: u8,
}

impl MonthCalendar {
    fn new(year: i32, month: Month) -> Option<MonthCalendar> {
        let first = Date::from_calendar_date(year, month, 1).ok()?;
        Some(MonthCalendar {
            length: month.length(year),
            first_weekday: first.weekday().number_from_sunday(),
        })
    }

    /// Weekday of `day`, 1 = SUN ... 7 = SAT.
    fn weekday(&self, day: u8) -> u8 {
        (self.first_weekday - 1 + day - 1) % 7 + 1
    }

    /// The Monday-Friday nearest `day`, staying inside the month: a Saturday
    /// moves back to Friday unless it is the 1st (then forward to Monday the
    /// 3rd); a Sunday moves forward to Monday unless it is the last day (then
    /// back to Friday).
    fn nearest_weekday(&self, day: u8) -> u8 {
        const SUNDAY: u8 = 1;
        const SATURDAY: u8 = 7;
        match self.weekday(day) {
            SATURDAY if day == 1 => 3,
            SATURDAY => day - 1,
            SUNDAY if day == self.length => day - 2,
            SUNDAY => day + 1,
            _ => day,
        }
    }
}
