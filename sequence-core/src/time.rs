//! Time rules: local times, weekly sending windows in IANA zones, local calendar days,
//! step delays (including business days and holidays) and warm-up limits.
//!
//! Every function here is pure: instants are passed in, nothing reads a clock.
//!
//! Semantics (shared with `scenario-format.md`):
//! * An instant is inside a [`SendWindow`] when its local weekday (in the zone given) is in
//!   the window's days and `start <= local time < end`.
//! * A window whose `start` is later than its `end` crosses midnight and belongs to the day
//!   it opens on (a Friday 22:00-06:00 window is open Friday 22:00 to Saturday 06:00).
//! * `end` may be 24:00. `start == end` is invalid.
//! * Local times that do not exist (spring forward) are never inside; local times that occur
//!   twice (fall back) are inside both times. Both follow from mapping each UTC instant to its
//!   one local time.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Seconds in a (non-DST) day: the unit of local-time arithmetic.
const DAY: i64 = 86_400;
/// Longest step between two probes of the UTC offset when looking for a transition. Two
/// offset changes closer together than this that return to the same offset would be missed;
/// no zone in the tz database does that.
const OFFSET_PROBE_STEP: i64 = 6 * 3600;
/// Most offset segments walked by one `next_open`/`open_until` call (real zones need ≤ 3).
const MAX_SEGMENTS: usize = 64;
/// Margin around a local time, in seconds, wide enough to hold every UTC offset.
const OFFSET_MARGIN: i64 = 2 * DAY;

/// The UTC offset of `tz` at the UTC instant `utc`, in seconds.
fn offset_secs(tz: Tz, utc: &NaiveDateTime) -> i64 {
    i64::from(tz.offset_from_utc_datetime(utc).fix().local_minus_utc())
}

/// The UTC offset of `tz` at UTC second `ts`; `None` outside chrono's range.
fn offset_at(tz: Tz, ts: i64) -> Option<i64> {
    DateTime::from_timestamp(ts, 0).map(|dt| offset_secs(tz, &dt.naive_utc()))
}

/// Local wall-clock seconds since 1970-01-01T00:00 (local) of `at` in `tz`, seconds precision.
fn local_secs(tz: Tz, at: DateTime<Utc>) -> i64 {
    at.timestamp()
        .saturating_add(offset_secs(tz, &at.naive_utc()))
}

/// Weekday index (0 = Monday) of the local day number `day` (days since 1970-01-01, a
/// Thursday).
fn weekday_index(day: i64) -> u8 {
    // rem_euclid(7) is in 0..7, so the cast cannot truncate.
    (day + 3).rem_euclid(7) as u8
}

/// The first UTC second in `(from, until]` at which the offset of `tz` differs from its
/// offset at `from`, if any.
fn first_offset_change(tz: Tz, from: i64, until: i64) -> Option<i64> {
    let base = offset_at(tz, from)?;
    let mut lo = from;
    while lo < until {
        let probe = lo.saturating_add(OFFSET_PROBE_STEP).min(until);
        if offset_at(tz, probe).is_some_and(|off| off != base) {
            // offset(lo) == base, offset(hi) != base: bisect to the changing second.
            let mut hi = probe;
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == Some(base) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            return Some(hi);
        }
        lo = probe;
    }
    None
}

/// The first UTC instant whose local time in `tz` is at or after the non-existent local time
/// `local` (the end of the gap it falls in). `None` at the edges of chrono's range.
fn gap_end(tz: Tz, local: &NaiveDateTime) -> Option<DateTime<Utc>> {
    let target = local.and_utc().timestamp();
    let reaches = |ts: i64| offset_at(tz, ts).map(|off| ts.saturating_add(off) >= target);
    let mut lo = target.checked_sub(OFFSET_MARGIN)?;
    let mut hi = target.checked_add(OFFSET_MARGIN)?;
    if reaches(lo)? || !reaches(hi)? {
        return None;
    }
    // reaches(lo) is false and reaches(hi) is true; keep it that way while bisecting.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The earliest UTC instant at local wall time `local` in `tz`: the instant itself when it
/// occurs once, the earlier one when it occurs twice (fall back), and the first instant after
/// the gap when it does not occur (spring forward). `None` only at the edges of chrono's
/// range.
#[must_use]
pub fn earliest_instant_at_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, &local),
    }
}

