// Clients: one implementation of registering, reading, changing and deleting them (CLI
// `latchkey clients …`, the admin API /admin/clients). Refusals name the CLI's options, the
// registration vocabulary admins know (RFC 7591 registration, issue 27, maps its metadata onto these).
import { ADMIN_SCOPE, GRANT_TYPES, RESERVED_SCOPES, TOKEN_AUTH_METHODS, isValidScopeToken } from '../core/vocabulary.js';
import { SUPPORTED_ALGS } from '../core/config.js';
import { CLIENTS_CHANNEL } from '../core/channels.js';
import { digest, randomToken } from '../core/crypto.js';
import { removeClient } from '../accounts/lifecycle.js';
import { backchannelLogoutRegistrationProblem } from '../protocol/backchannel-logout-uri.js';
import { redirectUriProblem } from '../protocol/redirect-uri.js';
import { ClientJwksError, readClientJwks } from '../protocol/client-jwks.js';
import { findClient, insertClient, listClients as allClients, publicClient, updateClient as update, type Client, type ClientChanges } from '../store/clients.js';
import { audit, now, OpsError, type Actor, type OpsContext } from './context.js';

export interface ClientRegistration {
  name?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  isPublic?: boolean;
  grantTypes?: string[];
  scopes?: string[];
  audiences?: string[];
  resourceServers?: string[];
  firstParty?: boolean;
  authMethod?: string;
  idTokenAlg?: string;
  /** A file holding the client's public keys (JWKS). */
  jwksFile?: string;
  pkceOptional?: boolean;
  admin?: boolean;
  refreshWithoutOffline?: boolean;
  backchannelLogoutUri?: string;
  backchannelLogoutSessionRequired?: boolean;
  requirePar?: boolean;
  dpopBound?: boolean;
}

export interface ClientUpdate {
  name?: string;
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** null: remove it. */
  backchannelLogoutUri?: string | null;
  backchannelLogoutSessionRequired?: boolean;
  dpopBound?: boolean;
}

const AUTH_METHODS: readonly string[] = TOKEN_AUTH_METHODS;
const bad = (message: string) => new OpsError('invalid_request', message);

