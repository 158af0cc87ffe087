// The shape every grant module has: `{ grantType, handle }`, dispatched through the registry.
import type { Client } from '../core/model.js';
import type { Kysely } from 'kysely';
import type { Clock } from '../core/clock.js';
import type { Config } from '../core/config.js';
import type { DbHandle } from '../db/create-db.js';
import type { Database } from '../db/types.js';
import type { Keystore } from '../keys/keystore.js';

/** What a grant needs of the runtime (src/ops/runtime.ts has it all). */
export interface GrantRuntime {
  config: Config;
  db: Kysely<Database>;
  dbh: DbHandle;
  clock: Clock;
  keystore: Keystore;
  /** The key authorization codes are sealed under. */
  codeSecret: Buffer;
  /** The key refresh tokens are sealed under. */
  refreshSecret: Buffer;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer' | 'DPoP';
  expires_in: number;
  scope: string;
  refresh_token?: string;
  id_token?: string;
}

export interface GrantContext {
  rt: GrantRuntime;
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
