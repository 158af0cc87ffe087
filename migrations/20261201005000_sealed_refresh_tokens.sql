-- Refresh tokens are sealed (src/tokens/refresh-tokens.ts) instead of stored: a token names its
-- family and a generation, and the family carries the current one. A rotation is one UPDATE of the
-- family row (generation + 1); a token of an older generation is a reuse. No column written by a
-- rotation is indexed (generation, rotated_at, last_used_at, idle_expires_at, access_expires_at),
-- so the update stays HOT, and the table keeps room on each page for the new row versions.
--
-- rotated_at: when the current generation's predecessor was consumed (the reuse grace window).
--
-- refresh_tokens keeps the digests of the tokens issued before this migration: such a token still
-- rotates, once, to a sealed successor (its family's generation goes from 0 to 1), and presented
-- again it is a reuse, as before. No row is written there any more; the table can be dropped once
-- REFRESH_ABSOLUTE_DAYS have passed since this migration ran (every family it serves has expired).
ALTER TABLE refresh_families ADD COLUMN generation integer NOT NULL DEFAULT 0;
ALTER TABLE refresh_families ADD COLUMN rotated_at timestamptz;
ALTER TABLE refresh_families SET (fillfactor = 70);
