// Back-Channel Logout delivery (OIDC Back-Channel Logout 1.0 §2.5): every replica runs this loop
// over the outbox (src/store/logout-outbox.ts). A NOTIFY at the commit of a revocation wakes it at
// once; a poll is the safety net (a lost NOTIFY, a replica that died holding claims). Notices are
// claimed with FOR UPDATE SKIP LOCKED under a lease, so replicas never deliver the same notice at
// once and a dead replica's notices fall due again when its lease ends. Each notice is POSTed as
// `logout_token=…` with a freshly signed token (same jti), a 5 s timeout and no redirects; 200 or
// 204 is delivered, anything else is retried with exponential backoff and jitter until
// BACKCHANNEL_RETRY_HOURS have passed since the notice was written, then marked failed (audited).
// With an https issuer the target's host must be, and resolve only to, public addresses, and the
// connection goes to a checked one (src/protocol/backchannel-logout-uri.ts); a refused address
// fails the notice at once. Only generic errors are recorded (refused_address, timeout,
// delivery_failed, HTTP <status>), never a socket's: they would map the ports of internal hosts.
// Deliveries in flight are bounded per replica and per client, so one slow or unreachable relying
// party holds at most PER_CLIENT slots and never delays notices to the others.
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { Clock } from '../core/clock.js';
import type { Config, SigningAlg } from '../core/config.js';
import type { DbHandle } from '../db/create-db.js';
import { isDatabaseUnavailable } from '../db/errors.js';
import type { Keystore } from '../keys/keystore.js';
import type { Client } from '../core/model.js';
import {
  claimDueNotices,
  LOGOUT_NOTICES_CHANNEL,
  markDelivered,
  markFailed,
  markRetry,
  nextDueAt,
  releaseNotices,
  type ClaimedNotice,
} from '../store/logout-outbox.js';
import { signLogoutToken } from '../tokens/logout-token.js';
import { backchannelTarget } from '../protocol/backchannel-logout-uri.js';
import { pinnedLookup, RefusedAddress, type Lookup } from '../protocol/ip-ranges.js';

export const DELIVERY_TIMEOUT_MS = 5000;
/** Longer than a delivery can take (the timeout, signing, the result's write), so a live replica never loses a claim. */
export const LEASE_MS = 20_000;
export const PER_CLIENT = 2;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 3_600_000;
const MIN_WAIT_MS = 200;

export interface DeliveryDeps {
  dbh: DbHandle;
  clock: Clock;
  config: Config;
  keystore: Keystore;
  clients: { get(clientId: string): Promise<Client | undefined> };
  log: { warn(obj: Record<string, unknown>, msg: string): void; info(obj: Record<string, unknown>, msg: string): void };
  /** DNS for the target check (the system resolver by default). */
  lookup?: Lookup;
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * POST a form and answer the status. With `addresses`, the connection goes to one of them (the
 * checked ones) and the name is not resolved again; TLS still verifies the certificate for the name.
 */
function postForm(url: URL, body: string, addresses: LookupAddress[] | undefined, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? https.request : http.request;
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: '*/*', 'content-length': Buffer.byteLength(body) },
        // a connection of its own: a pooled socket could have been opened to an address checked for another URI
        agent: false,
        signal,
        ...(addresses ? { lookup: pinnedLookup(addresses) } : {}),
      },
      (res) => {
        // §2.5: a redirect is not followed (it would carry the token elsewhere); §2.8: the body is ignored
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Exponential backoff with jitter (half fixed, half random) after `attempts` failed attempts. */
export function backoffMs(attempts: number, random = Math.random): number {
  const base = Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1), BACKOFF_MAX_MS);
  return Math.round(base / 2 + (random() * base) / 2);
}

type Outcome = { delivered: true } | { delivered: false; error: string; permanent?: boolean };

export class LogoutDelivery {
  private inFlight = new Map<string, { notice: ClaimedNotice; abort: AbortController; done: Promise<void> }>();
  private perClient = new Map<string, number>();
  private filling = false;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  constructor(private readonly deps: DeliveryDeps) {}

  async start(): Promise<void> {
    this.unlisten = await this.deps.dbh.listen(
      LOGOUT_NOTICES_CHANNEL,
      () => this.kick(),
      () => this.kick(),
    );
    this.kick();
  }

