// @latchkey/verify against a fake issuer (test/helpers/fake-issuer.ts): the token checks, and the
// status list checks — revocation, forged or misdirected lists, an issuer that goes away.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StatusList } from '@sd-jwt/jwt-status-list';
import t, { type Test } from 'tap';
import { createVerifier, decodeStatusList, statusAt, VerifyError, type VerifierOptions } from '../../packages/verify/src/index.js';
import type { LogEntry } from '../../packages/verify/src/status-list.js';
import { signingKey, startFakeIssuer, type FakeIssuer } from '../helpers/fake-issuer.js';

const AUD = 'https://api.example.com';

async function setup(t: Test, options: Partial<VerifierOptions> = {}) {
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const logs: LogEntry[] = [];
  const verifier = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, onLog: (e) => logs.push(e), ...options });
  return { issuer, verifier, logs };
}

/** The VerifyError a promise rejects with (fails the test if it resolves). */
async function refusal(t: Test, p: Promise<unknown>, reason: string, what: string): Promise<VerifyError | undefined> {
  try {
    await p;
    t.fail(`${what}: accepted`);
    return undefined;
  } catch (err) {
    t.ok(err instanceof VerifyError, `${what}: a VerifyError (${(err as Error).message})`);
    const e = err as VerifyError;
    t.equal(e.reason, reason, `${what}: reason ${reason}`);
    return e;
  }
}

const listHits = (issuer: FakeIssuer, id = '1') => issuer.hits.get(`/statuslists/${id}`) ?? 0;
const revoke = (issuer: FakeIssuer, idx: number, value = 1, id = '1') => {
  issuer.lists.get(id)!.statuses[idx] = value;
};

t.test('a valid token passes and its claims are returned', async (t) => {
  const { issuer, verifier } = await setup(t);
  const claims = await verifier.verify(await issuer.signAccessToken());
  t.equal(claims.sub, 'user-1');
  t.equal(claims.client_id, 'client-1');
  t.same(claims.status, { status_list: { idx: 3, uri: issuer.listUri('1') } });
  t.equal(listHits(issuer), 1, 'the list was fetched once');
  await verifier.verify(await issuer.signAccessToken());
  t.equal(listHits(issuer), 1, 'and answered from the cache while fresh');
});

t.test('a revoked or suspended entry is refused; the list is refetched once per ttl', async (t) => {
  const { issuer, verifier } = await setup(t);
  const token = await issuer.signAccessToken();
  await verifier.verify(token);
  revoke(issuer, 3);
  issuer.advance(9);
  await verifier.verify(token);
  t.equal(listHits(issuer), 1, 'within ttl the cached list still answers');
  issuer.advance(2);
  const e = await refusal(t, verifier.verify(token), 'revoked', 'after ttl, the revoked bit');
  t.equal(e?.error, 'invalid_token');
  t.equal(e?.status, 401);
  t.equal(e?.wwwAuthenticate, 'Bearer error="invalid_token", error_description="the token has been revoked"');
  t.equal(listHits(issuer), 2);
  t.ok(await verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: 4, uri: issuer.listUri('1') } } })), 'another index of the same list is still valid');

  issuer.lists.set('2', { bits: 2, statuses: [0, 2, 1, 3, 0, 0, 0, 0] });
  const at = (idx: number) => issuer.signAccessToken({ status: { status_list: { idx, uri: issuer.listUri('2') } } });
  t.ok(await verifier.verify(await at(0)), '2-bit list: 0 is VALID');
  await refusal(t, verifier.verify(await at(1)), 'suspended', '2-bit list: 2 (SUSPENDED)');
  await refusal(t, verifier.verify(await at(2)), 'revoked', '2-bit list: 1 (INVALID)');
  await refusal(t, verifier.verify(await at(3)), 'revoked', '2-bit list: 3 (application-specific)');
  await refusal(t, verifier.verify(await at(8)), 'status_index', 'an index past the end of the list');
});

