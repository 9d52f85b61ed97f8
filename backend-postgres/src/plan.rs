//! Planning: the planning lease, plans applied with their reservations, and what planning
//! reads (mailbox snapshots, daily counts).

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sequence_core::enrollment::{Deferral, DeferralReason, EnrollmentStatus};
use sequence_core::error::Entity;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::send::{ScheduledSend, SendStatus};
use sequence_core::store::{
    DailyCounts, MailboxSnapshot, MailboxWait, PlanApplied, PlanCommit, PlanSend, PlannedSlot,
    PlanningLease, PoolWait, StoreError,
};
use sequence_core::time::local_date;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

use crate::changes::{load_enrollments_seen, load_mailboxes, load_sends, EnrollmentItem};
use crate::due::Seen;
use crate::error::Db;
use crate::rows::{doc, uint, SendRow};
use crate::work::{lock_mailbox_days, lock_mailbox_state, DayKey, Work};

// ---- the planning lease --------------------------------------------------------------------

pub(crate) async fn acquire_planning(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    token: Uuid,
    lease_for: Duration,
) -> Result<Option<PlanningLease>, StoreError> {
    let until = now
        .checked_add_signed(lease_for)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let taken: Option<String> = sqlx::query_scalar(
        "UPDATE planning_lease SET token = $1, until = $2 \
         WHERE name = 'planning' AND (token IS NULL OR token = $1 OR until <= $3) \
         RETURNING name",
    )
    .bind(token)
    .bind(until)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    Ok(taken.map(|_| PlanningLease { token, until }))
}

pub(crate) async fn release_planning(
    conn: &mut PgConnection,
    lease: PlanningLease,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE planning_lease SET token = NULL, until = NULL \
         WHERE name = 'planning' AND token = $1",
    )
    .bind(lease.token)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// Whether `lease` still holds the planning lease at `now`. The row is share-locked until
