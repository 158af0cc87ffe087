// Interactions: a pending authorization request while the user logs in and consents. Nothing is
// stored while it is pending: the request is sealed (src/tokens/sealed-state.ts) into the
// interaction URL, and the browser that started it holds its random id in a cookie. An anonymous
// /authorize therefore writes nothing (issue 17.6). The `interactions` table holds only what
// must be shared between replicas, each row until its expiry (then pruned):
// - the id of an interaction that finished (single use), written once the user has logged in;
// - pushed authorization requests (RFC 9126), written by an authenticated client, taken once.
import type { Kysely } from 'kysely';
import type { Database } from '../db/types.js';
import { digest, randomToken } from '../core/crypto.js';
import { seal, unseal } from '../core/sealing.js';
import type { AuthorizationRequest, RawParams } from '../core/model.js';

export interface Interaction {
  /** The random id (in the URL path and the browser's cookie). */
  id: string;
  idDigest: string;
  clientId: string;
  request: AuthorizationRequest;
  userId: string | null;
  sessionSid: string | null;
  loginDone: boolean;
  expiresAt: Date;
}

const PURPOSE = 'interaction';
/** The longest sealed interaction we hand out (it travels in a URL and a form field). */
export const MAX_SEALED_INTERACTION = 12_000;

export class InteractionTooLarge extends Error {
  override name = 'InteractionTooLarge';
}

interface SealedInteraction {
  id: string;
  r: AuthorizationRequest;
  u: string | null;
  sid: string | null;
  ld: boolean;
  exp: number;
}

export function newInteraction(input: { request: AuthorizationRequest; at: Date; ttl: number; userId?: string; sessionSid?: string }): Interaction {
  const id = randomToken(32);
  return {
    id,
    idDigest: digest(id),
    clientId: input.request.clientId,
    request: input.request,
    userId: input.userId ?? null,
    sessionSid: input.sessionSid ?? null,
    loginDone: false,
    expiresAt: new Date(input.at.getTime() + input.ttl * 1000),
  };
}

export function sealInteraction(secret: Buffer, i: Interaction): string {
  const payload: SealedInteraction = { id: i.id, r: i.request, u: i.userId, sid: i.sessionSid, ld: i.loginDone, exp: i.expiresAt.getTime() };
  const sealed = seal(secret, PURPOSE, payload);
  if (sealed.length > MAX_SEALED_INTERACTION) throw new InteractionTooLarge('the authorization request is too large');
  return sealed;
}

/** The interaction `id` sealed in `sealed`, if it is one of ours, for this id, and unexpired. */
export function openInteraction(secret: Buffer, id: string, sealed: string | undefined, at: Date): Interaction | undefined {
  if (!sealed) return undefined;
  const p = unseal<SealedInteraction>(secret, PURPOSE, sealed, MAX_SEALED_INTERACTION);
  if (!p || p.id !== id || p.exp <= at.getTime()) return undefined;
  return { id, idDigest: digest(id), clientId: p.r.clientId, request: p.r, userId: p.u, sessionSid: p.sid, loginDone: p.ld, expiresAt: new Date(p.exp) };
}

const usedKey = (idDigest: string) => digest(`used:${idDigest}`);

/** Consume the interaction (single use); false if it was already consumed. */
export async function consumeInteraction(db: Kysely<Database>, i: Interaction, at: Date): Promise<boolean> {
  const r = await db
    .insertInto('interactions')
    .values({ id_digest: usedKey(i.idDigest), client_id: i.clientId, params: '{}', user_id: i.userId, session_sid: i.sessionSid, created_at: at, expires_at: i.expiresAt })
    .onConflict((oc) => oc.column('id_digest').doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
}

export const PAR_URN_PREFIX = 'urn:ietf:params:oauth:request_uri:';
const parKey = (id: string) => digest(`par:${id}`);

/** Store a pushed authorization request (RFC 9126 §2.2); returns its request_uri. Only the digest of its id is stored. */
export async function storePushedRequest(db: Kysely<Database>, input: { clientId: string; params: RawParams; at: Date; ttl: number }): Promise<string> {
  const id = randomToken(32);
  await db
    .insertInto('interactions')
    .values({
      id_digest: parKey(id),
      client_id: input.clientId,
      params: JSON.stringify({ par: input.params }),
      created_at: input.at,
      expires_at: new Date(input.at.getTime() + input.ttl * 1000),
    })
    .execute();
  return `${PAR_URN_PREFIX}${id}`;
}

/** Take a pushed request of this client (single use: deleted as it is read); undefined if unknown, used, expired or another client's. */
export async function takePushedRequest(db: Kysely<Database>, requestUri: string, clientId: string, at: Date): Promise<RawParams | undefined> {
  if (!requestUri.startsWith(PAR_URN_PREFIX)) return undefined;
  const id = requestUri.slice(PAR_URN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]{20,100}$/.test(id)) return undefined;
  const row = await db.deleteFrom('interactions').where('id_digest', '=', parKey(id)).where('client_id', '=', clientId).returning(['params', 'expires_at']).executeTakeFirst();
  if (!row || row.expires_at.getTime() <= at.getTime()) return undefined;
  return (row.params as { par?: RawParams }).par;
}
