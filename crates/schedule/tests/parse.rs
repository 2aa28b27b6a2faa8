//! Parsing, canonical printing and error messages.
#![allow(clippy::unwrap_used)]

use time::macros::datetime;
use tread_schedule::{Cron, CronField, Rate, RateUnit, Schedule, ScheduleError};

/// Valid expressions and how they print back.
#[rustfmt::skip]
const VALID: &[(&str, &str)] = &[
    ("rate(1 minute)", "rate(1 minute)"),
    ("rate(5 minutes)", "rate(5 minutes)"),
    ("rate(1 hour)", "rate(1 hour)"),
    ("rate(12 hours)", "rate(12 hours)"),
    ("rate(1 day)", "rate(1 day)"),
    ("rate(7 days)", "rate(7 days)"),
    ("  rate( 5   minutes )  ", "rate(5 minutes)"),
    ("rate(007 days)", "rate(7 days)"),
    // Examples from the EventBridge documentation.
    ("cron(0 10 * * ? *)", "cron(0 10 * * ? *)"),
    ("cron(15 12 * * ? *)", "cron(15 12 * * ? *)"),
    ("cron(0 18 ? * MON-FRI *)", "cron(0 18 ? * MON-FRI *)"),
    ("cron(0 8 1 * ? *)", "cron(0 8 1 * ? *)"),
    ("cron(0/15 * * * ? *)", "cron(0/15 * * * ? *)"),
    ("cron(0/10 * ? * MON-FRI *)", "cron(0/10 * ? * MON-FRI *)"),
    ("cron(0/5 8-17 ? * MON-FRI *)", "cron(0/5 8-17 ? * MON-FRI *)"),
    ("cron(0 9 ? * 2#1 *)", "cron(0 9 ? * 2#1 *)"),
    ("cron(15 10 ? * 6L 2019-2022)", "cron(15 10 ? * 6L 2019-2022)"),
    // Special day forms, case-insensitive, printed upper-case.
    ("cron(0 0 L * ? *)", "cron(0 0 L * ? *)"),
    ("cron(0 0 lw * ? *)", "cron(0 0 LW * ? *)"),
    ("cron(0 9 15w * ? *)", "cron(0 9 15W * ? *)"),
    ("cron(0 9 1W * ? *)", "cron(0 9 1W * ? *)"),
    ("cron(0 9 31W * ? *)", "cron(0 9 31W * ? *)"),
    ("cron(0 0 ? * L *)", "cron(0 0 ? * L *)"),
    ("cron(0 0 ? * 7l *)", "cron(0 0 ? * 7L *)"),
    ("cron(0 0 ? * fri#3 *)", "cron(0 0 ? * FRI#3 *)"),
    ("cron(0 0 ? * 1#5 *)", "cron(0 0 ? * 1#5 *)"),
    // Names, lists, wrapping ranges and steps.
    ("cron(0 9 ? * mon-fri *)", "cron(0 9 ? * MON-FRI *)"),
    ("cron(0 12 ? * FRI-MON *)", "cron(0 12 ? * FRI-MON *)"),
    ("cron(0 20-2 * * ? *)", "cron(0 20-2 * * ? *)"),
    ("cron(0 22-4/2 * * ? *)", "cron(0 22-4/2 * * ? *)"),
    ("cron(0 0 1 nov-feb ? *)", "cron(0 0 1 NOV-FEB ? *)"),
    ("cron(0 0 1 jan,Jul ? 2026-2030)", "cron(0 0 1 JAN,JUL ? 2026-2030)"),
    ("cron(*/5 10-14/2 ? * SUN,7 2199)", "cron(*/5 10-14/2 ? * SUN,7 2199)"),
    ("cron(0,30 * 1-7,15,31 * ? *)", "cron(0,30 * 1-7,15,31 * ? *)"),
    ("cron(05 9 ? * 2 1970)", "cron(05 9 ? * 2 1970)"),
    ("cron(0 0 * * ? */10)", "cron(0 0 * * ? */10)"),
    ("cron(0 0 30 2 ? *)", "cron(0 0 30 2 ? *)"),
    ("cron(0 0 1 1 ? 2020)", "cron(0 0 1 1 ? 2020)"),
    ("cron(  0\t12 *  * ? *  )", "cron(0 12 * * ? *)"),
    ("at(2026-11-26T09:30:00)", "at(2026-11-26T09:30:00)"),
    ("at(2199-12-31T23:59:59)", "at(2199-12-31T23:59:59)"),
    (" at( 2026-01-01T00:00:00 ) ", "at(2026-01-01T00:00:00)"),
];