/** A random client id that never starts with '-' (it would read as an option on the command line). */
function newClientId(): string {
  for (;;) {
    const id = randomToken(18);
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

export function checkAbsoluteUri(value: string, what: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw bad(`${what} must be an absolute URI: ${value}`);
  }
  if (value.includes('#') || !u.protocol) throw bad(`${what} must not contain a fragment: ${value}`);
  return value;
}

function checkRedirectUris(uris: string[], option: string): string[] {
  for (const u of uris) {
    const problem = redirectUriProblem(u);
    if (problem) throw bad(`--${option} ${u}: ${problem}`);
  }
  return [...new Set(uris)];
}

async function checkBackchannelUri(ctx: OpsContext, uri: string): Promise<string> {
  const problem = await backchannelLogoutRegistrationProblem(uri, ctx.config);
  if (problem) throw bad(`--backchannel-logout-uri ${uri}: ${problem}`);
  return uri;
}

export async function getClient(ctx: OpsContext, clientId: string): Promise<Record<string, unknown>> {
  const client = await findClient(ctx.db, clientId);
  if (!client) throw new OpsError('not_found', `no such client: ${clientId}`);
  return publicClient(client);
}

export async function listClients(ctx: OpsContext): Promise<Record<string, unknown>[]> {
  return (await allClients(ctx.db)).map(publicClient);
}

/** Register a client. The secret (confidential clients) is in the answer, once, and stored only as a digest. */
export async function createClient(ctx: OpsContext, who: Actor, r: ClientRegistration): Promise<Record<string, unknown>> {
  const bclUri = r.backchannelLogoutUri === undefined ? undefined : await checkBackchannelUri(ctx, r.backchannelLogoutUri);
  if (r.backchannelLogoutSessionRequired && bclUri === undefined) throw bad('--backchannel-logout-session-required goes with --backchannel-logout-uri');
  const name = r.name?.trim();
  if (!name) throw bad('--name is required');
  if (name.length > 200) throw bad('--name must be at most 200 characters');
  const isPublic = Boolean(r.isPublic);
  const isAdmin = Boolean(r.admin);
  const authMethod = r.authMethod;
  if (authMethod !== undefined && !AUTH_METHODS.includes(authMethod)) throw bad(`unknown --auth-method ${authMethod} (supported: ${AUTH_METHODS.join(', ')})`);
  if (isPublic && authMethod !== undefined && authMethod !== 'none') throw bad('a public client authenticates with --auth-method none');
  if (!isPublic && authMethod === 'none') throw bad('--auth-method none is only for public clients (add --public)');
  if (isPublic && isAdmin) throw bad('an admin client must be confidential');
  const idTokenAlg = r.idTokenAlg ?? 'RS256';
  if (!(ctx.config.enabledAlgs as readonly string[]).includes(idTokenAlg)) {
    throw bad(`unsupported --id-token-alg ${idTokenAlg} (enabled: ${ctx.config.enabledAlgs.join(', ')}; SIGNING_ALG chooses the default besides RS256; known: ${SUPPORTED_ALGS.join(', ')})`);
  }
  if (r.pkceOptional && isPublic) throw bad('PKCE is always required for public clients');
  // the keys verify private_key_jwt assertions and signed request objects (RFC 9101)
  if (r.jwksFile !== undefined && isPublic) throw bad('--jwks is for confidential clients');
  if (authMethod === 'private_key_jwt' && r.jwksFile === undefined) throw bad("--auth-method private_key_jwt needs --jwks FILE (the client's public keys)");
  let jwks = null;
  if (r.jwksFile !== undefined) {
    try {
      jwks = await readClientJwks(r.jwksFile);
    } catch (err) {
      if (err instanceof ClientJwksError) throw bad(err.message);
      throw err;
    }
  }
  const redirectUris = checkRedirectUris(r.redirectUris ?? [], 'redirect-uri');
  const postLogout = checkRedirectUris(r.postLogoutRedirectUris ?? [], 'post-logout-redirect-uri');
  const grantTypes = r.grantTypes ? [...r.grantTypes] : isAdmin ? ['client_credentials'] : ['authorization_code', 'refresh_token'];
  if (isAdmin && !grantTypes.includes('client_credentials')) grantTypes.push('client_credentials');
  if (grantTypes.length === 0) throw bad('--grant-types must name at least one grant type');
  for (const g of grantTypes) {
    if (!(GRANT_TYPES as readonly string[]).includes(g)) throw bad(`unknown grant type: ${g} (supported: ${GRANT_TYPES.join(', ')})`);
  }
  if (isPublic && grantTypes.includes('client_credentials')) throw bad('a public client cannot use client_credentials');
  if (grantTypes.includes('authorization_code') && redirectUris.length === 0) throw bad('--redirect-uri is required for the authorization_code grant');
  const scopes = r.scopes ? [...r.scopes] : ['openid', 'profile', 'email', 'offline_access'];
  for (const s of scopes) {
    if (!isValidScopeToken(s)) throw bad(`invalid scope: ${s}`);
    if (RESERVED_SCOPES.has(s)) throw bad(`the scope ${s} is reserved and cannot be granted with --scopes`);
  }
  const audiences = [...(r.audiences ?? [])];
  for (const a of audiences) checkAbsoluteUri(a, '--audiences');
  if (isAdmin) {
    scopes.push(ADMIN_SCOPE);
    audiences.push(`${ctx.config.issuer}/admin`);
  }
  // RFC 7662 §4: only a resource server registered for an audience may introspect its tokens;
  // the issuer's own audiences (userinfo, admin) belong to no client
  const resourceServers = r.resourceServers ?? [];
  for (const a of resourceServers) {
    checkAbsoluteUri(a, '--resource-server');
    if (a === ctx.config.issuer || a.startsWith(`${ctx.config.issuer}/`)) throw bad(`--resource-server ${a}: the issuer's own audiences cannot be served by a client`);
  }
  if (resourceServers.length > 0 && isPublic) throw bad('--resource-server needs a confidential client (introspection authenticates the caller)');
  const clientSecret = isPublic || authMethod === 'private_key_jwt' ? undefined : randomToken(32);
  const client = await insertClient(
    ctx.db,
    {
      clientId: newClientId(),
      name,
      secretDigest: clientSecret ? digest(clientSecret) : null,
      isPublic,
      redirectUris,
      postLogoutRedirectUris: postLogout,
      grantTypes: [...new Set(grantTypes)],
      scopes: [...new Set(scopes)],
      audiences: [...new Set(audiences)],
      firstParty: Boolean(r.firstParty),
      authMethod: authMethod ?? null,
      idTokenAlg,
      jwks,
      requirePkce: !r.pkceOptional,
      isAdmin,
      refreshWithoutOffline: Boolean(r.refreshWithoutOffline),
      backchannelLogoutUri: bclUri ?? null,
      backchannelLogoutSessionRequired: Boolean(r.backchannelLogoutSessionRequired),
      requirePar: Boolean(r.requirePar),
      dpopBound: Boolean(r.dpopBound),
      resourceServers: [...new Set(resourceServers)],
    },
    now(ctx),
  );
  await audit(ctx, who, { type: 'admin.client_created', clientId: client.clientId, details: { name: client.name, public: client.isPublic, admin: client.isAdmin } });
  // the secret is shown once, here, and never stored
  return clientSecret ? { client_id: client.clientId, client_secret: clientSecret, ...publicClient(client) } : publicClient(client);
}

export async function updateClient(ctx: OpsContext, who: Actor, clientId: string, u: ClientUpdate): Promise<Record<string, unknown>> {
  const client: Client | undefined = await findClient(ctx.db, clientId);
  if (!client) throw new OpsError('not_found', `no such client: ${clientId}`);
  const changes: ClientChanges = {};
  if (u.name !== undefined) {
    const name = u.name.trim();
    if (!name) throw bad('--name must not be empty');
    if (name.length > 200) throw bad('--name must be at most 200 characters');
    changes.name = name;
  }
  // a list replaces the registered list
  if (u.redirectUris !== undefined) changes.redirectUris = checkRedirectUris(u.redirectUris, 'redirect-uri');
  if (u.postLogoutRedirectUris !== undefined) changes.postLogoutRedirectUris = checkRedirectUris(u.postLogoutRedirectUris, 'post-logout-redirect-uri');
  if (u.backchannelLogoutUri !== undefined) changes.backchannelLogoutUri = u.backchannelLogoutUri === null ? null : await checkBackchannelUri(ctx, u.backchannelLogoutUri);
  if (u.backchannelLogoutSessionRequired !== undefined) changes.backchannelLogoutSessionRequired = u.backchannelLogoutSessionRequired;
  if (changes.backchannelLogoutUri === null) changes.backchannelLogoutSessionRequired = false;
  if (u.dpopBound !== undefined) changes.dpopBound = u.dpopBound;
  if (Object.keys(changes).length === 0) throw bad('nothing to change (see the usage: latchkey help)');
  // the same rules as create
  const redirects = changes.redirectUris ?? client.redirectUris;
  if (client.grantTypes.includes('authorization_code') && redirects.length === 0) throw bad('--redirect-uri is required for the authorization_code grant');
  const uri = changes.backchannelLogoutUri !== undefined ? changes.backchannelLogoutUri : client.backchannelLogoutUri;
  if (changes.backchannelLogoutSessionRequired && !uri) throw bad('--backchannel-logout-session-required goes with a --backchannel-logout-uri');
  const updated = await update(ctx.db, clientId, changes, now(ctx));
  if (!updated) throw new OpsError('not_found', `no such client: ${clientId}`);
  await ctx.notify(CLIENTS_CHANNEL, clientId);
  ctx.local?.clientChanged(clientId);
  await audit(ctx, who, { type: 'admin.client_updated', clientId, details: { changed: Object.keys(changes) } });
  return publicClient(updated);
}

export async function deleteClient(ctx: OpsContext, who: Actor, clientId: string): Promise<{ client_id: string; deleted: true; families_revoked: number }> {
  if (!clientId || !(await findClient(ctx.db, clientId))) throw new OpsError('not_found', `no such client: ${clientId}`);
  const revoked = await removeClient(ctx.db, clientId, now(ctx), ctx.config.accessTokenTtl);
  await ctx.notify(CLIENTS_CHANNEL, clientId);
  ctx.local?.clientChanged(clientId);
  await ctx.local?.syncDenylist();
  await audit(ctx, who, { type: 'admin.client_deleted', clientId, details: { families_revoked: revoked } });
  return { client_id: clientId, deleted: true, families_revoked: revoked };
}
