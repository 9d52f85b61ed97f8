-- A mailbox wait recorded when the planning horizon cut a mailbox's plan holds back only the
-- enrollments sticky to it that were due when the plan was made (`MailboxWait::holds_due_by`):
-- one that comes due later is read as usual, so that it can take the slot of a new start
-- planned before the wait ends. NULL: the wait holds back all of them.
ALTER TABLE mailbox_waits ADD COLUMN holds_due_by timestamptz;
