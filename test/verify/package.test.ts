// @latchkey/verify as an API team installs it: the built dist/ (npm run build, or tap's `before`),
// its manifest, and the README's example run as written against a fake issuer.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/process.js';
import { startFakeIssuer } from '../helpers/fake-issuer.js';

const dir = path.join(ROOT, 'packages/verify');

t.test('the manifest: ESM, built entry points, jose as the only runtime dependency', async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  t.equal(pkg.name, '@latchkey/verify');
  t.equal(pkg.type, 'module');
  t.same(Object.keys(pkg.dependencies), ['jose']);
  t.equal(pkg.exports['.'].import, './dist/index.js');
  t.ok(fs.existsSync(path.join(dir, 'dist/index.js')) && fs.existsSync(path.join(dir, 'dist/index.d.ts')), 'dist/ holds the JS and its types');
});

t.test('the built package verifies a token', async (t) => {
  const mod = (await import(path.join(dir, 'dist/index.js'))) as typeof import('../../packages/verify/src/index.js');
  const issuer = await startFakeIssuer();
  t.teardown(() => issuer.close());
  const verifier = mod.createVerifier({ issuer: issuer.url, audience: 'https://api.example.com', now: issuer.now });
  t.equal((await verifier.verify(await issuer.signAccessToken())).sub, 'user-1');
  issuer.lists.get('1')!.statuses[3] = 1;
  issuer.advance(11);
  await t.rejects(verifier.verify(await issuer.signAccessToken()), mod.InvalidToken);
});

t.test('the README has the five-line example', async (t) => {
  const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  const example = /```js\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  t.ok(example.split('\n').filter(Boolean).length <= 5, 'five lines');
  t.match(example, /createVerifier\(/);
  t.match(example, /latchkeyAuth/);
});
