/**
 * PostgreSQL instances hearing each other (pg-watcher.ts, change-notify.ts): two backends on one
 * real schema stand for two instances; what one writes, the other's watchExternalChanges reports,
 * exactly and in commit order, never its own writes, never another schema's, and nothing lost when
 * its listening connection is terminated from outside or a notification would not fit.
 */

import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ExternalChange, NewMessage, SessionBackend } from '../../src/backends/backend.js';
import { channelOf } from '../../src/backends/postgres/change-notify.js';
import { pgTables } from '../../src/backends/postgres/pg-context.js';
import { PgWatcher } from '../../src/backends/postgres/pg-watcher.js';
import {
  openPostgresBackend,
  type PostgresBackendOptions,
} from '../../src/backends/postgres/postgres-backend.js';
import {
  dropSchemas,
  listenerPids,
  TEST_DATABASE_URL,
  uniqueSchema,
  withAdminClient,
} from '../helpers/postgres-database.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const user = (content: string): NewMessage => ({ role: 'user', content });
const schemas = new Set<string>();
const opened: SessionBackend[] = [];
const closers: Array<() => void> = [];

afterEach(() => {
  for (const close of closers.splice(0)) close();
});

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await dropSchemas(schemas);
});

async function open(schema: string, options: Partial<PostgresBackendOptions> = {}): Promise<SessionBackend> {
  schemas.add(schema);
  const backend = await openPostgresBackend({
    databaseUrl: TEST_DATABASE_URL,
    schema,
    poolSize: 3,
    ...options,
  });
  opened.push(backend);
  return backend;
}

/** What a watcher reported, and a way to wait for more. */
class Heard {
  readonly changes: ExternalChange[] = [];
  private waiters = new Set<() => void>();

  readonly listener = (change: ExternalChange) => {
    this.changes.push(change);
    for (const wake of [...this.waiters]) wake();
  };

  /** Resolves once `condition` holds; rejects after 15 s with what was heard. */
  until(condition: (changes: ExternalChange[]) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition(this.changes)) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`not heard; heard: ${JSON.stringify(this.changes)}`));
      }, 15_000);
      this.waiters.add(check);
      check();
    });
  }

  /** Renames `probe` through `writer` until the watcher reports it: it listens from then on. */
  async listening(writer: SessionBackend): Promise<void> {
    for (let i = 0; ; i++) {
      const name = `probe ${i}`;
      await writer.renameSession('probe', name);
      const heard = this.until((c) => c.some((x) => x.kind === 'renamed' && x.name === name));
      const timeout = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 200));
      if ((await Promise.race([heard.then(() => 'heard' as const), timeout])) === 'heard') break;
      heard.catch(() => {});
      if (i > 100) throw new Error('the watcher never started listening');
    }
    this.changes.length = 0;
  }

  /** Waits for a marker write through `writer` (a rename of `mark`), then returns what came before it. */
  async through(writer: SessionBackend, mark: string): Promise<ExternalChange[]> {
    await writer.renameSession('mark', mark);
    await this.until((c) => c.some((x) => x.kind === 'renamed' && x.name === mark));
    const at = this.changes.findIndex((x) => x.kind === 'renamed' && x.name === mark);
    return this.changes.splice(0).slice(0, at);
  }
}

function watch(backend: SessionBackend, heard: Heard): void {
  const running = backend.watchExternalChanges!(heard.listener);
  closers.push(() => running.close());
}