/// Invalid expressions and a fragment their error message must contain.
#[rustfmt::skip]
const INVALID: &[(&str, &str)] = &[
    // Not a schedule at all.
    ("", "is not a schedule expression"),
    ("every 5 minutes", "is not a schedule expression: expected `rate(value unit)`"),
    ("CRON(0 0 * * ? *)", "is not a schedule expression"),
    ("rate 5 minutes", "is not a schedule expression"),
    // rate(...)
    ("rate(1 days)", "a value of 1 takes the singular unit: `rate(1 day)`"),
    ("rate(1 minutes)", "`rate(1 minute)`"),
    ("rate(5 minute)", "a value above 1 takes the plural unit: `rate(5 minutes)`"),
    ("rate(2 hour)", "`rate(2 hours)`"),
    ("rate(0 minutes)", "value `0` must be a whole number of at least 1"),
    ("rate(-1 hours)", "value `-1` must be a whole number of at least 1"),
    ("rate(1.5 hours)", "value `1.5` must be a whole number"),
    ("rate(+5 minutes)", "value `+5` must be a whole number"),
    ("rate(99999999999 minutes)", "too large"),
    ("rate(1 week)", "unit `week` is not supported: use minute(s), hour(s) or day(s)"),
    ("rate(2 seconds)", "unit `seconds` is not supported"),
    ("rate(5 Minutes)", "unit `Minutes` is not supported"),
    ("rate(5)", "expected a value and a unit"),
    ("rate(5 minutes please)", "expected a value and a unit"),
    ("rate()", "expected a value and a unit"),
    ("rate(5 minutes", "invalid rate expression `rate(5 minutes`: expected `rate(value unit)`"),
    // The shape of cron(...)
    ("cron(0 3 * * * *)", "exactly one of day-of-month (`*`) and day-of-week (`*`) must be `?`"),
    ("cron(0 3 1 * MON *)", "exactly one of day-of-month (`1`) and day-of-week (`MON`) must be `?`"),
    ("cron(0 3 ? * ? *)", "day-of-month and day-of-week are both `?`"),
    ("cron(0 3 * * ?)", "expected 6 fields `minutes hours day-of-month month day-of-week year`, found 5 (the year field is required"),
    ("cron(0 0 3 * * ? *)", "found 7 (there is no seconds field"),
    ("cron()", "found 0"),
    ("cron(0 0 * * ? *", "expected `cron(minutes hours day-of-month month day-of-week year)`"),
    // Out-of-range values, naming the field and what it allows.
    ("cron(0 3 ? * 0 *)", "day-of-week field `0`: days are 1-7 (1 = SUN) or SUN-SAT"),
    ("cron(0 3 ? * 8 *)", "day-of-week field `8`: days are 1-7"),
    ("cron(0 3 ? * 0-5 *)", "day-of-week field `0`"),
    ("cron(60 0 * * ? *)", "minutes field `60`: minutes are 0-59"),
    ("cron(0 24 * * ? *)", "hours field `24`: hours are 0-23"),
    ("cron(0 0 32 * ? *)", "day-of-month field `32`: days are 1-31"),
    ("cron(0 0 0 * ? *)", "day-of-month field `0`: days are 1-31"),
    ("cron(0 0 ? 13 MON *)", "month field `13`: months are 1-12 or JAN-DEC"),
    ("cron(0 0 ? 0 MON *)", "month field `0`: months are 1-12"),
    ("cron(0 0 1 1 ? 1969)", "year field `1969`: years are 1970-2199"),
    ("cron(0 0 1 1 ? 2200)", "year field `2200`: years are 1970-2199"),
    ("cron(0 0 1 1 ? 99999999)", "year field `99999999`"),
    // Unknown names and junk.
    ("cron(0 0 ? FOO MON *)", "month field `FOO`: months are 1-12 or JAN-DEC"),
    ("cron(0 0 ? * FUNDAY *)", "day-of-week field `FUNDAY`: days are 1-7"),
    ("cron(0 0 ? * MONDAY *)", "day-of-week field `MONDAY`"),
    ("cron(0 0 ? JANUARY MON *)", "month field `JANUARY`"),
    ("cron(0 0 ? * MON *)x", "expected `cron(minutes hours day-of-month month day-of-week year)`"),
    ("cron(x 0 * * ? *)", "minutes field `x`: minutes are 0-59"),
    ("cron(0 0 1,,2 * ? *)", "day-of-month field `1,,2`: empty list entry"),
    ("cron(0 0 1, * ? *)", "empty list entry"),
    ("cron(5- 0 * * ? *)", "minutes field `5-`: a range needs a value on both sides of `-`"),
    ("cron(-5 0 * * ? *)", "a range needs a value on both sides"),
    ("cron(/5 0 * * ? *)", "minutes field `/5`: a value or `*` is needed before `/`"),
    // Steps.
    ("cron(*/0 * * * ? *)", "minutes field `*/0`: the step after `/` must be 1-60"),
    ("cron(0 0/0 * * ? *)", "hours field `0/0`: the step after `/` must be 1-24"),
    // EventBridge refuses steps in day-of-week.
    ("cron(0 0 ? * MON/2 *)", "day-of-week field `MON/2`: EventBridge allows `/` only in the minutes, hours, day-of-month, month and year fields"),
    ("cron(0 0 ? * */2 *)", "day-of-week field `*/2`: EventBridge allows `/` only"),
    ("cron(*/61 * * * ? *)", "the step after `/` must be 1-60"),
    ("cron(0 0 1 1 ? 2030/0)", "year field `2030/0`: the step"),
    ("cron(*/x * * * ? *)", "the step after `/` must be a whole number"),
    ("cron(1/2/3 * * * ? *)", "the step after `/` must be a whole number"),
    // Ranges that cannot wrap.
    ("cron(0 0 1 1 ? 2030-2025)", "year field `2030-2025`: the range runs backwards; year fields cannot wrap"),
    // `?` out of place.
    ("cron(0 0 * ? ? *)", "month field `?`: `?` is only allowed in day-of-month or day-of-week"),
    ("cron(0 0 ?,1 * ? *)", "day-of-month field `?`: `?` must be the whole field"),
    // `L`, `W`, `#` out of place.
    ("cron(0 0 1,L * ? *)", "day-of-month field `L`: `L` and `W` must be the whole field"),
    ("cron(0 0 L,15 * ? *)", "day-of-month field `L`"),
    ("cron(0 0 1-15W * ? *)", "day-of-month field `15W`: `L` and `W` must be the whole field"),
    ("cron(0 0 L-3 * ? *)", "offsets from the last day such as `L-3` are not supported"),
    ("cron(0 0 0W * ? *)", "day-of-month field `0W`: days are 1-31"),
    ("cron(0 0 32W * ? *)", "day-of-month field `32W`"),
    ("cron(0 0 3#2 * ? *)", "day-of-month field `3#2`: `#` (nth weekday) is only allowed in day-of-week"),
    ("cron(0 0 ? * 1,L *)", "day-of-week field `L`: `L` and `#` must be the whole field"),
    ("cron(0 0 ? * 1,6L *)", "day-of-week field `6L`: `L` and `#` must be the whole field"),
    ("cron(0 0 ? * 0L *)", "day-of-week field `0L`: days are 1-7"),
    ("cron(0 0 ? * 3#6 *)", "day-of-week field `3#6`: the occurrence after `#` must be 1-5"),
    ("cron(0 0 ? * 3#0 *)", "day-of-week field `3#0`: the occurrence after `#` must be 1-5"),
    ("cron(0 0 ? * 3# *)", "the occurrence after `#` must be 1-5"),
    ("cron(0 0 ? * #2 *)", "`#` needs a weekday before it"),
    ("cron(0 0 ? * 8#2 *)", "day-of-week field `8#2`: days are 1-7"),
    ("cron(0 0 ? * 1-5#2 *)", "day-of-week field `1-5#2`: `#` must be the whole field"),
    ("cron(0 0 ? * 2#1,3 *)", "`#` must be the whole field"),
    ("cron(0 0 ? * 1W *)", "day-of-week field `1W`: `W` (nearest weekday) is only allowed in day-of-month"),
    ("cron(0 0 ? * LW *)", "`W` (nearest weekday) is only allowed in day-of-month"),
    ("cron(L 0 * * ? *)", "minutes field `L`: `L`, `W` and `#` are only allowed in day-of-month or day-of-week"),
    ("cron(0 5W * * ? *)", "hours field `5W`: `L`, `W` and `#`"),
    ("cron(0 0 ? 1#2 MON *)", "month field `1#2`: `L`, `W` and `#`"),
    // at(...)
    ("at(2026-13-01T00:00:00)", "`2026-13-01T00:00:00` is not a date and time of the form yyyy-mm-ddThh:mm:ss"),
    ("at(2026-02-30T00:00:00)", "is not a date and time"),
    ("at(2026-11-26 09:30:00)", "is not a date and time"),
    ("at(2026-11-26T09:30)", "is not a date and time"),
    ("at(2026-11-26T09:30:00Z)", "is not a date and time"),
    ("at(2026-11-26T24:00:00)", "is not a date and time"),
    ("at()", "is not a date and time"),
    ("at(2026-11-26T09:30:00", "expected `at(yyyy-mm-ddThh:mm:ss)`"),
];

