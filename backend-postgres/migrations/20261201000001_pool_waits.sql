-- Pool waits (see "Pool waits" in `sequence_core::store`): per sequence whose pool a plan
-- found full, the instant its first mailbox opens again. Until then the sequence's due
-- enrollments that go to the pool (active, no sticky mailbox) are left out of the due read,
-- instead of being written one deferral each.
CREATE TABLE pool_waits (
    tenant_id   uuid        NOT NULL,
    sequence_id uuid        NOT NULL,
    until       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sequence_id)
);

-- The due index is split in two, each row in at most one: the enrollments that go to a
-- pool, per sequence (a wait leaves a whole sequence of them out at one probe), and the
-- rest, by instant.
DROP INDEX enrollments_due;
CREATE INDEX enrollments_due_to_pool ON enrollments (tenant_id, sequence_id, due_at, id)
    WHERE due_at IS NOT NULL AND status = 'active' AND mailbox_id IS NULL;
CREATE INDEX enrollments_due_rest ON enrollments (due_at, id)
    WHERE due_at IS NOT NULL AND (status <> 'active' OR mailbox_id IS NOT NULL);
