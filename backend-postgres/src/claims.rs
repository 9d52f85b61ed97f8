//! Dispatch: claims under a lease, the re-check read, completions, releases and expired
//! leases, and the next wake-up.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::Enrollment;
use sequence_core::error::Entity;
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::send::{Lease, ScheduledSend, SendStatus};
use sequence_core::sequence::Sequence;
use sequence_core::store::{ChangeSet, ClaimedSend, SendCompletion, SendContext, StoreError};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::catalog::{self, conflict};
use crate::changes::{
    check_changes, load_changes, load_enrollments, load_mailboxes, load_sends,
    open_enrollments_of_pairs, wake_for_released, write_changes,
};
use crate::error::Db;
use crate::rows::{doc, int, json_text, limit, name, opt_doc, send_columns, uint, SendRow};
use crate::work::{KnownSends, LastAttempt, NextPlanned, Tracked, Work};

/// The claim's first statement: the mailboxes whose earliest planned send is claimable at
/// `$1` (nothing in flight, the gap kept), earliest first, at most `$2`, each locked or
/// passed over when another claimer holds it. Driven from `mailbox_state` through its
/// partial index on `ready_at`, never by scanning sends; `MATERIALIZED` so that the locked
/// set is exactly the limited one.
pub(crate) const CLAIM_MAILBOXES: &str = "\
    WITH ready AS MATERIALIZED ( \
        SELECT tenant_id, mailbox_id, last_attempt_at, ready_at FROM mailbox_state \
        WHERE ready_at IS NOT NULL AND ready_at <= $1 \
        ORDER BY ready_at, mailbox_id \
        LIMIT $2 \
        FOR UPDATE SKIP LOCKED) \
    SELECT tenant_id, mailbox_id, last_attempt_at FROM ready ORDER BY ready_at, mailbox_id";

