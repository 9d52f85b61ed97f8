-- Each enrollment keeps a copy of its contact's document, so that the due read takes an
-- enrollment and its contact from one row: a row of a million-row table read at random
-- costs a page each, and the contact was a second page (and an index probe) per due
-- enrollment, more than half of the read's time.
--
-- The copy is kept exact by the store, never by a trigger: every write of a contact
-- (`upsert_contacts`, a contact in `apply_changes`) rewrites the copies of its enrollments in
-- the same transaction, holding its tenant's contact lock (an advisory lock taken before any
-- row lock); `enroll` holds the same lock shared while it reads the contacts and copies them,
-- so a contact write and an enrollment of its tenant are ordered, and whichever commits
-- second sees the other's rows.
ALTER TABLE enrollments ADD COLUMN contact_doc json;
UPDATE enrollments e SET contact_doc = c.doc
    FROM contacts c WHERE c.tenant_id = e.tenant_id AND c.id = e.contact_id;
ALTER TABLE enrollments ALTER COLUMN contact_doc SET NOT NULL;
