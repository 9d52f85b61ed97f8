-- The schema of backend-postgres.
--
-- Every entity is a `jsonb` document (the domain type, serialized with serde) beside the
-- columns that queries filter, order or lock on; the document is what is read back, the
-- columns are kept in step with it by the store. Every table carries `tenant_id`, and
-- `tenant_id` leads every primary key, unique index and foreign key, so the schema can be
-- distributed by tenant (Citus) as it is. The one exception is `planning_lease`, a single
-- store-wide row (a reference table in Citus terms). Every instant is a `timestamptz`
-- written by the caller: no query reads the server's clock.

CREATE TABLE sequences (
    tenant_id    uuid   NOT NULL,
    id           uuid   NOT NULL,
    status       text   NOT NULL,
    -- The pool, for the wake-up of waiting enrollments when a unit is released.
    mailbox_pool uuid[] NOT NULL DEFAULT '{}',
    version      bigint NOT NULL,
    doc          jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Ids are unique across tenants (the store refuses an id another tenant holds), and a few
-- calls name a record by id alone (planning and dispatch work across tenants).
CREATE INDEX sequences_by_id ON sequences (id);

CREATE TABLE mailboxes (
    tenant_id       uuid    NOT NULL,
    id              uuid    NOT NULL,
    status          text    NOT NULL,
    min_gap_seconds integer NOT NULL,
    version         bigint  NOT NULL,
    doc             jsonb   NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mailboxes_by_id ON mailboxes (id);

-- Per mailbox, what claims are driven from: the latest attempt (for the gap), whether a
-- send is in flight, the earliest planned send, and the instant that send becomes
-- claimable (`ready_at`: never while one is in flight, never before the latest attempt
-- plus the gap). `in_flight`, `next_planned_at` and `ready_at` are a cache of `sends`,
-- recomputed by every unit of work that changes the mailbox's planned or sending sends,
-- under this row's lock.
CREATE TABLE mailbox_state (
    tenant_id       uuid        NOT NULL,
    mailbox_id      uuid        NOT NULL,
    last_attempt_at timestamptz,
    in_flight       boolean     NOT NULL DEFAULT false,
    next_planned_at timestamptz,
    ready_at        timestamptz,
    PRIMARY KEY (tenant_id, mailbox_id),
    FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);
-- The claim query's index: only mailboxes with something claimable are in it.
CREATE INDEX mailbox_state_ready ON mailbox_state (ready_at, mailbox_id)
    WHERE ready_at IS NOT NULL;

-- Capacity per mailbox-local day: attempts made, and attempts plus reservations (`used`).
CREATE TABLE mailbox_days (
    tenant_id  uuid    NOT NULL,
    mailbox_id uuid    NOT NULL,
    local_date date    NOT NULL,
    used       integer NOT NULL DEFAULT 0,
    attempts   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, mailbox_id, local_date),
    FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE contacts (
    tenant_id uuid   NOT NULL,
    id        uuid   NOT NULL,
    -- The normalized address (trimmed, lower-cased).
    email     text   NOT NULL,
    status    text   NOT NULL,
    version   bigint NOT NULL,
    doc       jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX contacts_email ON contacts (tenant_id, email);
CREATE INDEX contacts_by_id ON contacts (id);

CREATE TABLE enrollments (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    sequence_id     uuid        NOT NULL,
    contact_id      uuid        NOT NULL,
    status          text        NOT NULL,
    -- When the engine looks at it next: `next_due_at` while active, `paused_until` while
    -- paused, NULL when final, planned, parked or paused without an end.
    due_at          timestamptz,
    deferral_reason text,
    -- The sticky mailbox.
    mailbox_id      uuid,
    enrolled_at     timestamptz NOT NULL,
    version         bigint      NOT NULL,
    doc             jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, sequence_id) REFERENCES sequences (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
-- One open (active or paused) enrollment per (sequence, contact).
CREATE UNIQUE INDEX enrollments_one_open ON enrollments (tenant_id, sequence_id, contact_id)
    WHERE status IN ('active', 'paused');
CREATE INDEX enrollments_due ON enrollments (due_at, id) WHERE due_at IS NOT NULL;
-- Enrollments a released unit may wake.
CREATE INDEX enrollments_waiting ON enrollments (tenant_id, due_at, id)
    WHERE status = 'active'
      AND deferral_reason IN ('no_capacity', 'outside_mailbox_window', 'outside_recipient_window');
CREATE INDEX enrollments_by_sequence ON enrollments (tenant_id, sequence_id, enrolled_at, id);
CREATE INDEX enrollments_by_contact ON enrollments (tenant_id, contact_id, enrolled_at, id);
CREATE INDEX enrollments_by_id ON enrollments (id);

-- The outbox: one row per (enrollment, step), its idempotency key. A hot queue table: rows
-- are updated several times each (planned, sending, sent), so pages keep room for new
-- versions and autovacuum visits often.
CREATE TABLE sends (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL,
    enrollment_id        uuid        NOT NULL,
    sequence_id          uuid        NOT NULL,
    contact_id           uuid        NOT NULL,
    step                 integer     NOT NULL,
    mailbox_id           uuid        NOT NULL,
    planned_at           timestamptz NOT NULL,
    local_date           date        NOT NULL,
    status               text        NOT NULL,
    attempts             integer     NOT NULL,
    lease_token          uuid,
    lease_attempt        integer,
    lease_until          timestamptz,
    -- For the per-domain daily counts.
    recipient_domain     text        NOT NULL,
    -- What this send added to the daily counts that calling it off takes back (UTC date,
    -- counted as a new start); NULL once its attempt is made for good.
    pending_date         date,
    pending_new_start    boolean,
    -- While sending: the mailbox's latest attempt before this claim, restored when the
    -- send is given back without an attempt.
    prev_last_attempt_at timestamptz,
    doc                  jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, enrollment_id, step),
    FOREIGN KEY (tenant_id, enrollment_id) REFERENCES enrollments (tenant_id, id),
    FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id)
) WITH (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 1
);
-- Planned sends per mailbox by instant: the earliest one (claims, wake-ups) and snapshots.
CREATE INDEX sends_planned ON sends (tenant_id, mailbox_id, planned_at, id)
    WHERE status = 'planned';
-- Leases in flight by expiry (expire_leases, next_wakeup), and per mailbox.
CREATE INDEX sends_sending ON sends (lease_until, id) WHERE status = 'sending';
CREATE INDEX sends_sending_by_mailbox ON sends (tenant_id, mailbox_id) WHERE status = 'sending';
CREATE INDEX sends_by_sequence ON sends (tenant_id, sequence_id);
CREATE INDEX sends_by_id ON sends (id);

-- Daily counts per UTC date, for per-sequence new-start caps and per-domain caps.
CREATE TABLE daily_new_starts (
    tenant_id   uuid    NOT NULL,
    day         date    NOT NULL,
    sequence_id uuid    NOT NULL,
    count       integer NOT NULL,
    PRIMARY KEY (tenant_id, day, sequence_id)
);
CREATE INDEX daily_new_starts_by_sequence ON daily_new_starts (day, sequence_id);

CREATE TABLE daily_domain_sends (
    tenant_id uuid    NOT NULL,
    day       date    NOT NULL,
    domain    text    NOT NULL,
    count     integer NOT NULL,
    PRIMARY KEY (tenant_id, day, domain)
);

CREATE TABLE events (
    tenant_id uuid        NOT NULL,
    id        bigint      GENERATED ALWAYS AS IDENTITY,
    at        timestamptz NOT NULL,
    doc       jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX events_at ON events (at);

-- The planning lease: one store-wide row.
CREATE TABLE planning_lease (
    name  text PRIMARY KEY,
    token uuid,
    until timestamptz
);
INSERT INTO planning_lease (name) VALUES ('planning');
