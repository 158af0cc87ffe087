// RFC 8707 resource → access-token audience, and the userinfo audience (RFC 9068 §3).
import type { Client } from '../core/model.js';
import { InvalidTarget } from '../core/errors.js';

export const userinfoAudience = (issuer: string): string => `${issuer}/userinfo`;

/**
 * The audiences of an access token: the requested resources (each allowed for the client, and
 * within `authorized` when the grant fixed them earlier), else the client's default audience;
 * plus the userinfo endpoint when `openid` was granted.
 */
export function resolveAudience(client: Client, requested: string[], authorized: string[] | undefined, openid: boolean, issuer: string): string[] {
  for (const r of requested) {
    if (!client.audiences.includes(r)) throw new InvalidTarget(`resource not allowed for this client: ${r}`);
    if (authorized && authorized.length > 0 && !authorized.includes(r)) throw new InvalidTarget(`resource was not authorized: ${r}`);
  }
  let aud = requested.length > 0 ? requested : authorized && authorized.length > 0 ? authorized : client.audiences.slice(0, 1);
  if (openid) aud = [...aud, userinfoAudience(issuer)];
  aud = [...new Set(aud)];
  if (aud.length === 0) throw new InvalidTarget('no audience: register one for the client with --audiences, or ask for openid');
  return aud;
}