  /** Stop claiming; abort what is in flight and hand its claims back for another replica. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.unlisten?.().catch(() => {});
    const flights = [...this.inFlight.values()];
    for (const f of flights) f.abort.abort();
    await Promise.all(flights.map((f) => f.done));
    await releaseNotices(this.deps.dbh.db, flights.map((f) => f.notice), new Date(this.deps.clock.now())).catch(() => {});
  }

  /** Look for due notices now (concurrent calls coalesce). */
  kick(): void {
    if (this.stopped) return;
    if (this.filling) {
      this.again = true;
      return;
    }
    this.filling = true;
    void this.fill()
      .catch((err: Error) => {
        // an outage has its one warning (src/db/health.ts); anything else is worth one here
        if (!isDatabaseUnavailable(err)) this.deps.log.warn({ err: err.message }, 'back-channel logout: claiming notices failed');
        // the database may be away: try again at the next poll
        this.arm(this.deps.config.backchannelPollSeconds * 1000);
      })
      .finally(() => {
        this.filling = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private saturated(): string[] {
    return [...this.perClient].filter(([, n]) => n >= PER_CLIENT).map(([c]) => c);
  }

  private async fill(): Promise<void> {
    const { db } = this.deps.dbh;
    for (;;) {
      if (this.stopped) return;
      const free = this.deps.config.backchannelConcurrency - this.inFlight.size;
      if (free <= 0) return; // a completion kicks again
      const now = this.deps.clock.now();
      // at most PER_CLIENT of one client in flight: claim no more than that per client in one go
      const claimed = await claimDueNotices(db, free, new Date(now), new Date(now + LEASE_MS), this.saturated());
      let launched = 0;
      const surplus: ClaimedNotice[] = [];
      for (const n of claimed) {
        if ((this.perClient.get(n.client_id) ?? 0) >= PER_CLIENT) surplus.push(n);
        else {
          this.launch(n);
          launched++;
        }
      }
      // claimed beyond a client's share: due again at once (for this replica or another)
      if (surplus.length) await releaseNotices(db, surplus, new Date(now));
      if (claimed.length < free || launched === 0) break;
    }
    await this.schedule();
  }

  /** Wake for the next notice that falls due (by the injected clock), at the latest at the poll. */
  private async schedule(): Promise<void> {
    if (this.stopped) return;
    const poll = this.deps.config.backchannelPollSeconds * 1000;
    const due = await nextDueAt(this.deps.dbh.db, this.saturated());
    this.arm(due ? Math.min(Math.max(due.getTime() - this.deps.clock.now(), MIN_WAIT_MS), poll) : poll);
  }

  private arm(waitMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), waitMs);
    this.timer.unref();
  }

  private launch(n: ClaimedNotice): void {
    const abort = new AbortController();
    this.perClient.set(n.client_id, (this.perClient.get(n.client_id) ?? 0) + 1);
    const key = n.id;
    const done = this.deliver(n, abort.signal)
      .catch((err: Error) => {
        if (!isDatabaseUnavailable(err)) this.deps.log.warn({ err: err.message, notice: n.id, client_id: n.client_id }, 'back-channel logout: recording an attempt failed');
      })
      .finally(() => {
        this.inFlight.delete(key);
        const left = (this.perClient.get(n.client_id) ?? 1) - 1;
        if (left <= 0) this.perClient.delete(n.client_id);
        else this.perClient.set(n.client_id, left);
        this.kick();
      });
    this.inFlight.set(key, { notice: n, abort, done });
  }

  private async deliver(n: ClaimedNotice, signal: AbortSignal): Promise<void> {
    const { db } = this.deps.dbh;
    const outcome = await this.attempt(n, signal);
    if (this.stopped) return; // handed back by stop()
    const now = this.deps.clock.now();
    if (outcome.delivered) {
      await markDelivered(db, n, new Date(now));
      return;
    }
    const deadline = n.created_at.getTime() + this.deps.config.backchannelRetryHours * 3_600_000;
    if (outcome.permanent || now >= deadline) {
      if (await markFailed(db, n, new Date(now), outcome.error)) {
        this.deps.log.warn({ notice: n.id, client_id: n.client_id, attempts: n.attempts, error: outcome.error }, 'back-channel logout: notice failed');
      }
      return;
    }
    // the last attempt falls on the deadline itself
    await markRetry(db, n, new Date(Math.min(now + backoffMs(n.attempts), deadline)), outcome.error);
  }

  private async attempt(n: ClaimedNotice, signal: AbortSignal): Promise<Outcome> {
    const client = await this.deps.clients.get(n.client_id);
    if (!client?.backchannelLogoutUri) return { delivered: false, error: 'the client no longer has a backchannel_logout_uri', permanent: true };
    let token: string;
    try {
      token = await signLogoutToken(this.deps, { clientId: client.clientId, alg: client.idTokenAlg as SigningAlg, jti: n.jti, sub: n.sub, sid: n.sid });
    } catch (err) {
      return { delivered: false, error: `cannot sign: ${(err as Error).message}` };
    }
    const timeout = AbortSignal.timeout(DELIVERY_TIMEOUT_MS);
    const abort = AbortSignal.any([signal, timeout]);
    // only generic errors are recorded: a socket's own error text tells a closed port from an open one
    let addresses: LookupAddress[] | undefined;
    try {
      addresses = await abortable(backchannelTarget(client.backchannelLogoutUri, this.deps.config, this.deps.lookup), abort);
    } catch (err) {
      if (err instanceof RefusedAddress) return { delivered: false, error: 'refused_address', permanent: true };
      return { delivered: false, error: timeout.aborted ? 'timeout' : 'delivery_failed' };
    }
    try {
      const status = await postForm(new URL(client.backchannelLogoutUri), new URLSearchParams({ logout_token: token }).toString(), addresses, abort);
      if (status === 200 || status === 204) return { delivered: true };
      return { delivered: false, error: `HTTP ${status}` };
    } catch {
      return { delivered: false, error: timeout.aborted ? 'timeout' : 'delivery_failed' };
    }
  }
}
