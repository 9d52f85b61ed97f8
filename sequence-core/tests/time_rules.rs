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

use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use sequence_core::ids::TenantId;
use sequence_core::mailbox::Mailbox;
use sequence_core::time::{
    earliest_instant_at_local, effective_daily_limit, local_date, local_day_bounds,
    parse_time_zone, Delay, DelayUnit, HolidayCalendar, LocalTime, SendWindow, TimeError, WarmUp,
    WeekdaySet, WeeklySchedule,
};

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

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
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

const MONDAY_FIRST: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn weekday_set(mask: u8) -> WeekdaySet {
    let days: Vec<Weekday> = (0..7)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| MONDAY_FIRST[i])
        .collect();
    WeekdaySet::from_days(&days)
}

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

/// Business days by walking day by day.
fn walk_business_days(holidays: &[NaiveDate], start: NaiveDate, amount: u32) -> NaiveDate {
    let mut day = start;
    let mut remaining = amount;
    while remaining > 0 {
        day = day.succ_opt().unwrap();
        if day.weekday().num_days_from_monday() < 5 && !holidays.contains(&day) {
            remaining -= 1;
        }
    }
    day
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

// ---------------------------------------------------------------------------------------
// Fixed cases
// ---------------------------------------------------------------------------------------

fn tz(name: &str) -> Tz {
    parse_time_zone(name).unwrap()
}

fn lt(text: &str) -> LocalTime {
    text.parse().unwrap()
}

fn win(days: &[Weekday], start: &str, end: &str) -> SendWindow {
    SendWindow::new(WeekdaySet::from_days(days), lt(start), lt(end)).unwrap()
}

fn sched(windows: &[SendWindow]) -> WeeklySchedule {
    WeeklySchedule::windows(windows.to_vec())
}

fn iv(from: &str, to: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    (utc(from), utc(to))
}

const ALL_DAYS: [Weekday; 7] = MONDAY_FIRST;
use Weekday::{Fri, Mon, Sat, Sun, Tue};

#[test]
fn new_york_spring_forward_2026_03_08() {
    let ny = tz("America/New_York");
    // 02:00 EST (07:00Z) becomes 03:00 EDT: 02:00-03:00 does not exist that day.
    let gap = sched(&[win(&ALL_DAYS, "02:00", "03:00")]);
    let mut t = utc("2026-03-08T05:00:00Z");
    while t < utc("2026-03-08T09:00:00Z") {
        assert!(!gap.contains(ny, t), "{t}");
        t += Duration::seconds(59);
    }
    assert_eq!(
        gap.next_open(ny, utc("2026-03-08T05:00:00Z")),
        Some(utc("2026-03-09T06:00:00Z"))
    );
    assert!(gap
        .open_intervals(ny, utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z"))
        .is_empty());
    // A window starting in the gap opens at the first instant after it.
    let late = sched(&[win(&[Sun], "02:30", "03:30")]);
    assert_eq!(
        late.next_open(ny, utc("2026-03-08T06:00:00Z")),
        Some(utc("2026-03-08T07:00:00Z"))
    );
    assert_eq!(
        late.open_until(ny, utc("2026-03-08T07:00:00Z")),
        Some(utc("2026-03-08T07:30:00Z"))
    );
    // A window ending in the gap closes at the jump.
    let early = sched(&[win(&[Sun], "01:30", "02:30")]);
    assert_eq!(
        early.open_intervals(ny, utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
        vec![iv("2026-03-08T06:30:00Z", "2026-03-08T07:00:00Z")]
    );
    // A Saturday 22:00-06:00 window is 7 hours long that night.
    let night = sched(&[win(&[Sat], "22:00", "06:00")]);
    assert_eq!(
        night.open_until(ny, utc("2026-03-08T03:00:00Z")),
        Some(utc("2026-03-08T10:00:00Z"))
    );
    // A 23-hour local day.
    let day = date("2026-03-08");
    assert_eq!(
        local_day_bounds(ny, day),
        iv("2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")
    );
    assert_eq!(local_date(ny, utc("2026-03-09T03:59:59Z")), day);
    assert_eq!(
        local_date(ny, utc("2026-03-09T04:00:00Z")),
        date("2026-03-09")
    );
    assert_eq!(
        earliest_instant_at_local(ny, date("2026-03-08").and_hms_opt(2, 30, 0).unwrap()),
        Some(utc("2026-03-08T07:00:00Z"))
    );
    // Fixed-length delays ignore the change; business days keep the local time.
    let none = HolidayCalendar::default();
    assert_eq!(
        Delay::new(1, DelayUnit::Days).after(utc("2026-03-07T17:00:00Z"), ny, &none),
        utc("2026-03-08T17:00:00Z")
    );
    assert_eq!(
        Delay::new(2, DelayUnit::Hours).after(utc("2026-03-08T06:30:00Z"), ny, &none),
        utc("2026-03-08T08:30:00Z")
    );
    assert_eq!(
        Delay::new(90, DelayUnit::Minutes).after(utc("2026-03-08T06:30:00Z"), ny, &none),
        utc("2026-03-08T08:00:00Z")
    );
    // Friday 10:00 EST + 1 business day = Monday 10:00 EDT.
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(utc("2026-03-06T15:00:00Z"), ny, &none),
        utc("2026-03-09T14:00:00Z")
    );
}

#[test]
fn new_york_fall_back_2026_11_01() {
    let ny = tz("America/New_York");
    // 02:00 EDT (06:00Z) becomes 01:00 EST: 01:00-02:00 happens twice.
    let twice = sched(&[win(&[Sun], "01:00", "02:00")]);
    assert!(!twice.contains(ny, utc("2026-11-01T04:59:59Z")));
    assert!(twice.contains(ny, utc("2026-11-01T05:00:00Z")));
    assert!(twice.contains(ny, utc("2026-11-01T05:59:59Z")));
    assert!(twice.contains(ny, utc("2026-11-01T06:00:00Z")));
    assert!(twice.contains(ny, utc("2026-11-01T06:59:59Z")));
    assert!(!twice.contains(ny, utc("2026-11-01T07:00:00Z")));
    assert_eq!(
        twice.open_until(ny, utc("2026-11-01T05:00:00Z")),
        Some(utc("2026-11-01T07:00:00Z"))
    );
    assert_eq!(
        twice.open_intervals(ny, utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![iv("2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z")]
    );
    let half = sched(&[win(&[Sun], "01:00", "01:30")]);
    assert_eq!(
        half.open_intervals(ny, utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![
            iv("2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"),
            iv("2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"),
        ]
    );
    assert_eq!(
        half.next_open(ny, utc("2026-11-01T05:30:00Z")),
        Some(utc("2026-11-01T06:00:00Z"))
    );
    assert_eq!(
        half.open_until(ny, utc("2026-11-01T05:10:00Z")),
        Some(utc("2026-11-01T05:30:00Z"))
    );
    // Adjacent windows merge, across the change too.
    let adjacent = sched(&[win(&[Sun], "00:30", "01:30"), win(&[Sun], "01:30", "02:00")]);
    assert_eq!(
        adjacent.open_intervals(ny, utc("2026-11-01T00:00:00Z"), utc("2026-11-02T00:00:00Z")),
        vec![iv("2026-11-01T04:30:00Z", "2026-11-01T07:00:00Z")]
    );
    // A Saturday 22:00-06:00 window is 9 hours long that night.
    let night = sched(&[win(&[Sat], "22:00", "06:00")]);
    assert_eq!(
        night.open_until(ny, utc("2026-11-01T02:00:00Z")),
        Some(utc("2026-11-01T11:00:00Z"))
    );
    // A 25-hour local day.
    assert_eq!(
        local_day_bounds(ny, date("2026-11-01")),
        iv("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")
    );
    assert_eq!(
        local_date(ny, utc("2026-11-01T06:30:00Z")),
        date("2026-11-01")
    );
    assert_eq!(
        earliest_instant_at_local(ny, date("2026-11-01").and_hms_opt(1, 30, 0).unwrap()),
        Some(utc("2026-11-01T05:30:00Z"))
    );
}

#[test]
fn london_spring_forward_2026_03_29() {
    let london = tz("Europe/London");
    // 01:00 GMT (01:00Z) becomes 02:00 BST.
    let gap = sched(&[win(&[Sun], "01:00", "02:00")]);
    assert!(gap
        .open_intervals(
            london,
            utc("2026-03-29T00:00:00Z"),
            utc("2026-03-30T00:00:00Z")
        )
        .is_empty());
    assert_eq!(
        gap.next_open(london, utc("2026-03-29T00:00:00Z")),
        Some(utc("2026-04-05T00:00:00Z"))
    );
    // 00:00-01:00 and 02:00-03:00 are adjacent that night: the clock jumps from one into
    // the other.
    let jump = sched(&[
        win(&ALL_DAYS, "00:00", "01:00"),
        win(&ALL_DAYS, "02:00", "03:00"),
    ]);
    assert_eq!(
        jump.open_until(london, utc("2026-03-29T00:30:00Z")),
        Some(utc("2026-03-29T02:00:00Z"))
    );
    assert_eq!(
        jump.open_intervals(
            london,
            utc("2026-03-28T12:00:00Z"),
            utc("2026-03-29T12:00:00Z")
        ),
        vec![iv("2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z")]
    );
    assert_eq!(
        local_day_bounds(london, date("2026-03-29")),
        iv("2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z")
    );
    // Friday 01:30 GMT + 1 business day = Monday 01:30 BST.
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(
            utc("2026-03-27T01:30:00Z"),
            london,
            &HolidayCalendar::default()
        ),
        utc("2026-03-30T00:30:00Z")
    );
}

#[test]
fn lord_howe_half_hour_dst() {
    let lord_howe = tz("Australia/Lord_Howe");
    // 2026-04-05: 02:00 +11 (15:00Z) becomes 01:30 +10:30; 01:30-02:00 happens twice.
    let twice = sched(&[win(&[Sun], "01:30", "02:00")]);
    assert_eq!(
        twice.open_intervals(
            lord_howe,
            utc("2026-04-04T00:00:00Z"),
            utc("2026-04-05T00:00:00Z")
        ),
        vec![iv("2026-04-04T14:30:00Z", "2026-04-04T15:30:00Z")]
    );
    assert_eq!(
        twice.open_until(lord_howe, utc("2026-04-04T14:30:00Z")),
        Some(utc("2026-04-04T15:30:00Z"))
    );
    // A 24.5-hour day.
    assert_eq!(
        local_day_bounds(lord_howe, date("2026-04-05")),
        iv("2026-04-04T13:00:00Z", "2026-04-05T13:30:00Z")
    );
    // 2026-10-04: 02:00 +10:30 (15:30Z) becomes 02:30 +11; 02:00-02:30 does not exist.
    let gap = sched(&[win(&[Sun], "02:00", "02:30")]);
    assert!(gap
        .open_intervals(
            lord_howe,
            utc("2026-10-03T12:00:00Z"),
            utc("2026-10-04T12:00:00Z")
        )
        .is_empty());
    let straddle = sched(&[win(&[Sun], "02:15", "02:45")]);
    assert_eq!(
        straddle.next_open(lord_howe, utc("2026-10-03T15:00:00Z")),
        Some(utc("2026-10-03T15:30:00Z"))
    );
    assert_eq!(
        straddle.open_until(lord_howe, utc("2026-10-03T15:30:00Z")),
        Some(utc("2026-10-03T15:45:00Z"))
    );
    // A 23.5-hour day.
    assert_eq!(
        local_day_bounds(lord_howe, date("2026-10-04")),
        iv("2026-10-03T13:30:00Z", "2026-10-04T13:00:00Z")
    );
}

#[test]
fn kathmandu_quarter_hour_offset() {
    let kathmandu = tz("Asia/Kathmandu");
    // +05:45: Monday 09:00 is 03:15Z.
    let office = sched(&[win(&[Mon], "09:00", "17:00")]);
    assert!(!office.contains(kathmandu, utc("2026-03-09T03:14:59Z")));
    assert!(office.contains(kathmandu, utc("2026-03-09T03:15:00Z")));
    assert!(office.contains(kathmandu, utc("2026-03-09T11:14:59Z")));
    assert!(!office.contains(kathmandu, utc("2026-03-09T11:15:00Z")));
    assert_eq!(
        office.next_open(kathmandu, utc("2026-03-09T00:00:00Z")),
        Some(utc("2026-03-09T03:15:00Z"))
    );
    assert_eq!(
        office.open_until(kathmandu, utc("2026-03-09T03:15:00Z")),
        Some(utc("2026-03-09T11:15:00Z"))
    );
    assert_eq!(
        local_date(kathmandu, utc("2026-03-09T18:14:59Z")),
        date("2026-03-09")
    );
    assert_eq!(
        local_date(kathmandu, utc("2026-03-09T18:15:00Z")),
        date("2026-03-10")
    );
    assert_eq!(
        local_day_bounds(kathmandu, date("2026-03-10")),
        iv("2026-03-09T18:15:00Z", "2026-03-10T18:15:00Z")
    );
}

#[test]
fn chatham_quarter_hour_offset_with_dst() {
    let chatham = tz("Pacific/Chatham");
    // 2026-09-27: 02:45 +12:45 (14:00Z) becomes 03:45 +13:45.
    let gap = sched(&[win(&[Sun], "02:45", "03:45")]);
    assert!(gap
        .open_intervals(
            chatham,
            utc("2026-09-26T00:00:00Z"),
            utc("2026-09-27T12:00:00Z")
        )
        .is_empty());
    assert_eq!(
        gap.next_open(chatham, utc("2026-09-26T12:00:00Z")),
        Some(utc("2026-10-03T13:00:00Z"))
    );
    let after = sched(&[win(&ALL_DAYS, "03:00", "04:00")]);
    assert_eq!(
        after.next_open(chatham, utc("2026-09-26T13:30:00Z")),
        Some(utc("2026-09-26T14:00:00Z"))
    );
    assert_eq!(
        after.open_until(chatham, utc("2026-09-26T14:00:00Z")),
        Some(utc("2026-09-26T14:15:00Z"))
    );
    assert_eq!(
        local_day_bounds(chatham, date("2026-09-27")),
        iv("2026-09-26T11:15:00Z", "2026-09-27T10:15:00Z")
    );
    // 2026-04-05: 03:45 +13:45 (14:00Z) becomes 02:45 +12:45: a 25-hour day.
    assert_eq!(
        local_day_bounds(chatham, date("2026-04-05")),
        iv("2026-04-04T10:15:00Z", "2026-04-05T11:15:00Z")
    );
}

#[test]
fn kiritimati_and_gmt_plus_12_are_two_weekdays_apart() {
    let kiritimati = tz("Pacific/Kiritimati");
    let minus_12 = tz("Etc/GMT+12");
    let plus_14 = tz("Etc/GMT-14");
    // 2026-03-09T10:00Z is Tuesday 00:00 at UTC+14.
    let tuesday = sched(&[win(&[Tue], "00:00", "01:00")]);
    assert!(!tuesday.contains(kiritimati, utc("2026-03-09T09:59:59Z")));
    assert!(tuesday.contains(kiritimati, utc("2026-03-09T10:00:00Z")));
    assert!(tuesday.contains(plus_14, utc("2026-03-09T10:00:00Z")));
    assert_eq!(
        local_date(kiritimati, utc("2026-03-09T10:00:00Z")),
        date("2026-03-10")
    );
    assert_eq!(
        local_day_bounds(kiritimati, date("2026-03-10")),
        iv("2026-03-09T10:00:00Z", "2026-03-10T10:00:00Z")
    );
    // 2026-03-09T11:59Z is Sunday 23:59 at UTC-12 and Tuesday 01:59 at UTC+14.
    let sunday_night = sched(&[win(&[Sun], "23:00", "24:00")]);
    let at = utc("2026-03-09T11:59:00Z");
    assert!(sunday_night.contains(minus_12, at));
    assert!(!sunday_night.contains(kiritimati, at));
    assert_eq!(local_date(kiritimati, at), date("2026-03-10"));
    assert_eq!(at.with_timezone(&kiritimati).weekday(), Tue);
    assert_eq!(local_date(minus_12, at), date("2026-03-08"));
    assert_eq!(
        local_day_bounds(minus_12, date("2026-03-08")),
        iv("2026-03-08T12:00:00Z", "2026-03-09T12:00:00Z")
    );
    assert_eq!(
        sunday_night.open_until(minus_12, at),
        Some(utc("2026-03-09T12:00:00Z"))
    );
    assert_eq!(
        sunday_night.next_open(kiritimati, at),
        Some(utc("2026-03-15T09:00:00Z"))
    );
}

#[test]
fn cairo_business_days_on_weekday_dst_changes() {
    let cairo = tz("Africa/Cairo");
    let none = HolidayCalendar::default();
    // Friday 2026-04-24 00:00 EET becomes 01:00 EEST (2026-04-23T22:00Z).
    // Thursday 00:30 EET + 1 business day = Friday 00:30, which does not exist: the first
    // instant after the gap.
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(utc("2026-04-22T22:30:00Z"), cairo, &none),
        utc("2026-04-23T22:00:00Z")
    );
    // Thursday 2026-10-29 24:00 EEST becomes 23:00 EET: 23:30 happens twice (20:30Z and
    // 21:30Z); the earlier one is taken, as `earliest_instant_at_local` documents.
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(utc("2026-10-28T20:30:00Z"), cairo, &none),
        utc("2026-10-29T20:30:00Z")
    );
    assert_eq!(
        local_day_bounds(cairo, date("2026-04-24")),
        iv("2026-04-23T22:00:00Z", "2026-04-24T21:00:00Z")
    );
    assert_eq!(
        local_day_bounds(cairo, date("2026-10-29")),
        iv("2026-10-28T21:00:00Z", "2026-10-29T22:00:00Z")
    );
}

#[test]
fn changes_at_midnight_and_two_hour_changes() {
    // Santiago, 2026-09-06: Saturday 24:00 -04 (04:00Z) becomes Sunday 01:00 -03, so
    // Sunday 00:00-01:00 does not exist and Sunday starts at 01:00.
    let santiago = tz("America/Santiago");
    assert_eq!(
        local_day_bounds(santiago, date("2026-09-05")),
        iv("2026-09-05T04:00:00Z", "2026-09-06T04:00:00Z")
    );
    assert_eq!(
        local_day_bounds(santiago, date("2026-09-06")),
        iv("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z")
    );
    assert!(sched(&[win(&[Sun], "00:00", "01:00")])
        .open_intervals(
            santiago,
            utc("2026-09-05T12:00:00Z"),
            utc("2026-09-06T12:00:00Z")
        )
        .is_empty());
    // A Saturday 22:00-00:30 window closes at the jump.
    let late = sched(&[win(&[Sat], "22:00", "00:30")]);
    assert_eq!(
        late.open_until(santiago, utc("2026-09-06T02:00:00Z")),
        Some(utc("2026-09-06T04:00:00Z"))
    );
    // Nuuk, 2026-03-29: Saturday 23:00 -02 (01:00Z) becomes Sunday 00:00 -01, so Saturday
    // 23:00-24:00 does not exist and Saturday is 23 hours long.
    let nuuk = tz("America/Nuuk");
    assert_eq!(
        local_day_bounds(nuuk, date("2026-03-28")),
        iv("2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z")
    );
    assert_eq!(
        sched(&[win(&[Sat], "23:00", "24:00")]).next_open(nuuk, utc("2026-03-28T12:00:00Z")),
        Some(utc("2026-04-05T00:00:00Z"))
    );
    // Troll, 2026: a two-hour change, so a 22-hour and a 26-hour day.
    let troll = tz("Antarctica/Troll");
    assert_eq!(
        local_day_bounds(troll, date("2026-03-29")),
        iv("2026-03-29T00:00:00Z", "2026-03-29T22:00:00Z")
    );
    assert_eq!(
        local_day_bounds(troll, date("2026-10-25")),
        iv("2026-10-24T22:00:00Z", "2026-10-26T00:00:00Z")
    );
    // 01:00-03:00 happens twice on 2026-10-25: 23:00Z-01:00Z and 01:00Z-03:00Z.
    assert_eq!(
        sched(&[win(&[Sun], "01:00", "03:00")]).open_intervals(
            troll,
            utc("2026-10-24T12:00:00Z"),
            utc("2026-10-25T12:00:00Z")
        ),
        vec![iv("2026-10-24T23:00:00Z", "2026-10-25T03:00:00Z")]
    );
}

#[test]
fn window_crossing_midnight_belongs_to_its_opening_day() {
    let zone = tz("UTC");
    let friday_night = sched(&[win(&[Fri], "22:00", "06:00")]);
    // 2026-03-06 is a Friday.
    assert!(!friday_night.contains(zone, utc("2026-03-06T21:59:59Z")));
    assert!(friday_night.contains(zone, utc("2026-03-06T22:00:00Z")));
    assert!(friday_night.contains(zone, utc("2026-03-07T05:59:59Z")));
    assert!(!friday_night.contains(zone, utc("2026-03-07T06:00:00Z")));
    // Friday morning belongs to Thursday's window, Saturday night to Saturday's.
    assert!(!friday_night.contains(zone, utc("2026-03-06T03:00:00Z")));
    assert!(!friday_night.contains(zone, utc("2026-03-07T22:00:00Z")));
    assert!(!friday_night.contains(zone, utc("2026-03-08T01:00:00Z")));
    assert_eq!(
        friday_night.open_until(zone, utc("2026-03-06T23:00:00Z")),
        Some(utc("2026-03-07T06:00:00Z"))
    );
    assert_eq!(
        friday_night.next_open(zone, utc("2026-03-07T06:00:00Z")),
        Some(utc("2026-03-13T22:00:00Z"))
    );
    assert!(win(&[Fri], "22:00", "06:00").crosses_midnight());
    assert!(!win(&[Fri], "06:00", "22:00").crosses_midnight());
}

#[test]
fn end_at_24_00_and_adjacent_days_merge() {
    let zone = tz("UTC");
    let evening = sched(&[win(&[Mon], "20:00", "24:00")]);
    assert!(evening.contains(zone, utc("2026-03-09T23:59:59Z")));
    assert!(!evening.contains(zone, utc("2026-03-10T00:00:00Z")));
    assert_eq!(
        evening.open_until(zone, utc("2026-03-09T21:00:00Z")),
        Some(utc("2026-03-10T00:00:00Z"))
    );
    let through = sched(&[win(&[Mon], "20:00", "24:00"), win(&[Tue], "00:00", "02:00")]);
    assert_eq!(
        through.open_until(zone, utc("2026-03-09T21:00:00Z")),
        Some(utc("2026-03-10T02:00:00Z"))
    );
    assert_eq!(
        through.open_intervals(
            zone,
            utc("2026-03-09T00:00:00Z"),
            utc("2026-03-11T00:00:00Z")
        ),
        vec![iv("2026-03-09T20:00:00Z", "2026-03-10T02:00:00Z")]
    );
    // Overlapping windows merge.
    let overlap = sched(&[win(&[Mon], "09:00", "12:00"), win(&[Mon], "11:00", "14:00")]);
    assert_eq!(
        overlap.open_until(zone, utc("2026-03-09T09:30:00Z")),
        Some(utc("2026-03-09T14:00:00Z"))
    );
    // Windows covering the whole week never close.
    let whole_week = sched(&[
        win(&ALL_DAYS, "12:00", "06:00"),
        win(&ALL_DAYS, "06:00", "12:00"),
    ]);
    assert_eq!(
        whole_week.open_until(tz("America/New_York"), utc("2026-03-08T07:00:00Z")),
        None
    );
    assert_eq!(
        sched(&[win(&ALL_DAYS, "00:00", "24:00")]).open_until(zone, utc("2026-03-09T00:00:00Z")),
        None
    );
}

#[test]
fn always_open_versus_empty_list() {
    let zone = tz("Europe/Berlin");
    let at = utc("2026-03-29T01:30:00Z");
    let later = utc("2026-04-02T00:00:00Z");
    let always = WeeklySchedule::always();
    assert!(always.is_always_open());
    assert_eq!(always.window_list(), None);
    assert!(always.contains(zone, at));
    assert_eq!(always.next_open(zone, at), Some(at));
    assert_eq!(always.open_until(zone, at), None);
    assert_eq!(always.open_intervals(zone, at, later), vec![(at, later)]);
    assert_eq!(WeeklySchedule::default(), always);

    let never = WeeklySchedule::windows(Vec::new());
    assert!(!never.is_always_open());
    assert!(!never.contains(zone, at));
    assert_eq!(never.next_open(zone, at), None);
    assert_eq!(never.open_until(zone, at), Some(at));
    assert!(never.open_intervals(zone, at, later).is_empty());
    // A window on no day is never open either.
    let no_day = sched(&[win(&[], "09:00", "17:00")]);
    assert_eq!(no_day.next_open(zone, at), None);

    // No key (null) means always, an empty list never.
    assert_eq!(
        serde_json::from_str::<WeeklySchedule>("null").unwrap(),
        always
    );
    assert_eq!(serde_json::from_str::<WeeklySchedule>("[]").unwrap(), never);
}

#[test]
fn business_days_skip_weekends_and_holidays() {
    let ny = tz("America/New_York");
    let none = HolidayCalendar::default();
    let friday = utc("2026-03-06T15:00:00Z"); // Friday 10:00 EST
    assert_eq!(
        Delay::new(0, DelayUnit::BusinessDays).after(friday, ny, &none),
        friday
    );
    let holidays = HolidayCalendar::new([date("2026-03-09")]);
    assert!(!holidays.is_business_day(date("2026-03-09")));
    assert!(!holidays.is_business_day(date("2026-03-07")));
    assert!(holidays.is_business_day(date("2026-03-10")));
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(friday, ny, &holidays),
        utc("2026-03-10T14:00:00Z")
    );
    // From a Saturday, one business day is Monday.
    assert_eq!(
        Delay::new(1, DelayUnit::BusinessDays).after(utc("2026-03-07T15:00:00Z"), ny, &none),
        utc("2026-03-09T14:00:00Z")
    );
    // A long delay (week-jumping path) with holidays inside the jump.
    let calendar = HolidayCalendar::new([
        date("2026-01-01"),
        date("2026-05-25"),
        date("2026-07-03"),
        date("2026-07-04"), // a Saturday: skips nothing
        date("2026-09-07"),
        date("2026-11-26"),
        date("2026-12-25"),
    ]);
    let holidays: Vec<NaiveDate> = [
        "2026-01-01",
        "2026-05-25",
        "2026-07-03",
        "2026-07-04",
        "2026-09-07",
        "2026-11-26",
        "2026-12-25",
    ]
    .iter()
    .map(|d| date(d))
    .collect();
    for amount in [11, 12, 15, 16, 100, 254, 255, 256, 300] {
        assert_eq!(
            calendar.add_business_days(date("2025-12-31"), amount),
            Some(walk_business_days(&holidays, date("2025-12-31"), amount)),
            "{amount}"
        );
    }
    // 2026 has 261 weekdays, 6 of them holidays above: 255 business days.
    assert_eq!(
        calendar.add_business_days(date("2025-12-31"), 255),
        Some(date("2026-12-31"))
    );
    assert_eq!(calendar.add_business_days(NaiveDate::MAX, 1), None);
}

