//! PNG charts of a netbench [`RunReport`], drawn with plotters: per scenario, how the connection
//! rate, TCP RR p99 latency, stream throughput and UDP RR rate of each dataplane change over the
//! service-count sweep (`direct` as a dashed reference line), and how long programming the services
//! took. Text is rendered with DejaVu Sans, read at run time (there is no system font lookup).

use std::{
    fmt, fs, io,
    ops::Range,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

use plotters::{
    coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged},
    prelude::*,
    style::{
        FontStyle,
        text_anchor::{HPos, Pos, VPos},
    },
};

use super::{
    report::{programming_entries, service_counts, services_label},
    results::{Dataplane, Measurement, RunReport, Scenario},
};

/// The font every chart's text is drawn with.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The Debian package that ships [`FONT_PATH`].
pub const FONT_PACKAGE: &str = "fonts-dejavu-core";
/// Size of every chart, pixels.
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 500;

/// Width of the legend column on the right of each chart, pixels.
const LEGEND_WIDTH: u32 = 190;
const FONT: &str = "sans-serif";

/// Why the charts could not be written.
#[derive(Debug)]
pub enum ChartError {
    /// The font file could not be read.
    FontMissing { path: PathBuf, source: io::Error },
    /// The font file is not a font plotters can use.
    FontInvalid { path: PathBuf },
    /// The output directory could not be created.
    CreateDir { dir: PathBuf, source: io::Error },
    /// Drawing or encoding one chart failed.
    Draw { file: PathBuf, reason: String },
}

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FontMissing { path, source } => write!(
                f,
                "reading the chart font {}: {source} (install the Debian package {FONT_PACKAGE})",
                path.display()
            ),
            Self::FontInvalid { path } => write!(
                f,
                "the chart font {} is not a usable TrueType font (reinstall the Debian package \
                 {FONT_PACKAGE})",
                path.display()
            ),
            Self::CreateDir { dir, source } => {
                write!(
                    f,
                    "creating the chart directory {}: {source}",
                    dir.display()
                )
            }
            Self::Draw { file, reason } => write!(f, "drawing chart {}: {reason}", file.display()),
        }
    }
}

impl std::error::Error for ChartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::FontMissing { source, .. } | Self::CreateDir { source, .. } => Some(source),
            Self::FontInvalid { .. } | Self::Draw { .. } => None,
        }
    }
}

fn read_font(path: &Path) -> Result<Vec<u8>, ChartError> {
    fs::read(path).map_err(|source| ChartError::FontMissing {
        path: path.to_owned(),
        source,
    })
}

/// Registers [`FONT_PATH`] with plotters as the family "sans-serif", once per process.
fn register_font() -> Result<(), ChartError> {
    static REGISTERED: Mutex<bool> = Mutex::new(false);
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    if *registered {
        return Ok(());
    }
    let path = Path::new(FONT_PATH);
    // plotters keeps a 'static reference to the font; it is loaded once and lives as long as the
    // process.
    let bytes: &'static [u8] = Box::leak(read_font(path)?.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes).map_err(|_| {
        ChartError::FontInvalid {
            path: path.to_owned(),
        }
    })?;
    *registered = true;
    Ok(())
}

/// One metric family charted over the service-count sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Metric {
    Crr,
    RrP99,
    Stream,
    Udp,
}

impl Metric {
    const ALL: [Metric; 4] = [Self::Crr, Self::RrP99, Self::Stream, Self::Udp];

    /// File name prefix: `<stem>-<scenario>.png`.
    fn stem(self) -> &'static str {
        match self {
            Self::Crr => "crr",
            Self::RrP99 => "rr-p99",
            Self::Stream => "stream",
            Self::Udp => "udp",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Crr => "TCP connection rate (tcp-crr)",
            Self::RrP99 => "TCP request/response p99 latency (tcp-rr)",
            Self::Stream => "TCP stream throughput (tcp-stream)",
            Self::Udp => "UDP request/response rate (udp-rr)",
        }
    }

    fn y_desc(self) -> &'static str {
        match self {
            Self::Crr => "connections/s (higher is better)",
            Self::RrP99 => "p99 latency, µs (lower is better)",
            Self::Stream => "Gbit/s (higher is better)",
            Self::Udp => "transactions/s (higher is better)",
        }
    }

    fn value(self, m: &Measurement) -> Option<f64> {
        match self {
            Self::Crr => m.tcp_crr.map(|r| r.per_second),
            Self::RrP99 => m.tcp_rr.map(|r| r.latency.p99_us),
            Self::Stream => m.tcp_stream.map(|s| s.gbit_per_s),
            Self::Udp => m.udp_rr.map(|r| r.per_second),
        }
    }
}

