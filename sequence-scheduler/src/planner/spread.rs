//! Where a mailbox's sends go in its open time: spread evenly, with seeded jitter, never
//! closer than the minimum gap.

use crate::rng::{mix, unit_f64};

use super::intervals::{fit_count, Packing};

/// `k` instants spread evenly over the intervals with jitter, `gap` apart at least.
fn spread(free: &[(i64, i64)], k: usize, gap: i64, jitter: f64, seed: u64) -> Vec<i64> {
    let total: i64 = free.iter().map(|&(s, e)| e - s).sum();
    if k == 0 || total <= 0 {
        return Vec::new();
    }
    let k_i = i64::try_from(k).unwrap_or(i64::MAX);
    let spacing = total as f64 / k as f64;
    // Each point moves at most `amp` from its even position, so two neighbours stay at least
    // `spacing - 2 amp >= gap` apart.
    let amp = ((spacing - gap as f64) / 2.0)
        .max(0.0)
        .min(spacing * jitter.clamp(0.0, 1.0) / 2.0);
    let mut out = Vec::with_capacity(k);
    let mut seg = 0usize;
    let mut seg_base = 0i64; // offset at which `free[seg]` starts
    let mut last_real = i64::MIN;
    for i in 0..k_i {
        let centre = spacing * (i as f64 + 0.5);
        let u = unit_f64(mix(seed, i as u64)) * 2.0 - 1.0;
        let offset = (centre + u * amp).floor().clamp(0.0, (total - 1) as f64) as i64;
        // Map the offset into real time, walking forward through the intervals.
        while seg < free.len() && offset >= seg_base + (free[seg].1 - free[seg].0) {
            seg_base += free[seg].1 - free[seg].0;
            seg += 1;
        }
        let Some(&(s, _)) = free.get(seg) else { break };
        let mut t = s + (offset - seg_base);
        if last_real != i64::MIN && t < last_real + gap {
            t = last_real + gap;
        }
        // Pushed past its interval: move to the next one that has room.
        let mut idx = seg;
        let mut placed = None;
        while idx < free.len() {
            let (s2, e2) = free[idx];
            let cand = t.max(s2);
            if cand < e2 {
                placed = Some((cand, idx));
                break;
            }
            idx += 1;
        }
        let Some((t, idx)) = placed else { break };
        // Keep the offset walk consistent with the interval we moved into.
        while seg < idx {
            seg_base += free[seg].1 - free[seg].0;
            seg += 1;
        }
        out.push(t);
        last_real = t;
    }
    if out.len() < k && gap > 0 {
        // Too tight to spread (pushing neighbours apart ran past the end): every instant as
        // early as it can be holds as many as fit.
        return Packing::earliest(free, gap).instants().take(k).collect();
    }
    out
}

/// `k` instants `gap` apart over the free time `free`, run of open time by run (`runs`,
/// in order): a run takes as many as it can hold before the next run gets any, and spreads
/// them over itself ([`spread`]). So a send due in an open run goes in that run, and one
/// that waits for a later run goes in the first one with room.
pub(super) fn spread_over_runs(
    free: &[(i64, i64)],
    runs: &[(i64, i64)],
    k: usize,
    gap: i64,
    jitter: f64,
    seed: u64,
) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::with_capacity(k);
    let mut pieces: Vec<(i64, i64)> = Vec::new();
    let mut next = 0usize;
    for (r, &(rs, re)) in runs.iter().enumerate() {
        if out.len() >= k {
            break;
        }
        // Free time of this run, `gap` after the last instant taken.
        let after = out.last().map_or(i64::MIN, |&t| t + gap.max(0));
        pieces.clear();
        while next < free.len() && free[next].1 <= rs {
            next += 1;
        }
        for &(s, e) in free[next..].iter().take_while(|&&(s, _)| s < re) {
            let (s, e) = (s.max(rs).max(after), e.min(re));
            if s < e {
                pieces.push((s, e));
            }
        }
        let room = usize::try_from(fit_count(&pieces, gap)).unwrap_or(usize::MAX);
        let n = room.min(k - out.len());
        let run_seed = if r == 0 { seed } else { mix(seed, r as u64) };
        out.extend(spread(&pieces, n, gap, jitter, run_seed));
    }
    out
}
