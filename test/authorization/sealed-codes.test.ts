// Sealed authorization codes (src/tokens/codes.ts), without a server: what opens, what does not.
// The flows that redeem them are tested through /token in errors.test.ts and the browser tests.
import t from 'tap';
import crypto from 'node:crypto';
import { MAX_CODE_LENGTH, CodeTooLarge, openCode, sealCode, type CodeGrant } from '../../src/tokens/codes.js';
import { digest } from '../../src/core/crypto.js';

const key = crypto.randomBytes(32);
const at = new Date('2026-11-24T10:00:00Z');
const grant = (over: Partial<CodeGrant> = {}): CodeGrant => ({
  clientId: 'client-1',
  userId: '00000000-0000-4000-8000-000000000001',
  redirectUri: 'https://rp.example/cb',
  codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
  scopes: ['openid', 'offline_access'],
  resources: ['https://api.example'],
  nonce: 'n-0S6_WzA2Mj',
  authTime: new Date('2026-11-24T09:59:00Z'),
  sessionSid: 'sid-1',
  ...over,
});

t.test('a sealed code opens to its grant, bound to the redirect URI by digest', async (t) => {
  const code = sealCode(key, grant(), at, 60);
  t.match(code, /^[A-Za-z0-9_-]+$/, 'base64url');
  const opened = openCode(key, code)!;
  t.ok(opened);
  t.equal(opened.clientId, 'client-1');
  t.equal(opened.userId, grant().userId);
  t.equal(opened.redirectUriDigest, digest('https://rp.example/cb'));
  t.equal(opened.codeChallenge, grant().codeChallenge);
  t.same(opened.scopes, ['openid', 'offline_access']);
  t.same(opened.resources, ['https://api.example']);
  t.equal(opened.nonce, 'n-0S6_WzA2Mj');
  t.equal(opened.authTime.getTime(), grant().authTime.getTime());
  t.equal(opened.sessionSid, 'sid-1');
  t.equal(opened.expiresAt.getTime(), at.getTime() + 60_000);
  t.notMatch(Buffer.from(code, 'base64url').toString('latin1'), 'client-1', 'the grant is encrypted, not only signed');
  t.notMatch(Buffer.from(code, 'base64url').toString('latin1'), 'n-0S6_WzA2Mj');
});

t.test('every code has its own id; the same grant twice gives two codes', async (t) => {
  const a = sealCode(key, grant(), at, 60);
  const b = sealCode(key, grant(), at, 60);
  t.not(a, b);
  t.not(openCode(key, a)!.codeDigest, openCode(key, b)!.codeDigest, 'two single-use keys');
  t.equal(openCode(key, a)!.codeDigest, openCode(key, a)!.codeDigest, 'stable for one code');
});

t.test('anything but an intact code of ours is refused', async (t) => {
  const code = sealCode(key, grant(), at, 60);
  t.equal(openCode(crypto.randomBytes(32), code), undefined, 'another server secret');
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (let i = 0; i < code.length; i += 7) t.equal(openCode(key, flip(code, i)), undefined, `altered at ${i}`);
  t.equal(openCode(key, code.slice(0, -1)), undefined, 'truncated');
  t.equal(openCode(key, `${code}A`), undefined, 'extended');
  t.equal(openCode(key, `${code}=`), undefined, 'padded');
  t.equal(openCode(key, `${code.slice(0, 10)}+${code.slice(11)}`), undefined, 'a base64 (not base64url) character');
  t.equal(openCode(key, ''), undefined, 'empty');
  t.equal(openCode(key, 'x'.repeat(MAX_CODE_LENGTH + 1)), undefined, 'too long');
  t.equal(openCode(key, crypto.randomBytes(32).toString('base64url')), undefined, 'a random 256-bit value');
});

t.test('a code has one spelling: stray trailing bits make a different string that is refused', async (t) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  // a payload whose byte length leaves unused bits in the last character (length % 3 !== 0)
  let code = '';
  for (let n = 0; n < 3; n++) {
    code = sealCode(key, grant({ nonce: 'x'.repeat(n) }), at, 60);
    if (Buffer.from(code, 'base64url').length % 3 !== 0) break;
  }
  const respelled = code.slice(0, -1) + alphabet[alphabet.indexOf(code.at(-1)!) ^ 1];
  t.ok(Buffer.from(respelled, 'base64url').equals(Buffer.from(code, 'base64url')), 'Buffer decodes both spellings to the same bytes');
  t.ok(openCode(key, code), 'the original opens');
  t.equal(openCode(key, respelled), undefined, 'the second spelling is refused (it would dodge the single-use key otherwise)');
});

t.test('a request too large to seal is refused when sealing', async (t) => {
  t.throws(() => sealCode(key, grant({ nonce: 'n'.repeat(4096), scopes: Array.from({ length: 200 }, (_, i) => `scope-${i}`) }), at, 60), CodeTooLarge);
  t.ok(sealCode(key, grant({ nonce: 'n'.repeat(2048) }), at, 60).length <= MAX_CODE_LENGTH, 'a 2 KiB nonce still fits');
});
