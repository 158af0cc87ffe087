// Token Status List (draft-ietf-oauth-status-list): offline resource servers learn of revocations
// within seconds instead of the access-token lifetime. Every access token carries a status index
// (src/tokens/access-token.ts); a revocation writes that index into the denylist row it adds, in
// the same transaction; each replica publishes the denylist's indexes as signed, compressed
// bit lists, rebuilt at most once a second after a NOTIFY, and re-signed before they age.
import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { revokedStatusIndexes, statusIndexRange } from '../store/denylist-reads.js';
import { StatusList } from '@sd-jwt/jwt-status-list';
import type { Clock } from '../core/clock.js';
import type { SigningAlg } from '../core/config.js';
import type { Database } from '../db/types.js';
import type { DbHandle } from '../db/create-db.js';
import type { Keystore } from '../keys/keystore.js';
import { DENYLIST_CHANNEL, DENYLIST_RETENTION_SECONDS } from '../core/channels.js';
import { signJwt } from '../core/crypto.js';

/** Entries per list: 2^20 one-bit statuses, 128 KiB before compression. */
export const STATUS_LIST_SIZE = 1 << 20;
export const STATUS_LIST_TYP = 'statuslist+jwt';
export const STATUS_LIST_MEDIA_TYPE = 'application/statuslist+jwt';
export const STATUS_INVALID = 1;
/** How long past a list's freshness a resource server may still use it (the verifier's default maxStaleness). */
export const STALENESS_ALLOWANCE_SECONDS = 60;

export const statusListUri = (issuer: string, listId: number): string => `${issuer}/statuslists/${listId}`;

/** The `status` claim of a token with this (global) status index. */
export function statusClaim(issuer: string, statusIdx: number | string): { status_list: { idx: number; uri: string } } {
  const n = Number(statusIdx);
  return { status_list: { idx: n % STATUS_LIST_SIZE, uri: statusListUri(issuer, Math.floor(n / STATUS_LIST_SIZE)) } };
}

/** The global index a verified token's status claim refers to, when it is one of ours. */
export function statusIndexOf(issuer: string, claim: unknown): number | undefined {
  const ref = (claim as { status_list?: { idx?: unknown; uri?: unknown } } | undefined)?.status_list;
  if (!ref || typeof ref.idx !== 'number' || typeof ref.uri !== 'string') return undefined;
  const prefix = `${issuer}/statuslists/`;
  if (!ref.uri.startsWith(prefix)) return undefined;
  const id = ref.uri.slice(prefix.length);
  if (!/^\d{1,9}$/.test(id) || !Number.isInteger(ref.idx) || ref.idx < 0 || ref.idx >= STATUS_LIST_SIZE) return undefined;
  return Number(id) * STATUS_LIST_SIZE + ref.idx;
}

export interface SignedStatusList {
  jwt: string;
  etag: string;
  kid: string;
  /** When it was signed (ms). */
  signedAt: number;
}

export class StatusListUnavailable extends Error {}

export interface StatusListsOptions {
  issuer: string;
  alg: SigningAlg;
  /** STATUS_LIST_TTL: how long a resource server may cache a list (seconds). */
  ttl: number;
  /** How often the lists are looked at (ms); a change is published within this. */
  tickMs?: number;
  onError?: (err: Error) => void;
}

