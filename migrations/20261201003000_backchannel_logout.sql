-- OpenID Connect Back-Channel Logout 1.0: client registration, and a durable outbox of logout
-- notices written in the transaction of the revocation that causes them (src/backchannel/).

ALTER TABLE clients ADD COLUMN backchannel_logout_uri text;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT false;

-- the families of a login session, revoked or not: which clients got tokens (and, with openid,
-- ID tokens) in it, for the notices when the session ends
CREATE INDEX refresh_families_session ON refresh_families (session_sid);

CREATE TABLE logout_notices (
  id bigserial PRIMARY KEY,
  -- the logout token's jti: the same on every attempt (each attempt signs a fresh token)
  jti text NOT NULL UNIQUE,
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  -- no foreign key: a deleted user's notices must outlive the user row
  sub text,
  sid text,
  event text NOT NULL,
  created_at timestamptz NOT NULL,
  -- due time; while a replica delivers, its lease (a replica that dies loses it at this time)
  next_attempt_at timestamptz NOT NULL,
  claim uuid,
  attempts integer NOT NULL DEFAULT 0,
  last_attempt_at timestamptz,
  last_error text,
  delivered_at timestamptz,
  failed_at timestamptz,
  CONSTRAINT logout_notices_subject CHECK (sub IS NOT NULL OR sid IS NOT NULL)
);
CREATE INDEX logout_notices_due ON logout_notices (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX logout_notices_delivered ON logout_notices (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX logout_notices_failed ON logout_notices (failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX logout_notices_client ON logout_notices (client_id);
