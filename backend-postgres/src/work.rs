//! The working set of one unit of work: the rows it read (under lock), changed in Rust with
//! the domain's own methods exactly as the memory store changes them, and the counter
//! deltas and mailboxes it touched; [`Work::flush`] writes it all back in a fixed order.
//!
//! Locks are taken in one order across the store, so that two units of work rarely wait on
//! each other in a cycle: contacts, enrollments, sends, then `mailbox_state` rows and
//! `mailbox_days` rows (each in key order), then the daily counters. Claims take
//! `mailbox_state` rows first, but with `SKIP LOCKED`, and sends with `SKIP LOCKED`, so they
//! never wait inside that order. A deadlock that slips through is retried by the caller.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::Enrollment;
use sequence_core::error::Entity;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{ScheduledSend, SendStatus};
use sequence_core::sequence::Sequence;
use sequence_core::store::StoreError;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::catalog;
use crate::error::{is_unique_violation, Db};
use crate::rows::{self, SendRow};

/// A mailbox-local day of a mailbox: the key of `mailbox_days`.
pub(crate) type DayKey = (TenantId, MailboxId, NaiveDate);

/// A row read into the working set, and whether it must be written back.
#[derive(Debug, Clone)]
pub(crate) struct Tracked<T> {
    pub(crate) row: T,
    pub(crate) dirty: bool,
}

impl<T> Tracked<T> {
    pub(crate) fn clean(row: T) -> Self {
        Self { row, dirty: false }
    }
}

/// How a unit of work changes a mailbox's latest attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastAttempt {
    /// The later of the stored one and this.
    AtLeast(DateTime<Utc>),
    /// Exactly this (a claim given back restores the one before it).
    Set(Option<DateTime<Utc>>),
}

/// What a unit of work knows, without reading its sends again, of a mailbox's sends once it
/// is written: its `mailbox_state` is then set from this (see [`Work::know`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KnownSends {
    /// Whether a send of the mailbox is in flight.
    pub(crate) in_flight: bool,
    /// The earliest planned send's instant.
    pub(crate) next_planned: NextPlanned,
}

/// The earliest planned send of a mailbox, as a unit of work knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NextPlanned {
    /// As stored: the unit changed no planned send of the mailbox.
    Stored,
    /// This one (none when `None`), read by the unit under the mailbox's lock.
    At(Option<DateTime<Utc>>),
}

/// The rows and deltas of one unit of work.
#[derive(Debug, Default)]
pub(crate) struct Work {
    pub(crate) contacts: HashMap<ContactId, Tracked<Contact>>,
    pub(crate) enrollments: HashMap<EnrollmentId, Tracked<Enrollment>>,
    pub(crate) sends: HashMap<SendId, Tracked<SendRow>>,
    pub(crate) sequences: HashMap<SequenceId, Tracked<Sequence>>,
    pub(crate) mailboxes: HashMap<MailboxId, Tracked<Mailbox>>,
    /// `used` as read under lock (apply_plan), before this unit's deltas.
    pub(crate) base_used: HashMap<DayKey, i64>,
    /// Deltas of (`used`, `attempts`) per mailbox-day.
    days: BTreeMap<DayKey, (i64, i64)>,
    new_starts: BTreeMap<(TenantId, NaiveDate, SequenceId), i64>,
    per_domain: BTreeMap<(TenantId, NaiveDate, String), i64>,
    /// Mailboxes whose planned or sending sends changed: their `mailbox_state` is recomputed.
    touched: BTreeSet<(TenantId, MailboxId)>,
    last_attempt: BTreeMap<(TenantId, MailboxId), LastAttempt>,
    /// Touched mailboxes whose sends the unit knows (their state is set, not recomputed).
    known: HashMap<(TenantId, MailboxId), KnownSends>,
    /// `mailbox_state` rows this unit locked already.
    state_locked: HashSet<(TenantId, MailboxId)>,
    /// Reservations released by cancellations, as (tenant, mailbox, local date): the unit
    /// wakes enrollments that can use them (see `changes::wake_for_released`).
    pub(crate) released: Vec<DayKey>,
    /// Enrollments loaded without a lock, from the due read a plan was made from, with the
    /// version each must still be stored at when it is written (see `plan::apply_plan`).
    pub(crate) unlocked: HashMap<EnrollmentId, u64>,
}

impl Work {
    // ---- enrollments ---------------------------------------------------------------------

