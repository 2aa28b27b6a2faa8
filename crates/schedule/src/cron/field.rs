//! The list syntax shared by all cron fields: `*`, `a`, `a-b`, `a/s`, `*/s`,
//! `a-b/s`, and comma-separated lists of those. Ranges may wrap (`20-2`).

use super::value_set::ValueSet;
use crate::CronField;

/// What one field accepts.
pub(crate) struct FieldSpec {
    pub(crate) field: CronField,
    pub(crate) min: u16,
    pub(crate) max: u16,
    /// Names standing for `min`, `min + 1`, ... (matched case-insensitively).
    pub(crate) names: &'static [&'static str],
    /// Whether `a-b` with `a > b` means "a to max, then min to b".
    pub(crate) wraps: bool,
    /// The allowed values, in words, for error messages.
    pub(crate) allowed: &'static str,
}

pub(crate) const MINUTES: FieldSpec = FieldSpec {
    field: CronField::Minutes,
    min: 0,
    max: 59,
    names: &[],
    wraps: true,
    allowed: "minutes are 0-59",
};

pub(crate) const HOURS: FieldSpec = FieldSpec {
    field: CronField::Hours,
    min: 0,
    max: 23,
    names: &[],
    wraps: true,
    allowed: "hours are 0-23 (UTC)",
};

pub(crate) const DAY_OF_MONTH: FieldSpec = FieldSpec {
    field: CronField::DayOfMonth,
    min: 1,
    max: 31,
    names: &[],
    wraps: true,
    allowed: "days are 1-31, `L` (last day), `LW` (last weekday) or `nW` (weekday nearest day n), or `?`",
};

pub(crate) const MONTH: FieldSpec = FieldSpec {
    field: CronField::Month,
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    wraps: true,
    allowed: "months are 1-12 or JAN-DEC",
};

pub(crate) const DAY_OF_WEEK: FieldSpec = FieldSpec {
    field: CronField::DayOfWeek,
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    wraps: true,
    allowed: "days are 1-7 (1 = SUN) or SUN-SAT",
};

pub(crate) const YEAR: FieldSpec = FieldSpec {
    field: CronField::Year,
    min: 1970,
    max: 2199,
    names: &[],
    // A year range running backwards is a mistake, not a cycle.
    wraps: false,
    allowed: "years are 1970-2199",
};

/// A mistake in one field, before the whole expression is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) field: CronField,
    pub(crate) value: String,
    pub(crate) problem: String,
}

impl FieldError {
    /// The same mistake, quoting the whole special form (`0W`, `8#2`) instead
    /// of the number inside it.
    pub(crate) fn within(self, text: &str) -> FieldError {
        FieldError {
            value: text.to_owned(),
            ..self
        }
    }
}

impl FieldSpec {
    pub(crate) fn error(&self, value: &str, problem: impl Into<String>) -> FieldError {
        FieldError {
            field: self.field,
            value: value.to_owned(),
            problem: problem.into(),
        }
    }

    /// The members of a list such as `1,5-9,*/15`.
    pub(crate) fn parse_list<const WORDS: usize>(
        &self,
        text: &str,
    ) -> Result<ValueSet<WORDS>, FieldError> {
        let mut set = ValueSet::empty(self.min);
        for entry in text.split(',') {
            if entry.is_empty() {
                return Err(self.error(text, "empty list entry (check for a stray `,`)"));
            }
            self.add_entry(entry, &mut set)?;
        }
        Ok(set)
    }

    fn add_entry<const WORDS: usize>(
        &self,
        entry: &str,
        set: &mut ValueSet<WORDS>,
    ) -> Result<(), FieldError> {
        let (range, step) = match entry.split_once('/') {
            Some((range, step)) => (range, Some(self.parse_step(entry, step)?)),
            None => (entry, None),
        };
        let (first, last) = self.parse_bounds(entry, range, step.is_some())?;
        if first > last && !self.wraps {
            return Err(self.error(
                entry,
                format!(
                    "the range runs backwards; {} fields cannot wrap",
                    self.field
                ),
            ));
        }
        self.add_range(set, first, last, step.unwrap_or(1));
        Ok(())
    }

    /// The first and last value of `*`, `a-b` or `a` (which runs to the end
    /// of the field when a step follows: `5/15` is `5-59/15` in minutes).
    fn parse_bounds(
        &self,
        entry: &str,
        range: &str,
        stepped: bool,
    ) -> Result<(u16, u16), FieldError> {
        if range == "*" {
            return Ok((self.min, self.max));
        }
        if range.is_empty() {
            let problem = format!("a value or `*` is needed before `/`; {}", self.allowed);
            return Err(self.error(entry, problem));
        }
        if let Some((first, last)) = range.split_once('-') {
            if first.is_empty() || last.is_empty() {
                let problem = format!(
                    "a range needs a value on both sides of `-`; {}",
                    self.allowed
                );
                return Err(self.error(entry, problem));
            }
            return Ok((self.parse_value(first)?, self.parse_value(last)?));
        }
        let first = self.parse_value(range)?;
        Ok((first, if stepped { self.max } else { first }))
    }

    /// Adds `first`, `first + step`, ... up to `last`, wrapping past `max`
    /// back to `min` when `first > last`.
    fn add_range<const WORDS: usize>(
        &self,
        set: &mut ValueSet<WORDS>,
        first: u16,
        last: u16,
        step: u16,
    ) {
        let span = self.max - self.min + 1;
        let count = (last + span - first) % span + 1;
        for offset in (0..count).step_by(usize::from(step)) {
            set.insert(self.min + (first - self.min + offset) % span);
        }
    }