pub(crate) async fn claim_sends(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease_for: Duration,
    max: usize,
) -> Result<Vec<ClaimedSend>, StoreError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let until = now
        .checked_add_signed(lease_for)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let ready: Vec<(Uuid, Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(CLAIM_MAILBOXES)
        .bind(now)
        .bind(limit(max))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    if ready.is_empty() {
        return Ok(Vec::new());
    }
    // A new statement sees everything committed by the units that held these rows before:
    // each mailbox's earliest planned send now, if it is due and nothing is in flight.
    let tenants: Vec<Uuid> = ready.iter().map(|r| r.0).collect();
    let mailboxes: Vec<Uuid> = ready.iter().map(|r| r.1).collect();
    // With each, the instant of the mailbox's next planned send after it: what the
    // mailbox's earliest planned send is once this one is claimed.
    let picked: Vec<(Uuid, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT s.id, ( \
                 SELECT n.planned_at FROM sends n \
                 WHERE n.tenant_id = k.t AND n.mailbox_id = k.m AND n.status = 'planned' \
                 ORDER BY n.planned_at, n.id OFFSET 1 LIMIT 1) AS next_at \
         FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(t, m, n) \
         CROSS JOIN LATERAL ( \
             SELECT id, planned_at FROM sends \
             WHERE tenant_id = k.t AND mailbox_id = k.m AND status = 'planned' \
             ORDER BY planned_at, id LIMIT 1) s \
         WHERE s.planned_at <= $3 \
           AND NOT EXISTS (SELECT 1 FROM sends f WHERE f.tenant_id = k.t \
               AND f.mailbox_id = k.m AND f.status = 'sending') \
         ORDER BY k.n",
    )
    .bind(&tenants)
    .bind(&mailboxes)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    // Lock them; one another unit is changing right now is left for the next claim. By id
    // alone: with the status in the statement, a plan cached while `sends` looked small
    // (fresh statistics of a new or emptied table) scans every planned send through the
    // partial index for each claim. One that is no longer planned is locked until this
    // unit ends and passed over below (`claim` refuses it).
    let rows = sqlx::query(concat!(
        "SELECT ",
        send_columns!(),
        ", e.doc AS enrollment_doc, c.doc AS contact_doc \
         FROM sends s \
         JOIN enrollments e ON e.tenant_id = s.tenant_id AND e.id = s.enrollment_id \
         JOIN contacts c ON c.tenant_id = s.tenant_id AND c.id = s.contact_id \
         WHERE s.id = ANY($1) \
         FOR UPDATE OF s SKIP LOCKED"
    ))
    .bind(picked.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut locked: HashMap<SendId, (SendRow, Enrollment, Contact)> = HashMap::new();
    for r in &rows {
        let row = SendRow::read(r)?;
        let enrollment: Enrollment = doc(r, "enrollment_doc")?;
        let contact: Contact = doc(r, "contact_doc")?;
        locked.insert(row.send.id, (row, enrollment, contact));
    }
    let last_of: HashMap<(Uuid, Uuid), Option<DateTime<Utc>>> =
        ready.iter().map(|(t, m, last)| ((*t, *m), *last)).collect();

    let mut work = Work::default();
    work.state_locked(ready.iter().map(|(t, m, _)| (TenantId(*t), MailboxId(*m))));
    // Every mailbox locked is recomputed with this unit, claimed from or not: one whose
    // earliest send another unit holds, or whose state is stale, is not picked again first.
    for (t, m, _) in &ready {
        work.touch(TenantId(*t), MailboxId(*m));
    }
    let mut out = Vec::with_capacity(locked.len());
    for (id, next_at) in picked {
        let Some((mut row, enrollment, contact)) = locked.remove(&SendId(id)) else {
            continue;
        };
        let (tenant, mailbox) = (row.send.tenant, row.send.mailbox());
        let prev = last_of.get(&(tenant.0, mailbox.0)).copied().flatten();
        let lease = Lease {
            token: Uuid::new_v4(),
            attempt: row.send.attempts().saturating_add(1),
            until,
        };
        if row.send.claim(lease).is_err() {
            continue;
        }
        row.prev_last_attempt = prev;
        work.set_last_attempt(
            tenant,
            mailbox,
            LastAttempt::Set(Some(prev.map_or(now, |p| p.max(now)))),
        );
        work.count_attempt((tenant, mailbox, row.send.local_date()));
        out.push(ClaimedSend {
            send: row.send.clone(),
            lease,
            enrollment,
            contact,
        });
        work.sends.insert(row.send.id, Tracked { row, dirty: true });
        // The mailbox has this send in flight, and the one after it is its earliest planned
        // send now.
        let sends = KnownSends {
            in_flight: true,
            next_planned: NextPlanned::At(next_at),
        };
        work.know(tenant, mailbox, sends);
    }
    work.flush(conn).await?;
    Ok(out)
}

pub(crate) async fn send_context(
    conn: &mut PgConnection,
    tenant: TenantId,
    send: SendId,
) -> Result<Option<SendContext>, StoreError> {
    Ok(send_contexts(conn, &[(tenant, send)])
        .await?
        .pop()
        .flatten())
}

/// [`send_context`] of each of `sends`, in order, in three statements: the sends with
/// their enrollments, contacts and attempts, then each of their mailboxes and sequences
/// once, by the store's own loaders (a sequence with a pool of hundreds of mailboxes is a
/// large document: a wave of sends of one sequence reads it once, not once per send).
pub(crate) async fn send_contexts(
    conn: &mut PgConnection,
    sends: &[(TenantId, SendId)],
) -> Result<Vec<Option<SendContext>>, StoreError> {
    if sends.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<Uuid> = sends.iter().map(|(t, _)| t.0).collect();
    let ids: Vec<Uuid> = sends.iter().map(|(_, s)| s.0).collect();
    let rows = sqlx::query(
        "SELECT k.n, s.tenant_id, s.mailbox_id, s.sequence_id, \
             e.doc AS enrollment_doc, c.doc AS contact_doc, \
             coalesce(md.attempts, 0) AS attempts \
         FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(t, id, n) \
         JOIN sends s ON s.tenant_id = k.t AND s.id = k.id \
         LEFT JOIN enrollments e ON e.tenant_id = s.tenant_id AND e.id = s.enrollment_id \
         LEFT JOIN contacts c ON c.tenant_id = s.tenant_id AND c.id = s.contact_id \
         LEFT JOIN mailbox_days md ON md.tenant_id = s.tenant_id \
             AND md.mailbox_id = s.mailbox_id AND md.local_date = s.local_date",
    )
    .bind(&tenants)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    struct Found {
        at: usize,
        tenant: Uuid,
        mailbox: Uuid,
        sequence: Uuid,
        enrollment: Option<Enrollment>,
        contact: Option<Contact>,
        attempts: i32,
    }
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        let n: i64 = r.try_get("n").db()?;
        found.push(Found {
            at: usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX),
            tenant: r.try_get("tenant_id").db()?,
            mailbox: r.try_get("mailbox_id").db()?,
            sequence: r.try_get("sequence_id").db()?,
            enrollment: opt_doc(r, "enrollment_doc")?,
            contact: opt_doc(r, "contact_doc")?,
            attempts: r.try_get("attempts").db()?,
        });
    }
    let sequence_ids: Vec<SequenceId> = found
        .iter()
        .map(|f| SequenceId(f.sequence))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let sequences: HashMap<SequenceId, Sequence> = catalog::get_sequences(conn, &sequence_ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut work = Work::default();
    load_mailboxes(
        conn,
        &mut work,
        found.iter().map(|f| MailboxId(f.mailbox)),
        false,
    )
    .await?;
    let mut out: Vec<Option<SendContext>> = vec![None; sends.len()];
    for f in found {
        if let Some(slot) = out.get_mut(f.at) {
            *slot = Some(SendContext {
                enrollment: f.enrollment,
                contact: f.contact,
                mailbox: work
                    .mailboxes
                    .get(&MailboxId(f.mailbox))
                    .map(|t| &t.row)
                    .filter(|m| m.tenant.0 == f.tenant)
                    .cloned(),
                sequence: sequences
                    .get(&SequenceId(f.sequence))
                    .filter(|s| s.tenant.0 == f.tenant)
                    .cloned(),
                attempts_on_day: uint(f.attempts),
            });
        }
    }
    Ok(out)
}

