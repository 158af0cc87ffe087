// The client-authentication step of /token, /revoke and /introspect, with failure rate limits
// per client and per IP.
import type { FastifyRequest } from 'fastify';
import { InvalidClient, InvalidRequest } from '../core/errors.js';
import { extractClientCredentials, verifyClient } from '../protocol/client-auth.js';
import type { Client } from '../core/model.js';
import type { Services } from './services.js';

export type FormParams = Record<string, string | string[] | undefined>;

/** Single-valued parameters; a repeated one (other than `resource`) is invalid_request. */
export function singleParams(body: FormParams): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === 'resource') continue;
    if (Array.isArray(v)) throw new InvalidRequest(`repeated parameter: ${k}`);
    // RFC 6749 §3.1: parameters sent without a value are treated as omitted
    if (v !== '' && v !== undefined) out[k] = v;
  }
  return out;
}

export function resourceParams(body: FormParams): string[] {
  const r = body.resource;
  const list = r === undefined ? [] : Array.isArray(r) ? r : [r];
  return [...new Set(list.filter((x) => x !== ''))];
}

export async function authenticateClient(svc: Services, req: FastifyRequest, params: Record<string, string | undefined>): Promise<Client> {
  const cred = extractClientCredentials(req.headers.authorization, params);
  // refused once the failures reached the limit; counted only when it fails (see failure-limits.ts:
  // in-flight successes must not count, or a busy client's concurrent requests are refused)
  const gate = await svc.limits.clientAuth.gate(req, cred.clientId);
  let client: Client | undefined;
  try {
    client = cred.clientId.length <= 200 ? await svc.clients.get(cred.clientId) : undefined;
    return await verifyClient(client, cred, { db: svc.rt.db, issuer: svc.config.issuer, now: svc.now(), leeway: svc.config.clockLeewaySeconds });
  } catch (err) {
    if (!(err instanceof InvalidClient)) throw err;
    await gate.failed();
    await svc.audit(req, { type: 'client_auth.failure', clientId: client ? client.clientId : null, details: { method: cred.method, reason: err.description } });
    throw err;
  }
}
