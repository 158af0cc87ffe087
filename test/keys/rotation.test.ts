// Two scheduled rotations, driven by the test clock, watched by an honestly modelled resource
// server: it fetches our JWKS over HTTP, keeps it for exactly the max-age we sent (by the test
// clock), and never refetches early — not even on an unknown kid. Every token we issue must verify
// there for its whole lifetime.
//
// Why this test fails without pre-publication: if a rotation generated the new key and made it
// active in the same step, the resource server would still hold a JWKS fetched (up to max-age)
// before that key existed; the first token signed by it would carry an unknown kid, the resource
// server would not refetch, and `failures` would be > 0. The assertion on `fetchSeq < rotationSeq`
// below shows the situation really arises: at each new key's first token, the resource server's
// cached JWKS was fetched before the rotation, and it verified only because the key was in it as `next`.
import t from 'tap';
import { createLocalJWKSet, jwtVerify, SignJWT, type JSONWebKeySet } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv } from '../helpers/runtime.js';
import type { ManualClock } from '../../src/core/clock.js';
import type { SigningAlg } from '../../src/core/config.js';
import { signAccessToken } from '../../src/tokens/access-token.js';
import { keyMaintenanceStep } from '../../src/keys/maintenance.js';
import { KeyLifecycleError, rotateKeys } from '../../src/keys/rotation.js';

t.teardown(dropCreatedDatabases);

let seq = 0; // orders events that happen at the same test-clock instant

class ResourceServer {
  cache: { keys: ReturnType<typeof createLocalJWKSet>; fetchedAt: number; maxAge: number; seq: number } | undefined;
  fetches = 0;
  constructor(
    private readonly jwksUri: string,
    private readonly clock: ManualClock,
    private readonly issuer: string,
  ) {}

  private async jwks(): Promise<ReturnType<typeof createLocalJWKSet>> {
    const now = this.clock.now();
    if (!this.cache || now >= this.cache.fetchedAt + this.cache.maxAge * 1000) {
      const res = await fetch(this.jwksUri);
      if (res.status !== 200) throw new Error(`JWKS fetch: ${res.status}`);
      const m = /max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '');
      if (!m) throw new Error('JWKS without max-age');
      this.cache = { keys: createLocalJWKSet((await res.json()) as JSONWebKeySet), fetchedAt: now, maxAge: Number(m[1]), seq: ++seq };
      this.fetches++;
    }
    return this.cache.keys;
  }

  async verify(token: string): Promise<string | undefined> {
    const jwks = await this.jwks();
    try {
      await jwtVerify(token, jwks, {
        issuer: this.issuer,
        algorithms: ['ES256', 'RS256'],
        typ: 'at+jwt',
        currentDate: new Date(this.clock.now()),
        clockTolerance: 30,
      });
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }
}

