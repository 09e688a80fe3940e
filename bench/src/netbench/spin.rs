//! The condition of the CPUs while a test runs, and how a run chooses it.
//!
//! On a VM an idle virtual CPU halts, and waking it takes tens of microseconds or more; when a 1-byte
//! ping-pong crosses CPUs and each side's vCPU halts while it waits, every dataplane's round trip is
//! mostly the hypervisor's wake-up (the first full run saw TCP RR p50 ≈ 130 µs everywhere). One
//! SCHED_IDLE spinner per CPU keeps the vCPUs from halting. But spinners have costs of their own
//! (measured in ARCHITECTURE.md, netbench): a thread created on one CPU and placed on a CPU whose only
//! task is a spinner first runs at that CPU's next scheduler tick (up to 4 ms at HZ=250), which is the
//! benchmark server's thread per connection in tcp-crr; ksoftirqd waits far longer for its CPU; and a
//! CPU with a spinner counts as idle, so the scheduler moves a ping-pong's wakee to it instead of
//! keeping both ends on one CPU. Whether spinners help round trips therefore depends on the host at
//! the time, so [`SpinPolicy::Auto`] measures it at the start of the run ([`Calibration`]) and uses
//! spinners for tcp-rr and udp-rr only when they clearly shorten the direct path's round trip; tcp-crr
//! and tcp-stream always run on idle CPUs. The report says which condition each test ran in.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use serde::{Deserialize, Serialize};

use super::results::Test;

/// What keeps the CPUs awake during a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// One SCHED_IDLE spinner per CPU: no vCPU halts between packets.
    Spinners,
    /// Nothing: an idle vCPU halts until the next interrupt.
    Idle,
}

impl Condition {
    /// How reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spinners => "spinners",
            Self::Idle => "idle CPUs",
        }
    }
}

/// Spinners are chosen for the round-trip tests only when they bring the probe's p50 below this
/// fraction of its p50 on idle CPUs.
pub const SPIN_GAIN: f64 = 0.8;

/// What the start of a run measured to choose the round-trip tests' condition: tcp-rr p50 of one
/// dataplane (direct when it is measured) in short alternating probes, with idle CPUs and with
/// spinners.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub dataplane: super::results::Dataplane,
    /// Median p50 of the probes with idle CPUs, µs.
    pub idle_p50_us: f64,
    /// Median p50 of the probes with spinners, µs.
    pub spinners_p50_us: f64,
}

impl Calibration {
    /// Spinners when they cut the round trip to [`SPIN_GAIN`] of idle CPUs' or less.
    pub fn round_trip_condition(&self) -> Condition {
        if self.spinners_p50_us <= SPIN_GAIN * self.idle_p50_us {
            Condition::Spinners
        } else {
            Condition::Idle
        }
    }
}

/// Which condition each test gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpinPolicy {
    /// Idle CPUs for tcp-crr and tcp-stream; for tcp-rr and udp-rr what the run's [`Calibration`]
    /// found (idle CPUs until it has run).
    #[default]
    Auto,
    /// Spinners for every test.
    Always,
    /// No spinners.
    Never,
}

impl SpinPolicy {
    /// The condition `test` runs in, given the run's calibration.
    pub fn condition(self, test: Test, calibration: Option<&Calibration>) -> Condition {
        match (self, test) {
            (Self::Always, _) => Condition::Spinners,
            (Self::Never, _) | (Self::Auto, Test::TcpCrr | Test::TcpStream) => Condition::Idle,
            (Self::Auto, Test::TcpRr | Test::UdpRr) => {
                calibration.map_or(Condition::Idle, Calibration::round_trip_condition)
            }
        }
    }

    /// Whether the run must calibrate before it measures `tests`.
    pub fn needs_calibration(self, tests: &[Test]) -> bool {
        self == Self::Auto && tests.iter().any(|t| matches!(t, Test::TcpRr | Test::UdpRr))
    }
}

/// Probes per condition in a calibration, alternating.
pub const CALIBRATION_PROBES: usize = 3;
/// Seconds of each calibration probe.
pub const CALIBRATION_SECONDS: f64 = 0.3;

/// Runs `probe` (a tcp-rr p50 in µs under the given condition) [`CALIBRATION_PROBES`] times per
/// condition, alternating idle CPUs and spinners, and returns the medians.
pub fn calibrate<E>(
    dataplane: super::results::Dataplane,
    mut probe: impl FnMut(Condition) -> Result<f64, E>,
) -> Result<Calibration, E> {
    let mut idle = Vec::new();
    let mut spinning = Vec::new();
    for _ in 0..CALIBRATION_PROBES {
        idle.push(probe(Condition::Idle)?);
        spinning.push(probe(Condition::Spinners)?);
    }
    let median = |values: &[f64]| super::stats::median(values).unwrap_or(f64::NAN);
    Ok(Calibration {
        dataplane,
        idle_p50_us: median(&idle),
        spinners_p50_us: median(&spinning),
    })
}

