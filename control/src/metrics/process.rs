//! The agent's own process metrics under the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from `/proc/self`.

use std::fmt::Write as _;

use super::family;

/// One reading of the process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
    pub threads: u64,
}

/// Reads `/proc/self`; `None` when it cannot be read (not Linux, or /proc missing).
pub fn read() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    parse(
        &stat,
        &boot,
        &limits,
        open_fds,
        u64::try_from(ticks).ok()?,
        u64::try_from(page).ok()?,
    )
}

/// The sample from the texts of `/proc/self/stat`, `/proc/stat` and `/proc/self/limits`.
#[allow(clippy::cast_precision_loss)]
fn parse(
    stat: &str,
    boot: &str,
    limits: &str,
    open_fds: u64,
    ticks_per_second: u64,
    page_size: u64,
) -> Option<ProcessSample> {
    // The command name may hold spaces and parentheses: fields count from after its last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime) = (field(14)?, field(15)?);
    let (threads, start_ticks, vsize, rss_pages) = (field(20)?, field(22)?, field(23)?, field(24)?);
    let boot_time = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let max_fds = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse::<u64>().ok());
    let tps = ticks_per_second.max(1) as f64;
    Some(ProcessSample {
        cpu_seconds: (utime + stime) as f64 / tps,
        resident_bytes: rss_pages * page_size,
        virtual_bytes: vsize,
        open_fds,
        max_fds,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / tps,
        threads,
    })
}

/// Appends the process families (no `node` label, as client libraries write them).
pub fn render(out: &mut String, sample: &ProcessSample) {
    family(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    );
    let _ = writeln!(out, "process_cpu_seconds_total {}", sample.cpu_seconds);
    let mut gauge = |name: &str, help: &str, value: String| {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        sample.resident_bytes.to_string(),
    );
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        sample.virtual_bytes.to_string(),
    );
    gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        sample.open_fds.to_string(),
    );
    if let Some(max) = sample.max_fds {
        gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max.to_string(),
        );
    }
    gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        sample.start_time_seconds.to_string(),
    );
    gauge(
        "process_threads",
        "Number of OS threads in the process.",
        sample.threads.to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (strait d) S 1 4242 4242 0 -1 4194560 9000 0 12 0 250 130 0 0 20 0 \
                        7 0 500 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1";

    #[test]
    fn fields_are_read_past_a_command_name_with_spaces() {
        let sample = parse(
            STAT,
            "cpu 1 2 3\nbtime 1700000000\nprocesses 9\n",
            "Limit Soft Limit Hard Limit Units\nMax open files 1024 4096 files\n",
            11,
            100,
            4096,
        )
        .unwrap();
        assert_eq!(
            sample,
            ProcessSample {
                cpu_seconds: 3.8,
                resident_bytes: 2048 * 4096,
                virtual_bytes: 123_456_789,
                open_fds: 11,
                max_fds: Some(1024),
                start_time_seconds: 1_700_000_005.0,
                threads: 7,
            }
        );
        let mut out = String::new();
        render(&mut out, &sample);
        assert!(
            out.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3.8\n"
            )
        );
        assert!(out.contains("process_max_fds 1024\n"));
        assert!(parse("garbage", "", "", 0, 100, 4096).is_none());
    }

    #[test]
    fn this_process_can_be_read() {
        let sample = read().expect("/proc/self");
        assert!(sample.resident_bytes > 0 && sample.open_fds > 0 && sample.threads >= 1);
        assert!(sample.start_time_seconds > 1_600_000_000.0, "{sample:?}");
    }
}
