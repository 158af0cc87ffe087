-- Remembered consent covers the audiences (RFC 8707 resources) a user approved, not only the scopes
-- (issue 17): a request that can reach an audience not yet approved asks again. Consents remembered
-- before this migration cover no audience, so they are asked again once for clients with audiences.
ALTER TABLE consents ADD COLUMN audiences jsonb NOT NULL DEFAULT '[]'::jsonb;
