//! Contacts' business hours: when a contact may be written to, per (sequence, zone), and
//! whether that meets a mailbox's open time today.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;

use super::day::Day;
use super::intervals::intersect;
use super::{secs, SequencePolicy, NONE};

/// [`Entry::hours`](super::order::Entry::hours) of an enrollment whose sequence has no
/// business hours.
pub(super) const NO_HOURS: u32 = NONE;
/// [`Entry::hours`](super::order::Entry::hours) of an enrollment whose contact has no zone:
/// its business hours are in the zone of its mailbox, known once the mailbox is.
pub(super) const MAILBOX_ZONE: u32 = NONE - 1;

/// The business hours one plan meets, each computed once: open intervals in seconds from now
/// over the next 8 days, per (sequence, zone), named by their index.
pub(super) struct Hours<'a> {
    now: DateTime<Utc>,
    now_s: i64,
    /// How far ahead the open intervals go.
    horizon: DateTime<Utc>,
    /// The sequences, whose business hours these are.
    sequences: &'a [SequencePolicy],
    /// The open intervals, per index.
    open: Vec<Vec<(i64, i64)>>,
    /// The index of each (sequence, zone) in `open`.
    index: HashMap<(u32, Tz), u32>,
    /// Whether a mailbox's free time today meets the hours, per (mailbox, index).
    meets: HashMap<(u32, u32), bool>,
}

impl<'a> Hours<'a> {
    /// None yet, at `now`, for `sequences`.
    pub(super) fn new(now: DateTime<Utc>, sequences: &'a [SequencePolicy]) -> Self {
        Self {
            now,
            now_s: secs(now),
            horizon: now + Duration::days(8),
            sequences,
            open: Vec::new(),
            index: HashMap::default(),
            meets: HashMap::default(),
        }
    }

    /// The index of the business hours of the sequence `seq` in `zone` (none open when the
    /// sequence has none).
    pub(super) fn of(&mut self, seq: u32, zone: Tz) -> u32 {
        *self.index.entry((seq, zone)).or_insert_with(|| {
            let open = self.sequences[seq as usize]
                .recipient_windows
                .as_ref()
                .map(|s| {
                    s.open_intervals(zone, self.now, self.horizon)
                        .into_iter()
                        .map(|(a, b)| (secs(a), secs(b)))
                        .collect()
                })
                .unwrap_or_default();
            self.open.push(open);
            u32::try_from(self.open.len() - 1).unwrap_or(NONE)
        })
    }

    /// Whether the business hours `hours` of an enrollment of the sequence `seq` meet the
    /// free time of the mailbox `mb` (whose day is `day`) today; `None` without hours.
    pub(super) fn meet(&mut self, hours: u32, seq: u32, mb: u32, day: &Day) -> Option<bool> {
        if hours == NO_HOURS {
            return None;
        }
        let h = if hours == MAILBOX_ZONE {
            self.of(seq, day.zone)
        } else {
            hours
        };
        Some(
            *self
                .meets
                .entry((mb, h))
                .or_insert_with(|| !intersect(&day.free, &self.open[h as usize]).is_empty()),
        )
    }

    /// The open intervals of the business hours `hours` of an enrollment of the sequence
    /// `seq`, sent from a mailbox in `mailbox_zone`; `None` without hours, or when they were
    /// never computed for that zone.
    pub(super) fn list(&self, hours: u32, seq: u32, mailbox_zone: Tz) -> Option<&[(i64, i64)]> {
        let h = if hours == NO_HOURS {
            return None;
        } else if hours == MAILBOX_ZONE {
            *self.index.get(&(seq, mailbox_zone))?
        } else {
            hours
        };
        self.open.get(h as usize).map(Vec::as_slice)
    }

    /// The open intervals of the business hours `hours` as a send carries them once its
    /// mailbox is known; `None` without hours. Hours still in the mailbox's zone, or never
    /// computed, allow no instant.
    pub(super) fn resolved(&self, hours: u32) -> Option<&[(i64, i64)]> {
        if hours == NO_HOURS {
            return None;
        }
        Some(self.open.get(hours as usize).map_or(&[], Vec::as_slice))
    }

    /// When an enrollment (hours `hours`, sequence `seq`) that finds no room in its business
    /// hours on the mailbox of `day` is worth planning again: when those hours next open (now
    /// if they are open), else when the mailbox's next local day opens.
    pub(super) fn next_open(&self, hours: u32, seq: u32, day: &Day) -> i64 {
        let now_s = self.now_s;
        let from = day.next_day_open.unwrap_or(now_s + 86_400);
        let rec = self
            .list(hours, seq, day.zone)
            .and_then(|list| list.iter().find(|&&(_, e)| e > now_s).map(|&(s, _)| s));
        rec.map_or(from, |r| r.max(now_s).min(from.max(r)))
    }
}

/// Whether `t` falls in one of the intervals of `allowed` (`None`: no limit).
pub(super) fn is_allowed(allowed: Option<&[(i64, i64)]>, t: i64) -> bool {
    match allowed {
        None => true,
        Some(list) => {
            let i = list.partition_point(|&(_, e)| e <= t);
            list.get(i).is_some_and(|&(s, _)| s <= t)
        }
    }
}
