//! Compute cost summed from the API's instance list.

use serde::Serialize;
use serde_json::Value;

/// Today's date (UTC) as `YYYY-MM-DD`, the prefix of today's RFC 3339 times.
pub fn today() -> String {
    let date = time::OffsetDateTime::now_utc().date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Cost and billed seconds of the instances started today and this month.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    /// Cost of instances started today (UTC).
    pub today: f64,
    /// Cost of instances started this month (UTC).
    pub month: f64,
    /// Billed seconds of instances started this month.
    pub month_seconds: f64,
}

impl Cost {
    /// Sums `instances` (the API's list) by their start date against
    /// `today` (`YYYY-MM-DD`).
    pub fn of(instances: &Value, today: &str) -> Self {
        let month = today.get(..7).unwrap_or(today);
        let mut cost = Self::default();
        for instance in instances.as_array().into_iter().flatten() {
            let started = instance
                .get("started")
                .and_then(Value::as_str)
                .unwrap_or("");
            let spent = instance.get("cost").and_then(Value::as_f64).unwrap_or(0.0);
            let seconds = instance
                .get("billed_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            if started.starts_with(month) {
                cost.month += spent;
                cost.month_seconds += seconds;
                if started.starts_with(today) {
                    cost.today += spent;
                }
            }
        }
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sums_cost_by_the_day_and_month_instances_started() {
        let instances = json!([
            {"started": "2026-12-06T01:00:00Z", "cost": 0.5, "billed_seconds": 60.0},
            {"started": "2026-12-01T23:00:00Z", "cost": 0.25, "billed_seconds": 30.0},
            {"started": "2026-11-30T23:00:00Z", "cost": 4.0, "billed_seconds": 900.0},
            {"started": "2026-12-06T02:00:00Z", "cost": null, "billed_seconds": null}
        ]);
        let cost = Cost::of(&instances, "2026-12-06");
        assert_eq!(
            cost,
            Cost {
                today: 0.5,
                month: 0.75,
                month_seconds: 90.0
            }
        );
    }
}