for (const backend of backends()) {
  t.test(`two scheduled rotations without a single failed verification on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create(), {
      listen: true,
      env: { KEY_ROTATION_DAYS: '1', ACCESS_TOKEN_TTL: '600', ID_TOKEN_TTL: '600', JWKS_MAX_AGE: '300', CLOCK_LEEWAY_SECONDS: '30' },
    });
    t.teardown(() => env.close());
    const { rt, clock, config } = env;
    const jwksUri = `${config.issuer}/.well-known/jwks.json`;
    const rs = new ResourceServer(jwksUri, clock, config.issuer);
    const algs: SigningAlg[] = ['ES256', 'RS256'];

    const mint = async (alg: SigningAlg) => {
      if (alg === config.signingAlg) return signAccessToken(rt, { sub: 'u1', clientId: 'c1', scope: ['openid'], aud: ['https://api.example'], statusIdx: 0 });
      // an RS256 token (as an ID token would be), with the same claims
      const key = rt.keystore.signingKey(alg);
      const iat = Math.floor(clock.now() / 1000);
      const exp = iat + config.idTokenTtl;
      const token = await new SignJWT({ client_id: 'c1' })
        .setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' })
        .setIssuer(config.issuer)
        .setSubject('u1')
        .setAudience('https://api.example')
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .sign(key.privateKey);
      return { token, kid: key.kid, exp };
    };

    const initialActive = new Set(algs.map((a) => rt.keystore.activeKey(a)!.kid));
    const live: Array<{ token: string; kid: string; exp: number }> = [];
    const firstSeen = new Map<string, number>();
    const goneAt = new Map<string, number>();
    const firstToken = new Map<string, { at: number; rsFetchSeq: number }>();
    const lastExp = new Map<string, number>();
    const rotatedAt = new Map<string, { at: number; seq: number }>(); // activated kid → when
    const activeKids = new Map<SigningAlg, Set<string>>(algs.map((a) => [a, new Set([rt.keystore.activeKey(a)!.kid])]));
    let failures = 0;
    let verified = 0;
    let notModified = 0;
    let notModifiedWrong = 0;
    let etagChanges = 0;
    const failureNotes: string[] = [];
    let etag = '';
    let published = new Set<string>();

    const observe = async () => {
      const res = await fetch(jwksUri, { headers: etag ? { 'if-none-match': etag } : {} });
      if (res.status === 304) {
        notModified++;
        if (rt.keystore.jwksEtag !== etag) notModifiedWrong++; // 304 only while the JWKS is unchanged
        return;
      }
      t.equal(res.status, 200);
      const newEtag = res.headers.get('etag')!;
      if (etag) {
        t.not(newEtag, etag, 'a changed JWKS has a new ETag');
        etagChanges++;
      }
      etag = newEtag;
      const kids = new Set(((await res.json()) as JSONWebKeySet).keys.map((k) => k.kid!));
      for (const kid of kids) if (!firstSeen.has(kid)) firstSeen.set(kid, clock.now());
      for (const kid of published) if (!kids.has(kid)) goneAt.set(kid, clock.now());
      published = kids;
    };

    /** One step: time passes, live tokens are presented, `change` runs, a token per algorithm is minted. */
    const step = async (seconds: number, change: () => Promise<void>) => {
      clock.advance(seconds);
      // tokens are presented throughout their lifetime, before and after each change
      for (const tok of live.splice(0).filter((x) => x.exp > clock.now() / 1000)) {
        const err = await rs.verify(tok.token);
        verified++;
        if (err) {
          failures++;
          failureNotes.push(`${tok.kid}: ${err}`);
        }
        live.push(tok);
      }
      await change();
      // whoever rotated (this step, or the app's own maintenance timer running the same step)
      for (const alg of algs) {
        const kid = rt.keystore.activeKey(alg)!.kid;
        if (!activeKids.get(alg)!.has(kid)) rotated(alg, kid);
      }
      await observe();
      for (const alg of algs) {
        const tok = await mint(alg);
        if (!firstToken.has(tok.kid)) firstToken.set(tok.kid, { at: clock.now(), rsFetchSeq: -1 });
        lastExp.set(tok.kid, Math.max(lastExp.get(tok.kid) ?? 0, tok.exp));
        const err = await rs.verify(tok.token);
        verified++;
        if (err) {
          failures++;
          failureNotes.push(`${tok.kid} (new): ${err}`);
        }
        const ft = firstToken.get(tok.kid)!;
        if (ft.rsFetchSeq === -1) ft.rsFetchSeq = rs.cache!.seq;
        live.push(tok);
      }
    };
    const rotated = (alg: string, kid: string) => {
      rotatedAt.set(kid, { at: clock.now(), seq: ++seq });
      activeKids.get(alg as SigningAlg)!.add(kid);
    };

    // phase 1: two scheduled rotations (KEY_ROTATION_DAYS=1), by the maintenance step alone
    const end = clock.now() + (2 * 86400 + 2 * 3600) * 1000;
    await observe();
    while (clock.now() < end) {
      const due = Math.min(...algs.map((a) => rt.keystore.activeKey(a)!.activatedAt!.getTime() + 86400 * 1000));
      const lastRotation = Math.max(...algs.map((a) => rt.keystore.activeKey(a)!.activatedAt!.getTime()));
      // fine steps around each rotation and until the retired key is gone; big ones in between
      const busy = due - clock.now() < 900 * 1000 || clock.now() - lastRotation < 1200 * 1000;
      await step(busy ? 20 : 900, async () => void (await keyMaintenanceStep(rt)));
    }
    for (const alg of algs) t.equal(activeKids.get(alg)!.size, 3, `${alg}: the initial key and two scheduled rotations`);

    // phase 2: `keys rotate` (no --now) as early as it is allowed, twice in a row: the tightest
    // schedule the rules permit, each new key published only JWKS_MAX_AGE + margin before it signs
    let refusals = 0;
    for (let rotations = 0; rotations < 2; ) {
      await step(20, async () => {
        try {
          const r = await rotateKeys(rt, { alg: 'ES256' });
          t.notOk(r.promoted_early, 'promoted on time');
          rotations++;
        } catch (err) {
          if (!(err instanceof KeyLifecycleError) || err.code !== 'too_early') throw err;
          refusals++;
        }
        await keyMaintenanceStep(rt); // reloads; also the periodic work
      });
    }
    // the first one goes at once (its next key dates from the last scheduled rotation); the second waits
    t.ok(refusals >= Math.floor((config.jwksMaxAge + config.keyPublishMarginSeconds) / 20) - 1, `rotation refused while the next key was too young (${refusals})`);
    t.equal(activeKids.get('ES256')!.size, 5, 'ES256: two more rotations by hand');
    // let the last retired keys expire
    for (let i = 0; i < 40; i++) await step(20, async () => void (await keyMaintenanceStep(rt)));

    t.equal(failures, 0, `every token verified at the resource server (${verified} verifications, ${rs.fetches} JWKS fetches)`);
    t.same(failureNotes, []);
    // the next key was in the JWKS for at least one cache lifetime before its first token
    for (const [kid, ft] of firstToken) {
      if (initialActive.has(kid)) continue; // the first keys: nothing could have cached a JWKS before them
      t.ok(firstSeen.has(kid), `${kid} was published`);
      t.ok(ft.at - firstSeen.get(kid)! >= config.jwksMaxAge * 1000, `${kid} published ${(ft.at - firstSeen.get(kid)!) / 1000} s before its first token`);
      // non-vacuous: the resource server verified the first token with a JWKS fetched before the rotation
      const r = rotatedAt.get(kid);
      t.ok(r, `${kid} became active by a rotation`);
      t.ok(ft.rsFetchSeq < r!.seq, `${kid}: the resource server's cached JWKS predates the rotation`);
    }
    t.equal(firstToken.size, 8, 'five ES256 and three RS256 keys signed tokens');

    // retired keys leave the JWKS only after their last token expired, and they do leave
    t.equal(goneAt.size, 6, `every retired key was removed in the end (${goneAt.size})`);
    for (const [kid, at] of goneAt) {
      t.ok(lastExp.has(kid), `${kid} had signed tokens`);
      t.ok(at >= lastExp.get(kid)! * 1000, `${kid} left the JWKS ${(at - lastExp.get(kid)! * 1000) / 1000} s after its last token expired`);
    }
    for (const kid of initialActive) t.ok(goneAt.has(kid), `the first key ${kid} is gone`);
    const rows = await rt.db.selectFrom('signing_keys').select(['kid', 'state']).execute();
    t.notOk(rows.some((r) => goneAt.has(r.kid)), 'expired retired keys are deleted, private parts included');

    t.ok(notModified > 10, `unchanged JWKS answered 304 (${notModified})`);
    t.equal(notModifiedWrong, 0, 'never 304 for a changed JWKS');
    // each rotation changes the JWKS (the two scheduled ones both algorithms at once), and so does each removal
    t.ok(etagChanges >= 8, `the ETag followed every change (${etagChanges})`);
  });
}
