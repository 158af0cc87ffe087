-- DPoP (RFC 9449): clients that must use it, refresh-token families bound to a proof key, and the
-- replay store of proof jtis shared by every replica.

-- RFC 9449 §5.2 dpop_bound_access_tokens: token requests of this client without DPoP are refused
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens boolean NOT NULL DEFAULT false;

-- RFC 9449 §5: the JWK SHA-256 thumbprint a public client's refresh tokens are bound to (null: unbound)
ALTER TABLE refresh_families ADD COLUMN dpop_jkt text;

-- each proof is accepted once: its jti (digest) until the proof can no longer be fresh
CREATE TABLE dpop_proofs (
  jti_digest text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);
CREATE INDEX dpop_proofs_expires ON dpop_proofs (expires_at);
