// grant_type → grant module.
import type { Grant } from './types.js';
import { authorizationCodeGrant } from './authorization-code.js';
import { clientCredentialsGrant } from './client-credentials.js';
import { refreshTokenGrant } from './refresh-token.js';

export const grants: ReadonlyMap<string, Grant> = new Map([authorizationCodeGrant, refreshTokenGrant, clientCredentialsGrant].map((g) => [g.grantType, g]));

export function registerGrant(g: Grant): void {
  (grants as Map<string, Grant>).set(g.grantType, g);
}
