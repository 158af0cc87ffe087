// The peer: node-oidc-provider (the certified Node OP) configured to do what Latchkey does, so each
// workload sends the same requests to both. Run as its own process by bench/run.ts:
//   PEER_CONFIG='{"port":…,"issuer":…,…}' node --import tsx bench/peer.ts
// What it is configured with, and why:
// - its in-memory adapter (the default; an LRU of 1,000 recent + 1,000 stale entries);
// - ES256 (P-256) signing key first in its keystore, plus RS256 (its default for ID tokens); ID tokens
//   are signed with cfg.idTokenAlg, which bench/run.ts sets to the alg Latchkey's ID tokens carry;
// - resourceIndicators: https://api.example is a resource server whose access tokens are RFC 9068
//   JWTs signed ES256 (accessTokenFormat "jwt"), scope api:read, 900 s, like Latchkey's;
//   client_credentials asks for it with `resource`, the web client gets it by default and keeps it on
//   refresh (useGrantedResource), the ui client gets none (its opaque token is the one /userinfo takes);
// - clientCredentials, introspection, revocation enabled; rotateRefreshToken always (Latchkey rotates
//   on every use; the peer's default only rotates for public clients), issueRefreshToken whenever the
//   client may use the refresh_token grant (its default also wants offline_access + prompt=consent);
// - devInteractions for login (any password, no hashing), findAccount accepting the benched user,
//   and loadExistingGrant granting first-party clients without a consent screen (Latchkey skips
//   consent for first-party clients too);
// - DPoP (RFC 9449; node-oidc-provider 9 calls the feature `features.dPoP`, on by default in 9): enabled
//   explicitly; nonces off (its default: it requires them only with a nonceSecret and a requireNonce
//   that says so). With cfg.dpopNonce (the second peer the DPoP workload starts, bench/dpop.ts): a
//   32-byte nonceSecret and requireNonce → true, i.e. nonces required at /token, as Latchkey's default;
// - routes renamed to Latchkey's paths (/authorize, /userinfo, /introspect, /revoke, JWKS).
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { Server } from 'node:http';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export interface PeerConfig {
  port: number;
  issuer: string;
  redirectUri: string;
  resource: string;
  user: { email: string; name: string };
  clients: { cc: { id: string; secret: string }; web: { id: string; secret: string }; ui: { id: string; secret: string } };
  /** ID tokens' alg: bench/run.ts passes the one Latchkey uses, so both do the same signing work. */
  idTokenAlg: 'ES256' | 'RS256';
  /** DPoP nonces required (features.dPoP.nonceSecret + requireNonce); off by default, as in node-oidc-provider. */
  dpopNonce?: boolean;
}

const DAY = 86400;

export async function createPeer(cfg: PeerConfig): Promise<Provider> {
  const es = await generateKeyPair('ES256', { extractable: true });
  const rs = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const esJwk = { ...(await exportJWK(es.privateKey)), alg: 'ES256', use: 'sig', kid: 'peer-es256' };
  const rsJwk = { ...(await exportJWK(rs.privateKey)), alg: 'RS256', use: 'sig', kid: 'peer-rs256' };

  const webClient = (c: { id: string; secret: string }) => ({
    client_id: c.id,
    client_secret: c.secret,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [cfg.redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: cfg.idTokenAlg,
    scope: 'openid profile email offline_access api:read',
  });
  const firstParty = new Set([cfg.clients.web.id, cfg.clients.ui.id]);

  const provider = new Provider(cfg.issuer, {
    clients: [
      {
        client_id: cfg.clients.cc.id,
        client_secret: cfg.clients.cc.secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: 'api:read',
      },
      webClient(cfg.clients.web),
      webClient(cfg.clients.ui),
    ],
    jwks: { keys: [esJwk, rsJwk] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    pkce: { required: () => true },
    ttl: {
      AccessToken: 900,
      ClientCredentials: 900,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: DAY,
      Grant: 14 * DAY,
      RefreshToken: 14 * DAY,
    },
    routes: {
      authorization: '/authorize',
      userinfo: '/userinfo',
      introspection: '/introspect',
      revocation: '/revoke',
      jwks: '/.well-known/jwks.json',
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
      dPoP: { enabled: true, ...(cfg.dpopNonce ? { nonceSecret: crypto.randomBytes(32), requireNonce: () => true } : {}) },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, client: { clientId: string }, oneOf?: string | string[]) => {
          if (oneOf) return oneOf;
          return client.clientId === cfg.clients.web.id ? cfg.resource : undefined;
        },
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== cfg.resource) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'api:read',
            audience: cfg.resource,
            accessTokenTTL: 900,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(g: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    loadExistingGrant: async (ctx: PeerCtx) => {
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      if (!firstParty.has(ctx.oidc.client.clientId) || !ctx.oidc.session.accountId) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email offline_access');
      if (ctx.oidc.client.clientId === cfg.clients.web.id) grant.addResourceScope(cfg.resource, 'api:read');
      await grant.save();
      return grant;
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      // devInteractions logs in whatever was typed as "login": accept only the benched user
      if (sub !== cfg.user.email) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, email: cfg.user.email, email_verified: true, name: cfg.user.name }),
      };
    },
    clientBasedCORS: () => false,
    renderError: async (ctx: { type: string; body: unknown }, out: Record<string, string>) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  return provider;
}

interface PeerGrant {
  addOIDCScope(s: string): void;
  addResourceScope(r: string, s: string): void;
  save(): Promise<string>;
}
interface PeerCtx {
  oidc: {
    result?: { consent?: { grantId?: string } };
    session: { accountId?: string; grantIdFor(clientId: string): string | undefined };
    client: { clientId: string };
    provider: { Grant: { new (p: { clientId: string; accountId: string }): PeerGrant; find(id: string): Promise<PeerGrant | undefined> } };
  };
}

async function main(): Promise<void> {
  const raw = process.env.PEER_CONFIG;
  if (!raw) throw new Error('PEER_CONFIG (JSON) is required');
  const cfg = JSON.parse(raw) as PeerConfig;
  const provider = await createPeer(cfg);
  provider.on('server_error', (_ctx: unknown, err: Error) => process.stderr.write(`peer server_error: ${err.stack ?? err.message}\n`));
  const server: Server = provider.listen(cfg.port, '127.0.0.1');
  server.keepAliveTimeout = 65000;
  const close = () => server.close(() => process.exit(0));
  process.on('SIGTERM', close);
  process.on('SIGINT', close);
  // the parent going away (crash, SIGKILL) must not leave the peer behind
  process.on('disconnect', () => process.exit(0));
  server.on('listening', () => process.stdout.write(`peer listening on ${cfg.issuer}\n`));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`peer: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
