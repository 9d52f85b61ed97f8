//! The planner: a pure function from a snapshot of due enrollments and mailboxes to a plan.
//!
//! [`plan`] decides, for each due enrollment, which mailbox sends its current step and at
//! which instant, or why it must wait and until when. It reads no clock, does no I/O and
//! draws randomness only from [`PlannerConfig::seed`], so the same input gives the same plan.
//!
//! # How a plan is made
//!
//! 1. Each mailbox's **current local day** is measured: its limit (warm-up and holidays
//!    applied) less the attempts and reservations already counted, the time still open in
//!    its windows today (after its last attempt plus the minimum gap, and away from sends
//!    already planned), and how many sends that time can hold `min_gap` apart.
//! 2. Due enrollments are **ordered**: follow-ups (step >= 1) first, then retries, then new
//!    enrollments; inside a class, sequences take turns (round robin, so one sequence cannot
//!    starve another on a shared mailbox), and each sequence serves its oldest due first.
//! 3. Each enrollment is **assigned** a mailbox: its sticky mailbox, or (new enrollments, and
//!    enrollments whose sticky mailbox is paused) the least-loaded mailbox of the pool that
//!    still has capacity today and whose open time meets the contact's business hours, ties
//!    broken by a seeded hash. A heap per (sequence, recipient-zone) keeps this O(log m).
//!    An enrollment with business hours takes its instant at once: the earliest one in
//!    those hours that leaves room for the sends already assigned (found exactly, from the
//!    earliest and the latest way to pack the day's free time, not by trying).
//! 4. Each mailbox's assigned sends are **timed**: the first run of open time still ahead
//!    takes as many as it can hold, spread evenly (with seeded jitter) across it, then the
//!    next run, never closer than the minimum gap; so a step due in an open run goes in that
//!    run, also when the run started the local day before. A follow-up takes the slot of an
//!    already planned, later new-enrollment send when there is one (that send is
//!    pre-empted and planned again), so follow-ups go first when capacity is short.
//! 5. Everything else is **deferred** with a typed reason and the earliest instant at which
//!    planning again could change the answer; enrollments waiting for a full pool are looked
//!    at again when the first pool mailbox that can take them opens.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap as HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::MailboxStatus;
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{DailyCounts, MailboxSnapshot};
use sequence_core::time::{local_date, local_day_bounds, WeeklySchedule};

use crate::rng::mix;

mod day;
mod intervals;
mod outlook;
mod spread;

use day::Day;
use intervals::{carve, fit_count, intersect};
pub use outlook::MailboxOutlook;
use spread::spread_over_runs;

/// Settings of the planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlannerConfig {
    /// Seed of every random choice (jitter, ties).
    pub seed: u64,
    /// How far each planned instant may move from its even position, as a share of the
    /// spacing between sends (0 = exactly even, 1 = anywhere in its share). Never so far
    /// that two sends come closer than the minimum gap.
    pub jitter: f64,
    /// When an enrollment waits for something the planner cannot foresee (a paused mailbox
    /// or sequence), it is looked at again after this long.
    pub recheck_after: Duration,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            jitter: 0.6,
            recheck_after: Duration::minutes(15),
        }
    }
}

impl PlannerConfig {
    /// The default settings with `seed`.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// One due enrollment, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueStep {
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// Its tenant (per-domain caps are per tenant).
    pub tenant: TenantId,
    /// Its sequence.
    pub sequence: SequenceId,
    /// The step to send.
    pub step: u32,
    /// The earliest instant the step may go (its delay and any backoff passed).
    pub earliest: DateTime<Utc>,
    /// The mailbox it already sends from, if any.
    pub sticky_mailbox: Option<MailboxId>,
    /// The contact's zone (`None`: the mailbox's).
    pub contact_zone: Option<Tz>,
    /// The recipient's domain, lower case.
    pub recipient_domain: String,
}

/// What the planner needs of a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequencePolicy {
    /// The sequence.
    pub id: SequenceId,
    /// Whether it sends now.
    pub active: bool,
    /// Its mailboxes.
    pub pool: Vec<MailboxId>,
    /// The contact's business hours (in the contact's zone), if any.
    pub recipient_windows: Option<WeeklySchedule>,
    /// Most new enrollments started per UTC day.
    pub new_enrollments_per_day: Option<u32>,
    /// Most attempts per recipient domain per UTC day.
    pub per_domain_daily_cap: Option<u32>,
}