/// The checks of [`complete_send`] on the send (loaded in `work`): it exists, the lease
/// holds, the outcome is one a completion records, and the enrollment is the send's. The
/// send's (tenant, mailbox).
fn check_completion(
    work: &Work,
    completion: &SendCompletion,
) -> Result<(TenantId, MailboxId), StoreError> {
    let SendCompletion {
        send,
        lease,
        enrollment,
        ..
    } = completion;
    let id = send.id;
    let Some(row) = work.sends.get(&id).map(|t| &t.row.send) else {
        return Err(StoreError::not_found(Entity::Send, id));
    };
    if row.check_lease(lease).is_err() {
        return Err(StoreError::LeaseLost { send: id });
    }
    if !matches!(
        send.status(),
        SendStatus::Sent | SendStatus::RetryWait | SendStatus::Failed
    ) {
        return Err(StoreError::Invalid(format!(
            "complete_send: send {id} must be sent, retry_wait or failed, not {:?}",
            send.status()
        )));
    }
    if enrollment.id != row.enrollment {
        return Err(StoreError::not_found(Entity::Enrollment, enrollment.id));
    }
    Ok((row.tenant, row.mailbox()))
}

/// Record a checked completion in `work`: the send's outcome under its lease, the mailbox's
/// latest attempt, and its change set (the enrollment first).
fn record_completion(
    work: &mut Work,
    completion: &SendCompletion,
    all: &ChangeSet,
    (tenant, mailbox): (TenantId, MailboxId),
    now: DateTime<Utc>,
) {
    let SendCompletion {
        send,
        lease,
        attempted_at,
        ..
    } = completion;
    // The mailbox's latest attempt is when the transport was called, not the claim.
    work.set_last_attempt(tenant, mailbox, LastAttempt::AtLeast(*attempted_at));
    let at = send.sent_at().unwrap_or(now);
    let error = send.last_error().unwrap_or_default().to_owned();
    let outcome = send.status();
    work.change_send(send.id, |row| {
        let done = match outcome {
            SendStatus::Sent => row.send.mark_sent(lease, at),
            _ => row
                .send
                .mark_failed(lease, error, outcome == SendStatus::RetryWait),
        };
        if done.is_ok() {
            // The attempt is made: its counts stay.
            row.pending = None;
            row.prev_last_attempt = None;
        }
    });
    write_changes(work, all, Some(tenant));
}