/// A time of day in minutes since local midnight, `00:00` to `24:00` inclusive.
///
/// Serialized as `"HH:MM"`. `24:00` is only meaningful as a window end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime(u16);

/// Why a local time, window or schedule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text is not `HH:MM` with `00 <= HH <= 24`, `00 <= MM <= 59`, and not past `24:00`.
    #[error("invalid local time {0:?}: expected \"HH:MM\" between 00:00 and 24:00")]
    InvalidLocalTime(String),
    /// A weekday name other than `mon` .. `sun`.
    #[error("invalid weekday {0:?}: expected one of mon, tue, wed, thu, fri, sat, sun")]
    InvalidWeekday(String),
    /// A window whose start equals its end.
    #[error("window start and end are both {0}: a window must not be empty")]
    EmptyWindow(LocalTime),
    /// A window that starts at 24:00.
    #[error("window start 24:00 is not a time of day")]
    StartAtMidnightEnd,
    /// An IANA time zone name that chrono-tz does not know.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
}

impl LocalTime {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: LocalTime = LocalTime(0);
    /// `24:00`, the end of the day.
    pub const END_OF_DAY: LocalTime = LocalTime(24 * 60);

    /// A local time from hours and minutes; `None` when out of range.
    #[must_use]
    pub fn from_hm(hour: u32, minute: u32) -> Option<Self> {
        if hour > 24 || minute > 59 {
            return None;
        }
        Self::from_minutes(hour * 60 + minute)
    }

    /// A local time from minutes since midnight; `None` past `24:00` (1440).
    #[must_use]
    pub fn from_minutes(minutes: u32) -> Option<Self> {
        if minutes > 24 * 60 {
            return None;
        }
        u16::try_from(minutes).ok().map(LocalTime)
    }

    /// Seconds since local midnight (0..=86400).
    fn seconds(self) -> i64 {
        i64::from(self.0) * 60
    }

    /// Minutes since local midnight (0..=1440).
    #[must_use]
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for LocalTime {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || TimeError::InvalidLocalTime(s.to_owned());
        let bytes = s.as_bytes();
        let [h1, h2, b':', m1, m2] = bytes else {
            return Err(invalid());
        };
        if ![h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let digit = |b: &u8| u32::from(b - b'0');
        let hour = digit(h1) * 10 + digit(h2);
        let minute = digit(m1) * 10 + digit(m2);
        Self::from_hm(hour, minute).ok_or_else(invalid)
    }
}

impl TryFrom<String> for LocalTime {
    type Error = TimeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<LocalTime> for String {
    fn from(value: LocalTime) -> Self {
        value.to_string()
    }
}

/// A set of weekdays, serialized as a list of `"mon"` .. `"sun"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    /// No day.
    pub const EMPTY: WeekdaySet = WeekdaySet(0);
    /// Monday to Friday.
    pub const WEEKDAYS: WeekdaySet = WeekdaySet(0b001_1111);
    /// Every day.
    pub const ALL: WeekdaySet = WeekdaySet(0b111_1111);

    /// A set from the days given.
    #[must_use]
    pub fn from_days(days: &[Weekday]) -> Self {
        WeekdaySet(
            days.iter()
                .fold(0, |bits, day| bits | (1 << day.num_days_from_monday())),
        )
    }
    /// Whether `day` is in the set.
    #[must_use]
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
    /// Whether the weekday with index `index` (0 = Monday) is in the set.
    fn contains_index(self, index: u8) -> bool {
        self.0 & (1 << index) != 0
    }
    /// The days in the set, Monday first.
    pub fn iter(self) -> impl Iterator<Item = Weekday> {
        WEEKDAYS_FROM_MONDAY
            .into_iter()
            .filter(move |day| self.contains(*day))
    }
    /// Whether the set has no day.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The weekdays in set order, with their serialized names.
const WEEKDAYS_FROM_MONDAY: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];
/// The serialized names of the weekdays, Monday first.
const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl TryFrom<Vec<String>> for WeekdaySet {
    type Error = TimeError;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        let mut bits = 0u8;
        for name in &value {
            let Some(index) = WEEKDAY_NAMES
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
            else {
                return Err(TimeError::InvalidWeekday(name.clone()));
            };
            bits |= 1 << index;
        }
        Ok(WeekdaySet(bits))
    }
}

