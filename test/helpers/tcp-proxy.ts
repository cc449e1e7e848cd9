/**
 * A TCP proxy that can cut one client off its server (a network partition) and let it back,
 * while other clients of the same server carry on; and, given hooks, look at every chunk either
 * way and cut the connection at an exact moment (postgres-proxy.ts).
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** The target URL, pointing at the proxy. */
  url: string;
  /** Drops every proxied connection and refuses new ones until heal(). */
  partition(): void;
  heal(): void;
  close(): Promise<void>;
}

/** Sees a chunk on its way; returns false to hold it back (after `cut()`, say). */
export type Inspect = (chunk: Buffer, cut: () => void) => boolean;

export interface TcpProxyHooks {
  /** Each chunk from the client, before the server gets it. */
  toServer?: Inspect;
  /** Each chunk from the server, before the client gets it. */
  toClient?: Inspect;
}

/** The ports of the URL schemes the tests proxy, for a URL that names none. */
const DEFAULT_PORTS: Record<string, number> = { 'postgres:': 5432, 'postgresql:': 5432, 'redis:': 6379 };

export async function startTcpProxy(targetUrl: string, hooks: TcpProxyHooks = {}): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port) || DEFAULT_PORTS[target.protocol];
  if (!targetPort) throw new Error(`no port in ${targetUrl}`);
  const sockets = new Set<Socket>();
  let cut = false;

  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, target.hostname);
    sockets.add(client).add(upstream);
    const cutBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    const relay = (from: Socket, to: Socket, inspect: Inspect | undefined) => {
      if (!inspect) from.pipe(to);
      else from.on('data', (chunk: Buffer) => inspect(chunk, cutBoth) && to.write(chunk));
    };
    relay(client, upstream, hooks.toServer);
    relay(upstream, client, hooks.toClient);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
      a.on('error', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  return {
    url: url.toString(),
    partition() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    heal() {
      cut = false;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
