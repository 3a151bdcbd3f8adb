//! An SVG chart of a [`BenchReport`]: one panel per metric with the native
//! and container medians as bars and their p95 as whiskers, and below them
//! the median latency of each round in the order run, native and container
//! in two colours.
//!
//! Drawn with plotters' SVG backend and no font files: the SVG's `<text>`
//! elements name a font family and the viewer lays them out.

use std::path::Path;

use anyhow::{anyhow, Context};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{BenchReport, MetricReport};
use super::stats::{self, Form};

/// Native's colour (blue).
pub const NATIVE_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The container's colour (orange).
pub const CONTAINER_COLOR: RGBColor = RGBColor(255, 127, 14);

/// The chart is at least this wide, and each metric panel at least
/// [`PANEL_WIDTH`].
const MIN_WIDTH: u32 = 1000;
const PANEL_WIDTH: u32 = 310;
const PANEL_HEIGHT: u32 = 320;
const ROUNDS_HEIGHT: u32 = 300;
const TITLE_HEIGHT: u32 = 40;

fn color(form: Form) -> RGBColor {
    match form {
        Form::Native => NATIVE_COLOR,
        Form::Container => CONTAINER_COLOR,
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

fn label(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn metric_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    name: &str,
    m: &MetricReport,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let top = m.native.p95.max(m.container.p95).max(m.native.median);
    let top = if top > 0.0 { top * 1.2 } else { 1.0 };
    let better = if m.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{name} ({better})"), ("sans-serif", 17).into_font())
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(48)
        .build_cartesian_2d((0u32..1u32).into_segmented(), 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(0) => Form::Native.to_string(),
            SegmentValue::CenterOf(1) => Form::Container.to_string(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, form, side) in [
        (0u32, Form::Native, &m.native),
        (1u32, Form::Container, &m.container),
    ] {
        let c = color(form);
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), side.median),
            ],
            c.mix(0.8).filled(),
        );
        bar.set_margin(0, 0, 18, 18);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        // The p95 whisker, from the median up (or down) to the p95.
        let whisker = BLACK.stroke_width(2);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (SegmentValue::CenterOf(i), side.median),
                    (SegmentValue::CenterOf(i), side.p95),
                ],
                whisker,
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((SegmentValue::CenterOf(i), side.p95))
                    + PathElement::new(vec![(-8, 0), (8, 0)], whisker),
            ))
            .map_err(err)?;
        // The numbers, centred above the bar and its whisker.
        let above = TextStyle::from(("sans-serif", 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((SegmentValue::CenterOf(i), side.median.max(side.p95)))
                    + Text::new(
                        format!("{} (p95 {})", label(side.median), label(side.p95)),
                        (0, -6),
                        above,
                    ),
            ))
            .map_err(err)?;
    }
    Ok(())
}

