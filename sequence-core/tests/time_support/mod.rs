//! What the time tests share: instants and dates from text, weekday sets from bit masks,
//! and business days counted by walking the calendar (an oracle that does not use the
//! code under test).
#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part")]
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on a broken fixture"
)]

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use sequence_core::time::WeekdaySet;

/// The instant of an RFC 3339 text.
pub fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The date of an ISO 8601 text.
pub fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// The weekdays, Monday first (bit `i` of a mask is `MONDAY_FIRST[i]`).
pub const MONDAY_FIRST: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The weekdays whose bits (Monday first) are set in `mask`.
pub fn weekday_set(mask: u8) -> WeekdaySet {
    let days: Vec<Weekday> = (0..7)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| MONDAY_FIRST[i])
        .collect();
    WeekdaySet::from_days(&days)
}

/// Business days by walking day by day.
pub fn walk_business_days(holidays: &[NaiveDate], start: NaiveDate, amount: u32) -> NaiveDate {
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
