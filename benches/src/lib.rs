//! Fixtures shared by the criterion benchmarks in `benches/` and the `plan_memory` program:
//! a fleet of mailboxes in 16 zones and a due set of new enrollments and follow-ups, built
//! deterministically so every run measures the same work.
//!
//! ```
//! let fleet = sequence_benches::PlanningFixture::new(1_000, 20, 1);
//! assert_eq!(fleet.due.len(), 1_000);
//! ```

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::store::{DailyCounts, MailboxSnapshot, PlannedSlot};
use sequence_core::time::{
    local_date, local_day_bounds, LocalTime, SendWindow, WarmUp, WeekdaySet, WeeklySchedule,
};
use sequence_scheduler::planner::{DueStep, PlanningInput, SequencePolicy};

mod tick;
pub use tick::TickFixture;

/// A transport that accepts every message at once, so that a bench measures the engine and
/// its store, not a server.
#[derive(Debug, Clone, Copy)]
pub struct NoopTransport;

#[async_trait::async_trait]
impl sequence_core::transport::Transport for NoopTransport {
    async fn send(
        &self,
        _email: &sequence_core::transport::OutgoingEmail,
    ) -> Result<sequence_core::transport::Delivery, sequence_core::transport::SendError> {
        Ok(sequence_core::transport::Delivery::default())
    }
}

/// The 16 zones mailboxes and contacts live in (DST both ways, odd offsets).
pub const ZONES: [Tz; 16] = [
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Denver,
    chrono_tz::America::Los_Angeles,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::Europe::Helsinki,
    chrono_tz::Asia::Dubai,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Asia::Singapore,
    chrono_tz::Asia::Tokyo,
    chrono_tz::Australia::Sydney,
    chrono_tz::Pacific::Auckland,
    chrono_tz::UTC,
];

