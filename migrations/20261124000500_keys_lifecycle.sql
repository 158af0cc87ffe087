-- Signing-key lifecycle (issue 5): next → active → retired, or revoked.
-- Frozen in time: never edit a landed migration; add a new one.

-- true when a key began signing before it had been published for JWKS_MAX_AGE + the margin:
-- the first key of an algorithm (nothing was cached before it), `keys rotate --now`, or the
-- replacement of a revoked active key. Every other active key must have aged in the JWKS first.
ALTER TABLE signing_keys ADD COLUMN promoted_early boolean NOT NULL DEFAULT false;

-- keys activated before this migration were created active at first start
UPDATE signing_keys SET promoted_early = true WHERE state = 'active';

CREATE INDEX signing_keys_alg_state ON signing_keys (alg, state);
