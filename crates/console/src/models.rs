//! The registry's pages: every version with its figures and held-out
//! accuracy across versions as a chart, one version with its confusion
//! matrix and settings, two or more versions side by side, and promote.

use crate::Console;
use crate::chart::{LineChart, Series};
use crate::error::ConsoleError;
use crate::pages::{after_action, escaped, page};
use crate::session::{ActionForm, Session, check_form};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Form};
use minijinja::{Value, context};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;

type Shared = State<Arc<Console>>;

/// Every version, newest first per model, and the accuracy chart.
pub async fn models(State(c): Shared, Extension(s): Extension<Session>) -> Response {
    let values = async {
        let models = c.api.get("/api/models").await?;
        let versions = models.as_array().map(Vec::as_slice).unwrap_or_default();
        Ok::<_, ConsoleError>(context! {
            models => Value::from_serialize(&models),
            chart => accuracy_chart(versions)?,
        })
    }
    .await;
    page(&c, &s, "models.html", values)
}

/// Held-out accuracy across versions, a line per model, production ringed.
fn accuracy_chart(versions: &[Json]) -> Result<Option<String>, ConsoleError> {
    let mut by_name: BTreeMap<&str, Series> = BTreeMap::new();
    for v in versions {
        let (Some(name), Some(version), Some(accuracy)) = (
            v["name"].as_str(),
            v["version"].as_f64(),
            v["accuracy"].as_f64(),
        ) else {
            continue;
        };
        let series = by_name.entry(name).or_insert_with(|| Series {
            label: name.to_owned(),
            points: Vec::new(),
            ringed: Vec::new(),
        });
        series.points.push((version, accuracy));
        if v["production"].as_bool() == Some(true) {
            series.ringed.push((version, accuracy));
        }
    }
    let series = by_name
        .into_values()
        .map(|mut s| {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            s
        })
        .collect();
    LineChart {
        x_label: "version",
        y_label: "held-out accuracy",
        whole_x: true,
        series,
    }
    .svg()
}

/// One version: figures, per-class table, confusion matrix, settings.
pub async fn model(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((name, version)): Path<(String, i64)>,
) -> Response {
    let values = async {
        let model = c
            .api
            .get(&format!("/api/models/{}/{version}", escaped(&name)))
            .await?;
        let settings = settings_of(&model);
        Ok::<_, ConsoleError>(context! {
            model => Value::from_serialize(&model),
            settings => Value::from_serialize(&settings),
        })
    }
    .await;
    page(&c, &s, "model.html", values)
}

/// A version's settings as sorted `(name, value)` pairs for a table.
fn settings_of(model: &Json) -> Vec<(String, String)> {
    model["settings"]
        .as_object()
        .map(|fields| {
            let mut pairs: Vec<_> = fields.iter().map(|(k, v)| (k.clone(), shown(v))).collect();
            pairs.sort();
            pairs
        })
        .unwrap_or_default()
}

/// Promotes a version to production, then shows it.
pub async fn promote(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path((name, version)): Path<(String, i64)>,
    Form(form): Form<ActionForm>,
) -> Response {
    let done = async {
        check_form(&s, &form.form_token)?;
        let path = format!("/api/models/{}/{version}", escaped(&name));
        c.api.post(&format!("{path}/promote"), "").await?;
        Ok(format!("/console/models/{}/{version}", escaped(&name)))
    }
    .await;
    after_action(&c, done)
}

/// Versions side by side: `?v=name/3&v=name/5` (the models page's boxes).
pub async fn compare(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let values = async {
        let chosen: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == "v")
            .map(|(_, v)| v.as_str())
            .collect();
        if chosen.len() < 2 {
            return Err(ConsoleError::Invalid(
                "choose two or more versions to compare (the boxes on the models page)".into(),
            ));
        }
        let mut versions = Vec::with_capacity(chosen.len());
        for id in chosen {
            let Some((name, version)) = id.rsplit_once('/') else {
                return Err(ConsoleError::Invalid(format!(
                    "{id:?} is no model version: give name/version"
                )));
            };
            let path = format!("/api/models/{}/{}", escaped(name), escaped(version));
            versions.push(c.api.get(&path).await?);
        }
        Ok(context! {
            versions => Value::from_serialize(&versions),
            rows => Value::from_serialize(comparison(&versions)),
        })
    }
    .await;
    page(&c, &s, "compare.html", values)
}

/// One line of a comparison: a figure or setting for every version.
#[derive(Debug, PartialEq, Serialize)]
struct CompareRow {
    /// The table part it belongs to: figures, per-class or settings.
    group: &'static str,
    label: String,
    values: Vec<String>,
    /// Whether the versions disagree, so the page can mark it.
    differs: bool,
}

impl CompareRow {
    fn new(group: &'static str, label: String, values: Vec<String>) -> Self {
        let differs = values.windows(2).any(|w| w[0] != w[1]);
        Self {
            group,
            label,
            values,
            differs,
        }
    }
}

