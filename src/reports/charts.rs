//! SVG charts with plotters' SVG backend (no font files: the browser draws the text).

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One line of a chart.
pub struct Line {
    pub name: String,
    /// (x index, y) points; x indexes [`LineChart::x_labels`].
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
}

pub struct LineChart {
    pub title: String,
    pub y_desc: String,
    /// The label of each x position (0, 1, …); only every `label_every`-th is printed.
    pub x_labels: Vec<String>,
    pub label_every: usize,
    pub lines: Vec<Line>,
}

pub const BLUE_L: RGBColor = RGBColor(31, 119, 180);
pub const ORANGE_T: RGBColor = RGBColor(255, 127, 14);
pub const GREEN_MATCHED: RGBColor = RGBColor(44, 160, 44);
pub const RED: RGBColor = RGBColor(214, 39, 40);
pub const PURPLE: RGBColor = RGBColor(148, 103, 189);
pub const GREY: RGBColor = RGBColor(127, 127, 127);

fn err(e: impl std::fmt::Display) -> Error {
    Error::Chart(e.to_string())
}

/// Few positions (months) get half a step of room on each side; many (quarter-hours) none.
fn x_range(n: usize) -> std::ops::Range<f64> {
    if n <= 24 {
        -0.5..(n as f64 - 0.5)
    } else {
        0.0..(n - 1) as f64
    }
}

/// The chart as an SVG document.
pub fn line_chart(c: &LineChart) -> Result<String> {
    let n = c.x_labels.len().max(2);
    let ys = c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (lo, hi) = (
        if lo >= 0.0 && lo - pad < 0.0 {
            0.0
        } else {
            lo - pad
        },
        hi + pad,
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&c.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range(c.x_labels.len()), lo..hi)
            .map_err(err)?;
        let labels = &c.x_labels;
        let every = c.label_every.max(1);
        chart
            .configure_mesh()
            .x_labels(n.div_ceil(every).clamp(2, 14))
            .x_label_formatter(&|x| {
                let i = x.round() as usize;
                if (x - i as f64).abs() < 1e-6 && i.is_multiple_of(every) {
                    labels.get(i).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc(&c.y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        for l in &c.lines {
            let color = l.color;
            // Few points (months): mark them, a single point draws no line.
            if l.points.len() < 40 {
                chart
                    .draw_series(l.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
                    .map_err(err)?;
            }
            let series = chart
                .draw_series(LineSeries::new(
                    l.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(err)?;
            if !l.name.is_empty() {
                series.label(&l.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_lines_and_labels() {
        let svg = line_chart(&LineChart {
            title: "Cable K1 & co".into(),
            y_desc: "kWh".into(),
            x_labels: (0..4).map(|i| format!("h{i}")).collect(),
            label_every: 1,
            lines: vec![
                Line {
                    name: "L".into(),
                    points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 1.5), (3.0, 0.5)],
                    color: BLUE_L,
                },
                Line {
                    name: "T".into(),
                    points: vec![(0.0, 0.0), (3.0, 1.0)],
                    color: ORANGE_T,
                },
            ],
        })
        .unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"));
        assert!(svg.contains("Cable K1 &amp; co") || svg.contains("Cable K1 & co"));
        // Each line is one polyline in its colour with all its points, plus its legend stroke.
        let lines = |color: &str| -> Vec<usize> {
            svg.split("<polyline")
                .filter(|p| p.contains(&format!("stroke=\"{color}\"")))
                .map(|p| {
                    p.split("points=\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .count()
                })
                .collect()
        };
        assert_eq!(lines("#1F77B4"), vec![4, 2], "L: 4 points and the legend");
        assert_eq!(lines("#FF7F0E"), vec![2, 2], "T: 2 points and the legend");
        assert!(svg.contains("h2"), "x labels are drawn");
        assert!(svg.contains("viewBox"), "scales on a phone");
    }
}