fn color(dataplane: Dataplane) -> RGBColor {
    match dataplane {
        Dataplane::Strait => RGBColor(31, 119, 180),
        Dataplane::KubeProxyIptables => RGBColor(255, 127, 14),
        Dataplane::KubeProxyNftables => RGBColor(44, 160, 44),
        Dataplane::Direct => RGBColor(90, 90, 90),
    }
}

#[allow(clippy::cast_precision_loss)]
fn index_x(index: usize) -> f64 {
    index as f64
}

/// `12500` → `12.5k`, `3000000` → `3M`, `0.25` → `0.25`.
fn short_number(value: f64) -> String {
    let (scaled, suffix) = if value.abs() >= 1e6 {
        (value / 1e6, "M")
    } else if value.abs() >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let mut text = format!("{scaled:.2}");
    if text.contains('.') {
        text.truncate(text.trim_end_matches('0').trim_end_matches('.').len());
    }
    if text == "-0" {
        text.remove(0);
    }
    text + suffix
}

/// A y axis: its range, the values at which it is labelled and gridded, and whether values are
/// plotted as their base-10 logarithm.
struct YAxis {
    range: Range<f64>,
    ticks: Vec<f64>,
    minor: Vec<f64>,
    log: bool,
}

impl YAxis {
    /// A linear axis from 0 to a little above `max`, with ticks at 1, 2, 2.5 or 5 × 10ⁿ steps.
    #[allow(clippy::cast_sign_loss)] // `steps` is at least 1
    fn linear(max: f64) -> Self {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let raw = max * 1.1 / 5.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        let steps = (max * 1.1 / step).ceil().max(1.0);
        let top = steps * step;
        let ticks: Vec<f64> = (0..=steps as usize).map(|i| index_x(i) * step).collect();
        let minor = (0..steps as usize)
            .map(|i| (index_x(i) + 0.5) * step)
            .collect();
        Self {
            range: 0.0..top,
            ticks,
            minor,
            log: false,
        }
    }

    /// A logarithmic axis spanning whole decades around `min..=max` (both positive).
    #[allow(clippy::cast_sign_loss)] // `hi > lo`
    fn log(min: f64, max: f64) -> Self {
        let lo = min.log10().floor();
        let mut hi = max.log10().ceil();
        if hi <= lo {
            hi = lo + 1.0;
        }
        let decades = (hi - lo) as usize;
        let ticks: Vec<f64> = (0..=decades).map(|d| lo + index_x(d)).collect();
        let minor = (0..decades)
            .flat_map(|d| (2..10).map(move |k| lo + index_x(d) + index_x(k).log10()))
            .collect();
        Self {
            range: (lo - 0.05)..(hi + 0.05),
            ticks,
            minor,
            log: true,
        }
    }

    /// Where `value` goes on this axis (`None`: not plottable, e.g. ≤ 0 on a log axis).
    fn place(&self, value: f64) -> Option<f64> {
        if !value.is_finite() {
            None
        } else if self.log {
            (value > 0.0).then(|| value.log10())
        } else {
            Some(value)
        }
    }

    fn label(&self, y: f64) -> String {
        if self.log {
            short_number(10f64.powf(y))
        } else {
            short_number(y)
        }
    }
}

/// A linear f64 axis labelled and gridded exactly at the given values (bold: labels and major grid
/// lines; light: minor grid lines); plotters' own f64 axis picks its own values.
struct Ticked {
    range: Range<f64>,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span <= 0.0 {
            return limit.0;
        }
        let fraction = (value - self.range.start) / span;
        limit.0 + (f64::from(limit.1 - limit.0) * fraction).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// Everything one chart shows.
struct Chart<'a> {
    file: PathBuf,
    title: String,
    y_desc: &'a str,
    /// The service counts, one categorical x position each.
    counts: Vec<usize>,
    /// One line per dataplane: (index into `counts`, value).
    lines: Vec<(Dataplane, Vec<(usize, f64)>)>,
    /// `direct`'s value, drawn as a dashed horizontal line.
    reference: Option<f64>,
    y: YAxis,
}

fn draw_failed<E: fmt::Display>(file: &Path) -> impl FnOnce(E) -> ChartError + '_ {
    move |error| ChartError::Draw {
        file: file.to_owned(),
        reason: error.to_string(),
    }
}

