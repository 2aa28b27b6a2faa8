//! Next fire times. Every expected value was computed by an independent
//! day-by-day brute force in Python (`tools/reference.py`, run over
//! `tools/cases.txt`) and the weekday facts in the comments were checked with
//! Python's `calendar` module.
#![allow(clippy::unwrap_used)]

use time::macros::{datetime, offset};
use time::{OffsetDateTime, PrimitiveDateTime};
use tread_schedule::Schedule;

fn utc(time: PrimitiveDateTime) -> OffsetDateTime {
    time.assume_utc()
}

fn parse(expression: &str) -> Schedule {
    match expression.parse() {
        Ok(schedule) => schedule,
        Err(error) => panic!("{expression} should parse: {error}"),
    }
}

/// Anchor for cron and at schedules, which ignore it.
const UNUSED_ANCHOR: OffsetDateTime = datetime!(2000-01-01 00:00 UTC);

type Case = (&'static str, PrimitiveDateTime, Option<PrimitiveDateTime>);

#[rustfmt::skip]
const CRON_CASES: &[Case] = &[
        // Month and year ends; a fire is strictly after `after`, and seconds round up to the next
        // minute.
        ("cron(0 12 * * ? *)", datetime!(2026-01-31 12:00), Some(datetime!(2026-02-01 12:00))),
        ("cron(0 0 31 * ? *)", datetime!(2026-01-31 00:00), Some(datetime!(2026-03-31 00:00))),
        ("cron(0 0 31 * ? *)", datetime!(2026-03-31 00:00), Some(datetime!(2026-05-31 00:00))),
        ("cron(59 23 * * ? *)", datetime!(2026-12-31 23:59), Some(datetime!(2027-01-01 23:59))),
        ("cron(0 0 1 * ? *)", datetime!(2026-12-31 23:59), Some(datetime!(2027-01-01 00:00))),
        ("cron(* * * * ? *)", datetime!(2026-12-31 23:59), Some(datetime!(2027-01-01 00:00))),
        ("cron(* * * * ? *)", datetime!(2026-05-05 10:00:30), Some(datetime!(2026-05-05 10:01))),
        ("cron(* * * * ? *)", datetime!(2026-05-05 10:00:00), Some(datetime!(2026-05-05 10:01))),
        // 29 February: leap years only, and 2100 is not a leap year.
        ("cron(0 0 29 2 ? *)", datetime!(2025-01-01 00:00), Some(datetime!(2028-02-29 00:00))),
        ("cron(0 0 29 2 ? *)", datetime!(2097-01-01 00:00), Some(datetime!(2104-02-29 00:00))),
        ("cron(0 0 29 2 ? *)", datetime!(2028-02-29 00:00), Some(datetime!(2032-02-29 00:00))),
        // `L` is the last day: 28 or 29 in February (2100 has 28).
        ("cron(0 0 L 2 ? *)", datetime!(2027-01-01 00:00), Some(datetime!(2027-02-28 00:00))),
        ("cron(0 0 L 2 ? *)", datetime!(2028-01-01 00:00), Some(datetime!(2028-02-29 00:00))),
        ("cron(0 0 L 2 ? *)", datetime!(2100-01-01 00:00), Some(datetime!(2100-02-28 00:00))),
        ("cron(30 6 L * ? *)", datetime!(2026-04-30 06:30), Some(datetime!(2026-05-31 06:30))),
        // `LW`: Jan 31 2026 is a Saturday, May 31 a Sunday, Mar 31 a Tuesday, Feb 28 a Saturday.
        ("cron(0 18 LW * ? *)", datetime!(2026-01-01 00:00), Some(datetime!(2026-01-30 18:00))),
        ("cron(0 18 LW * ? *)", datetime!(2026-05-01 00:00), Some(datetime!(2026-05-29 18:00))),
        ("cron(0 18 LW * ? *)", datetime!(2026-03-01 00:00), Some(datetime!(2026-03-31 18:00))),
        ("cron(0 18 LW 2 ? *)", datetime!(2026-01-01 00:00), Some(datetime!(2026-02-27 18:00))),
        // `nW`: Feb 15 2026 is a Sunday, Aug 15 a Saturday, Apr 15 a Wednesday; Aug 1 2026 and Feb
        // 1 2025 are Saturdays (-> Monday 3rd); May 31 2026 is a Sunday (-> Friday 29th); April
        // and February lack day 31/30, so they are skipped.
        ("cron(0 9 15W * ? *)", datetime!(2026-02-01 00:00), Some(datetime!(2026-02-16 09:00))),
        ("cron(0 9 15W * ? *)", datetime!(2026-08-01 00:00), Some(datetime!(2026-08-14 09:00))),
        ("cron(0 9 15W * ? *)", datetime!(2026-04-01 00:00), Some(datetime!(2026-04-15 09:00))),
        ("cron(0 9 1W * ? *)", datetime!(2026-07-15 00:00), Some(datetime!(2026-08-03 09:00))),
        ("cron(0 9 1W 2 ? *)", datetime!(2025-01-01 00:00), Some(datetime!(2025-02-03 09:00))),
        ("cron(0 9 31W * ? *)", datetime!(2026-05-01 00:00), Some(datetime!(2026-05-29 09:00))),
        ("cron(0 9 31W * ? *)", datetime!(2026-04-01 00:00), Some(datetime!(2026-05-29 09:00))),
        ("cron(0 9 30W * ? *)", datetime!(2026-02-01 00:00), Some(datetime!(2026-03-30 09:00))),
        // `nL`, `L` and `n#k` in day-of-week: 2026-11-26 is a Thursday; 2#5 needs a month with
        // five Mondays (March, June 2026).
        ("cron(0 10 ? * 6L *)", datetime!(2026-11-01 00:00), Some(datetime!(2026-11-27 10:00))),
        ("cron(0 10 ? * 6L *)", datetime!(2026-11-27 10:00), Some(datetime!(2026-12-25 10:00))),
        ("cron(0 10 ? * 1L *)", datetime!(2026-11-01 00:00), Some(datetime!(2026-11-29 10:00))),
        ("cron(0 10 ? * L *)", datetime!(2026-11-26 00:00), Some(datetime!(2026-11-28 10:00))),
        ("cron(0 10 ? * 3#2 *)", datetime!(2026-01-01 00:00), Some(datetime!(2026-01-13 10:00))),
        ("cron(0 10 ? * tue#2 *)", datetime!(2026-01-13 10:00), Some(datetime!(2026-02-10 10:00))),
        ("cron(0 10 ? * 2#5 *)", datetime!(2026-01-01 00:00), Some(datetime!(2026-03-30 10:00))),
        ("cron(0 10 ? * 2#5 *)", datetime!(2026-03-31 00:00), Some(datetime!(2026-06-29 10:00))),
        ("cron(0 10 ? * 7#1 *)", datetime!(2026-11-26 00:00), Some(datetime!(2026-12-05 10:00))),
        // Ranges that wrap: hours 20-2, FRI-MON, NOV-FEB.
        ("cron(0 20-2 * * ? *)", datetime!(2026-03-10 02:00), Some(datetime!(2026-03-10 20:00))),
        ("cron(0 20-2 * * ? *)", datetime!(2026-03-10 23:00), Some(datetime!(2026-03-11 00:00))),
        ("cron(15 22-1/2 * * ? *)", datetime!(2026-03-10 22:15), Some(datetime!(2026-03-11 00:15))),
        ("cron(0 12 ? * FRI-MON *)", datetime!(2026-11-26 00:00), Some(datetime!(2026-11-27 12:00))),
        ("cron(0 12 ? * FRI-MON *)", datetime!(2026-11-30 12:00), Some(datetime!(2026-12-04 12:00))),
        ("cron(0 0 1 NOV-FEB ? *)", datetime!(2026-03-01 00:00), Some(datetime!(2026-11-01 00:00))),
        ("cron(0 0 1 NOV-FEB ? *)", datetime!(2026-12-01 00:00), Some(datetime!(2027-01-01 00:00))),
        // The year field, past years, the end of the supported range, impossible dates.
        ("cron(0 0 1 1 ? 2030)", datetime!(2026-06-01 00:00), Some(datetime!(2030-01-01 00:00))),
        ("cron(0 0 1 1 ? 2030)", datetime!(2030-01-01 00:00), None),
        ("cron(0 0 * * ? 2020-2025)", datetime!(2026-01-01 00:00), None),
        ("cron(0 0 1 1 ? 2199)", datetime!(2199-01-01 00:00), None),
        ("cron(59 23 31 12 ? 2199)", datetime!(2199-06-01 00:00), Some(datetime!(2199-12-31 23:59))),
        ("cron(0 0 * * ? */10)", datetime!(2026-01-01 00:00), Some(datetime!(2030-01-01 00:00))),
        ("cron(0 0 30 2 ? *)", datetime!(2026-01-01 00:00), None),
        // Ordinary schedules; the search starts no earlier than 1970.
        ("cron(*/15 9-17 ? * MON-FRI *)", datetime!(2026-11-27 17:45), Some(datetime!(2026-11-30 09:00))),
        ("cron(*/15 9-17 ? * MON-FRI *)", datetime!(2026-11-27 09:07), Some(datetime!(2026-11-27 09:15))),
        ("cron(0 8 1,15 * ? *)", datetime!(2026-11-01 08:00), Some(datetime!(2026-11-15 08:00))),
        ("cron(0 0 1 1 ? *)", datetime!(1950-01-01 00:00), Some(datetime!(1970-01-01 00:00))),
        ("cron(5 4 ? JAN,JUL 2 2027,2029)", datetime!(2026-01-01 00:00), Some(datetime!(2027-01-04 04:05))),
        ("cron(0 0 ? * 1#5 2026)", datetime!(2026-12-01 00:00), None),
];

#[test]
fn cron_next_fire_times() {
    let mut failures = Vec::new();
    for &(expression, after, expected) in CRON_CASES {
        let next = parse(expression).next_after(UNUSED_ANCHOR, utc(after));
        if next != expected.map(utc) {
            failures.push(format!(
                "{expression} after {after}: got {next:?}, want {expected:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn cron_results_are_utc_with_zero_seconds() {
    for &(expression, after, _) in CRON_CASES {
        if let Some(next) = parse(expression).next_after(UNUSED_ANCHOR, utc(after)) {
            assert_eq!(next.offset(), time::UtcOffset::UTC, "{expression}");
            assert_eq!((next.second(), next.nanosecond()), (0, 0), "{expression}");
        }
    }
}

#[test]
fn cron_following_the_chain_visits_every_fire_in_order() {
    // Every weekday at 09:00 and 17:30 in December 2026 (23 weekdays).
    let schedule = parse("cron(0,30 9,17 ? DEC MON-FRI 2026)");
    let mut fires = Vec::new();
    let mut after = utc(datetime!(2026-11-30 23:59));
    while let Some(next) = schedule.next_after(UNUSED_ANCHOR, after) {
        fires.push(next);
        after = next;
    }
    assert_eq!(fires.len(), 23 * 4);
    assert_eq!(fires.first(), Some(&utc(datetime!(2026-12-01 09:00))));
    assert_eq!(fires.last(), Some(&utc(datetime!(2026-12-31 17:30))));
    assert!(fires.windows(2).all(|pair| pair[0] < pair[1]));
}

#[test]
fn cron_converts_other_offsets_to_utc() {
    let schedule = parse("cron(0 9 * * ? *)");
    // 10:30 at +02:00 is 08:30 UTC, so 09:00 UTC the same day is next.
    let after = datetime!(2026-06-01 10:30).assume_offset(offset!(+2));
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, after),
        Some(utc(datetime!(2026-06-01 09:00)))
    );
}

#[test]
fn cron_stops_at_the_end_of_the_year_range() {
    let schedule = parse("cron(* * * * ? *)");
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2199-12-31 23:58))),
        Some(utc(datetime!(2199-12-31 23:59)))
    );
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2199-12-31 23:59))),
        None
    );
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2500-01-01 00:00))),
        None
    );
}

