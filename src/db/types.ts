// The typed schema Kysely checks every query against. Mirrors migrations/.
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date, Date>;
type Json<T> = ColumnType<T, string, string>;

export interface UsersTable {
  id: Generated<string>;
  email: string;
  email_verified: Generated<boolean>;
  name: string | null;
  password_hash: string;
  disabled: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ClientsTable {
  client_id: string;
  name: string;
  secret_digest: string | null;
  is_public: boolean;
  redirect_uris: Json<string[]>;
  post_logout_redirect_uris: Json<string[]>;
  grant_types: Json<string[]>;
  scopes: Json<string[]>;
  audiences: Json<string[]>;
  first_party: Generated<boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
  token_endpoint_auth_method: ColumnType<string | null, string | null | undefined, string | null>;
  id_token_signed_response_alg: Generated<string>;
  jwks: ColumnType<{ keys: Record<string, unknown>[] } | null, string | null | undefined, string | null>;
  require_pkce: Generated<boolean>;
  is_admin: Generated<boolean>;
  refresh_without_offline: Generated<boolean>;
  /** The status-list index (bigint, as text) of the client's client_credentials tokens. */
  cc_status_idx: Generated<string>;
  backchannel_logout_uri: ColumnType<string | null, string | null | undefined, string | null>;
  backchannel_logout_session_required: Generated<boolean>;
  require_par: Generated<boolean>;
  resource_servers: ColumnType<string[], string | undefined, string>;
  dpop_bound_access_tokens: Generated<boolean>;
}

export type KeyState = 'next' | 'active' | 'retired' | 'revoked';

export interface SigningKeysTable {
  kid: string;
  alg: string;
  state: KeyState;
  public_jwk: Json<Record<string, unknown>>;
  private_sealed: string;
  kek_id: string;
  created_at: Timestamp;
  published_at: Timestamp;
  activated_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  retired_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  revoked_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  promoted_early: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface ServerSecretsTable {
  name: string;
  sealed: string;
  kek_id: string;
  created_at: Timestamp;
}

type NullableTs = ColumnType<Date | null, Date | null | undefined, Date | null>;

export interface LoginSessionsTable {
  id_digest: string;
  sid: string;
  user_id: string;
  auth_time: Timestamp;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  idle_expires_at: Timestamp;
  absolute_expires_at: Timestamp;
  ended_at: NullableTs;
  ip: string | null;
  user_agent: string | null;
}

export interface InteractionsTable {
  id_digest: string;
  client_id: string;
  params: Json<Record<string, unknown>>;
  user_id: string | null;
  session_sid: string | null;
  login_done: Generated<boolean>;
  created_at: Timestamp;
  expires_at: Timestamp;
}

export interface ConsentsTable {
  user_id: string;
  client_id: string;
  scopes: Json<string[]>;
  audiences: ColumnType<string[], string | undefined, string>;
  updated_at: Timestamp;
}


export interface ClientAssertionJtisTable {
  client_id: string;
  jti: string;
  expires_at: Timestamp;
}

export interface DpopProofsTable {
  jti_digest: string;
  expires_at: Timestamp;
}

export interface AuditEventsTable {
  id: Generated<string>;
  at: Timestamp;
  type: string;
  actor: string | null;
  user_id: string | null;
  client_id: string | null;
  ip: string | null;
  details: Json<Record<string, unknown>>;
}

export interface RefreshFamiliesTable {
  id: string;
  user_id: string;
  client_id: string;
  scopes: Json<string[]>;
  resources: Json<string[]>;
  auth_time: Timestamp;
  session_sid: string | null;
  offline: boolean;
  code_digest: string | null;
  created_at: Timestamp;
  last_used_at: Timestamp;
  idle_expires_at: Timestamp;
  absolute_expires_at: Timestamp;
  revoked_at: NullableTs;
  revoked_reason: string | null;
  created_ip: string | null;
  created_user_agent: string | null;
  /** The latest expiry of the access tokens the family issued. */
  access_expires_at: NullableTs;
  /** The family's status-list index (bigint, as text), carried by each of its access tokens. */
  status_idx: Generated<string>;
  /** RFC 9449 §5: the proof key (JWK thumbprint) a public client's family is bound to. */
  dpop_jkt: Generated<string | null>;
}

export interface RefreshTokensTable {
  token_digest: string;
  family_id: string;
  created_at: Timestamp;
  consumed_at: NullableTs;
  successor_digest: string | null;
}

export interface DenylistTable {
  jti: string;
  expires_at: Timestamp;
  seq: Generated<string>;
  /** The writing transaction's id (xid8, as text): the view reads in commit order by it. */
  txid: Generated<string>;
  /** The status-list index this revocation sets (bigint, as text), when it has one. */
  status_idx: ColumnType<string | null, string | number | null | undefined, never>;
}

export interface LogoutNoticesTable {
  id: Generated<string>;
  jti: string;
  client_id: string;
  sub: string | null;
  sid: string | null;
  event: string;
  created_at: Timestamp;
  next_attempt_at: Timestamp;
  claim: ColumnType<string | null, string | null | undefined, string | null>;
  attempts: Generated<number>;
  last_attempt_at: NullableTs;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  delivered_at: NullableTs;
  failed_at: NullableTs;
}

export interface Database {
  refresh_families: RefreshFamiliesTable;
  refresh_tokens: RefreshTokensTable;
  denylist: DenylistTable;
  login_sessions: LoginSessionsTable;
  interactions: InteractionsTable;
  consents: ConsentsTable;
  client_assertion_jtis: ClientAssertionJtisTable;
  dpop_proofs: DpopProofsTable;
  audit_events: AuditEventsTable;
  users: UsersTable;
  clients: ClientsTable;
  signing_keys: SigningKeysTable;
  server_secrets: ServerSecretsTable;
  logout_notices: LogoutNoticesTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;
export type ClientRow = Selectable<ClientsTable>;
export type SigningKeyRow = Selectable<SigningKeysTable>;