export class StatusLists {
  /** The compressed bits of each current list. */
  private bits = new Map<number, { lst: string; digest: string }>();
  private signed = new Map<number, SignedStatusList>();
  private minList = 0;
  private maxList = -1;
  private dirty = true;
  /** When the bits were last read from the database (clock ms); 0 = never. */
  private readAt = 0;
  private bitsBuiltAt = 0;
  private refreshing: Promise<void> | undefined;
  private lastRangeRead = 0;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly keystore: Keystore,
    private readonly clock: Clock,
    private readonly opts: StatusListsOptions,
  ) {}

  async start(dbh: DbHandle): Promise<void> {
    const changed = () => {
      this.dirty = true;
    };
    this.unlisten = await dbh.listen(DENYLIST_CHANNEL, changed, changed, changed);
    await this.refresh().catch((e: Error) => this.opts.onError?.(e));
    this.timer = setInterval(() => void this.tick(), this.opts.tickMs ?? 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.unlisten?.();
  }

  /** The ids of the lists that live tokens may refer to. */
  listIds(): number[] {
    const ids: number[] = [];
    for (let i = this.minList; i <= this.maxList; i++) ids.push(i);
    return ids;
  }

  /**
   * The signed list, from memory. A list id beyond the last one known (a token from a new list
   * was just issued, maybe on another replica) triggers one coalesced read. Undefined: no such
   * list. Throws StatusListUnavailable when the bits are older than the TTL (the database is away):
   * a stale list is never served as fresh.
   */
  async get(listId: number): Promise<SignedStatusList | undefined> {
    if (listId > this.maxList && this.clock.now() - this.lastRangeRead >= 1000) await this.refresh(true).catch((e: Error) => this.opts.onError?.(e));
    if (listId < this.minList || listId > this.maxList) return undefined;
    const stale = () => this.clock.now() - this.readAt > this.opts.ttl * 1000;
    // bits older than the TTL are read again first (the clock jumped, or the database was away)
    if (stale()) await this.refresh().catch((e: Error) => this.opts.onError?.(e));
    if (stale()) throw new StatusListUnavailable('the status lists could not be read from the database');
    let s = this.signed.get(listId);
    // the big red button: a list signed by a key that is no longer the active one is signed again
    if (!s || this.keystore.signingKey(this.opts.alg).kid !== s.kid) s = await this.sign(listId);
    return s;
  }

  private async tick(): Promise<void> {
    const now = this.clock.now();
    // re-read when told of a change, and in any case every half TTL (a missed notification, or a
    // signed list growing old)
    if (this.dirty || now - this.bitsBuiltAt >= (this.opts.ttl * 1000) / 2) await this.refresh().catch((e: Error) => this.opts.onError?.(e));
  }

  /** Read the range and the revoked indexes, rebuild the bits, sign every list; coalesced. */
  refresh(force = false): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      try {
        if (force) this.dirty = true;
        await this.rebuild();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private async rebuild(): Promise<void> {
    const now = this.clock.now();
    // a change notified while we read is read by the next tick
    this.dirty = false;
    try {
      const { last, min } = await statusIndexRange(this.db);
      const revoked = await revokedStatusIndexes(this.db, new Date(now - DENYLIST_RETENTION_SECONDS * 1000));
      const maxList = last < 0 ? -1 : Math.floor(last / STATUS_LIST_SIZE);
      const minList = Math.min(Math.floor(Math.max(min, 0) / STATUS_LIST_SIZE), Math.max(maxList, 0));
      const byList = new Map<number, number[]>();
      for (const n of revoked) {
        const id = Math.floor(n / STATUS_LIST_SIZE);
        if (!byList.has(id)) byList.set(id, []);
        byList.get(id)!.push(n % STATUS_LIST_SIZE);
      }
      // a list is compressed again only when its set of revoked indexes changed
      const bits = new Map<number, { lst: string; digest: string }>();
      for (let id = minList; id <= maxList; id++) {
        const invalid = (byList.get(id) ?? []).sort((a, b) => a - b);
        const digest = crypto.createHash('sha256').update(invalid.join(',')).digest('base64url');
        const before = this.bits.get(id);
        bits.set(id, before?.digest === digest ? before : { lst: encodeList(invalid), digest });
      }
      this.bits = bits;
      this.minList = minList;
      this.maxList = maxList;
      this.readAt = now;
      this.lastRangeRead = now;
      this.bitsBuiltAt = now;
    } catch (err) {
      this.dirty = true;
      this.lastRangeRead = now;
      throw err;
    }
    const signed = new Map<number, SignedStatusList>();
    for (const id of this.bits.keys()) signed.set(id, await this.signBits(id));
    this.signed = signed;
  }

  private async sign(listId: number): Promise<SignedStatusList> {
    const s = await this.signBits(listId);
    this.signed.set(listId, s);
    return s;
  }

  private async signBits(listId: number): Promise<SignedStatusList> {
    const key = this.keystore.signingKey(this.opts.alg);
    const now = this.clock.now();
    const iat = Math.floor(now / 1000);
    const { ttl } = this.opts;
    const claims = {
      iss: this.opts.issuer,
      sub: statusListUri(this.opts.issuer, listId),
      iat,
      // a CDN may keep a copy for one TTL, and a resource server may keep answering from it for
      // its own maxStaleness (@latchkey/verify: 60 s) while we are unreachable: valid that long
      exp: iat + 2 * ttl + STALENESS_ALLOWANCE_SECONDS,
      ttl,
      status_list: { bits: 1, lst: this.bits.get(listId)?.lst ?? encodeList([]) },
    };
    const jwt = await signJwt(claims, { alg: key.alg, kid: key.kid, typ: STATUS_LIST_TYP }, key.privateKey);
    return { jwt, kid: key.kid, etag: `"${crypto.createHash('sha256').update(jwt).digest('base64url').slice(0, 27)}"`, signedAt: now };
  }
}

const EMPTY = new Map<number, string>();

/** One list's bits, compressed (ZLIB, base64url) by the reference implementation. */
function encodeList(invalid: number[]): string {
  if (invalid.length === 0 && EMPTY.has(0)) return EMPTY.get(0)!;
  const statuses = new Array<number>(STATUS_LIST_SIZE).fill(0);
  for (const i of invalid) statuses[i] = STATUS_INVALID;
  const lst = new StatusList(statuses, 1).compressStatusList();
  if (invalid.length === 0) EMPTY.set(0, lst);
  return lst;
}