impl Chart<'_> {
    fn draw(&self) -> Result<(), ChartError> {
        let file = self.file.as_path();
        let root = BitMapBackend::new(file, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_failed(file))?;
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);

        let last = index_x(self.counts.len().saturating_sub(1));
        let x_spec = Ticked {
            range: -0.4..last + 0.4,
            bold: (0..self.counts.len()).map(index_x).collect(),
            light: Vec::new(),
        };
        let y_spec = Ticked {
            range: self.y.range.clone(),
            bold: self.y.ticks.clone(),
            light: self.y.minor.clone(),
        };
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, (FONT, 20))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(72)
            .build_cartesian_2d(x_spec, y_spec)
            .map_err(draw_failed(file))?;

        let x_label = |x: &f64| {
            (0..self.counts.len())
                .find(|&i| (index_x(i) - x).abs() < 1e-6)
                .map(|i| services_label(self.counts[i]))
                .unwrap_or_default()
        };
        let y_label = |y: &f64| self.y.label(*y);
        chart
            .configure_mesh()
            .x_desc("number of services")
            .y_desc(self.y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(205, 205, 205))
            .draw()
            .map_err(draw_failed(file))?;

        if let Some(y) = self.reference.and_then(|v| self.y.place(v)) {
            chart
                .draw_series(DashedLineSeries::new(
                    [(-0.4, y), (last + 0.4, y)],
                    10,
                    6,
                    color(Dataplane::Direct).stroke_width(2),
                ))
                .map_err(draw_failed(file))?;
        }
        for (dataplane, points) in &self.lines {
            let points: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|&(i, v)| self.y.place(v).map(|y| (index_x(i), y)))
                .collect();
            chart
                .draw_series(
                    LineSeries::new(points, color(*dataplane).stroke_width(3)).point_size(5),
                )
                .map_err(draw_failed(file))?;
        }

        self.draw_legend(&legend)?;
        root.present().map_err(draw_failed(file))
    }

    /// The legend, in its own column right of the plot so it never covers a line.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
    ) -> Result<(), ChartError> {
        let file = self.file.as_path();
        let mut entries: Vec<(String, Dataplane)> = self
            .lines
            .iter()
            .filter(|(_, points)| !points.is_empty())
            .map(|(dp, _)| (dp.name().to_owned(), *dp))
            .collect();
        if self.reference.is_some() {
            entries.push(("direct (reference)".to_owned(), Dataplane::Direct));
        }
        let text = (FONT, 14)
            .into_font()
            .into_text_style(area)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new("dataplane", (8, 56), (FONT, 15).into_font()))
            .map_err(draw_failed(file))?;
        for (i, (name, dataplane)) in entries.iter().enumerate() {
            let y = 88 + 26 * i32::try_from(i).unwrap_or(0);
            let style = color(*dataplane).stroke_width(3);
            if *dataplane == Dataplane::Direct {
                for x in [8, 22] {
                    area.draw(&PathElement::new([(x, y), (x + 10, y)], style))
                        .map_err(draw_failed(file))?;
                }
            } else {
                area.draw(&PathElement::new([(8, y), (36, y)], style))
                    .map_err(draw_failed(file))?;
                area.draw(&Circle::new((22, y), 4, color(*dataplane).filled()))
                    .map_err(draw_failed(file))?;
            }
            area.draw(&Text::new(name.as_str(), (44, y), text.clone()))
                .map_err(draw_failed(file))?;
        }
        Ok(())
    }
}

/// The dataplanes drawn as lines (`direct` is the reference line).
const LINES: [Dataplane; 3] = [
    Dataplane::Strait,
    Dataplane::KubeProxyIptables,
    Dataplane::KubeProxyNftables,
];

fn sweep_chart<'a>(
    report: &RunReport,
    dir: &Path,
    scenario: Scenario,
    metric: Metric,
) -> Option<Chart<'a>> {
    let counts = service_counts(report, scenario);
    // A run that measured `direct` beside every service count draws it as a line of its own (it shows the
    // machine's state at each point); one that measured it once draws it as a reference level.
    let direct_per_count = report
        .cells
        .iter()
        .filter(|c| c.dataplane == Dataplane::Direct && c.scenario == scenario)
        .count()
        > 1;
    let with_direct = [LINES.as_slice(), &[Dataplane::Direct]].concat();
    let dataplanes = if direct_per_count {
        with_direct.as_slice()
    } else {
        LINES.as_slice()
    };
    let lines: Vec<(Dataplane, Vec<(usize, f64)>)> = dataplanes
        .iter()
        .map(|&dp| {
            let points = counts
                .iter()
                .enumerate()
                .filter_map(|(i, &n)| {
                    let cell = report.cell(dp, scenario, n)?;
                    metric.value(&cell.measurement).map(|v| (i, v))
                })
                .filter(|(_, v)| v.is_finite())
                .collect();
            (dp, points)
        })
        .collect();
    if lines.iter().all(|(_, points)| points.is_empty()) {
        return None;
    }
    let reference = report
        .cell(Dataplane::Direct, scenario, 0)
        .filter(|_| !direct_per_count)
        .and_then(|c| metric.value(&c.measurement))
        .filter(|v| v.is_finite());
    let max = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, v)| *v))
        .chain(reference)
        .fold(0.0, f64::max);
    Some(Chart {
        file: dir.join(format!("{}-{}.png", metric.stem(), scenario.name())),
        title: format!("{}, {}", metric.title(), scenario.name()),
        y_desc: metric.y_desc(),
        counts,
        lines,
        reference,
        y: YAxis::linear(max),
    })
}

