//! [`State::check_indexes`]: every index rebuilt from the rows and compared.

use super::*;

/// Planned sends by instant.
type Queue = BTreeSet<(DateTime<Utc>, SendId)>;

impl State {
    pub(crate) fn check_indexes(&self) -> Result<(), String> {
        #[expect(
            clippy::needless_pass_by_value,
            reason = "the callers build each index on the spot; borrowing would only add &"
        )]
        fn same<T: PartialEq + std::fmt::Debug>(
            what: &str,
            kept: T,
            rebuilt: T,
        ) -> Result<(), String> {
            if kept == rebuilt {
                Ok(())
            } else {
                Err(format!("{what}: index {kept:?} but rows say {rebuilt:?}"))
            }
        }
        fn non_empty<K: Clone + Ord, V: Clone + Ord>(
            map: &HashMap<K, BTreeSet<V>>,
        ) -> BTreeMap<K, BTreeSet<V>> {
            map.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        // Sequences, mailboxes, contacts.
        let mut by_tenant: HashMap<TenantId, BTreeSet<SequenceId>> = HashMap::default();
        for s in self.sequences.values() {
            by_tenant.entry(s.tenant).or_default().insert(s.id);
        }
        same(
            "sequences by tenant",
            non_empty(&self.sequences_by_tenant),
            non_empty(&by_tenant),
        )?;
        let mut by_tenant: HashMap<TenantId, BTreeSet<MailboxId>> = HashMap::default();
        for m in self.mailboxes.values() {
            by_tenant.entry(m.tenant).or_default().insert(m.id);
        }
        same(
            "mailboxes by tenant",
            non_empty(&self.mailboxes_by_tenant),
            non_empty(&by_tenant),
        )?;
        let mut by_email: HashMap<(TenantId, String), BTreeSet<ContactId>> = HashMap::default();
        for c in self.contacts.values() {
            by_email
                .entry((c.tenant, normalize_email(&c.email)))
                .or_default()
                .insert(c.id);
        }
        same(
            "contacts by email",
            non_empty(&self.contacts_by_email),
            non_empty(&by_email),
        )?;

        // Enrollments.
        let due: BTreeSet<DueSlot> = self
            .enrollments
            .values()
            .filter_map(|e| DueSlot::of(e))
            .collect();
        same("due enrollments", &self.due.slots(), &due)?;
        let mut open: HashMap<(SequenceId, ContactId), EnrollmentId> = HashMap::default();
        let mut history: HashMap<(SequenceId, ContactId), BTreeSet<EnrollmentId>> =
            HashMap::default();
        let mut by_contact: HashMap<ContactId, BTreeSet<EnrollmentId>> = HashMap::default();
        let mut by_sequence: HashMap<SequenceId, BTreeSet<(DateTime<Utc>, EnrollmentId)>> =
            HashMap::default();
        for e in self.enrollments.values() {
            let pair = (e.sequence, e.contact);
            if !e.is_final() {
                if let Some(other) = open.insert(pair, e.id) {
                    return Err(format!(
                        "two open enrollments {other} and {} of one (sequence, contact)",
                        e.id
                    ));
                }
            }
            history.entry(pair).or_default().insert(e.id);
            by_contact.entry(e.contact).or_default().insert(e.id);
            by_sequence
                .entry(e.sequence)
                .or_default()
                .insert((e.enrolled_at, e.id));
        }
        same(
            "open enrollment per (sequence, contact)",
            self.open_by_pair.iter().collect::<BTreeMap<_, _>>(),
            open.iter().collect::<BTreeMap<_, _>>(),
        )?;
        let kept_history: HashMap<(SequenceId, ContactId), BTreeSet<EnrollmentId>> = self
            .history_by_pair
            .iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect();
        if self
            .history_by_pair
            .values()
            .any(|v| v.len() != v.iter().collect::<HashSet<_>>().len())
        {
            return Err("an enrollment is listed twice in a (sequence, contact) history".into());
        }
        same(
            "enrollment history",
            non_empty(&kept_history),
            non_empty(&history),
        )?;
        same(
            "enrollments by contact",
            non_empty(&self.enrollments_by_contact),
            non_empty(&by_contact),
        )?;
        same(
            "enrollments by sequence",
            non_empty(&self.enrollments_by_sequence),
            non_empty(&by_sequence),
        )?;

        // Sends.
        let mut keys: HashMap<EnrollmentId, BTreeMap<u32, SendId>> = HashMap::default();
        let mut by_seq: HashMap<SequenceId, BTreeSet<SendId>> = HashMap::default();
        let mut planned = BTreeSet::new();
        let mut leases = BTreeSet::new();
        let mut per_box: HashMap<MailboxId, (Queue, BTreeSet<SendId>)> = HashMap::default();
        let mut held: HashMap<(MailboxId, NaiveDate), u32> = HashMap::default();
        for (id, row) in &self.sends {
            let s = &row.send;
            if *id != s.id {
                return Err(format!("send row {id} holds send {}", s.id));
            }
            if keys
                .entry(s.enrollment)
                .or_default()
                .insert(s.step, s.id)
                .is_some()
            {
                return Err(format!("two sends for ({}, {})", s.enrollment, s.step));
            }
            by_seq.entry(s.sequence).or_default().insert(s.id);
            match s.status() {
                SendStatus::Planned => {
                    planned.insert((s.planned_at(), s.id));
                    per_box
                        .entry(s.mailbox())
                        .or_default()
                        .0
                        .insert((s.planned_at(), s.id));
                    *held.entry((s.mailbox(), s.local_date())).or_insert(0) += 1;
                }
                SendStatus::Sending => {
                    let lease = s
                        .lease()
                        .ok_or_else(|| format!("send {} sending without a lease", s.id))?;
                    leases.insert((lease.until, s.id));
                    per_box.entry(s.mailbox()).or_default().1.insert(s.id);
                    *held.entry((s.mailbox(), s.local_date())).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        same(
            "sends by (enrollment, step)",
            self.sends_by_enrollment
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (*k, v.clone()))
                .collect::<BTreeMap<_, _>>(),
            keys.into_iter().collect::<BTreeMap<_, _>>(),
        )?;
        let kept_by_seq: HashMap<SequenceId, BTreeSet<SendId>> = self
            .sends_by_sequence
            .iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect();
        if self.sends_by_sequence.values().map(Vec::len).sum::<usize>() != self.sends.len() {
            return Err("sends by sequence: a send is listed twice or missing".into());
        }
        same(
            "sends by sequence",
            non_empty(&kept_by_seq),
            non_empty(&by_seq),
        )?;
        same("planned sends", &self.planned, &planned)?;
        same("leases", &self.leases, &leases)?;
        let mut ready = BTreeSet::new();
        for (m, o) in &self.outboxes {
            let (p, sending) = per_box.remove(m).unwrap_or_default();
            same("a mailbox's planned sends", &o.planned, &p)?;
            same("a mailbox's sends in flight", &o.sending, &sending)?;
            if sending.len() > 1 {
                return Err(format!("mailbox {m} has {} sends in flight", sending.len()));
            }
            let want = ready_key(sending.is_empty(), &p, o.last_attempt_at, self.gap_of(*m));
            same("a mailbox's ready key", o.ready_at, want)?;
            if let Some(at) = want {
                ready.insert((at, *m));
            }
        }
        if let Some((m, _)) = per_box
            .iter()
            .find(|(_, (p, s))| !p.is_empty() || !s.is_empty())
        {
            return Err(format!("mailbox {m} has sends but no outbox"));
        }
        same("ready mailboxes", &self.ready, &ready)?;
        for (key, n) in &held {
            let counted = self.used.get(key).copied().unwrap_or(0);
            if counted < *n {
                return Err(format!(
                    "mailbox-day {key:?} counts {counted} but holds {n} planned or sending sends"
                ));
            }
        }
        if self.used.values().any(|n| *n == 0) {
            return Err("a mailbox-day count of zero is kept".into());
        }
        for (key, n) in &self.attempts {
            let counted = self.used.get(key).copied().unwrap_or(0);
            if counted < *n {
                return Err(format!(
                    "mailbox-day {key:?} counts {counted} but holds {n} attempts"
                ));
            }
        }
        Ok(())
    }
}
