// OpenID Connect Discovery 1.0 and RFC 8414 metadata: exactly what is implemented, built from the
// configured issuer (never the Host header), serialized once.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../core/config.js';
import { DISPLAY_VALUES, RESPONSE_MODES, UI_LOCALES } from '../../protocol/authorization-request.js';
import { REQUEST_OBJECT_ALGS } from '../../protocol/request-object.js';
import { SUPPORTED_ACR_VALUES } from '../../core/acr.js';
import { DPOP_ALGS } from '../../protocol/dpop.js';

export interface Capabilities {
  authorization: boolean;
  token: boolean;
  userinfo: boolean;
  revocation: boolean;
  introspection: boolean;
  endSession: boolean;
  statusLists: boolean;
  backchannelLogout: boolean;
  /** RFC 9126 pushed authorization requests. */
  par: boolean;
  idTokenAlgs: string[];
  scopes: string[];
  claims: string[];
  grantTypes: string[];
  tokenAuthMethods: string[];
  tokenAuthSigningAlgs: string[];
}

export function buildMetadata(config: Config, caps: Capabilities): Record<string, unknown> {
  const i = config.issuer;
  const m: Record<string, unknown> = { issuer: i };
  if (caps.authorization) m.authorization_endpoint = `${i}/authorize`;
  if (caps.token) m.token_endpoint = `${i}/token`;
  if (caps.userinfo) m.userinfo_endpoint = `${i}/userinfo`;
  m.jwks_uri = `${i}/.well-known/jwks.json`;
  if (caps.revocation) m.revocation_endpoint = `${i}/revoke`;
  if (caps.introspection) m.introspection_endpoint = `${i}/introspect`;
  if (caps.endSession) m.end_session_endpoint = `${i}/logout`;
  // draft-ietf-oauth-status-list §9: where the current list URIs are listed
  if (caps.statusLists) m.status_list_aggregation_endpoint = `${i}/statuslists`;
  if (caps.backchannelLogout) {
    // OIDC Back-Channel Logout 1.0 §2.1: logout tokens carry sid when the session is known
    m.backchannel_logout_supported = true;
    m.backchannel_logout_session_supported = true;
  }
  if (caps.authorization && caps.par) {
    m.pushed_authorization_request_endpoint = `${i}/par`;
    // per client (clients create --require-par), not for every client
    m.require_pushed_authorization_requests = false;
  }
  m.scopes_supported = caps.scopes;
  m.response_types_supported = caps.authorization ? ['code'] : [];
  if (caps.authorization) {
    m.response_modes_supported = RESPONSE_MODES;
    m.code_challenge_methods_supported = ['S256'];
    m.authorization_response_iss_parameter_supported = true;
    m.prompt_values_supported = ['none', 'login', 'consent'];
  }
  if (caps.grantTypes.length) m.grant_types_supported = caps.grantTypes;
  m.subject_types_supported = ['public'];
  m.id_token_signing_alg_values_supported = caps.idTokenAlgs;
  if (caps.token) {
    m.token_endpoint_auth_methods_supported = caps.tokenAuthMethods;
    if (caps.tokenAuthMethods.includes('private_key_jwt')) m.token_endpoint_auth_signing_alg_values_supported = caps.tokenAuthSigningAlgs;
  }
  // RFC 9449 §5.1: DPoP at /token (and /par), and at /userinfo and the admin API
  if (caps.token) m.dpop_signing_alg_values_supported = DPOP_ALGS;
  if (caps.revocation) m.revocation_endpoint_auth_methods_supported = caps.tokenAuthMethods;
  if (caps.introspection) m.introspection_endpoint_auth_methods_supported = caps.tokenAuthMethods.filter((x) => x !== 'none');
  if (caps.claims.length) m.claims_supported = caps.claims;
  if (caps.authorization) {
    m.acr_values_supported = SUPPORTED_ACR_VALUES;
    m.display_values_supported = DISPLAY_VALUES;
    m.ui_locales_supported = UI_LOCALES;
  }
  m.claims_parameter_supported = caps.authorization;
  m.request_parameter_supported = caps.authorization;
  if (caps.authorization) m.request_object_signing_alg_values_supported = REQUEST_OBJECT_ALGS;
  // request_uri only as the URNs of our PAR endpoint: request objects are never fetched by reference
  m.request_uri_parameter_supported = false;
  if (caps.authorization) m.resource_indicators_supported = true;
  return m;
}

export function registerDiscovery(app: FastifyInstance, config: Config, caps: Capabilities): void {
  const body = JSON.stringify(buildMetadata(config, caps));
  const handler = async (_req: unknown, reply: import('fastify').FastifyReply) => {
    reply.header('cache-control', 'public, max-age=300').type('application/json; charset=utf-8');
    return reply.send(body);
  };
  // fixed for the life of the process: one snapshot each (src/http/static-responses.ts)
  const staticVersion = () => '';
  app.get('/.well-known/openid-configuration', { config: { staticVersion } }, handler);
  app.get('/.well-known/oauth-authorization-server', { config: { staticVersion } }, handler);
}
