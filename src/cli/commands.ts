// The `latchkey` commands, framework-free: argv in, {code, stdout, stderr} out. The same function
// runs in the CLI process (when it opens the data itself) and inside a running embedded server
// (when the CLI forwards a command over the owner-only local socket).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Kysely } from 'kysely';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Database } from '../db/types.js';
import { migrate } from '../db/migrator.js';
import { MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, type PasswordHasher } from '../accounts/passwords.js';
import { findUserByIdOrEmail, insertUser, isValidEmail, listUsers, publicUser, setUserDisabled } from '../store/users.js';
import { findClient, insertClient, listClients, publicClient, updateClient, type ClientChanges } from '../store/clients.js';
import { backchannelLogoutRegistrationProblem } from '../protocol/backchannel-logout-uri.js';
import { listNotices } from '../store/logout-outbox.js';
import { redirectUriProblem } from '../protocol/redirect-uri.js';
import { digest, randomToken } from '../tokens/opaque.js';
import { generateKekBase64, type Kek } from '../keys/kek.js';
import type { Runtime } from '../runtime.js';
import { ADMIN_SCOPE, RESERVED_SCOPES, isValidScopeToken } from '../protocol/scopes.js';
import { SUPPORTED_ALGS } from '../config.js';
import { ClientJwksError, readClientJwks } from '../protocol/client-jwks.js';
import { keysCommands } from './keys-commands.js';
import { planCommands } from './plan.js';
import { CLIENTS_CHANNEL } from '../store/client-cache.js';
import { changePassword, disableUser, logoutEverywhere, removeClient, removeUser, revokeClientFamilies, revokeSession } from '../accounts/lifecycle.js';
import { listFamilies } from '../store/refresh-families.js';
import { metrics } from '../metrics/metrics.js';
import { listAudit, recordAudit } from '../store/audit.js';
import { isUuid } from '../store/users.js';
import { isStorableText } from '../protocol/storable-text.js';