impl From<&Sequence> for SequencePolicy {
    fn from(s: &Sequence) -> Self {
        Self {
            id: s.id,
            active: s.status == SequenceStatus::Active,
            pool: s.mailbox_pool.clone(),
            recipient_windows: s.recipient_windows.clone(),
            new_enrollments_per_day: s.new_enrollments_per_day,
            per_domain_daily_cap: s.per_domain_daily_cap,
        }
    }
}

/// Everything a plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlanningInput<'a> {
    /// The due enrollments.
    pub due: &'a [DueStep],
    /// The mailboxes, with their current local day.
    pub mailboxes: &'a [MailboxSnapshot],
    /// The sequences of the due enrollments.
    pub sequences: &'a [SequencePolicy],
    /// Today's counts for per-sequence and per-domain caps.
    pub counts: &'a DailyCounts,
}

/// A send the plan makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSend {
    /// Index of the enrollment in [`PlanningInput::due`].
    pub index: usize,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// The step.
    pub step: u32,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The instant.
    pub at: DateTime<Utc>,
    /// The mailbox-local date of `at` (whose capacity it reserves).
    pub local_date: NaiveDate,
    /// The mailbox's limit on that date.
    pub limit: u32,
}

/// An enrollment the plan leaves waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    /// Index of the enrollment in [`PlanningInput::due`].
    pub index: usize,
    /// The enrollment.
    pub enrollment: EnrollmentId,
    /// Why it waits.
    pub reason: DeferralReason,
    /// The earliest instant at which planning again could change the answer (`None`: only
    /// an event, such as a resume, can).
    pub not_before: Option<DateTime<Utc>>,
}

/// Capacity a plan reserves on one mailbox-day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its local date.
    pub local_date: NaiveDate,
    /// Sends reserved by this plan.
    pub count: u32,
    /// The limit of that day.
    pub limit: u32,
}

/// The planner's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Sends to store, each reserving capacity.
    pub sends: Vec<PlannedSend>,
    /// Enrollments left waiting, in no particular order (each names its index).
    pub deferred: Vec<Deferred>,
    /// Planned sends whose slot a follow-up takes: cancel them (their enrollments are due
    /// again at once).
    pub preempt: Vec<SendId>,
    /// Capacity reserved, per mailbox and local day.
    pub reservations: Vec<Reservation>,
}

const NONE: u32 = u32::MAX;

/// The times a contact may be written to, cached per (recipient schedule, zone).
struct RecipientHours {
    /// Open intervals from now over the next days, in seconds.
    open: Vec<(i64, i64)>,
}

fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn instant(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn is_allowed(allowed: Option<&[(i64, i64)]>, t: i64) -> bool {
    match allowed {
        None => true,
        Some(list) => {
            let i = list.partition_point(|&(_, e)| e <= t);
            list.get(i).is_some_and(|&(s, _)| s <= t)
        }
    }
}

/// One due enrollment in priority order, with everything the assignment loop reads, so that
/// the loop streams through these instead of jumping around the input (at a million items
/// that jumping, not the work, is what costs). Kept to 56 bytes: its (class, sequence) is
/// the bucket it sits in.
#[derive(Clone, Copy)]
struct Entry {
    /// Orders the entries of one bucket: the earliest instant (seconds from `now`, offset
    /// by 2^31) in the high half, a hash of the enrollment id in the low half; ties fall
    /// back to the id itself, so the order never depends on the input's.
    key: u64,
    enrollment: EnrollmentId,
    earliest: i64,
    idx: u32,
    hours: u32,
    /// Index of the sticky mailbox among the snapshots; `NONE` without a sticky mailbox,
    /// `NO_SNAPSHOT` when it has one the snapshots do not hold.
    sticky: u32,
    step: u32,
    /// Index of its (tenant, recipient domain) in the per-domain counts; `NONE` when its
    /// sequence has no per-domain cap.
    domain: u32,
}

/// [`Entry::sticky`] of a sticky mailbox the snapshots do not hold.
const NO_SNAPSHOT: u32 = u32::MAX - 1;

/// The bucket of an item whose sequence the input does not hold.
const UNKNOWN_SEQUENCE: u32 = u32::MAX;
/// The bucket of an item whose sequence is paused.
const PAUSED_SEQUENCE: u32 = u32::MAX - 1;

/// Make a plan. See the [module docs](self) for what it decides and why.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn plan(now: DateTime<Utc>, input: &PlanningInput<'_>, config: &PlannerConfig) -> Plan {
    let now_s = secs(now);
    let mut out = Plan::default();

    // ---- 1. mailbox days -----------------------------------------------------------------
    let mut mailbox_index: HashMap<MailboxId, u32> =
        HashMap::with_capacity_and_hasher(input.mailboxes.len(), rustc_hash::FxBuildHasher);
    let mut days: Vec<Day> = Vec::with_capacity(input.mailboxes.len());
    for snap in input.mailboxes {
        let m = &snap.mailbox;
        let tz = m.timezone;
        let (_, day_end) = local_day_bounds(tz, snap.local_date);
        let limit = m.limit_on(snap.local_date);
        let gap = i64::from(m.min_gap_seconds);
        let active = m.status == MailboxStatus::Active;
        let floor = snap
            .last_attempt_at
            .map_or(now_s, |t| (secs(t) + gap).max(now_s));
        let open: Vec<(i64, i64)> = if day_end > now && active {
            m.schedule
                .open_intervals(tz, instant(floor).max(now), day_end)
                .into_iter()
                .map(|(s, e)| (secs(s), secs(e)))
                .collect()
        } else {
            Vec::new()
        };
        let mut taken: Vec<i64> = snap.planned.iter().map(|p| secs(p.at)).collect();
        taken.sort_unstable();
        let free = carve(&open, &taken, gap);
        let remaining = limit.saturating_sub(snap.used);
        let fits = u32::try_from(fit_count(&free, gap)).unwrap_or(u32::MAX);
        let mut movable: Vec<(i64, SendId)> = snap
            .planned
            .iter()
            .filter(|p| p.step == 0 && p.at > now)
            .map(|p| (secs(p.at), p.send))
            .collect();
        movable.sort_unstable();
        let next_day_open = m.schedule.next_open(tz, day_end).map(secs);
        let next_day_limit = next_day_open.map_or(0, |t| m.limit_on(local_date(tz, instant(t))));
        mailbox_index.insert(m.id, u32::try_from(days.len()).unwrap_or(NONE));
        days.push(Day {
            id: m.id,
            zone: tz,
            active,
            local_date: snap.local_date,
            limit,
            gap,
            cap_left: if active && !free.is_empty() {
                remaining
            } else {
                0
            },
            unres_fits: u64::from(fits),
            unreserved: carve(&free, &[], gap),
            free,
            runs: open,
            reserved: Vec::new(),
            placed: Vec::new(),
            assigned: Vec::new(),
            movable,
            next_day_open,
            next_day_limit,
            used: snap.used,
            tie: mix(config.seed, m.id.0.as_u128() as u64),
            stamp: 0,
        });
    }

    // ---- 2. sequences and caps -----------------------------------------------------------
    let seq_index: HashMap<SequenceId, u32> = input
        .sequences
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id, u32::try_from(i).unwrap_or(NONE)))
        .collect();
    let pools: Vec<Vec<u32>> = input
        .sequences
        .iter()
        .map(|s| {
            s.pool
                .iter()
                .filter_map(|m| mailbox_index.get(m).copied())
                .collect()
        })
        .collect();
    let mut new_starts: Vec<u32> = input
        .sequences
        .iter()
        .map(|s| input.counts.new_starts.get(&s.id).copied().unwrap_or(0))
        .collect();
    let next_utc_midnight = {
        let d = now.date_naive().succ_opt().unwrap_or(now.date_naive());
        d.and_hms_opt(0, 0, 0)
            .map_or(now_s + 86_400, |t| t.and_utc().timestamp())
    };
    let recheck = now_s + config.recheck_after.num_seconds().max(1);

    // Recipient hours, per (sequence, zone): open intervals over the next 8 days.
    let horizon = now + Duration::days(8);
    let mut hours_index: HashMap<(u32, Tz), u32> = HashMap::default();
    let mut hours: Vec<RecipientHours> = Vec::new();

    // ---- 3. classify and order -------------------------------------------------------------
    // Entries per (class, sequence), sorted by their key. A first pass finds each item's
    // bucket, so that the buckets are sized exactly (at a million items, growing them by
    // doubling costs more than the planning), and numbers each (tenant, recipient domain)
    // whose sequence caps it, so that the cap check indexes a count instead of hashing a
    // string; the second pass reads both back in the same order.
    let n_seq = input.sequences.len();
    let mut sizes = vec![0usize; 3 * n_seq.max(1)];
    let mut domain_index: HashMap<(TenantId, &str), u32> = HashMap::default();
    let mut found: Vec<(u32, u32)> = Vec::with_capacity(input.due.len());
    for due in input.due {
        let Some(&seq) = seq_index.get(&due.sequence) else {
            found.push((UNKNOWN_SEQUENCE, NONE));
            continue;
        };
        let policy = &input.sequences[seq as usize];
        if !policy.active {
            found.push((PAUSED_SEQUENCE, NONE));
            continue;
        }
        let class = if due.step >= 1 {
            0
        } else if due.sticky_mailbox.is_some() {
            1
        } else {
            2
        };
        let bucket = class * n_seq + seq as usize;
        sizes[bucket] += 1;
        let domain = if policy.per_domain_daily_cap.is_some() {
            let next = u32::try_from(domain_index.len()).unwrap_or(NONE);
            *domain_index
                .entry((due.tenant, due.recipient_domain.as_str()))
                .or_insert(next)
        } else {
            NONE
        };
        found.push((u32::try_from(bucket).unwrap_or(NONE), domain));
    }
    // Today's count of each numbered domain.
    let mut domain_counts = vec![0u32; domain_index.len()];
    for ((tenant, domain), &n) in &input.counts.per_domain {
        if let Some(&i) = domain_index.get(&(*tenant, domain.as_str())) {
            domain_counts[i as usize] = n;
        }
    }
    let mut entries: Vec<Vec<Entry>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
    out.deferred.reserve(input.due.len());
    // Deferrals share a handful of `not_before` instants (the next openings): remember the
    // last conversion rather than building a calendar date for each of thousands.
    let last_instant = std::cell::Cell::new((i64::MIN, DateTime::<Utc>::MIN_UTC));
    let to_instant = |t: i64| {
        let (seen, at) = last_instant.get();
        if seen == t {
            return at;
        }
        let at = instant(t);
        last_instant.set((t, at));
        at
    };
    let defer = |out: &mut Plan,
                 index: usize,
                 enrollment: EnrollmentId,
                 reason: DeferralReason,
                 nb: Option<i64>| {
        out.deferred.push(Deferred {
            index,
            enrollment,
            reason,
            // Never before the next second: a deferral must not be looked at again at once.
            not_before: nb.map(|t| to_instant(t.max(now_s + 1))),
        });
    };
    for (idx, (due, &(bucket, domain))) in input.due.iter().zip(&found).enumerate() {
        if bucket == UNKNOWN_SEQUENCE || bucket == PAUSED_SEQUENCE {
            // A sequence the input does not hold is looked at again later; a paused one
            // when it resumes.
            let nb = (bucket == UNKNOWN_SEQUENCE).then_some(recheck);
            defer(
                &mut out,
                idx,
                due.enrollment,
                DeferralReason::SequencePaused,
                nb,
            );
            continue;
        }
        let seq = bucket % u32::try_from(n_seq).unwrap_or(1);
        let policy = &input.sequences[seq as usize];
        let hours_id = match (&policy.recipient_windows, due.contact_zone) {
            (None, _) => NONE,
            (Some(sched), Some(zone)) => {
                let key = (seq, zone);
                *hours_index.entry(key).or_insert_with(|| {
                    hours.push(RecipientHours {
                        open: sched
                            .open_intervals(zone, now, horizon)
                            .into_iter()
                            .map(|(s, e)| (secs(s), secs(e)))
                            .collect(),
                    });
                    u32::try_from(hours.len() - 1).unwrap_or(NONE)
                })
            }
            // No contact zone: the mailbox's zone, resolved once the mailbox is known.
            (Some(_), None) => NONE - 1,
        };
        let id = due.enrollment.0.as_u128();
        #[allow(clippy::cast_possible_truncation)] // both halves of the id feed the hash
        let tie = mix(id as u64, (id >> 64) as u64) >> 32;
        let earliest = secs(due.earliest);
        let when =
            u64::try_from((earliest - now_s + (1 << 31)).clamp(0, u32::MAX.into())).unwrap_or(0);
        entries[bucket as usize].push(Entry {
            key: (when << 32) | tie,
            enrollment: due.enrollment,
            earliest,
            idx: u32::try_from(idx).unwrap_or(NONE),
            hours: hours_id,
            sticky: due.sticky_mailbox.map_or(NONE, |m| {
                mailbox_index.get(&m).copied().unwrap_or(NO_SNAPSHOT)
            }),
            step: due.step,
            domain,
        });
    }
    // The priority order, as (bucket, position) pairs: walking it reads each bucket front to
    // back, so the assignment loop streams.
    let mut order: Vec<(u32, u32)> = Vec::with_capacity(input.due.len());
    // Each bucket is sorted as (key, position) pairs, then gathered in that order: sorting
    // moves 16 bytes instead of a whole entry. Equal keys fall back to the enrollment (and,
    // for an enrollment due twice, the position), so the order is total.
    let mut keys: Vec<(u64, u32)> = Vec::new();
    let mut gathered: Vec<Entry> = Vec::new();
    for class in 0..3 {
        let first = class * n_seq;
        for bucket in &mut entries[first..first + n_seq] {
            keys.clear();
            keys.extend((0u32..).zip(bucket.iter()).map(|(i, e)| (e.key, i)));
            keys.sort_unstable_by(|&(ka, a), &(kb, b)| {
                ka.cmp(&kb).then_with(|| {
                    let (ea, eb) = (&bucket[a as usize], &bucket[b as usize]);
                    ea.enrollment.cmp(&eb.enrollment).then(a.cmp(&b))
                })
            });
            gathered.clear();
            gathered.extend(keys.iter().map(|&(_, i)| bucket[i as usize]));
            bucket.copy_from_slice(&gathered);
        }
        // Sequences take turns, in a seeded order.
        let mut seq_order: Vec<usize> = (0..n_seq)
            .filter(|&s| !entries[first + s].is_empty())
            .collect();
        seq_order.sort_unstable_by_key(|&s| {
            mix(
                config.seed ^ 0x5e9,
                input.sequences[s].id.0.as_u128() as u64,
            )
        });
        let longest = entries[first..first + n_seq]
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        for rank in 0..longest {
            for &s in &seq_order {
                if rank < entries[first + s].len() {
                    order.push((
                        u32::try_from(first + s).unwrap_or(NONE),
                        u32::try_from(rank).unwrap_or(NONE),
                    ));
                }
            }
        }
    }

    // ---- 4. assign mailboxes -----------------------------------------------------------------
    // Heaps of pool mailboxes by load, per (sequence, recipient hours).
    type Heap = BinaryHeap<Reverse<(u64, u64, u32, u32)>>;
    let mut heaps: HashMap<(u32, u32), Heap> = HashMap::default();
    // Per (sequence, recipient hours) whose pool found no room today: why, and the first
    // instant at which a pool mailbox that can take them opens.
    let mut exhausted: HashMap<(u32, u32), (DeferralReason, Option<i64>)> = HashMap::default();
    let mut pool_allowed_cache: HashMap<(u32, u32), Vec<(i64, i64)>> = HashMap::default();

    // Whether an item's business hours meet a mailbox's open time today (None: no hours).
    let allowed_on = |hours: &mut Vec<RecipientHours>,
                      hours_index: &mut HashMap<(u32, Tz), u32>,
                      cache: &mut HashMap<(u32, u32), Vec<(i64, i64)>>,
                      days: &[Day],
                      item_hours: u32,
                      seq: u32,
                      mb: u32|
     -> Option<bool> {
        if item_hours == NONE {
            return None;
        }
        let h = if item_hours == NONE - 1 {
            // The contact has no zone: the mailbox's zone.
            let zone = days[mb as usize].zone;
            *hours_index.entry((seq, zone)).or_insert_with(|| {
                let open = input.sequences[seq as usize]
                    .recipient_windows
                    .as_ref()
                    .map(|s| {
                        s.open_intervals(zone, now, horizon)
                            .into_iter()
                            .map(|(a, b)| (secs(a), secs(b)))
                            .collect()
                    })
                    .unwrap_or_default();
                hours.push(RecipientHours { open });
                u32::try_from(hours.len() - 1).unwrap_or(NONE)
            })
        } else {
            item_hours
        };
        Some(
            !cache
                .entry((mb, h))
                .or_insert_with(|| intersect(&days[mb as usize].free, &hours[h as usize].open))
                .is_empty(),
        )
    };

    let defer_entry = |out: &mut Plan, entry: &Entry, reason: DeferralReason, nb: Option<i64>| {
        defer(out, entry.idx as usize, entry.enrollment, reason, nb);
    };
    for &(bucket, rank) in &order {
        let entry = &entries[bucket as usize][rank as usize];
        let seq = bucket % u32::try_from(n_seq).unwrap_or(1);
        let class = bucket / u32::try_from(n_seq).unwrap_or(1);
        let (item_hours, earliest) = (entry.hours, entry.earliest);
        let policy = &input.sequences[seq as usize];

        // Per-sequence cap on new starts.
        if class == 2 {
            if let Some(cap) = policy.new_enrollments_per_day {
                if new_starts[seq as usize] >= cap {
                    defer_entry(
                        &mut out,
                        entry,
                        DeferralReason::NewEnrollmentCapReached,
                        Some(next_utc_midnight),
                    );
                    continue;
                }
            }
        }
        // Per-domain cap.
        if let Some(cap) = policy.per_domain_daily_cap {
            let count = domain_counts
                .get(entry.domain as usize)
                .copied()
                .unwrap_or(0);
            if count >= cap {
                defer_entry(
                    &mut out,
                    entry,
                    DeferralReason::RecipientDomainCapReached,
                    Some(next_utc_midnight),
                );
                continue;
            }
        }

        let restricted = item_hours != NONE;
        // Sticky and active: that mailbox only.
        let sticky = (entry.sticky < NO_SNAPSHOT).then_some(entry.sticky);
        let chosen: (u32, Option<i64>) = if let Some(mb) =
            sticky.filter(|&mb| days[mb as usize].active)
        {
            let allowed = allowed_on(
                &mut hours,
                &mut hours_index,
                &mut pool_allowed_cache,
                &days,
                item_hours,
                seq,
                mb,
            );
            // A follow-up takes over the earliest planned new-enrollment slot it can use:
            // capacity moves from one to the other, and the new start waits.
            if class == 0 {
                let zone = days[mb as usize].zone;
                let list = recipient_list(&hours, &hours_index, item_hours, seq, zone);
                let day = &mut days[mb as usize];
                if let Some(pos) = day
                    .movable
                    .iter()
                    .position(|&(t, _)| t >= earliest && (!restricted || is_allowed(list, t)))
                {
                    let (t, send) = day.movable.remove(pos);
                    out.preempt.push(send);
                    push_send(&mut out, entry, day, t);
                    continue;
                }
            }
            let day = &days[mb as usize];
            let next_day = day.next_day_open.or(Some(recheck));
            if day.cap_left == 0 {
                let reason = if day.limit > day.used {
                    DeferralReason::OutsideMailboxWindow
                } else {
                    DeferralReason::NoCapacity
                };
                defer_entry(&mut out, entry, reason, next_day);
                continue;
            }
            if restricted {
                let found = if allowed == Some(false) {
                    None
                } else {
                    recipient_list(&hours, &hours_index, item_hours, seq, day.zone)
                        .and_then(|list| day.find_reserved(list, earliest))
                };
                let Some(t) = found else {
                    let nb = next_recipient_open(&hours, &hours_index, item_hours, seq, day, now_s);
                    defer_entry(
                        &mut out,
                        entry,
                        DeferralReason::OutsideRecipientWindow,
                        Some(nb.max(now_s + 60)),
                    );
                    continue;
                };
                (mb, Some(t))
            } else if day.takes_unrestricted() {
                (mb, None)
            } else {
                defer_entry(&mut out, entry, DeferralReason::NoCapacity, next_day);
                continue;
            }
        } else {
            // A new enrollment, or a sticky mailbox that is paused: least-loaded of the pool.
            let pool = &pools[seq as usize];
            if !pool.iter().any(|&mb| days[mb as usize].active) {
                let reason = if entry.sticky != NONE {
                    DeferralReason::MailboxPaused
                } else {
                    DeferralReason::NoActiveMailboxInPool
                };
                // Parked: only a mailbox resumed, or a pool changed, can change the answer,
                // and the engine wakes these when that happens. Looking again every few
                // minutes through a long pause would re-plan them all, again and again.
                defer_entry(&mut out, entry, reason, None);
                continue;
            }
            let key = (seq, item_hours);
            if let Some(&(reason, first_open)) = exhausted.get(&key) {
                defer_entry(&mut out, entry, reason, first_open.or(Some(recheck)));
                continue;
            }
            let heap = heaps.entry(key).or_insert_with(|| {
                let mut h = Heap::new();
                for &mb in pool {
                    let d = &days[mb as usize];
                    if d.cap_left > 0 {
                        h.push(Reverse((d.load_key(), d.tie, mb, d.stamp)));
                    }
                }
                h
            });
            let mut pick = None;
            while let Some(Reverse((load, tie, mb, stamp))) = heap.pop() {
                let d = &days[mb as usize];
                if d.cap_left == 0 {
                    continue;
                }
                if stamp != d.stamp {
                    heap.push(Reverse((d.load_key(), d.tie, mb, d.stamp)));
                    continue;
                }
                let allowed = allowed_on(
                    &mut hours,
                    &mut hours_index,
                    &mut pool_allowed_cache,
                    &days,
                    item_hours,
                    seq,
                    mb,
                );
                let d = &days[mb as usize];
                if allowed == Some(false) {
                    // Never usable for this key today: drop it from this heap.
                    continue;
                }
                if restricted {
                    let found = recipient_list(&hours, &hours_index, item_hours, seq, d.zone)
                        .and_then(|list| d.find_reserved(list, earliest));
                    match found {
                        Some(t) => {
                            pick = Some((mb, Some(t), (load, tie, stamp)));
                            break;
                        }
                        // No room left in these hours on this mailbox today.
                        None => continue,
                    }
                }
                if d.takes_unrestricted() {
                    pick = Some((mb, None, (load, tie, stamp)));
                    break;
                }
            }
            let Some((mb, at, (load, tie, stamp))) = pick else {
                // Every pool mailbox is full (or closed) for this key today.
                // They are all looked at again when the first pool mailbox that can take
                // them opens (one whose next day has a limit above zero), not a later one:
                // whichever zone opens first, its capacity goes to the backlog.
                let mut outside = true;
                let mut first_open: Option<i64> = None;
                let mut first_any: Option<i64> = None;
                for &mb in pool {
                    let d = &days[mb as usize];
                    if !d.active {
                        continue;
                    }
                    if d.limit > d.used && !d.free.is_empty() {
                        outside = false;
                    }
                    if let Some(c) = d.next_day_open {
                        first_any = Some(first_any.map_or(c, |f| f.min(c)));
                        if d.next_day_limit > 0 {
                            first_open = Some(first_open.map_or(c, |f| f.min(c)));
                        }
                    }
                }
                let first_open = first_open.or(first_any);
                let reason = if restricted && !outside {
                    DeferralReason::OutsideRecipientWindow
                } else if outside
                    && pool
                        .iter()
                        .any(|&mb| days[mb as usize].limit > days[mb as usize].used)
                {
                    DeferralReason::OutsideMailboxWindow
                } else {
                    DeferralReason::NoCapacity
                };
                exhausted.insert(key, (reason, first_open));
                defer_entry(&mut out, entry, reason, first_open.or(Some(recheck)));
                continue;
            };
            heap.push(Reverse((load, tie, mb, stamp)));
            (mb, at)
        };

        // Take the capacity.
        let (mb, at) = chosen;
        let day = &mut days[mb as usize];
        match at {
            Some(t) => day.reserve(*entry, t),
            None => {
                day.assigned.push(*entry);
                day.take();
            }
        }
        if class == 2 {
            new_starts[seq as usize] += 1;
        }
        if let Some(c) = domain_counts.get_mut(entry.domain as usize) {
            *c += 1;
        }
    }

    // ---- 5. time each mailbox's sends ----------------------------------------------------------
    for day in &mut days {
        for (entry, t) in &day.placed {
            push_send(&mut out, entry, day, *t);
        }
        if day.assigned.is_empty() {
            continue;
        }
        let day_seed = mix(
            day.tie,
            u64::try_from(day.local_date.num_days_from_ce()).unwrap_or(0),
        );
        let seed = mix(day_seed, u64::from(day.used));
        let rest: Vec<Entry> = day.assigned.clone();
        let mut occupied: Vec<i64> = day.reserved.clone();
        let points = spread_over_runs(
            &day.unreserved,
            &day.runs,
            rest.len(),
            day.gap,
            config.jitter,
            seed,
        );
        // Priority order takes points in time order; an item not yet due at a point waits
        // for a later one. `first` skips the placed front of the list.
        let mut placed = vec![false; rest.len()];
        let mut first = 0;
        for &t in &points {
            while first < rest.len() && placed[first] {
                first += 1;
            }
            if let Some(j) = (first..rest.len()).find(|&j| !placed[j] && rest[j].earliest <= t) {
                placed[j] = true;
                occupied.push(t);
                push_send(&mut out, &rest[j], day, t);
            }
        }
        // Items no point suited (due later than the points): the first free instant after
        // their due time, away from every other send.
        for (j, entry) in rest.iter().enumerate() {
            if placed[j] {
                continue;
            }
            occupied.sort_unstable();
            let usable = carve(&day.free, &occupied, day.gap);
            let slot = usable.iter().find_map(|&(s, e)| {
                let t = s.max(entry.earliest);
                (t < e).then_some(t)
            });
            if let Some(t) = slot {
                occupied.push(t);
                push_send(&mut out, entry, day, t);
            } else {
                day.used -= 1;
                out.deferred.push(Deferred {
                    index: entry.idx as usize,
                    enrollment: entry.enrollment,
                    reason: DeferralReason::NoCapacity,
                    not_before: Some(instant(
                        day.next_day_open.unwrap_or(now_s + 3600).max(now_s + 1),
                    )),
                });
            }
        }
    }

    // ---- 6. reservations -------------------------------------------------------------------------
    let mut per_day: HashMap<(MailboxId, NaiveDate), (u32, u32)> = HashMap::default();
    for s in &out.sends {
        let e = per_day
            .entry((s.mailbox, s.local_date))
            .or_insert((0, s.limit));
        e.0 += 1;
    }
    let mut reservations: Vec<Reservation> = per_day
        .into_iter()
        .map(|((mailbox, local_date), (count, limit))| Reservation {
            mailbox,
            local_date,
            count,
            limit,
        })
        .collect();
    reservations.sort_unstable_by_key(|r| (r.mailbox, r.local_date));
    out.reservations = reservations;
    out.sends.sort_unstable_by_key(|s| (s.at, s.mailbox));
    out
}

