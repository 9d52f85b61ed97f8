//! The time rules of `sequence_core::time`: weekly windows in IANA zones across DST, local
//! calendar days, step delays (business days and holidays), warm-up limits and the
//! serialized forms of local times, weekday sets and windows.
//!
//! The properties compare the code with brute-force oracles that do not use it: an instant
//! is converted with chrono-tz (`at.with_timezone(&tz)`) and the rule of
//! `scenario-format.md` ("inside when its local weekday is in `days` and
//! `start <= local time < end`; a window crossing midnight belongs to the day it opens on")
//! is applied to the local weekday and minute of day. Every zone used has whole-minute UTC
//! offsets in 2024-2027 and windows are on minute boundaries, so whether a schedule is open
//! is constant over each UTC minute `[60k, 60k + 60)`: scanning the query instant and then
//! every minute boundary finds every change (and the scans also check the seconds just
//! before each answer).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod time_support;

use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use sequence_core::time::{
    effective_daily_limit, local_date, local_day_bounds, Delay, DelayUnit, HolidayCalendar,
    LocalTime, SendWindow, WarmUp, WeeklySchedule,
};
use time_support::{date, walk_business_days, weekday_set};

// ---------------------------------------------------------------------------------------
// Zones, instants and the oracle
// ---------------------------------------------------------------------------------------

/// The zones the properties draw from: DST in both hemispheres, 30-minute DST (Lord Howe),
/// odd offsets (+05:45, +12:45/+13:45, -03:30/-02:30), UTC+14 and UTC-12, DST changes at
/// midnight (Santiago, Havana, Cairo) and on weekdays (Cairo, Gaza), a two-hour DST (Troll,
/// 22- and 26-hour days), Ramadan changes (Casablanca, Gaza) and zones without DST.
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Pacific/Auckland",
    "Australia/Sydney",
    "America/St_Johns",
    "Etc/GMT+12",
    "Etc/GMT-14",
    "UTC",
    "America/Santiago",
    "America/Havana",
    "Africa/Cairo",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "America/Nuuk",
    "Asia/Gaza",
];

/// 2024-01-01T00:00:00Z.
const T_MIN: i64 = 1_704_067_200;
/// 2028-01-01T00:00:00Z.
const T_MAX: i64 = 1_830_297_600;
const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

fn zone(index: usize) -> Tz {
    ZONES[index].parse().unwrap()
}

fn ts(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn offset_of(tz: Tz, seconds: i64) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&ts(seconds).naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// Approximate instants (to 3 h) of the UTC-offset changes of each zone in 2024-2027, to
/// bias the generated instants toward DST change days.
fn transitions(zone_index: usize) -> &'static [i64] {
    static CACHE: OnceLock<Vec<Vec<i64>>> = OnceLock::new();
    &CACHE.get_or_init(|| {
        ZONES
            .iter()
            .map(|name| {
                let tz: Tz = name.parse().unwrap();
                let mut found = Vec::new();
                let mut previous = offset_of(tz, T_MIN);
                let mut t = T_MIN;
                while t < T_MAX {
                    t += 3 * HOUR;
                    let offset = offset_of(tz, t);
                    assert_eq!(offset % 60, 0, "{name} has a sub-minute offset");
                    if offset != previous {
                        found.push(t);
                        previous = offset;
                    }
                }
                found
            })
            .collect()
    })[zone_index]
}

/// A zone index and an instant in 2024-2027: uniform, within 36 h of an offset change,
/// within 3 h of one, or within 3 h of one and on a whole minute; a quarter of the
/// instants that are not on a whole minute have a fraction of a second.
fn zone_and_instant() -> impl Strategy<Value = (usize, DateTime<Utc>)> {
    (
        0..ZONES.len(),
        0u8..4,
        any::<u64>(),
        any::<i64>(),
        prop_oneof![3 => Just(0u32), 1 => 0u32..1_000_000_000],
    )
        .prop_map(|(zone, mode, pick, shift, nanos)| {
            let changes = transitions(zone);
            let span = u64::try_from(T_MAX - T_MIN).unwrap();
            let uniform = T_MIN + i64::try_from(pick % span).unwrap();
            let near = |within: i64| {
                let index = usize::try_from(pick % changes.len() as u64).unwrap();
                changes[index] + shift % within
            };
            let t = match mode {
                _ if changes.is_empty() => uniform,
                0 => uniform,
                1 => near(36 * HOUR),
                _ => near(3 * HOUR),
            };
            let at = if mode == 3 {
                ts(t - t.rem_euclid(60))
            } else {
                DateTime::from_timestamp(t, nanos).unwrap()
            };
            (zone, at)
        })
}

