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
//!    already planned, later new-enrollment send when the day has no room for it, and the
//!    slot of one planned before the instant it was given when it has (that send is
//!    pre-empted and planned again), so no new start goes out while a follow-up waits.
//! 5. Everything else is **deferred** with a typed reason and the earliest instant at which
//!    planning again could change the answer; enrollments waiting for a full pool are looked
//!    at again when the first pool mailbox that can take them opens.
//! 6. A sequence whose every active pool mailbox is **full** for its local day (at its limit,
//!    or with no open time left), and which has a new start the plan found no room for (or
//!    more due than it was given: [`SequencePolicy::more_due`]), gets a [`PoolFull`]: no new
//!    start of it can go before the first of them opens again, which a store records once
//!    as a [`PoolWait`](sequence_core::store::PoolWait) instead of a deferral per enrollment.
//!    Likewise a mailbox that a sticky enrollment found no room on, and that is full with no
//!    new start left for a follow-up to take over, gets a [`MailboxFull`]: none of the
//!    enrollments sticky to it can go before it opens again (a
//!    [`MailboxWait`](sequence_core::store::MailboxWait)).
//! 7. With a **horizon** ([`PlannerConfig::horizon`], an hour by default), a plan that leaves
//!    a mailbox's day full keeps only the sends within the horizon of the mailbox's first
//!    send, follow-ups and new starts alike, when waits hold back everything it cuts: the
//!    follow-ups sticky to the mailbox by its wait ([`MailboxFull::holds_due_by`]: only
//!    those due when the plan was made), the new starts by their pool's ([`PoolFull`]).
//!    Those waits, and the deferrals waiting for room on that mailbox, end at the cutoff,
//!    when the next plan spreads the rest of the day's capacity over the time still open.
//!    Until then the mailbox takes no new start ([`MailboxSnapshot::held_until`]), and a
//!    plan made meanwhile is cut at the wait's end. A tick over a backlog writes an hour of
//!    sends per full mailbox, not a day's, and no follow-up stays planned past a cut for a
//!    new start to go before (rule 8). A plan that pre-empts a send is kept whole.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap as HashMap;
use serde::{Deserialize, Serialize};

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{DailyCounts, MailboxSnapshot};
use sequence_core::time::WeeklySchedule;

mod assign;
mod day;
mod draft;
mod horizon;
mod hours;
mod intervals;
mod order;
mod outlook;
mod spread;
mod time;
mod wait;

use assign::Caps;
use day::Day;
use draft::Draft;
use hours::Hours;
pub use outlook::MailboxOutlook;

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
    /// How far past a mailbox's first send a plan that fills the mailbox's day keeps its
    /// sends (`None`: the whole day). The rest are planned when that stretch ends, into the
    /// time then still open, so a tick over a backlog writes an hour of sends per full
    /// mailbox rather than a day's (step 7 of the module docs).
    #[serde(default = "default_horizon")]
    pub horizon: Option<Duration>,
}