impl From<WeekdaySet> for Vec<String> {
    fn from(value: WeekdaySet) -> Self {
        WEEKDAY_NAMES
            .iter()
            .enumerate()
            .filter(|(index, _)| value.0 & (1 << index) != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect()
    }
}

/// One weekly sending window: on each of `days`, from `start` (inclusive) to `end`
/// (exclusive), local time. When `start > end` it crosses midnight into the next day.
///
/// Deserializing checks the window like [`SendWindow::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawSendWindow")]
pub struct SendWindow {
    /// The days on which the window opens.
    pub days: WeekdaySet,
    /// Opening time (inclusive).
    pub start: LocalTime,
    /// Closing time (exclusive); may be `24:00`, may be earlier than `start`.
    pub end: LocalTime,
}

/// The unchecked form of a [`SendWindow`], as it is written in JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendWindow {
    days: WeekdaySet,
    start: LocalTime,
    end: LocalTime,
}

impl TryFrom<RawSendWindow> for SendWindow {
    type Error = TimeError;
    fn try_from(raw: RawSendWindow) -> Result<Self, Self::Error> {
        SendWindow::new(raw.days, raw.start, raw.end)
    }
}

impl SendWindow {
    /// A checked window: `start != end` and `start < 24:00`.
    ///
    /// # Errors
    /// [`TimeError::EmptyWindow`] or [`TimeError::StartAtMidnightEnd`].
    pub fn new(days: WeekdaySet, start: LocalTime, end: LocalTime) -> Result<Self, TimeError> {
        if start == LocalTime::END_OF_DAY {
            return Err(TimeError::StartAtMidnightEnd);
        }
        if start == end {
            return Err(TimeError::EmptyWindow(start));
        }
        Ok(Self { days, start, end })
    }

    /// Whether the window crosses midnight (`start > end`).
    #[must_use]
    pub fn crosses_midnight(&self) -> bool {
        self.start > self.end
    }

    /// Whether `at` is inside this window, in zone `tz`.
    #[must_use]
    pub fn contains(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        self.contains_local_secs(local_secs(tz, at))
    }

    /// Whether the local wall-clock time `local` (to the second) is inside this
    /// window.
    #[must_use]
    pub fn contains_local(&self, local: NaiveDateTime) -> bool {
        self.contains_local_secs(local.and_utc().timestamp())
    }

    /// [`SendWindow::contains_local`] on local seconds since 1970-01-01T00:00.
    fn contains_local_secs(&self, local: i64) -> bool {
        let day = local.div_euclid(DAY);
        let second = local.rem_euclid(DAY);
        let weekday = weekday_index(day);
        if self.crosses_midnight() {
            (self.days.contains_index(weekday) && second >= self.start.seconds())
                || (self.days.contains_index((weekday + 6) % 7) && second < self.end.seconds())
        } else {
            self.days.contains_index(weekday)
                && self.start.seconds() <= second
                && second < self.end.seconds()
        }
    }

    /// The local interval `[start, end)` (seconds since 1970-01-01T00:00 local) during which
    /// the window is open when it opens on local day number `day`; `None` when it does not
    /// open that day. Agrees with [`SendWindow::contains_local_secs`].
    fn interval_on(&self, day: i64) -> Option<(i64, i64)> {
        if !self.days.contains_index(weekday_index(day)) {
            return None;
        }
        let midnight = day.checked_mul(DAY)?;
        let start = midnight.checked_add(self.start.seconds())?;
        let mut end = midnight.checked_add(self.end.seconds())?;
        if self.crosses_midnight() {
            end = end.checked_add(DAY)?;
        }
        Some((start, end))
    }
}

