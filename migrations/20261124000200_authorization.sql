-- Authorization-code flow: client settings, interactions, login sessions, consents, codes,
-- client-assertion replay protection, and the audit log.

ALTER TABLE clients ADD COLUMN token_endpoint_auth_method text;
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg text NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN jwks jsonb;
ALTER TABLE clients ADD COLUMN require_pkce boolean NOT NULL DEFAULT true;
ALTER TABLE clients ADD COLUMN is_admin boolean NOT NULL DEFAULT false;

CREATE TABLE login_sessions (
  -- SHA-256 of the cookie value; the cookie value itself is never stored
  id_digest text PRIMARY KEY,
  -- the public session id (OIDC `sid` claim), unrelated to the cookie value
  sid text NOT NULL UNIQUE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  auth_time timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  idle_expires_at timestamptz NOT NULL,
  absolute_expires_at timestamptz NOT NULL,
  ended_at timestamptz,
  ip text,
  user_agent text
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);

CREATE TABLE interactions (
  id_digest text PRIMARY KEY,
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  params jsonb NOT NULL,
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  session_sid text,
  -- true once the user authenticated inside this interaction (prompt=login / max_age satisfied)
  login_done boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX interactions_expires ON interactions (expires_at);

CREATE TABLE consents (
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  scopes jsonb NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
  code_digest text PRIMARY KEY,
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  redirect_uri text NOT NULL,
  code_challenge text,
  scopes jsonb NOT NULL,
  resources jsonb NOT NULL DEFAULT '[]',
  nonce text,
  auth_time timestamptz NOT NULL,
  session_sid text,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  consumed_at timestamptz
);
CREATE INDEX authorization_codes_expires ON authorization_codes (expires_at);

CREATE TABLE client_assertion_jtis (
  client_id text NOT NULL,
  jti text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires ON client_assertion_jtis (expires_at);

CREATE TABLE audit_events (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL,
  type text NOT NULL,
  actor text,
  user_id uuid,
  client_id text,
  ip text,
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_type ON audit_events (type, at);

-- a private_key_jwt client has no secret
ALTER TABLE clients DROP CONSTRAINT clients_secret_matches_type;
ALTER TABLE clients ADD CONSTRAINT clients_auth_consistent CHECK (
  (is_public AND secret_digest IS NULL AND jwks IS NULL)
  OR (NOT is_public AND (secret_digest IS NOT NULL OR jwks IS NOT NULL))
);