#[test]
fn cron_that_never_fires_returns_none_quickly() {
    // 31 FEB never exists: the search must still end (230 years x 1 month).
    let schedule = parse("cron(0 0 31 FEB ? *)");
    let started = std::time::Instant::now();
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(1970-01-01 00:00))),
        None
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn rate_counts_intervals_from_the_anchor() {
    let anchor = utc(datetime!(2026-03-10 10:00));
    let cases: &[(&str, PrimitiveDateTime, PrimitiveDateTime)] = &[
        (
            "rate(30 minutes)",
            datetime!(2026-03-10 10:45),
            datetime!(2026-03-10 11:00),
        ),
        // Exactly on a fire: the next one, strictly after.
        (
            "rate(30 minutes)",
            datetime!(2026-03-10 11:00),
            datetime!(2026-03-10 11:30),
        ),
        (
            "rate(30 minutes)",
            datetime!(2026-03-10 11:29:59.999),
            datetime!(2026-03-10 11:30),
        ),
        (
            "rate(30 minutes)",
            datetime!(2026-03-10 10:00),
            datetime!(2026-03-10 10:30),
        ),
        // Before the anchor: the anchor itself (k = 0), never earlier.
        (
            "rate(30 minutes)",
            datetime!(2026-03-09 08:00),
            datetime!(2026-03-10 10:00),
        ),
        (
            "rate(1 minute)",
            datetime!(2026-03-10 10:00:01),
            datetime!(2026-03-10 10:01),
        ),
        (
            "rate(1 hour)",
            datetime!(2026-03-11 09:15),
            datetime!(2026-03-11 10:00),
        ),
        (
            "rate(7 hours)",
            datetime!(2026-03-11 10:00),
            datetime!(2026-03-11 14:00),
        ),
        (
            "rate(1 day)",
            datetime!(2026-03-10 10:00),
            datetime!(2026-03-11 10:00),
        ),
        (
            "rate(3 days)",
            datetime!(2026-03-31 12:00),
            datetime!(2026-04-03 10:00),
        ),
    ];
    for &(expression, after, expected) in cases {
        assert_eq!(
            parse(expression).next_after(anchor, utc(after)),
            Some(utc(expected)),
            "{expression} after {after}"
        );
    }
}

