-- Revoking a family denylists the family itself (one row, key 'family:<id>') instead of every
-- access token it produced: access tokens carry the family in their `fid` claim, and our
-- endpoints refuse a token whose jti or family is on the denylist. The family keeps only the
-- latest expiry of the access tokens it issued (the denylist row lives until then), so a
-- rotation no longer rewrites a list that grew with every refresh.
ALTER TABLE refresh_families ADD COLUMN access_expires_at timestamptz;
UPDATE refresh_families SET access_expires_at = (SELECT to_timestamp(max((e->>'exp')::bigint)) FROM jsonb_array_elements(access_tokens) e);
-- families revoked before this migration already had their tokens' jtis denylisted
ALTER TABLE refresh_families DROP COLUMN access_tokens;

-- The chain never forks without this index: a token is consumed under its row lock only while
-- unconsumed, and its successor row is inserted in the same statement under the successor's
-- primary key. Dropping it makes the consuming UPDATE a HOT update (no indexed column changes).
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_successor_digest_key;

-- Room on each page for the row's own update (consumed; last use of a family), so that those
-- updates stay HOT (heap-only: no index entries) when the row was written long before.
ALTER TABLE refresh_tokens SET (fillfactor = 70);
ALTER TABLE refresh_families SET (fillfactor = 80);
