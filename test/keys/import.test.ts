// `keys import`: bring your own key (PEM or JWK). The algorithm is inferred and checked, the kid is
// the RFC 7638 thumbprint, the key enters as `next` and signs only after the usual publication time.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, tempDir } from '../helpers/runtime.js';
import { importKey } from '../../src/keys/import.js';
import { KeyLifecycleError, revokeKey, rotateKeys } from '../../src/keys/rotation.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { signAccessToken } from '../../src/tokens/access-token.js';

t.teardown(dropCreatedDatabases);

const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const thumbprint = async (k: crypto.KeyObject) => {
  const j = crypto.createPublicKey(k).export({ format: 'jwk' }) as JWK;
  return calculateJwkThumbprint(j, 'sha256');
};
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => (err instanceof KeyLifecycleError ? err : Promise.reject(err)),
  );

for (const backend of backends()) {
  t.test(`keys import on ${backend.name}`, async (t) => {
    const env = await createTestEnv(await backend.create());
    t.teardown(() => env.close());
    const { rt, clock } = env;
    const nextBefore = rt.keystore.list().find((k) => k.alg === 'ES256' && k.state === 'next')!.kid;

    // PKCS#8 PEM, through the command with a file
    const k1 = ec();
    const dir = tempDir();
    const pemFile = path.join(dir, 'k1.pem');
    fs.writeFileSync(pemFile, k1.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const res = await runCommand(['keys', 'import', '--pem', pemFile, '--json'], cliContextFor(rt), undefined);
    t.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as Record<string, string>;
    t.equal(out.kid, await thumbprint(k1.privateKey), 'kid = RFC 7638 thumbprint');
    t.equal(out.alg, 'ES256', 'inferred from the key');
    t.equal(out.state, 'next');
    t.equal(out.replaced_next, nextBefore, 'it takes the place of the generated next key');
    const jwks = JSON.parse(rt.keystore.jwksBody) as { keys: JWK[] };
    t.ok(jwks.keys.some((k) => k.kid === out.kid), 'published at once (the running keystore was reloaded)');
    t.notOk(jwks.keys.some((k) => k.kid === nextBefore), 'the replaced key, which never signed, is gone');
    const published = jwks.keys.find((k) => k.kid === out.kid)!;
    t.notOk('d' in published);
    const sealed = await rt.db.selectFrom('signing_keys').select('private_sealed').where('kid', '=', out.kid).executeTakeFirstOrThrow();
    t.match(sealed.private_sealed, /^v1\./, 'sealed under the KEK');

    // it waits like any next key, then signs; the signature verifies with the imported public key
    t.equal((await refusal(rotateKeys(rt)))?.code, 'too_early');
    clock.advance(360);
    await rotateKeys(rt);
    await rt.keystore.reload();
    const tok = await signAccessToken(rt, { sub: 'u', clientId: 'c', scope: [], aud: ['https://api.example'], statusIdx: 0 });
    t.equal(tok.kid, out.kid);
    const [h, p, s] = tok.token.split('.');
    t.ok(crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key: k1.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(s!, 'base64url')), 'signed by the imported private key');

    // the same key again, and a revoked key: never
    const again = await refusal(importKey(rt, { pem: k1.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string }));
    t.equal(again?.code, 'conflict');
    t.match(again?.message, /already here \(active\)/);
    const k2 = ec();
    const imp2 = await importKey(rt, { jwk: JSON.stringify(k2.privateKey.export({ format: 'jwk' })) });
    t.equal(imp2.kid, await thumbprint(k2.privateKey), 'JWK import');
    await revokeKey(rt, imp2.kid);
    const back = await refusal(importKey(rt, { pem: k2.privateKey.export({ format: 'pem', type: 'sec1' }) as string }));
    t.equal(back?.code, 'conflict');
    t.match(back?.message, /revoked/);

    // SEC1 PEM; RSA needs --alg; algorithms must be enabled; weak or foreign keys refused
    const k3 = ec();
    t.equal((await importKey(rt, { pem: k3.privateKey.export({ format: 'pem', type: 'sec1' }) as string })).alg, 'ES256', 'SEC1 PEM');
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaPem = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string;
    const noAlg = await refusal(importKey(rt, { pem: rsaPem }));
    t.match(noAlg?.message, /RS256 or PS256: say which with --alg/);
    const ps = await refusal(importKey(rt, { pem: rsaPem, alg: 'PS256' }));
    t.match(ps?.message, /PS256 is not enabled/);
    const wrongAlg = await refusal(importKey(rt, { pem: rsaPem, alg: 'ES256' }));
    t.match(wrongAlg?.message, /cannot be used for ES256/);
    const rs = await importKey(rt, { pem: rsaPem, alg: 'RS256' });
    t.equal(rs.alg, 'RS256');
    t.equal(rs.kid, await thumbprint(rsa.privateKey));
    const rsaJwk = { ...(rsa.privateKey.export({ format: 'jwk' }) as JWK), alg: 'RS256' };
    t.match((await refusal(importKey(rt, { jwk: JSON.stringify(rsaJwk), alg: 'PS256' })))?.message, /contradicts/);
    const weak = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    t.match((await refusal(importKey(rt, { pem: weak, alg: 'RS256' })))?.message, /at least 2048 bits/);
    const p384 = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    t.match((await refusal(importKey(rt, { pem: p384 })))?.message, /P-256/);
    const ed = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    t.match((await refusal(importKey(rt, { jwk: JSON.stringify(ed) })))?.message, /EdDSA is not enabled/);
    t.match((await refusal(importKey(rt, { jwk: JSON.stringify(k3.publicKey.export({ format: 'jwk' })) })))?.message, /not a private key/);
    t.match((await refusal(importKey(rt, { jwk: JSON.stringify({ keys: [] }) })))?.message, /not a JWK Set/);
    t.match((await refusal(importKey(rt, { pem: k3.publicKey.export({ format: 'pem', type: 'spki' }) as string })))?.message, /no private key/);
    const encrypted = k3.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }) as string;
    t.match((await refusal(importKey(rt, { pem: encrypted })))?.message, /encrypted/);
    // a JWK whose public part belongs to another key: never published as it is
    const other = ec().publicKey.export({ format: 'jwk' });
    const mixed = { ...(k3.privateKey.export({ format: 'jwk' }) as JWK), x: other.x, y: other.y };
    const mixedErr = await refusal(importKey(rt, { jwk: JSON.stringify(mixed) }));
    t.equal(mixedErr?.code, 'invalid_key', 'a mismatched public part is refused');

    const cliMissing = await runCommand(['keys', 'import'], cliContextFor(rt), undefined);
    t.equal(cliMissing.code, 1);
    t.match(cliMissing.stderr, /exactly one of --pem FILE or --jwk FILE/);
    const cliNoFile = await runCommand(['keys', 'import', '--pem', path.join(dir, 'nope.pem')], cliContextFor(rt), undefined);
    t.match(cliNoFile.stderr, /cannot read it \(ENOENT\)/);
    const audit = await rt.db.selectFrom('audit_events').select('details').where('type', '=', 'key.imported').execute();
    t.equal(audit.length, 4, 'each import is audited');
  });
}