    /// Change a loaded enrollment with `f`; it is written back when its version moved (every
    /// domain change bumps it).
    pub(crate) fn change_enrollment<T>(
        &mut self,
        id: EnrollmentId,
        f: impl FnOnce(&mut Enrollment) -> T,
    ) -> Option<T> {
        let t = self.enrollments.get_mut(&id)?;
        let before = t.row.version();
        let out = f(&mut t.row);
        if t.row.version() != before {
            t.dirty = true;
        }
        Some(out)
    }

    /// Replace a loaded enrollment.
    pub(crate) fn put_enrollment(&mut self, e: Enrollment) {
        self.enrollments.insert(
            e.id,
            Tracked {
                row: e,
                dirty: true,
            },
        );
    }

    /// The enrollment of a send that was called off is looked at again from `now`.
    pub(crate) fn release_enrollment(&mut self, id: EnrollmentId, now: DateTime<Utc>) {
        self.change_enrollment(id, |e| {
            let _ = e.release_planned(now);
        });
    }

    /// At least once: a loaded enrollment whose send's lease ran out keeps the mailbox the
    /// attempt was made from (sticky) and is due again at `now`.
    pub(crate) fn release_attempted(&mut self, send: &ScheduledSend, now: DateTime<Utc>) {
        self.change_enrollment(send.enrollment, |e| {
            e.attempted_on(send.mailbox());
            let _ = e.release_planned(now);
        });
    }

    /// At most once: a loaded enrollment records the uncertain send of its step and is due
    /// at `now`, so the next planner moves it past the step.
    pub(crate) fn record_uncertain(&mut self, send: &ScheduledSend, now: DateTime<Utc>) {
        self.change_enrollment(send.enrollment, |e| {
            let _ = e.send_uncertain(send.step, send.message_id.clone(), send.mailbox(), now);
        });
    }

    // ---- sends -----------------------------------------------------------------------------

    /// Change a loaded send with `f`, writing it back and recomputing its mailbox (before and
    /// after: a re-plan may move it).
    pub(crate) fn change_send<T>(
        &mut self,
        id: SendId,
        f: impl FnOnce(&mut SendRow) -> T,
    ) -> Option<T> {
        let t = self.sends.get_mut(&id)?;
        let before = (t.row.send.tenant, t.row.send.mailbox());
        let out = f(&mut t.row);
        t.dirty = true;
        let after = (t.row.send.tenant, t.row.send.mailbox());
        self.touch(before.0, before.1);
        self.touch(after.0, after.1);
        Some(out)
    }

    /// A new send.
    pub(crate) fn insert_send(&mut self, row: SendRow) {
        self.touch(row.send.tenant, row.send.mailbox());
        self.sends.insert(row.send.id, Tracked { row, dirty: true });
    }

    /// Cancel a planned send (releasing its reservation and its daily counts) or one waiting
    /// for a retry (which holds none); other sends are left as they are. Returns whether the
    /// send was cancelled. The send must be loaded.
    pub(crate) fn cancel_send(&mut self, id: SendId, reason: &str) -> bool {
        let Some(status) = self.sends.get(&id).map(|t| t.row.send.status()) else {
            return false;
        };
        if !matches!(status, SendStatus::Planned | SendStatus::RetryWait) {
            return false;
        }
        let done = self.change_send(id, |row| {
            row.send.cancel(reason).ok().map(|()| {
                row.prev_last_attempt = None;
                (row.send.clone(), row.domain.clone(), row.pending.take())
            })
        });
        let Some(Some((send, domain, pending))) = done else {
            return false;
        };
        if status == SendStatus::Planned {
            let key = (send.tenant, send.mailbox(), send.local_date());
            self.unreserve(key);
            self.released.push(key);
        }
        if let Some((date, new_start)) = pending {
            self.daily_sub(date, &send, &domain, new_start);
        }
        true
    }

    // ---- counters --------------------------------------------------------------------------

    /// Attempts plus reservations on a mailbox-day: the value read under lock plus this
    /// unit's changes.
    pub(crate) fn used_on(&self, key: DayKey) -> i64 {
        self.base_used.get(&key).copied().unwrap_or(0)
            + self.days.get(&key).map_or(0, |(used, _)| *used)
    }

    pub(crate) fn reserve(&mut self, key: DayKey) {
        self.days.entry(key).or_default().0 += 1;
    }

