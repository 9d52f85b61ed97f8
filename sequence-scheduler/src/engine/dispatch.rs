//! Dispatch: claim the sends whose instant has come, re-check each, render, send, record.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use sequence_core::contact::{BounceKind, Contact};
use sequence_core::enrollment::{suppression, Enrollment, EnrollmentStatus, ExitReason};
use sequence_core::error::Entity;
use sequence_core::event::DomainEvent;
use sequence_core::ids::TenantId;
use sequence_core::mailbox::Mailbox;
use sequence_core::sequence::{Sequence, SequenceStatus};
use sequence_core::store::{ChangeSet, ClaimedSend, SendCompletion, SendContext, StoreError};
use sequence_core::template::Escape;
use sequence_core::time::{effective_daily_limit, local_date};
use sequence_core::transport::{FailureCategory, OutgoingEmail, SendError};
use tracing::{info_span, warn, Instrument};

use super::tick::{TickClock, TickReport};
use super::{Engine, EngineError};

/// When one transport call was made and answered, on the tick's running clock.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// The attempt's instant: its window, its local day and the mailbox's gap follow it.
    called_at: DateTime<Utc>,
    /// When the answer came: the outcome and the next step's delay count from here.
    answered_at: DateTime<Utc>,
}

/// What happened to one claimed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent { completed: bool },
    Retry,
    Failed,
    Released,
}

impl Outcome {
    /// Count the outcome in the tick's report.
    fn tally(self, report: &mut TickReport) {
        match self {
            Self::Sent { completed } => {
                report.sent += 1;
                report.completed += usize::from(completed);
            }
            Self::Retry => report.retried += 1,
            Self::Failed => {
                report.failed += 1;
                report.exited += 1;
            }
            Self::Released => report.released += 1,
        }
    }
}

/// The outcome of a send whose completion changes nothing but the send and its enrollment:
/// recorded with the rest of its wave in one [`Outbox::complete_sends`] call, with what it
/// takes to record it again alone when its enrollment changed meanwhile.
///
/// [`Outbox::complete_sends`]: sequence_core::store::Outbox::complete_sends
#[derive(Debug)]
struct Pending {
    times: Attempt,
    claimed: ClaimedSend,
    sequence: Sequence,
    mailbox: Mailbox,
    result: Result<(), SendError>,
    completion: SendCompletion,
    outcome: Outcome,
    events: Vec<DomainEvent>,
}

/// What one claimed send came to before its wave is recorded.
#[derive(Debug)]
enum Dispatched {
    /// Recorded already (released, or an outcome with changes beyond the send's own:
    /// a bounce, a suspended mailbox), so that later sends of the wave see it.
    Done(Outcome),
    /// To record with the wave.
    Pending(Box<Pending>),
}

impl Engine {
    /// Claim and send what has come, a wave of at most `concurrency` sends at a time, each
    /// claim and each send on the tick's running clock (see [`TickClock`]), until nothing
    /// more is claimable: a mailbox's next send waits for its gap, so a backlog drains at
    /// its pace.
    pub(super) async fn dispatch_due(
        &self,
        clock: &TickClock,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let wave = self
            .inner
            .config
            .concurrency
            .clamp(1, self.inner.config.claim_batch.max(1));
        for _ in 0..1_000_000 {
            let claimed = store
                .claim_sends(clock.now(), self.inner.config.lease, wave)
                .await?;
            if claimed.is_empty() {
                break;
            }
            // Sends of one wave to one person go one round after another, so that a
            // later one's re-check sees what the earlier one came to (a bounce).
            let mut rest = claimed;
            while !rest.is_empty() {
                let mut people = HashSet::new();
                let (round, later): (Vec<_>, Vec<_>) = rest
                    .into_iter()
                    .partition(|c| people.insert((c.send.tenant, c.send.contact)));
                rest = later;
                for o in self.dispatch_round(clock, round, wave).await? {
                    o.tally(report);
                }
            }
        }
        Ok(())
    }

