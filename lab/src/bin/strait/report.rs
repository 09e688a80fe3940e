//! `strait report`: PNG charts and a Markdown summary of the Grafana dashboards' panels, from a
//! Prometheus over a time range, for those without Grafana.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use strait_lab::{
    cluster::Lab,
    report::{self, Prometheus, ReportOptions},
};

/// `strait report` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// Prometheus's address (http://HOST:PORT).
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    prometheus: String,
    /// Reach Prometheus from this lab's external namespace (where a lab's Prometheus runs).
    #[arg(long)]
    lab: Option<String>,
    /// The directory of dashboard JSON whose panels are drawn.
    #[arg(long, default_value = "deploy/grafana")]
    dashboards: PathBuf,
    /// How far back from now: seconds, or with a unit (30s, 15m, 2h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    since: Duration,
    /// Seconds between points [default: the range over 120, at least 1].
    #[arg(long)]
    step: Option<f64>,
    /// Where the PNG charts and README.md are written.
    #[arg(long, short = 'o', default_value = "strait-report")]
    out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, "s"), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: give a number of seconds, or 30s, 15m, 2h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    if seconds == 0 {
        return Err("the range must be longer than zero".into());
    }
    Ok(Duration::from_secs(seconds))
}

pub(crate) fn run_report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let netns = match &args.lab {
        Some(name) => {
            let lab = Lab::open(name)?;
            Some(strait_dataplane::netns::path(&lab.names.external_netns()))
        }
        None => None,
    };
    let options = ReportOptions {
        prometheus: Prometheus::new(&args.prometheus, netns)?,
        dashboards: report::dashboards_dir(&args.dashboards)?,
        since: args.since,
        step: args.step,
        out: args.out.clone(),
    };
    let written = report::run(&options).context("making the report")?;
    println!(
        "{} charts and {} values written to {} (summary: {})",
        written.charts,
        written.stats,
        args.out.display(),
        args.out.join("README.md").display()
    );
    if !written.empty.is_empty() {
        println!("no data in this range for: {}", written.empty.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_mins(15));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_hours(2));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
    }
}
