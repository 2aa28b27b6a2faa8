//! Charts drawn on the server as SVG with plotters. No font is loaded:
//! labels stay `<text>` that the browser lays out, so the binary carries no
//! font and a chart needs no script.

use crate::error::ConsoleError;
use plotters::prelude::*;

/// Pixel size of a chart; the page scales it to its width.
const SIZE: (u32, u32) = (720, 300);

/// One line of a [`LineChart`].
pub struct Series {
    /// What the legend calls it.
    pub label: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Points ringed on top of the line (a production version).
    pub ringed: Vec<(f64, f64)>,
}

/// Lines over a shared pair of axes.
pub struct LineChart<'a> {
    /// The x axis's name.
    pub x_label: &'a str,
    /// The y axis's name.
    pub y_label: &'a str,
    /// Whether x values are whole numbers (versions, epochs).
    pub whole_x: bool,
    /// The lines.
    pub series: Vec<Series>,
}

impl LineChart<'_> {
    /// The chart as an SVG document, or `None` when there is nothing to
    /// draw.
    pub fn svg(&self) -> Result<Option<String>, ConsoleError> {
        let points = || self.series.iter().flat_map(|s| s.points.iter());
        let (Some(x), Some(y)) = (span(points().map(|p| p.0)), span(points().map(|p| p.1))) else {
            return Ok(None);
        };
        let mut svg = String::new();
        self.draw(&mut svg, x, y).map_err(|e| {
            ConsoleError::Internal(format!("drawing a chart of {}: {e}", self.y_label))
        })?;
        Ok(Some(svg))
    }

    fn draw(
        &self,
        svg: &mut String,
        x: (f64, f64),
        y: (f64, f64),
    ) -> Result<(), DrawingAreaErrorKind<std::io::Error>> {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
        let whole = self.whole_x;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .x_label_formatter(&|v| {
                if whole {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()?;
        for (i, series) in self.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    series.points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(series.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            chart.draw_series(
                series
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 3, colour.filled())),
            )?;
            chart.draw_series(
                series
                    .ringed
                    .iter()
                    .map(|&p| Circle::new(p, 7, colour.stroke_width(2))),
            )?;
        }
        if self.series.len() > 1 {
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()?;
        }
        root.present()
    }
}

/// The range the values cover, widened when they are all one value so
/// the axis has a length.
fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        })?;
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    Some((lo - pad, hi + pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> LineChart<'static> {
        LineChart {
            x_label: "version",
            y_label: "held-out accuracy",
            whole_x: true,
            series,
        }
    }

    #[test]
    fn a_chart_draws_each_point_and_rings_the_marked_one() {
        let svg = chart(vec![Series {
            label: "tyres <&>".into(),
            points: vec![(1.0, 0.8), (2.0, 0.9), (3.0, 0.85)],
            ringed: vec![(2.0, 0.9)],
        }])
        .svg();
        let Ok(Some(svg)) = svg else {
            panic!("no chart: {svg:?}");
        };
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 4, "three points, one ring");
        assert!(svg.contains("held-out accuracy"));
        assert!(svg.contains("<polyline"), "the line joining the points");
    }

    #[test]
    fn several_series_get_a_legend_with_their_names_escaped() {
        let line = |label: &str, y: f64| Series {
            label: label.into(),
            points: vec![(1.0, y), (2.0, y + 0.01)],
            ringed: vec![],
        };
        let Ok(Some(svg)) = chart(vec![line("a<b", 0.7), line("c", 0.8)]).svg() else {
            panic!("no chart");
        };
        assert!(svg.contains("a&lt;b"), "{svg}");
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn nothing_to_draw_is_no_chart() {
        assert!(matches!(chart(vec![]).svg(), Ok(None)));
        let single = chart(vec![Series {
            label: "one".into(),
            points: vec![(1.0, 0.5)],
            ringed: vec![],
        }]);
        assert!(matches!(single.svg(), Ok(Some(_))), "one point still draws");
    }
}