#[test]
fn rate_keeps_the_anchor_seconds_and_returns_utc() {
    let anchor = datetime!(2026-03-10 12:00:42).assume_offset(offset!(+2));
    let next = parse("rate(5 minutes)").next_after(anchor, anchor);
    assert_eq!(next, Some(utc(datetime!(2026-03-10 10:05:42))));
    assert_eq!(next.map(|next| next.offset()), Some(time::UtcOffset::UTC));
}

#[test]
fn at_fires_once() {
    let schedule = parse("at(2026-11-26T09:30:00)");
    let fire = utc(datetime!(2026-11-26 09:30));
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2026-01-01 00:00))),
        Some(fire)
    );
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2026-11-26 09:29:59))),
        Some(fire)
    );
    assert_eq!(schedule.next_after(UNUSED_ANCHOR, fire), None);
    assert_eq!(
        schedule.next_after(UNUSED_ANCHOR, utc(datetime!(2027-01-01 00:00))),
        None
    );
}

#[test]
fn upcoming_lists_fires_in_order_and_stops_with_the_schedule() {
    let after = utc(datetime!(2026-12-04 10:00));
    let weekly = parse("cron(30 9 ? * MON,THU *)").upcoming(UNUSED_ANCHOR, after, 4);
    let expected = [
        datetime!(2026-12-07 09:30),
        datetime!(2026-12-10 09:30),
        datetime!(2026-12-14 09:30),
        datetime!(2026-12-17 09:30),
    ];
    assert_eq!(weekly, expected.map(utc));
    let hourly = parse("rate(1 hour)").upcoming(after, after, 3);
    let expected = [
        datetime!(2026-12-04 11:00),
        datetime!(2026-12-04 12:00),
        datetime!(2026-12-04 13:00),
    ];
    assert_eq!(hourly, expected.map(utc));
    let once = parse("at(2026-12-24T18:00:00)").upcoming(UNUSED_ANCHOR, after, 10);
    assert_eq!(once, [utc(datetime!(2026-12-24 18:00))]);
    let last_years = parse("cron(0 0 1 1 ? 2027-2028)").upcoming(UNUSED_ANCHOR, after, 10);
    assert_eq!(last_years.len(), 2);
}