#[test]
fn warm_up_and_holiday_limits() {
    let warmup = WarmUp {
        start: 5,
        increment: 2,
        since: date("2026-03-06"),
    };
    let limit = |d: &str| effective_daily_limit(30, Some(&warmup), date(d));
    assert_eq!(limit("2026-03-01"), 5);
    assert_eq!(limit("2026-03-05"), 5);
    assert_eq!(limit("2026-03-06"), 5);
    assert_eq!(limit("2026-03-07"), 7);
    assert_eq!(limit("2026-03-18"), 29);
    assert_eq!(limit("2026-03-19"), 30);
    assert_eq!(limit("2027-03-19"), 30);
    assert_eq!(effective_daily_limit(30, None, date("2026-03-06")), 30);
    assert_eq!(
        effective_daily_limit(3, Some(&warmup), date("2026-03-01")),
        3
    );
    // No overflow on huge ramps.
    let steep = WarmUp {
        start: u32::MAX - 1,
        increment: u32::MAX,
        since: date("2000-01-01"),
    };
    assert_eq!(
        effective_daily_limit(40, Some(&steep), date("2026-03-06")),
        40
    );

    let mailbox = Mailbox::new(
        TenantId::from_u128(1),
        "ana@sender.example",
        tz("America/New_York"),
    )
    .unwrap()
    .with_daily_limit(30)
    .with_warmup(warmup)
    .with_holidays(HolidayCalendar::new([date("2026-03-09")]));
    assert_eq!(mailbox.limit_on(date("2026-03-08")), 9);
    assert_eq!(mailbox.limit_on(date("2026-03-09")), 0);
    assert_eq!(mailbox.limit_on(date("2026-03-10")), 13);
}