/// A deterministic 64-bit hash, for spreading fixture values.
#[must_use]
pub fn hash(a: u64) -> u64 {
    let mut z = a.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tuesday 2026-03-10 at `hour`:00Z (US zones are on summer time, Europe is not yet).
#[must_use]
pub fn tuesday_at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, hour, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `k` instants spread evenly over the intervals, each in the middle of its share.
fn spread_evenly(open: &[(DateTime<Utc>, DateTime<Utc>)], k: u32) -> Vec<DateTime<Utc>> {
    let total: i64 = open.iter().map(|(s, e)| (*e - *s).num_seconds()).sum();
    let k = i64::from(k);
    (0..k)
        .filter_map(|j| {
            let mut offset = (2 * j + 1) * total / (2 * k);
            for (s, e) in open {
                let len = (*e - *s).num_seconds();
                if offset < len {
                    return Some(*s + Duration::seconds(offset));
                }
                offset -= len;
            }
            None
        })
        .collect()
}

/// A planning input at scale.
#[derive(Debug, Clone)]
pub struct PlanningFixture {
    /// The instant planned at.
    pub now: DateTime<Utc>,
    /// Due enrollments: 30% follow-ups on a sticky mailbox, 70% new.
    pub due: Vec<DueStep>,
    /// Mailboxes in 16 zones, business hours, limits 30-50, 10% warming up, 2-minute gaps.
    pub mailboxes: Vec<MailboxSnapshot>,
    /// 10 sequences with overlapping pools; half have recipient windows.
    pub sequences: Vec<SequencePolicy>,
    /// Empty daily counts.
    pub counts: DailyCounts,
}

impl PlanningFixture {
    /// `due` enrollments over `mailboxes` mailboxes in the 16 [`ZONES`], with values derived
    /// from `seed`, planned on Tuesday 2026-03-10 at 13:00Z, when business hours are open in
    /// about half the zones.
    #[must_use]
    pub fn new(due: usize, mailboxes: usize, seed: u64) -> Self {
        Self::in_zones(due, mailboxes, seed, &ZONES, tuesday_at(13))
    }

    /// As [`PlanningFixture::new`], with the mailboxes in `zones` (in turn) and planned at
    /// `now`. Contacts stay spread over the 16 [`ZONES`].
    #[must_use]
    pub fn in_zones(
        due: usize,
        mailboxes: usize,
        seed: u64,
        zones: &[Tz],
        now: DateTime<Utc>,
    ) -> Self {
        let tenant = TenantId::from_u128(1);
        let zones = if zones.is_empty() { &ZONES[..] } else { zones };
        let hours = |a: u32, b: u32| {
            WeeklySchedule::windows(
                SendWindow::new(
                    WeekdaySet::WEEKDAYS,
                    LocalTime::from_hm(a, 0).unwrap_or(LocalTime::MIDNIGHT),
                    LocalTime::from_hm(b, 0).unwrap_or(LocalTime::END_OF_DAY),
                )
                .into_iter()
                .collect(),
            )
        };
        let snapshots: Vec<MailboxSnapshot> = (0..mailboxes)
            .filter_map(|i| {
                let h = hash(seed ^ (i as u64));
                let tz = zones[i % zones.len()];
                let limit = 30 + u32::try_from(h % 21).unwrap_or(0);
                let mut m = Mailbox::new(tenant, format!("sender{i}@fleet.example"), tz)
                    .ok()?
                    .with_id(MailboxId::from_u128(1 + i as u128))
                    .with_daily_limit(limit)
                    .with_schedule(hours(9, 17))
                    .with_min_gap_seconds(120);
                if i % 10 == 3 {
                    m = m.with_warmup(WarmUp {
                        start: 5,
                        increment: 3,
                        since: local_date(tz, now)
                            - Duration::days(i64::try_from(h % 7).unwrap_or(0)),
                    });
                }
                Some(MailboxSnapshot {
                    local_date: local_date(tz, now),
                    used: u32::try_from(h % 5).unwrap_or(0),
                    last_attempt_at: None,
                    planned: Vec::new(),
                    held_until: None,
                    mailbox: m,
                })
            })
            .collect();
        let n = snapshots.len().max(1);
        // 10 sequences; pool k covers a fifth of the fleet starting at k * n / 10, so
        // neighbouring pools overlap by half.
        let sequences: Vec<SequencePolicy> = (0..10)
            .map(|k| {
                let start = k * n / 10;
                let pool = (0..n / 5)
                    .map(|j| snapshots[(start + j) % n].mailbox.id)
                    .collect();
                SequencePolicy {
                    id: SequenceId::from_u128(1 + k as u128),
                    active: true,
                    pool,
                    recipient_windows: (k % 2 == 0).then(|| hours(8, 18)),
                    new_enrollments_per_day: None,
                    per_domain_daily_cap: None,
                    more_due: false,
                }
            })
            .collect();
        let due = (0..due)
            .map(|i| {
                let h = hash(seed.wrapping_mul(31) ^ (i as u64));
                let seq = &sequences[(h % 10) as usize];
                let follow_up = h % 100 < 30;
                let sticky = follow_up.then(|| seq.pool[((h >> 8) as usize) % seq.pool.len()]);
                DueStep {
                    enrollment: EnrollmentId::from_u128(1 + i as u128),
                    tenant,
                    sequence: seq.id,
                    step: u32::from(follow_up) * (1 + u32::try_from((h >> 16) % 3).unwrap_or(0)),
                    earliest: now - Duration::minutes(i64::try_from((h >> 20) % 600).unwrap_or(0)),
                    sticky_mailbox: sticky,
                    contact_zone: Some(ZONES[((h >> 32) as usize) % ZONES.len()]),
                    recipient_domain: format!("company{}.example", (h >> 40) % 5000),
                }
            })
            .collect();
        Self {
            now,
            due,
            mailboxes: snapshots,
            sequences,
            counts: DailyCounts::default(),
        }
    }

    /// A busy day at the same size and instant as [`PlanningFixture::new`]. Each mailbox
    /// has half of its day's capacity taken by sends spread evenly over its open hours of
    /// its local day: those before `now` went out (attempts: counted in `used`, the latest
    /// is `last_attempt_at`), those after are [`PlannedSlot`]s (reservations: counted in
    /// `used`), 30% of them follow-ups. Minimum gaps are 60 to 120 s. Every sequence caps
    /// new starts per UTC day (300 to 450) and sends per recipient domain (2 to 4), and
    /// [`DailyCounts`] holds what those sends add on the UTC date of `now`.
    ///
    /// ```
    /// let day = sequence_benches::PlanningFixture::busy_day(1_000, 20, 1);
    /// assert!(day.mailboxes.iter().all(|m| m.used > 0));
    /// assert!(day.mailboxes.iter().any(|m| !m.planned.is_empty()));
    /// assert!(day.mailboxes.iter().any(|m| m.last_attempt_at.is_some()));
    /// ```
    #[must_use]
    pub fn busy_day(due: usize, mailboxes: usize, seed: u64) -> Self {
        let mut fixture = Self::new(due, mailboxes, seed);
        let now = fixture.now;
        for (k, seq) in (0u32..).zip(fixture.sequences.iter_mut()) {
            seq.new_enrollments_per_day = Some(300 + 50 * (k % 4));
            seq.per_domain_daily_cap = Some(2 + k % 3);
        }
        let mut counts = DailyCounts::default();
        let mut slot = 0u64;
        for (i, snap) in fixture.mailboxes.iter_mut().enumerate() {
            let h = hash(seed ^ 0x000b_5da1 ^ (i as u64));
            snap.mailbox.min_gap_seconds = 60 + u32::try_from(h % 61).unwrap_or(0);
            let m = &snap.mailbox;
            let (day_start, day_end) = local_day_bounds(m.timezone, snap.local_date);
            let open = m.schedule.open_intervals(m.timezone, day_start, day_end);
            let half = m.limit_on(snap.local_date) / 2;
            // The sequences whose pools hold this mailbox sent from it.
            let senders: Vec<SequenceId> = fixture
                .sequences
                .iter()
                .filter(|s| s.pool.contains(&m.id))
                .map(|s| s.id)
                .collect();
            snap.used = half;
            snap.planned.clear();
            snap.last_attempt_at = None;
            for at in spread_evenly(&open, half) {
                slot += 1;
                let hs = hash(seed.wrapping_mul(17) ^ slot);
                let step = if hs % 100 < 30 {
                    1 + u32::try_from((hs >> 8) % 3).unwrap_or(0)
                } else {
                    0
                };
                if at <= now {
                    snap.last_attempt_at = snap.last_attempt_at.max(Some(at));
                } else {
                    snap.planned.push(PlannedSlot {
                        send: SendId::from_u128((1 << 64) | u128::from(slot)),
                        enrollment: EnrollmentId::from_u128((1 << 64) | u128::from(slot)),
                        step,
                        at,
                    });
                }
                if at.date_naive() != now.date_naive() || senders.is_empty() {
                    continue;
                }
                let domain = format!("company{}.example", (hs >> 40) % 5000);
                *counts
                    .per_domain
                    .entry((TenantId::from_u128(1), domain))
                    .or_insert(0) += 1;
                if step == 0 {
                    let seq =
                        senders[usize::try_from((hs >> 16) % senders.len() as u64).unwrap_or(0)];
                    *counts.new_starts.entry(seq).or_insert(0) += 1;
                }
            }
        }
        fixture.counts = counts;
        fixture
    }

    /// The planner's view of this fixture.
    #[must_use]
    pub fn input(&self) -> PlanningInput<'_> {
        PlanningInput {
            due: &self.due,
            mailboxes: &self.mailboxes,
            sequences: &self.sequences,
            counts: &self.counts,
            more_due_on: &[],
        }
    }
}

