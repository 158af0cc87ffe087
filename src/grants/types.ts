// The shape every grant module has: `{ grantType, handle }`, dispatched through the registry.
import type { Client } from '../store/clients.js';
import type { Runtime } from '../runtime.js';

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  refresh_token?: string;
  id_token?: string;
}

export interface GrantContext {
  rt: Runtime;
  client: Client;
  /** Single-valued parameters of the request. */
  params: Record<string, string | undefined>;
  /** RFC 8707 resource parameters (may repeat). */
  resources: string[];
  ip: string;
  /** The request's DPoP proof (RFC 9449), checked and recorded: its key's thumbprint. */
  dpop?: { jkt: string };
  userAgent?: string;
  /** Bring this replica's denylist view up to date after a revocation committed. */
  afterRevocation(): Promise<void>;
  /** Record a security event (never throws). */
  audit(e: { type: string; userId?: string | null; clientId?: string | null; details?: Record<string, unknown> }): Promise<void>;
}

export interface Grant {
  grantType: string;
  handle(ctx: GrantContext): Promise<TokenResponse>;
}
