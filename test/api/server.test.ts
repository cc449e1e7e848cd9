import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionBackend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { toTimestamp } from '../../src/backends/timestamps.js';
import { createLogger } from '../../src/logger.js';
import { startServer } from '../../src/server.js';
import { postGraphQL, startTestServer, type TestServer, testConfig } from '../helpers/server.js';

/** A pino destination that keeps every line, to assert on what was logged. */
function captureLogs() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', destination: stream }), text: () => lines.join('') };
}

/** Wraps a real backend, replacing one method. */
function override<K extends keyof SessionBackend>(
  key: K,
  replace: (real: SessionBackend) => SessionBackend[K],
) {
  return (real: SessionBackend): SessionBackend =>
    new Proxy(real, {
      get: (target, property, receiver) =>
        property === key ? replace(target) : Reflect.get(target, property, receiver)?.bind?.(target),
    });
}

describe('the HTTP server', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('answers liveness and readiness, and serves GraphiQL to a browser', async () => {
    t = await startTestServer('sqlite');
    const origin = new URL(t.url).origin;
    expect((await fetch(`${origin}/health`)).status).toBe(200);
    expect((await fetch(`${origin}/ready`)).status).toBe(200);
    const page = await fetch(t.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('sessiongraph');
    expect((await postGraphQL(t.url, '{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('is not ready when the backend fails its probe', async () => {
    t = await startTestServer('sqlite', {
      wrap: override('session', () => async () => {
        throw new Error('disk on fire');
      }),
    });
    expect((await fetch(`${new URL(t.url).origin}/ready`)).status).toBe(503);
  });

  it('masks unexpected errors and logs them with their detail', async () => {
    const logs = captureLogs();
    t = await startTestServer('sqlite', {
      logger: logs.logger,
      wrap: override('sessions', () => async () => {
        throw new Error('SQLITE_CORRUPT: secret detail in page 7');
      }),
    });
    const r = await t.gql('{ sessions { edges { cursor } } }');
    expect(r.errors?.[0]).toMatchObject({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(JSON.stringify(r)).not.toContain('secret');
    expect(logs.text()).toContain('SQLITE_CORRUPT: secret detail');
    expect(logs.text()).toContain('"stack"');
  });

  it('drains on close: an in-flight request finishes, then readiness is false and the port closed', async () => {
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => {
      entered = resolve;
    });
    t = await startTestServer('sqlite', {
      wrap: override('append', (real) => async (...args) => {
        entered();
        await new Promise((r) => setTimeout(r, 300));
        return real.append(...args);
      }),
    });
    const request = t.gql(
      `mutation { appendMessage(input: { sessionKey: "s", role: "user", content: "slow" }) {
        ... on AppendMessagePayload { appendedMessage { content } } } }`,
    );
    await inFlight;
    const closed = t.server.close();
    expect((await t.server.yoga.fetch('http://localhost/ready')).status).toBe(503);
    expect((await request).data?.appendMessage.appendedMessage.content).toBe('slow');
    await closed;
    await expect(fetch(t.url, { method: 'POST' })).rejects.toThrow();
    expect((await t.backend.session('s'))?.messageCount).toBe(1);
  });

  it('opens its own backend from the config, removes stale sessions at start, and closes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sg-api-ttl-'));
    try {
      const seed = await openBackend({ kind: 'sqlite', dataDir: dir });
      await seed.append('old_session', [{ role: 'user', content: 'long ago' }]);
      await seed.append('fresh_session', [{ role: 'user', content: 'just now' }]);
      await seed.close();
      const db = new Database(join(dir, 'sessions', 'sessions.db'));
      db.prepare('UPDATE session_metadata SET last_activity = ? WHERE session_key = ?').run(
        toTimestamp(Date.now() - 48 * 3_600_000),
        'old_session',
      );
      db.close();
      const server = await startServer(testConfig('sqlite', dir, { sessionTtlHours: 24 }), {
        logger: createLogger({ level: 'silent' }),
      });
      const keys = await postGraphQL(server.url, '{ sessions { edges { node { key } } } }');
      expect(keys.data?.sessions.edges).toEqual([{ node: { key: 'fresh_session' } }]);
      await server.close();
      // closed: a second owner can take the database over and sees the same state
      const after = await openBackend({ kind: 'sqlite', dataDir: dir });
      expect(await after.session('old_session')).toBeNull();
      await after.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
