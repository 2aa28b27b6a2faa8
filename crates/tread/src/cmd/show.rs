//! What the CLI prints for a person: tables whose columns fit their
//! content, times to the second, and API objects as `key: value` lines.
//! `--json` prints the API's answer instead, at full precision.

use serde_json::Value;

/// A table printed with each column as wide as its widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<bool>,
}

impl Table {
    /// A table with these column headers; a header ending in `>` (which is
    /// not printed) is right-aligned, for numbers.
    pub fn new(headers: &[&str]) -> Self {
        let right = headers.iter().map(|h| h.ends_with('>')).collect();
        let header = headers
            .iter()
            .map(|h| h.trim_end_matches('>').to_string())
            .collect();
        Self {
            rows: vec![header],
            right,
        }
    }

    /// Adds a row, one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, columns two spaces apart, no trailing spaces.
    pub fn render(&self) -> String {
        let columns = self.right.len();
        let width = |c: usize| {
            self.rows
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        for row in &self.rows {
            let cells: Vec<String> = (0..columns)
                .map(|c| {
                    let cell = row.get(c).map_or("", String::as_str);
                    if self.right[c] {
                        format!("{cell:>w$}", w = widths[c])
                    } else {
                        format!("{cell:<w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on standard output.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// An RFC 3339 time to the second (`2026-12-04T20:07:29.123456789Z` →
/// `2026-12-04T20:07:29Z`); any other text unchanged.
pub fn second(text: &str) -> String {
    if !looks_like_time(text) {
        return text.to_string();
    }
    match text[19..].strip_prefix('.') {
        Some(fraction) => {
            let zone = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{zone}", &text[..19])
        }
        None => text.to_string(),
    }
}

/// `yyyy-mm-ddThh:mm:ss…`.
fn looks_like_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

/// A string field of `value`, `-` when absent; times to the second.
pub fn field(value: &Value, key: &str) -> String {
    value[key].as_str().map_or_else(|| "-".to_string(), second)
}

/// Keys shown first, in this order, when an object has them; the rest
/// follow alphabetically.
const FIRST: &[&str] = &[
    "name", "endpoint", "id", "index", "kind", "version", "pipeline", "state", "status",
];

/// The field holding a pipeline file, printed as its own text at the end.
const SOURCE: &str = "source";

/// `value` (an API object) for a person: one `key: value` line per field,
/// nested objects indented, times to the second, and a pipeline file
/// (`source`) as its own text after the fields.
pub fn describe(value: &Value) -> String {
    let mut out = String::new();
    fields(value, 0, &mut out);
    if let Some(source) = value[SOURCE].as_str() {
        out.push_str("\npipeline file:\n");
        out.push_str(source.trim_end());
        out.push('\n');
    }
    out
}

/// Writes the fields of object `value` at `indent`.
fn fields(value: &Value, indent: usize, out: &mut String) {
    let Some(object) = value.as_object() else {
        out.push_str(&format!("{:indent$}{}\n", "", scalar(value)));
        return;
    };
    let mut keys: Vec<&String> = object
        .keys()
        .filter(|k| *k != SOURCE || indent > 0)
        .collect();
    keys.sort_by_key(|k| (FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()), *k));
    for key in keys {
        entry(key, &object[key.as_str()], indent, out);
    }
}

/// Writes one `key: value`, or `key:` and the nested value below it.
fn entry(key: &str, value: &Value, indent: usize, out: &mut String) {
    let pad = "";
    match value {
        Value::Object(o) if !o.is_empty() => {
            out.push_str(&format!("{pad:indent$}{key}:\n"));
            fields(value, indent + 2, out);
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            out.push_str(&format!("{pad:indent$}{key}:\n"));
            for item in items {
                let mut block = String::new();
                fields(item, indent + 4, &mut block);
                // The first line of each item starts with `- `.
                let at = indent + 2;
                if block.len() < at + 2 {
                    block = format!("{pad:at$}- -\n");
                } else {
                    block.replace_range(at..at + 2, "- ");
                }
                out.push_str(&block);
            }
        }
        Value::String(text) if text.contains('\n') => {
            out.push_str(&format!("{pad:indent$}{key}:\n"));
            for line in text.lines() {
                out.push_str(&format!("{pad:w$}{line}\n", w = indent + 2));
            }
        }
        _ => out.push_str(&format!("{pad:indent$}{key}: {}\n", scalar(value))),
    }
}

/// A value on one line: text as is (times to the second), `-` for null,
/// lists of plain values joined with commas, anything else as JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => second(s),
        Value::Array(items) if items.is_empty() => "-".to_string(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => {
            items.iter().map(scalar).collect::<Vec<_>>().join(", ")
        }
        Value::Object(o) if o.is_empty() => "-".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: nanosecond timestamps and long schedules overflowed
    /// fixed-width columns.
    #[test]
    fn r17_table_columns_fit_their_content_and_times_stop_at_the_second() {
        let mut table = Table::new(&["NAME", "SCHEDULE", "COST>"]);
        table.row(vec![
            "p".into(),
            "cron(0/15 8-18 ? * MON-FRI 2026-2030)".into(),
            "1.5".into(),
        ]);
        table.row(vec![
            "long-name".into(),
            second("2026-12-04T20:07:29.123456789Z"),
            "10.25".into(),
        ]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "NAME       SCHEDULE                                COST"
        );
        assert_eq!(
            lines[1],
            "p          cron(0/15 8-18 ? * MON-FRI 2026-2030)    1.5"
        );
        assert_eq!(
            lines[2],
            "long-name  2026-12-04T20:07:29Z                   10.25"
        );
        assert_eq!(
            second("2026-12-04T20:07:29.5+01:00"),
            "2026-12-04T20:07:29+01:00"
        );
        assert_eq!(second("rate(1 day)"), "rate(1 day)");
    }

    /// Issue 17: `describe` printed raw JSON with the pipeline file as one
    /// escaped string.
    #[test]
    fn r17_describe_prints_fields_and_the_pipeline_file_as_text() {
        let view = serde_json::json!({
            "updated": "2026-12-04T20:07:29.123456789Z",
            "name": "tyre",
            "steps": ["train", "deploy"],
            "last_run": {"id": 3, "state": "succeeded"},
            "history": [{"seq": 1, "action": "deploy"}],
            "next_run": null,
            "source": "name = \"tyre\"\n[[steps]]\nkind = \"train\"\n",
        });
        let text = describe(&view);
        assert_eq!(
            text,
            "name: tyre\n\
             history:\n  - action: deploy\n    seq: 1\n\
             last_run:\n  id: 3\n  state: succeeded\n\
             next_run: -\n\
             steps: train, deploy\n\
             updated: 2026-12-04T20:07:29Z\n\
             \npipeline file:\nname = \"tyre\"\n[[steps]]\nkind = \"train\"\n"
        );
    }
}