fn parse(expression: &str) -> Schedule {
    match expression.parse() {
        Ok(schedule) => schedule,
        Err(error) => panic!("`{expression}` should parse: {error}"),
    }
}

#[test]
fn valid_expressions_parse_and_print_canonically() {
    for &(expression, canonical) in VALID {
        assert_eq!(parse(expression).to_string(), canonical, "`{expression}`");
    }
}

#[test]
fn canonical_text_parses_back_to_the_same_schedule() {
    for &(expression, canonical) in VALID {
        let schedule = parse(expression);
        assert_eq!(parse(canonical), schedule, "`{expression}`");
        assert_eq!(parse(canonical).to_string(), canonical);
    }
}

#[test]
fn invalid_expressions_explain_the_mistake() {
    let mut failures = Vec::new();
    for &(expression, fragment) in INVALID {
        match expression.parse::<Schedule>() {
            Ok(schedule) => failures.push(format!("`{expression}` parsed as {schedule:?}")),
            Err(error) if !error.to_string().contains(fragment) => {
                failures.push(format!("`{expression}`: {error}\n    lacks: {fragment}"));
            }
            Err(_) => {}
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
fn invalid_table_is_large() {
    assert!(INVALID.len() >= 25);
}

#[test]
fn errors_quote_the_expression_and_name_the_field() {
    let error = "cron(0 3 ? * 0 *)".parse::<Schedule>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid cron expression `cron(0 3 ? * 0 *)`: day-of-week field `0`: days are 1-7 (1 = SUN) or SUN-SAT"
    );
    assert_eq!(
        error,
        ScheduleError::CronField {
            expression: "cron(0 3 ? * 0 *)".into(),
            field: CronField::DayOfWeek,
            value: "0".into(),
            problem: "days are 1-7 (1 = SUN) or SUN-SAT".into(),
        }
    );
}

#[test]
fn each_field_is_named_in_its_errors() {
    let cases = [
        ("cron(99 0 * * ? *)", CronField::Minutes),
        ("cron(0 99 * * ? *)", CronField::Hours),
        ("cron(0 0 99 * ? *)", CronField::DayOfMonth),
        ("cron(0 0 1 99 ? *)", CronField::Month),
        ("cron(0 0 ? * 99 *)", CronField::DayOfWeek),
        ("cron(0 0 1 1 ? 99)", CronField::Year),
    ];
    for (expression, expected) in cases {
        match expression.parse::<Schedule>() {
            Err(ScheduleError::CronField { field, .. }) => {
                assert_eq!(field, expected, "{expression}")
            }
            other => panic!("{expression}: {other:?}"),
        }
    }
}

#[test]
fn schedules_expose_their_parts() {
    let Schedule::Rate(rate) = parse("rate(15 minutes)") else {
        panic!("expected a rate");
    };
    assert_eq!((rate.value(), rate.unit()), (15, RateUnit::Minutes));
    assert_eq!(rate.interval(), time::Duration::minutes(15));
    assert_eq!(
        parse("at(2026-11-26T09:30:00)"),
        Schedule::At(datetime!(2026-11-26 09:30))
    );
    assert!(matches!(parse("cron(0 12 * * ? *)"), Schedule::Cron(_)));
}

#[test]
fn parts_parse_on_their_own() {
    let rate: Rate = "rate(2 days)".parse().unwrap();
    assert_eq!(rate.interval(), time::Duration::days(2));
    let cron: Cron = "cron(0 12 * * ? *)".parse().unwrap();
    assert_eq!(cron.to_string(), "cron(0 12 * * ? *)");
    assert!("rate(2 days)".parse::<Cron>().is_err());
    assert!("cron(0 12 * * ? *)".parse::<Rate>().is_err());
}

#[test]
fn names_and_numbers_mean_the_same() {
    let pairs = [
        ("cron(0 0 ? * SUN *)", "cron(0 0 ? * 1 *)"),
        ("cron(0 0 ? * sat *)", "cron(0 0 ? * 7 *)"),
        ("cron(0 0 ? * L *)", "cron(0 0 ? * 7 *)"),
        ("cron(0 0 1 DEC ? *)", "cron(0 0 1 12 ? *)"),
        ("cron(0 0 ? * TUE#2 *)", "cron(0 0 ? * 3#2 *)"),
    ];
    let after = datetime!(2026-01-01 00:00 UTC);
    for (named, numbered) in pairs {
        let mut named_after = after;
        let mut numbered_after = after;
        // Compare the first few fires rather than the parsed values, which keep the text.
        for _ in 0..5 {
            let named_next = parse(named).next_after(after, named_after);
            let numbered_next = parse(numbered).next_after(after, numbered_after);
            assert_eq!(named_next, numbered_next, "{named} vs {numbered}");
            named_after = named_next.unwrap();
            numbered_after = numbered_next.unwrap();
        }
    }
}