fn programming_chart<'a>(report: &RunReport, dir: &Path) -> Option<Chart<'a>> {
    let entries: Vec<_> = programming_entries(report)
        .into_iter()
        .filter(|(dp, _, p)| *dp != Dataplane::Direct && p.wall_ms.is_finite() && p.wall_ms > 0.0)
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut counts: Vec<usize> = entries.iter().map(|(_, n, _)| *n).collect();
    counts.sort_unstable();
    counts.dedup();
    let lines = LINES
        .iter()
        .map(|&dp| {
            let points = entries
                .iter()
                .filter(|(d, _, _)| *d == dp)
                .filter_map(|(_, n, p)| counts.iter().position(|c| c == n).map(|i| (i, p.wall_ms)))
                .collect();
            (dp, points)
        })
        .collect();
    let values = entries.iter().map(|(_, _, p)| p.wall_ms);
    let min = values.clone().fold(f64::INFINITY, f64::min);
    let max = values.fold(0.0, f64::max);
    Some(Chart {
        file: dir.join("programming.png"),
        title: "Time to program the services".to_owned(),
        y_desc: "wall time, ms (log scale; lower is better)",
        counts,
        lines,
        reference: None,
        y: YAxis::log(min, max),
    })
}

/// Writes the charts of `report` into `dir` (created if missing): for each scenario
/// `crr-<scenario>.png`, `rr-p99-<scenario>.png`, `stream-<scenario>.png` and `udp-<scenario>.png`,
/// then `programming.png`; a chart without data is skipped. Returns `(title, path)` of each chart
/// written, in that order.
pub fn write_charts(report: &RunReport, dir: &Path) -> Result<Vec<(String, PathBuf)>, ChartError> {
    let mut charts = Vec::new();
    for scenario in Scenario::ALL {
        for metric in Metric::ALL {
            charts.extend(sweep_chart(report, dir, scenario, metric));
        }
    }
    charts.extend(programming_chart(report, dir));
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    register_font()?;
    fs::create_dir_all(dir).map_err(|source| ChartError::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for chart in charts {
        chart.draw()?;
        written.push((chart.title, chart.file));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::report::tests::sample_report;

    /// The width and height in a PNG's IHDR chunk, after checking the signature.
    fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert!(
            bytes.len() > 24,
            "too short for a PNG: {} bytes",
            bytes.len()
        );
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "no PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR", "first chunk is not IHDR");
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (word(16), word(20))
    }

    #[test]
    fn writes_every_chart_with_data_as_900_by_500_png() {
        let report = sample_report();
        let dir = tempfile::TempDir::new().unwrap();
        let out = dir.path().join("charts");
        let written = write_charts(&report, &out).unwrap();
        let mut expected = Vec::new();
        for scenario in ["pod-to-clusterip", "external-to-nodeport"] {
            for stem in ["crr", "rr-p99", "stream", "udp"] {
                expected.push(format!("{stem}-{scenario}.png"));
            }
        }
        expected.push("programming.png".to_owned());
        let names: Vec<String> = written
            .iter()
            .map(|(_, path)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, expected);
        for (title, path) in &written {
            assert!(!title.is_empty());
            let bytes = fs::read(path).unwrap();
            assert_eq!(png_size(&bytes), (WIDTH, HEIGHT), "{}", path.display());
        }
        // pod-to-pod has no cells: no charts for it.
        assert!(!out.join("crr-pod-to-pod.png").exists());
        if let Ok(keep) = std::env::var("NETBENCH_KEEP_CHARTS") {
            for (_, path) in &written {
                fs::copy(path, Path::new(&keep).join(path.file_name().unwrap())).unwrap();
            }
        }
    }

    #[test]
    fn empty_report_writes_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let written = write_charts(&RunReport::default(), dir.path()).unwrap();
        assert!(written.is_empty());
    }

    #[test]
    fn missing_font_error_names_the_package() {
        let error = read_font(Path::new("/nonexistent/DejaVuSans.ttf")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(FONT_PACKAGE), "{message}");
        assert!(message.contains("/nonexistent/DejaVuSans.ttf"), "{message}");
    }

    #[test]
    fn axes_and_labels() {
        assert_eq!(short_number(12_500.0), "12.5k");
        assert_eq!(short_number(3_000_000.0), "3M");
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(40.0), "40");
        let y = YAxis::linear(2000.0);
        assert!(y.range.end >= 2000.0 && y.ticks[0] == 0.0, "{:?}", y.ticks);
        let y = YAxis::log(1.0, 3000.0);
        assert_eq!(y.ticks, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(y.label(3.0), "1k");
        assert_eq!(y.place(0.0), None);
    }
}
