//! Fixtures shared by the criterion benchmarks in `benches/` and the `plan_memory` program:
//! a fleet of mailboxes in 16 zones and a due set of new enrollments and follow-ups, built
//! deterministically so every run measures the same work.
//!
//! ```
//! let fleet = sequence_benches::PlanningFixture::new(1_000, 20, 1);
//! assert_eq!(fleet.due.len(), 1_000);
//! ```

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::ids::{EnrollmentId, MailboxId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::store::{DailyCounts, MailboxSnapshot};
use sequence_core::time::{local_date, LocalTime, SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
use sequence_scheduler::planner::{DueStep, PlanningInput, SequencePolicy};

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
    /// `due` enrollments over `mailboxes` mailboxes, with values derived from `seed`.
    #[must_use]
    pub fn new(due: usize, mailboxes: usize, seed: u64) -> Self {
        let tenant = TenantId::from_u128(1);
        // Tuesday 2026-03-10 13:00Z: business hours are open in about half the zones.
        let now = Utc
            .with_ymd_and_hms(2026, 3, 10, 13, 0, 0)
            .single()
            .unwrap_or_default();
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
                let tz = ZONES[i % ZONES.len()];
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

    /// The planner's view of this fixture.
    #[must_use]
    pub fn input(&self) -> PlanningInput<'_> {
        PlanningInput {
            due: &self.due,
            mailboxes: &self.mailboxes,
            sequences: &self.sequences,
            counts: &self.counts,
        }
    }
}

/// The straightforward allocation the original SQL-plus-filter designs use, kept as the
/// benchmark's baseline: for each enrollment, scan every mailbox of its pool and take the
/// first that fits (active, capacity left, open today, inside the contact's hours), sending
/// at the mailbox's next free instant. Returns how many sends it planned.
#[must_use]
pub fn baseline_first_fit(input: &PlanningInput<'_>, now: DateTime<Utc>) -> usize {
    use std::collections::HashMap;
    let mut state: HashMap<MailboxId, (u32, DateTime<Utc>)> = input
        .mailboxes
        .iter()
        .map(|s| (s.mailbox.id, (s.used, now)))
        .collect();
    let by_id: HashMap<MailboxId, &MailboxSnapshot> =
        input.mailboxes.iter().map(|s| (s.mailbox.id, s)).collect();
    let seqs: HashMap<SequenceId, &SequencePolicy> =
        input.sequences.iter().map(|s| (s.id, s)).collect();
    let mut planned = 0;
    for due in input.due {
        let Some(seq) = seqs.get(&due.sequence) else {
            continue;
        };
        let pool: Vec<MailboxId> = match due.sticky_mailbox {
            Some(m) => vec![m],
            None => seq.pool.clone(),
        };
        for id in pool {
            let Some(snap) = by_id.get(&id) else { continue };
            let m = &snap.mailbox;
            let Some(entry) = state.get_mut(&id) else {
                continue;
            };
            if !m.is_active() || entry.0 >= m.limit_on(snap.local_date) {
                continue;
            }
            let Some(at) = m.schedule.next_open(m.timezone, entry.1) else {
                continue;
            };
            if local_date(m.timezone, at) != snap.local_date {
                continue;
            }
            if let Some(rw) = &seq.recipient_windows {
                if !rw.contains(due.contact_zone.unwrap_or(m.timezone), at) {
                    continue;
                }
            }
            entry.0 += 1;
            entry.1 = at + Duration::seconds(i64::from(m.min_gap_seconds));
            planned += 1;
            break;
        }
    }
    planned
}
