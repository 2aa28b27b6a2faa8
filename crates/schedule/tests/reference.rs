//! 400 random cron expressions and start times, checked against the next fire
//! computed by an independent day-by-day brute force in Python
//! (`tools/reference.py`; regenerate with `tools/generate_reference_cases.py`).
#![allow(clippy::unwrap_used)]

use time::format_description::BorrowedFormatItem;
use time::macros::{datetime, format_description};
use time::{OffsetDateTime, PrimitiveDateTime};
use tread_schedule::Schedule;

const CASES: &str = include_str!("data/reference_cases.txt");
const ISO: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

fn utc(text: &str) -> OffsetDateTime {
    PrimitiveDateTime::parse(text, ISO).unwrap().assume_utc()
}

#[test]
fn matches_the_brute_force_reference() {
    let anchor = datetime!(2000-01-01 00:00 UTC);
    let mut failures = Vec::new();
    let mut checked = 0;
    for line in CASES.lines().filter(|line| !line.is_empty()) {
        let [expression, after, expected] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("malformed line: {line}");
        };
        let schedule: Schedule = expression.parse().unwrap();
        let expected = (expected != "None").then(|| utc(expected));
        let next = schedule.next_after(anchor, utc(after));
        if next != expected {
            failures.push(format!(
                "{expression} after {after}: got {next:?}, want {expected:?}"
            ));
        }
        checked += 1;
    }
    assert_eq!(checked, 400);
    assert!(
        failures.is_empty(),
        "{} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