t.test('lists that are not the issuer’s are refused', async (t) => {
  const cases: Array<[string, RegExp, (issuer: FakeIssuer) => Promise<void> | void]> = [
    ['a tampered list (bad signature)', /SIGNATURE_VERIFICATION_FAILED/, (i) => {
      i.overrides.tamper = (jwt) => {
        const [h, p, s] = jwt.split('.');
        const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
        payload.status_list.lst = new StatusList(new Array<number>(1024).fill(0), 1).compressStatusList();
        return `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
      };
    }],
    ['a list signed by a key not in the JWKS', /NO_MATCHING_KEY/, async (i) => {
      i.overrides.key = await signingKey('rogue');
    }],
    ['a list signed by another key under a JWKS kid', /SIGNATURE_VERIFICATION_FAILED/, async (i) => {
      i.overrides.key = { ...(await signingKey('k1')) };
    }],
    ['a list signed with a key removed from the JWKS (rotated out, or revoked)', /NO_MATCHING_KEY/, async (i) => {
      const removed = i.key;
      i.key = await signingKey('k2');
      i.jwks = [i.key];
      i.overrides.key = removed;
    }],
    ['a list whose sub is another list', /"sub"/, (i) => {
      i.overrides.sub = i.listUri('2');
    }],
    ['a list from another issuer', /"iss"/, (i) => {
      i.overrides.iss = 'https://evil.example';
    }],
    ['a list whose typ is not statuslist+jwt', /"typ"/, (i) => {
      i.overrides.typ = 'JWT';
    }],
    ['an expired list', /EXPIRED/, (i) => {
      i.overrides.exp = Math.floor(i.now() / 1000) - 120;
    }],
    ['a list with an algorithm not pinned', /ALG_NOT_ALLOWED/, async (i) => {
      const ed = await signingKey('ed', 'EdDSA');
      i.jwks = [...i.jwks, ed];
      i.overrides.key = ed;
    }],
  ];
  for (const [what, why, breakIt] of cases) {
    await t.test(what, async (t) => {
      const { issuer, verifier, logs } = await setup(t);
      // the tampered list says VALID where the genuine one says INVALID; either way the reason must
      // be that no list could be verified
      revoke(issuer, 3);
      await breakIt(issuer);
      const token = await issuer.signAccessToken();
      await refusal(t, verifier.verify(token), 'status_unavailable', what);
      t.ok(logs.some((l) => l.event === 'status_list.fetch_failed'), 'the failure is logged');
      t.match(logs.find((l) => l.event === 'status_list.fetch_failed')?.error, why, `refused for the right reason (${why})`);
      t.ok(logs.some((l) => l.event === 'status_list.unavailable' && l.level === 'error'), 'and the refusal');
    });
  }

  await t.test('a forged list after a good one never replaces it', async (t) => {
    const { issuer, verifier } = await setup(t);
    const token = await issuer.signAccessToken();
    await verifier.verify(token);
    revoke(issuer, 3);
    issuer.overrides.key = await signingKey('rogue');
    issuer.advance(11);
    // the forgery is not taken: within maxStaleness the last good copy answers, then it fails closed
    await verifier.verify(token);
    issuer.advance(61);
    await refusal(t, verifier.verify(token), 'status_unavailable', 'past maxStaleness');
    issuer.overrides = {};
    issuer.advance(2);
    await refusal(t, verifier.verify(token), 'revoked', 'the genuine list, once served again');
  });
});

t.test('a status uri off the issuer’s origin is refused without being fetched', async (t) => {
  const { issuer, verifier } = await setup(t);
  let fetched = 0;
  const other = http.createServer((_req, res) => {
    fetched++;
    res.end();
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => other.close(() => r())));
  const port = (other.address() as AddressInfo).port;
  for (const uri of [`http://127.0.0.1:${port}/statuslists/1`, `http://localhost:${new URL(issuer.url).port}/statuslists/1`, `${issuer.url.replace('http:', 'https:')}/statuslists/1`, `http://user:pw@${new URL(issuer.url).host}/statuslists/1`, 'not a uri']) {
    await refusal(t, verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: 3, uri } } })), uri === 'not a uri' ? 'status_uri' : 'status_uri', uri);
  }
  t.equal(fetched, 0, 'nothing was fetched from another origin');
  await refusal(t, verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: -1, uri: issuer.listUri('1') } } })), 'claims', 'a negative index');
  await refusal(t, verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: '3', uri: issuer.listUri('1') } } })), 'claims', 'an index that is a string');
  await refusal(t, verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: 3, uri: issuer.listUri('404') } } })), 'status_unavailable', 'a list the issuer does not have');
});