/// The change set of a completion: its enrollment first, then its other changes.
fn changes_of(completion: &SendCompletion) -> ChangeSet {
    let mut all = completion.changes.clone();
    all.enrollments.insert(
        0,
        (completion.enrollment.clone(), completion.enrollment_version),
    );
    all
}

pub(crate) async fn complete_send(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    completion: &SendCompletion,
) -> Result<(), StoreError> {
    let mut work = Work::default();
    load_sends(conn, &mut work, [completion.send.id]).await?;
    let key = check_completion(&work, completion)?;
    let all = changes_of(completion);
    load_changes(conn, &mut work, &all).await?;
    check_changes(conn, &work, &all, Some(key.0)).await?;
    // Nothing can fail from here on but the writes themselves.
    record_completion(&mut work, completion, &all, key, now);
    work.flush(conn).await?;
    wake_for_released(conn, &mut work, now).await
}

/// Completions that change nothing but their send and enrollment, each send and each
/// enrollment at most once (the caller sees to both), recorded in one unit of work with
/// one statement per kind: the sends and the enrollments loaded together, each completion
/// checked as [`complete_send`] checks it, the ones that pass written together. One answer
/// per completion, in order.
pub(crate) async fn complete_sends(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    completions: &[&SendCompletion],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut work = Work::default();
    load_sends(conn, &mut work, completions.iter().map(|c| c.send.id)).await?;
    let mut checked: Vec<Result<(TenantId, MailboxId), StoreError>> = completions
        .iter()
        .map(|c| check_completion(&work, c))
        .collect();
    let passing = || {
        completions
            .iter()
            .zip(checked.iter())
            .filter(|(_, k)| k.is_ok())
            .map(|(c, _)| *c)
    };
    load_enrollments(
        conn,
        &mut work,
        passing().map(|c| (c.enrollment.tenant, c.enrollment.id)),
    )
    .await?;
    let all: Vec<ChangeSet> = completions.iter().map(|c| changes_of(c)).collect();
    let together = ChangeSet {
        enrollments: passing()
            .map(|c| (c.enrollment.clone(), c.enrollment_version))
            .collect(),
        ..ChangeSet::default()
    };
    let open_by_pair = open_enrollments_of_pairs(conn, &together).await?;
    for (c, key) in completions.iter().zip(checked.iter_mut()) {
        if let Ok((tenant, _)) = key {
            if let Err(e) = check_enrollment(&work, &open_by_pair, c, *tenant) {
                *key = Err(e);
            }
        }
    }
    let mut answers = Vec::with_capacity(completions.len());
    // The mailboxes of the recorded completions, while each changed nothing but its send
    // and enrollment and took its send out of flight; `None` once one did more.
    let mut idle: Option<Vec<(TenantId, MailboxId)>> = Some(Vec::new());
    for ((c, all), key) in completions.iter().zip(&all).zip(checked) {
        if let Ok(key) = key {
            record_completion(&mut work, c, all, key, now);
            let out = work
                .sends
                .get(&c.send.id)
                .is_some_and(|t| t.row.send.status() != SendStatus::Sending);
            if !(c.changes.is_empty() && out) {
                idle = None;
            }
            if let Some(idle) = &mut idle {
                idle.push(key);
            }
        }
        answers.push(key.map(|_| ()));
    }
    // Such a mailbox has nothing in flight any more (a claim takes a mailbox's send only
    // when none is, and this one held its lease to the end), and its planned sends are as
    // they were; otherwise they are read again.
    for (tenant, mailbox) in idle.unwrap_or_default() {
        let sends = KnownSends {
            in_flight: false,
            next_planned: NextPlanned::Stored,
        };
        work.know(tenant, mailbox, sends);
    }
    work.flush(conn).await?;
    wake_for_released(conn, &mut work, now).await?;
    Ok(answers)
}

