-- Mailbox waits (see "Mailbox waits" in `sequence_core::store`): per mailbox that a plan found
-- full for its current local day, the instant it opens again. Until then the active
-- enrollments of its tenant sticky to it are left out of the due read, instead of being
-- written one deferral each.
CREATE TABLE mailbox_waits (
    tenant_id  uuid        NOT NULL,
    mailbox_id uuid        NOT NULL,
    until      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, mailbox_id)
);

-- The due enrollments sticky to a mailbox: for `next_wakeup` (a held one counts at the later
-- of its due instant and the wait's end), `due_mailboxes`, and the due read of a mailbox
-- read up to a bound.
CREATE INDEX enrollments_due_on_mailbox ON enrollments (tenant_id, mailbox_id, due_at, id)
    WHERE due_at IS NOT NULL AND status = 'active' AND mailbox_id IS NOT NULL;

-- The rest of the due index: only paused enrollments (whose pause ends). Active ones are
-- read per pool or per sticky mailbox, so that a wait passes over its whole backlog at one
-- probe instead of walking it. (The store keeps every sticky mailbox a mailbox of the
-- enrollment's tenant: `enroll` and `apply_changes` refuse another.)
DROP INDEX enrollments_due_rest;
CREATE INDEX enrollments_due_rest ON enrollments (due_at, id)
    WHERE due_at IS NOT NULL AND status <> 'active';
