//! The time rules of `scenario-format.md` written out again for the checker, from the
//! format's own words and chrono-tz alone: the checker must not judge the engine with the
//! engine's code. (`sequence_core::time` implements the same rules for the engine; a bug
//! there would otherwise pass unseen.)

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use sequence_core::time::{Delay, DelayUnit, WarmUp, WeeklySchedule};

/// The mailbox-local calendar day of `at`.
pub(crate) fn local_day(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// "With `warmup`, the limit on local day `since + k` is
/// `min(daily_limit, start + increment * k)`, and `start` before `since`."
pub(crate) fn limit_on(daily_limit: u32, warmup: Option<&WarmUp>, day: NaiveDate) -> u32 {
    let Some(w) = warmup else {
        return daily_limit;
    };
    let k = (day - w.since).num_days();
    let ramp = if k <= 0 {
        u64::from(w.start)
    } else {
        u64::from(w.start) + u64::from(w.increment) * u64::try_from(k).unwrap_or(u64::MAX / 2)
    };
    u32::try_from(ramp.min(u64::from(daily_limit))).unwrap_or(daily_limit)
}

/// "An instant is inside a window when its local weekday is in `days` and
/// `start <= local time < end`. A window whose `start` is later than its `end` crosses
/// midnight and belongs to the day it opens on. No `windows` key means always open; an
/// empty list means never open." Local times come from chrono-tz: a time skipped by a
/// spring-forward never occurs, a repeated one occurs twice.
pub(crate) fn inside(schedule: &WeeklySchedule, tz: Tz, at: DateTime<Utc>) -> bool {
    let Some(windows) = schedule.window_list() else {
        return true;
    };
    let local = at.with_timezone(&tz);
    let weekday = local.weekday();
    let seconds = i64::from(local.num_seconds_from_midnight());
    windows.iter().any(|w| {
        let start = i64::from(w.start.minutes()) * 60;
        let end = i64::from(w.end.minutes()) * 60;
        if start < end {
            w.days.contains(weekday) && start <= seconds && seconds < end
        } else {
            (w.days.contains(weekday) && seconds >= start)
                || (w.days.contains(weekday.pred()) && seconds < end)
        }
    })
}

/// "Step k [may go] no earlier than the successful send of the step before it plus its
/// delay. Units: `minutes`, `hours`, `days` (24 h)." Business days (this library's
/// addition) move to the same local time that many weekdays later in `zone`, or to the
/// first instant after it when a spring-forward skips it.
pub(crate) fn earliest_after(delay: Delay, from: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    let amount = i64::from(delay.amount);
    match delay.unit {
        DelayUnit::Minutes => from + Duration::minutes(amount),
        DelayUnit::Hours => from + Duration::hours(amount),
        DelayUnit::Days => from + Duration::hours(24 * amount),
        DelayUnit::BusinessDays => business_days_after(from, delay.amount, zone),
        _ => DateTime::<Utc>::MAX_UTC,
    }
}

fn business_days_after(from: DateTime<Utc>, amount: u32, zone: Tz) -> DateTime<Utc> {
    let local = from.with_timezone(&zone).naive_local();
    let mut day = local.date();
    let mut left = amount;
    while left > 0 {
        day = day.succ_opt().unwrap_or(day);
        if day.weekday().num_days_from_monday() < 5 {
            left -= 1;
        }
    }
    let mut wanted = day.and_time(local.time());
    // A skipped local time: walk minute by minute to the first that exists.
    for _ in 0..=24 * 60 {
        match zone.from_local_datetime(&wanted) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
            LocalResult::None => {
                wanted = (wanted + Duration::minutes(1))
                    .with_second(0)
                    .unwrap_or(wanted);
            }
        }
    }
    DateTime::<Utc>::MAX_UTC
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequence_core::time::{LocalTime, SendWindow, WeekdaySet};

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn window(days: &[chrono::Weekday], start: (u32, u32), end: (u32, u32)) -> WeeklySchedule {
        let t = |(h, m)| LocalTime::from_hm(h, m).unwrap();
        WeeklySchedule::windows(vec![SendWindow::new(
            WeekdaySet::from_days(days),
            t(start),
            t(end),
        )
        .unwrap()])
    }

    #[test]
    fn a_window_over_midnight_belongs_to_its_opening_day() {
        use chrono::Weekday::{Fri, Sat};
        let ny = chrono_tz::America::New_York;
        let w = window(&[Fri], (22, 0), (2, 30));
        // Friday 2026-03-13 23:00 and Saturday 01:00 New York (EDT, UTC-4).
        assert!(inside(&w, ny, utc("2026-03-14T03:00:00Z")));
        assert!(inside(&w, ny, utc("2026-03-14T05:00:00Z")));
        // Saturday 22:30: Saturday is not a day it opens on.
        assert!(!inside(&w, ny, utc("2026-03-15T02:30:00Z")));
        // Friday 02:00 belongs to Thursday's window, which does not open.
        assert!(!inside(&w, ny, utc("2026-03-13T06:00:00Z")));
        let sat = window(&[Sat], (22, 0), (2, 30));
        assert!(!inside(&sat, ny, utc("2026-03-14T05:00:00Z")));
    }

    #[test]
    fn repeated_local_times_are_inside_twice_and_skipped_ones_never() {
        use chrono::Weekday::Sun;
        let ny = chrono_tz::America::New_York;
        let w = window(&[Sun], (1, 0), (2, 0));
        // 2026-11-01 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
        assert!(inside(&w, ny, utc("2026-11-01T05:30:00Z")));
        assert!(inside(&w, ny, utc("2026-11-01T06:30:00Z")));
        let gap = window(&[Sun], (2, 0), (3, 0));
        // 2026-03-08: 02:00-03:00 does not exist; 07:00Z is 03:00 EDT.
        assert!(!inside(&gap, ny, utc("2026-03-08T07:00:00Z")));
        assert!(!inside(&gap, ny, utc("2026-03-08T06:59:59Z")));
    }

    #[test]
    fn warm_up_ramps_from_its_first_day() {
        let since = NaiveDate::from_ymd_opt(2026, 3, 6).unwrap();
        let w = WarmUp {
            start: 5,
            increment: 2,
            since,
        };
        let day = |d: i64| since + Duration::days(d);
        assert_eq!(limit_on(30, Some(&w), day(-1)), 5);
        assert_eq!(limit_on(30, Some(&w), day(0)), 5);
        assert_eq!(limit_on(30, Some(&w), day(3)), 11);
        assert_eq!(limit_on(30, Some(&w), day(40)), 30);
        assert_eq!(limit_on(30, None, day(0)), 30);
    }

    #[test]
    fn business_days_keep_the_local_time_and_leave_a_skipped_hour() {
        let ny = chrono_tz::America::New_York;
        let one = Delay::new(1, DelayUnit::BusinessDays);
        // Friday 2026-03-06 02:30 EST -> Monday 03-09 02:30 EDT (the weekend skipped, the
        // clocks changed in between).
        assert_eq!(
            earliest_after(one, utc("2026-03-06T07:30:00Z"), ny),
            utc("2026-03-09T06:30:00Z")
        );
        // Cairo springs forward at Friday 2026-04-24 00:00: Thursday 00:30 (EET) plus one
        // business day is a local time that does not exist; the first instant after the gap
        // is 01:00 EEST.
        let cairo = chrono_tz::Africa::Cairo;
        assert_eq!(
            earliest_after(one, utc("2026-04-22T22:30:00Z"), cairo),
            utc("2026-04-23T22:00:00Z")
        );
        // Days are 24 hours, whatever the clocks do.
        assert_eq!(
            earliest_after(
                Delay::new(1, DelayUnit::Days),
                utc("2026-03-07T12:00:00Z"),
                ny
            ),
            utc("2026-03-08T12:00:00Z")
        );
    }
}
