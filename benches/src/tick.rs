//! The rows of the `tick/50k_due` benches (memory and PostgreSQL): the planning fixture's
//! 50,000 due enrollments (30% follow-ups) over 200 mailboxes, as the stores hold them.

use chrono::{DateTime, Duration, Utc};
use sequence_core::contact::Contact;
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{ContactId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::sequence::{Sequence, Step};
use sequence_core::store::Catalog;
use sequence_core::time::{Delay, DelayUnit};

use crate::{tuesday_at, PlanningFixture, ZONES};

/// The rows of `tick/50k_due`, built once and copied into a fresh store per iteration.
#[derive(Debug)]
pub struct TickFixture {
    /// The instant of the tick.
    pub now: DateTime<Utc>,
    /// The one tenant.
    pub tenant: TenantId,
    /// 200 mailboxes in the five American zones.
    pub mailboxes: Vec<Mailbox>,
    /// The sequences, four steps each, active.
    pub sequences: Vec<Sequence>,
    /// One contact per enrollment.
    pub contacts: Vec<Contact>,
    /// 50,000 enrollments, due.
    pub enrollments: Vec<Enrollment>,
}

impl TickFixture {
    /// The planning fixture's 50,000 due (30% follow-ups) over 200 mailboxes, with the
    /// mailboxes in the five American zones at 11:00Z, before their 09:00 opening: the
    /// tick plans sends for later today and claims none.
    #[must_use]
    pub fn new() -> Self {
        let now = tuesday_at(11);
        let f = PlanningFixture::in_zones(50_000, 200, 42, &ZONES[..5], now);
        let tenant = TenantId::from_u128(1);
        let mailboxes = f.mailboxes.iter().map(|s| s.mailbox.clone()).collect();
        let sequences = f
            .sequences
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let mut seq = Sequence::new(tenant, format!("Outreach {k}"), now)
                    .expect("fixture: a valid record")
                    .with_id(p.id);
                for step in 0..4 {
                    let delay = Delay::new(if step == 0 { 0 } else { 2 }, DelayUnit::Days);
                    seq.add_step(Step::new(delay, "Hi {{ first_name }}", "A short note."))
                        .expect("fixture: a valid record");
                }
                seq.set_mailbox_pool(p.pool.clone())
                    .expect("fixture: a valid record");
                seq.recipient_windows.clone_from(&p.recipient_windows);
                seq.activate().expect("fixture: a valid record");
                seq
            })
            .collect();
        let enrolled_at = now - Duration::days(10);
        let (contacts, enrollments) = f
            .due
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut contact = Contact::new(tenant, format!("person{i}@{}", d.recipient_domain))
                    .expect("fixture: a valid record")
                    .with_id(ContactId::from_u128(i as u128 + 1))
                    .with_name(format!("P{i}"), "Doe");
                if let Some(zone) = d.contact_zone {
                    contact = contact.with_timezone(zone);
                }
                let e = Enrollment::new(tenant, d.sequence, contact.id, enrolled_at, d.earliest)
                    .with_id(d.enrollment)
                    .with_progress(d.step, d.sticky_mailbox);
                (contact, e)
            })
            .unzip();
        Self {
            now,
            tenant,
            mailboxes,
            sequences,
            contacts,
            enrollments,
        }
    }

    /// Store the catalog (mailboxes, sequences, contacts) in `store`.
    ///
    /// # Panics
    /// When the store refuses a record.
    pub async fn store_catalog<S: Catalog + ?Sized>(&self, store: &S) {
        for m in &self.mailboxes {
            store
                .save_mailbox(m, None)
                .await
                .expect("fixture: a mailbox is stored");
        }
        for s in &self.sequences {
            store
                .save_sequence(s, None)
                .await
                .expect("fixture: a sequence is stored");
        }
        store
            .upsert_contacts(self.tenant, &self.contacts)
            .await
            .expect("fixture: the contacts are stored");
    }
}

impl Default for TickFixture {
    fn default() -> Self {
        Self::new()
    }
}