#[test]
fn local_time_parsing() {
    assert_eq!(lt("00:00"), LocalTime::MIDNIGHT);
    assert_eq!(lt("09:30").minutes(), 570);
    assert_eq!(lt("23:59").minutes(), 1439);
    assert_eq!(lt("24:00"), LocalTime::END_OF_DAY);
    assert_eq!(lt("24:00").to_string(), "24:00");
    assert_eq!(lt("07:05").to_string(), "07:05");
    for bad in [
        "24:01", "25:00", "7:00", "07:0", "ab:cd", "07:60", "", "07-00", "007:00", " 7:00",
        "+7:00", "07:00 ",
    ] {
        assert_eq!(
            bad.parse::<LocalTime>(),
            Err(TimeError::InvalidLocalTime(bad.to_owned())),
            "{bad:?}"
        );
    }
    assert_eq!(LocalTime::from_hm(24, 0), Some(LocalTime::END_OF_DAY));
    assert_eq!(LocalTime::from_hm(24, 1), None);
    assert_eq!(LocalTime::from_hm(12, 60), None);
    assert_eq!(LocalTime::from_minutes(1440), Some(LocalTime::END_OF_DAY));
    assert_eq!(LocalTime::from_minutes(1441), None);
    assert_eq!(serde_json::to_string(&lt("09:05")).unwrap(), "\"09:05\"");
    assert_eq!(
        serde_json::from_str::<LocalTime>("\"17:45\"").unwrap(),
        lt("17:45")
    );
    assert!(serde_json::from_str::<LocalTime>("\"24:01\"").is_err());
    assert!(serde_json::from_str::<LocalTime>("930").is_err());
}

