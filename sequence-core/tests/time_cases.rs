//! The time rules of `sequence_core::time` on fixed cases: DST in both directions in
//! several zones, odd offsets, windows over midnight, business days and holidays, warm-up
//! limits and the serialized forms of local times, weekday sets and windows. Each instant
//! and answer is written out by hand.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

mod time_support;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use sequence_core::ids::TenantId;
use sequence_core::mailbox::Mailbox;
use sequence_core::time::{
    earliest_instant_at_local, effective_daily_limit, local_date, local_day_bounds,
    parse_time_zone, Delay, DelayUnit, HolidayCalendar, LocalTime, SendWindow, TimeError, WarmUp,
    WeekdaySet, WeeklySchedule,
};
use time_support::{date, utc, walk_business_days, weekday_set, MONDAY_FIRST};

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
