//! Trailing event-time windows, (now - window, now], as the features keep them.
//!
//! Every float operation is the one `tests/oracle/windows.py` does, in its order, so the values are bit-equal:
//! sums add and subtract point by point, comparisons are IEEE ones (a NaN compares false, as in Python).

use std::collections::VecDeque;

use crate::state::{Reader, Writer};

/// Sums of fixed-width value rows over one trailing window; points must come in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Sums {
    window_ns: i64,
    width: usize,
    times: VecDeque<i64>,
    values: VecDeque<f64>, // `width` per point
    pub sums: Vec<f64>,
}

impl Sums {
    pub fn new(window_ns: i64, width: usize) -> Sums {
        Sums { window_ns, width, times: VecDeque::new(), values: VecDeque::new(), sums: vec![0.0; width] }
    }

    pub fn add(&mut self, ts_ns: i64, row: &[f64]) {
        self.times.push_back(ts_ns);
        for (sum, value) in self.sums.iter_mut().zip(row) {
            self.values.push_back(*value);
            *sum += value;
        }
    }

    pub fn window_ns(&self) -> i64 {
        self.window_ns
    }

    /// Drop the points at or before now - window.
    pub fn expire(&mut self, now_ns: i64) {
        let horizon = now_ns.saturating_sub(self.window_ns);
        while self.times.front().is_some_and(|&t| t <= horizon) {
            self.times.pop_front();
            for sum in self.sums.iter_mut() {
                *sum -= self.values.pop_front().expect("a row per time");
            }
        }
        if self.times.is_empty() {
            self.sums.fill(0.0); // subtraction leaves rounding dust; an empty window sums to exactly zero
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn save(&self, out: &mut Writer) {
        out.i64s(self.times.iter().copied());
        out.f64s(self.values.iter().copied());
        out.f64s(self.sums.iter().copied());
    }

    pub fn load(&mut self, input: &mut Reader) -> Option<()> {
        self.times = input.i64s()?.into();
        self.values = input.f64s()?.into();
        self.sums = input.f64s()?;
        let fits = self.values.len() == self.times.len() * self.width && self.sums.len() == self.width;
        fits.then_some(())
    }
}

/// The largest value over a trailing window (a monotonic deque).
#[derive(Clone, Debug, PartialEq)]
pub struct Max {
    window_ns: i64,
    points: VecDeque<(i64, f64)>,
}

impl Max {
    pub fn new(window_ns: i64) -> Max {
        Max { window_ns, points: VecDeque::new() }
    }

    pub fn add(&mut self, ts_ns: i64, value: f64) {
        while self.points.back().is_some_and(|&(_, v)| v <= value) {
            self.points.pop_back();
        }
        self.points.push_back((ts_ns, value));
    }

    pub fn expire(&mut self, now_ns: i64) {
        expire_front(&mut self.points, now_ns.saturating_sub(self.window_ns), 0);
    }

    /// The maximum of the points in the window; NaN when it is empty.
    pub fn value(&self) -> f64 {
        self.points.front().map_or(f64::NAN, |&(_, v)| v)
    }
}

/// The median over a trailing window; meant for sparse events (liquidations), O(n) per point.
#[derive(Clone, Debug, PartialEq)]
pub struct Median {
    window_ns: i64,
    points: VecDeque<(i64, f64)>,
    ordered: Vec<f64>,
}

impl Median {
    pub fn new(window_ns: i64) -> Median {
        Median { window_ns, points: VecDeque::new(), ordered: Vec::new() }
    }

    pub fn add(&mut self, ts_ns: i64, value: f64) {
        self.points.push_back((ts_ns, value));
        let at = bisect(&self.ordered, |x| value < x);
        self.ordered.insert(at, value);
    }

    /// Drop the points at or before now - window; Err when the ordered list lost one (NaNs, as Python's would).
    pub fn expire(&mut self, now_ns: i64) -> Result<(), ()> {
        let horizon = now_ns.saturating_sub(self.window_ns);
        while self.points.front().is_some_and(|&(t, _)| t <= horizon) {
            let (_, value) = self.points.pop_front().expect("checked");
            let at = bisect(&self.ordered, |x| !(x < value)); // bisect_left, NaN and all
            if at == self.ordered.len() {
                return Err(());
            }
            self.ordered.remove(at);
        }
        Ok(())
    }

    /// The median of the points in the window; NaN when it is empty.
    pub fn value(&self) -> f64 {
        let (n, mid) = (self.ordered.len(), self.ordered.len() / 2);
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => self.ordered[mid],
            _ => (self.ordered[mid - 1] + self.ordered[mid]) / 2.0,
        }
    }

    pub fn save(&self, out: &mut Writer) {
        save_points(out, &self.points);
        out.f64s(self.ordered.iter().copied());
    }

    pub fn load(&mut self, input: &mut Reader) -> Option<()> {
        self.points = load_points(input)?;
        self.ordered = input.f64s()?;
        Some(())
    }
}

/// The last value at or before now - window (for changes over a window, e.g. open interest).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueAt {
    window_ns: i64,
    points: VecDeque<(i64, f64)>,
}

impl ValueAt {
    pub fn new(window_ns: i64) -> ValueAt {
        ValueAt { window_ns, points: VecDeque::new() }
    }

    pub fn add(&mut self, ts_ns: i64, value: f64) {
        self.points.push_back((ts_ns, value));
    }

