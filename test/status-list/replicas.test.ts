// Issue 12: every replica serves the same bits soon after the revoking commit (the denylist's
// NOTIFY), whichever replica revoked. Two replicas on Postgres (PGlite: one process, one replica).
import t from 'tap';
import { decodeJwt } from 'jose';
import { StatusList } from '@sd-jwt/jwt-status-list';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { startReplicas } from '../helpers/replicas.js';
import { createClient, createUser } from '../helpers/fixtures.js';
import { loginAndRedeem, postForm } from '../helpers/flow.js';
import { waitFor } from '../helpers/process.js';

t.teardown(dropCreatedDatabases);

const REDIRECT = 'http://127.0.0.1:9999/cb';

for (const backend of backends()) {
  t.test(`status lists across replicas on ${backend.name}`, async (t) => {
    const { a, urls } = await startReplicas(t, backend);
    const issuer = a.config.issuer;
    await createUser(a.rt, 'rep@example.com', 'rep password 1');
    const app = await createClient(a.rt, ['--name', 'App', '--redirect-uri', REDIRECT, '--first-party', '--scopes', 'openid offline_access']);
    const login = async () =>
      (await loginAndRedeem({ issuer, clientId: app.clientId, secret: app.clientSecret, redirectUri: REDIRECT, email: 'rep@example.com', password: 'rep password 1', scope: 'openid offline_access' })).tokens;
    const ref = (token: string) => (decodeJwt(token) as { status: { status_list: { idx: number; uri: string } } }).status.status_list;
    // the list as replica `base` serves it (the URI names the issuer; each replica answers for it)
    const listAt = async (base: string, uri: string) => {
      const res = await fetch(uri.replace(issuer, base));
      t.equal(res.status, 200);
      const payload = decodeJwt(await res.text()) as { status_list: { bits: 1; lst: string } };
      return payload.status_list.lst;
    };
    const bitAt = async (base: string, token: string) => StatusList.decompressStatusList(await listAt(base, ref(token).uri), 1).getStatus(ref(token).idx);

    const victim = await login();
    const bystander = await login();
    for (const u of urls) t.equal(await bitAt(u, victim.access_token), 0, `VALID at ${u}`);
    // revoked through the first replica; every replica's list follows
    t.equal((await postForm(`${urls[0]}/revoke`, { token: victim.refresh_token! }, { clientId: app.clientId, secret: app.clientSecret })).status, 200);
    for (const u of urls) {
      const t0 = Date.now();
      await t.resolves(waitFor(async () => ((await bitAt(u, victim.access_token)) === 1 ? true : undefined), 10_000, 50), `INVALID at ${u}`);
      t.comment(`${u}: INVALID ${Date.now() - t0} ms after the revocation answered`);
      t.equal(await bitAt(u, bystander.access_token), 0, `the bystander stays VALID at ${u}`);
    }
    const lists = await Promise.all(urls.map((u) => listAt(u, ref(victim.access_token).uri)));
    t.equal(new Set(lists).size, 1, 'every replica serves the same bits');
  });
}
