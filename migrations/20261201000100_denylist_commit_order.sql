-- The denylist view reads new rows in commit order, not in sequence order. A sequence value is
-- taken when a row is inserted, but a long revoking transaction commits late: a view that resumed
-- after the highest sequence it had seen skipped such rows for good. Each row now records the id
-- of the transaction that wrote it; a reader remembers the oldest transaction still running when
-- it last read (pg_snapshot_xmin) and next time re-reads every row written by that transaction or
-- a later one, so no committed row is ever passed over, whatever the interleaving.
ALTER TABLE denylist ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX denylist_txid ON denylist (txid, jti);
DROP INDEX denylist_seq;