/// The straightforward allocation the original SQL-plus-filter designs use, kept as the
/// benchmark's baseline: for each enrollment, scan every mailbox of its pool and take the
/// first that fits (active, capacity left, open today, inside the contact's hours), sending
/// at the mailbox's next free instant. Returns how many sends it planned.
///
/// It is a fair first-fit: what does not change during the pass is worked out once, as a
/// careful implementer would (per mailbox its limit today and the open intervals left of
/// its local day; per sequence and contact zone the contact's open hours), so that it
/// differs from the planner in its algorithm, not in repeated time-zone maths.
///
/// ```
/// let fleet = sequence_benches::PlanningFixture::new(1_000, 20, 1);
/// assert!(sequence_benches::baseline_first_fit(&fleet.input(), fleet.now) > 0);
/// ```
#[must_use]
pub fn baseline_first_fit(input: &PlanningInput<'_>, now: DateTime<Utc>) -> usize {
    FirstFit::new(input, now).run(input)
}

/// One mailbox's day as the first-fit baseline sees it, in seconds since the epoch.
#[derive(Debug)]
struct FirstFitDay {
    zone: Tz,
    /// Sends still allowed today (0 when the mailbox is not active).
    cap_left: u32,
    gap: i64,
    /// Open intervals `[start, end)` from `now` to the end of its local day.
    open: Vec<(i64, i64)>,
    /// The first interval of `open` that may still hold `next_free`.
    cursor: usize,
    /// The earliest instant of its next send.
    next_free: i64,
}