    pub(crate) fn unreserve(&mut self, key: DayKey) {
        self.days.entry(key).or_default().0 -= 1;
    }

    pub(crate) fn count_attempt(&mut self, key: DayKey) {
        self.days.entry(key).or_default().1 += 1;
    }

    pub(crate) fn uncount_attempt(&mut self, key: DayKey) {
        self.days.entry(key).or_default().1 -= 1;
    }

    pub(crate) fn daily_add(
        &mut self,
        date: NaiveDate,
        send: &ScheduledSend,
        domain: &str,
        new_start: bool,
    ) {
        self.daily_delta(date, send, domain, new_start, 1);
    }

    pub(crate) fn daily_sub(
        &mut self,
        date: NaiveDate,
        send: &ScheduledSend,
        domain: &str,
        new_start: bool,
    ) {
        self.daily_delta(date, send, domain, new_start, -1);
    }

    fn daily_delta(
        &mut self,
        date: NaiveDate,
        send: &ScheduledSend,
        domain: &str,
        new_start: bool,
        delta: i64,
    ) {
        if new_start {
            *self
                .new_starts
                .entry((send.tenant, date, send.sequence))
                .or_default() += delta;
        }
        *self
            .per_domain
            .entry((send.tenant, date, domain.to_owned()))
            .or_default() += delta;
    }

    /// Recompute a mailbox's `mailbox_state` from its sends when this unit is written (what
    /// the unit knew of them, [`Work::know`], no longer holds).
    pub(crate) fn touch(&mut self, tenant: TenantId, mailbox: MailboxId) {
        self.touched.insert((tenant, mailbox));
        self.known.remove(&(tenant, mailbox));
    }

    /// Set a mailbox's `mailbox_state` from `sends` when this unit is written, instead of
    /// recomputing it from its sends: for a unit that changed exactly what it knows of them
    /// (a claim: the earliest planned send is now in flight; a completion: the send in
    /// flight is done). Called after the unit's changes to the mailbox's sends; a later
    /// change forgets it.
    ///
    /// A value the unit read before another unit's change to the mailbox's sends commits is
    /// still never left stale: every unit that changes a mailbox's sends recomputes its
    /// state under the row's lock afterwards, and this unit holds that lock until it ends.
    pub(crate) fn know(&mut self, tenant: TenantId, mailbox: MailboxId, sends: KnownSends) {
        self.touched.insert((tenant, mailbox));
        self.known.insert((tenant, mailbox), sends);
    }

    /// The `mailbox_state` rows of `keys` are locked by this unit already.
    pub(crate) fn state_locked(&mut self, keys: impl IntoIterator<Item = (TenantId, MailboxId)>) {
        self.state_locked.extend(keys);
    }

    /// Change a mailbox's latest attempt when this unit is written.
    pub(crate) fn set_last_attempt(
        &mut self,
        tenant: TenantId,
        mailbox: MailboxId,
        change: LastAttempt,
    ) {
        self.touched.insert((tenant, mailbox));
        self.last_attempt.insert((tenant, mailbox), change);
    }

    // ---- writing ---------------------------------------------------------------------------

    /// Write every changed row and every delta, then recompute the touched mailboxes'
    /// `mailbox_state`; the working set is clean afterwards (its rows stay readable).
    pub(crate) async fn flush(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let contacts: Vec<&Contact> = dirty(&self.contacts);
        rows::upsert_contacts(conn, &contacts).await?;
        // Enrollments that end first: one that opens in the same set may take their
        // (sequence, contact) only once they have left the open-enrollment index.
        let (ending, open): (Vec<&Enrollment>, Vec<&Enrollment>) = dirty(&self.enrollments)
            .into_iter()
            .partition(|e| e.is_final());
        rows::update_enrollments(conn, &ending, &self.unlocked).await?;
        rows::update_enrollments(conn, &open, &self.unlocked)
            .await
            .map_err(|e| {
                // The check before the write passed, so another unit opened an enrollment
                // of the same (sequence, contact) meanwhile: the index refuses this one.
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists {
                        entity: Entity::Enrollment,
                        id: "an open enrollment of the same sequence and contact was stored \
                             meanwhile"
                            .to_owned(),
                    }
                } else {
                    e
                }
            })?;
        for s in dirty(&self.sequences) {
            catalog::write_sequence(conn, s).await?;
        }
        for m in dirty(&self.mailboxes) {
            catalog::write_mailbox(conn, m).await?;
            self.touched.insert((m.tenant, m.id));
        }
        let sends: Vec<&SendRow> = dirty(&self.sends);
        rows::upsert_sends(conn, &sends).await?;
        let to_lock: Vec<(TenantId, MailboxId)> = self
            .touched
            .iter()
            .filter(|k| !self.state_locked.contains(k))
            .copied()
            .collect();
        lock_mailbox_state(conn, &to_lock).await?;
        self.state_locked.extend(to_lock);
        self.write_days(conn).await?;
        self.write_daily(conn).await?;
        let touched: Vec<(TenantId, MailboxId)> = self.touched.iter().copied().collect();
        write_mailbox_state(conn, &touched, &self.known, &self.last_attempt).await?;