    fn parse_step(&self, entry: &str, text: &str) -> Result<u16, FieldError> {
        let span = self.max - self.min + 1;
        match parse_number(text) {
            Some(step) if (1..=span).contains(&step) => Ok(step),
            Some(_) => Err(self.error(entry, format!("the step after `/` must be 1-{span}"))),
            None => Err(self.error(
                entry,
                "the step after `/` must be a whole number, e.g. `*/15` or `0-30/10`",
            )),
        }
    }

    /// One number or name, checked against the field's range.
    pub(crate) fn parse_value(&self, token: &str) -> Result<u16, FieldError> {
        if token.is_empty() {
            return Err(self.error(token, format!("a value is missing; {}", self.allowed)));
        }
        if let Some(number) = parse_number(token) {
            return if (self.min..=self.max).contains(&number) {
                Ok(number)
            } else {
                Err(self.error(token, self.allowed))
            };
        }
        if let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(token))
        {
            // names has at most 12 entries
            return Ok(self.min + index as u16);
        }
        let problem = match self.misplaced_special_character(token) {
            Some(hint) => format!("{hint}; {}", self.allowed),
            None => self.allowed.to_owned(),
        };
        Err(self.error(token, problem))
    }

    /// Explains `L`, `W`, `#` and `?` appearing where they are not allowed.
    fn misplaced_special_character(&self, token: &str) -> Option<&'static str> {
        let token = token.to_ascii_uppercase();
        let in_day_field = matches!(self.field, CronField::DayOfMonth | CronField::DayOfWeek);
        if token.contains('?') {
            return Some(if in_day_field {
                "`?` must be the whole field"
            } else {
                "`?` is only allowed in day-of-month or day-of-week"
            });
        }
        // `L`, `LW`, `nL`, `nW`; names such as APRIL are just unknown names.
        let special_letter = token == "L"
            || token == "LW"
            || token
                .strip_suffix(['L', 'W'])
                .is_some_and(|prefix| parse_number(prefix).is_some());
        match self.field {
            CronField::DayOfWeek if special_letter && token.ends_with('W') => {
                Some("`W` (nearest weekday) is only allowed in day-of-month")
            }
            CronField::DayOfWeek if token.contains('#') || special_letter => {
                Some("`L` and `#` must be the whole field, not part of a list, range or step")
            }
            CronField::DayOfMonth if token.contains('#') => {
                Some("`#` (nth weekday) is only allowed in day-of-week")
            }
            CronField::DayOfMonth if special_letter => {
                Some("`L` and `W` must be the whole field, not part of a list, range or step")
            }
            _ if token.contains('#') || special_letter => {
                Some("`L`, `W` and `#` are only allowed in day-of-month or day-of-week")
            }
            _ => None,
        }
    }
}

/// A plain decimal number; values too large for any field saturate.
pub(crate) fn parse_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u16, |number, digit| {
        number
            .saturating_mul(10)
            .saturating_add(u16::from(digit - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(spec: &FieldSpec, text: &str) -> Vec<u16> {
        match spec.parse_list::<4>(text) {
            Ok(set) => set.iter_from(0).collect(),
            Err(error) => panic!("{text}: {error:?}"),
        }
    }

    #[test]
    fn expands_lists_ranges_and_steps() {
        let cases: &[(&FieldSpec, &str, &[u16])] = &[
            (&MINUTES, "*/15", &[0, 15, 30, 45]),
            (&MINUTES, "5/20", &[5, 25, 45]),
            (&MINUTES, "10-20/5", &[10, 15, 20]),
            (&MINUTES, "59", &[59]),
            (&MINUTES, "0,30,15", &[0, 15, 30]),
            (&MINUTES, "05", &[5]),
            (&HOURS, "20-2", &[0, 1, 2, 20, 21, 22, 23]),
            (&HOURS, "20-2/3", &[2, 20, 23]),
            (&HOURS, "*/24", &[0]),
            (&DAY_OF_MONTH, "30-2", &[1, 2, 30, 31]),
            (&MONTH, "nov-feb", &[1, 2, 11, 12]),
            (&MONTH, "JAN,jul,Dec", &[1, 7, 12]),
            (&MONTH, "*/5", &[1, 6, 11]),
            (&DAY_OF_WEEK, "FRI-MON", &[1, 2, 6, 7]),
            (&DAY_OF_WEEK, "mon-fri", &[2, 3, 4, 5, 6]),
            (&DAY_OF_WEEK, "7-1", &[1, 7]),
            (&DAY_OF_WEEK, "3-3", &[3]),
            (&YEAR, "2030-2032,2199", &[2030, 2031, 2032, 2199]),
            (&YEAR, "2190/4", &[2190, 2194, 2198]),
        ];
        for (spec, text, expected) in cases {
            assert_eq!(members(spec, text), *expected, "{} `{text}`", spec.field);
        }
    }

    #[test]
    fn star_covers_the_whole_field() {
        assert_eq!(members(&YEAR, "*").len(), 230);
        assert_eq!(members(&DAY_OF_MONTH, "*").len(), 31);
    }

    #[test]
    fn numbers_saturate_instead_of_overflowing() {
        assert_eq!(parse_number("99999999999"), Some(u16::MAX));
        assert_eq!(parse_number("-1"), None);
        assert_eq!(parse_number(""), None);
    }
}