/// The first local second at or after `local` inside any of `windows`; `None` when none of
/// them ever opens.
fn next_open_local(windows: &[SendWindow], local: i64) -> Option<i64> {
    let day = local.div_euclid(DAY);
    let mut best: Option<i64> = None;
    for window in windows {
        // Intervals of one window are ordered, so its first one ending after `local` is its
        // earliest candidate. A window opening on any weekday is met within 8 days.
        for d in day.saturating_sub(1)..=day.saturating_add(7) {
            if let Some((start, end)) = window.interval_on(d) {
                if end > local {
                    let candidate = start.max(local);
                    best = Some(best.map_or(candidate, |b| b.min(candidate)));
                    break;
                }
            }
        }
    }
    best
}

/// The first local second after the open local second `local` that is outside all of
/// `windows`, skipping over adjacent and overlapping windows; `None` when the windows cover
/// the whole week (they never close). `Some(local)` when `local` is not open.
fn open_until_local(windows: &[SendWindow], local: i64) -> Option<i64> {
    let mut current = local;
    loop {
        if current.saturating_sub(local) >= 7 * DAY {
            return None;
        }
        let day = current.div_euclid(DAY);
        let mut furthest: Option<i64> = None;
        for window in windows {
            // An interval holding `current` opens on its day or the day before.
            for d in [day.saturating_sub(1), day] {
                if let Some((start, end)) = window.interval_on(d) {
                    if start <= current && current < end {
                        furthest = Some(furthest.map_or(end, |f| f.max(end)));
                    }
                }
            }
        }
        match furthest {
            Some(end) => current = end,
            None => return Some(current),
        }
    }
}

/// When sending is allowed in a week: always, or inside any of a list of windows.
///
/// `WeeklySchedule::always()` is what a missing `windows` key means; an empty list of
/// windows is never open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WeeklySchedule {
    windows: Option<Vec<SendWindow>>,
}

impl Default for WeeklySchedule {
    fn default() -> Self {
        Self::always()
    }
}

impl WeeklySchedule {
    /// Open at every instant.
    #[must_use]
    pub fn always() -> Self {
        Self { windows: None }
    }

    /// Open inside any of `windows` (never, when empty).
    #[must_use]
    pub fn windows(windows: Vec<SendWindow>) -> Self {
        Self {
            windows: Some(windows),
        }
    }

    /// Whether this schedule is open at every instant.
    #[must_use]
    pub fn is_always_open(&self) -> bool {
        self.windows.is_none()
    }

    /// The windows, or `None` for an always-open schedule.
    #[must_use]
    pub fn window_list(&self) -> Option<&[SendWindow]> {
        self.windows.as_deref()
    }

    /// Whether `at` is inside the schedule in zone `tz`.
    #[must_use]
    pub fn contains(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        match &self.windows {
            None => true,
            Some(windows) => {
                let local = local_secs(tz, at);
                windows.iter().any(|w| w.contains_local_secs(local))
            }
        }
    }

    /// Whether the local wall-clock time `local` is inside the schedule.
    #[must_use]
    pub fn contains_local(&self, local: NaiveDateTime) -> bool {
        match &self.windows {
            None => true,
            Some(windows) => windows.iter().any(|w| w.contains_local(local)),
        }
    }

    /// The first instant at or after `at` at which the schedule is open; `None` when it is
    /// never open.
    ///
    /// Exact to the second, across DST changes: the UTC time line is walked one UTC-offset
    /// segment at a time, and inside a segment local time is UTC plus a constant.
    #[must_use]
    pub fn next_open(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(windows) = &self.windows else {
            return Some(at);
        };
        let mut now = at.timestamp();
        for _ in 0..MAX_SEGMENTS {
            let offset = offset_at(tz, now)?;
            let local_open = next_open_local(windows, now.saturating_add(offset))?;
            let candidate = local_open.saturating_sub(offset);
            if candidate <= now {
                // Open in the second of `now`: at `at` itself (the first pass) or at the
                // transition instant `now`.
                return if now == at.timestamp() {
                    Some(at)
                } else {
                    DateTime::from_timestamp(now, 0)
                };
            }
            match first_offset_change(tz, now, candidate) {
                // The local clock jumps before the candidate: look again from the jump.
                Some(change) => now = change,
                None => return DateTime::from_timestamp(candidate, 0),
            }
        }
        None
    }