export interface CliContext {
  config: Config;
  db: Kysely<Database>;
  clock: Clock;
  passwords: PasswordHasher;
  /** NOTIFY other replicas (and the running server) of a change. */
  notify(channel: string, payload: string): Promise<void>;
  /** The KEK, loaded on first use (only key commands need it). */
  getKek(): Kek;
  /** Present when the command runs inside a running server. */
  runtime?: Runtime;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CliError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Command {
  usage: string;
  options: Options;
  positionals?: number;
  needsDb: boolean;
  /** A list command: the columns of its table (`--table`, the default on a terminal). */
  columns?: string[];
  run(ctx: CliContext | undefined, values: Values, positionals: string[], stdin: string | undefined): Promise<unknown>;
}

/** A random client id that never starts with '-' (it would read as an option on the command line). */
function newClientId(): string {
  for (;;) {
    const id = randomToken(18);
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

export const AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'];
const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;

export function stripOneNewline(s: string): string {
  if (s.endsWith('\r\n')) return s.slice(0, -2);
  if (s.endsWith('\n')) return s.slice(0, -1);
  return s;
}

export function need(ctx: CliContext | undefined): CliContext {
  if (!ctx) throw new Error('this command needs the database');
  return ctx;
}

export function str(v: Values[string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function list(v: Values[string]): string[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v.map(String);
  return [String(v)];
}

function commaList(v: Values[string]): string[] | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

async function resolveUser(ctx: CliContext, ref: string | undefined) {
  if (!ref) throw new CliError('a user id or email is required');
  const user = await findUserByIdOrEmail(ctx.db, ref);
  if (!user) throw new CliError(`no such user: ${ref}`);
  return user;
}

export function validatePassword(password: string | undefined): string {
  if (password === undefined || password === '') throw new CliError('a password is required on standard input (--password-stdin)');
  if (password.length < MIN_PASSWORD_LENGTH) throw new CliError(`the password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new CliError(`the password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  return password;
}

export function validateAbsoluteUri(value: string, what: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new CliError(`${what} must be an absolute URI: ${value}`);
  }
  if (value.includes('#') || !u.protocol) throw new CliError(`${what} must not contain a fragment: ${value}`);
  return value;
}

function redirectUris(v: Values[string], option: string): string[] {
  const uris = list(v);
  for (const u of uris) {
    const problem = redirectUriProblem(u);
    if (problem) throw new CliError(`--${option} ${u}: ${problem}`);
  }
  return [...new Set(uris)];
}

async function backchannelLogoutUri(v: Values[string], config: Config): Promise<string | undefined> {
  const uri = str(v);
  if (uri === undefined) return undefined;
  const problem = await backchannelLogoutRegistrationProblem(uri, config);
  if (problem) throw new CliError(`--backchannel-logout-uri ${uri}: ${problem}`);
  return uri;
}

export const commands: Record<string, Command> = {
  migrate: {
    usage: 'latchkey migrate',
    options: {},
    needsDb: true,
    async run(ctx) {
      const applied = await migrate(need(ctx).db);
      return { applied };
    },
  },

  'kek generate': {
    usage: 'latchkey kek generate',
    options: {},
    needsDb: false,
    async run() {
      return { kek: generateKekBase64() };
    },
  },

  'users create': {
    usage: 'latchkey users create --email E [--name N] [--email-verified] --password-stdin',
    options: { email: { type: 'string' }, name: { type: 'string' }, 'email-verified': { type: 'boolean' }, 'password-stdin': { type: 'boolean' } },
    needsDb: true,
    async run(c, v, _p, stdin) {
      const ctx = need(c);
      const email = str(v.email)?.trim();
      if (!email) throw new CliError('--email is required');
      if (!isValidEmail(email)) throw new CliError(`invalid email: ${email}`);
      if (!v['password-stdin']) throw new CliError('--password-stdin is required (the password is read from standard input)');
      const password = validatePassword(stdin === undefined ? undefined : stripOneNewline(stdin));
      const name = str(v.name)?.trim();
      if (name !== undefined && (name.length === 0 || name.length > 200)) throw new CliError('--name must be 1 to 200 characters');
      if (await findUserByIdOrEmail(ctx.db, email)) throw new CliError(`a user with the email ${email} already exists`);
      const passwordHash = await ctx.passwords.hash(password);
      try {
        const user = await insertUser(ctx.db, { email, name: name ?? null, emailVerified: Boolean(v['email-verified']), passwordHash }, new Date(ctx.clock.now()));
        return { id: user.id, email: user.email };
      } catch (err) {
        if ((err as { code?: string }).code === '23505') throw new CliError(`a user with the email ${email} already exists`);
        throw err;
      }
    },
  },

  'users list': {
    usage: 'latchkey users list',
    options: {},
    needsDb: true,
    columns: ['id', 'email', 'name', 'email_verified', 'disabled', 'created_at'],
    async run(ctx) {
      return (await listUsers(need(ctx).db)).map(publicUser);
    },
  },

  'users disable': {
    usage: 'latchkey users disable <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    async run(c, _v, p) {
      const ctx = need(c);
      const user = await resolveUser(ctx, p[0]);
      const ended = await disableUser(ctx.db, user.id, new Date(ctx.clock.now()));
      await recordAudit(ctx.db, new Date(ctx.clock.now()), { type: 'admin.user_disabled', actor: 'cli', userId: user.id, details: { ...ended } });
      return { ...publicUser({ ...user, disabled: true }), ...ended };
    },
  },

  'users enable': {
    usage: 'latchkey users enable <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    async run(c, _v, p) {
      const ctx = need(c);
      const user = await resolveUser(ctx, p[0]);
      const updated = await setUserDisabled(ctx.db, user.id, false, new Date(ctx.clock.now()));
      await recordAudit(ctx.db, new Date(ctx.clock.now()), { type: 'admin.user_enabled', actor: 'cli', userId: user.id });
      return publicUser(updated ?? user);
    },
  },

  'users set-password': {
    usage: 'latchkey users set-password <id|email> --password-stdin',
    options: { 'password-stdin': { type: 'boolean' } },
    positionals: 1,
    needsDb: true,
    async run(c, v, p, stdin) {
      const ctx = need(c);
      const user = await resolveUser(ctx, p[0]);
      if (!v['password-stdin']) throw new CliError('--password-stdin is required (the password is read from standard input)');
      const password = validatePassword(stdin === undefined ? undefined : stripOneNewline(stdin));
      const hash = await ctx.passwords.hash(password);
      const ended = await changePassword(ctx.db, user.id, hash, new Date(ctx.clock.now()));
      await recordAudit(ctx.db, new Date(ctx.clock.now()), { type: 'admin.password_changed', actor: 'cli', userId: user.id, details: { ...ended } });
      return { id: user.id, email: user.email, ...ended };
    },
  },

  'users delete': {
    usage: 'latchkey users delete <id|email>',
    options: {},
    positionals: 1,
    needsDb: true,
    async run(c, _v, p) {
      const ctx = need(c);
      const user = await resolveUser(ctx, p[0]);
      const ended = await removeUser(ctx.db, user.id, new Date(ctx.clock.now()));
      await recordAudit(ctx.db, new Date(ctx.clock.now()), { type: 'admin.user_deleted', actor: 'cli', userId: user.id, details: { email: user.email, ...ended } });
      return { id: user.id, email: user.email, deleted: true, ...ended };
    },
  },

  'sessions list': {
    usage: 'latchkey sessions list (--user <id|email> | --client <client_id>) [--all]',
    options: { user: { type: 'string' }, client: { type: 'string' }, all: { type: 'boolean' } },
    needsDb: true,
    columns: ['id', 'user_id', 'client_id', 'scope', 'last_used_at', 'idle_expires_at', 'revoked_at', 'revoked_reason'],
    async run(c, v) {
      const ctx = need(c);
      const userRef = str(v.user);
      const clientId = str(v.client);
      if (!userRef && !clientId) throw new CliError('--user or --client is required');
      const userId = userRef ? (await resolveUser(ctx, userRef)).id : undefined;
      return listFamilies(ctx.db, { userId, clientId, includeRevoked: Boolean(v.all) });
    },
  },

  'sessions revoke': {
    usage: 'latchkey sessions revoke (--family <id> | --user <id|email> | --client <client_id>)',
    options: { family: { type: 'string' }, user: { type: 'string' }, client: { type: 'string' } },
    needsDb: true,
    async run(c, v) {
      const ctx = need(c);
      const given = ['family', 'user', 'client'].filter((k) => v[k] !== undefined);
      if (given.length !== 1) throw new CliError('give exactly one of --family, --user, --client');
      const now = new Date(ctx.clock.now());
      if (v.family !== undefined) {
        const id = str(v.family)!;
        const fam = isUuid(id) ? await ctx.db.selectFrom('refresh_families').select(['id', 'user_id', 'client_id']).where('id', '=', id).executeTakeFirst() : undefined;
        if (!fam) throw new CliError(`no such session: ${id}`);
        const revoked = await revokeSession(ctx.db, fam.id, now);
        await recordAudit(ctx.db, now, { type: 'admin.session_revoked', actor: 'cli', userId: fam.user_id, clientId: fam.client_id, details: { family_id: fam.id } });
        return { family: fam.id, revoked: true, already_revoked: !revoked };
      }
      if (v.user !== undefined) {
        const user = await resolveUser(ctx, str(v.user));
        const ended = await logoutEverywhere(ctx.db, user.id, now);
        await recordAudit(ctx.db, now, { type: 'admin.logout_everywhere', actor: 'cli', userId: user.id, details: { ...ended } });
        return { user_id: user.id, ...ended };
      }
      const clientId = str(v.client)!;
      if (!(await findClient(ctx.db, clientId))) throw new CliError(`no such client: ${clientId}`);
      const n = await revokeClientFamilies(ctx.db, clientId, now);
      await recordAudit(ctx.db, now, { type: 'admin.client_sessions_revoked', actor: 'cli', clientId, details: { families_revoked: n } });
      return { client_id: clientId, families_revoked: n };
    },
  },

  audit: {
    usage: 'latchkey audit [--user <id|email>] [--type T] [--since ISO] [--until ISO] [--limit N]',
    options: { user: { type: 'string' }, type: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, limit: { type: 'string' } },
    needsDb: true,
    columns: ['at', 'type', 'actor', 'user_id', 'client_id', 'ip', 'details'],
    async run(c, v) {
      const ctx = need(c);
      const date = (s: string | undefined, name: string) => {
        if (s === undefined) return undefined;
        const d = new Date(s);
        if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 1 || d.getUTCFullYear() > 9999) throw new CliError(`--${name} must be an ISO 8601 time`);
        return d;
      };
      const limitRaw = str(v.limit);
      if (limitRaw !== undefined && !/^\d{1,4}$/.test(limitRaw)) throw new CliError('--limit must be a number up to 9999');
      const userRef = str(v.user);
      const userId = userRef ? (isUuid(userRef) ? userRef : (await resolveUser(ctx, userRef)).id) : undefined;
      return listAudit(ctx.db, { userId, type: str(v.type), since: date(str(v.since), 'since'), until: date(str(v.until), 'until'), limit: limitRaw ? Number(limitRaw) : 100 });
    },
  },

  'clients create': {
    usage:
      'latchkey clients create --name N [--redirect-uri U]… [--post-logout-redirect-uri U]… [--public] [--grant-types a,b] [--scopes "openid profile …"] [--audiences A,…] [--resource-server A]… [--first-party] [--auth-method M] [--jwks FILE] [--id-token-alg ALG] [--pkce-optional] [--refresh-without-offline] [--require-par] [--dpop-bound] [--admin] [--backchannel-logout-uri U [--backchannel-logout-session-required]]',
    options: {
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      public: { type: 'boolean' },
      'grant-types': { type: 'string' },
      scopes: { type: 'string' },
      audiences: { type: 'string' },
      'resource-server': { type: 'string', multiple: true },
      'first-party': { type: 'boolean' },
      'auth-method': { type: 'string' },
      'id-token-alg': { type: 'string' },
      jwks: { type: 'string' },
      'pkce-optional': { type: 'boolean' },
      admin: { type: 'boolean' },
      'refresh-without-offline': { type: 'boolean' },
      'backchannel-logout-uri': { type: 'string' },
      'backchannel-logout-session-required': { type: 'boolean' },
      'require-par': { type: 'boolean' },
      'dpop-bound': { type: 'boolean' },
    },
    needsDb: true,
    async run(c, v) {
      const ctx = need(c);
      const bclUri = await backchannelLogoutUri(v['backchannel-logout-uri'], ctx.config);
      if (v['backchannel-logout-session-required'] && bclUri === undefined) throw new CliError('--backchannel-logout-session-required goes with --backchannel-logout-uri');
      const name = str(v.name)?.trim();
      if (!name) throw new CliError('--name is required');
      if (name.length > 200) throw new CliError('--name must be at most 200 characters');
      const isPublic = Boolean(v.public);
      const isAdmin = Boolean(v.admin);
      const authMethod = str(v['auth-method']);
      if (authMethod !== undefined && !AUTH_METHODS.includes(authMethod)) throw new CliError(`unknown --auth-method ${authMethod} (supported: ${AUTH_METHODS.join(', ')})`);
      if (isPublic && authMethod !== undefined && authMethod !== 'none') throw new CliError('a public client authenticates with --auth-method none');
      if (!isPublic && authMethod === 'none') throw new CliError('--auth-method none is only for public clients (add --public)');
      if (isPublic && isAdmin) throw new CliError('an admin client must be confidential');
      const idTokenAlg = str(v['id-token-alg']) ?? 'RS256';
      if (!(ctx.config.enabledAlgs as readonly string[]).includes(idTokenAlg)) {
        throw new CliError(`unsupported --id-token-alg ${idTokenAlg} (enabled: ${ctx.config.enabledAlgs.join(', ')}; SIGNING_ALG chooses the default besides RS256; known: ${SUPPORTED_ALGS.join(', ')})`);
      }
      if (v['pkce-optional'] && isPublic) throw new CliError('PKCE is always required for public clients');
      const jwksFile = str(v.jwks);
      // the keys verify private_key_jwt assertions and signed request objects (RFC 9101)
      if (jwksFile !== undefined && isPublic) throw new CliError('--jwks is for confidential clients');
      if (authMethod === 'private_key_jwt' && jwksFile === undefined) throw new CliError('--auth-method private_key_jwt needs --jwks FILE (the client\'s public keys)');
      const jwks = jwksFile === undefined ? null : await readClientJwks(jwksFile);
      const redirectUris = list(v['redirect-uri']);
      for (const u of redirectUris) {
        const problem = redirectUriProblem(u);
        if (problem) throw new CliError(`--redirect-uri ${u}: ${problem}`);
      }
      const postLogout = list(v['post-logout-redirect-uri']);
      for (const u of postLogout) {
        const problem = redirectUriProblem(u);
        if (problem) throw new CliError(`--post-logout-redirect-uri ${u}: ${problem}`);
      }
      const grantTypes = commaList(v['grant-types']) ?? (isAdmin ? ['client_credentials'] : ['authorization_code', 'refresh_token']);
      if (isAdmin && !grantTypes.includes('client_credentials')) grantTypes.push('client_credentials');
      if (grantTypes.length === 0) throw new CliError('--grant-types must name at least one grant type');
      for (const g of grantTypes) {
        if (!(GRANT_TYPES as readonly string[]).includes(g)) throw new CliError(`unknown grant type: ${g} (supported: ${GRANT_TYPES.join(', ')})`);
      }
      if (isPublic && grantTypes.includes('client_credentials')) throw new CliError('a public client cannot use client_credentials');
      if (grantTypes.includes('authorization_code') && redirectUris.length === 0) throw new CliError('--redirect-uri is required for the authorization_code grant');
      const scopes = (str(v.scopes) ?? 'openid profile email offline_access').split(/\s+/).filter(Boolean);
      for (const s of scopes) {
        if (!isValidScopeToken(s)) throw new CliError(`invalid scope: ${s}`);
        if (RESERVED_SCOPES.has(s)) throw new CliError(`the scope ${s} is reserved and cannot be granted with --scopes`);
      }
      const audiences = commaList(v.audiences) ?? [];
      for (const a of audiences) validateAbsoluteUri(a, '--audiences');
      if (isAdmin) {
        scopes.push(ADMIN_SCOPE);
        audiences.push(`${ctx.config.issuer}/admin`);
      }
      // RFC 7662 §4: only a resource server registered for an audience may introspect its tokens;
      // the issuer's own audiences (userinfo, admin) belong to no client
      const resourceServers = list(v['resource-server']);
      for (const a of resourceServers) {
        validateAbsoluteUri(a, '--resource-server');
        if (a === ctx.config.issuer || a.startsWith(`${ctx.config.issuer}/`)) throw new CliError(`--resource-server ${a}: the issuer's own audiences cannot be served by a client`);
      }
      if (resourceServers.length > 0 && isPublic) throw new CliError('--resource-server needs a confidential client (introspection authenticates the caller)');
      const clientSecret = isPublic || authMethod === 'private_key_jwt' ? undefined : randomToken(32);
      const client = await insertClient(
        ctx.db,
        {
          clientId: newClientId(),
          name,
          secretDigest: clientSecret ? digest(clientSecret) : null,
          isPublic,
          redirectUris: [...new Set(redirectUris)],
          postLogoutRedirectUris: [...new Set(postLogout)],
          grantTypes: [...new Set(grantTypes)],
          scopes: [...new Set(scopes)],
          audiences: [...new Set(audiences)],
          firstParty: Boolean(v['first-party']),
          authMethod: authMethod ?? null,
          idTokenAlg,
          jwks,
          requirePkce: !v['pkce-optional'],
          isAdmin,
          refreshWithoutOffline: Boolean(v['refresh-without-offline']),
          backchannelLogoutUri: bclUri ?? null,
          backchannelLogoutSessionRequired: Boolean(v['backchannel-logout-session-required']),
          requirePar: Boolean(v['require-par']),
          dpopBound: Boolean(v['dpop-bound']),
          resourceServers: [...new Set(resourceServers)],
        },
        new Date(ctx.clock.now()),
      );
      // the secret is shown once, here, and never stored
      return clientSecret ? { client_id: client.clientId, client_secret: clientSecret, ...publicClient(client) } : publicClient(client);
    },
  },

  'clients list': {
    usage: 'latchkey clients list',
    options: {},
    needsDb: true,
    columns: ['client_id', 'name', 'type', 'grant_types', 'scopes', 'redirect_uris', 'created_at'],
    async run(ctx) {
      return (await listClients(need(ctx).db)).map(publicClient);
    },
  },

  'clients update': {
    usage:
      'latchkey clients update <client_id> [--name N] [--redirect-uri U]… [--post-logout-redirect-uri U]… [--no-post-logout-redirect-uris] [--backchannel-logout-uri U | --no-backchannel-logout-uri] [--backchannel-logout-session-required | --no-backchannel-logout-session-required] [--dpop-bound | --no-dpop-bound]',
    options: {
      name: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      'no-post-logout-redirect-uris': { type: 'boolean' },
      'backchannel-logout-uri': { type: 'string' },
      'no-backchannel-logout-uri': { type: 'boolean' },
      'backchannel-logout-session-required': { type: 'boolean' },
      'no-backchannel-logout-session-required': { type: 'boolean' },
      'dpop-bound': { type: 'boolean' },
      'no-dpop-bound': { type: 'boolean' },
    },
    positionals: 1,
    needsDb: true,
    async run(c, v, p) {
      const ctx = need(c);
      const id = p[0]!;
      const client = await findClient(ctx.db, id);
      if (!client) throw new CliError(`no such client: ${id}`);
      const changes: ClientChanges = {};
      if (v.name !== undefined) {
        const name = str(v.name)!.trim();
        if (!name) throw new CliError('--name must not be empty');
        if (name.length > 200) throw new CliError('--name must be at most 200 characters');
        changes.name = name;
      }
      // a list option replaces the registered list
      if (v['redirect-uri'] !== undefined) changes.redirectUris = redirectUris(v['redirect-uri'], 'redirect-uri');
      if (v['post-logout-redirect-uri'] !== undefined && v['no-post-logout-redirect-uris']) throw new CliError('give --post-logout-redirect-uri or --no-post-logout-redirect-uris, not both');
      if (v['post-logout-redirect-uri'] !== undefined) changes.postLogoutRedirectUris = redirectUris(v['post-logout-redirect-uri'], 'post-logout-redirect-uri');
      if (v['no-post-logout-redirect-uris']) changes.postLogoutRedirectUris = [];
      if (v['backchannel-logout-uri'] !== undefined && v['no-backchannel-logout-uri']) throw new CliError('give --backchannel-logout-uri or --no-backchannel-logout-uri, not both');
      if (v['backchannel-logout-uri'] !== undefined) changes.backchannelLogoutUri = (await backchannelLogoutUri(v['backchannel-logout-uri'], ctx.config))!;
      if (v['no-backchannel-logout-uri']) changes.backchannelLogoutUri = null;
      if (v['backchannel-logout-session-required'] && v['no-backchannel-logout-session-required']) throw new CliError('give --backchannel-logout-session-required or --no-backchannel-logout-session-required, not both');
      if (v['backchannel-logout-session-required']) changes.backchannelLogoutSessionRequired = true;
      if (v['no-backchannel-logout-session-required'] || changes.backchannelLogoutUri === null) changes.backchannelLogoutSessionRequired = false;
      if (v['dpop-bound'] && v['no-dpop-bound']) throw new CliError('give --dpop-bound or --no-dpop-bound, not both');
      if (v['dpop-bound']) changes.dpopBound = true;
      if (v['no-dpop-bound']) changes.dpopBound = false;
      if (Object.keys(changes).length === 0) throw new CliError('nothing to change (see the usage: latchkey help)');
      // the same rules as create
      const redirects = changes.redirectUris ?? client.redirectUris;
      if (client.grantTypes.includes('authorization_code') && redirects.length === 0) throw new CliError('--redirect-uri is required for the authorization_code grant');
      const uri = changes.backchannelLogoutUri !== undefined ? changes.backchannelLogoutUri : client.backchannelLogoutUri;
      if (changes.backchannelLogoutSessionRequired && !uri) throw new CliError('--backchannel-logout-session-required goes with a --backchannel-logout-uri');
      const now = new Date(ctx.clock.now());
      const updated = await updateClient(ctx.db, id, changes, now);
      if (!updated) throw new CliError(`no such client: ${id}`);
      await ctx.notify(CLIENTS_CHANNEL, id);
      await recordAudit(ctx.db, now, { type: 'admin.client_updated', actor: 'cli', clientId: id, details: { changed: Object.keys(changes) } });
      return publicClient(updated);
    },
  },

  'logout-notices list': {
    usage: 'latchkey logout-notices list [--failed | --pending | --delivered] [--client <client_id>] [--limit N]',
    options: { failed: { type: 'boolean' }, pending: { type: 'boolean' }, delivered: { type: 'boolean' }, client: { type: 'string' }, limit: { type: 'string' } },
    needsDb: true,
    async run(c, v) {
      const ctx = need(c);
      const statuses = (['failed', 'pending', 'delivered'] as const).filter((s) => v[s]);
      if (statuses.length > 1) throw new CliError('give at most one of --failed, --pending, --delivered');
      const limitRaw = str(v.limit);
      if (limitRaw !== undefined && !/^\d{1,4}$/.test(limitRaw)) throw new CliError('--limit must be a number up to 9999');
      return listNotices(ctx.db, { status: statuses[0], clientId: str(v.client), limit: limitRaw ? Number(limitRaw) : 100 });
    },
  },

  'clients delete': {
    usage: 'latchkey clients delete <client_id>',
    options: {},
    positionals: 1,
    needsDb: true,
    async run(c, _v, p) {
      const ctx = need(c);
      const id = p[0];
      if (!id || !(await findClient(ctx.db, id))) throw new CliError(`no such client: ${id ?? ''}`);
      const revoked = await removeClient(ctx.db, id, new Date(ctx.clock.now()), ctx.config.accessTokenTtl);
      await ctx.notify(CLIENTS_CHANNEL, id);
      await recordAudit(ctx.db, new Date(ctx.clock.now()), { type: 'admin.client_deleted', actor: 'cli', clientId: id, details: { families_revoked: revoked } });
      return { client_id: id, deleted: true, families_revoked: revoked };
    },
  },
};

Object.assign(commands, keysCommands, planCommands);

const GROUPS = ['users', 'clients', 'kek', 'keys', 'sessions', 'logout-notices'];

/** Which command an argv names, and the rest of it. */
export function resolveCommand(argv: string[]): { name: string; command: Command; rest: string[] } | undefined {
  const two = `${argv[0]} ${argv[1]}`;
  if (commands[two]) return { name: two, command: commands[two], rest: argv.slice(2) };
  const one = argv[0];
  if (one && !GROUPS.includes(one) && commands[one]) return { name: one, command: commands[one], rest: argv.slice(1) };
  return undefined;
}

export function usage(): string {
  return ['usage:', ...Object.values(commands).map((c) => `  ${c.usage} [--json]`)].join('\n');
}

export function formatText(value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '(none)';
    return value.map((v) => formatText(v)).join('\n\n');
  }
  if (value && typeof value === 'object') {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : v === null ? '-' : String(v)}`)
      .join('\n');
  }
  return String(value);
}

/** Rows as an aligned table with a header: arrays joined by commas, null as '-'. */
export function formatTable(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cell = (v: unknown): string =>
    v === null || v === undefined ? '-' : Array.isArray(v) ? v.join(',') || '-' : typeof v === 'object' ? JSON.stringify(v) : String(v).replace(/[\r\n\t]/g, ' ');
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((v, i) => (i === cells.length - 1 ? v : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...body.map(line)].join('\n');
}

export interface ParsedCommand {
  name: string;
  command: Command;
  values: Values;
  positionals: string[];
  json: boolean;
  /** print a list command's rows as a table (the CLI sets it when stdout is a terminal) */
  table: boolean;
}

// Key ids (JWK thumbprints) and client ids are base64url and may begin with '-': such an argument
// is a positional when the command takes one and it is no option of the command's.
const ID_LIKE = /^-[A-Za-z0-9_-]{19,}$/;
function positionalsFirst(rest: string[], command: Command): string[] {
  if (!command.positionals) return rest;
  const options = command.options ?? {};
  const args: string[] = [];
  const ids: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') return [...args, '--', ...ids, ...rest.slice(i + 1)];
    const name = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    const option = name !== undefined ? options[name] : undefined;
    if (option) {
      // the value of a string option is its own, whatever it looks like
      if (option.type === 'string' && !a.includes('=') && i + 1 < rest.length) args.push(`${a}=${rest[++i]!}`);
      else args.push(a);
      continue;
    }
    if (ID_LIKE.test(a)) ids.push(a);
    else args.push(a);
  }
  return ids.length ? [...args, '--', ...ids] : args;
}

/** Parse argv strictly: an unknown command or option is a CliError. */
export function parseCommand(argv: string[]): ParsedCommand {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') throw new CliError(usage());
  // the same rule as the HTTP routes (src/http/plugins/input-sanity.ts): nothing Postgres cannot store
  const bad = argv.findIndex((a) => !isStorableText(a));
  if (bad >= 0) throw new CliError(`argument ${bad + 1} contains a NUL or another character that cannot be stored`);
  const found = resolveCommand(argv);
  if (!found) throw new CliError(`unknown command: ${argv.slice(0, 2).join(' ')} (run \`latchkey help\`)`);
  let parsed;
  try {
    parsed = parseArgs({ args: positionalsFirst(found.rest, found.command), options: { ...found.command.options, json: { type: 'boolean' }, table: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message.split('\n')[0]} (usage: ${found.command.usage})`);
  }
  const expected = found.command.positionals ?? 0;
  if (parsed.positionals.length !== expected) {
    throw new CliError(
      parsed.positionals.length > expected ? `unexpected argument: ${parsed.positionals[expected]} (usage: ${found.command.usage})` : `missing argument (usage: ${found.command.usage})`,
    );
  }
  const { json, table, ...values } = parsed.values as Values;
  return { name: found.name, command: found.command, values, positionals: parsed.positionals, json: Boolean(json), table: Boolean(table) };
}

export async function runParsed(p: ParsedCommand, ctx: CliContext | undefined, stdin: string | undefined): Promise<CliResult> {
  try {
    const out = await p.command.run(ctx, p.values, p.positionals, stdin);
    const text = p.json ? JSON.stringify(out) : p.table && p.command.columns && Array.isArray(out) ? formatTable(out as Array<Record<string, unknown>>, p.command.columns) : formatText(out);
    return { code: 0, stdout: `${text}\n`, stderr: '' };
  } catch (err) {
    if (err instanceof CliError || err instanceof ClientJwksError) return { code: 1, stdout: '', stderr: `error: ${err.message}\n` };
    return { code: 1, stdout: '', stderr: `error: ${(err as Error).message.split('\n')[0]}\n` };
  }
}

/** Parse and run; never throws. */
export async function runCommand(argv: string[], ctx: CliContext | undefined, stdin: string | undefined): Promise<CliResult> {
  let p: ParsedCommand;
  try {
    p = parseCommand(argv);
  } catch (err) {
    return { code: 2, stdout: '', stderr: `error: ${(err as Error).message}\n` };
  }
  return runParsed(p, ctx, stdin);
}