t.test('an unreachable issuer: the last list serves for maxStaleness past its ttl, then tokens are refused', async (t) => {
  const { issuer, verifier, logs } = await setup(t, { maxStaleness: 60 });
  const token = await issuer.signAccessToken();
  await verifier.verify(token);
  issuer.down = true;
  issuer.advance(10 + 30);
  t.ok(await verifier.verify(token), '30 s past the ttl: accepted');
  t.ok(logs.some((l) => l.event === 'status_list.fetch_failed'), 'the failed fetch is logged');
  t.ok(logs.some((l) => l.event === 'status_list.stale' && l.level === 'warn'), 'so is answering from a stale list');
  issuer.advance(29);
  t.ok(await verifier.verify(token), '59 s past the ttl: accepted');
  issuer.advance(2);
  await refusal(t, verifier.verify(token), 'status_unavailable', '61 s past the ttl');
  const unavailable = logs.filter((l) => l.event === 'status_list.unavailable');
  t.equal(unavailable.length, 1, 'failing closed is logged, once');
  t.equal(unavailable[0]?.level, 'error');
  await refusal(t, verifier.verify(token), 'status_unavailable', 'and stays refused');
  t.equal(logs.filter((l) => l.event === 'status_list.unavailable').length, 1, 'without a log line per request');

  issuer.down = false;
  issuer.advance(2);
  t.ok(await verifier.verify(token), 'the issuer back: accepted again');
  t.ok(logs.some((l) => l.event === 'status_list.recovered'), 'recovery is logged');
  t.notOk(JSON.stringify(logs).includes(token), 'no token in any log entry');
});

t.test('with no list ever fetched, an unreachable issuer means refusal', async (t) => {
  const { issuer, verifier, logs } = await setup(t);
  const token = await issuer.signAccessToken();
  await verifier.verify(await issuer.signAccessToken({ status: { status_list: { idx: 0, uri: issuer.listUri('2') } } })).catch(() => undefined); // JWKS now cached
  issuer.down = true;
  await refusal(t, verifier.verify(token), 'status_unavailable', 'list 1 never fetched');
  t.ok(logs.some((l) => l.event === 'status_list.unavailable'));
});

t.test('a key removed from the JWKS (rotated out, revoked) is no longer trusted once jwksMaxAge has passed', async (t) => {
  // jwksMaxAge 0: every verification asks for the JWKS (jose's cache runs on wall-clock time)
  const { issuer, verifier, logs } = await setup(t, { jwksMaxAge: 0 });
  const old = issuer.key;
  t.ok(await verifier.verify(await issuer.signAccessToken()), 'signed by k1 while k1 is published');
  issuer.key = await signingKey('k2');
  issuer.jwks = [issuer.key];
  issuer.overrides.key = old; // whoever still holds k1 signs the lists
  revoke(issuer, 5); // a changed list: answered in full, not 304
  await refusal(t, verifier.verify(await issuer.signAccessToken({}, { key: old })), 'unknown_key', 'a token signed by the removed key');
  issuer.advance(11);
  const token = await issuer.signAccessToken();
  t.ok(await verifier.verify(token), 'a k2 token, while the list signed by k1 is refused: the last good list answers');
  t.match(logs.find((l) => l.event === 'status_list.fetch_failed')?.error, /NO_MATCHING_KEY/, 'the list signed by the removed key was refused');
  issuer.advance(61);
  await refusal(t, verifier.verify(token), 'status_unavailable', 'and past maxStaleness, nothing is accepted on its word');
});

