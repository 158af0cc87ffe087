// Token Status List (draft-ietf-oauth-status-list): the list's encoding, and a cache that fetches
// each list once per `ttl`, verifies it as a JWT from the issuer, and fails closed `maxStaleness`
// seconds after the last good copy stopped being fresh.
import { inflateSync } from 'node:zlib';
import { base64url, jwtVerify, type JWTVerifyGetKey } from 'jose';

export type StatusBits = 1 | 2 | 4 | 8;

export interface StatusList {
  bits: StatusBits;
  /** the inflated bytes: entry i is bits [i·bits, (i+1)·bits) counted from the least significant bit of byte 0 */
  bytes: Uint8Array;
}

/** Status values of the draft's registry (§7.1). Anything but VALID is refused. */
export const STATUS_VALID = 0;
export const STATUS_INVALID = 1;
export const STATUS_SUSPENDED = 2;

/** Decode a `status_list` claim: `{bits, lst}`, lst = base64url(ZLIB(bytes)) (draft §4.1). */
export function decodeStatusList(claim: unknown, maxBytes: number): StatusList {
  if (!claim || typeof claim !== 'object') throw new Error('the status_list claim is missing');
  const { bits, lst } = claim as { bits?: unknown; lst?: unknown };
  if (bits !== 1 && bits !== 2 && bits !== 4 && bits !== 8) throw new Error('status_list.bits must be 1, 2, 4 or 8');
  if (typeof lst !== 'string' || lst === '') throw new Error('status_list.lst must be a non-empty string');
  // maxOutputLength: a few hundred compressed bytes must not inflate into gigabytes
  const bytes = inflateSync(base64url.decode(lst), { maxOutputLength: maxBytes });
  return { bits, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** The status at `idx`, or undefined when the list has no such entry. */
export function statusAt(list: StatusList, idx: number): number | undefined {
  if (!Number.isSafeInteger(idx) || idx < 0 || idx >= (list.bytes.length * 8) / list.bits) return undefined;
  const bit = idx * list.bits;
  return (list.bytes[bit >> 3]! >> (bit & 7)) & ((1 << list.bits) - 1);
}

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  /** status_list.fetch_failed | status_list.stale | status_list.unavailable | status_list.recovered | keys.unavailable */
  event: string;
  message: string;
  uri?: string;
  error?: string;
  /** dpop.replay_key_quota: the thumbprint of the proof key (public, no secret) */
  jkt?: string;
}
export type LogFn = (entry: LogEntry) => void;

export interface StatusListCacheOptions {
  issuer: string;
  algorithms: string[];
  /** seconds */
  clockTolerance: number;
  /** seconds */
  maxStaleness: number;
  /** seconds, when a list carries no ttl */
  defaultTtl: number;
  /** milliseconds */
  fetchTimeout: number;
  /** milliseconds between two attempts while a list cannot be fetched */
  retryInterval: number;
  maxResponseBytes: number;
  maxListBytes: number;
  keys: JWTVerifyGetKey;
  fetch: typeof fetch;
  now: () => number;
  log: LogFn;
}

interface Held {
  list: StatusList;
  iat: number;
  exp: number;
  ttl: number;
  etag?: string;
  /** ms: until then the list is answered from as it is */
  freshUntil: number;
  /** ms: until then it stands in for a list that cannot be fetched; after, tokens are refused */
  usableUntil: number;
}

interface Entry {
  held?: Held;
  inflight?: Promise<void>;
  /** ms: no new attempt before (after a failure) */
  retryAt: number;
  failing: boolean;
  staleLogged: boolean;
  refusedLogged: boolean;
}

export class StatusUnavailable extends Error {}

export class StatusListCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly o: StatusListCacheOptions) {}

  /** The list at `uri`, fresh, or within `maxStaleness` of fresh while it cannot be fetched; else StatusUnavailable. */
  async get(uri: string): Promise<StatusList> {
    let e = this.entries.get(uri);
    if (!e) this.entries.set(uri, (e = { retryAt: 0, failing: false, staleLogged: false, refusedLogged: false }));
    const t = this.o.now();
    if (e.held && t < e.held.freshUntil) return e.held.list;
    // one fetch per list at a time, however many requests wait for it
    if (!e.inflight && t >= e.retryAt) {
      const entry = e;
      entry.inflight = this.refresh(uri, entry).finally(() => {
        entry.inflight = undefined;
      });
    }
    // while a list is known to be failing, requests are answered from the stale copy without waiting
    // for each retry; otherwise (the normal refresh every ttl) they wait for the fresh one
    if (e.inflight && !(e.failing && e.held && t < e.held.usableUntil)) await e.inflight;
    const now = this.o.now();
    const held = e.held;
    if (held && now < held.freshUntil) return held.list;
    if (held && now < held.usableUntil) {
      if (!e.staleLogged) {
        e.staleLogged = true;
        this.o.log({ level: 'warn', event: 'status_list.stale', uri, message: `the status list ${uri} cannot be refreshed: answering from the copy that stopped being fresh at ${new Date(held.freshUntil).toISOString()}, until ${new Date(held.usableUntil).toISOString()}` });
      }
      return held.list;
    }
    if (!e.refusedLogged) {
      e.refusedLogged = true;
      this.o.log({
        level: 'error',
        event: 'status_list.unavailable',
        uri,
        message: held
          ? `the status list ${uri} has been unavailable for more than maxStaleness (${this.o.maxStaleness} s) past its ttl: refusing the tokens that reference it`
          : `the status list ${uri} could not be fetched: refusing the tokens that reference it`,
      });
    }
    throw new StatusUnavailable(`the status list ${uri} is unavailable`);
  }

  private async refresh(uri: string, e: Entry): Promise<void> {
    const started = this.o.now();
    try {
      const headers: Record<string, string> = { accept: 'application/statuslist+jwt' };
      if (e.held?.etag) headers['if-none-match'] = e.held.etag;
      // redirect: 'error': the list is fetched from the issuer's origin and nowhere else
      const res = await this.o.fetch(uri, { headers, redirect: 'error', signal: AbortSignal.timeout(this.o.fetchTimeout) });
      if (res.status === 304 && e.held) {
        await res.body?.cancel();
        // the copy we hold is current again (RFC 9110 §15.4.5), within its own exp
        this.hold(e, e.held, started);
        this.recovered(uri, e);
        return;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const jwt = await readText(res, this.o.maxResponseBytes);
      const { payload } = await jwtVerify(jwt, this.o.keys, {
        issuer: this.o.issuer,
        subject: uri,
        typ: 'statuslist+jwt',
        algorithms: this.o.algorithms,
        clockTolerance: this.o.clockTolerance,
        currentDate: new Date(started),
        requiredClaims: ['iat', 'exp', 'sub'],
      });
      const ttl = payload.ttl === undefined ? this.o.defaultTtl : payload.ttl;
      if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) throw new Error('ttl must be a positive number');
      // a copy older than the one held (a lagging cache in front of the issuer) must not undo revocations
      if (e.held && payload.iat! < e.held.iat) throw new Error('the list is older than the copy already held');
      const list = decodeStatusList(payload.status_list, this.o.maxListBytes);
      this.hold(e, { list, iat: payload.iat!, exp: payload.exp!, ttl, etag: res.headers.get('etag') ?? undefined, freshUntil: 0, usableUntil: 0 }, started);
      this.recovered(uri, e);
    } catch (err) {
      e.failing = true;
      e.retryAt = this.o.now() + this.o.retryInterval;
      this.o.log({ level: 'warn', event: 'status_list.fetch_failed', uri, message: `the status list ${uri} could not be fetched or verified`, error: describe(err) });
    }
  }

  // freshness counts from when the fetch began; the issuer's exp bounds both fresh and stale use
  private hold(e: Entry, held: Held, fetchedAt: number): void {
    const expMs = held.exp * 1000;
    held.freshUntil = Math.min(fetchedAt + held.ttl * 1000, expMs);
    held.usableUntil = Math.min(held.freshUntil + this.o.maxStaleness * 1000, expMs + this.o.clockTolerance * 1000);
    e.held = held;
  }

  private recovered(uri: string, e: Entry): void {
    if (e.failing) this.o.log({ level: 'info', event: 'status_list.recovered', uri, message: `the status list ${uri} is fresh again` });
    e.failing = false;
    e.retryAt = 0;
    e.staleLogged = false;
    e.refusedLogged = false;
  }
}

async function readText(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    n += chunk.byteLength;
    if (n > max) throw new Error(`the response is larger than ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
  const detail = e?.cause?.code ?? e?.cause?.message;
  const cause = typeof detail === 'string' ? ` (${detail})` : '';
  return `${e?.code ?? e?.name ?? 'Error'}: ${e?.message ?? String(err)}${cause}`;
}