    /// When the schedule is open at `at`: the first instant after `at` at which it is closed
    /// (`None` for an always-open schedule). When it is closed at `at`: `Some(at)`.
    ///
    /// Adjacent and overlapping windows count as one open stretch, also when a DST change
    /// moves the local clock from one window into another.
    #[must_use]
    pub fn open_until(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let Some(windows) = &self.windows else {
            return None;
        };
        if !self.contains(tz, at) {
            return Some(at);
        }
        let mut now = at.timestamp();
        for _ in 0..MAX_SEGMENTS {
            let offset = offset_at(tz, now)?;
            // `None`: every local time is open, so no instant is ever closed.
            let local_close = open_until_local(windows, now.saturating_add(offset))?;
            let candidate = local_close.saturating_sub(offset);
            match first_offset_change(tz, now, candidate) {
                Some(change) => {
                    let change_at = DateTime::from_timestamp(change, 0)?;
                    if !self.contains(tz, change_at) {
                        return Some(change_at);
                    }
                    now = change;
                }
                None => return DateTime::from_timestamp(candidate, 0),
            }
        }
        None
    }

    /// The maximal open intervals `[start, end)` that intersect `[from, to)`, clipped to it,
    /// in order.
    #[must_use]
    pub fn open_intervals(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut intervals = Vec::new();
        if from >= to {
            return intervals;
        }
        if self.is_always_open() {
            intervals.push((from, to));
            return intervals;
        }
        let mut cursor = from;
        while cursor < to {
            let Some(start) = self.next_open(tz, cursor) else {
                break;
            };
            if start >= to {
                break;
            }
            let end = self.open_until(tz, start).map_or(to, |end| end.min(to));
            if end <= start {
                // Cannot happen (`start` is open, so it closes later); guards the loop.
                break;
            }
            intervals.push((start, end));
            cursor = end;
        }
        intervals
    }
}

/// The local calendar date of `at` in zone `tz`.
#[must_use]
pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    let local = local_secs(tz, at);
    DateTime::from_timestamp(local, 0).map_or(
        if local < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        },
        |dt| dt.date_naive(),
    )
}

/// The instants `[start, end)` of local calendar day `date` in zone `tz`. On a day the
/// offset changes the day is that much shorter or longer (23 or 25 hours in most zones,
/// 23.5 or 24.5 on Lord Howe); where local midnight does not exist, the day starts at the
/// first instant of that date.
#[must_use]
pub fn local_day_bounds(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let first_instant = |d: NaiveDate| earliest_instant_at_local(tz, d.and_time(NaiveTime::MIN));
    let start = first_instant(date).unwrap_or(if date.year() < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    let end = date
        .succ_opt()
        .and_then(first_instant)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (start, end.max(start))
}

/// Parse an IANA zone name.
///
/// # Errors
/// [`TimeError::UnknownTimeZone`] for a name chrono-tz does not know.
pub fn parse_time_zone(name: &str) -> Result<Tz, TimeError> {
    name.parse::<Tz>()
        .map_err(|_| TimeError::UnknownTimeZone(name.to_owned()))
}

/// The unit of a step delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DelayUnit {
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days of 24 hours.
    Days,
    /// Local business days (Monday to Friday, skipping holidays) in a given zone.
    BusinessDays,
}

/// How long after the previous step (or enrollment, for step 0) a step becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    /// How many units; never negative.
    pub amount: u32,
    /// The unit.
    pub unit: DelayUnit,
}

impl Delay {
    /// No delay.
    pub const ZERO: Delay = Delay {
        amount: 0,
        unit: DelayUnit::Minutes,
    };

    /// A delay of `amount` units.
    #[must_use]
    pub fn new(amount: u32, unit: DelayUnit) -> Self {
        Self { amount, unit }
    }