t.test('an unreachable JWKS: the last copy stands in for maxStaleness, then refusal', async (t) => {
  const { issuer, verifier, logs } = await setup(t, { jwksMaxAge: 0, statusList: 'off' });
  t.ok(await verifier.verify(await issuer.signAccessToken()));
  issuer.down = true;
  t.ok(await verifier.verify(await issuer.signAccessToken()), 'within maxStaleness of the last JWKS: accepted');
  t.ok(logs.some((l) => l.event === 'keys.stale' && l.level === 'warn'), 'and logged');
  issuer.down = false;
  const strict = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, jwksMaxAge: 0, maxStaleness: 0, statusList: 'off', onLog: () => {} });
  t.ok(await strict.verify(await issuer.signAccessToken()));
  issuer.down = true;
  await refusal(t, strict.verify(await issuer.signAccessToken()), 'keys_unavailable', 'with maxStaleness 0: refused at once');
});

t.test('an unreachable JWKS means refusal', async (t) => {
  const { issuer, verifier, logs } = await setup(t);
  issuer.down = true;
  const e = await refusal(t, verifier.verify(await issuer.signAccessToken()), 'keys_unavailable', 'no keys');
  t.equal(e?.status, 401);
  t.ok(logs.some((l) => l.event === 'keys.unavailable' && l.level === 'error'));
});

t.test('50 concurrent verifications make one JWKS and one list fetch; refreshes are conditional', async (t) => {
  const { issuer, verifier } = await setup(t);
  const tokens = await Promise.all(Array.from({ length: 50 }, () => issuer.signAccessToken()));
  const results = await Promise.all(tokens.map((tok) => verifier.verify(tok)));
  t.equal(results.length, 50);
  t.equal(listHits(issuer), 1, 'one list fetch');
  t.equal(issuer.hits.get('/.well-known/jwks.json'), 1, 'one JWKS fetch');

  issuer.advance(11);
  await Promise.all(tokens.map((tok) => verifier.verify(tok)));
  t.equal(listHits(issuer), 2, 'one refresh after the ttl');
  t.equal(issuer.notModified, 1, 'answered 304 to If-None-Match');
  issuer.advance(5);
  await verifier.verify(tokens[0]!);
  t.equal(listHits(issuer), 2, 'the 304 made the held copy fresh for another ttl');
  revoke(issuer, 3);
  issuer.advance(6);
  await refusal(t, verifier.verify(tokens[0]!), 'revoked', 'a changed list is fetched in full');
  t.equal(issuer.notModified, 1);
});