fn recipient_list<'h>(
    hours: &'h [RecipientHours],
    hours_index: &HashMap<(u32, Tz), u32>,
    item_hours: u32,
    seq: u32,
    mailbox_zone: Tz,
) -> Option<&'h [(i64, i64)]> {
    let h = if item_hours == NONE {
        return None;
    } else if item_hours == NONE - 1 {
        *hours_index.get(&(seq, mailbox_zone))?
    } else {
        item_hours
    };
    hours.get(h as usize).map(|r| r.open.as_slice())
}

fn next_recipient_open(
    hours: &[RecipientHours],
    hours_index: &HashMap<(u32, Tz), u32>,
    item_hours: u32,
    seq: u32,
    day: &Day,
    now_s: i64,
) -> i64 {
    let from = day.next_day_open.unwrap_or(now_s + 86_400);
    let rec = recipient_list(hours, hours_index, item_hours, seq, day.zone)
        .and_then(|list| list.iter().find(|&&(_, e)| e > now_s).map(|&(s, _)| s));
    rec.map_or(from, |r| r.max(now_s).min(from.max(r)))
}

fn push_send(out: &mut Plan, entry: &Entry, day: &Day, t: i64) {
    out.sends.push(PlannedSend {
        index: entry.idx as usize,
        enrollment: entry.enrollment,
        step: entry.step,
        mailbox: day.id,
        at: instant(t),
        local_date: day.local_date,
        limit: day.limit,
    });
}