    /// Re-check, send and record one round of claimed sends, at most `wave` at a time:
    /// their re-check reads are made together, right before the round goes out (a send
    /// whose state a host call changed since reads it again). A round holds at most one
    /// send per person and per mailbox (a claim takes one per mailbox), and what an
    /// outcome changes beyond its own send and enrollment is its person (a bounce) or its
    /// mailbox (a suspension): no send of a round can stop another.
    async fn dispatch_round(
        &self,
        clock: &TickClock,
        round: Vec<ClaimedSend>,
        wave: usize,
    ) -> Result<Vec<Outcome>, EngineError> {
        let keys: Vec<_> = round.iter().map(|c| (c.send.tenant, c.send.id)).collect();
        let read_after = self.host_changes();
        let contexts = self.inner.store.send_contexts(&keys).await?;
        let dispatched: Vec<Result<Dispatched, EngineError>> = stream::iter(round.into_iter().zip(contexts))
            .map(|(c, ctx)| {
                let span = info_span!("send", send = %c.send.id, step = c.send.step, mailbox = %c.send.mailbox());
                self.dispatch_one(clock, c, ctx, read_after).instrument(span)
            })
            .buffer_unordered(wave)
            .collect()
            .await;
        let mut outcomes = Vec::with_capacity(dispatched.len());
        let mut pending = Vec::new();
        for d in dispatched {
            match d? {
                Dispatched::Done(outcome) => outcomes.push(outcome),
                Dispatched::Pending(p) => pending.push(*p),
            }
        }
        outcomes.extend(self.record_wave(clock.now(), pending).await?);
        Ok(outcomes)
    }