t.test('tokens that are not ours, or not access tokens, are refused', async (t) => {
  const { issuer, verifier } = await setup(t);
  const now = Math.floor(issuer.now() / 1000);
  const ed = await signingKey('ed', 'EdDSA');
  issuer.jwks.push(ed);
  const cases: Array<[string, Promise<string> | string, string]> = [
    ['typ JWT', issuer.signAccessToken({}, { typ: 'JWT' }), 'type'],
    ['typ id_token-ish', issuer.signAccessToken({}, { typ: 'application/jwt' }), 'type'],
    ['an algorithm not pinned (EdDSA)', issuer.signAccessToken({}, { key: ed }), 'algorithm'],
    ['another audience', issuer.signAccessToken({ aud: 'https://other.example.com' }), 'audience'],
    ['another issuer', issuer.signAccessToken({ iss: 'https://evil.example' }), 'issuer'],
    ['expired', issuer.signAccessToken({ iat: now - 1000, exp: now - 31 }), 'expired'],
    ['not yet valid', issuer.signAccessToken({ nbf: now + 120 }), 'not_yet_valid'],
    ['no client_id', issuer.signAccessToken({ client_id: undefined }), 'claims'],
    ['no jti', issuer.signAccessToken({ jti: undefined }), 'claims'],
    ['a key not in the JWKS', signingKey('rogue').then((key) => issuer.signAccessToken({}, { key })), 'unknown_key'],
    ['a forged signature under our kid', signingKey('k1').then((key) => issuer.signAccessToken({}, { key })), 'signature'],
    ['no status claim', issuer.signAccessToken({ status: undefined }), 'status_missing'],
    ['garbage', 'not.a.jwt', 'malformed_token'],
    ['empty', '', 'malformed_token'],
  ];
  for (const [what, token, reason] of cases) {
    const e = await refusal(t, verifier.verify(await token), reason, what);
    t.equal(e?.error, 'invalid_token', `${what}: invalid_token`);
  }
  t.ok(await verifier.verify(await issuer.signAccessToken({ iat: now - 1000, exp: now - 20 })), 'expired by less than the 30 s leeway: accepted');
  const e = await refusal(t, verifier.verify(await issuer.signAccessToken(), { scope: 'api:write' }), 'insufficient_scope', 'a missing scope');
  t.equal(e?.status, 403);
  t.equal(e?.wwwAuthenticate, 'Bearer error="insufficient_scope", error_description="the token lacks the scope api:write", scope="api:write"');
  t.ok(await verifier.verify(await issuer.signAccessToken(), { scope: ['api:read', 'openid'] }), 'scopes it has');
});

t.test('options: requireStatus false, statusList off, other algorithms', async (t) => {
  const { issuer } = await setup(t);
  revoke(issuer, 3);
  const lenient = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, requireStatus: false, onLog: () => {} });
  t.ok(await lenient.verify(await issuer.signAccessToken({ status: undefined })), 'requireStatus: false accepts a token without status');
  await refusal(t, lenient.verify(await issuer.signAccessToken()), 'revoked', 'but still checks the status it has');
  const off = createVerifier({ issuer: issuer.url, audience: AUD, now: issuer.now, statusList: 'off' });
  t.ok(await off.verify(await issuer.signAccessToken()), "statusList: 'off' does not look at the list");
  t.equal(listHits(issuer), 1, 'and fetches nothing');
  const ed = await signingKey('ed', 'EdDSA');
  issuer.jwks.push(ed);
  const edVerifier = createVerifier({ issuer: issuer.url, audience: [AUD, 'other'], algorithms: ['EdDSA'], now: issuer.now, statusList: 'off' });
  t.ok(await edVerifier.verify(await issuer.signAccessToken({}, { key: ed })), 'EdDSA when pinned');
  await refusal(t, edVerifier.verify(await issuer.signAccessToken()), 'algorithm', 'and then ES256 is refused');
  t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, algorithms: ['HS256'] }), /asymmetric/);
  t.throws(() => createVerifier({ issuer: issuer.url, audience: AUD, algorithms: ['none'] }), /asymmetric/);
  t.throws(() => createVerifier({ issuer: 'nope', audience: AUD }), /issuer/);
});

t.test('the list encoding is that of @sd-jwt/jwt-status-list', async (t) => {
  for (const bits of [1, 2, 4, 8] as const) {
    const statuses = Array.from({ length: 4096 }, (_, i) => (i * 2654435761) % 97 % 2 ** bits);
    const lst = new StatusList([...statuses], bits).compressStatusList();
    const decoded = decodeStatusList({ bits, lst }, 1 << 20);
    const mismatches = statuses.filter((s, i) => statusAt(decoded, i) !== s).length;
    t.equal(mismatches, 0, `${bits} bit(s): every entry decodes as written`);
    t.equal(statusAt(decoded, 4096 * (8 / bits)), undefined, 'past the end: no entry');
  }
  t.throws(() => decodeStatusList({ bits: 3, lst: 'eNo' }, 100), /bits/);
  const bomb = new StatusList(new Array<number>(1 << 16).fill(0), 1).compressStatusList();
  t.throws(() => decodeStatusList({ bits: 1, lst: bomb }, 1024), 'a list that inflates past the limit is refused');
});
