// Repository functions for clients (the Client type is in src/core/model.ts).
import { sql, type Kysely } from 'kysely';
import type { ClientRow, Database } from '../db/types.js';

export type { Client } from '../core/model.js';
import type { Client } from '../core/model.js';

export function toClient(row: ClientRow): Client {
  return {
    clientId: row.client_id,
    name: row.name,
    secretDigest: row.secret_digest,
    isPublic: row.is_public,
    redirectUris: row.redirect_uris,
    postLogoutRedirectUris: row.post_logout_redirect_uris,
    grantTypes: row.grant_types,
    scopes: row.scopes,
    audiences: row.audiences,
    firstParty: row.first_party,
    createdAt: row.created_at,
    authMethod: row.token_endpoint_auth_method,
    idTokenAlg: row.id_token_signed_response_alg,
    jwks: row.jwks,
    requirePkce: row.require_pkce,
    isAdmin: row.is_admin,
    refreshWithoutOffline: row.refresh_without_offline,
    ccStatusIdx: row.cc_status_idx,
    backchannelLogoutUri: row.backchannel_logout_uri,
    backchannelLogoutSessionRequired: row.backchannel_logout_session_required,
    requirePar: row.require_par,
    resourceServers: row.resource_servers,
    dpopBound: row.dpop_bound_access_tokens,
  };
}

export interface NewClient {
  clientId: string;
  name: string;
  secretDigest: string | null;
  isPublic: boolean;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  grantTypes: string[];
  scopes: string[];
  audiences: string[];
  firstParty: boolean;
  authMethod?: string | null;
  idTokenAlg?: string;
  jwks?: { keys: Record<string, unknown>[] } | null;
  requirePkce?: boolean;
  isAdmin?: boolean;
  refreshWithoutOffline?: boolean;
  backchannelLogoutUri?: string | null;
  backchannelLogoutSessionRequired?: boolean;
  requirePar?: boolean;
  resourceServers?: string[];
  dpopBound?: boolean;
}

export async function insertClient(db: Kysely<Database>, c: NewClient, at: Date): Promise<Client> {
  const row = await db
    .insertInto('clients')
    .values({
      client_id: c.clientId,
      name: c.name,
      secret_digest: c.secretDigest,
      is_public: c.isPublic,
      redirect_uris: JSON.stringify(c.redirectUris),
      post_logout_redirect_uris: JSON.stringify(c.postLogoutRedirectUris),
      grant_types: JSON.stringify(c.grantTypes),
      scopes: JSON.stringify(c.scopes),
      audiences: JSON.stringify(c.audiences),
      first_party: c.firstParty,
      token_endpoint_auth_method: c.authMethod ?? null,
      id_token_signed_response_alg: c.idTokenAlg ?? 'RS256',
      jwks: c.jwks ? JSON.stringify(c.jwks) : null,
      require_pkce: c.requirePkce ?? true,
      is_admin: c.isAdmin ?? false,
      refresh_without_offline: c.refreshWithoutOffline ?? false,
      backchannel_logout_uri: c.backchannelLogoutUri ?? null,
      backchannel_logout_session_required: c.backchannelLogoutSessionRequired ?? false,
      require_par: c.requirePar ?? false,
      resource_servers: JSON.stringify(c.resourceServers ?? []),
      dpop_bound_access_tokens: c.dpopBound ?? false,
      created_at: at,
      updated_at: at,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toClient(row);
}

export async function findClient(db: Kysely<Database>, clientId: string): Promise<Client | undefined> {
  const row = await db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
  return row && toClient(row);
}

export async function listClients(db: Kysely<Database>): Promise<Client[]> {
  return (await db.selectFrom('clients').selectAll().orderBy('created_at').execute()).map(toClient);
}

/** What `clients update` may change. */
export interface ClientChanges {
  name?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  backchannelLogoutUri?: string | null;
  backchannelLogoutSessionRequired?: boolean;
  dpopBound?: boolean;
}

export async function updateClient(db: Kysely<Database>, clientId: string, c: ClientChanges, at: Date): Promise<Client | undefined> {
  const row = await db
    .updateTable('clients')
    .set({
      ...(c.name !== undefined ? { name: c.name } : {}),
      ...(c.redirectUris !== undefined ? { redirect_uris: JSON.stringify(c.redirectUris) } : {}),
      ...(c.postLogoutRedirectUris !== undefined ? { post_logout_redirect_uris: JSON.stringify(c.postLogoutRedirectUris) } : {}),
      ...(c.backchannelLogoutUri !== undefined ? { backchannel_logout_uri: c.backchannelLogoutUri } : {}),
      ...(c.backchannelLogoutSessionRequired !== undefined ? { backchannel_logout_session_required: c.backchannelLogoutSessionRequired } : {}),
      ...(c.dpopBound !== undefined ? { dpop_bound_access_tokens: c.dpopBound } : {}),
      updated_at: at,
    })
    .where('client_id', '=', clientId)
    .returningAll()
    .executeTakeFirst();
  return row && toClient(row);
}

export async function deleteClient(db: Kysely<Database>, clientId: string): Promise<boolean> {
  const r = await db.deleteFrom('clients').where('client_id', '=', clientId).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** The client as shown by the CLI: never the secret digest. */
export function publicClient(c: Client): Record<string, unknown> {
  return {
    client_id: c.clientId,
    name: c.name,
    type: c.isPublic ? 'public' : 'confidential',
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris,
    grant_types: c.grantTypes,
    scopes: c.scopes,
    audiences: c.audiences,
    resource_servers: c.resourceServers,
    first_party: c.firstParty,
    token_endpoint_auth_method: c.authMethod ?? (c.isPublic ? 'none' : 'client_secret_basic|client_secret_post'),
    id_token_signed_response_alg: c.idTokenAlg,
    require_pkce: c.requirePkce,
    admin: c.isAdmin,
    refresh_without_offline: c.refreshWithoutOffline,
    backchannel_logout_uri: c.backchannelLogoutUri,
    backchannel_logout_session_required: c.backchannelLogoutSessionRequired,
    require_par: c.requirePar,
    dpop_bound_access_tokens: c.dpopBound,
    jwks_kids: c.jwks ? c.jwks.keys.map((k) => k.kid ?? null) : [],
    created_at: c.createdAt.toISOString(),
  };
}

/**
 * Give the client's future client_credentials tokens a fresh status index, when `current` is
 * still its index; the old one is then set in the status lists by the caller's denylist row.
 * Caches hear of it through latchkey_clients at commit.
 */
export async function rotateClientStatusIndex(db: Kysely<Database>, clientId: string, current: string): Promise<boolean> {
  const r = await sql`UPDATE clients SET cc_status_idx = nextval('status_index_seq') WHERE client_id = ${clientId} AND cc_status_idx = ${current}::bigint`.execute(db);
  await sql`SELECT pg_notify('latchkey_clients', ${clientId})`.execute(db);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

/** The status index a client's client_credentials tokens currently carry. */
export async function clientStatusIndex(db: Kysely<Database>, clientId: string): Promise<string | undefined> {
  return (await db.selectFrom('clients').select('cc_status_idx').where('client_id', '=', clientId).executeTakeFirst())?.cc_status_idx;
}