/// The checks of [`check_changes`] on a completion's enrollment alone (loaded in `work`):
/// it exists in `tenant`, its version is the one read, and staying open it takes no
/// (sequence, contact) another open enrollment holds.
fn check_enrollment(
    work: &Work,
    open_by_pair: &HashMap<(SequenceId, ContactId), EnrollmentId>,
    completion: &SendCompletion,
    tenant: TenantId,
) -> Result<(), StoreError> {
    let e = &completion.enrollment;
    let read = completion.enrollment_version;
    let stored = match work.enrollments.get(&e.id) {
        Some(s) if s.row.tenant == e.tenant && e.tenant == tenant => &s.row,
        _ => return Err(StoreError::not_found(Entity::Enrollment, e.id)),
    };
    if stored.version() != read {
        return Err(conflict(Entity::Enrollment, e.id, read, stored.version()));
    }
    let taken = open_by_pair
        .get(&(e.sequence, e.contact))
        .is_some_and(|other| *other != e.id);
    if !e.is_final() && taken {
        return Err(StoreError::AlreadyExists {
            entity: Entity::Enrollment,
            id: format!("{} (sequence {}, contact {})", e.id, e.sequence, e.contact),
        });
    }
    Ok(())
}

pub(crate) async fn release_send(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    id: SendId,
    lease: Lease,
    replan_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let mut work = Work::default();
    load_sends(conn, &mut work, [id]).await?;
    let Some(row) = work.sends.get(&id).map(|t| &t.row.send) else {
        return Err(StoreError::not_found(Entity::Send, id));
    };
    if row.check_lease(&lease).is_err() {
        return Err(StoreError::LeaseLost { send: id });
    }
    let at = replan_at.unwrap_or(now);
    let released = work.change_send(id, |row| {
        row.send.release(&lease, at).ok().map(|()| {
            (
                row.prev_last_attempt.take(),
                row.pending,
                row.send.clone(),
                row.domain.clone(),
            )
        })
    });
    let Some(Some((prev, pending, send, domain))) = released else {
        return Err(StoreError::LeaseLost { send: id });
    };
    // No attempt was made: the mailbox's latest attempt is the one before this claim.
    work.set_last_attempt(send.tenant, send.mailbox(), LastAttempt::Set(prev));
    work.uncount_attempt((send.tenant, send.mailbox(), send.local_date()));
    if replan_at.is_some() {
        // The reservation is kept; the daily counts follow the new instant's UTC date.
        if let Some((old, new_start)) = pending {
            let new = send.planned_at().date_naive();
            if new != old {
                work.daily_sub(old, &send, &domain, new_start);
                work.daily_add(new, &send, &domain, new_start);
                work.change_send(id, |row| row.pending = Some((new, new_start)));
            }
        }
        work.flush(conn).await
    } else {
        load_enrollments(conn, &mut work, [(send.tenant, send.enrollment)]).await?;
        if work.cancel_send(id, "given back before sending") {
            work.release_enrollment(send.enrollment, now);
        }
        work.flush(conn).await?;
        wake_for_released(conn, &mut work, now).await
    }
}

