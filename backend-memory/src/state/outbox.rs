//! Counters, the outbox indexes and change sets: the helpers every unit of work writes
//! through, so that rows and indexes stay in step.

use super::*;

impl State {
    // ---- counters -------------------------------------------------------------------------------

    pub(crate) fn mailbox_days(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<MailboxDay>, StoreError> {
        if self
            .mailboxes
            .get(&mailbox)
            .is_none_or(|m| m.tenant != tenant)
        {
            return Err(StoreError::not_found(Entity::Mailbox, mailbox));
        }
        let days = (to - from).num_days() + 1;
        if !(1..=MAX_MAILBOX_DAYS).contains(&days) {
            return Err(StoreError::Invalid(format!(
                "mailbox_days: {from} to {to} is {days} days; 1 to {MAX_MAILBOX_DAYS} are allowed"
            )));
        }
        Ok(from
            .iter_days()
            .take_while(|date| *date <= to)
            .map(|date| MailboxDay {
                date,
                attempts: self.attempts.get(&(mailbox, date)).copied().unwrap_or(0),
                used: self.used_on(mailbox, date),
            })
            .collect())
    }

    pub(super) fn used_on(&self, mailbox: MailboxId, date: NaiveDate) -> u32 {
        self.used.get(&(mailbox, date)).copied().unwrap_or(0)
    }

    pub(super) fn reserve(&mut self, mailbox: MailboxId, date: NaiveDate) {
        let n = self.used.entry((mailbox, date)).or_insert(0);
        *n = n.saturating_add(1);
    }

    pub(super) fn unreserve(&mut self, mailbox: MailboxId, date: NaiveDate) {
        if let Entry::Occupied(mut n) = self.used.entry((mailbox, date)) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    pub(super) fn daily_add(
        &mut self,
        date: NaiveDate,
        send: &ScheduledSend,
        domain: &str,
        new_start: bool,
    ) {
        let day = self.daily.entry(date).or_default();
        if new_start {
            *day.new_starts.entry(send.sequence).or_insert(0) += 1;
        }
        let key = &mut self.domain_key;
        key.0 = send.tenant;
        key.1.clear();
        key.1.push_str(domain);
        match day.per_domain.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                day.per_domain.insert(key.clone(), 1);
            }
        }
    }