    /// Why a claimed send must not go out at `now`, judged on the state as it is now
    /// (`ctx`, read right before the call), if it must not.
    fn recheck(now: DateTime<Utc>, c: &ClaimedSend, ctx: &SendContext) -> Option<&'static str> {
        if now >= c.lease.until {
            // It waited for an earlier round of its wave for longer than its lease: another
            // engine may have taken it back by now.
            return Some("the claim's lease ran out");
        }
        let Some(e) = &ctx.enrollment else {
            return Some("enrollment gone");
        };
        if e.status() != EnrollmentStatus::Active || e.current_step() != c.send.step {
            return Some("enrollment no longer waits for this step");
        }
        let Some(seq) = ctx
            .sequence
            .as_ref()
            .filter(|s| s.status() == SequenceStatus::Active)
        else {
            return Some("sequence not active");
        };
        let Some(m) = ctx.mailbox.as_ref().filter(|m| m.is_active()) else {
            return Some("mailbox not active");
        };
        let Some(contact) = ctx.contact.as_ref() else {
            return Some("contact gone");
        };
        if !contact.is_sendable() || suppression(contact, seq).is_some() {
            return Some("contact no longer sendable");
        }
        if !m.schedule.contains(m.timezone, now)
            || local_date(m.timezone, now) != c.send.local_date()
        {
            return Some("outside the mailbox's window or day");
        }
        let limit = effective_daily_limit(m.daily_limit, m.warmup.as_ref(), c.send.local_date());
        if ctx.attempts_on_day > limit {
            return Some("the mailbox's daily limit is reached");
        }
        if let Some(rw) = &seq.recipient_windows {
            if !rw.contains(contact.timezone.unwrap_or(m.timezone), now) {
                return Some("outside the recipient's window");
            }
        }
        if seq.step(c.send.step).is_none() {
            return Some("step no longer exists");
        }
        None
    }

    /// Re-check, send and record one claimed send of a round; `ctx` is its re-check read,
    /// made with the round's after `read_after` host changes. When a host call changed
    /// something since (while an earlier send of the round was being made, say), the
    /// send's state is read again.
    async fn dispatch_one(
        &self,
        clock: &TickClock,
        c: ClaimedSend,
        ctx: Option<SendContext>,
        read_after: u64,
    ) -> Result<Dispatched, EngineError> {
        let store = &self.inner.store;
        let ctx = if self.host_changes() == read_after {
            ctx
        } else {
            store.send_context(c.send.tenant, c.send.id).await?
        };
        let now = clock.now();
        let why = match &ctx {
            Some(ctx) => Self::recheck(now, &c, ctx),
            None => Some("send gone"),
        };
        if let Some(why) = why {
            tracing::debug!(why, "re-check failed: send called off");
            match store.release_send(now, c.send.id, c.lease, None).await {
                Ok(()) | Err(StoreError::LeaseLost { .. }) => {
                    return Ok(Dispatched::Done(Outcome::Released))
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(SendContext {
            enrollment: Some(enrollment),
            contact: Some(contact),
            mailbox: Some(mailbox),
            sequence: Some(seq),
            ..
        }) = ctx
        else {
            return Ok(Dispatched::Done(Outcome::Released));
        };
        // Render and send with what is current, not what the claim read.
        let c = ClaimedSend {
            enrollment,
            contact,
            ..c
        };
        let result = match self.render(&c, &seq, &mailbox) {
            Ok(email) => self.inner.transport.send(&email).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let times = Attempt {
            called_at: now,
            answered_at: clock.now(),
        };
        let first = self
            .outcome(times, &c, c.enrollment.clone(), &seq, &mailbox, &result)
            .await?;
        let (completion, outcome, events) = first;
        if completion.changes.is_empty() {
            return Ok(Dispatched::Pending(Box::new(Pending {
                times,
                claimed: c,
                sequence: seq,
                mailbox,
                result,
                completion,
                outcome,
                events,
            })));
        }
        let first = Some((completion, outcome, events));
        self.record(times, c, &seq, &mailbox, result, first)
            .await
            .map(Dispatched::Done)
    }

    /// Record the pending outcomes of a wave in one store call; one whose enrollment changed
    /// meanwhile is recorded again alone from a fresh read, as [`Engine::record`] does.
    async fn record_wave(
        &self,
        now: DateTime<Utc>,
        pending: Vec<Pending>,
    ) -> Result<Vec<Outcome>, EngineError> {
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        let completions = pending.iter().map(|p| p.completion.clone()).collect();
        let answers = self.inner.store.complete_sends(now, completions).await?;
        let mut outcomes = Vec::with_capacity(pending.len());
        for (p, answer) in pending.into_iter().zip(answers) {
            let tenant = p.claimed.send.tenant;
            outcomes.push(match answer {
                Ok(()) => {
                    self.emit(tenant, &p.events);
                    p.outcome
                }
                Err(StoreError::VersionConflict { .. }) => {
                    let id = p.claimed.send.enrollment;
                    match self.inner.store.get_enrollment(tenant, id).await? {
                        Some(enrollment) => {
                            let claimed = ClaimedSend {
                                enrollment,
                                ..p.claimed
                            };
                            self.record(p.times, claimed, &p.sequence, &p.mailbox, p.result, None)
                                .await?
                        }
                        None => Outcome::Released,
                    }
                }
                Err(StoreError::LeaseLost { send }) => {
                    warn!(%send, "lease lost before the outcome was recorded");
                    Outcome::Released
                }
                Err(e) => return Err(e.into()),
            });
        }
        Ok(outcomes)
    }

    fn render(
        &self,
        c: &ClaimedSend,
        seq: &Sequence,
        mailbox: &Mailbox,
    ) -> Result<OutgoingEmail, SendError> {
        let Some(step) = seq.step(c.send.step) else {
            return Err(SendError::permanent(
                FailureCategory::InvalidMessage,
                "step no longer exists",
            ));
        };
        let (subject, body, html) = step.content(c.send.variant);
        let r = &self.inner.renderer;
        let invalid = |e: sequence_core::template::TemplateError| {
            SendError::permanent(FailureCategory::InvalidMessage, e.to_string())
        };
        let subject = r
            .render(subject, &c.contact, Escape::None)
            .map_err(invalid)?;
        let text_body = r.render(body, &c.contact, Escape::None).map_err(invalid)?;
        let html_body = html
            .map(|h| r.render(h, &c.contact, Escape::Html))
            .transpose()
            .map_err(invalid)?;
        let thread = c.enrollment.thread_message_ids();
        let (in_reply_to, references) = if step.reply_in_thread && !thread.is_empty() {
            (thread.last().cloned(), thread.to_vec())
        } else {
            (None, Vec::new())
        };
        let to_name = match (&c.contact.first_name, &c.contact.last_name) {
            (Some(f), Some(l)) if !f.is_empty() || !l.is_empty() => {
                Some(format!("{f} {l}").trim().to_owned())
            }
            (Some(f), None) if !f.is_empty() => Some(f.clone()),
            _ => None,
        };
        Ok(OutgoingEmail {
            tenant: c.send.tenant,
            send: c.send.id,
            enrollment: c.send.enrollment,
            sequence: c.send.sequence,
            contact: c.send.contact,
            step: c.send.step,
            attempt: c.lease.attempt,
            variant: c.send.variant,
            mailbox: mailbox.id,
            from_address: mailbox.address.clone(),
            from_name: mailbox.display_name.clone(),
            to_address: c.contact.email.clone(),
            to_name,
            subject,
            text_body,
            html_body,
            message_id: c.send.message_id.clone(),
            in_reply_to,
            references,
            track_opens: seq.track_opens,
            track_clicks: seq.track_clicks,
        })
    }

    /// Record the outcome atomically (`first`, when it was worked out already from the
    /// claimed enrollment); on a version conflict (the enrollment changed while the
    /// transport was called) read it again and record once more.
    async fn record(
        &self,
        times: Attempt,
        mut c: ClaimedSend,
        seq: &Sequence,
        mailbox: &Mailbox,
        result: Result<(), SendError>,
        mut first: Option<(SendCompletion, Outcome, Vec<DomainEvent>)>,
    ) -> Result<Outcome, EngineError> {
        let store = &self.inner.store;
        let tenant = c.send.tenant;
        let now = times.answered_at;
        let mut enrollment = c.enrollment.clone();
        for attempt in 0..3 {
            if attempt > 0 {
                // What changed may be the contact as well (another send of the wave to the
                // same person bounced): both are read again.
                match store.get_enrollment(tenant, c.send.enrollment).await? {
                    Some(e) => enrollment = e,
                    None => return Ok(Outcome::Released),
                }
                if let Some(contact) = store.get_contact(tenant, c.send.contact).await? {
                    c.contact = contact;
                }
            }
            let (completion, outcome, events) = match first.take() {
                Some(worked_out) => worked_out,
                None => {
                    self.outcome(times, &c, enrollment.clone(), seq, mailbox, &result)
                        .await?
                }
            };
            match store.complete_send(now, completion).await {
                Ok(()) => {
                    self.emit(tenant, &events);
                    return Ok(outcome);
                }
                Err(StoreError::VersionConflict { .. }) => continue,
                Err(StoreError::LeaseLost { send }) => {
                    warn!(%send, "lease lost before the outcome was recorded");
                    return Ok(Outcome::Released);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::KeptChanging {
            entity: Entity::Enrollment,
            id: c.send.enrollment.to_string(),
        })
    }

    async fn outcome(
        &self,
        times: Attempt,
        c: &ClaimedSend,
        mut e: Enrollment,
        seq: &Sequence,
        mailbox: &Mailbox,
        result: &Result<(), SendError>,
    ) -> Result<(SendCompletion, Outcome, Vec<DomainEvent>), EngineError> {
        let tenant = c.send.tenant;
        let now = times.answered_at;
        let v = e.version();
        let mut send = c.send.clone();
        let mut changes = ChangeSet::default();
        let mut events = Vec::new();
        let active_for_step = !e.is_final() && e.current_step() == send.step;
        if active_for_step {
            // Whatever the outcome, an attempt was made: its mailbox is sticky (rule 5).
            e.attempted_on(send.mailbox());
        }
        let outcome = match result {
            Ok(()) => {
                send.mark_sent(&c.lease, times.called_at)?;
                events.push(DomainEvent::Sent {
                    send: send.id,
                    enrollment: e.id,
                    step: send.step,
                    at: times.called_at,
                });
                let mut completed = false;
                if active_for_step {
                    // Delays count in the contact's zone, UTC without one: the same rule as at
                    // enrollment and on a skipped step, so business days agree everywhere.
                    let zone = c.contact.timezone.unwrap_or(chrono_tz::UTC);
                    let next = seq
                        .step(send.step + 1)
                        .map(|s| s.delay.after(now, zone, &seq.holidays));
                    events.extend(e.step_sent(send.step, now, send.message_id.clone(), next)?);
                    completed = e.status() == EnrollmentStatus::Completed;
                }
                Outcome::Sent { completed }
            }
            Err(err) => {
                // A refused login is the mailbox's problem: the mailbox is suspended below and
                // the step is retried (on another mailbox of the pool) instead of failing.
                let retry = (err.is_transient() || err.category() == FailureCategory::AuthFailure)
                    && send.attempts() < self.inner.config.retry.max_attempts;
                send.mark_failed(&c.lease, err.to_string(), retry)?;
                events.push(DomainEvent::SendFailed {
                    send: send.id,
                    enrollment: e.id,
                    step: send.step,
                    will_retry: retry,
                    error: send.last_error().unwrap_or_default().to_owned(),
                });
                if err.category() == FailureCategory::AuthFailure && mailbox.is_active() {
                    let mut m = mailbox.clone();
                    let read = m.version();
                    events.push(m.suspend(format!("credentials refused: {}", err.message()))?);
                    changes.mailboxes.push((m, read));
                }
                if retry {
                    if active_for_step {
                        e.retry_at(now + self.inner.config.retry.backoff(send.attempts()))?;
                    }
                    Outcome::Retry
                } else if err.is_contact_fault() {
                    self.bounce_everywhere(
                        tenant,
                        now,
                        &c.contact,
                        e.id,
                        &mut changes,
                        &mut events,
                    )
                    .await?;
                    if !e.is_final() {
                        events.push(e.exit(ExitReason::Bounced, now)?);
                    }
                    Outcome::Failed
                } else {
                    if !e.is_final() {
                        events.push(e.exit(ExitReason::Failed, now)?);
                    }
                    Outcome::Failed
                }
            }
        };
        Ok((
            SendCompletion {
                send,
                lease: c.lease,
                enrollment: e,
                enrollment_version: v,
                attempted_at: times.called_at,
                changes,
            },
            outcome,
            events,
        ))
    }

    /// A permanent failure at the contact's address: mark it bounced and end its other open
    /// enrollments, calling off their planned sends.
    async fn bounce_everywhere(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
        contact: &Contact,
        this: sequence_core::ids::EnrollmentId,
        changes: &mut ChangeSet,
        events: &mut Vec<DomainEvent>,
    ) -> Result<(), EngineError> {
        let store = &self.inner.store;
        let mut c = contact.clone();
        let read = c.version();
        c.mark_bounced();
        if c.status() != contact.status() {
            // Suppressed already (another send's bounce, an unsubscribe): left as it is.
            changes.contacts.push((c, read));
            events.push(DomainEvent::Bounced {
                contact: contact.id,
                kind: BounceKind::Hard,
            });
        }
        let others: Vec<Enrollment> = store
            .open_enrollments_of_contact(tenant, contact.id)
            .await?
            .into_iter()
            .filter(|e| e.id != this)
            .collect();
        let ids: Vec<_> = others.iter().map(|e| e.id).collect();
        changes.cancel_sends.extend(
            store
                .open_sends_of(tenant, &ids)
                .await?
                .into_iter()
                .map(|s| s.id),
        );
        for mut other in others {
            let v = other.version();
            events.push(other.exit(ExitReason::Bounced, now)?);
            changes.enrollments.push((other, v));
        }
        Ok(())
    }
}