pub(crate) async fn expire_leases(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    resend: bool,
) -> Result<Vec<ScheduledSend>, StoreError> {
    // Locked as found; one another unit holds (a completion in progress) is passed over:
    // that unit decides it, and a later expiry looks again.
    let rows = sqlx::query(concat!(
        "SELECT ",
        send_columns!(),
        " FROM sends s WHERE s.status = 'sending' AND s.lease_until <= $1 \
         ORDER BY s.lease_until, s.id FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Each one expired in Rust, as the memory store does, then written by one update that
    // re-checks, inside itself, that the send is still sending under the lease read and
    // that the lease has still run out: a completion that got there first wins, and only
    // the sends this update changed are expired.
    let mut expired: Vec<(ScheduledSend, Lease)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let row = SendRow::read(r)?;
        let Some(held) = row.send.lease() else {
            continue;
        };
        let mut send = row.send;
        let done = if resend {
            send.abandon_expired(now)
        } else {
            send.mark_uncertain(now)
        };
        if done.is_ok() {
            expired.push((send, held));
        }
    }
    if expired.is_empty() {
        return Ok(Vec::new());
    }
    let mut statuses = Vec::with_capacity(expired.len());
    for (s, _) in &expired {
        statuses.push(name(&s.status())?);
    }
    let changed: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE sends s SET status = k.status, lease_token = NULL, lease_attempt = NULL, \
             lease_until = NULL, pending_date = NULL, pending_new_start = NULL, \
             prev_last_attempt_at = NULL, doc = k.doc \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int4[], $5::text[], \
             $6::json[]) AS k(tenant_id, id, token, attempt, status, doc) \
         WHERE s.tenant_id = k.tenant_id AND s.id = k.id AND s.status = 'sending' \
           AND s.lease_token = k.token AND s.lease_attempt = k.attempt \
           AND s.lease_until <= $7 \
         RETURNING s.id",
    )
    .bind(expired.iter().map(|(s, _)| s.tenant.0).collect::<Vec<_>>())
    .bind(expired.iter().map(|(s, _)| s.id.0).collect::<Vec<_>>())
    .bind(expired.iter().map(|(_, l)| l.token).collect::<Vec<_>>())
    .bind(
        expired
            .iter()
            .map(|(_, l)| int(l.attempt))
            .collect::<Vec<_>>(),
    )
    .bind(statuses)
    .bind(
        expired
            .iter()
            .map(|(s, _)| json_text(s))
            .collect::<Result<Vec<_>, _>>()?,
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let changed: HashSet<Uuid> = changed.into_iter().collect();
    let out: Vec<ScheduledSend> = expired
        .into_iter()
        .filter(|(s, _)| changed.contains(&s.id.0))
        .map(|(s, _)| s)
        .collect();
    let mut work = Work::default();
    for s in &out {
        // Nothing of the mailbox is in flight any more.
        work.touch(s.tenant, s.mailbox());
    }
    load_enrollments(
        conn,
        &mut work,
        out.iter().map(|s| (s.tenant, s.enrollment)),
    )
    .await?;
    for s in &out {
        if resend {
            // At least once: the step is planned again by the planner, inside capacity,
            // on the same mailbox.
            work.release_attempted(s, now);
        } else {
            // At most once: the step is counted as sent, never sent again.
            work.record_uncertain(s, now);
        }
    }
    work.flush(conn).await?;
    Ok(out)
}

/// [`Outbox::next_wakeup`](sequence_core::store::Outbox): the enrollments that go to a
/// pool counted per sequence, at the later of the earliest one's instant and the sequence's
/// pool wait, if any; those sticky to a mailbox per mailbox in the same way, with its wait;
/// paused ones at their instant.
pub(crate) async fn next_wakeup(
    conn: &mut PgConnection,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    sqlx::query_scalar(
        "SELECT least( \
             (SELECT min(due_at) FROM enrollments \
              WHERE due_at IS NOT NULL AND status <> 'active'), \
             (SELECT min(CASE WHEN mw.until IS NULL OR f.first > mw.holds_due_by THEN f.first \
                              ELSE least(greatest(f.first, mw.until), \
                                         (SELECT min(due_at) FROM enrollments \
                                          WHERE tenant_id = m.tenant_id AND mailbox_id = m.id \
                                            AND due_at > mw.holds_due_by \
                                            AND status = 'active' \
                                            AND mailbox_id IS NOT NULL)) END) \
              FROM mailboxes m \
              CROSS JOIN LATERAL ( \
                  SELECT min(due_at) AS first FROM enrollments \
                  WHERE tenant_id = m.tenant_id AND mailbox_id = m.id \
                    AND due_at IS NOT NULL AND status = 'active' \
                    AND mailbox_id IS NOT NULL) f \
              LEFT JOIN mailbox_waits mw ON mw.tenant_id = m.tenant_id AND mw.mailbox_id = m.id \
              WHERE f.first IS NOT NULL), \
             (SELECT min(CASE WHEN w.until IS NULL OR f.first IS NULL THEN f.first \
                              ELSE greatest(f.first, w.until) END) \
              FROM sequences s \
              CROSS JOIN LATERAL ( \
                  SELECT min(due_at) AS first FROM enrollments \
                  WHERE tenant_id = s.tenant_id AND sequence_id = s.id \
                    AND due_at IS NOT NULL AND status = 'active' AND mailbox_id IS NULL) f \
              LEFT JOIN pool_waits w ON w.tenant_id = s.tenant_id AND w.sequence_id = s.id), \
             (SELECT min(ready_at) FROM mailbox_state WHERE ready_at IS NOT NULL), \
             (SELECT min(lease_until) FROM sends WHERE status = 'sending'))",
    )
    .fetch_one(&mut *conn)
    .await
    .db()
}
