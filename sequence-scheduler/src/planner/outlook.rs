//! What "why isn't it sending?" shows per mailbox: its use, its limit and its next opening.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use sequence_core::ids::MailboxId;
use sequence_core::mailbox::MailboxStatus;
use sequence_core::store::MailboxSnapshot;
use sequence_core::time::{local_date, local_day_bounds};

/// A mailbox as it stands at an instant: its use and limit that local day and when it can
/// next send. What "why isn't it sending?" (`Engine::why_not_sending`) shows per pool mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MailboxOutlook {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Whether it sends, is paused or suspended.
    pub status: MailboxStatus,
    /// Its local date now.
    pub local_date: NaiveDate,
    /// Attempts made plus sends reserved on that date.
    pub used_today: u32,
    /// Its daily limit on that date (warm-up applied).
    pub limit_today: u32,
    /// The first instant from now at which it is inside its windows with capacity left on
    /// that local day: now or later today while it has both, else when a later day opens.
    /// `None` while it does not send, or when no window opens within the next weeks.
    pub next_opening: Option<DateTime<Utc>>,
}

impl MailboxOutlook {
    /// The outlook at `now` of the mailbox of `snap` (a snapshot taken at `now`).
    #[must_use]
    pub fn new(now: DateTime<Utc>, snap: &MailboxSnapshot) -> Self {
        let m = &snap.mailbox;
        let limit_today = m.limit_on(snap.local_date);
        let next_opening = if m.status() == MailboxStatus::Active {
            let (_, mut day_end) = local_day_bounds(m.timezone, snap.local_date);
            let mut from = (snap.used < limit_today).then_some(now);
            // Today, if it has capacity and open time left; else the first later local day
            // that opens with a limit above zero (a warm-up may start at zero).
            let mut found = None;
            for _ in 0..28 {
                if let Some(t) = from.and_then(|f| m.schedule.next_open(m.timezone, f)) {
                    let date = local_date(m.timezone, t);
                    if t < day_end && m.limit_on(date) > 0 {
                        found = Some(t);
                        break;
                    }
                }
                from = Some(day_end);
                day_end = local_day_bounds(m.timezone, local_date(m.timezone, day_end)).1;
            }
            found
        } else {
            None
        };
        Self {
            mailbox: m.id,
            status: m.status(),
            local_date: snap.local_date,
            used_today: snap.used,
            limit_today,
            next_opening,
        }
    }

    /// One clause for people: "mailbox M: 30 of 30 used on 2026-03-09, can send from T".
    #[must_use]
    pub fn clause(&self) -> String {
        let when = match (self.status, self.next_opening) {
            (MailboxStatus::Active, Some(t)) => format!("can send from {t}"),
            (MailboxStatus::Active, None) => "does not open in the next weeks".to_owned(),
            (status, _) => format!("is {status:?}"),
        };
        format!(
            "mailbox {}: {} of {} used on {}, {when}",
            self.mailbox, self.used_today, self.limit_today, self.local_date
        )
    }
}
