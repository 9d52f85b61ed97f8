-- The due read from the index alone: the two indexes it reads active enrollments from carry
-- every column it hands out, so that a due enrollment costs no visit to its heap page (a
-- page each: 10,000 due enrollments scattered over a large table were 10,000 pages, about
-- two thirds of the read). An index-only scan skips the heap only on pages the visibility
-- map marks all-visible, so autovacuum visits `enrollments` as often as the outbox (a due
-- enrollment was mostly written days before, on a page vacuumed since).
DROP INDEX enrollments_due_to_pool;
CREATE INDEX enrollments_due_to_pool ON enrollments (tenant_id, sequence_id, due_at, id)
    INCLUDE (contact_id, status, step, earliest, mailbox_id, version, uncertain,
             contact_status, contact_zone, recipient_domain)
    WHERE due_at IS NOT NULL AND status = 'active' AND mailbox_id IS NULL;

DROP INDEX enrollments_due_on_mailbox;
CREATE INDEX enrollments_due_on_mailbox ON enrollments (tenant_id, mailbox_id, due_at, id)
    INCLUDE (sequence_id, contact_id, status, step, earliest, version, uncertain,
             contact_status, contact_zone, recipient_domain)
    WHERE due_at IS NOT NULL AND status = 'active' AND mailbox_id IS NOT NULL;

ALTER TABLE enrollments SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);
