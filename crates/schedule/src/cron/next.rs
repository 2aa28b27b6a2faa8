//! The next fire time of a cron expression.
//!
//! The search walks year → month → day → hour → minute through the field
//! sets, so it touches at most 230 years × 12 months × 31 days × 24 hours
//! candidates instead of every minute. Each level starts from the
//! corresponding part of the start time only while all higher levels still
//! equal the start; once a higher level has moved forward, lower levels
//! start from their smallest value.

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::Cron;

/// The lower bound of the search below the year level.
#[derive(Clone, Copy)]
struct Bound {
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
}

impl Bound {
    /// No restriction: the start of a year (or month, or day).
    const EARLIEST: Bound = Bound {
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
    };

    fn of(time: PrimitiveDateTime) -> Bound {
        Bound {
            month: u8::from(time.month()),
            day: time.day(),
            hour: time.hour(),
            minute: time.minute(),
        }
    }
}

/// The fire times never leave the year field's range.
const FIRST_YEAR: i32 = 1970;
const LAST_YEAR: i32 = 2199;

pub(super) fn next_fire(cron: &Cron, after: OffsetDateTime) -> Option<OffsetDateTime> {
    let start = first_candidate(after)?;
    if start.year() > LAST_YEAR {
        return None;
    }
    // The year was just checked to lie in 1970..=2199.
    let start_year = start.year() as u16;
    for year in cron.years.iter_from(start_year) {
        let bound = if year == start_year {
            Bound::of(start)
        } else {
            Bound::EARLIEST
        };
        let year = i32::from(year);
        if let Some((month, day, hour, minute)) = next_in_year(cron, year, bound) {
            let date = Date::from_calendar_date(year, month, day).ok()?;
            let time = Time::from_hms(hour, minute, 0).ok()?;
            return Some(PrimitiveDateTime::new(date, time).assume_offset(UtcOffset::UTC));
        }
    }
    None
}

/// The first whole UTC minute strictly after `after`, no earlier than 1970.
fn first_candidate(after: OffsetDateTime) -> Option<PrimitiveDateTime> {
    let after = after.checked_to_offset(UtcOffset::UTC)?;
    let next_minute = after.truncate_to_minute().checked_add(Duration::MINUTE)?;
    let next_minute = PrimitiveDateTime::new(next_minute.date(), next_minute.time());
    let epoch = Date::from_calendar_date(FIRST_YEAR, Month::January, 1)
        .ok()?
        .midnight();
    Some(next_minute.max(epoch))
}

fn next_in_year(cron: &Cron, year: i32, bound: Bound) -> Option<(Month, u8, u8, u8)> {
    for month in cron.months.iter_from(u16::from(bound.month)) {
        // Month numbers come from the month field, 1-12.
        let month = month as u8;
        let bound = if month == bound.month {
            bound
        } else {
            Bound::EARLIEST
        };
        let month = Month::try_from(month).ok()?;
        if let Some((day, hour, minute)) = next_in_month(cron, year, month, bound) {
            return Some((month, day, hour, minute));
        }
    }
    None
}

fn next_in_month(cron: &Cron, year: i32, month: Month, bound: Bound) -> Option<(u8, u8, u8)> {
    let days = cron.days.days_in(year, month);
    for day in days.iter_from(u16::from(bound.day)) {
        // Days come from the month's calendar, 1-31.
        let day = day as u8;
        let bound = if day == bound.day {
            bound
        } else {
            Bound::EARLIEST
        };
        if let Some((hour, minute)) = next_in_day(cron, bound) {
            return Some((day, hour, minute));
        }
    }
    None
}

fn next_in_day(cron: &Cron, bound: Bound) -> Option<(u8, u8)> {
    for hour in cron.hours.iter_from(u16::from(bound.hour)) {
        let first_minute = if hour == u16::from(bound.hour) {
            bound.minute
        } else {
            0
        };
        if let Some(minute) = cron.minutes.first_from(u16::from(first_minute)) {
            // Hours are 0-23 and minutes 0-59 by the field ranges.
            return Some((hour as u8, minute as u8));
        }
    }
    None
}
