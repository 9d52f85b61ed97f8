-- The documents of enrollments, contacts and sends are stored as `json`, the text the store
-- wrote, rather than `jsonb`. The store reads and writes them whole, tens of thousands per
-- tick: `jsonb` builds a tree from each document on the way in and prints it back on the
-- way out, which cost more than the rest of reading a due enrollment. `json` checks the
-- text and keeps it. The statistics read a few fields in place (`json_to_record`).
ALTER TABLE enrollments ALTER COLUMN doc TYPE json USING doc::json;
ALTER TABLE contacts ALTER COLUMN doc TYPE json USING doc::json;
ALTER TABLE sends ALTER COLUMN doc TYPE json USING doc::json;