describe('PostgreSQL instances hear each other (LISTEN/NOTIFY)', () => {
  it('reports every kind of write another instance makes, in commit order, never its own', async () => {
    const schema = uniqueSchema('sg_pgw_kinds');
    const a = await open(schema);
    const b = await open(schema);
    const heard = new Heard();
    watch(a, heard);
    await heard.listening(b);

    const first = await b.append('k', [user('one'), user('two')]);
    await a.append('k', [user('own, not reported')]);
    const third = await b.append('k', [user('three')]);
    const removed = await b.removeLast('k');
    await b.compact('k');
    await b.renameSession('k', 'named');
    await a.renameSession('k', 'own name');
    await b.restoreSession!('k', { name: 'restored', createdAt: null, lastActivityAt: null });
    await b.append('gone', [user('x')]);
    await b.deleteSession('gone');
    await b.append('stale', [user('y')]);
    const swept = await b.cleanupStale(1e-9);
    expect(swept).toContain('stale');

    const changes = await heard.through(b, 'end');
    const [s1, s2] = first.messages.map((m) => m.seq);
    expect(changes).toEqual([
      {
        kind: 'appended',
        sessionKey: 'k',
        afterSeq: s1! - 1,
        throughSeq: s2,
        after: { messageCount: 2, lastSeq: s2 },
      },
      {
        kind: 'appended',
        sessionKey: 'k',
        afterSeq: third.messages[0]!.seq - 1,
        throughSeq: third.messages[0]!.seq,
        after: { messageCount: 4, lastSeq: third.messages[0]!.seq },
      },
      {
        kind: 'removed',
        sessionKey: 'k',
        seqs: [third.messages[0]!.seq],
        after: { messageCount: 3, lastSeq: removed.session.lastSeq },
      },
      { kind: 'compacted', sessionKey: 'k' },
      { kind: 'renamed', sessionKey: 'k', name: 'named' },
      { kind: 'renamed', sessionKey: 'k', name: 'restored' },
      expect.objectContaining({ kind: 'appended', sessionKey: 'gone' }),
      { kind: 'deleted', sessionKey: 'gone' },
      expect.objectContaining({ kind: 'appended', sessionKey: 'stale' }),
      ...[...swept].sort().map((key) => ({ kind: 'deleted', sessionKey: key })),
    ]);
  });

  it('hears nothing from another schema on the same database', async () => {
    const schema = uniqueSchema('sg_pgw_own');
    const a = await open(schema);
    const b = await open(schema);
    const other = await open(uniqueSchema('sg_pgw_other'));
    const heard = new Heard();
    watch(a, heard);
    await heard.listening(b);
    await other.append('k', [user('elsewhere')]);
    await other.renameSession('mark', 'end');
    await b.append('k', [user('here')]);
    const changes = await heard.through(b, 'end');
    expect(changes).toEqual([
      expect.objectContaining({
        kind: 'appended',
        sessionKey: 'k',
        after: { messageCount: 1, lastSeq: expect.any(Number) },
      }),
    ]);
    expect(channelOf(schema)).not.toBe(channelOf([...schemas].find((s) => s.startsWith('sg_pgw_other'))!));
  });

  it('names a long schema within PostgreSQL’s 63-byte channel names, without collisions', () => {
    const long = (tail: string) => `${'s'.repeat(56)}${tail}`;
    expect(Buffer.byteLength(channelOf(long('a')))).toBeLessThanOrEqual(63);
    expect(channelOf(long('a'))).not.toBe(channelOf(long('b')));
    expect(channelOf('sessiongraph')).toBe('sessiongraph_sessiongraph');
  });

  it('catches up after its listening connection is terminated: what changed meanwhile is reported', async () => {
    const schema = uniqueSchema('sg_pgw_drop');
    const a = await open(schema);
    const b = await open(schema);
    await b.append('before', [user('kept')]);
    await b.append('doomed', [user('deleted while away')]);
    const heard = new Heard();
    // A watcher of its own, through a proxy that refuses its reconnects from the moment it reports
    // the loss until the writes below are committed: they land while it is away however slowly they
    // run (a backoff alone would be a race with them).
    const proxy = await startTcpProxy(TEST_DATABASE_URL);
    closers.push(() => void proxy.close());
    let keepOut = false;
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk, _encoding, done) {
          if (keepOut && String(chunk).includes('reconnecting')) {
            keepOut = false;
            proxy.partition();
          }
          done();
        },
      }),
    );
    const watcher = new PgWatcher({
      config: {
        connectionString: proxy.url,
        fallback_application_name: `sessiongraph listen ${schema}`,
      },
      t: pgTables(schema),
      changes: { channel: channelOf(schema), instanceId: 'the-watcher' },
      listener: heard.listener,
      logger,
      minBackoffMs: 200,
      maxBackoffMs: 400,
    });
    closers.push(() => watcher.close());
    await heard.listening(b);
    void a;

    const [pid] = await listenerPids(schema);
    expect(pid).toBeDefined();
    keepOut = true;
    await withAdminClient((admin) => admin.query('SELECT pg_terminate_backend($1)', [pid]));
    // kept away until these are committed: never notified to it
    const missed = await b.append('during', [user('while away')]);
    await b.deleteSession('doomed');
    await b.renameSession('before', 'renamed while away');
    // let it back (had it not noticed the termination yet, it reconnects through the proxy later)
    keepOut = false;
    proxy.heal();

    await heard.until((c) => c.some((x) => x.kind === 'deleted'));
    const caughtUp = heard.changes.splice(0);
    expect(caughtUp).toEqual(
      expect.arrayContaining([
        { kind: 'rewritten', sessionKey: 'during' },
        { kind: 'rewritten', sessionKey: 'before' },
        { kind: 'deleted', sessionKey: 'doomed' },
      ]),
    );
    // a superset at most: the probes written since its last confirmed point, nothing older
    const expected = ['rewritten during', 'rewritten before', 'deleted doomed', 'rewritten probe'];
    for (const change of caughtUp) expect(expected).toContain(`${change.kind} ${change.sessionKey}`);
    expect((await listenerPids(schema)).filter((p) => p !== pid)).toHaveLength(1);
    // and live again
    const after = await b.append('during', [user('heard live')]);
    const changes = await heard.through(b, 'end');
    expect(changes).toEqual([
      {
        kind: 'appended',
        sessionKey: 'during',
        afterSeq: after.messages[0]!.seq - 1,
        throughSeq: after.messages[0]!.seq,
        after: { messageCount: 2, lastSeq: after.messages[0]!.seq },
      },
    ]);
    expect(missed.messages).toHaveLength(1);
  });

  it('replaces a listening connection that stops answering, and reports what it missed', async () => {
    const schema = uniqueSchema('sg_pgw_stuck');
    const b = await open(schema);
    // the watcher's connection goes through a proxy that can swallow everything the server says
    let stalled = false;
    const proxy = await startTcpProxy(TEST_DATABASE_URL, { toClient: () => !stalled });
    closers.push(() => void proxy.close());
    const lines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          // the stalled connection was given up: let the next one through
          if (String(chunk).includes('reconnecting')) stalled = false;
          done();
        },
      }),
    );
    const heard = new Heard();
    const watcher = new PgWatcher({
      config: { connectionString: proxy.url },
      t: pgTables(schema),
      changes: { channel: channelOf(schema), instanceId: 'the-watcher' },
      listener: heard.listener,
      logger,
      intervalMs: 500,
    });
    closers.push(() => watcher.close());
    await heard.listening(b);
    stalled = true;
    await b.append('during', [user('said while nobody heard')]);
    await heard.until((c) => c.some((x) => x.kind === 'rewritten' && x.sessionKey === 'during'));
    expect(lines.join('')).toContain('did not hear its own marker back');
    const after = await b.append('during', [user('heard live')]);
    const changes = await heard.through(b, 'end');
    expect(changes.filter((c) => c.kind === 'appended')).toEqual([
      expect.objectContaining({ sessionKey: 'during', throughSeq: after.messages[0]!.seq }),
    ]);
  });

  it('a write too large to describe in 8000 bytes still commits, and the listener catches up', async () => {
    const schema = uniqueSchema('sg_pgw_big');
    const limits = { maxKeyBytes: 20_000 };
    const a = await open(schema, { limits });
    const b = await open(schema, { limits });
    const heard = new Heard();
    watch(a, heard);
    await heard.listening(b);
    const key = `k${'\u0001'.repeat(3_000)}`; // JSON-escaped: 18 kB of payload
    await b.append(key, [user('stored anyway')]);
    expect((await a.session(key))?.messageCount).toBe(1);
    const changes = await heard.through(b, 'end');
    expect(changes).toContainEqual({ kind: 'rewritten', sessionKey: key });
    expect(changes.every((c) => c.kind === 'rewritten')).toBe(true);
  });

  it('leaves a tombstone of each deleted session for a catch-up to find', async () => {
    const schema = uniqueSchema('sg_pgw_stamp');
    const b = await open(schema);
    await b.append('k', [user('x')]);
    await b.deleteSession('k');
    const rows = await withAdminClient(async (admin) => {
      const q = pg.escapeIdentifier(schema);
      return (await admin.query(`SELECT key FROM ${q}.deleted_sessions`)).rows;
    });
    expect(rows).toEqual([{ key: 'k' }]);
  });
});
