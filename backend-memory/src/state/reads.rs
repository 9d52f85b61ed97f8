//! Reads: enrollments by id, sequence, contact and due instant, sends, tallies, mailbox
//! snapshots, daily counts and the next wake-up.

use super::*;

impl State {
    pub(crate) fn get_enrollment(&self, tenant: TenantId, id: EnrollmentId) -> Option<Enrollment> {
        self.enrollments
            .get(&id)
            .filter(|e| e.tenant == tenant)
            .map(|e| Enrollment::clone(e))
    }

    pub(crate) fn list_enrollments(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Vec<Enrollment> {
        if self
            .sequences
            .get(&sequence)
            .is_none_or(|s| s.tenant != tenant)
        {
            return Vec::new();
        }
        self.enrollments_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant)
            .map(|e| Enrollment::clone(e))
            .collect()
    }

    pub(crate) fn open_enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Vec<Enrollment> {
        self.sequence_page(tenant, sequence, after, limit, |e| !e.is_final())
    }

    pub(crate) fn enrollments_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        status: Option<EnrollmentStatus>,
        after: Option<EnrollmentCursor>,
        limit: usize,
    ) -> Vec<Enrollment> {
        self.sequence_page(tenant, sequence, after, limit, |e| {
            status.is_none_or(|s| e.status() == s)
        })
    }

    /// At most `limit` enrollments of the tenant's `sequence` that `keep` accepts, by
    /// (enrolled instant, id) after `after`: a walk of the sequence's own index from the
    /// cursor, never of the whole store.
    fn sequence_page(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        after: Option<EnrollmentCursor>,
        limit: usize,
        keep: impl Fn(&Enrollment) -> bool,
    ) -> Vec<Enrollment> {
        let Some(list) = self.enrollments_by_sequence.get(&sequence) else {
            return Vec::new();
        };
        let from = match after {
            Some(c) => std::ops::Bound::Excluded((c.enrolled_at, c.id)),
            None => std::ops::Bound::Unbounded,
        };
        list.range((from, std::ops::Bound::Unbounded))
            .filter_map(|(_, id)| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant && keep(e))
            .take(limit)
            .map(|e| Enrollment::clone(e))
            .collect()
    }

    pub(crate) fn open_sends_of(
        &self,
        tenant: TenantId,
        enrollments: &[EnrollmentId],
    ) -> Vec<ScheduledSend> {
        enrollments
            .iter()
            .filter_map(|id| self.sends_by_enrollment.get(id))
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.sends.get(id))
            .map(|row| &row.send)
            .filter(|s| {
                s.tenant == tenant
                    && matches!(s.status(), SendStatus::Planned | SendStatus::RetryWait)
            })
            .cloned()
            .collect()
    }

    pub(crate) fn enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Vec<Enrollment> {
        let mut all: Vec<Enrollment> = self
            .enrollments_by_contact
            .get(&contact)
            .into_iter()
            .flatten()
            .filter_map(|id| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant)
            .map(|e| Enrollment::clone(e))
            .collect();
        all.sort_by_key(|e| (e.enrolled_at, e.id));
        all
    }

    pub(crate) fn open_enrollments_of_contact(
        &self,
        tenant: TenantId,
        contact: ContactId,
    ) -> Vec<Enrollment> {
        self.enrollments_by_contact
            .get(&contact)
            .into_iter()
            .flatten()
            .filter_map(|id| self.enrollments.get(id))
            .filter(|e| e.tenant == tenant && !e.is_final())
            .map(|e| Enrollment::clone(e))
            .collect()
    }

    /// The documents of the enrollments `due` names (by tenant and id), each with its
    /// contact, shared.
    pub(crate) fn due_documents(&self, due: &[(TenantId, EnrollmentId)]) -> Vec<DueDocuments> {
        due.iter()
            .filter_map(|(tenant, id)| {
                let enrollment = self.enrollments.get(id).filter(|e| e.tenant == *tenant)?;
                let contact = self.contacts.get(&enrollment.contact)?;
                Some(DueDocuments {
                    enrollment: Arc::clone(enrollment),
                    contact: Arc::clone(contact),
                })
            })
            .collect()
    }

    pub(crate) fn due_enrollments(&self, now: DateTime<Utc>, limit: usize) -> Vec<DueEnrollment> {
        self.due_enrollments_bounded(now, limit, &[], &[])
    }

    /// The due enrollments, each sequence's that go to its pool and each mailbox's sticky to
    /// it taken up to its bound in `pools` and `mailboxes` (or `limit`), none of a sequence
    /// whose pool wait holds or sticky to a mailbox whose wait holds.
    pub(crate) fn due_enrollments_bounded(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        pools: &[PoolBound],
        mailboxes: &[MailboxBound],
    ) -> Vec<DueEnrollment> {
        let take = |lane: Lane| {
            let from = self.lane_open_from(lane, now)?;
            let bound = match lane {
                Lane::Rest => None,
                Lane::Pool(seq) => {
                    let tenant = self.sequences.get(&seq).map(|s| s.tenant);
                    pools
                        .iter()
                        .filter(|b| b.sequence == seq && Some(b.tenant) == tenant)
                        .map(|b| b.at_most)
                        .min()
                }
                Lane::Mailbox(tenant, mailbox) => mailboxes
                    .iter()
                    .filter(|b| b.mailbox == mailbox && b.tenant == tenant)
                    .map(|b| b.at_most)
                    .min(),
            };
            Some((from, bound.unwrap_or(limit)))
        };
        // The rows first, so that the answer is allocated once at its size.
        let rows: Vec<(&Arc<Enrollment>, &Arc<Contact>)> = self
            .due
            .first_keys(DueKey::highest(now), limit, take)
            .into_iter()
            .filter_map(|k| {
                let enrollment = self.enrollments.get(&k.enrollment())?;
                Some((enrollment, self.contacts.get(&enrollment.contact)?))
            })
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        out.extend(
            rows.into_iter()
                .map(|(e, c)| DueEnrollment::of(Arc::clone(e), Arc::clone(c))),
        );
        out
    }

    /// The sequences with an enrollment due at `now` that goes to the pool and is not held
    /// by a pool wait: the earliest key of each pool sequence's set tells.
    pub(crate) fn due_pools(&self, now: DateTime<Utc>) -> Vec<(TenantId, SequenceId)> {
        self.due_lanes(now)
            .filter_map(|lane| match lane {
                Lane::Pool(seq) => Some((self.sequences.get(&seq)?.tenant, seq)),
                _ => None,
            })
            .collect()
    }

    /// The mailboxes with an enrollment of their tenant due at `now` sticky to them and not
    /// held by a mailbox wait: the earliest key of each mailbox lane tells.
    pub(crate) fn due_mailboxes(&self, now: DateTime<Utc>) -> Vec<(TenantId, MailboxId)> {
        self.due_lanes(now)
            .filter_map(|lane| match lane {
                Lane::Mailbox(tenant, mailbox) => Some((tenant, mailbox)),
                _ => None,
            })
            .collect()
    }

    /// The lanes of the due index with an enrollment due at `now` that no wait holds.
    fn due_lanes(&self, now: DateTime<Utc>) -> impl Iterator<Item = Lane> + '_ {
        self.due
            .firsts()
            .filter(move |&(lane, first)| {
                self.first_open_key(lane, first, now)
                    .and_then(DueKey::at)
                    .is_some_and(|at| at <= now)
            })
            .map(|(lane, _)| lane)
    }

    // ---- sends: reads --------------------------------------------------------------------------

    pub(crate) fn sends_of_enrollment(
        &self,
        tenant: TenantId,
        enrollment: EnrollmentId,
    ) -> Vec<ScheduledSend> {
        self.sends_by_enrollment
            .get(&enrollment)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.sends.get(id))
            .filter(|row| row.send.tenant == tenant)
            .map(|row| row.send.clone())
            .collect()
    }

    pub(crate) fn sends_of_sequence(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
    ) -> Vec<ScheduledSend> {
        self.sends_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sends.get(id))
            .filter(|row| row.send.tenant == tenant)
            .map(|row| row.send.clone())
            .collect()
    }

    /// The sequence's rows counted where they are, without copying one.
    pub(crate) fn sequence_tally(&self, tenant: TenantId, sequence: SequenceId) -> SequenceTally {
        if self
            .sequences
            .get(&sequence)
            .is_none_or(|s| s.tenant != tenant)
        {
            return SequenceTally::default();
        }
        let enrollments = self
            .enrollments_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|(_, id)| self.enrollments.get(id))
            .map(|e| &**e);
        let sends = self
            .sends_by_sequence
            .get(&sequence)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sends.get(id))
            .map(|row| &row.send);
        SequenceTally::of(enrollments, sends)
    }

    pub(crate) fn mailbox_snapshots(
        &self,
        now: DateTime<Utc>,
        ids: &[MailboxId],
    ) -> Vec<MailboxSnapshot> {
        let mut seen =
            HashSet::with_capacity_and_hasher(ids.len(), foldhash::fast::RandomState::default());
        ids.iter()
            .filter(|id| seen.insert(**id))
            .filter_map(|id| {
                let mailbox = self.mailboxes.get(id)?;
                let date = local_date(mailbox.timezone, now);
                let outbox = self.outboxes.get(id);
                let planned = outbox
                    .into_iter()
                    .flat_map(|o| o.planned.iter())
                    .filter_map(|(at, sid)| {
                        let row = self.sends.get(sid)?;
                        Some(PlannedSlot {
                            send: *sid,
                            enrollment: row.send.enrollment,
                            step: row.send.step,
                            at: *at,
                        })
                    })
                    .collect();
                Some(MailboxSnapshot {
                    mailbox: mailbox.clone(),
                    local_date: date,
                    used: self.used_on(*id, date),
                    last_attempt_at: outbox.and_then(|o| o.last_attempt_at),
                    planned,
                    held_until: self
                        .mailbox_wait(mailbox.tenant, mailbox.id, now)
                        .map(|w| w.until),
                })
            })
            .collect()
    }

    pub(crate) fn daily_counts(
        &self,
        now: DateTime<Utc>,
        sequences: &[SequenceId],
        domains: &[(TenantId, String)],
    ) -> DailyCounts {
        let mut out = DailyCounts::default();
        let Some(day) = self.daily.get(&now.date_naive()) else {
            return out;
        };
        for id in sequences {
            if let Some(n) = day.new_starts.get(id) {
                out.new_starts.insert(*id, *n);
            }
        }
        for key in domains {
            if let Some(n) = day.per_domain.get(key) {
                out.per_domain.insert(key.clone(), *n);
            }
        }
        out
    }

    pub(crate) fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        [
            self.next_due(),
            self.ready.first().map(|(at, _)| *at),
            self.leases.first().map(|(until, _)| *until),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The earliest instant an enrollment is due at, one that a pool or mailbox wait holds
    /// back counting at the wait's end: the earliest key of each lane of the due index is
    /// enough.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due
            .firsts()
            .filter_map(|(lane, k)| {
                let at = k.at()?;
                // The lane's first key no wait holds back at `at` (a wait that ended by then
                // holds nothing), or the end of the wait that holds it, whichever is first.
                let open = self.first_open_key(lane, k, at).and_then(DueKey::at);
                let held = self.lane_wait(lane, at).map(|w| w.until.max(at));
                open.into_iter().chain(held).min()
            })
            .min()
    }

    pub(crate) fn pool_wait(
        &self,
        tenant: TenantId,
        sequence: SequenceId,
        now: DateTime<Utc>,
    ) -> Option<PoolWait> {
        self.waits
            .get(&sequence)
            .filter(|w| w.tenant == tenant && w.until > now)
            .copied()
    }

    pub(crate) fn mailbox_wait(
        &self,
        tenant: TenantId,
        mailbox: MailboxId,
        now: DateTime<Utc>,
    ) -> Option<MailboxWait> {
        self.mailbox_waits
            .get(&mailbox)
            .filter(|w| w.tenant == tenant && w.until > now)
            .copied()
    }
}
