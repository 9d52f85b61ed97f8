//! Planning and dispatch: plans applied with their reservations, the planning lease,
//! claims, re-check reads, completions, releases and expired leases.

use super::*;

impl State {
    // ---- planning -------------------------------------------------------------------------------

    pub(crate) fn acquire_planning(
        &mut self,
        now: DateTime<Utc>,
        token: Uuid,
        lease_for: Duration,
    ) -> Option<PlanningLease> {
        let free = self
            .planning
            .is_none_or(|held| held.token == token || held.until <= now);
        if !free {
            return None;
        }
        let lease = PlanningLease {
            token,
            until: now
                .checked_add_signed(lease_for)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.planning = Some(lease);
        Some(lease)
    }

    pub(crate) fn release_planning(&mut self, lease: PlanningLease) {
        if self.planning.is_some_and(|held| held.token == lease.token) {
            self.planning = None;
        }
    }

    pub(crate) fn apply_plan(
        &mut self,
        now: DateTime<Utc>,
        plan: PlanCommit,
    ) -> Result<PlanApplied, StoreError> {
        if let Some(lease) = plan.planning {
            let held = self
                .planning
                .is_some_and(|held| held.token == lease.token && held.until > now);
            if !held {
                return Err(StoreError::PlanningLeaseLost);
            }
        }
        let mut out = PlanApplied::default();
        for id in plan.preempt {
            let Some(enrollment) = self.sends.get(&id).map(|r| r.send.enrollment) else {
                continue;
            };
            if self.sends.get(&id).map(|r| r.send.status()) != Some(SendStatus::Planned) {
                continue;
            }
            if self.cancel_send(id, "pre-empted by a follow-up") {
                self.release_enrollment(enrollment, now);
            }
        }
        // A pre-empted unit goes to the follow-up that took it, not to a waiting enrollment.
        self.released.clear();
        // Tens of thousands of enrollments may move in the due index: once, at the end.
        self.due_moves = Some((Vec::new(), Vec::new()));
        self.sends.reserve(plan.sends.len());
        self.sends_by_enrollment.reserve(plan.sends.len());
        for ps in plan.sends {
            let enrollment = ps.enrollment;
            match self.plan_one(ps) {
                PlanOne::Planned(id) => out.planned.push(id),
                PlanOne::OverCapacity => out.over_capacity.push(enrollment),
                PlanOne::Stale => out.stale.push(enrollment),
            }
        }
        self.defer_all(&plan.deferrals);
        if let Some((gone, come)) = self.due_moves.take() {
            self.due.move_keys(gone, come);
        }
        self.record_waits(now, plan.waits);
        self.record_mailbox_waits(now, plan.mailbox_waits);
        Ok(out)
    }

    /// Record the pool waits of a plan, each of a sequence of its tenant whose pool days are
    /// used at least as much as the plan saw, and drop the waits that ended by `now`.
    fn record_waits(&mut self, now: DateTime<Utc>, waits: Vec<PlanWait>) {
        self.waits.retain(|_, w| w.until > now);
        for PlanWait { wait: w, seen } in waits {
            let known = self
                .sequences
                .get(&w.sequence)
                .is_some_and(|s| s.tenant == w.tenant);
            let still_full = seen
                .iter()
                .all(|d| self.used_on(d.mailbox, d.local_date) >= d.used);
            if known && still_full && w.until > now {
                self.waits.insert(w.sequence, w);
            }
        }
    }

    /// Record the mailbox waits of a plan, each of a mailbox of its tenant whose day is used
    /// at least as much as the plan saw, and drop the waits that ended by `now`.
    fn record_mailbox_waits(&mut self, now: DateTime<Utc>, waits: Vec<PlanMailboxWait>) {
        self.mailbox_waits.retain(|_, w| w.until > now);
        for PlanMailboxWait { wait: w, seen } in waits {
            let known = self.is_mailbox_of(w.tenant, w.mailbox);
            let still_full = seen.mailbox == w.mailbox
                && self.used_on(seen.mailbox, seen.local_date) >= seen.used;
            if known && still_full && w.until > now {
                self.mailbox_waits.insert(w.mailbox, w);
            }
        }
    }

    /// Record the deferrals whose versions match, in place. A plan may defer tens of
    /// thousands of enrollments: while it is applied, their due-index moves are collected
    /// (see [`State::reindex_enrollment`]) and made once at its end.
    fn defer_all(&mut self, deferrals: &[PlanDeferral]) {
        if let Some((gone, come)) = &mut self.due_moves {
            gone.reserve(deferrals.len());
            come.reserve(deferrals.len());
        }
        for d in deferrals {
            self.change_enrollment(d.enrollment, |e| {
                if e.version() == d.enrollment_version {
                    // A refused deferral (not active) leaves the row as it was.
                    let _ = e.defer(d.deferral);
                }
            });
        }
    }

    /// Plan one send; it takes `ps` to keep its strings rather than copy them.
    pub(super) fn plan_one(&mut self, ps: PlanSend) -> PlanOne {
        let Some(e) = self.enrollments.get(&ps.enrollment) else {
            return PlanOne::Stale;
        };
        if e.version() != ps.enrollment_version
            || e.status() != EnrollmentStatus::Active
            || e.current_step() != ps.step
        {
            return PlanOne::Stale;
        }
        let (tenant, sequence, contact) = (e.tenant, e.sequence, e.contact);
        if self
            .mailboxes
            .get(&ps.mailbox)
            .is_none_or(|m| m.tenant != tenant)
        {
            // No plan can ever use this mailbox: park the enrollment (a pool change wakes
            // it) rather than leave it due at the same instant.
            let parked = Deferral {
                reason: DeferralReason::NoActiveMailboxInPool,
                not_before: None,
            };
            self.change_enrollment(ps.enrollment, |e| e.defer(parked));
            return PlanOne::Stale;
        }
        let existing = self
            .sends_by_enrollment
            .get(&ps.enrollment)
            .and_then(|steps| steps.get(&ps.step))
            .copied();
        if let Some(id) = existing {
            let reusable = self.sends.get(&id).is_some_and(|row| {
                matches!(
                    row.send.status(),
                    SendStatus::RetryWait | SendStatus::Cancelled
                )
            });
            if !reusable {
                return PlanOne::Stale;
            }
        }
        if self.used_on(ps.mailbox, ps.local_date) >= ps.limit {
            return PlanOne::OverCapacity;
        }
        let date = ps.at.date_naive();
        let send = match existing {
            Some(id) => {
                let replanned = self.update_send(id, |row| {
                    // Waiting for a retry, or called off before it went out (pre-empted,
                    // released, paused): planned again in place, keeping its id and attempts,
                    // so (enrollment, step) stays one row.
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
                match replanned {
                    Some(Some(send)) => send,
                    _ => return PlanOne::Stale,
                }
            }
            None => {
                // Its id is the idempotency key's: `SendId::of_step`.
                let send = ScheduledSend::planned(
                    tenant,
                    ps.enrollment,
                    sequence,
                    contact,
                    ps.step,
                    ps.mailbox,
                    ps.at,
                    ps.local_date,
                    ps.message_id,
                    ps.variant,
                );
                let new_start = send.step == 0;
                self.daily_add(date, &send, &ps.recipient_domain, new_start);
                let id = send.id;
                self.insert_send(SendRow {
                    send,
                    domain: ps.recipient_domain,
                    pending: Some((date, new_start)),
                    prev_last_attempt: None,
                });
                self.reserve(ps.mailbox, ps.local_date);
                self.change_enrollment(ps.enrollment, Enrollment::mark_planned);
                return PlanOne::Planned(id);
            }
        };
        self.reserve(ps.mailbox, ps.local_date);
        let new_start = send.step == 0 && send.attempts() == 0;
        self.daily_add(date, &send, &ps.recipient_domain, new_start);
        if let Some(row) = self.sends.get_mut(&send.id) {
            row.pending = Some((date, new_start));
        }
        self.change_enrollment(ps.enrollment, Enrollment::mark_planned);
        PlanOne::Planned(send.id)
    }

    // ---- dispatch --------------------------------------------------------------------------------

    pub(crate) fn claim_sends(
        &mut self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Vec<ClaimedSend> {
        let until = now
            .checked_add_signed(lease_for)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        // One candidate per mailbox with nothing in flight, by its earliest planned send.
        let candidates: Vec<MailboxId> = self
            .ready
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, mailbox)| *mailbox)
            .collect();
        let mut out = Vec::with_capacity(candidates.len());
        for mailbox in candidates {
            let Some(outbox) = self.outboxes.get(&mailbox) else {
                continue;
            };
            let Some(&(_, id)) = outbox.planned.first() else {
                continue;
            };
            let prev = outbox.last_attempt_at;
            let Some(row) = self.sends.get(&id) else {
                continue;
            };
            let (Some(enrollment), Some(contact)) = (
                self.enrollments.get(&row.send.enrollment),
                self.contacts.get(&row.send.contact),
            ) else {
                continue;
            };
            let (enrollment, contact) = (Enrollment::clone(enrollment), Contact::clone(contact));
            let lease = Lease {
                token: self.tokens.next(),
                attempt: row.send.attempts().saturating_add(1),
                until,
            };
            let claimed = self.update_send(id, |row| {
                row.send.claim(lease).ok().map(|()| {
                    row.prev_last_attempt = prev;
                    row.send.clone()
                })
            });
            let Some(Some(send)) = claimed else {
                continue;
            };
            if let Some(o) = self.outboxes.get_mut(&mailbox) {
                o.last_attempt_at = Some(prev.map_or(now, |p| p.max(now)));
            }
            self.count_attempt(mailbox, send.local_date());
            out.push(ClaimedSend {
                send,
                lease,
                enrollment,
                contact,
            });
        }
        out
    }

    pub(crate) fn send_context(&self, tenant: TenantId, id: SendId) -> Option<SendContext> {
        let send = &self
            .sends
            .get(&id)
            .filter(|r| r.send.tenant == tenant)?
            .send;
        Some(SendContext {
            enrollment: self
                .enrollments
                .get(&send.enrollment)
                .map(|e| Enrollment::clone(e)),
            contact: self.contacts.get(&send.contact).map(|c| Contact::clone(c)),
            mailbox: self.mailboxes.get(&send.mailbox()).cloned(),
            sequence: self.sequences.get(&send.sequence).cloned(),
            attempts_on_day: self
                .attempts
                .get(&(send.mailbox(), send.local_date()))
                .copied()
                .unwrap_or(0),
        })
    }

    pub(crate) fn complete_send(
        &mut self,
        now: DateTime<Utc>,
        completion: SendCompletion,
    ) -> Result<(), StoreError> {
        let SendCompletion {
            send,
            lease,
            enrollment,
            enrollment_version,
            attempted_at,
            changes,
        } = completion;
        let id = send.id;
        let Some(row) = self.sends.get(&id) else {
            return Err(not_found(Entity::Send, id));
        };
        if row.send.check_lease(&lease).is_err() {
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
        let tenant = row.send.tenant;
        let row_mailbox = row.send.mailbox();
        if enrollment.id != row.send.enrollment {
            return Err(not_found(Entity::Enrollment, enrollment.id));
        }
        let mut all = changes;
        all.enrollments.insert(0, (enrollment, enrollment_version));
        self.check_changes(&all, Some(tenant))?;

        // Nothing can fail from here on.
        // The mailbox's latest attempt is when the transport was called, not the claim.
        if let Some(o) = self.outboxes.get_mut(&row_mailbox) {
            o.last_attempt_at = o.last_attempt_at.max(Some(attempted_at));
        }
        let at = send.sent_at().unwrap_or(now);
        let error = send.last_error().unwrap_or_default().to_owned();
        let outcome = send.status();
        self.update_send(id, |row| {
            let done = match outcome {
                SendStatus::Sent => row.send.mark_sent(&lease, at),
                _ => row
                    .send
                    .mark_failed(&lease, error, outcome == SendStatus::RetryWait),
            };
            if done.is_ok() {
                // The attempt is made: its counts stay.
                row.pending = None;
                row.prev_last_attempt = None;
            }
        });
        self.write_changes(all, Some(tenant));
        self.wake_for_released(now);
        Ok(())
    }

    pub(crate) fn release_send(
        &mut self,
        now: DateTime<Utc>,
        id: SendId,
        lease: Lease,
        replan_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let Some(row) = self.sends.get(&id) else {
            return Err(not_found(Entity::Send, id));
        };
        if row.send.check_lease(&lease).is_err() {
            return Err(StoreError::LeaseLost { send: id });
        }
        let at = replan_at.unwrap_or(now);
        let released = self.update_send(id, |row| {
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
        if let Some(o) = self.outboxes.get_mut(&send.mailbox()) {
            o.last_attempt_at = prev;
        }
        self.uncount_attempt(send.mailbox(), send.local_date());
        self.refresh_ready(send.mailbox());
        if replan_at.is_some() {
            // The reservation is kept; the daily counts follow the new instant's UTC date.
            if let Some((old, new_start)) = pending {
                let new = send.planned_at().date_naive();
                if new != old {
                    self.daily_sub(old, &send, &domain, new_start);
                    self.daily_add(new, &send, &domain, new_start);
                    if let Some(row) = self.sends.get_mut(&id) {
                        row.pending = Some((new, new_start));
                    }
                }
            }
        } else if self.cancel_send(id, "given back before sending") {
            self.release_enrollment(send.enrollment, now);
            self.wake_for_released(now);
        }
        Ok(())
    }

    pub(crate) fn expire_leases(&mut self, now: DateTime<Utc>, resend: bool) -> Vec<ScheduledSend> {
        let expired: Vec<SendId> = self
            .leases
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, id)| *id)
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            // Re-checked here, under the lock: still sending, lease still run out.
            let Some(row) = self.sends.get(&id) else {
                continue;
            };
            if row.send.lease().is_none_or(|l| l.until > now) {
                continue;
            }
            if row.send.status() != SendStatus::Sending {
                continue;
            }
            let changed = self.update_send(id, |row| {
                let done = if resend {
                    row.send.abandon_expired(now)
                } else {
                    row.send.mark_uncertain(now)
                };
                done.ok().map(|()| {
                    // The attempt may have gone out: it stays counted on its day.
                    row.pending = None;
                    row.prev_last_attempt = None;
                    row.send.clone()
                })
            });
            let Some(Some(send)) = changed else {
                continue;
            };
            if resend {
                // At least once: the step is planned again by the planner, inside capacity,
                // on the same mailbox.
                self.release_attempted(&send, now);
            } else {
                // At most once: the step is counted as sent, never sent again.
                self.record_uncertain(&send, now);
            }
            out.push(send);
        }
        out
    }
}