/// One busy thread per CPU at SCHED_IDLE priority (they run only when nothing else wants the CPU), so
/// no virtual CPU halts between packets; stopped when dropped.
pub struct Spinners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Spinners {
    /// Starts one spinner per CPU this process may use.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let threads = (0..cpus)
            .map(|cpu| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    // SAFETY: plain system calls on this thread with valid, initialised arguments.
                    unsafe {
                        let param = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param);
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(cpu, &mut set);
                        libc::sched_setaffinity(
                            0,
                            std::mem::size_of::<libc::cpu_set_t>(),
                            &raw const set,
                        );
                    }
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Spinners for `condition`, `None` for idle CPUs.
    pub fn for_condition(condition: Condition) -> Option<Self> {
        (condition == Condition::Spinners).then(Self::start)
    }
}

impl Drop for Spinners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::results::Dataplane;

    fn calibration(idle: f64, spinning: f64) -> Calibration {
        Calibration {
            dataplane: Dataplane::Direct,
            idle_p50_us: idle,
            spinners_p50_us: spinning,
        }
    }

    #[test]
    fn auto_spins_for_round_trips_only_when_the_calibration_says_it_helps() {
        let halting = calibration(130.0, 25.0);
        let awake = calibration(13.0, 16.5);
        let auto = |test, c| SpinPolicy::Auto.condition(test, c);
        assert_eq!(auto(Test::TcpRr, Some(&halting)), Condition::Spinners);
        assert_eq!(auto(Test::UdpRr, Some(&halting)), Condition::Spinners);
        assert_eq!(auto(Test::TcpRr, Some(&awake)), Condition::Idle);
        assert_eq!(auto(Test::UdpRr, None), Condition::Idle);
        // A small gain is not enough: spinners cost connection setup and ksoftirqd elsewhere.
        assert_eq!(
            calibration(20.0, 17.0).round_trip_condition(),
            Condition::Idle
        );
        assert_eq!(
            calibration(20.0, 16.0).round_trip_condition(),
            Condition::Spinners
        );
        for test in [Test::TcpCrr, Test::TcpStream] {
            assert_eq!(auto(test, Some(&halting)), Condition::Idle);
        }
        for test in Test::ALL {
            assert_eq!(
                SpinPolicy::Always.condition(test, None),
                Condition::Spinners
            );
            assert_eq!(
                SpinPolicy::Never.condition(test, Some(&halting)),
                Condition::Idle
            );
        }
        assert!(SpinPolicy::Auto.needs_calibration(&[Test::TcpCrr, Test::UdpRr]));
        assert!(!SpinPolicy::Auto.needs_calibration(&[Test::TcpCrr, Test::TcpStream]));
        assert!(!SpinPolicy::Never.needs_calibration(&Test::ALL));
    }

    #[test]
    fn calibration_alternates_the_conditions_and_takes_medians() {
        let mut seen = Vec::new();
        let mut idle_p50 = [15.0, 11.0, 13.0].into_iter();
        let mut spin_p50 = [40.0, 20.0, 30.0].into_iter();
        let result = calibrate(Dataplane::Strait, |condition| {
            seen.push(condition);
            Ok::<_, ()>(match condition {
                Condition::Idle => idle_p50.next().unwrap(),
                Condition::Spinners => spin_p50.next().unwrap(),
            })
        })
        .unwrap();
        assert_eq!(
            seen,
            [Condition::Idle, Condition::Spinners].repeat(CALIBRATION_PROBES)
        );
        assert_eq!(result, calibration_of(Dataplane::Strait, 13.0, 30.0));
        // A failing probe stops the calibration.
        let failed = calibrate(Dataplane::Direct, |_| Err::<f64, _>("no server"));
        assert_eq!(failed, Err("no server"));
    }

    fn calibration_of(dataplane: Dataplane, idle: f64, spinning: f64) -> Calibration {
        Calibration {
            dataplane,
            ..calibration(idle, spinning)
        }
    }

    /// Threads of this process whose policy (field 41 of their stat) is SCHED_IDLE.
    fn idle_policy_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
            .filter(|stat| {
                let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                after_comm.split_whitespace().nth(41 - 3) == Some("5")
            })
            .count()
    }

    #[test]
    fn spinners_run_at_idle_priority_and_stop_when_dropped() {
        let before = idle_policy_threads();
        let spinners = Spinners::start();
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while idle_policy_threads() < before + cpus && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(idle_policy_threads(), before + cpus);
        drop(spinners);
        // A joined thread's task can linger in /proc for a moment after the join returns (the join
        // wakes on the thread clearing its TID, before its task is released): wait for it to go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while idle_policy_threads() > before && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(idle_policy_threads(), before, "every spinner was joined");
    }
}
