/**
 * `/ready` against real stores taken away under a running server: PostgreSQL behind a TCP proxy
 * that is cut mid-run, the SQLite file moved away and replaced, the JSONL folder removed. Each
 * time readiness must fail, say why in the log once, and recover when the store is back.
 */

import { copyFileSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionBackend } from '../../src/backends/backend.js';
import { type BackendConfig, openBackend } from '../../src/backends/open-backend.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { postGraphQL, testConfig } from '../helpers/server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Served {
  server: RunningServer;
  ready: () => Promise<number>;
  /** The `not ready` lines logged so far. */
  notReady: () => Array<{ level: number; reason?: string }>;
}

async function serve(config: BackendConfig): Promise<Served> {
  const logged: Array<{ level: number; msg: string; reason?: string }> = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const text of String(chunk).split('\n')) if (text) logged.push(JSON.parse(text));
      done();
    },
  });
  const backend: SessionBackend = await openBackend(config);
  cleanups.push(() => backend.close());
  const server = await startServer(testConfig(config.kind, config.dataDir), {
    backend,
    logger: createLogger({ level: 'info', destination }),
  });
  cleanups.push(() => server.close());
  return {
    server,
    ready: async () => (await fetch(new URL('/ready', server.url))).status,
    notReady: () => logged.filter((line) => line.msg === 'not ready'),
  };
}

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sg-ready-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('/ready', () => {
  it('fails while PostgreSQL cannot be reached, and recovers when it can', async () => {
    const proxy: TcpProxy = await startTcpProxy(TEST_DATABASE_URL);
    cleanups.push(() => proxy.close());
    const schema = uniqueSchema('ready');
    cleanups.push(() => dropSchemas([schema]));
    const s = await serve({
      kind: 'postgres',
      dataDir: workspace(),
      databaseUrl: proxy.url,
      databaseSchema: schema,
      poolSize: 2,
    });
    expect(await s.ready()).toBe(200);

    proxy.partition();
    expect(await s.ready()).toBe(503);
    expect(await s.ready()).toBe(503);
    // said once, not at every probe
    const notReady = s.notReady();
    expect(notReady).toHaveLength(1);
    expect(notReady[0]!.level).toBe(40);
    expect(notReady[0]!.reason).toMatch(/^storage is unreachable/);

    proxy.heal();
    expect(await s.ready()).toBe(200);
    const append = await postGraphQL(
      s.server.url,
      'mutation { appendMessage(input: { sessionKey: "k", role: "user", content: "back" }) { __typename } }',
    );
    expect(append.data?.appendMessage.__typename).toBe('AppendMessagePayload');
  });

  it('fails while the SQLite file is gone or replaced, and recovers when the same file is back', async () => {
    const dataDir = workspace();
    const s = await serve({ kind: 'sqlite', dataDir });
    const file = join(dataDir, 'sessions', 'sessions.db');
    expect(await s.ready()).toBe(200);

    renameSync(file, `${file}.moved`);
    expect(await s.ready()).toBe(503);
    expect(s.notReady()[0]!.reason).toContain('cannot be reached');

    // a copy at the same path is another file: what the server writes would not land in it
    copyFileSync(`${file}.moved`, file);
    expect(await s.ready()).toBe(503);
    expect(s.notReady()[1]!.reason).toContain('was replaced');

    renameSync(`${file}.moved`, file);
    expect(await s.ready()).toBe(200);
  });

  it('fails while the JSONL sessions folder is gone', async () => {
    const dataDir = workspace();
    const s = await serve({ kind: 'jsonl', dataDir });
    expect(await s.ready()).toBe(200);
    renameSync(join(dataDir, 'sessions'), join(dataDir, 'elsewhere'));
    expect(await s.ready()).toBe(503);
    renameSync(join(dataDir, 'elsewhere'), join(dataDir, 'sessions'));
    expect(await s.ready()).toBe(200);
  });
});
