//! Interval arithmetic on open time, in seconds: lists of disjoint `[start, end)` intervals
//! in time order, and the instants `gap` apart that they can hold.

/// Intersect two sorted lists of disjoint intervals.
pub(super) fn intersect(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Remove `(p - gap, p + gap)` around each instant of `taken` (sorted) from `free`.
pub(super) fn carve(free: &[(i64, i64)], taken: &[i64], gap: i64) -> Vec<(i64, i64)> {
    if gap <= 0 && taken.is_empty() {
        return free.to_vec();
    }
    let mut out = Vec::with_capacity(free.len() + taken.len());
    for &(s, e) in free {
        let mut cur = s;
        // `taken` is sorted, so the instants that close part of `[s, e)` are one run: those
        // before it end their blocks by `s`, those after start them at `e` or later.
        let first = taken.partition_point(|&p| p + gap.max(1) <= s);
        for &p in &taken[first..] {
            let (bs, be) = (p - gap + 1, p + gap.max(1));
            if bs >= e {
                break;
            }
            if be <= cur {
                continue;
            }
            if bs > cur {
                out.push((cur, bs));
            }
            cur = cur.max(be);
        }
        if cur < e {
            out.push((cur, e));
        }
    }
    out
}

/// How many sends `gap` apart fit in the intervals.
pub(super) fn fit_count(free: &[(i64, i64)], gap: i64) -> u64 {
    if gap <= 0 {
        return free
            .iter()
            .map(|&(s, e)| u64::try_from(e - s).unwrap_or(0))
            .sum();
    }
    let mut count = 0u64;
    let mut next = i64::MIN;
    for &(s, e) in free {
        let mut t = s.max(next);
        if t < e {
            let n = (e - 1 - t) / gap + 1;
            count += u64::try_from(n).unwrap_or(0);
            t += n * gap;
            next = t;
        }
    }
    count
}

/// A largest set of instants `gap` apart in a list of intervals, packed to the earliest or
/// to the latest positions, kept as runs of evenly spaced instants (one run per interval),
/// so that it costs the number of intervals, not the number of instants.
pub(super) struct Packing {
    gap: i64,
    /// (first instant, how many, how many in the runs before), in time order.
    runs: Vec<(i64, u64, u64)>,
}

impl Packing {
    /// Each instant as early as it can be (`gap > 0`).
    pub(super) fn earliest(free: &[(i64, i64)], gap: i64) -> Self {
        let mut runs = Vec::with_capacity(free.len());
        let mut before = 0u64;
        let mut next = i64::MIN;
        for &(s, e) in free {
            let first = s.max(next);
            if first < e {
                let n = (e - 1 - first) / gap + 1;
                let count = u64::try_from(n).unwrap_or(0);
                runs.push((first, count, before));
                before += count;
                next = first + n * gap;
            }
        }
        Self { gap, runs }
    }

    /// Each instant as late as it can be (`gap > 0`).
    pub(super) fn latest(free: &[(i64, i64)], gap: i64) -> Self {
        let mut rev = Vec::with_capacity(free.len());
        let mut prev = i64::MAX;
        for &(s, e) in free.iter().rev() {
            let last = (e - 1).min(prev);
            if last >= s {
                let n = (last - s) / gap + 1;
                rev.push((last - (n - 1) * gap, u64::try_from(n).unwrap_or(0)));
                prev = last - n * gap;
            }
        }
        let mut before = 0u64;
        let runs = rev
            .into_iter()
            .rev()
            .map(|(first, count)| {
                let run = (first, count, before);
                before += count;
                run
            })
            .collect();
        Self { gap, runs }
    }

    /// The `i`-th instant.
    pub(super) fn point(&self, i: u64) -> Option<i64> {
        let r = self.runs.partition_point(|&(_, _, before)| before <= i);
        let &(first, count, before) = self.runs.get(r.checked_sub(1)?)?;
        let k = i - before;
        (k < count).then(|| first + i64::try_from(k).unwrap_or(i64::MAX) * self.gap)
    }

    /// The index of the first instant at or after `t`.
    pub(super) fn first_at_or_after(&self, t: i64) -> Option<u64> {
        let gap = self.gap;
        // The first run whose last instant is at or after `t`.
        let r = self.runs.partition_point(|&(first, count, _)| {
            first + i64::try_from(count).unwrap_or(i64::MAX).saturating_sub(1) * gap < t
        });
        let &(first, _, before) = self.runs.get(r)?;
        let k = if t <= first {
            0
        } else {
            u64::try_from((t - first + gap - 1) / gap).unwrap_or(0)
        };
        Some(before + k)
    }

    /// The instants themselves, in order.
    pub(super) fn instants(&self) -> impl Iterator<Item = i64> + '_ {
        self.runs.iter().flat_map(move |&(first, count, _)| {
            (0..i64::try_from(count).unwrap_or(0)).map(move |k| first + k * self.gap)
        })
    }
}
