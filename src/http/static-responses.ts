// Discovery and the JWKS are public documents that every relying party and resource server fetch,
// identical for everyone and changed only by a key rotation. Fastify's request pipeline (request and
// reply objects, the child logger, the cookie and security-header hooks) costs more per request
// than writing such a document does, so the server answers a plain `GET` of them from a snapshot of
// the response that Fastify itself produced.
//
// A route opts in with `config.staticVersion`. The snapshot is made by `app.inject` through the real route and all its hooks, so it carries
// exactly the headers a Fastify answer carries (security headers, cache-control, ETag). It is tied
// to a version (the JWKS ETag, which every key change alters) read before it was taken; a request
// that finds the version moved falls through to Fastify and starts a new snapshot. Everything that
// is not a plain `GET` of the exact path falls through too: HEAD, a query string, If-None-Match
// (the route answers 304), and every request once the server has begun to close (Fastify answers
// 503). Only a 200 with `Cache-Control: public`, no `Vary` and no `Set-Cookie` is snapshotted.
import type { FastifyInstance, FastifyServerFactory } from 'fastify';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

declare module 'fastify' {
  interface FastifyInstance {
    /** The snapshots of the static documents (see src/http/static-responses.ts). */
    staticResponses: StaticResponses;
  }
  interface FastifyContextConfig {
    /** A GET route whose 200 may be answered from a snapshot while this version is unchanged. */
    staticVersion?: VersionOf;
  }
}

/** The current version of the document at a path; the snapshot is used only while it matches. */
export type VersionOf = () => string;

interface Snapshot {
  version: string;
  headers: string[];
  /** a string, so that Node writes it with the head in one write */
  body: string;
}

/** Headers Node writes for each response itself. */
const PER_RESPONSE = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

/** Only a 200 that declares itself shareable and is the same for every request may be replayed. */
function shareable(status: number, headers: Record<string, unknown>): boolean {
  const cacheControl = String(headers['cache-control'] ?? '');
  return status === 200 && /(^|,)\s*public\s*(,|$)/i.test(cacheControl) && headers.vary === undefined && headers['set-cookie'] === undefined;
}

export class StaticResponses {
  /** path → version, from the GET routes that declare `config.staticVersion` */
  readonly #sources = new Map<string, VersionOf>();
  readonly #snapshots = new Map<string, Snapshot>();
  readonly #pending = new Set<string>();
  #app: FastifyInstance | undefined;
  #open = false;

  /** Fastify's `serverFactory`: the HTTP/1.1 server Fastify would create, with the same timeouts, that asks us first. */
  readonly serverFactory: FastifyServerFactory = (handler, o) => {
    const server = http.createServer(o.http ?? {}, (req, res) => {
      if (!this.answer(req, res)) handler(req, res);
    });
    server.keepAliveTimeout = o.keepAliveTimeout as number;
    server.requestTimeout = o.requestTimeout as number;
    server.setTimeout(o.connectionTimeout as number);
    const perSocket = Number(o.maxRequestsPerSocket ?? 0);
    if (perSocket > 0) server.maxRequestsPerSocket = perSocket;
    return server;
  };

  /** How many requests were answered from a snapshot (tests and diagnostics). */
  answered = 0;
  /** Called for each request answered from a snapshot (metrics: such requests skip Fastify's hooks). */
  onAnswered: ((path: string) => void) | undefined;

  /** While false, every request goes through Fastify, whose hooks may refuse it (a database outage past its grace). */
  available: () => boolean = () => true;

  /**
   * Call before the routes are registered: GET routes with `config.staticVersion` are collected as
   * they are added. Answering starts at once (a request cannot arrive before the app listens);
   * `close` stops it for good.
   */
  attach(app: FastifyInstance): void {
    this.#app = app;
    this.#open = true;
    const self: StaticResponses = this;
    app.decorate('staticResponses', self);
    app.addHook('onRoute', (route) => {
      const versionOf = route.config?.staticVersion;
      if (!versionOf || route.method !== 'GET') return;
      for (const url of Array.isArray(route.url) ? route.url : [route.url]) this.#sources.set(url, versionOf);
    });
    app.addHook('preClose', (done) => {
      this.close();
      done();
    });
  }

  close(): void {
    this.#open = false;
    this.#snapshots.clear();
  }

  /** Answers `req` from its snapshot and returns true, or returns false for Fastify to answer. */
  answer(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.#open || req.method !== 'GET' || req.headers['if-none-match'] !== undefined || !this.available()) return false;
    const url = req.url as string;
    const versionOf = this.#sources.get(url);
    if (!versionOf) return false;
    const snap = this.#snapshots.get(url);
    if (!snap || snap.version !== versionOf()) {
      this.#refresh(url, versionOf);
      return false;
    }
    this.answered++;
    this.onAnswered?.(url);
    res.writeHead(200, snap.headers);
    res.end(snap.body);
    return true;
  }

  #refresh(url: string, versionOf: VersionOf): void {
    const app = this.#app;
    if (!app || this.#pending.has(url)) return;
    this.#pending.add(url);
    // read before the request: if the document changes meanwhile, the snapshot is newer than its
    // version says, and the next request takes a fresh one
    const version = versionOf();
    app
      .inject({ method: 'GET', url })
      .then((res) => {
        this.#snapshots.delete(url);
        if (!this.#open || !shareable(res.statusCode, res.headers)) return;
        const headers: string[] = [];
        for (const [name, value] of Object.entries(res.headers)) {
          if (PER_RESPONSE.has(name) || value === undefined) continue;
          for (const v of Array.isArray(value) ? value : [value]) headers.push(name, String(v));
        }
        this.#snapshots.set(url, { version, headers, body: res.payload });
      })
      .catch(() => {
        // the route answers for itself until a later request takes the snapshot
      })
      .finally(() => this.#pending.delete(url));
  }
}
