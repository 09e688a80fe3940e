//! The arithmetic of rounds: medians, min–max spreads, and the interval of a ratio measured over paired
//! rounds, with the verdict "within noise" when that interval includes 1.
//!
//! Every test runs `rounds` times per dataplane, the dataplanes of a group alternating, so round `r` of
//! strait and round `r` of a baseline were measured back to back under the same machine conditions. A
//! ratio is therefore taken per round (strait's round `r` ÷ the baseline's round `r`) and reported as
//! the median of those per-round ratios, with a distribution-free confidence interval for that median:
//! the order statistics `[x(k), x(n+1-k)]` of the `n` per-round ratios, with the largest `k` whose
//! coverage `1 - 2·P(B ≤ k-1)`, `B ~ Binomial(n, ½)`, is still at least 95 %. Below 6 rounds no `k`
//! reaches 95 %, and the interval is the whole range of the per-round ratios (`k = 1`), whose coverage
//! `1 - 2^(1-n)` is reported with it: 93.75 % at 5 rounds, 75 % at 3, nothing at 1. It assumes only
//! that the rounds are independent, not that the noise is normal, which it is not on a shared VM.

use serde::{Deserialize, Serialize};

/// The coverage the ratio interval aims for.
pub const TARGET_COVERAGE: f64 = 0.95;

/// The smallest and largest value over the rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    /// The range of `values`, `None` when there are none or one is not finite.
    pub fn of(values: &[f64]) -> Option<Range> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Range { min, max })
    }

    /// The range relative to `center`, in percent: `(min/center - 1, max/center - 1) × 100`.
    pub fn relative_percent(self, center: f64) -> Option<(f64, f64)> {
        (center > 0.0 && center.is_finite()).then(|| {
            (
                (self.min / center - 1.0) * 100.0,
                (self.max / center - 1.0) * 100.0,
            )
        })
    }
}

/// The median of `values` (the mean of the two middle values for an even count); `None` when empty
/// or when a value is not finite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
    })
}

/// `P(B ≤ j)` for `B ~ Binomial(n, ½)`.
fn binomial_half_cdf(n: usize, j: usize) -> f64 {
    let mut term = 1.0_f64; // C(n, 0)
    let mut sum = 0.0_f64;
    for i in 0..=j.min(n) {
        if i > 0 {
            #[expect(clippy::cast_precision_loss, reason = "round counts are tiny")]
            {
                term = term * (n + 1 - i) as f64 / i as f64;
            }
        }
        sum += term;
    }
    #[expect(clippy::cast_possible_wrap, reason = "round counts are tiny")]
    let scale = 0.5_f64.powi(n as i32);
    sum * scale
}

/// A confidence interval for a median.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// The probability that the interval holds the true median (see the module documentation).
    pub coverage: f64,
}

impl Interval {
    /// Whether the interval includes 1: the two sides cannot be told apart at this coverage.
    pub fn includes_one(&self) -> bool {
        self.low <= 1.0 && 1.0 <= self.high
    }
}

/// The order statistics `k` (1-based, from each end) the interval for the median of `n` values uses,
/// and the coverage they give (module documentation); `None` below 2 values.
pub fn order_statistic(n: usize) -> Option<(usize, f64)> {
    if n < 2 {
        return None;
    }
    let coverage = |k: usize| 1.0 - 2.0 * binomial_half_cdf(n, k - 1);
    let mut k = 1;
    while k < n.div_ceil(2) && coverage(k + 1) >= TARGET_COVERAGE {
        k += 1;
    }
    Some((k, coverage(k)))
}

/// The order-statistic interval for the median of `values` (module documentation); `None` with fewer
/// than 2 values or a value that is not finite.
pub fn median_interval(values: &[f64]) -> Option<Interval> {
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let (k, coverage) = order_statistic(n)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Interval {
        low: sorted[k - 1],
        high: sorted[n - k],
        coverage,
    })
}

/// A ratio of strait to a baseline over paired rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatioEstimate {
    /// The median of the per-round ratios (or, without rounds, the ratio of the reported figures).
    pub ratio: f64,
    /// The interval of the median; `None` with fewer than 2 paired rounds.
    pub interval: Option<Interval>,
    /// Paired rounds the ratio was taken over (0: only the reported figures were known).
    pub rounds: usize,
}

impl RatioEstimate {
    /// `Some(true)` when the interval includes 1 (the difference is within the run's noise),
    /// `Some(false)` when it does not, `None` without an interval.
    pub fn within_noise(&self) -> Option<bool> {
        self.interval.map(|i| i.includes_one())
    }

    /// From paired rounds: `strait[r] ÷ baseline[r]` for every `r` where both are known and the
    /// baseline's figure is positive. `None` when no round pairs up, or the two sides have different
    /// round counts (they were not measured side by side).
    pub fn paired(strait: &[Option<f64>], baseline: &[Option<f64>]) -> Option<RatioEstimate> {
        if strait.len() != baseline.len() {
            return None;
        }
        let ratios: Vec<f64> = strait
            .iter()
            .zip(baseline)
            .filter_map(|(s, b)| ratio(*s, *b))
            .collect();
        Some(RatioEstimate {
            ratio: median(&ratios)?,
            interval: median_interval(&ratios),
            rounds: ratios.len(),
        })
    }

