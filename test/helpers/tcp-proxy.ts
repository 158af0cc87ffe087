// A small TCP proxy for tests that need to lose the database and get it back: it forwards
// 127.0.0.1:<port> to a target, can cut every connection and refuse new ones, then resume.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections currently forwarded. */
  readonly connections: number;
  /** Destroy every open connection and refuse (reset) new ones until resume(). */
  cut(): void;
  /** Accept and forward new connections again. */
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<[net.Socket, net.Socket]>();
  let refusing = false;

  const server = net.createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    open.add(pair);
    const drop = (): void => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  return {
    port,
    get connections() {
      return open.size;
    },
    cut() {
      refusing = true;
      for (const [client, upstream] of [...open]) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      open.clear();
    },
    resume() {
      refusing = false;
    },
    close() {
      refusing = true;
      for (const [client, upstream] of [...open]) {
        client.destroy();
        upstream.destroy();
      }
      open.clear();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
