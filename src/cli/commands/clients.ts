// `latchkey clients …`
import * as clients from '../../ops/clients.js';
import { CLI, CliError, commaList, list, need, oneOf, str, type Command } from '../command.js';

export const clientCommands: Record<string, Command> = {
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
    run: (c, v) =>
      clients.createClient(need(c), CLI, {
        name: str(v.name),
        redirectUris: list(v['redirect-uri']),
        postLogoutRedirectUris: list(v['post-logout-redirect-uri']),
        isPublic: Boolean(v.public),
        grantTypes: commaList(v['grant-types']),
        scopes: str(v.scopes)?.split(/\s+/).filter(Boolean),
        audiences: commaList(v.audiences),
        resourceServers: list(v['resource-server']),
        firstParty: Boolean(v['first-party']),
        authMethod: str(v['auth-method']),
        idTokenAlg: str(v['id-token-alg']),
        jwksFile: str(v.jwks),
        pkceOptional: Boolean(v['pkce-optional']),
        admin: Boolean(v.admin),
        refreshWithoutOffline: Boolean(v['refresh-without-offline']),
        backchannelLogoutUri: str(v['backchannel-logout-uri']),
        backchannelLogoutSessionRequired: Boolean(v['backchannel-logout-session-required']),
        requirePar: Boolean(v['require-par']),
        dpopBound: Boolean(v['dpop-bound']),
      }),
  },

  'clients list': {
    usage: 'latchkey clients list',
    options: {},
    needsDb: true,
    columns: ['client_id', 'name', 'type', 'grant_types', 'scopes', 'redirect_uris', 'created_at'],
    run: (c) => clients.listClients(need(c)),
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
      // an unknown client is refused before its options are looked at
      await clients.getClient(ctx, id);
      const update: clients.ClientUpdate = {};
      if (v.name !== undefined) update.name = str(v.name)!;
      if (v['redirect-uri'] !== undefined) update.redirectUris = list(v['redirect-uri']);
      const postLogout = oneOf(v, ['post-logout-redirect-uri', 'no-post-logout-redirect-uris']);
      if (postLogout === 'post-logout-redirect-uri') update.postLogoutRedirectUris = list(v['post-logout-redirect-uri']);
      if (postLogout === 'no-post-logout-redirect-uris') update.postLogoutRedirectUris = [];
      const bcl = oneOf(v, ['backchannel-logout-uri', 'no-backchannel-logout-uri']);
      if (bcl === 'backchannel-logout-uri') update.backchannelLogoutUri = str(v['backchannel-logout-uri'])!;
      if (bcl === 'no-backchannel-logout-uri') update.backchannelLogoutUri = null;
      const sessionRequired = oneOf(v, ['backchannel-logout-session-required', 'no-backchannel-logout-session-required']);
      if (sessionRequired) update.backchannelLogoutSessionRequired = sessionRequired === 'backchannel-logout-session-required';
      const dpop = oneOf(v, ['dpop-bound', 'no-dpop-bound']);
      if (dpop) update.dpopBound = dpop === 'dpop-bound';
      if (Object.keys(update).length === 0) throw new CliError('nothing to change (see the usage: latchkey help)');
      return clients.updateClient(ctx, CLI, id, update);
    },
  },

  'clients delete': {
    usage: 'latchkey clients delete <client_id>',
    options: {},
    positionals: 1,
    needsDb: true,
    run: (c, _v, p) => clients.deleteClient(need(c), CLI, p[0] ?? ''),
  },
};
