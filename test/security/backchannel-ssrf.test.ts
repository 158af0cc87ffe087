// Issue 23, finding 10: with an https issuer a back-channel logout URI must name a public host.
// Loopback, private, link-local, CGNAT, unspecified addresses (and IPv6 forms embedding them, and
// names resolving to them) are refused at registration and again at delivery, where no connection
// is made and only a generic error is recorded; BACKCHANNEL_ALLOWED_HOSTS lets an operator allow a
// host (or host:port). Recorded errors never carry a socket's text (a port oracle).
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { sql } from 'kysely';
import { backends, dropCreatedDatabases } from '../helpers/backends.js';
import { createTestEnv, freePort, type TestEnv } from '../helpers/runtime.js';
import { cli } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/process.js';
import { runCommand } from '../../src/cli/registry.js';
import { cliContextFor } from '../../src/ops/runtime.js';
import { insertClient } from '../../src/store/clients.js';
import { LOGOUT_NOTICES_CHANNEL } from '../../src/store/logout-outbox.js';
import { classifyAddress, pinnedLookup, publicAddresses } from '../../src/protocol/ip-ranges.js';
import { loadConfig } from '../../src/core/config.js';

t.teardown(dropCreatedDatabases);

t.test('address classes', async (t) => {
  const cases: Array<[string, string | undefined]> = [
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['93.184.215.14', 'public'],
    ['8.8.8.8', 'public'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['::ffff:8.8.8.8', 'public'],
    ['::10.0.0.1', 'private'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:7f00:1::1', 'loopback'],
    ['2606:4700::1111', 'public'],
    ['example.com', undefined],
  ];
  for (const [ip, cls] of cases) t.equal(classifyAddress(ip), cls, ip);
  await t.rejects(publicAddresses('rebound.test', async () => [{ address: '203.0.113.9', family: 4 }, { address: '10.0.0.7', family: 4 }]), { name: 'Error', message: /not a public address/ }, 'one private address among public ones refuses the name');
});

t.test('BACKCHANNEL_ALLOWED_HOSTS', async (t) => {
  t.same(loadConfig({ BACKCHANNEL_ALLOWED_HOSTS: ' RP.internal , 127.0.0.1:8080,[::1]:6379,[0:0::1] ' }).backchannelAllowedHosts, ['rp.internal', '127.0.0.1:8080', '[::1]:6379', '[::1]']);
  t.same(loadConfig({}).backchannelAllowedHosts, []);
  for (const bad of ['http://rp', 'rp:99999', 'a b', 'rp/x']) t.throws(() => loadConfig({ BACKCHANNEL_ALLOWED_HOSTS: bad }), { message: /^BACKCHANNEL_ALLOWED_HOSTS: / }, bad);
});

t.test('a pinned lookup connects to the checked address, never resolving the name again', async (t) => {
  const server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  const sock = net.connect({ host: 'no-such-host.invalid', port, lookup: pinnedLookup([{ address: '127.0.0.1', family: 4 }]) as unknown as net.LookupFunction });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  t.equal(sock.remoteAddress, '127.0.0.1');
  sock.destroy();
});

/** A listener on 127.0.0.1 that counts every TCP connection it is offered, and answers HTTP 204. */
async function listener() {
  let connections = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, connections: () => connections, close: () => new Promise<void>((r) => server.close(() => r())) };
}

for (const backend of backends()) {
  t.test(`back-channel logout targets on ${backend.name}`, async (t) => {
    const internal = await listener(); // stands for Postgres, Redis, a metadata service
    t.teardown(internal.close);
    const allowed = await listener();
    t.teardown(allowed.close);
    // an allowed port where nothing listens, and one where something speaks no HTTP
    const closedPort = await freePort();
    const garbage = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    t.teardown(() => garbage.close());
    const garbagePort = (garbage.address() as AddressInfo).port;

    const e: TestEnv = await createTestEnv(await backend.create(), {
      env: { ISSUER: 'https://op.example', BACKCHANNEL_ALLOWED_HOSTS: `127.0.0.1:${allowed.port},127.0.0.1:${closedPort},127.0.0.1:${garbagePort}` },
    });
    t.teardown(() => e.close());
    const clientCount = async () => Number((await e.rt.db.selectFrom('clients').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    const run = (argv: string[]) => runCommand([...argv, '--json'], cliContextFor(e.rt), undefined);

    await t.test('registration refuses non-public targets', async (t) => {
      const refused = [
        `http://127.0.0.1:${internal.port}/`,
        'http://127.0.0.1:5432/',
        'https://169.254.169.254/latest/meta-data/',
        'http://[::1]:6379/',
        'https://[::ffff:127.0.0.1]/bcl',
        'https://[::ffff:a9fe:a9fe]/bcl',
        'https://[fc00::1]/bcl',
        'https://[fe80::1]/bcl',
        'https://10.1.2.3/bcl',
        'https://172.16.0.1/bcl',
        'https://192.168.0.1/bcl',
        'https://100.64.0.1/bcl',
        'https://0.0.0.0/bcl',
        'https://2130706433/bcl', // 127.0.0.1 in decimal
        'https://0x7f.1/bcl',
        `https://localhost:${internal.port}/bcl`, // a name resolving to loopback
        `http://localhost:${internal.port}/bcl`,
        'http://127.0.0.1:1/bcl', // an allowed host, on a port that is not
      ];
      const before = await clientCount();
      for (const uri of refused) {
        const r = await run(['clients', 'create', '--name', 'X', '--grant-types', 'client_credentials', '--backchannel-logout-uri', uri]);
        t.not(r.code, 0, `create ${uri}: refused`);
        t.match(r.stderr, /not a public address/, `create ${uri}: says why`);
      }
      t.equal(await clientCount(), before, 'no client was created');
      const ok = await cli(e.rt, ['clients', 'create', '--name', 'Public', '--grant-types', 'client_credentials', '--backchannel-logout-uri', 'https://93.184.215.14/bcl']);
      for (const uri of [`https://[::1]/bcl`, `https://localhost/bcl`]) {
        const r = await run(['clients', 'update', ok.client_id as string, '--backchannel-logout-uri', uri]);
        t.not(r.code, 0, `update ${uri}: refused`);
      }
      const row = await e.rt.db.selectFrom('clients').select('backchannel_logout_uri').where('client_id', '=', ok.client_id as string).executeTakeFirstOrThrow();
      t.equal(row.backchannel_logout_uri, 'https://93.184.215.14/bcl', 'the update changed nothing');
      const allowedUri = `http://127.0.0.1:${allowed.port}/bcl`;
      const a = await cli(e.rt, ['clients', 'create', '--name', 'Allowed', '--grant-types', 'client_credentials', '--backchannel-logout-uri', allowedUri]);
      t.equal(a.backchannel_logout_uri, allowedUri, 'a host:port in BACKCHANNEL_ALLOWED_HOSTS is accepted');
    });

    await t.test('delivery connects to no refused address and records generic errors', async (t) => {
      const at = new Date(e.clock.now());
      // registered before the rule (or a name whose DNS answer changed since): delivery checks again
      const targets: Record<string, string> = {
        literal: `http://127.0.0.1:${internal.port}/bcl`,
        name: `http://localhost:${internal.port}/bcl`,
        mapped: `http://[::ffff:127.0.0.1]:${internal.port}/bcl`,
        allowed: `http://127.0.0.1:${allowed.port}/bcl`,
        closed: `http://127.0.0.1:${closedPort}/bcl`,
        garbage: `http://127.0.0.1:${garbagePort}/bcl`,
      };
      const ids: Record<string, string> = {};
      for (const [label, uri] of Object.entries(targets)) {
        const c = await insertClient(
          e.rt.db,
          { clientId: `c-${label}`, name: label, secretDigest: null, isPublic: true, redirectUris: [], postLogoutRedirectUris: [], grantTypes: [], scopes: ['openid'], audiences: [], firstParty: false, backchannelLogoutUri: uri },
          at,
        );
        ids[label] = c.clientId;
        await e.rt.db.insertInto('logout_notices').values({ jti: `jti-${label}`, client_id: c.clientId, sub: 'user-1', sid: null, event: 'test', created_at: at, next_attempt_at: at }).execute();
      }
      await sql`SELECT pg_notify(${LOGOUT_NOTICES_CHANNEL}, '')`.execute(e.rt.db);
      const notice = (label: string) => e.rt.db.selectFrom('logout_notices').selectAll().where('client_id', '=', ids[label]!).executeTakeFirstOrThrow();
      const settled = async () => {
        for (const label of Object.keys(targets)) {
          const n = await notice(label);
          if (!n.delivered_at && !n.failed_at && !n.last_error) return undefined;
        }
        return true;
      };
      await waitFor(settled, 30000, 50);
      for (const label of ['literal', 'name', 'mapped']) {
        const n = await notice(label);
        t.equal(n.last_error, 'refused_address', `${label}: refused_address`);
        t.ok(n.failed_at, `${label}: failed at once (it would be refused on every attempt)`);
        t.equal(n.delivered_at, null, `${label}: not delivered`);
      }
      t.equal(internal.connections(), 0, 'no connection reached the listener on 127.0.0.1');
      t.ok((await notice('allowed')).delivered_at, 'the allowed host got its notice');
      t.equal(allowed.connections(), 1, 'one connection to the allowed host');
      for (const label of ['closed', 'garbage']) {
        const n = await notice(label);
        t.equal(n.last_error, 'delivery_failed', `${label}: a generic error, the same for a closed and an open port`);
        t.equal(n.delivered_at, null);
      }
    });
  });
}
