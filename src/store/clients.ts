// Repository functions for clients, and the Client domain type the protocol core uses.
import type { Kysely } from 'kysely';
import type { ClientRow, Database } from '../db/types.js';

export interface Client {
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
  createdAt: Date;
  /** Registered token endpoint auth method; null = either secret method (or none if public). */
  authMethod: string | null;
  idTokenAlg: string;
  jwks: { keys: Record<string, unknown>[] } | null;
  requirePkce: boolean;
  isAdmin: boolean;
  refreshWithoutOffline: boolean;
  /** The audiences this client serves as a resource server: it may introspect their tokens. */
  resourceServers: string[];
}

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
    resourceServers: row.resource_servers,
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
  resourceServers?: string[];
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
      resource_servers: JSON.stringify(c.resourceServers ?? []),
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
    jwks_kids: c.jwks ? c.jwks.keys.map((k) => k.kid ?? null) : [],
    created_at: c.createdAt.toISOString(),
  };
}