/// The rows of a comparison of `versions` (API model versions): held-out
/// figures, each class's precision, recall and F1, then every setting any
/// of them has (`—` where one has none).
fn comparison(versions: &[Json]) -> Vec<CompareRow> {
    let each = |f: &dyn Fn(&Json) -> String| versions.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        CompareRow::new(
            "figures",
            "held-out accuracy".into(),
            each(&|v| percent(&v["accuracy"])),
        ),
        CompareRow::new(
            "figures",
            "images evaluated".into(),
            each(&|v| shown(&v["metrics"]["images"])),
        ),
        CompareRow::new(
            "figures",
            "dataset digest".into(),
            each(&|v| shown(&v["dataset_digest"])),
        ),
        CompareRow::new("figures", "run".into(), each(&|v| shown(&v["run_id"]))),
        CompareRow::new(
            "figures",
            "production".into(),
            each(&|v| if v["production"] == true { "yes" } else { "no" }.into()),
        ),
    ];
    for class in union(versions, |v| {
        v["metrics"]["classes"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }) {
        let figures = |v: &Json| {
            let of = v["metrics"]["classes"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == class.as_str()));
            of.map_or("—".into(), |c| {
                format!(
                    "{} / {} / {}",
                    ratio(&c["precision"]),
                    ratio(&c["recall"]),
                    ratio(&c["f1"])
                )
            })
        };
        rows.push(CompareRow::new(
            "classes",
            format!("{class}: precision / recall / F1"),
            each(&figures),
        ));
    }
    for key in union(versions, |v| {
        v["settings"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }) {
        let value = |v: &Json| v["settings"].get(&key).map_or("—".into(), shown);
        rows.push(CompareRow::new("settings", key.clone(), each(&value)));
    }
    rows
}

/// Every name `names` gives for any version, once, in first-seen order.
fn union(versions: &[Json], names: impl Fn(&Json) -> Vec<String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for name in versions.iter().flat_map(names) {
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

/// A JSON value as a person reads it: strings bare, `—` for nothing.
fn shown(value: &Json) -> String {
    match value {
        Json::Null => "—".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn percent(value: &Json) -> String {
    value
        .as_f64()
        .map_or("—".into(), |a| format!("{:.2} %", a * 100.0))
}

fn ratio(value: &Json) -> String {
    value.as_f64().map_or("—".into(), |r| format!("{r:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(n: i64, accuracy: f64, epochs: u64, recall: f64) -> Json {
        json!({
            "name": "tyres", "version": n, "accuracy": accuracy, "run_id": n + 10,
            "dataset_digest": "sha256:d", "production": n == 2,
            "metrics": { "images": 240, "classes": [
                { "name": "good", "precision": 0.9, "recall": recall, "f1": 0.9 },
            ]},
            "settings": { "architecture": "resnet-small", "epochs": epochs },
        })
    }

    #[test]
    fn a_comparison_lines_up_figures_classes_and_settings_and_marks_differences() {
        let rows = comparison(&[version(1, 0.9, 30, 0.95), version(2, 0.925, 30, 0.9)]);
        let row = |label: &str| rows.iter().find(|r| r.label == label);
        let accuracy = row("held-out accuracy").expect("accuracy row");
        assert_eq!(accuracy.values, ["90.00 %", "92.50 %"]);
        assert!(accuracy.differs);
        let digest = row("dataset digest").expect("digest row");
        assert!(!digest.differs, "the same data is not marked");
        let class = row("good: precision / recall / F1").expect("class row");
        assert_eq!(
            class.values,
            ["0.900 / 0.950 / 0.900", "0.900 / 0.900 / 0.900"]
        );
        assert_eq!(class.group, "classes");
        let epochs = row("epochs").expect("a settings row");
        assert_eq!((epochs.group, epochs.differs), ("settings", false));
        assert_eq!(
            row("production").map(|r| r.values.clone()),
            Some(vec!["no".into(), "yes".into()])
        );
    }

    #[test]
    fn a_setting_one_version_lacks_shows_a_dash() {
        let mut older = version(1, 0.9, 30, 0.9);
        older["settings"] = Json::Null;
        let rows = comparison(&[older, version(2, 0.9, 20, 0.9)]);
        let epochs = rows
            .iter()
            .find(|r| r.label == "epochs")
            .expect("epochs row");
        assert_eq!(epochs.values, ["—", "20"]);
        assert!(epochs.differs);
    }

    #[test]
    fn the_chart_has_a_line_per_model_and_rings_production() {
        let mut other = version(1, 0.7, 30, 0.9);
        other["name"] = json!("cats");
        let versions = [version(2, 0.925, 30, 0.9), version(1, 0.9, 30, 0.9), other];
        let Ok(Some(svg)) = accuracy_chart(&versions) else {
            panic!("no chart");
        };
        assert!(
            svg.contains("tyres") && svg.contains("cats"),
            "a legend names both"
        );
        assert_eq!(
            svg.matches("<circle").count(),
            4,
            "three points and one ring"
        );
    }
}