    pub(super) fn daily_sub(
        &mut self,
        date: NaiveDate,
        send: &ScheduledSend,
        domain: &str,
        new_start: bool,
    ) {
        let Some(day) = self.daily.get_mut(&date) else {
            return;
        };
        if new_start {
            if let Entry::Occupied(mut n) = day.new_starts.entry(send.sequence) {
                *n.get_mut() = n.get().saturating_sub(1);
                if *n.get() == 0 {
                    n.remove();
                }
            }
        }
        if let Entry::Occupied(mut n) = day.per_domain.entry((send.tenant, domain.to_owned())) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    // ---- sends: index upkeep ------------------------------------------------------------------

    pub(super) fn index_send(&mut self, k: SendKeys) {
        match k.status {
            SendStatus::Planned => {
                self.planned.insert((k.planned_at, k.id));
                self.outboxes
                    .entry(k.mailbox)
                    .or_default()
                    .planned
                    .insert((k.planned_at, k.id));
            }
            SendStatus::Sending => {
                if let Some(until) = k.lease_until {
                    self.leases.insert((until, k.id));
                }
                self.outboxes
                    .entry(k.mailbox)
                    .or_default()
                    .sending
                    .insert(k.id);
            }
            _ => {}
        }
    }

    pub(super) fn unindex_send(&mut self, k: SendKeys) {
        match k.status {
            SendStatus::Planned => {
                self.planned.remove(&(k.planned_at, k.id));
                if let Some(o) = self.outboxes.get_mut(&k.mailbox) {
                    o.planned.remove(&(k.planned_at, k.id));
                }
            }
            SendStatus::Sending => {
                if let Some(until) = k.lease_until {
                    self.leases.remove(&(until, k.id));
                }
                if let Some(o) = self.outboxes.get_mut(&k.mailbox) {
                    o.sending.remove(&k.id);
                }
            }
            _ => {}
        }
    }

    /// Put a mailbox in [`State::ready`] under the instant its earliest planned send becomes
    /// claimable while nothing of it is in flight; take it out otherwise.
    pub(super) fn refresh_ready(&mut self, mailbox: MailboxId) {
        let gap = self.gap_of(mailbox);
        let Some(o) = self.outboxes.get_mut(&mailbox) else {
            return;
        };
        let want = ready_key(o.sending.is_empty(), &o.planned, o.last_attempt_at, gap);
        if want != o.ready_at {
            if let Some(old) = o.ready_at {
                self.ready.remove(&(old, mailbox));
            }
            if let Some(new) = want {
                self.ready.insert((new, mailbox));
            }
            o.ready_at = want;
        }
    }

    /// A mailbox's minimum gap between attempts.
    pub(super) fn gap_of(&self, mailbox: MailboxId) -> Duration {
        self.mailboxes.get(&mailbox).map_or(Duration::zero(), |m| {
            Duration::seconds(i64::from(m.min_gap_seconds))
        })
    }

    pub(super) fn count_attempt(&mut self, mailbox: MailboxId, date: NaiveDate) {
        *self.attempts.entry((mailbox, date)).or_insert(0) += 1;
    }

    pub(super) fn uncount_attempt(&mut self, mailbox: MailboxId, date: NaiveDate) {
        if let Entry::Occupied(mut n) = self.attempts.entry((mailbox, date)) {
            *n.get_mut() = n.get().saturating_sub(1);
            if *n.get() == 0 {
                n.remove();
            }
        }
    }

    /// Change one send in place with `f`, keeping the indexes in step.
    pub(super) fn update_send<T>(
        &mut self,
        id: SendId,
        f: impl FnOnce(&mut SendRow) -> T,
    ) -> Option<T> {
        let row = self.sends.get_mut(&id)?;
        let before = SendKeys::of(&row.send);
        let out = f(row);
        let after = SendKeys::of(&row.send);
        if before != after {
            self.unindex_send(before);
            self.index_send(after);
            self.refresh_ready(before.mailbox);
            if after.mailbox != before.mailbox {
                self.refresh_ready(after.mailbox);
            }
        }
        Some(out)
    }

    pub(super) fn insert_send(&mut self, row: SendRow) {
        let s = &row.send;
        self.sends_by_enrollment
            .entry(s.enrollment)
            .or_default()
            .insert(s.step, s.id);
        self.sends_by_sequence
            .entry(s.sequence)
            .or_default()
            .push(s.id);
        let keys = SendKeys::of(s);
        self.index_send(keys);
        self.sends.insert(keys.id, row);
        self.refresh_ready(keys.mailbox);
    }

    /// Cancel a planned send (releasing its reservation and its daily counts) or one waiting
    /// for a retry (which holds no reservation). Other sends are left as they are. Returns
    /// whether the send was cancelled.
    pub(super) fn cancel_send(&mut self, id: SendId, reason: &str) -> bool {
        let Some(status) = self.sends.get(&id).map(|r| r.send.status()) else {
            return false;
        };
        if !matches!(status, SendStatus::Planned | SendStatus::RetryWait) {
            return false;
        }
        let done = self.update_send(id, |row| {
            row.send.cancel(reason).ok().map(|()| {
                (
                    row.send.clone(),
                    row.domain.clone(),
                    row.pending.take(),
                    row.prev_last_attempt.take(),
                )
            })
        });
        let Some(Some((send, domain, pending, _))) = done else {
            return false;
        };
        if status == SendStatus::Planned {
            self.unreserve(send.mailbox(), send.local_date());
            self.released.push((send.mailbox(), send.local_date()));
        }
        if let Some((date, new_start)) = pending {
            self.daily_sub(date, &send, &domain, new_start);
        }
        true
    }

    /// The enrollment of a send that was called off is looked at again from `now`.
    pub(super) fn release_enrollment(&mut self, id: EnrollmentId, now: DateTime<Utc>) {
        // A refused release (final) leaves the row as it was.
        self.change_enrollment(id, |e| e.release_planned(now));
    }

    /// At least once: the enrollment of a send whose lease ran out keeps the mailbox the
    /// attempt was made from (sticky) and is due again at `now`.
    pub(super) fn release_attempted(&mut self, send: &ScheduledSend, now: DateTime<Utc>) {
        self.change_enrollment(send.enrollment, |e| {
            e.attempted_on(send.mailbox());
            let _ = e.release_planned(now);
        });
    }

    /// At most once: the enrollment of a send whose lease ran out records the uncertain
    /// step and is due at `now`, in the same unit as the send, so the next planner moves it
    /// past the step whoever expired the lease.
    pub(super) fn record_uncertain(&mut self, send: &ScheduledSend, now: DateTime<Utc>) {
        // A refused record (final, or past the step) leaves the row as it was.
        self.change_enrollment(send.enrollment, |e| {
            e.send_uncertain(send.step, send.message_id.clone(), send.mailbox(), now)
        });
    }

    // ---- changes -----------------------------------------------------------------------------------

    /// Check a change set without writing: every record exists in its tenant (and in
    /// `tenant`, when given), every version matches, and no (sequence, contact) gets two
    /// open enrollments.
    pub(super) fn check_changes(
        &self,
        changes: &ChangeSet,
        tenant: Option<TenantId>,
    ) -> Result<(), StoreError> {
        let in_scope = |t: TenantId| tenant.is_none_or(|scope| scope == t);
        let mut contact_versions: HashMap<ContactId, u64> = HashMap::default();
        for (c, read) in &changes.contacts {
            let stored = match self.contacts.get(&c.id) {
                Some(stored) if stored.tenant == c.tenant && in_scope(c.tenant) => stored,
                _ => return Err(not_found(Entity::Contact, c.id)),
            };
            let current = contact_versions
                .get(&c.id)
                .copied()
                .unwrap_or(stored.version());
            if current != *read {
                return Err(conflict(Entity::Contact, c.id, *read, current));
            }
            if normalize_email(&c.email) != normalize_email(&stored.email) {
                return Err(StoreError::Invalid(format!(
                    "contact {}: an engine write may not change the address",
                    c.id
                )));
            }
            contact_versions.insert(c.id, written_version(c.version(), *read));
        }
        let closing: HashSet<EnrollmentId> = changes
            .enrollments
            .iter()
            .filter(|(e, _)| e.is_final())
            .map(|(e, _)| e.id)
            .collect();
        let mut versions: HashMap<EnrollmentId, u64> = HashMap::default();
        let mut opening: HashMap<(SequenceId, ContactId), EnrollmentId> = HashMap::default();
        for (e, read) in &changes.enrollments {
            let stored = match self.enrollments.get(&e.id) {
                Some(s) if s.tenant == e.tenant && in_scope(e.tenant) => s,
                _ => return Err(not_found(Entity::Enrollment, e.id)),
            };
            if let Some(m) = e.mailbox().filter(|m| !self.is_mailbox_of(e.tenant, *m)) {
                return Err(not_found(Entity::Mailbox, m));
            }
            let current = versions.get(&e.id).copied().unwrap_or(stored.version());
            if current != *read {
                return Err(conflict(Entity::Enrollment, e.id, *read, current));
            }
            versions.insert(e.id, written_version(e.version(), *read));
            if !e.is_final() {
                let pair = (e.sequence, e.contact);
                let taken = self
                    .open_by_pair
                    .get(&pair)
                    .filter(|other| **other != e.id && !closing.contains(other))
                    .or_else(|| opening.get(&pair).filter(|other| **other != e.id));
                if taken.is_some() {
                    return Err(StoreError::AlreadyExists {
                        entity: Entity::Enrollment,
                        id: format!("{} (sequence {}, contact {})", e.id, e.sequence, e.contact),
                    });
                }
                opening.insert(pair, e.id);
            }
        }
        let mut seq_versions: HashMap<SequenceId, u64> = HashMap::default();
        for (s, read) in &changes.sequences {
            let stored = match self.sequences.get(&s.id) {
                Some(stored) if stored.tenant == s.tenant && in_scope(s.tenant) => stored,
                _ => return Err(not_found(Entity::Sequence, s.id)),
            };
            let current = seq_versions.get(&s.id).copied().unwrap_or(stored.version());
            if current != *read {
                return Err(conflict(Entity::Sequence, s.id, *read, current));
            }
            seq_versions.insert(s.id, written_version(s.version(), *read));
        }
        let mut mb_versions: HashMap<MailboxId, u64> = HashMap::default();
        for (m, read) in &changes.mailboxes {
            let stored = match self.mailboxes.get(&m.id) {
                Some(stored) if stored.tenant == m.tenant && in_scope(m.tenant) => stored,
                _ => return Err(not_found(Entity::Mailbox, m.id)),
            };
            let current = mb_versions.get(&m.id).copied().unwrap_or(stored.version());
            if current != *read {
                return Err(conflict(Entity::Mailbox, m.id, *read, current));
            }
            mb_versions.insert(m.id, written_version(m.version(), *read));
        }
        Ok(())
    }

    /// Write a change set that [`State::check_changes`] accepted.
    pub(super) fn write_changes(&mut self, changes: ChangeSet, tenant: Option<TenantId>) {
        for (mut c, read) in changes.contacts {
            let current = self.contacts.get(&c.id).map_or(read, |st| st.version());
            c.set_version(written_version(c.version(), current));
            self.put_contact(c);
        }
        for (mut e, read) in changes.enrollments {
            let current = self.enrollments.get(&e.id).map_or(read, |e| e.version());
            e.set_version(written_version(e.version(), current));
            self.put_enrollment(e);
        }
        for id in changes.cancel_sends {
            let ours = self
                .sends
                .get(&id)
                .is_some_and(|row| tenant.is_none_or(|t| t == row.send.tenant));
            if ours {
                self.cancel_send(id, "called off");
            }
        }
        for (mut s, read) in changes.sequences {
            let current = self
                .sequences
                .get(&s.id)
                .map_or(read, sequence_core::sequence::Sequence::version);
            s.set_version(written_version(s.version(), current));
            self.put_sequence(s);
        }
        for (mut m, read) in changes.mailboxes {
            let current = self
                .mailboxes
                .get(&m.id)
                .map_or(read, sequence_core::mailbox::Mailbox::version);
            m.set_version(written_version(m.version(), current));
            self.put_mailbox(m);
        }
        for mark in changes.tracking {
            if let Some(row) = self.sends.get_mut(&mark.send) {
                if tenant.is_none_or(|t| t == row.send.tenant) {
                    row.send.mark(mark.kind, mark.at);
                }
            }
        }
    }

    pub(crate) fn apply_changes(
        &mut self,
        now: DateTime<Utc>,
        changes: ChangeSet,
    ) -> Result<(), StoreError> {
        self.check_changes(&changes, None)?;
        self.write_changes(changes, None);
        self.wake_for_released(now);
        Ok(())
    }

    /// Capacity a unit of work released on a mailbox's current local day goes to waiting
    /// enrollments the same day: for each released unit, up to two active enrollments
    /// deferred for capacity or windows that the mailbox can serve (its sequence's pool holds
    /// it, and it is not sticky to another active mailbox) are made due at `now`, soonest
    /// first. Two, because one woken may still not fit (its recipient's hours).
    pub(super) fn wake_for_released(&mut self, now: DateTime<Utc>) {
        /// How far down the due index one released unit looks.
        const SCAN: usize = 512;
        for (mailbox, date) in std::mem::take(&mut self.released) {
            let Some(m) = self.mailboxes.get(&mailbox) else {
                continue;
            };
            if !m.is_active() || local_date(m.timezone, now) != date {
                continue;
            }
            let tenant = m.tenant;
            // The pools holding the mailbox have room again: their backlog is planned anew.
            self.end_waits_on(tenant, mailbox);
            let woken: Vec<EnrollmentId> = self
                .due
                .first_keys(DueKey::highest(DateTime::<Utc>::MAX_UTC), SCAN, |_| {
                    Some((DueKey::lowest(now), SCAN))
                })
                .into_iter()
                .filter_map(|k| self.enrollments.get(&k.enrollment()))
                .filter(|e| {
                    e.tenant == tenant
                        && e.status() == EnrollmentStatus::Active
                        && e.deferral().is_some_and(|d| {
                            matches!(
                                d.reason,
                                DeferralReason::NoCapacity
                                    | DeferralReason::OutsideMailboxWindow
                                    | DeferralReason::OutsideRecipientWindow
                            )
                        })
                        && e.mailbox().is_none_or(|sticky| {
                            sticky == mailbox
                                || self.mailboxes.get(&sticky).is_none_or(|s| !s.is_active())
                        })
                        && self
                            .sequences
                            .get(&e.sequence)
                            .is_some_and(|s| s.mailbox_pool.contains(&mailbox))
                })
                .take(2)
                .map(|e| e.id)
                .collect();
            for id in woken {
                self.change_enrollment(id, |e| e.wake(now));
            }
        }
    }
}
