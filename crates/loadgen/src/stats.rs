//! Latency samples and their percentiles.

use serde_json::{json, Value};

/// Latency samples in microseconds. Pushing is amortized O(1); percentiles sort once.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    values: Vec<u32>,
    sorted: bool,
}

impl Samples {
    /// An empty set with room for `n` samples (so the hot path does not reallocate).
    pub fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
            sorted: true,
        }
    }

    /// Adds one sample; durations beyond `u32::MAX` µs (71 minutes) saturate.
    pub fn push_micros(&mut self, micros: u64) {
        self.values.push(u32::try_from(micros).unwrap_or(u32::MAX));
        self.sorted = false;
    }

    /// Moves all samples of `other` into this set.
    pub fn merge(&mut self, other: Samples) {
        if self.values.is_empty() {
            *self = other;
        } else {
            self.values.extend_from_slice(&other.values);
            self.sorted = false;
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The `p`-th percentile (0 < p ≤ 100) by the nearest-rank method: the smallest sample such
    /// that at least `p` percent of the samples are less than or equal to it. `None` when empty.
    pub fn percentile(&mut self, p: f64) -> Option<u32> {
        if self.values.is_empty() {
            return None;
        }
        if !self.sorted {
            self.values.sort_unstable();
            self.sorted = true;
        }
        let n = self.values.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        let index = rank.clamp(1, n) - 1;
        self.values.get(index).copied()
    }

    /// `{"p50":…, "p99":…, "max":…}` in milliseconds with microsecond precision (nulls when
    /// there are no samples).
    pub fn summary_ms(&mut self) -> Value {
        let ms = |v: Option<u32>| v.map(|us| f64::from(us) / 1000.0);
        let p50 = ms(self.percentile(50.0));
        let p99 = ms(self.percentile(99.0));
        let max = ms(self.percentile(100.0));
        json!({ "p50": p50, "p99": p99, "max": max })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn samples(values: &[u64]) -> Samples {
        let mut s = Samples::default();
        for v in values {
            s.push_micros(*v);
        }
        s
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_hundred() {
        let mut s = samples(&(1..=100).rev().collect::<Vec<_>>());
        assert_eq!(s.percentile(50.0), Some(50));
        assert_eq!(s.percentile(99.0), Some(99));
        assert_eq!(s.percentile(100.0), Some(100));
        assert_eq!(s.percentile(0.5), Some(1));
    }

    #[test]
    fn small_sets_round_the_rank_up() {
        // Nearest rank: p99 of 3 samples is the 3rd, p50 of 4 samples the 2nd.
        assert_eq!(samples(&[5, 1, 9]).percentile(99.0), Some(9));
        assert_eq!(samples(&[4, 3, 2, 1]).percentile(50.0), Some(2));
        assert_eq!(samples(&[7]).percentile(50.0), Some(7));
        assert_eq!(Samples::default().percentile(50.0), None);
    }

    #[test]
    fn merged_sets_are_sorted_again() {
        let mut a = samples(&[10, 20]);
        a.percentile(50.0);
        a.merge(samples(&[1, 2, 3]));
        assert_eq!(a.len(), 5);
        assert_eq!(a.percentile(50.0), Some(3));
        assert_eq!(a.percentile(100.0), Some(20));
    }

    #[test]
    fn summary_is_in_milliseconds_and_null_when_empty() {
        let mut s = samples(&[1500, 250, 4000]);
        assert_eq!(s.summary_ms(), json!({"p50": 1.5, "p99": 4.0, "max": 4.0}));
        assert_eq!(
            Samples::default().summary_ms(),
            json!({"p50": null, "p99": null, "max": null})
        );
    }

    #[test]
    fn huge_durations_saturate() {
        let mut s = samples(&[u64::MAX]);
        assert_eq!(s.percentile(100.0), Some(u32::MAX));
    }
}
