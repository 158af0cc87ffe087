-- Refresh-token families, the access-token denylist, and a client option to always get a
-- refresh token.

ALTER TABLE clients ADD COLUMN refresh_without_offline boolean NOT NULL DEFAULT false;

-- One family per authorization-code redemption (a "grant"): every access and refresh token that
-- redemption leads to belongs to it, so revoking the family revokes them all.
CREATE TABLE refresh_families (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
  scopes jsonb NOT NULL,
  resources jsonb NOT NULL DEFAULT '[]',
  auth_time timestamptz NOT NULL,
  session_sid text,
  -- offline_access was granted: the family outlives the login session (OIDC Core §11)
  offline boolean NOT NULL,
  code_digest text,
  created_at timestamptz NOT NULL,
  last_used_at timestamptz NOT NULL,
  idle_expires_at timestamptz NOT NULL,
  absolute_expires_at timestamptz NOT NULL,
  revoked_at timestamptz,
  revoked_reason text,
  created_ip text,
  created_user_agent text,
  -- the unexpired access tokens the family produced: [{"jti":…,"exp":…}], pruned on every use
  access_tokens jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX refresh_families_user_live ON refresh_families (user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_families_client_live ON refresh_families (client_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_families_session_live ON refresh_families (session_sid) WHERE revoked_at IS NULL;
CREATE INDEX refresh_families_code ON refresh_families (code_digest);
CREATE INDEX refresh_families_absolute ON refresh_families (absolute_expires_at);

CREATE TABLE refresh_tokens (
  token_digest text PRIMARY KEY,
  family_id uuid NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  consumed_at timestamptz,
  -- the chain never forks: a consumed token has at most one successor, ever
  successor_digest text UNIQUE,
  CONSTRAINT refresh_tokens_successor_only_when_consumed CHECK (successor_digest IS NULL OR consumed_at IS NOT NULL)
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE denylist (
  jti text PRIMARY KEY,
  expires_at timestamptz NOT NULL,
  seq bigserial NOT NULL
);
CREATE INDEX denylist_expires ON denylist (expires_at);
CREATE INDEX denylist_seq ON denylist (seq);