/// The default [`PlannerConfig::horizon`]: an hour.
fn default_horizon() -> Option<Duration> {
    Some(Duration::hours(1))
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            jitter: 0.6,
            recheck_after: Duration::minutes(15),
            horizon: default_horizon(),
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

    /// These settings with [`PlannerConfig::horizon`] set to `horizon` (`None`: plans keep
    /// every send of the day).
    #[must_use]
    pub fn with_horizon(self, horizon: Option<Duration>) -> Self {
        Self { horizon, ..self }
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
    /// Whether more of its enrollments that go to the pool are due than the plan is given
    /// (the due read was bounded by the pool's room): if the plan leaves the pool full, the
    /// sequence waits for it (step 6) as if one of them had found no room.
    #[serde(default)]
    pub more_due: bool,
}

impl From<&Sequence> for SequencePolicy {
    fn from(s: &Sequence) -> Self {
        Self {
            id: s.id,
            active: s.status() == SequenceStatus::Active,
            pool: s.mailbox_pool.clone(),
            recipient_windows: s.recipient_windows.clone(),
            new_enrollments_per_day: s.new_enrollments_per_day,
            per_domain_daily_cap: s.per_domain_daily_cap,
            more_due: false,
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
    /// The mailboxes with more enrollments sticky to them due than the plan is given (the
    /// due read was bounded by their room): if the plan leaves one full, it waits (step 6)
    /// as if one of them had found no room.
    pub more_due_on: &'a [MailboxId],
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

/// A sequence whose pool is full: no mailbox of it can take a new start before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFull {
    /// The sequence.
    pub sequence: SequenceId,
    /// When the first active mailbox of its pool opens again.
    pub until: DateTime<Utc>,
}

/// A mailbox full for its current local day: none of the enrollments sticky to it can go
/// before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxFull {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// When it opens again (or, when the planning horizon cut its plan, when the cut begins).
    pub until: DateTime<Utc>,
    /// When set, only the enrollments due at or before this instant wait (those the plan
    /// saw, whose sends the planning horizon cut); one that comes due later is planned, and
    /// may take the slot of a new start planned before the cut. `None`: all of them wait.
    #[serde(default)]
    pub holds_due_by: Option<DateTime<Utc>>,
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
    /// Sequences whose pool this plan leaves full, each found short of room for at least
    /// one of its enrollments or with more due than the plan was given (step 6).
    pub pools_full: Vec<PoolFull>,
    /// Mailboxes this plan leaves full, each found short of room for at least one of the
    /// enrollments sticky to it (step 6).
    #[serde(default)]
    pub mailboxes_full: Vec<MailboxFull>,
}

/// Make a plan. See the [module docs](self) for what it decides and why.
///
/// A caller that plans again and again (the engine does, every tick) should keep a
/// [`PlanScratch`] and call [`plan_with`]: the answer is the same.
#[must_use]
pub fn plan(now: DateTime<Utc>, input: &PlanningInput<'_>, config: &PlannerConfig) -> Plan {
    plan_with(&mut PlanScratch::default(), now, input, config)
}

/// [`plan`], with the working memory of `scratch`, which keeps it for the next plan.
#[must_use]
pub fn plan_with(
    scratch: &mut PlanScratch,
    now: DateTime<Utc>,
    input: &PlanningInput<'_>,
    config: &PlannerConfig,
) -> Plan {
    let mut planner = Planner::new(now, *input, config);
    planner.measure_days();
    let order = planner.order(&mut scratch.order);
    let (mut ran_out, mut sticky_ran_out) = planner.assign(&order);
    scratch.order.recycle(order);
    planner.time();
    sticky_ran_out.extend(
        input
            .more_due_on
            .iter()
            .filter_map(|m| planner.mailbox_index.get(m).copied()),
    );
    sticky_ran_out.sort_unstable();
    sticky_ran_out.dedup();
    planner.wait_for_full_mailboxes(&sticky_ran_out);
    ran_out.extend(
        (0..input.sequences.len())
            .filter(|&i| input.sequences.get(i).is_some_and(|s| s.more_due))
            .filter_map(|i| u32::try_from(i).ok()),
    );
    ran_out.sort_unstable();
    ran_out.dedup();
    planner.wait_for_full_pools(&ran_out);
    // 5. Each phase has deferred what it could not place as it met it (`Draft::defer`).
    let left = config.horizon.map(|_| planner.days_left());
    let mut plan = planner.into_plan();
    if let (Some(horizon), Some(left)) = (config.horizon, left) {
        horizon::keep_within(&mut plan, input, now, horizon, &left);
    }
    plan
}

/// Working memory the planner keeps from one plan to the next (see [`plan_with`]).
///
/// Planning 50,000 due enrollments sorts them through a few megabytes of buffers. Given
/// back to the allocator after each plan, that memory is returned to the system and
/// faulted in again by the next one, which costs more than the sorting; kept here, it is
/// reused. It holds no state that changes an answer.
#[derive(Default)]
pub struct PlanScratch {
    order: order::OrderScratch,
}

impl std::fmt::Debug for PlanScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanScratch").finish_non_exhaustive()
    }
}

/// An index that points at nothing.
const NONE: u32 = u32::MAX;

/// What the phases of [`plan`] share: the input, each mailbox's current local day, the
/// contacts' business hours met so far, the counts the caps read, and the plan so far.
struct Planner<'a> {
    now: DateTime<Utc>,
    /// `now` in seconds since the epoch, as every instant below.
    now_s: i64,
    input: PlanningInput<'a>,
    config: &'a PlannerConfig,
    /// When an enrollment that waits for what the planner cannot foresee is looked at again.
    recheck: i64,
    /// Each mailbox's current local day, in the order of the snapshots (a mailbox's index
    /// among them names it below).
    days: Vec<Day>,
    /// The index of each mailbox among `days`.
    mailbox_index: HashMap<MailboxId, u32>,
    hours: Hours<'a>,
    caps: Caps,
    out: Draft,
}

impl<'a> Planner<'a> {
    /// A planner at `now`, before its first phase.
    fn new(now: DateTime<Utc>, input: PlanningInput<'a>, config: &'a PlannerConfig) -> Self {
        let now_s = secs(now);
        Self {
            now,
            now_s,
            input,
            config,
            recheck: now_s + config.recheck_after.num_seconds().max(1),
            days: Vec::with_capacity(input.mailboxes.len()),
            mailbox_index: HashMap::with_capacity_and_hasher(
                input.mailboxes.len(),
                rustc_hash::FxBuildHasher,
            ),
            hours: Hours::new(now, input.sequences),
            caps: Caps::new(now, &input),
            out: Draft::new(now_s, input.due.len()),
        }
    }

    /// The plan, once every phase has run: its sends in time order, with the capacity they
    /// reserve.
    fn into_plan(self) -> Plan {
        self.out.finish()
    }
}

/// An instant in seconds since the epoch.
fn secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The instant `s` seconds after the epoch (the latest one there is when out of range).
fn instant(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
