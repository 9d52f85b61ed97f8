-- The due read hands out what planning decides on, as columns, rather than the enrollment's
-- and its contact's documents: a read of 10,000 due enrollments sent 9 MB of JSON that the
-- engine decoded (20,000 documents) before it could plan, most of the read's time. The
-- planner reads the documents only of the rows it settles (`Outbox::due_documents`), and a
-- plan's enrollments are read again by key, without a lock, when it is applied.
--
-- The enrollment's columns are written with its document (`rows::insert_enrollments`,
-- `rows::update_enrollments`). Its contact's are copied from `contacts` (which keeps a
-- contact's zone and address domain beside its document now) when the enrollment is
-- stored, and rewritten with every write of the contact that changes them, in the same
-- statement order and under the same tenant contact lock as the copies of contact
-- documents they replace (see the migration `contact_copies`).
ALTER TABLE contacts ADD COLUMN timezone text, ADD COLUMN domain text;
UPDATE contacts SET
    timezone = doc::jsonb->>'timezone',
    domain = coalesce(translate(substring(doc::jsonb->>'email' from '@([^@]*)$'),
                                'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '');
ALTER TABLE contacts ALTER COLUMN domain SET NOT NULL;

ALTER TABLE enrollments
    ADD COLUMN step integer,
    ADD COLUMN earliest timestamptz,
    ADD COLUMN uncertain boolean,
    ADD COLUMN contact_status text,
    ADD COLUMN contact_zone text,
    ADD COLUMN recipient_domain text;
-- From the documents the row holds (its contact's copy is exact, see `contact_copies`).
UPDATE enrollments SET
    step = (doc::jsonb->>'current_step')::integer,
    earliest = (doc::jsonb->>'due_at')::timestamptz,
    uncertain = coalesce(jsonb_typeof(doc::jsonb->'uncertain_send') = 'object', false),
    contact_status = contact_doc::jsonb->>'status',
    contact_zone = contact_doc::jsonb->>'timezone',
    recipient_domain = coalesce(translate(substring(contact_doc::jsonb->>'email' from '@([^@]*)$'),
                                          'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '');
ALTER TABLE enrollments
    ALTER COLUMN step SET NOT NULL,
    ALTER COLUMN uncertain SET NOT NULL,
    ALTER COLUMN contact_status SET NOT NULL,
    ALTER COLUMN recipient_domain SET NOT NULL,
    DROP COLUMN contact_doc;
