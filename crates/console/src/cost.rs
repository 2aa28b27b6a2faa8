//! Compute cost summed from the API's instance list: today and this
//! month, and per day and per pipeline.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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

/// Instances, billed and queued seconds and cost of a group of instances.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Instances in the group.
    pub instances: usize,
    /// Seconds billed (start to stop).
    pub billed_seconds: f64,
    /// Seconds waited in a cluster's queue, not billed.
    pub queued_seconds: f64,
    /// What they cost.
    pub cost: f64,
}

impl Totals {
    fn add(&mut self, instance: &Value) {
        let number = |field| instance.get(field).and_then(Value::as_f64).unwrap_or(0.0);
        self.instances += 1;
        self.billed_seconds += number("billed_seconds");
        self.queued_seconds += number("queued_seconds");
        self.cost += number("cost");
    }
}

/// Instance totals per start day (UTC, newest first) and per pipeline
/// (dearest first).
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Breakdown {
    /// `(YYYY-MM-DD, totals)`.
    pub by_day: Vec<(String, Totals)>,
    /// `(pipeline, totals)`.
    pub by_pipeline: Vec<(String, Totals)>,
}

impl Breakdown {
    /// Groups `instances` (the API's list) by start day and by pipeline.
    pub fn of(instances: &Value) -> Self {
        let mut by_day: BTreeMap<String, Totals> = BTreeMap::new();
        let mut by_pipeline: BTreeMap<String, Totals> = BTreeMap::new();
        for instance in instances.as_array().into_iter().flatten() {
            let text = |field| instance.get(field).and_then(Value::as_str).unwrap_or("");
            let day = text("started").get(..10).unwrap_or("").to_owned();
            by_day.entry(day).or_default().add(instance);
            by_pipeline
                .entry(text("pipeline").to_owned())
                .or_default()
                .add(instance);
        }
        let mut by_pipeline: Vec<_> = by_pipeline.into_iter().collect();
        by_pipeline.sort_by(|a, b| b.1.cost.total_cmp(&a.1.cost).then_with(|| a.0.cmp(&b.0)));
        Self {
            by_day: by_day.into_iter().rev().collect(),
            by_pipeline,
        }
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

    #[test]
    fn breaks_instances_down_by_day_and_pipeline() {
        let instances = json!([
            {"pipeline": "a", "started": "2026-12-06T01:00:00Z", "cost": 0.5, "billed_seconds": 60.0, "queued_seconds": 2.0},
            {"pipeline": "b", "started": "2026-12-06T03:00:00Z", "cost": 2.0, "billed_seconds": 240.0, "queued_seconds": 0.0},
            {"pipeline": "a", "started": "2026-12-05T23:00:00Z", "cost": 0.25, "billed_seconds": 30.0, "queued_seconds": 1.0},
            {"pipeline": "a", "started": "2026-12-06T04:00:00Z", "cost": null, "billed_seconds": null, "queued_seconds": 0.0}
        ]);
        let breakdown = Breakdown::of(&instances);
        let days: Vec<(&str, usize, f64)> = breakdown
            .by_day
            .iter()
            .map(|(d, t)| (d.as_str(), t.instances, t.cost))
            .collect();
        assert_eq!(days, [("2026-12-06", 3, 2.5), ("2026-12-05", 1, 0.25)]);
        let pipelines: Vec<(&str, f64, f64)> = breakdown
            .by_pipeline
            .iter()
            .map(|(p, t)| (p.as_str(), t.cost, t.queued_seconds))
            .collect();
        assert_eq!(
            pipelines,
            [("b", 2.0, 0.0), ("a", 0.75, 3.0)],
            "dearest first"
        );
    }
}
