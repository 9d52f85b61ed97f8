//! Contacts: unique per tenant by normalized address, updated by hosts without lifting what
//! the engine recorded.

use super::*;

impl State {
    // ---- contacts -------------------------------------------------------------------------------

    pub(crate) fn upsert_contacts(
        &mut self,
        tenant: TenantId,
        contacts: &[Contact],
    ) -> Result<Vec<ContactId>, StoreError> {
        // Resolve every row first (nothing is written when one is refused); rows of one
        // call that share an address resolve to one contact.
        let mut batch: HashMap<String, ContactId> = HashMap::default();
        let mut targets = Vec::with_capacity(contacts.len());
        for c in contacts {
            let foreign = c.tenant != tenant
                || self
                    .contacts
                    .get(&c.id)
                    .is_some_and(|stored| stored.tenant != tenant);
            if foreign {
                return Err(not_found(Entity::Contact, c.id));
            }
            let address = normalize_email(&c.email);
            let holder = batch.get(&address).copied().or_else(|| {
                self.contact_by_email(tenant, &address)
                    .map(|found| found.id)
            });
            let target = match holder {
                Some(id) => {
                    if id != c.id && self.contacts.contains_key(&c.id) {
                        // The row's own contact exists under another address, which a
                        // different contact holds: two people cannot share an address.
                        return Err(StoreError::AlreadyExists {
                            entity: Entity::Contact,
                            id: format!("{} (address {address} belongs to {id})", c.id),
                        });
                    }
                    id
                }
                None => c.id,
            };
            batch.insert(address, target);
            targets.push(target);
        }
        for (c, target) in contacts.iter().zip(&targets) {
            let stored = self.contacts.get(target).map(|c| Contact::clone(c));
            let contact = match stored {
                Some(mut stored) => {
                    stored.apply_host_update(c);
                    stored.set_version(stored.version() + 1);
                    stored
                }
                None => c.clone(),
            };
            self.put_contact(contact);
        }
        Ok(targets)
    }

    pub(super) fn put_contact(&mut self, contact: Contact) {
        let key = (contact.tenant, normalize_email(&contact.email));
        if let Some(old) = self.contacts.get(&contact.id) {
            let old_key = (old.tenant, normalize_email(&old.email));
            if old_key != key {
                if let Entry::Occupied(mut set) = self.contacts_by_email.entry(old_key) {
                    set.get_mut().remove(&contact.id);
                    if set.get().is_empty() {
                        set.remove();
                    }
                }
            }
        }
        self.contacts_by_email
            .entry(key)
            .or_default()
            .insert(contact.id);
        self.contacts.insert(contact.id, Arc::new(contact));
    }

    pub(crate) fn get_contact(&self, tenant: TenantId, id: ContactId) -> Option<Contact> {
        self.contacts
            .get(&id)
            .filter(|c| c.tenant == tenant)
            .map(|c| Contact::clone(c))
    }

    pub(crate) fn find_contacts_by_email(
        &self,
        tenant: TenantId,
        emails: &[String],
    ) -> Vec<Contact> {
        let mut seen = HashSet::default();
        emails
            .iter()
            .filter_map(|e| self.contact_by_email(tenant, &normalize_email(e)))
            .filter(|c| seen.insert(c.id))
            .map(|c| Contact::clone(c))
            .collect()
    }

    pub(crate) fn find_contact_by_email(&self, tenant: TenantId, email: &str) -> Option<Contact> {
        self.contact_by_email(tenant, &normalize_email(email))
            .map(|c| Contact::clone(c))
    }

    /// The stored contact of `tenant` with a normalized `address`, without a copy.
    fn contact_by_email(&self, tenant: TenantId, address: &str) -> Option<&Arc<Contact>> {
        self.contacts_by_email
            .get(&(tenant, address.to_owned()))
            .and_then(|ids| ids.iter().find_map(|id| self.contacts.get(id)))
            .filter(|c| c.tenant == tenant)
    }
}
