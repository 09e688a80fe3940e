//! One panel as a PNG line chart (plotters): each series a line, time in UTC on the x axis, values
//! in the panel's unit on the y axis, the legend below the lines. Text is DejaVu Sans, read from
//! its Debian path at run time (plotters does no system font lookup).

use std::{
    path::Path,
    sync::{Mutex, PoisonError},
};

use plotters::{prelude::*, style::FontStyle};

use super::ReportError;

/// The font every chart's text is drawn with, and the Debian package that ships it.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT_PACKAGE: &str = "fonts-dejavu-core";
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 420);

/// A line of the chart.
pub struct Line {
    pub legend: String,
    pub points: Vec<(f64, f64)>,
}

fn register_font() -> Result<(), ReportError> {
    static REGISTERED: Mutex<bool> = Mutex::new(false);
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    if *registered {
        return Ok(());
    }
    let bytes = std::fs::read(FONT_PATH).map_err(|e| {
        ReportError::Chart(format!(
            "reading the font {FONT_PATH}: {e} (install the Debian package {FONT_PACKAGE})"
        ))
    })?;
    // plotters keeps a 'static reference: loaded once for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| ReportError::Chart(format!("{FONT_PATH} is not a usable font")))?;
    *registered = true;
    Ok(())
}

/// A value in Grafana's `unit` (bytes and per-second units scaled with SI prefixes).
pub fn format_value(value: f64, unit: &str) -> String {
    let scaled = |v: f64, suffix: &str| {
        let (v, prefix) = match v.abs() {
            a if a >= 1e9 => (v / 1e9, "G"),
            a if a >= 1e6 => (v / 1e6, "M"),
            a if a >= 1e3 => (v / 1e3, "k"),
            _ => (v, ""),
        };
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
            + " "
            + prefix
            + suffix
    };
    match unit {
        "percentunit" => format!("{:.2}%", value * 100.0),
        "s" if value < 1e-3 => format!("{:.1} µs", value * 1e6),
        "s" if value < 1.0 => format!("{:.2} ms", value * 1e3),
        "s" => format!("{value:.2} s"),
        "bytes" => scaled(value, "B"),
        "Bps" => scaled(value, "B/s"),
        "pps" => scaled(value, "p/s"),
        "ops" => scaled(value, "/s"),
        _ => scaled(value, ""),
    }
    .trim()
    .to_owned()
}

fn clock(t: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let seconds = t.max(0.0) as u64 % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Draws `lines` into `file`.
pub fn draw(file: &Path, title: &str, unit: &str, lines: &[Line]) -> Result<(), ReportError> {
    register_font()?;
    let failed = |e: &dyn std::fmt::Display| ReportError::Chart(format!("{}: {e}", file.display()));
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (0.0f64, f64::MIN);
    for &(t, v) in points() {
        x0 = x0.min(t);
        x1 = x1.max(t);
        y0 = y0.min(v);
        y1 = y1.max(v);
    }
    if x0 > x1 {
        return Err(ReportError::Chart(format!("{title}: no points to draw")));
    }
    if x1 - x0 < 1.0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let root = BitMapBackend::new(file, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(36)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, y0..y1 * 1.08)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|t| clock(*t))
        .y_label_formatter(&|v| format_value(*v, unit))
        .x_desc("time (UTC)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(|e| failed(&e))?;
    for (index, line) in lines.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| failed(&e))?
            .label(line.legend.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shown_in_the_panel_unit() {
        assert_eq!(format_value(0.0123, "percentunit"), "1.23%");
        assert_eq!(format_value(0.00025, "s"), "250.0 µs");
        assert_eq!(format_value(0.25, "s"), "250.00 ms");
        assert_eq!(format_value(34_770_944.0, "bytes"), "34.771 MB");
        assert_eq!(format_value(5.5, "pps"), "5.5 p/s");
        assert_eq!(format_value(3.0, "short"), "3");
        assert_eq!(clock(1_764_700_000.0), "18:26:40");
    }

    #[test]
    fn a_chart_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.png");
        let lines = [Line {
            legend: "n1".into(),
            points: vec![(100.0, 1.0), (160.0, 3.0)],
        }];
        draw(&file, "Packets", "pps", &lines).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(draw(&file, "Empty", "pps", &[]).is_err());
    }
}