/// A window in the oracle's own terms: a bit mask of days (bit 0 = Monday) and minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct W {
    days: u8,
    start: u32,
    end: u32,
}

/// `None`: always open (no `windows` key); `Some(list)`: open inside any of them.
type Sched = Option<Vec<W>>;

fn send_window(w: W) -> SendWindow {
    SendWindow::new(
        weekday_set(w.days),
        LocalTime::from_minutes(w.start).unwrap(),
        LocalTime::from_minutes(w.end).unwrap(),
    )
    .unwrap()
}

fn schedule(sched: &Sched) -> WeeklySchedule {
    match sched {
        None => WeeklySchedule::always(),
        Some(list) => WeeklySchedule::windows(list.iter().copied().map(send_window).collect()),
    }
}

/// The rule of scenario-format.md, on a local weekday (0 = Monday) and minute of day.
fn in_window(w: W, weekday: u32, minute: u32) -> bool {
    let opens_on = |day: u32| w.days & (1 << day) != 0;
    if w.start < w.end {
        opens_on(weekday) && w.start <= minute && minute < w.end
    } else {
        // Crosses midnight: the part after midnight belongs to the day before.
        (opens_on(weekday) && minute >= w.start) || (opens_on((weekday + 6) % 7) && minute < w.end)
    }
}

fn in_window_local(w: W, local: NaiveDateTime) -> bool {
    in_window(
        w,
        local.weekday().num_days_from_monday(),
        local.hour() * 60 + local.minute(),
    )
}

/// The oracle: is `at` inside `sched` in zone `tz`?
fn oracle_open(sched: &Sched, tz: Tz, at: DateTime<Utc>) -> bool {
    match sched {
        None => true,
        Some(list) => {
            let local = at.with_timezone(&tz).naive_local();
            list.iter().any(|w| in_window_local(*w, local))
        }
    }
}

/// The first minute boundary strictly after second `t`.
fn next_boundary(t: i64) -> i64 {
    (t.div_euclid(MINUTE) + 1) * MINUTE
}

/// Brute force: the first open instant at or after `at`, scanning up to `limit` seconds.
fn brute_next_open(sched: &Sched, tz: Tz, at: DateTime<Utc>, limit: i64) -> Option<DateTime<Utc>> {
    if oracle_open(sched, tz, at) {
        return Some(at);
    }
    let mut m = next_boundary(at.timestamp());
    while m <= at.timestamp() + limit {
        if oracle_open(sched, tz, ts(m)) {
            return Some(ts(m));
        }
        m += MINUTE;
    }
    None
}

/// Brute force: the first closed instant after the open `at` (`at` when closed; `None` when
/// open for the next `limit` seconds).
fn brute_open_until(sched: &Sched, tz: Tz, at: DateTime<Utc>, limit: i64) -> Option<DateTime<Utc>> {
    if !oracle_open(sched, tz, at) {
        return Some(at);
    }
    let mut m = next_boundary(at.timestamp());
    while m <= at.timestamp() + limit {
        if !oracle_open(sched, tz, ts(m)) {
            return Some(ts(m));
        }
        m += MINUTE;
    }
    None
}

/// Brute force: the maximal open intervals inside `[from, to)`.
fn brute_intervals(
    sched: &Sched,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    let mut piece_start = from;
    while piece_start < to {
        let piece_end = ts(next_boundary(piece_start.timestamp())).min(to);
        if oracle_open(sched, tz, piece_start) {
            match out.last_mut() {
                Some(last) if last.1 == piece_start => last.1 = piece_end,
                _ => out.push((piece_start, piece_end)),
            }
        }
        piece_start = piece_end;
    }
    out
}