#[test]
fn weekday_set_serde() {
    let all = r#"["mon","tue","wed","thu","fri","sat","sun"]"#;
    assert_eq!(serde_json::to_string(&WeekdaySet::ALL).unwrap(), all);
    assert_eq!(
        serde_json::from_str::<WeekdaySet>(all).unwrap(),
        WeekdaySet::ALL
    );
    assert_eq!(
        serde_json::from_str::<WeekdaySet>(r#"["mon","tue","wed","thu","fri"]"#).unwrap(),
        WeekdaySet::WEEKDAYS
    );
    let weekend = serde_json::from_str::<WeekdaySet>(r#"["sun","sat"]"#).unwrap();
    assert_eq!(weekend, WeekdaySet::from_days(&[Sat, Sun]));
    assert_eq!(weekend.iter().collect::<Vec<_>>(), vec![Sat, Sun]);
    assert_eq!(serde_json::to_string(&weekend).unwrap(), r#"["sat","sun"]"#);
    assert!(weekend.contains(Sun) && !weekend.contains(Mon));
    assert_eq!(
        serde_json::from_str::<WeekdaySet>("[]").unwrap(),
        WeekdaySet::EMPTY
    );
    assert!(WeekdaySet::EMPTY.is_empty());
    for bad in [r#"["monday"]"#, r#"["xyz"]"#, r#"[1]"#, r#""mon""#] {
        assert!(serde_json::from_str::<WeekdaySet>(bad).is_err(), "{bad}");
    }
    for (mask, day) in MONDAY_FIRST.iter().enumerate() {
        let set = weekday_set(1 << mask);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![*day]);
        assert_eq!(
            serde_json::from_value::<WeekdaySet>(serde_json::to_value(set).unwrap()).unwrap(),
            set
        );
    }
}

#[test]
fn send_window_serde_and_validation() {
    let window: SendWindow =
        serde_json::from_str(r#"{"days":["mon","fri"],"start":"09:00","end":"17:00"}"#).unwrap();
    assert_eq!(window, win(&[Mon, Fri], "09:00", "17:00"));
    assert_eq!(
        serde_json::from_value::<SendWindow>(serde_json::to_value(window).unwrap()).unwrap(),
        window
    );
    let to_midnight: SendWindow =
        serde_json::from_str(r#"{"days":["sun"],"start":"20:00","end":"24:00"}"#).unwrap();
    assert_eq!(to_midnight.end, LocalTime::END_OF_DAY);
    for bad in [
        r#"{"days":["mon"],"start":"09:00","end":"09:00"}"#,
        r#"{"days":["mon"],"start":"24:00","end":"09:00"}"#,
        r#"{"days":["mon"],"start":"09:00","end":"17:00","tz":"UTC"}"#,
        r#"{"days":["mon"],"start":"09:00"}"#,
        r#"{"days":["mon"],"start":"09:00","end":"24:01"}"#,
        r#"{"days":["funday"],"start":"09:00","end":"17:00"}"#,
    ] {
        assert!(serde_json::from_str::<SendWindow>(bad).is_err(), "{bad}");
    }
    assert_eq!(
        SendWindow::new(WeekdaySet::ALL, lt("09:00"), lt("09:00")),
        Err(TimeError::EmptyWindow(lt("09:00")))
    );
    assert_eq!(
        SendWindow::new(WeekdaySet::ALL, lt("24:00"), lt("09:00")),
        Err(TimeError::StartAtMidnightEnd)
    );
    assert_eq!(
        SendWindow::new(WeekdaySet::ALL, lt("00:00"), lt("00:00")),
        Err(TimeError::EmptyWindow(LocalTime::MIDNIGHT))
    );
    assert!(SendWindow::new(WeekdaySet::ALL, lt("00:00"), lt("24:00")).is_ok());
    assert_eq!(
        parse_time_zone("Mars/Base"),
        Err(TimeError::UnknownTimeZone("Mars/Base".to_owned()))
    );
}