    /// The earliest instant the step may go, when the previous one happened at `from`.
    ///
    /// Minutes, hours and days are fixed lengths (a day is 24 h). Business days move to the
    /// same local time `amount` business days later in `tz` (weekends and `holidays`
    /// skipped; a local time that does not exist that day moves to the first instant after
    /// the gap). Zero business days is `from` itself.
    #[must_use]
    pub fn after(&self, from: DateTime<Utc>, tz: Tz, holidays: &HolidayCalendar) -> DateTime<Utc> {
        let amount = i64::from(self.amount);
        let fixed_seconds = match self.unit {
            DelayUnit::Minutes => amount * 60,
            DelayUnit::Hours => amount * 3600,
            DelayUnit::Days => amount * DAY,
            DelayUnit::BusinessDays => return business_days_after(from, self.amount, tz, holidays),
        };
        chrono::TimeDelta::try_seconds(fixed_seconds)
            .and_then(|delta| from.checked_add_signed(delta))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// A set of local dates on which nothing is sent and which business days skip.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HolidayCalendar {
    dates: BTreeSet<NaiveDate>,
}

impl HolidayCalendar {
    /// A calendar from the dates given.
    #[must_use]
    pub fn new(dates: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self {
            dates: dates.into_iter().collect(),
        }
    }
    /// Whether `date` is a holiday.
    #[must_use]
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.dates.contains(&date)
    }
    /// Whether the calendar has no date.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }
    /// Whether `date` is Monday to Friday and not a holiday.
    #[must_use]
    pub fn is_business_day(&self, date: NaiveDate) -> bool {
        date.weekday().num_days_from_monday() < 5 && !self.contains(date)
    }

    /// The date `amount` business days after `date` (`date` itself for 0); `None` past the
    /// last representable date.
    #[must_use]
    pub fn add_business_days(&self, date: NaiveDate, amount: u32) -> Option<NaiveDate> {
        let mut remaining = u64::from(amount);
        let mut date = date;
        while remaining > 0 {
            if remaining > 10 {
                // Jump whole weeks (5 weekdays each), then take back the weekday holidays
                // inside the jump; stop 5 short so the tail is walked day by day.
                let weeks = (remaining - 5) / 5;
                let end = date.checked_add_days(Days::new(weeks * 7))?;
                let holidays = self
                    .dates
                    .range((Bound::Excluded(date), Bound::Included(end)))
                    .filter(|d| d.weekday().num_days_from_monday() < 5)
                    .count();
                let holidays = u64::try_from(holidays).unwrap_or(u64::MAX);
                remaining -= (weeks * 5).saturating_sub(holidays);
                date = end;
            } else {
                date = date.succ_opt()?;
                if self.is_business_day(date) {
                    remaining -= 1;
                }
            }
        }
        Some(date)
    }
}

/// [`Delay::after`] for business days.
fn business_days_after(
    from: DateTime<Utc>,
    amount: u32,
    tz: Tz,
    holidays: &HolidayCalendar,
) -> DateTime<Utc> {
    if amount == 0 {
        return from;
    }
    let Some(local) = DateTime::from_timestamp(local_secs(tz, from), from.timestamp_subsec_nanos())
        .map(|dt| dt.naive_utc())
    else {
        return DateTime::<Utc>::MAX_UTC;
    };
    holidays
        .add_business_days(local.date(), amount)
        .and_then(|date| earliest_instant_at_local(tz, date.and_time(local.time())))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A warm-up ramp for a new mailbox: on local day `since + k` the daily limit is
/// `min(daily_limit, start + increment * k)`; before `since` it is `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmUp {
    /// The limit on the first day.
    pub start: u32,
    /// How much the limit grows each day.
    pub increment: u32,
    /// The first day of the ramp (mailbox-local date).
    pub since: NaiveDate,
}

/// The daily limit in force on local `date`, with an optional warm-up.
#[must_use]
pub fn effective_daily_limit(daily_limit: u32, warmup: Option<&WarmUp>, date: NaiveDate) -> u32 {
    let Some(warmup) = warmup else {
        return daily_limit;
    };
    let days_in = date.signed_duration_since(warmup.since).num_days();
    let ramp = if days_in <= 0 {
        warmup.start
    } else {
        let k = u32::try_from(days_in).unwrap_or(u32::MAX);
        warmup
            .start
            .saturating_add(warmup.increment.saturating_mul(k))
    };
    daily_limit.min(ramp)
}