        for t in self.contacts.values_mut() {
            t.dirty = false;
        }
        for t in self.enrollments.values_mut() {
            t.dirty = false;
        }
        for t in self.sends.values_mut() {
            t.dirty = false;
        }
        for t in self.sequences.values_mut() {
            t.dirty = false;
        }
        for t in self.mailboxes.values_mut() {
            t.dirty = false;
        }
        for (key, (used, _)) in std::mem::take(&mut self.days) {
            *self.base_used.entry(key).or_default() += used;
        }
        self.new_starts.clear();
        self.per_domain.clear();
        self.touched.clear();
        self.last_attempt.clear();
        self.known.clear();
        Ok(())
    }

    async fn write_days(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let changed: Vec<(&DayKey, &(i64, i64))> = self
            .days
            .iter()
            .filter(|(_, (u, a))| *u != 0 || *a != 0)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let tenant: Vec<Uuid> = changed.iter().map(|((t, _, _), _)| t.0).collect();
        let mailbox: Vec<Uuid> = changed.iter().map(|((_, m, _), _)| m.0).collect();
        let date: Vec<NaiveDate> = changed.iter().map(|((_, _, d), _)| *d).collect();
        let used: Vec<i32> = changed.iter().map(|(_, (u, _))| clamp(*u)).collect();
        let attempts: Vec<i32> = changed.iter().map(|(_, (_, a))| clamp(*a)).collect();
        // In key order (the map's), so that two writers lock the rows in the same order. A
        // new row never gets a negative delta (a release follows a reservation), and the
        // counts never go below zero.
        sqlx::query(
            "INSERT INTO mailbox_days AS md (tenant_id, mailbox_id, local_date, used, attempts) \
             SELECT t, m, d, u, a \
             FROM unnest($1::uuid[], $2::uuid[], $3::date[], $4::int4[], $5::int4[]) \
                 WITH ORDINALITY AS x(t, m, d, u, a, n) \
             ORDER BY n \
             ON CONFLICT (tenant_id, mailbox_id, local_date) DO UPDATE SET \
                 used = greatest(md.used + EXCLUDED.used, 0), \
                 attempts = greatest(md.attempts + EXCLUDED.attempts, 0)",
        )
        .bind(tenant)
        .bind(mailbox)
        .bind(date)
        .bind(used)
        .bind(attempts)
        .execute(&mut *conn)
        .await
        .db()?;
        Ok(())
    }

    async fn write_daily(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let starts: Vec<_> = self.new_starts.iter().filter(|(_, n)| **n != 0).collect();
        if !starts.is_empty() {
            sqlx::query(
                "INSERT INTO daily_new_starts AS c (tenant_id, day, sequence_id, count) \
                 SELECT t, d, s, n FROM unnest($1::uuid[], $2::date[], $3::uuid[], $4::int4[]) \
                     WITH ORDINALITY AS x(t, d, s, n, o) ORDER BY o \
                 ON CONFLICT (tenant_id, day, sequence_id) DO UPDATE \
                     SET count = greatest(c.count + EXCLUDED.count, 0)",
            )
            .bind(starts.iter().map(|((t, _, _), _)| t.0).collect::<Vec<_>>())
            .bind(starts.iter().map(|((_, d, _), _)| *d).collect::<Vec<_>>())
            .bind(starts.iter().map(|((_, _, s), _)| s.0).collect::<Vec<_>>())
            .bind(starts.iter().map(|(_, n)| clamp(**n)).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .db()?;
        }
        let domains: Vec<_> = self.per_domain.iter().filter(|(_, n)| **n != 0).collect();
        if !domains.is_empty() {
            sqlx::query(
                "INSERT INTO daily_domain_sends AS c (tenant_id, day, domain, count) \
                 SELECT t, d, s, n FROM unnest($1::uuid[], $2::date[], $3::text[], $4::int4[]) \
                     WITH ORDINALITY AS x(t, d, s, n, o) ORDER BY o \
                 ON CONFLICT (tenant_id, day, domain) DO UPDATE \
                     SET count = greatest(c.count + EXCLUDED.count, 0)",
            )
            .bind(domains.iter().map(|((t, _, _), _)| t.0).collect::<Vec<_>>())
            .bind(domains.iter().map(|((_, d, _), _)| *d).collect::<Vec<_>>())
            .bind(
                domains
                    .iter()
                    .map(|((_, _, s), _)| s.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(domains.iter().map(|(_, n)| clamp(**n)).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .db()?;
        }
        Ok(())
    }
}

/// A delta as an `integer`.
fn clamp(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

/// The rows of `map` that must be written, in key order.
fn dirty<K: Ord, T>(map: &HashMap<K, Tracked<T>>) -> Vec<&T> {
    let mut rows: Vec<(&K, &T)> = map
        .iter()
        .filter(|(_, t)| t.dirty)
        .map(|(k, t)| (k, &t.row))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Lock the `mailbox_state` rows of `keys`, in key order.
pub(crate) async fn lock_mailbox_state(
    conn: &mut PgConnection,
    keys: &[(TenantId, MailboxId)],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "SELECT 1 FROM mailbox_state ms \
         JOIN unnest($1::uuid[], $2::uuid[]) AS k(t, m) \
             ON ms.tenant_id = k.t AND ms.mailbox_id = k.m \
         ORDER BY ms.tenant_id, ms.mailbox_id \
         FOR UPDATE OF ms",
    )
    .bind(keys.iter().map(|(t, _)| t.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|(_, m)| m.0).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// Lock the `mailbox_days` rows of `keys` (made when missing), in key order, and read their
/// `used`.
pub(crate) async fn lock_mailbox_days(
    conn: &mut PgConnection,
    keys: &BTreeSet<DayKey>,
) -> Result<HashMap<DayKey, i64>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let tenant: Vec<Uuid> = keys.iter().map(|(t, _, _)| t.0).collect();
    let mailbox: Vec<Uuid> = keys.iter().map(|(_, m, _)| m.0).collect();
    let date: Vec<NaiveDate> = keys.iter().map(|(_, _, d)| *d).collect();
    sqlx::query(
        "INSERT INTO mailbox_days (tenant_id, mailbox_id, local_date) \
         SELECT t, m, d FROM unnest($1::uuid[], $2::uuid[], $3::date[]) \
             WITH ORDINALITY AS k(t, m, d, n) ORDER BY n \
         ON CONFLICT DO NOTHING",
    )
    .bind(&tenant)
    .bind(&mailbox)
    .bind(&date)
    .execute(&mut *conn)
    .await
    .db()?;
    let rows: Vec<(Uuid, Uuid, NaiveDate, i32)> = sqlx::query_as(
        "SELECT md.tenant_id, md.mailbox_id, md.local_date, md.used FROM mailbox_days md \
         JOIN unnest($1::uuid[], $2::uuid[], $3::date[]) AS k(t, m, d) \
             ON md.tenant_id = k.t AND md.mailbox_id = k.m AND md.local_date = k.d \
         ORDER BY md.tenant_id, md.mailbox_id, md.local_date \
         FOR UPDATE OF md",
    )
    .bind(&tenant)
    .bind(&mailbox)
    .bind(&date)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(rows
        .into_iter()
        .map(|(t, m, d, used)| ((TenantId(t), MailboxId(m), d), i64::from(used)))
        .collect())
}

/// Recompute `mailbox_state` for `keys` (locked by the caller) from their sends: whether a
/// send is in flight, the earliest planned send, and when it becomes claimable; with the
/// latest attempts changed as `last_attempt` says.
pub(crate) async fn refresh_mailbox_state(
    conn: &mut PgConnection,
    keys: &[(TenantId, MailboxId)],
    last_attempt: &BTreeMap<(TenantId, MailboxId), LastAttempt>,
) -> Result<(), StoreError> {
    write_mailbox_state(conn, keys, &HashMap::new(), last_attempt).await
}

/// Write `mailbox_state` for `keys` (locked by the caller): whether a send is in flight,
/// the earliest planned send, and when it becomes claimable, with the latest attempts
/// changed as `last_attempt` says. A mailbox in `known` takes the first two from there;
/// the others recompute them from their sends (two index scans of `sends`, whose partial
/// indexes hold the dead entries of a busy queue: a claim and a completion skip them).
async fn write_mailbox_state(
    conn: &mut PgConnection,
    keys: &[(TenantId, MailboxId)],
    known: &HashMap<(TenantId, MailboxId), KnownSends>,
    last_attempt: &BTreeMap<(TenantId, MailboxId), LastAttempt>,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let (mode, at) = last_attempt_changes(keys, last_attempt);
    // Per mailbox: where its sends' state comes from (0 recomputed, 1 known with the stored
    // next planned send, 2 known with `next`), whether one is in flight, and `next`.
    let mut source: Vec<i16> = Vec::with_capacity(keys.len());
    let mut in_flight: Vec<bool> = Vec::with_capacity(keys.len());
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(keys.len());
    for key in keys {
        let (from, flying, at) = match known.get(key) {
            None => (0, false, None),
            Some(k) => match k.next_planned {
                NextPlanned::Stored => (1, k.in_flight, None),
                NextPlanned::At(at) => (2, k.in_flight, at),
            },
        };
        source.push(from);
        in_flight.push(flying);
        next.push(at);
    }
    sqlx::query(
        "WITH n AS ( \
             SELECT ms.tenant_id, ms.mailbox_id, \
                 CASE k.mode WHEN 1 THEN greatest(ms.last_attempt_at, k.at) \
                             WHEN 2 THEN k.at \
                             ELSE ms.last_attempt_at END AS last_attempt_at, \
                 CASE WHEN k.source <> 0 THEN k.in_flight \
                      ELSE EXISTS (SELECT 1 FROM sends s WHERE s.tenant_id = ms.tenant_id \
                          AND s.mailbox_id = ms.mailbox_id AND s.status = 'sending') END \
                     AS in_flight, \
                 CASE k.source WHEN 1 THEN ms.next_planned_at \
                               WHEN 2 THEN k.next \
                      ELSE (SELECT min(s.planned_at) FROM sends s \
                          WHERE s.tenant_id = ms.tenant_id AND s.mailbox_id = ms.mailbox_id \
                            AND s.status = 'planned') END AS next_planned_at, \
                 m.min_gap_seconds \
             FROM unnest($1::uuid[], $2::uuid[], $3::int2[], $4::timestamptz[], $5::int2[], \
                     $6::bool[], $7::timestamptz[]) \
                 AS k(tenant_id, mailbox_id, mode, at, source, in_flight, next) \
             JOIN mailbox_state ms ON ms.tenant_id = k.tenant_id AND ms.mailbox_id = k.mailbox_id \
             JOIN mailboxes m ON m.tenant_id = ms.tenant_id AND m.id = ms.mailbox_id) \
         UPDATE mailbox_state ms SET last_attempt_at = n.last_attempt_at, \
             in_flight = n.in_flight, next_planned_at = n.next_planned_at, \
             ready_at = CASE WHEN n.in_flight OR n.next_planned_at IS NULL THEN NULL \
                 ELSE greatest(n.next_planned_at, \
                     n.last_attempt_at + make_interval(secs => n.min_gap_seconds)) END \
         FROM n WHERE ms.tenant_id = n.tenant_id AND ms.mailbox_id = n.mailbox_id",
    )
    .bind(keys.iter().map(|(t, _)| t.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|(_, m)| m.0).collect::<Vec<_>>())
    .bind(mode)
    .bind(at)
    .bind(source)
    .bind(in_flight)
    .bind(next)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// How each of `keys` changes its latest attempt, as the statements that write
/// `mailbox_state` take it: a mode (0 kept, 1 at least `at`, 2 set to `at`) and an instant.
fn last_attempt_changes(
    keys: &[(TenantId, MailboxId)],
    last_attempt: &BTreeMap<(TenantId, MailboxId), LastAttempt>,
) -> (Vec<i16>, Vec<Option<DateTime<Utc>>>) {
    keys.iter()
        .map(|key| match last_attempt.get(key) {
            None => (0, None),
            Some(LastAttempt::AtLeast(t)) => (1, Some(*t)),
            Some(LastAttempt::Set(t)) => (2, *t),
        })
        .unzip()
}