    /// From the reported figures alone (a run saved without its rounds): no interval.
    pub fn single(strait: Option<f64>, baseline: Option<f64>) -> Option<RatioEstimate> {
        ratio(strait, baseline).map(|ratio| RatioEstimate {
            ratio,
            interval: None,
            rounds: 0,
        })
    }
}

/// `a / b`, or `None` if either is missing or `b` is not a positive, finite number.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && b.is_finite() && a.is_finite() => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
        let range = Range::of(&[2.0, 5.0, 4.0]).unwrap();
        assert_eq!(range, Range { min: 2.0, max: 5.0 });
        let (down, up) = range.relative_percent(4.0).unwrap();
        assert!(close(down, -50.0) && close(up, 25.0), "{down} {up}");
        assert_eq!(range.relative_percent(0.0), None);
        assert_eq!(Range::of(&[]), None);
    }

    #[test]
    fn binomial_tail() {
        assert!(close(binomial_half_cdf(5, 0), 1.0 / 32.0));
        assert!(close(binomial_half_cdf(5, 1), 6.0 / 32.0));
        assert!(close(binomial_half_cdf(5, 5), 1.0));
        assert!(close(binomial_half_cdf(10, 1), 11.0 / 1024.0));
    }

    #[test]
    fn small_samples_use_the_whole_range_and_say_how_sure_it_is() {
        let five = median_interval(&[1.3, 0.9, 1.1, 1.0, 1.2]).unwrap();
        assert_eq!((five.low, five.high), (0.9, 1.3));
        assert!(close(five.coverage, 1.0 - 2.0 / 32.0), "{five:?}");
        let three = median_interval(&[2.0, 1.0, 3.0]).unwrap();
        assert_eq!((three.low, three.high), (1.0, 3.0));
        assert!(close(three.coverage, 0.75), "{three:?}");
        assert_eq!(median_interval(&[1.0]), None);
        assert_eq!(median_interval(&[1.0, f64::INFINITY]), None);
    }

    #[test]
    fn larger_samples_drop_the_extremes_while_keeping_95_percent() {
        // n = 10: k = 2 covers 1 - 2·11/1024 = 97.9 %, k = 3 only 1 - 2·56/1024 = 89.1 %.
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let ten = median_interval(&values).unwrap();
        assert_eq!((ten.low, ten.high), (2.0, 9.0));
        assert!(close(ten.coverage, 1.0 - 22.0 / 1024.0), "{ten:?}");
        assert!(ten.coverage >= TARGET_COVERAGE);
        // n = 6: k = 1 covers 96.9 %, k = 2 only 78.1 %.
        let six = median_interval(&[6.0, 1.0, 5.0, 2.0, 4.0, 3.0]).unwrap();
        assert_eq!((six.low, six.high), (1.0, 6.0));
        assert_eq!(order_statistic(1), None);
        assert_eq!(order_statistic(5).map(|(k, _)| k), Some(1));
        assert_eq!(order_statistic(10).map(|(k, _)| k), Some(2));
    }

    #[test]
    fn paired_ratios_and_the_noise_verdict() {
        let some = |v: &[f64]| v.iter().copied().map(Some).collect::<Vec<_>>();
        // strait twice the baseline in every round, whatever the round's own level: clearly not noise.
        let clear = RatioEstimate::paired(
            &some(&[20.0, 10.0, 40.0, 22.0, 30.0]),
            &some(&[10.0, 5.0, 20.0, 11.0, 15.0]),
        )
        .unwrap();
        assert!(close(clear.ratio, 2.0));
        assert_eq!(clear.rounds, 5);
        assert_eq!(clear.within_noise(), Some(false));
        // Above 1 in some rounds and below in others: the interval holds 1.
        let noisy = RatioEstimate::paired(
            &some(&[10.5, 9.0, 10.0, 11.0, 10.2]),
            &some(&[10.0, 10.0, 10.0, 10.0, 10.0]),
        )
        .unwrap();
        assert!(close(noisy.ratio, 1.02), "{noisy:?}");
        let interval = noisy.interval.unwrap();
        assert!(
            close(interval.low, 0.9) && close(interval.high, 1.1),
            "{interval:?}"
        );
        assert_eq!(noisy.within_noise(), Some(true));
        // An interval ending exactly at 1 includes it.
        let edge = RatioEstimate::paired(&some(&[1.0, 2.0]), &some(&[1.0, 1.0])).unwrap();
        assert_eq!(edge.within_noise(), Some(true));
        // A round missing on one side is left out; unequal round counts do not pair.
        let gap =
            RatioEstimate::paired(&[Some(4.0), None, Some(6.0)], &some(&[2.0, 2.0, 2.0])).unwrap();
        assert_eq!(gap.rounds, 2);
        assert!(close(gap.ratio, 2.5));
        assert_eq!(
            RatioEstimate::paired(&some(&[1.0, 2.0]), &some(&[1.0])),
            None
        );
        // One round: a ratio but no verdict.
        let one = RatioEstimate::paired(&some(&[3.0]), &some(&[2.0])).unwrap();
        assert_eq!((one.interval, one.within_noise()), (None, None));
        let saved = RatioEstimate::single(Some(3.0), Some(0.0));
        assert_eq!(saved, None);
        assert_eq!(
            RatioEstimate::single(Some(3.0), Some(2.0)).map(|r| r.ratio),
            Some(1.5)
        );
    }
}
