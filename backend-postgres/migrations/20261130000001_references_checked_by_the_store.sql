-- The references of the two hottest tables are kept by the store's own statements, not by
-- foreign keys. A foreign key checks each inserted row on its own (a query per row, at the
-- end of the statement) and share-locks the row it points at: enrolling 50,000 contacts
-- locked 50,000 contact rows, and planning 7,500 sends locked 7,500 enrollments just
-- before updating them anyway. Nothing the store does can break these references:
--
-- * contacts, mailboxes and enrollments are never deleted (the store has no such call;
--   `prune` deletes final sends and old events only);
-- * a sequence is deleted only as a draft without enrollments, and `enroll` share-locks
--   the sequences it enrolls into (`FOR KEY SHARE`), which `delete_draft_sequence`
--   waits for (`FOR UPDATE`) before it looks for enrollments in a new statement;
-- * `enroll` and `apply_plan` read the rows they point at in their own unit of work and
--   refuse a row whose sequence, contact, enrollment or mailbox is not there.
--
-- The keys still lead with tenant_id (the Scaling section of the README).
ALTER TABLE enrollments
    DROP CONSTRAINT IF EXISTS enrollments_tenant_id_sequence_id_fkey,
    DROP CONSTRAINT IF EXISTS enrollments_tenant_id_contact_id_fkey;
ALTER TABLE sends
    DROP CONSTRAINT IF EXISTS sends_tenant_id_enrollment_id_fkey,
    DROP CONSTRAINT IF EXISTS sends_tenant_id_mailbox_id_fkey;
