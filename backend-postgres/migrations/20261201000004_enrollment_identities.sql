-- The identities of the enrollments, apart from their documents.
--
-- A plan rewrites every enrollment it settles (its due instant, version and document), and a
-- completion every enrollment it advances. Such an update changes the due instant, which the
-- due indexes key on, so PostgreSQL cannot make it heap-only: it writes a new entry in every
-- index of the table. Four of those indexes key on what never changes after enrolling (the
-- enrollment's id, sequence, contact, enrolled instant) or changes once (whether it is
-- open), and were most of that update's time.
--
-- They move to `enrollment_identities`, one narrow row per enrollment, written when it is
-- enrolled and again only when it stops being open. `enrollments` keeps its primary key and
-- the due indexes. The store writes both in one statement (`rows::insert_enrollments`,
-- `rows::update_enrollments`), and reads an enrollment by sequence, contact or id alone
-- through its identity.
CREATE TABLE enrollment_identities (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL,
    sequence_id uuid        NOT NULL,
    contact_id  uuid        NOT NULL,
    enrolled_at timestamptz NOT NULL,
    -- Active or paused: at most one per (sequence, contact).
    open        boolean     NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

INSERT INTO enrollment_identities (tenant_id, id, sequence_id, contact_id, enrolled_at, open)
SELECT tenant_id, id, sequence_id, contact_id, enrolled_at, status IN ('active', 'paused')
FROM enrollments;

DROP INDEX enrollments_one_open;
DROP INDEX enrollments_by_sequence;
DROP INDEX enrollments_by_contact;
DROP INDEX enrollments_by_id;
-- One open (active or paused) enrollment per (sequence, contact).
CREATE UNIQUE INDEX enrollments_one_open ON enrollment_identities (tenant_id, sequence_id, contact_id)
    WHERE open;
CREATE INDEX enrollments_by_sequence ON enrollment_identities (tenant_id, sequence_id, enrolled_at, id);
CREATE INDEX enrollments_by_contact ON enrollment_identities (tenant_id, contact_id, enrolled_at, id);
CREATE INDEX enrollments_by_id ON enrollment_identities (id);