/// Whether the schedule can ever be open (some window has a day).
fn ever_open(sched: &Sched) -> bool {
    sched
        .as_ref()
        .is_none_or(|list| list.iter().any(|w| w.days != 0))
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Local times at or near DST changes of the zones above, midnight and 24:00.
const INTERESTING_MINUTES: &[u32] = &[
    0, 30, 60, 90, 120, 135, 150, 165, 180, 210, 225, 240, 540, 1020, 1380, 1410, 1439, 1440,
];

fn minute_strategy() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => prop::sample::select(INTERESTING_MINUTES),
        2 => 0u32..=1440,
    ]
}

fn days_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => Just(0x7f_u8),
        1 => Just(0x1f_u8),
        1 => Just(0x40_u8),
        4 => 0u8..0x80,
    ]
}

fn window_strategy() -> impl Strategy<Value = W> {
    (days_strategy(), minute_strategy(), minute_strategy()).prop_filter_map(
        "a window starts before 24:00 and is not empty",
        |(days, start, end)| (start < 1440 && start != end).then_some(W { days, start, end }),
    )
}

fn schedule_strategy() -> impl Strategy<Value = Sched> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        12 => prop::collection::vec(window_strategy(), 1..4).prop_map(Some),
    ]
}

/// 256 cases per property, or `PROPTEST_CASES` when set (for a longer hunt).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").map_or(256, |v| v.parse().unwrap());
    let mut config = ProptestConfig::with_cases(cases);
    // Write no regression files next to the tests.
    config.failure_persistence = None;
    config
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// `WeeklySchedule::contains` and `SendWindow::contains` agree with the rule, applied
    /// to chrono-tz's local time, at every minute boundary and at an arbitrary second of
    /// each minute, for three hours from an instant near a DST change.
    #[test]
    fn contains_agrees_with_a_minute_scan(
        (zone_index, start) in zone_and_instant(),
        sched in schedule_strategy(),
        second in 1i64..60,
    ) {
        let tz = zone(zone_index);
        let checked = schedule(&sched);
        let base = start.timestamp() - start.timestamp().rem_euclid(60);
        for minute in 0..180 {
            let on_minute = ts(base + minute * MINUTE);
            for at in [on_minute, on_minute + Duration::seconds(second), start + Duration::minutes(minute)] {
                prop_assert_eq!(
                    checked.contains(tz, at),
                    oracle_open(&sched, tz, at),
                    "{} at {} ({})", ZONES[zone_index], at, at.with_timezone(&tz)
                );
                for w in sched.iter().flatten() {
                    let local = at.with_timezone(&tz).naive_local();
                    prop_assert_eq!(send_window(*w).contains(tz, at), in_window_local(*w, local));
                }
            }
        }
    }

    /// `contains_local` applies the rule to a wall-clock time directly.
    #[test]
    fn contains_local_applies_the_rule(
        seconds in T_MIN..T_MAX,
        sched in schedule_strategy(),
    ) {
        let local = ts(seconds).naive_utc();
        let checked = schedule(&sched);
        let expected = sched
            .as_ref()
            .is_none_or(|list| list.iter().any(|w| in_window_local(*w, local)));
        prop_assert_eq!(checked.contains_local(local), expected);
        for w in sched.iter().flatten() {
            prop_assert_eq!(send_window(*w).contains_local(local), in_window_local(*w, local));
        }
    }

    /// `next_open` returns an open instant at or after the query, with nothing open between
    /// the query and it; `None` exactly when the schedule is never open.
    #[test]
    fn next_open_is_the_first_open_instant(
        (zone_index, start) in zone_and_instant(),
        sched in schedule_strategy(),
    ) {
        let tz = zone(zone_index);
        let at = start;
        let got = schedule(&sched).next_open(tz, at);
        if !ever_open(&sched) {
            prop_assert_eq!(got, None);
            return Ok(());
        }
        let expected = brute_next_open(&sched, tz, at, 15 * DAY);
        prop_assert!(expected.is_some(), "an open schedule opens within 15 days");
        prop_assert_eq!(got, expected, "{} from {} ({})", ZONES[zone_index], at, at.with_timezone(&tz));
        let found = got.unwrap();
        prop_assert!(found >= at);
        prop_assert!(oracle_open(&sched, tz, found));
        // Second by second just before the answer: all closed.
        for back in 1..=60 {
            let t = found - Duration::seconds(back);
            if t < at {
                break;
            }
            prop_assert!(!oracle_open(&sched, tz, t), "open at {}", t);
        }
    }

    /// `open_until` returns the first closed instant after an open one (merging adjacent
    /// and overlapping windows, also across DST changes), the query itself when closed, and
    /// `None` only when the schedule is always open.
    #[test]
    fn open_until_is_the_first_closed_instant(
        (zone_index, start) in zone_and_instant(),
        sched in schedule_strategy(),
    ) {
        let tz = zone(zone_index);
        let checked = schedule(&sched);
        // Query at an open instant most of the time.
        let at = if oracle_open(&sched, tz, start) {
            start
        } else {
            checked.next_open(tz, start).unwrap_or(start)
        };
        let got = checked.open_until(tz, at);
        let expected = brute_open_until(&sched, tz, at, 8 * DAY);
        prop_assert_eq!(got, expected, "{} from {} ({})", ZONES[zone_index], at, at.with_timezone(&tz));
        if let Some(closed) = got {
            prop_assert!(!oracle_open(&sched, tz, closed));
            for back in 1..=60 {
                let t = closed - Duration::seconds(back);
                if t < at {
                    break;
                }
                prop_assert!(oracle_open(&sched, tz, t), "closed at {}", t);
            }
        }
    }

    /// `open_intervals` returns the maximal open intervals clipped to the range.
    #[test]
    fn open_intervals_agree_with_a_scan(
        (zone_index, start) in zone_and_instant(),
        length in 0i64..(3 * DAY),
        sched in schedule_strategy(),
    ) {
        let tz = zone(zone_index);
        let (from, to) = (start, start + Duration::seconds(length));
        let got = schedule(&sched).open_intervals(tz, from, to);
        prop_assert_eq!(got, brute_intervals(&sched, tz, from, to), "{}", ZONES[zone_index]);
    }

    /// Local days partition time: every instant is in the bounds of its local date, the
    /// bounds of consecutive dates meet, and each day starts at the first instant of its date.
    #[test]
    fn local_days_partition_time((zone_index, start) in zone_and_instant()) {
        let tz = zone(zone_index);
        let at = start;
        let day = local_date(tz, at);
        prop_assert_eq!(day, at.with_timezone(&tz).date_naive());
        let (first, end) = local_day_bounds(tz, day);
        prop_assert!(first <= at && at < end, "{} not in {}..{}", at, first, end);
        prop_assert_eq!(local_day_bounds(tz, day.succ_opt().unwrap()).0, end);
        prop_assert_eq!(local_day_bounds(tz, day.pred_opt().unwrap()).1, first);
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
        prop_assert_eq!(local(first), day);
        prop_assert!(local(first - Duration::seconds(1)) < day);
        prop_assert_eq!(local(end - Duration::seconds(1)), day);
        prop_assert!(local(end) > day);
        // 23, 24 or 25 h; 23.5 and 24.5 at Lord Howe; 22 and 26 at Troll.
        let minutes = (end - first).num_minutes();
        prop_assert!(minutes % 30 == 0);
        prop_assert!((22 * 60..=26 * 60).contains(&minutes));
    }

    /// Long business-day delays take the week-jumping path of `add_business_days`; it
    /// agrees with a day-by-day walk, holidays on weekdays and weekends included.
    #[test]
    fn add_business_days_agrees_with_a_daily_walk(
        start_offset in 0u64..1500,
        amount in prop_oneof![1 => 0u32..12, 3 => 0u32..700],
        holiday_offsets in prop::collection::vec(0u64..1100, 0..80),
    ) {
        let start = date("2024-01-01") + chrono::Days::new(start_offset);
        let holidays: Vec<NaiveDate> = holiday_offsets
            .iter()
            .map(|d| start + chrono::Days::new(*d))
            .collect();
        let calendar = HolidayCalendar::new(holidays.iter().copied());
        prop_assert_eq!(
            calendar.add_business_days(start, amount),
            Some(walk_business_days(&holidays, start, amount))
        );
    }

    /// `Delay::after` in business days: the same local time that many business days later
    /// (weekends and holidays skipped); a local time that does not exist that day moves to
    /// the first instant after the gap.
    #[test]
    fn business_day_delays_keep_the_local_time(
        (zone_index, start) in zone_and_instant(),
        amount in 0u32..40,
        holiday_offsets in prop::collection::vec(0u64..80, 0..10),
    ) {
        let tz = zone(zone_index);
        let from = start;
        let local = from.with_timezone(&tz).naive_local();
        let holidays: Vec<NaiveDate> = holiday_offsets
            .iter()
            .map(|d| local.date() + chrono::Days::new(*d))
            .collect();
        let calendar = HolidayCalendar::new(holidays.iter().copied());
        let got = Delay::new(amount, DelayUnit::BusinessDays).after(from, tz, &calendar);
        if amount == 0 {
            prop_assert_eq!(got, from);
            return Ok(());
        }
        let target = walk_business_days(&holidays, local.date(), amount).and_time(local.time());
        match tz.from_local_datetime(&target) {
            LocalResult::Single(t) => prop_assert_eq!(got, t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => {
                prop_assert!(got == a.with_timezone(&Utc) || got == b.with_timezone(&Utc));
            }
            LocalResult::None => {
                // The first instant whose local time is at or after the missing one.
                let mut m = target.and_utc().timestamp() - 16 * HOUR;
                m -= m.rem_euclid(60);
                while ts(m).with_timezone(&tz).naive_local() < target {
                    m += MINUTE;
                }
                prop_assert_eq!(got, ts(m));
            }
        }
    }

    /// Minutes, hours and days are fixed lengths (a day is 24 h), in every zone.
    #[test]
    fn fixed_delays_are_fixed_lengths(
        (zone_index, start) in zone_and_instant(),
        amount in 0u32..100_000,
        unit in prop::sample::select(vec![DelayUnit::Minutes, DelayUnit::Hours, DelayUnit::Days]),
    ) {
        let unit_seconds = match unit {
            DelayUnit::Minutes => MINUTE,
            DelayUnit::Hours => HOUR,
            _ => DAY,
        };
        let from = start;
        let holidays = HolidayCalendar::new([local_date(zone(zone_index), from)]);
        prop_assert_eq!(
            Delay::new(amount, unit).after(from, zone(zone_index), &holidays),
            from + Duration::seconds(i64::from(amount) * unit_seconds)
        );
    }

    /// Warm-up: `min(daily_limit, start + increment * k)` on day `since + k`, and
    /// `min(daily_limit, start)` before `since`.
    #[test]
    fn warmup_ramps_linearly(
        daily_limit in 0u32..1000,
        start in 0u32..200,
        increment in 0u32..50,
        since_offset in 0u64..1000,
        day_offset in 0u64..2000,
    ) {
        let since = date("2024-01-01") + chrono::Days::new(since_offset);
        let day = date("2024-01-01") + chrono::Days::new(day_offset);
        let warmup = WarmUp { start, increment, since };
        let k = day_offset.saturating_sub(since_offset);
        let expected = u64::from(daily_limit).min(u64::from(start) + u64::from(increment) * k);
        prop_assert_eq!(
            u64::from(effective_daily_limit(daily_limit, Some(&warmup), day)),
            expected
        );
        prop_assert_eq!(effective_daily_limit(daily_limit, None, day), daily_limit);
    }
}
