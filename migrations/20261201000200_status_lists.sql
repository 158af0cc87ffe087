-- Token Status List (draft-ietf-oauth-status-list). Every access token carries a status index:
-- its family's for user tokens, its client's current client_credentials index otherwise. Indexes
-- come from one sequence and are never reused (nextval is not rolled back). A revocation that
-- must reach offline resource servers writes the index into the denylist row it adds, in the same
-- transaction; the published lists are the denylist's indexes, and leave with its rows.
CREATE SEQUENCE status_index_seq;
ALTER TABLE refresh_families ADD COLUMN status_idx bigint NOT NULL DEFAULT nextval('status_index_seq');
-- the index column never changes after insert, so rotations stay HOT updates
CREATE INDEX refresh_families_status_idx ON refresh_families (status_idx);
ALTER TABLE clients ADD COLUMN cc_status_idx bigint NOT NULL DEFAULT nextval('status_index_seq');
ALTER TABLE denylist ADD COLUMN status_idx bigint;
CREATE INDEX denylist_status_idx ON denylist (status_idx) WHERE status_idx IS NOT NULL;