fn rounds_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    report: &BenchReport,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let metric = stats::PRIMARY_METRIC;
    let points: Vec<(Form, f64, f64)> = report
        .rounds
        .iter()
        .filter_map(|r| stats::median(&r.values(metric)).map(|m| (r.form, r.index as f64, m)))
        .collect();
    let max_x = points.iter().map(|p| p.1).fold(0.0, f64::max) + 1.0;
    let max_y = points.iter().map(|p| p.2).fold(0.0, f64::max);
    let max_y = if max_y > 0.0 { max_y * 1.2 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{metric} median per round, in the order run"),
            ("sans-serif", 20).into_font(),
        )
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(-0.5f64..max_x - 0.5, 0f64..max_y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(metric)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| label(*y))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for form in [Form::Native, Form::Container] {
        let c = color(form);
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.0 == form)
            .map(|p| (p.1, p.2))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(form.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        chart
            .draw_series(PointSeries::of_element(
                series,
                4,
                c.filled(),
                &|coord, size, style| EmptyElement::at(coord) + Circle::new((0, 0), size, style),
            ))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The chart as an SVG document.
pub fn render_svg(report: &BenchReport) -> anyhow::Result<String> {
    let metrics: Vec<_> = report.ordered_metrics().collect();
    let has_rounds = report
        .rounds
        .iter()
        .any(|r| !r.values(stats::PRIMARY_METRIC).is_empty());
    let height = TITLE_HEIGHT
        + if metrics.is_empty() { 0 } else { PANEL_HEIGHT }
        + if has_rounds { ROUNDS_HEIGHT } else { 0 }
        + if metrics.is_empty() && !has_rounds {
            60
        } else {
            30
        };
    let mut svg = String::new();
    {
        let width = MIN_WIDTH.max(PANEL_WIDTH * metrics.len() as u32);
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (title, rest) = root.split_vertically(TITLE_HEIGHT);
        title
            .draw(&Text::new(
                format!(
                    "jarvisctl bench {} ({}): native vs container, recommendation: {}",
                    report.unit, report.api, report.recommendation
                ),
                (12, 12),
                ("sans-serif", 22).into_font(),
            ))
            .map_err(err)?;
        let (panels, rest) =
            rest.split_vertically(if metrics.is_empty() { 0 } else { PANEL_HEIGHT });
        if !metrics.is_empty() {
            let cells = panels.split_evenly((1, metrics.len()));
            for (cell, (name, m)) in cells.iter().zip(&metrics) {
                metric_panel(cell, name, m)?;
            }
        }
        let (rounds, footer) = rest.split_vertically(if has_rounds { ROUNDS_HEIGHT } else { 0 });
        if has_rounds {
            rounds_panel(&rounds, report)?;
        }
        footer
            .draw(&Text::new(
                report.verdict.clone(),
                (12, 8),
                ("sans-serif", 16).into_font(),
            ))
            .map_err(err)?;
        // Native and container are named even when there is nothing to plot.
        if metrics.is_empty() && !has_rounds {
            for (i, form) in [Form::Native, Form::Container].into_iter().enumerate() {
                footer
                    .draw(&Text::new(
                        format!("{form}: no data"),
                        (12 + 200 * i as i32, 32),
                        ("sans-serif", 16).into_font().color(&color(form)),
                    ))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Writes [`render_svg`]'s chart to `path`.
pub fn write_svg(report: &BenchReport, path: &Path) -> anyhow::Result<()> {
    let svg = render_svg(report)?;
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::client::Api;
    use crate::bench::report::tests::fixture;

    /// The trimmed contents of the SVG's `<text>` elements.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..];
                Some(body[..body.find("</text>")?].trim().to_string())
            })
            .collect()
    }

    #[test]
    fn writes_an_svg_with_both_series() {
        let report = BenchReport::new("llm", Api::Ollama, fixture(), 0.05).unwrap();
        let dir = std::env::temp_dir().join(format!("jarvis-bench-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bench.svg");
        write_svg(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        let texts = texts(&svg);
        let has = |s: &str| texts.iter().any(|t| t == s);
        // The bar panels' axis labels, and the round series' legend.
        assert_eq!(
            texts.iter().filter(|t| *t == "native").count(),
            4,
            "{texts:?}"
        );
        assert_eq!(
            texts.iter().filter(|t| *t == "container").count(),
            4,
            "{texts:?}"
        );
        assert!(has("latency_ms (lower is better)"), "{texts:?}");
        assert!(has("ttft_ms (lower is better)"), "{texts:?}");
        assert!(has("100 (p95 102)") && has("110 (p95 112)"), "{texts:?}");
        assert!(has("latency_ms median per round, in the order run"));
        // Both colours are used.
        assert!(svg.contains("#1F77B4") || svg.contains("#1f77b4"));
        assert!(svg.contains("#FF7F0E") || svg.contains("#ff7f0e"));
        // Balanced: every opened element is closed.
        let opened = svg.matches("<text").count();
        assert_eq!(opened, svg.matches("</text>").count());
    }

    #[test]
    fn all_four_metrics_get_a_panel() {
        let mut rounds = fixture();
        for r in &mut rounds {
            for (j, s) in r.samples.iter_mut().enumerate() {
                s.gen_tokens_per_s = Some(50.0 + j as f64);
                s.prompt_tokens_per_s = Some(900.0 + 10.0 * j as f64);
            }
        }
        let report = BenchReport::new("llm", Api::Openai, rounds, 0.05).unwrap();
        assert_eq!(report.metrics.len(), 4);
        let svg = render_svg(&report).unwrap();
        let texts = texts(&svg);
        for caption in [
            "latency_ms (lower is better)",
            "ttft_ms (lower is better)",
            "gen_tokens_per_s (higher is better)",
            "prompt_tokens_per_s (higher is better)",
        ] {
            assert!(texts.iter().any(|t| t == caption), "{caption}: {texts:?}");
        }
        assert_eq!(texts.iter().filter(|t| *t == "native").count(), 5);
    }
}
