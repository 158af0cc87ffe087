-- Foundation: users, clients, signing keys and server secrets.
-- Frozen in time: never edit a landed migration; add a new one.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  email_verified boolean NOT NULL DEFAULT false,
  name text,
  password_hash text NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));

CREATE TABLE clients (
  client_id text PRIMARY KEY,
  name text NOT NULL,
  -- SHA-256 of the server-generated secret (base64url); NULL for public clients
  secret_digest text,
  is_public boolean NOT NULL,
  redirect_uris jsonb NOT NULL DEFAULT '[]',
  post_logout_redirect_uris jsonb NOT NULL DEFAULT '[]',
  grant_types jsonb NOT NULL DEFAULT '[]',
  scopes jsonb NOT NULL DEFAULT '[]',
  audiences jsonb NOT NULL DEFAULT '[]',
  first_party boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT clients_secret_matches_type CHECK ((is_public AND secret_digest IS NULL) OR (NOT is_public AND secret_digest IS NOT NULL))
);

CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  alg text NOT NULL,
  state text NOT NULL CHECK (state IN ('next', 'active', 'retired', 'revoked')),
  public_jwk jsonb NOT NULL,
  -- the private JWK sealed with AES-256-GCM under the KEK, kid bound as associated data
  private_sealed text NOT NULL,
  kek_id text NOT NULL,
  created_at timestamptz NOT NULL,
  published_at timestamptz NOT NULL,
  activated_at timestamptz,
  retired_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz
);

-- exactly one active key per algorithm
CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE state = 'active';

CREATE TABLE server_secrets (
  name text PRIMARY KEY,
  sealed text NOT NULL,
  kek_id text NOT NULL,
  created_at timestamptz NOT NULL
);