    pub fn expire(&mut self, now_ns: i64) {
        // the second point is old enough to be the answer: the first is not needed
        expire_front(&mut self.points, now_ns.saturating_sub(self.window_ns), 1);
    }

    /// The value as it stood at now - window; NaN when nothing that old is known.
    pub fn value(&self, now_ns: i64) -> f64 {
        match self.points.front() {
            Some(&(t, v)) if t <= now_ns.saturating_sub(self.window_ns) => v,
            _ => f64::NAN,
        }
    }
}

/// Pop front points while the one `skip` places behind the front is at or before `horizon`.
fn expire_front(points: &mut VecDeque<(i64, f64)>, horizon: i64, skip: usize) {
    while points.get(skip).is_some_and(|&(t, _)| t <= horizon) {
        points.pop_front();
    }
}

/// Python's bisect loop: the first index whose element makes `goes_left` true, probing as `bisect` does.
fn bisect(sorted: &[f64], goes_left: impl Fn(f64) -> bool) -> usize {
    let (mut lo, mut hi) = (0, sorted.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if goes_left(sorted[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

pub fn save_points(out: &mut Writer, points: &VecDeque<(i64, f64)>) {
    out.i64s(points.iter().map(|p| p.0));
    out.f64s(points.iter().map(|p| p.1));
}

pub fn load_points(input: &mut Reader) -> Option<VecDeque<(i64, f64)>> {
    let (times, values) = (input.i64s()?, input.f64s()?);
    (times.len() == values.len()).then(|| times.into_iter().zip(values).collect())
}

impl Max {
    pub fn save(&self, out: &mut Writer) {
        save_points(out, &self.points);
    }

    pub fn load(&mut self, input: &mut Reader) -> Option<()> {
        self.points = load_points(input)?;
        Some(())
    }
}

impl ValueAt {
    pub fn save(&self, out: &mut Writer) {
        save_points(out, &self.points);
    }

    pub fn load(&mut self, input: &mut Reader) -> Option<()> {
        self.points = load_points(input)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no crates): SYNTHETIC gaps and values.
    fn steps(seed: u64, n: usize) -> Vec<(i64, f64)> {
        let mut x = seed;
        let mut now = 0i64;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                now += ((x >> 33) % 7) as i64;
                (now, ((x >> 40) % 2001) as f64 - 1000.0)
            })
            .collect()
    }

    #[test]
    fn sums_are_those_of_the_points_in_the_window() {
        for (seed, window) in [(1, 1), (2, 5), (3, 40), (4, 400)] {
            let mut sums = Sums::new(window, 2);
            let mut points = Vec::new();
            for (now, value) in steps(seed, 3000) {
                sums.add(now, &[value, 1.0]);
                points.push((now, value));
                sums.expire(now);
                let inside: Vec<f64> = points.iter().filter(|p| p.0 > now - window).map(|p| p.1).collect();
                assert_eq!(sums.sums, vec![inside.iter().sum::<f64>(), inside.len() as f64]);
                assert_eq!(sums.len(), inside.len());
            }
        }
    }

    #[test]
    fn an_emptied_window_sums_to_exactly_zero() {
        let mut sums = Sums::new(10, 1);
        sums.add(0, &[0.1]);
        sums.add(1, &[0.2]);
        sums.expire(5);
        sums.expire(20);
        assert_eq!(sums.sums, vec![0.0]);
        assert_eq!(sums.len(), 0);
    }

    #[test]
    fn max_median_and_value_at_equal_a_recount() {
        let (mut max, mut median, mut then) = (Max::new(30), Median::new(30), ValueAt::new(30));
        let mut points = Vec::new();
        for (now, value) in steps(7, 2000) {
            max.add(now, value);
            median.add(now, value);
            then.add(now, value);
            points.push((now, value));
            max.expire(now);
            median.expire(now).unwrap();
            then.expire(now);
            let mut inside: Vec<f64> = points.iter().filter(|p| p.0 > now - 30).map(|p| p.1).collect();
            inside.sort_by(f64::total_cmp);
            let n = inside.len();
            let expected = if n % 2 == 1 { inside[n / 2] } else { (inside[n / 2 - 1] + inside[n / 2]) / 2.0 };
            assert_eq!(max.value(), *inside.last().unwrap());
            assert_eq!(median.value(), expected);
            let old = points.iter().filter(|p| p.0 <= now - 30).last().map_or(f64::NAN, |p| p.1);
            assert!(then.value(now) == old || (old.is_nan() && then.value(now).is_nan()));
        }
    }

    #[test]
    fn empty_windows_read_nan() {
        assert!(Max::new(5).value().is_nan() && Median::new(5).value().is_nan() && ValueAt::new(5).value(0).is_nan());
    }

    #[test]
    fn saved_windows_load_equal() {
        let (mut sums, mut median) = (Sums::new(50, 2), Median::new(50));
        for (now, value) in steps(3, 500) {
            sums.add(now, &[value, 1.0]);
            sums.expire(now);
            median.add(now, value);
            median.expire(now).unwrap();
        }
        let mut out = Writer::default();
        sums.save(&mut out);
        median.save(&mut out);
        let bytes = out.into_bytes();
        let mut input = Reader::new(&bytes);
        let (mut sums_back, mut median_back) = (Sums::new(50, 2), Median::new(50));
        sums_back.load(&mut input).unwrap();
        median_back.load(&mut input).unwrap();
        assert_eq!((sums_back, median_back), (sums, median));
    }
}