/// the plan commits, so the lease cannot be taken over while the plan is written.
async fn holds_planning(
    conn: &mut PgConnection,
    lease: PlanningLease,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row: Option<(Option<Uuid>, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT token, until FROM planning_lease WHERE name = 'planning' FOR SHARE")
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    Ok(row
        .is_some_and(|(token, until)| token == Some(lease.token) && until.is_some_and(|u| u > now)))
}

// ---- plans -----------------------------------------------------------------------------------

/// What became of one send of a plan.
enum PlanOne {
    Planned(SendId),
    OverCapacity,
    Stale,
}

/// Apply `plan`; `seen` holds the enrollments of the due read it was made from, if this
/// store made that read (their documents are then not read again).
///
/// A plan made from this store's due read is first applied without locking its enrollments
/// beforehand: each is taken as the read handed it out, and written only if it is still
/// stored at that version (the write locks it; a change committed since, a host's reply say,
/// is seen by the write). When one moved, the attempt is rolled back to a savepoint and the
/// plan applied again with its enrollments locked and read first, so that the moved one is
/// found stale and the rest planned. A plan that pre-empts sends is always applied locked.
pub(crate) async fn apply_plan(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    plan: &PlanCommit,
    seen: &Seen,
) -> Result<PlanApplied, StoreError> {
    if let Some(lease) = plan.planning {
        if !holds_planning(conn, lease, now).await? {
            return Err(StoreError::PlanningLeaseLost);
        }
    }
    if plan.preempt.is_empty() && !seen.is_empty() {
        let mut attempt = conn.begin().await.db()?;
        match apply_items(&mut attempt, now, plan, seen, false).await {
            Ok(out) => {
                attempt.commit().await.db()?;
                return Ok(out);
            }
            Err(StoreError::VersionConflict {
                entity: Entity::Enrollment,
                ..
            }) => attempt.rollback().await.db()?,
            Err(e) => return Err(e),
        }
    }
    apply_items(conn, now, plan, seen, true).await
}

/// Apply `plan`'s items: its enrollments locked first when `lock`, else taken from `seen`
/// where they all are (see [`apply_plan`]).
async fn apply_items(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    plan: &PlanCommit,
    seen: &Seen,
    lock: bool,
) -> Result<PlanApplied, StoreError> {
    let mut work = Work::default();
    load_sends(conn, &mut work, plan.preempt.iter().copied()).await?;
    let preempted_enrollments: Vec<(TenantId, EnrollmentId)> = plan
        .preempt
        .iter()
        .filter_map(|id| {
            let send = &work.sends.get(id)?.row.send;
            Some((send.tenant, send.enrollment))
        })
        .collect();
    // The plan's enrollments with the versions it read them at (not a pre-empted one's);
    // their tenants are those of the due read's rows.
    let enrollments: Vec<EnrollmentItem> = preempted_enrollments
        .into_iter()
        .map(|(tenant, id)| (Some(tenant), id, None))
        .chain(
            plan.sends
                .iter()
                .map(|ps| (None, ps.enrollment, Some(ps.enrollment_version))),
        )
        .chain(
            plan.deferrals
                .iter()
                .map(|d| (None, d.enrollment, Some(d.enrollment_version))),
        )
        .collect();
    load_enrollments_seen(conn, &mut work, &enrollments, seen, lock).await?;
    load_sends(
        conn,
        &mut work,
        plan.sends
            .iter()
            .map(|ps| SendId::of_step(ps.enrollment, ps.step)),
    )
    .await?;
    // The plan's mailboxes, and those its waits saw (a day is locked only for a mailbox of
    // the wait's tenant).
    let mut mailboxes: Vec<MailboxId> = plan.sends.iter().map(|ps| ps.mailbox).collect();
    for w in &plan.waits {
        mailboxes.extend(w.seen.iter().map(|d| d.mailbox));
    }
    mailboxes.extend(plan.mailbox_waits.iter().map(|w| w.seen.mailbox));
    load_mailboxes(conn, &mut work, mailboxes, false).await?;
    lock_capacity(conn, &mut work, plan).await?;

    let mut out = PlanApplied::default();
    for id in &plan.preempt {
        let Some((status, enrollment)) = work
            .sends
            .get(id)
            .map(|t| (t.row.send.status(), t.row.send.enrollment))
        else {
            continue;
        };
        if status != SendStatus::Planned {
            continue;
        }
        if work.cancel_send(*id, "pre-empted by a follow-up") {
            work.release_enrollment(enrollment, now);
        }
    }
    // A pre-empted unit goes to the follow-up that took it, not to a waiting enrollment.
    work.released.clear();
    for ps in &plan.sends {
        match plan_one(&mut work, ps) {
            PlanOne::Planned(id) => out.planned.push(id),
            PlanOne::OverCapacity => out.over_capacity.push(ps.enrollment),
            PlanOne::Stale => out.stale.push(ps.enrollment),
        }
    }
    for d in &plan.deferrals {
        work.change_enrollment(d.enrollment, |e| {
            if e.version() == d.enrollment_version {
                // A refused deferral (not active) leaves the row as it was.
                let _ = e.defer(d.deferral);
            }
        });
    }
    work.flush(conn).await?;
    // A wait whose pool has room the plan did not see is not recorded.
    let waits: Vec<PoolWait> = plan
        .waits
        .iter()
        .filter(|w| {
            w.seen.iter().all(|d| {
                work.used_on((w.wait.tenant, d.mailbox, d.local_date)) >= i64::from(d.used)
            })
        })
        .map(|w| w.wait)
        .collect();
    if !waits.is_empty() {
        let rows = waits
            .iter()
            .map(|w| (w.tenant, w.sequence.0, w.until, None));
        record(conn, &POOL_WAITS, rows, now).await?;
    }
    // Likewise a mailbox wait whose mailbox has room the plan did not see.
    let mailbox_waits: Vec<MailboxWait> = plan
        .mailbox_waits
        .iter()
        .filter(|w| {
            let d = &w.seen;
            d.mailbox == w.wait.mailbox
                && work.used_on((w.wait.tenant, d.mailbox, d.local_date)) >= i64::from(d.used)
        })
        .map(|w| w.wait)
        .collect();
    if !mailbox_waits.is_empty() {
        let rows = mailbox_waits
            .iter()
            .map(|w| (w.tenant, w.mailbox.0, w.until, w.holds_due_by));
        record(conn, &MAILBOX_WAITS, rows, now).await?;
    }
    Ok(out)
}

/// The statements of one kind of wait, keyed by tenant and one id: pool waits by sequence,
/// mailbox waits by mailbox. Each is a literal (no SQL is built from strings); `$1` is the
/// tenant and `$2` the id, or their arrays with `$3` the instants and `$4` the latest due
/// instants held (mailbox waits only).
struct WaitStatements {
    /// The wait of (`$1`, `$2`) if it has not ended by `$3`: its end and the latest due
    /// instant it holds.
    until: &'static str,
    /// Drop the waits that ended by `$1`.
    drop_ended: &'static str,
    /// Record waits (one row each), each replacing the earlier one of its key, and only
    /// for an id of its tenant.
    record: &'static str,
}

const POOL_WAITS: WaitStatements = WaitStatements {
    until: "SELECT until, NULL::timestamptz FROM pool_waits \
            WHERE tenant_id = $1 AND sequence_id = $2 AND until > $3",
    drop_ended: "DELETE FROM pool_waits WHERE until <= $1",
    record: "INSERT INTO pool_waits (tenant_id, sequence_id, until) \
             SELECT w.tenant_id, w.sequence_id, w.until \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[]) \
                 AS w(tenant_id, sequence_id, until, holds_due_by) \
             JOIN sequences s ON s.tenant_id = w.tenant_id AND s.id = w.sequence_id \
             ON CONFLICT (tenant_id, sequence_id) DO UPDATE SET until = EXCLUDED.until",
};

const MAILBOX_WAITS: WaitStatements = WaitStatements {
    until: "SELECT until, holds_due_by FROM mailbox_waits \
            WHERE tenant_id = $1 AND mailbox_id = $2 AND until > $3",
    drop_ended: "DELETE FROM mailbox_waits WHERE until <= $1",
    record: "INSERT INTO mailbox_waits (tenant_id, mailbox_id, until, holds_due_by) \
             SELECT w.tenant_id, w.mailbox_id, w.until, w.holds_due_by \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[]) \
                 AS w(tenant_id, mailbox_id, until, holds_due_by) \
             JOIN mailboxes m ON m.tenant_id = w.tenant_id AND m.id = w.mailbox_id \
             ON CONFLICT (tenant_id, mailbox_id) \
             DO UPDATE SET until = EXCLUDED.until, holds_due_by = EXCLUDED.holds_due_by",
};

/// When the wait of (`tenant`, `id`) ends, if it has not ended by `now`, and the latest due
/// instant it holds back (`None`: all).
async fn wait_until(
    conn: &mut PgConnection,
    sql: &WaitStatements,
    tenant: TenantId,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<(DateTime<Utc>, Option<DateTime<Utc>>)>, StoreError> {
    sqlx::query_as(sql.until)
        .bind(tenant.0)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .db()
}

/// A wait as [`record`] takes it: tenant, id, until, and the latest due instant it holds.
type WaitRow = (TenantId, Uuid, DateTime<Utc>, Option<DateTime<Utc>>);

/// Record the waits that have not ended by `now`: one statement, each replacing its key's
/// earlier wait; the waits that ended are dropped.
async fn record(
    conn: &mut PgConnection,
    sql: &WaitStatements,
    waits: impl Iterator<Item = WaitRow>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (mut tenants, mut ids, mut untils, mut due_bys) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (tenant, id, until, due_by) in waits.filter(|w| w.2 > now) {
        tenants.push(tenant.0);
        ids.push(id);
        untils.push(until);
        due_bys.push(due_by);
    }
    sqlx::query(sql.drop_ended)
        .bind(now)
        .execute(&mut *conn)
        .await
        .db()?;
    sqlx::query(sql.record)
        .bind(tenants)
        .bind(ids)
        .bind(untils)
        .bind(due_bys)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

/// [`Outbox::pool_wait`](sequence_core::store::Outbox).
pub(crate) async fn pool_wait(
    conn: &mut PgConnection,
    tenant: TenantId,
    sequence: SequenceId,
    now: DateTime<Utc>,
) -> Result<Option<PoolWait>, StoreError> {
    let wait = wait_until(conn, &POOL_WAITS, tenant, sequence.0, now).await?;
    Ok(wait.map(|(until, _)| PoolWait {
        tenant,
        sequence,
        until,
    }))
}

/// [`Outbox::mailbox_wait`](sequence_core::store::Outbox).
pub(crate) async fn mailbox_wait(
    conn: &mut PgConnection,
    tenant: TenantId,
    mailbox: MailboxId,
    now: DateTime<Utc>,
) -> Result<Option<MailboxWait>, StoreError> {
    let wait = wait_until(conn, &MAILBOX_WAITS, tenant, mailbox.0, now).await?;
    Ok(wait.map(|(until, holds_due_by)| MailboxWait {
        tenant,
        mailbox,
        until,
        holds_due_by,
    }))
}

/// Lock the `mailbox_state` and `mailbox_days` rows the plan may change, and the days its
/// waits saw (in key order), and read what is used on those days, so that capacity and
/// waits are decided on counts no other unit can change before this one commits.
async fn lock_capacity(
    conn: &mut PgConnection,
    work: &mut Work,
    plan: &PlanCommit,
) -> Result<(), StoreError> {
    let mut mailboxes: BTreeSet<(TenantId, MailboxId)> = BTreeSet::new();
    let mut days: BTreeSet<DayKey> = BTreeSet::new();
    for id in &plan.preempt {
        if let Some(t) = work.sends.get(id) {
            let s = &t.row.send;
            if s.status() == SendStatus::Planned {
                mailboxes.insert((s.tenant, s.mailbox()));
                days.insert((s.tenant, s.mailbox(), s.local_date()));
            }
        }
    }
    for ps in &plan.sends {
        if let Some(m) = work.mailboxes.get(&ps.mailbox) {
            mailboxes.insert((m.row.tenant, ps.mailbox));
            days.insert((m.row.tenant, ps.mailbox, ps.local_date));
        }
    }
    // The pool days each wait saw, read under the same locks: a release of one of them
    // (which updates its row) either committed before, and is seen, or waits for this unit
    // and then ends the wait this unit records.
    let of_tenant = |tenant: TenantId, mailbox: MailboxId| -> bool {
        work.mailboxes
            .get(&mailbox)
            .is_some_and(|m| m.row.tenant == tenant)
    };
    for w in &plan.waits {
        for d in &w.seen {
            if of_tenant(w.wait.tenant, d.mailbox) {
                days.insert((w.wait.tenant, d.mailbox, d.local_date));
            }
        }
    }
    for w in &plan.mailbox_waits {
        if of_tenant(w.wait.tenant, w.seen.mailbox) {
            days.insert((w.wait.tenant, w.seen.mailbox, w.seen.local_date));
        }
    }
    let mailboxes: Vec<(TenantId, MailboxId)> = mailboxes.into_iter().collect();
    lock_mailbox_state(conn, &mailboxes).await?;
    work.base_used = lock_mailbox_days(conn, &days).await?;
    Ok(())
}

/// Plan one send, as the memory store does.
fn plan_one(work: &mut Work, ps: &PlanSend) -> PlanOne {
    let Some(e) = work.enrollments.get(&ps.enrollment).map(|t| &t.row) else {
        return PlanOne::Stale;
    };
    if e.version() != ps.enrollment_version
        || e.status() != EnrollmentStatus::Active
        || e.current_step() != ps.step
    {
        return PlanOne::Stale;
    }
    let (tenant, sequence, contact) = (e.tenant, e.sequence, e.contact);
    if work
        .mailboxes
        .get(&ps.mailbox)
        .is_none_or(|m| m.row.tenant != tenant)
    {
        // No plan can ever use this mailbox: park the enrollment (a pool change wakes it)
        // rather than leave it due at the same instant.
        work.change_enrollment(ps.enrollment, |e| {
            let parked = Deferral {
                reason: DeferralReason::NoActiveMailboxInPool,
                not_before: None,
            };
            let _ = e.defer(parked);
        });
        return PlanOne::Stale;
    }
    let id = SendId::of_step(ps.enrollment, ps.step);
    let existing = work.sends.get(&id).map(|t| t.row.send.status());
    if existing.is_some_and(|s| !matches!(s, SendStatus::RetryWait | SendStatus::Cancelled)) {
        return PlanOne::Stale;
    }
    let key = (tenant, ps.mailbox, ps.local_date);
    if work.used_on(key) >= i64::from(ps.limit) {
        return PlanOne::OverCapacity;
    }
    let date = ps.at.date_naive();
    let send = if existing.is_some() {
        let replanned = work.change_send(id, |row| {
            // Waiting for a retry, or called off before it went out (pre-empted, released,
            // paused): planned again in place, keeping its id and attempts, so (enrollment,
            // step) stays one row.
            let ok = row.send.replan(ps.mailbox, ps.at, ps.local_date).is_ok();
            if ok {
                if row.send.attempts() == 0 {
                    // Nothing went out yet: the Message-ID follows the new mailbox.
                    row.send.message_id.clone_from(&ps.message_id);
                }
                row.domain.clone_from(&ps.recipient_domain);
            }
            ok.then(|| row.send.clone())
        });
        let Some(Some(send)) = replanned else {
            return PlanOne::Stale;
        };
        let new_start = send.step == 0 && send.attempts() == 0;
        work.daily_add(date, &send, &ps.recipient_domain, new_start);
        work.change_send(id, |row| row.pending = Some((date, new_start)));
        send
    } else {
        let send = ScheduledSend::planned(
            tenant,
            ps.enrollment,
            sequence,
            contact,
            ps.step,
            ps.mailbox,
            ps.at,
            ps.local_date,
            ps.message_id.clone(),
            ps.variant,
        );
        let new_start = send.step == 0;
        work.daily_add(date, &send, &ps.recipient_domain, new_start);
        work.insert_send(SendRow {
            send: send.clone(),
            domain: ps.recipient_domain.clone(),
            pending: Some((date, new_start)),
            prev_last_attempt: None,
        });
        send
    };
    work.reserve(key);
    work.change_enrollment(ps.enrollment, |e| {
        let _ = e.mark_planned();
    });
    PlanOne::Planned(send.id)
}

// ---- what planning reads ---------------------------------------------------------------------

pub(crate) async fn mailbox_snapshots(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    ids: &[MailboxId],
) -> Result<Vec<MailboxSnapshot>, StoreError> {
    let mut seen = HashSet::new();
    let wanted: Vec<Uuid> = ids
        .iter()
        .map(|m| m.0)
        .filter(|m| seen.insert(*m))
        .collect();
    let rows = sqlx::query(
        "SELECT m.doc, ms.last_attempt_at, w.until AS held_until FROM mailboxes m \
         LEFT JOIN mailbox_state ms ON ms.tenant_id = m.tenant_id AND ms.mailbox_id = m.id \
         LEFT JOIN mailbox_waits w \
             ON w.tenant_id = m.tenant_id AND w.mailbox_id = m.id AND w.until > $2 \
         WHERE m.id = ANY($1)",
    )
    .bind(&wanted)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut found: HashMap<Uuid, (Mailbox, Option<DateTime<Utc>>)> = HashMap::new();
    let mut held: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for r in &rows {
        let m: Mailbox = doc(r, "doc")?;
        let last: Option<DateTime<Utc>> = r.try_get("last_attempt_at").db()?;
        if let Some(until) = r.try_get::<Option<DateTime<Utc>>, _>("held_until").db()? {
            held.insert(m.id.0, until);
        }
        found.insert(m.id.0, (m, last));
    }
    let found: Vec<(Mailbox, Option<DateTime<Utc>>, NaiveDate)> = wanted
        .iter()
        .filter_map(|id| found.remove(id))
        .map(|(m, last)| {
            let date = local_date(m.timezone, now);
            (m, last, date)
        })
        .collect();
    let tenants: Vec<Uuid> = found.iter().map(|(m, _, _)| m.tenant.0).collect();
    let mailboxes: Vec<Uuid> = found.iter().map(|(m, _, _)| m.id.0).collect();
    let dates: Vec<NaiveDate> = found.iter().map(|(_, _, d)| *d).collect();
    let used: HashMap<Uuid, i32> = sqlx::query_as::<_, (Uuid, i32)>(
        "SELECT md.mailbox_id, md.used FROM mailbox_days md \
         JOIN unnest($1::uuid[], $2::uuid[], $3::date[]) AS k(t, m, d) \
             ON md.tenant_id = k.t AND md.mailbox_id = k.m AND md.local_date = k.d",
    )
    .bind(&tenants)
    .bind(&mailboxes)
    .bind(&dates)
    .fetch_all(&mut *conn)
    .await
    .db()?
    .into_iter()
    .collect();
    let planned_rows: Vec<(Uuid, Uuid, Uuid, i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.mailbox_id, s.id, s.enrollment_id, s.step, s.planned_at FROM sends s \
         JOIN unnest($1::uuid[], $2::uuid[]) AS k(t, m) \
             ON s.tenant_id = k.t AND s.mailbox_id = k.m \
         WHERE s.status = 'planned' \
         ORDER BY s.mailbox_id, s.planned_at, s.id",
    )
    .bind(&tenants)
    .bind(&mailboxes)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut planned: HashMap<Uuid, Vec<PlannedSlot>> = HashMap::new();
    for (mailbox, send, enrollment, step, at) in planned_rows {
        planned.entry(mailbox).or_default().push(PlannedSlot {
            send: SendId(send),
            enrollment: EnrollmentId(enrollment),
            step: uint(step),
            at,
        });
    }
    Ok(found
        .into_iter()
        .map(|(mailbox, last_attempt_at, local_date)| MailboxSnapshot {
            used: uint(used.get(&mailbox.id.0).copied().unwrap_or(0)),
            planned: planned.remove(&mailbox.id.0).unwrap_or_default(),
            held_until: held.get(&mailbox.id.0).copied(),
            mailbox,
            local_date,
            last_attempt_at,
        })
        .collect())
}

pub(crate) async fn daily_counts(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    sequences: &[SequenceId],
    domains: &[(TenantId, String)],
) -> Result<DailyCounts, StoreError> {
    let day = now.date_naive();
    let mut out = DailyCounts::default();
    if !sequences.is_empty() {
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "SELECT sequence_id, count FROM daily_new_starts \
             WHERE day = $1 AND sequence_id = ANY($2) AND count > 0",
        )
        .bind(day)
        .bind(sequences.iter().map(|s| s.0).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        for (sequence, n) in rows {
            *out.new_starts.entry(SequenceId(sequence)).or_insert(0) += uint(n);
        }
    }
    if !domains.is_empty() {
        let rows: Vec<(Uuid, String, i32)> = sqlx::query_as(
            "SELECT c.tenant_id, c.domain, c.count FROM daily_domain_sends c \
             JOIN unnest($2::uuid[], $3::text[]) AS k(t, d) \
                 ON c.tenant_id = k.t AND c.domain = k.d \
             WHERE c.day = $1 AND c.count > 0",
        )
        .bind(day)
        .bind(domains.iter().map(|(t, _)| t.0).collect::<Vec<_>>())
        .bind(domains.iter().map(|(_, d)| d.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        for (tenant, domain, n) in rows {
            out.per_domain.insert((TenantId(tenant), domain), uint(n));
        }
    }
    Ok(out)
}
