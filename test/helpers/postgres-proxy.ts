/**
 * A TCP proxy in front of the test PostgreSQL that can cut a connection at an exact protocol
 * moment: when the client sends `COMMIT` (so the server never receives it), or when the server
 * answers `COMMIT` (so it committed but the client never hears it).
 */

import { type Inspect, startTcpProxy } from './tcp-proxy.js';

export type CutPoint = 'before-commit' | 'after-commit';

export interface PostgresProxy {
  /** The database URL, pointing at the proxy. */
  url: string;
  /** The next connection that reaches `point` is cut there, both sockets destroyed. */
  armCut(point: CutPoint): void;
  /** Whether the armed cut has happened. */
  readonly cuts: number;
  close(): Promise<void>;
}

/** A simple-protocol Query or CommandComplete message whose text is `COMMIT`. */
const COMMIT = Buffer.from('COMMIT\0');

export async function startPostgresProxy(targetUrl: string): Promise<PostgresProxy> {
  let armed: CutPoint | null = null;
  let cuts = 0;
  /** Cuts at `point` on a chunk that is the message of type `type` ('Q' query, 'C' complete) saying COMMIT. */
  const cutAt =
    (point: CutPoint, type: number): Inspect =>
    (chunk, cut) => {
      if (armed !== point || chunk[0] !== type || !chunk.includes(COMMIT)) return true;
      cuts++;
      armed = null;
      cut();
      return false;
    };
  const proxy = await startTcpProxy(targetUrl, {
    toServer: cutAt('before-commit', 0x51),
    toClient: cutAt('after-commit', 0x43),
  });

  return {
    url: proxy.url,
    armCut(point) {
      armed = point;
    },
    get cuts() {
      return cuts;
    },
    close: () => proxy.close(),
  };
}