impl FirstFitDay {
    /// The mailbox's next free instant today, if it has capacity and open time left.
    fn next_slot(&mut self) -> Option<i64> {
        if self.cap_left == 0 {
            return None;
        }
        while let Some(&(start, end)) = self.open.get(self.cursor) {
            if self.next_free < end {
                return Some(self.next_free.max(start));
            }
            self.cursor += 1;
        }
        None
    }

    fn take(&mut self, at: i64) {
        self.cap_left -= 1;
        self.next_free = at + self.gap;
    }
}

/// The first-fit baseline's state: mailbox days, pools as indices, contact hours.
#[derive(Debug)]
struct FirstFit {
    days: Vec<FirstFitDay>,
    sequences: HashMap<SequenceId, usize>,
    /// Per sequence: its pool as indices into `days`.
    pools: Vec<Vec<usize>>,
    mailbox_index: HashMap<MailboxId, usize>,
    /// Per (sequence, zone): the contact's open hours from `now` on, once computed.
    hours: HashMap<(usize, Tz), Vec<(i64, i64)>>,
    now: DateTime<Utc>,
}

impl FirstFit {
    fn new(input: &PlanningInput<'_>, now: DateTime<Utc>) -> Self {
        let days: Vec<FirstFitDay> = input
            .mailboxes
            .iter()
            .map(|snap| {
                let m = &snap.mailbox;
                let (_, day_end) = local_day_bounds(m.timezone, snap.local_date);
                FirstFitDay {
                    zone: m.timezone,
                    cap_left: if m.is_active() {
                        m.limit_on(snap.local_date).saturating_sub(snap.used)
                    } else {
                        0
                    },
                    gap: i64::from(m.min_gap_seconds),
                    open: seconds(m.schedule.open_intervals(m.timezone, now, day_end)),
                    cursor: 0,
                    next_free: now.timestamp(),
                }
            })
            .collect();
        let mailbox_index: HashMap<MailboxId, usize> = input
            .mailboxes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.mailbox.id, i))
            .collect();
        let pools = input
            .sequences
            .iter()
            .map(|s| {
                s.pool
                    .iter()
                    .filter_map(|id| mailbox_index.get(id).copied())
                    .collect()
            })
            .collect();
        Self {
            days,
            sequences: input
                .sequences
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id, i))
                .collect(),
            pools,
            mailbox_index,
            hours: HashMap::new(),
            now,
        }
    }

    fn run(mut self, input: &PlanningInput<'_>) -> usize {
        input
            .due
            .iter()
            .filter(|due| self.place(input, due))
            .count()
    }

    /// Give `due` the first mailbox of its pool (or its sticky one) that fits.
    fn place(&mut self, input: &PlanningInput<'_>, due: &DueStep) -> bool {
        let Some(&seq) = self.sequences.get(&due.sequence) else {
            return false;
        };
        let Self {
            days,
            pools,
            mailbox_index,
            hours,
            now,
            ..
        } = self;
        let sticky = due.sticky_mailbox.map(|id| mailbox_index.get(&id).copied());
        let candidates: &[usize] = match &sticky {
            Some(Some(mb)) => std::slice::from_ref(mb),
            Some(None) => return false,
            None => &pools[seq],
        };
        for &mb in candidates {
            let day = &mut days[mb];
            let Some(at) = day.next_slot() else {
                continue;
            };
            if let Some(windows) = &input.sequences[seq].recipient_windows {
                let zone = due.contact_zone.unwrap_or(day.zone);
                let open = hours.entry((seq, zone)).or_insert_with(|| {
                    seconds(windows.open_intervals(zone, *now, *now + Duration::days(3)))
                });
                let i = open.partition_point(|&(_, end)| end <= at);
                if open.get(i).is_none_or(|&(start, _)| start > at) {
                    continue;
                }
            }
            day.take(at);
            return true;
        }
        false
    }
}

/// Intervals of instants as seconds since the epoch.
fn seconds(intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Vec<(i64, i64)> {
    intervals
        .into_iter()
        .map(|(s, e)| (s.timestamp(), e.timestamp()))
        .collect()
}
