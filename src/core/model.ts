// The domain types every layer speaks: a client, an authorization request, a claims request.
// Types only; the store (src/store/) reads and writes them, the protocol core (src/protocol/) checks them.

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
  /** The status-list index of the client's current client_credentials tokens. */
  ccStatusIdx: string;
  /** OIDC Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed; null = none. */
  backchannelLogoutUri: string | null;
  /** The logout token must carry `sid` (§2.2 backchannel_logout_session_required). */
  backchannelLogoutSessionRequired: boolean;
  /** RFC 9126 §6: authorization requests only through the PAR endpoint. */
  requirePar: boolean;
  /** The audiences this client serves as a resource server: it may introspect their tokens. */
  resourceServers: string[];
  /** RFC 9449 §5.2 dpop_bound_access_tokens: token requests without a DPoP proof are refused. */
  dpopBound: boolean;
}

export interface ClaimSpec {
  essential?: boolean;
  value?: string;
  values?: string[];
}

export interface ClaimsRequest {
  userinfo?: Record<string, ClaimSpec | null>;
  id_token?: Record<string, ClaimSpec | null>;
}

export type ResponseMode = 'query' | 'form_post';

export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  scopes: string[];
  state?: string;
  nonce?: string;
  codeChallenge?: string;
  prompt: string[];
  maxAge?: number;
  loginHint?: string;
  resources: string[];
  responseMode: ResponseMode;
  /** OIDC Core §5.5 */
  claims?: ClaimsRequest;
  acrValues: string[];
  /** The first of ui_locales we have a translation for (OIDC Core §3.1.2.1); 'en' otherwise. */
  uiLocale: string;
  /** RFC 9449 §10: the code is bound to this DPoP key (JWK SHA-256 thumbprint). */
  dpopJkt?: string;
}

export type RawParams = Record<string, string | string[] | undefined>;
