/**
 * What only the SQLite backend has to prove (the behaviour every backend shares is in
 * contract.ts): zeroclaw's database in both schema generations, exact counters, FTS5 details,
 * group commit, several processes on one file, and SIGKILL at any moment. Real files throughout.
 */

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AppendResult,
  type NewMessage,
  type SessionBackend,
  SNIPPET_CLOSE,
  SNIPPET_OPEN,
} from '../../src/backends/backend.js';
import type { BackendOptions } from '../../src/backends/backend-options.js';
import { parseSearchQuery, toFtsMatch } from '../../src/backends/search-query.js';
import { openSqliteBackend } from '../../src/backends/sqlite/sqlite-backend.js';
import { RANK_WINDOW, SESSION_PROBE_LIMIT } from '../../src/backends/sqlite/sqlite-search.js';
import { AppError, ConflictError, InvalidInputError, UnavailableError } from '../../src/errors.js';
import { crashOp } from '../helpers/sqlite-writer.js';
import {
  checkIntegrity,
  chronoTimestamp,
  countDrift,
  ZEROCLAW_HEAD_DDL,
  ZEROCLAW_SEED_DDL,
  zeroclawAppend,
  zeroclawListSessions,
  zeroclawLoad,
  zeroclawPragmas,
  zeroclawSetAgentAlias,
  zeroclawSetName,
} from '../helpers/sqlite-zeroclaw.js';

const CHRONO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00$/;
const WRITER = fileURLToPath(new URL('../helpers/sqlite-writer.ts', import.meta.url));
const user = (content: string): NewMessage => ({ role: 'user', content });

let dir: string;
let store: SessionBackend | null = null;
const children = new Set<ChildProcessWithoutNullStreams>();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-sqlite-'));
});
afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  await store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});

async function open(options: Partial<BackendOptions> = {}): Promise<SessionBackend> {
  await store?.close();
  store = await openSqliteBackend({ dataDir: dir, ...options });
  return store;
}

/** A connection of our own to the same file, as zeroclaw (or a test) would hold one. */
function withDb<T>(work: (db: Database.Database) => T): T {
  mkdirSync(join(dir, 'sessions'), { recursive: true });
  const db = new Database(join(dir, 'sessions', 'sessions.db'));
  try {
    return work(db);
  } finally {
    db.close();
  }
}

describe('zeroclaw compatibility', () => {
  const t0 = Date.parse('2026-03-24T21:51:41.000Z');

  it('serves a database zeroclaw made with the seed schema, orphan rows included', async () => {
    withDb((db) => {
      zeroclawPragmas(db);
      db.exec(ZEROCLAW_SEED_DDL);
      zeroclawAppend(db, 'telegram_100_alice', 'user', 'the deploy failed', chronoTimestamp(t0, 1));
      zeroclawAppend(
        db,
        'telegram_100_alice',
        'assistant',
        'looking at the logs',
        chronoTimestamp(t0 + 1, 2),
      );
      zeroclawAppend(db, 'gw_abc', 'user', 'hello gateway', chronoTimestamp(t0 + 2, 3));
      zeroclawSetName(db, 'gw_abc', 'Gateway chat');
      // zeroclaw crashed between its two statements: a row, no metadata.
      db.prepare('INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)').run(
        'discord_9_orphan',
        'user',
        'lost deploy note',
        chronoTimestamp(t0 + 3),
      );
    });
    const s = await open();

    const page = await s.messages('telegram_100_alice');
    expect(page.items.map((m) => [m.role, m.content, m.createdAt])).toEqual([
      ['user', 'the deploy failed', chronoTimestamp(t0, 1)],
      ['assistant', 'looking at the logs', chronoTimestamp(t0 + 1, 2)],
    ]);
    const listed = await s.sessions();
    expect(listed.items.map((x) => [x.key, x.name, x.messageCount])).toEqual([
      ['gw_abc', 'Gateway chat', 1],
      ['telegram_100_alice', null, 2],
    ]);
    expect(await s.session('discord_9_orphan')).toMatchObject({ messageCount: 1, name: null });
    const hits = await s.search({ query: 'deploy' });
    expect(hits.hits.map((h) => h.message.sessionKey).sort()).toEqual([
      'discord_9_orphan',
      'telegram_100_alice',
    ]);

    // Writing to the orphan gives it metadata whose count includes the row zeroclaw left.
    await s.append('discord_9_orphan', [user('second')]);
    expect(await s.session('discord_9_orphan')).toMatchObject({ messageCount: 2 });
    await s.close();
    store = null;
    withDb((db) => {
      const columns = db.prepare("SELECT name FROM pragma_table_info('session_metadata')").pluck().all();
      expect(columns).toEqual(expect.arrayContaining(['state', 'agent_alias', 'channel_id', 'sender_id']));
      expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'sessions_au'").pluck().get()).toBe(
        'sessions_au',
      );
      expect(zeroclawLoad(db, 'telegram_100_alice').map((m) => m.content)).toEqual([
        'the deploy failed',
        'looking at the logs',
      ]);
      expect(countDrift(db)).toEqual([]);
      checkIntegrity(db);
    });
  });

  it("serves zeroclaw HEAD's schema and leaves its extra columns alone", async () => {
    withDb((db) => {
      zeroclawPragmas(db);
      db.exec(ZEROCLAW_SEED_DDL);
      db.exec(ZEROCLAW_HEAD_DDL);
      zeroclawAppend(db, 'discord.clamps_1_bob', 'user', 'first', chronoTimestamp(t0));
      db.prepare(
        'UPDATE session_metadata SET agent_alias = ?, channel_id = ?, state = ? WHERE session_key = ?',
      ).run('clamps', 'discord.clamps', 'running', 'discord.clamps_1_bob');
      // The gateway creates an empty session on connect.
      zeroclawSetAgentAlias(db, 'gw_empty', 'main', chronoTimestamp(t0 + 5));
    });
    const s = await open();
    expect(await s.session('gw_empty')).toMatchObject({ messageCount: 0, lastSeq: null });
    expect((await s.sessions({ order: 'KEY_ASC' })).items.map((x) => x.key)).toEqual([
      'discord.clamps_1_bob',
      'gw_empty',
    ]);
    await s.append('discord.clamps_1_bob', [user('second')]);
    await s.renameSession('discord.clamps_1_bob', 'Bob');
    await s.removeLast('gw_empty').then((r) => expect(r.removed).toBeNull());
    withDb((db) => {
      expect(
        db
          .prepare(
            'SELECT agent_alias, channel_id, state, name, message_count FROM session_metadata WHERE session_key = ?',
          )
          .get('discord.clamps_1_bob'),
      ).toEqual({
        agent_alias: 'clamps',
        channel_id: 'discord.clamps',
        state: 'running',
        name: 'Bob',
        message_count: 2,
      });
      expect(
        db.prepare("SELECT state FROM session_metadata WHERE session_key = 'gw_empty'").pluck().get(),
      ).toBe('idle');
    });
  });

  it('writes what zeroclaw reads, with exact counters after every kind of write', async () => {
    const s = await open();
    const checks: Array<() => void> = [];
    const verify = (label: string) =>
      withDb((db) => {
        expect(countDrift(db), label).toEqual([]);
        for (const check of checks) check();
      });

    await s.append('telegram_1_alice', [user('one')]);
    await s.append('telegram_1_alice', [user('two'), { role: 'assistant', content: 'three' }]);
    verify('append');
    await s.append('telegram_1_alice', [user('x')], { expectedLastSeq: 1 }).catch(() => null);
    verify('failed guard');
    await s.removeLast('telegram_1_alice');
    verify('removeLast');
    await s.renameSession('gw_named', 'Named first');
    verify('rename of a new session');
    await s.compact('telegram_1_alice');
    verify('compact');
    await s.append('slack_C1_bob', [user('bye')]);
    await s.deleteSession('slack_C1_bob');
    verify('delete');
    await s.cleanupStale(1);
    verify('cleanup');

    withDb((db) => {
      expect(zeroclawLoad(db, 'telegram_1_alice')).toEqual([
        { role: 'user', content: 'one' },
        { role: 'user', content: 'two' },
      ]);
      const listed = zeroclawListSessions(db);
      expect(listed.map((m) => [m.session_key, m.message_count, m.name])).toEqual([
        ['gw_named', 0, 'Named first'],
        ['telegram_1_alice', 2, null],
      ]);
      for (const m of listed) {
        expect(m.created_at).toMatch(CHRONO);
        expect(m.last_activity).toMatch(CHRONO);
      }
      for (const at of db.prepare('SELECT created_at FROM sessions').pluck().all())
        expect(at).toMatch(CHRONO);
      checkIntegrity(db);
    });
  });
});

describe('rows zeroclaw could not read, and a stale index', () => {
  it('skips non-text rows, and compact drops them and invalid UTF-8 alike', async () => {
    const s = await open();
    await s.append('s', [user('good one'), user('good two')]);
    withDb((db) => {
      const insert = db.prepare(
        'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
      );
      insert.run('s', 'user', Buffer.from('a blob'), chronoTimestamp(Date.now()));
      insert.run('s', Buffer.from('user'), 'blob role', chronoTimestamp(Date.now()));
      db.prepare(
        "INSERT INTO sessions (session_key, role, content, created_at) VALUES ('s', 'user', CAST(X'C328' AS TEXT), ?)",
      ).run(chronoTimestamp(Date.now()));
      db.prepare(
        "UPDATE session_metadata SET message_count = message_count + 3 WHERE session_key = 's'",
      ).run();
    });
    expect((await s.messages('s')).items).toHaveLength(3); // the invalid UTF-8 text reads as U+FFFD
    const { dropped, session } = await s.compact('s');
    expect(dropped).toBe(3);
    expect(session.messageCount).toBe(2);
    expect((await s.messages('s')).items.map((m) => m.content)).toEqual(['good one', 'good two']);
    withDb((db) => {
      expect(countDrift(db)).toEqual([]);
      checkIntegrity(db);
    });
  });

  it('compact rebuilds an index that an update without a trigger left stale', async () => {
    let s = await open();
    const { messages } = await s.append('s', [user('old words here'), user('other')]);
    await s.close();
    store = null;
    withDb((db) => {
      // zeroclaw's seed build had no AFTER UPDATE trigger, and its update_last rewrote content.
      db.exec('DROP TRIGGER sessions_au');
      db.prepare('UPDATE sessions SET content = ? WHERE id = ?').run('brand new words', messages[0]!.seq);
      expect(() => checkIntegrity(db)).toThrow();
    });
    s = await open();
    expect((await s.search({ query: 'brand' })).hits).toEqual([]);
    expect((await s.compact('s')).dropped).toBe(0);
    expect((await s.search({ query: 'brand' })).hits.map((h) => h.message.content)).toEqual([
      'brand new words',
    ]);
    expect((await s.search({ query: 'old' })).hits).toEqual([]);
    withDb(checkIntegrity);
  });
});

describe('search', () => {
  it("scores exactly like FTS5's bm25()", async () => {
    const s = await open();
    await s.append('a', [
      user('the deploy failed again, deploy deploy'),
      user('deploy logs attached'),
      user('deployment succeeded after the fix failed twice'),
      user('a much longer message that mentions deploy once among many other words of no interest at all'),
      user('unrelated'),
      user(`${'deploy failed '.repeat(1_500)}long enough to be read on its own`),
    ]);
    await s.append('b', [user('Deploy FAILED on the staging server'), user('déploiement échoué')]);
    for (const query of [
      'deploy',
      'deploy failed',
      'depl*',
      '"deploy failed"',
      'failed OR logs',
      'deploy -logs',
    ]) {
      const match = toFtsMatch(parseSearchQuery(query))!;
      const expected = withDb(
        (db) =>
          new Map(
            (
              db
                .prepare(
                  'SELECT rowid AS id, bm25(sessions_fts) AS bm25 FROM sessions_fts WHERE sessions_fts MATCH ?',
                )
                .all(match) as Array<{ id: number; bm25: number }>
            ).map((r) => [r.id, -r.bm25]),
          ),
      );
      const page = await s.search({ query });
      expect(page.hits.length, query).toBe(expected.size);
      for (const hit of page.hits) expect(hit.score, query).toBeCloseTo(expected.get(hit.message.seq)!, 9);
    }
  });

  it('marks every match in a snippet and elides long content', async () => {
    const s = await open();
    const long = `${'filler '.repeat(60)}the needle sits here ${'padding '.repeat(60)}`.trim();
    await s.append('s', [user(long), user('short needle and Needle')]);
    const page = await s.search({ query: 'needle', order: 'NEWEST' });
    expect(page.hits[0]!.snippet).toBe(
      `short ${SNIPPET_OPEN}needle${SNIPPET_CLOSE} and ${SNIPPET_OPEN}Needle${SNIPPET_CLOSE}`,
    );
    const elided = page.hits[1]!.snippet;
    expect(elided.startsWith('…')).toBe(true);
    expect(elided.endsWith('…')).toBe(true);
    expect(elided).toContain(`${SNIPPET_OPEN}needle${SNIPPET_CLOSE}`);
    expect(elided.length).toBeLessThan(200);
  });

  it('filters by message time, as text, and by a key prefix with LIKE characters', async () => {
    const s = await open();
    await s.append('a%_1', [user('alpha early')]);
    await s.append('a%_1', [user('alpha late')]);
    await s.append('ab_1', [user('alpha other')]);
    withDb((db) => {
      db.prepare("UPDATE sessions SET created_at = ? WHERE content = 'alpha early'").run(
        '2020-01-01T00:00:00.000000000+00:00',
      );
      db.prepare("UPDATE sessions SET created_at = ? WHERE content = 'alpha late'").run(
        '2030-01-01T00:00:00.000000000+00:00',
      );
    });
    const contents = async (filter: object) =>
      (await s.search({ query: 'alpha', filter })).hits.map((h) => h.message.content).sort();
    expect(await contents({ since: '2025-01-01T00:00:00Z', until: '2031-01-01T00:00:00+01:00' })).toEqual([
      'alpha late',
      'alpha other',
    ]);
    expect(await contents({ until: '2020-01-01T00:00:00.000000001+00:00' })).toEqual(['alpha early']);
    expect(await contents({ keyPrefix: 'a%' })).toEqual(['alpha early', 'alpha late']);
    expect(await contents({ keyPrefix: 'a_' })).toEqual([]);
    await expect(s.search({ query: 'alpha', filter: { since: 'yesterday' } })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('pages through more matches than one ranking window, in both orders, each hit once', async () => {
    const s = await open();
    const total = RANK_WINDOW + 500;
    for (let i = 0; i < total; i += 500) {
      await s.append(
        `s${i % 3}`,
        Array.from({ length: 500 }, (_, j) => user(`alpha ${'beta '.repeat((i + j) % 7)}item ${i + j}`)),
      );
    }
    for (const order of ['RELEVANCE', 'NEWEST'] as const) {
      const seen: number[] = [];
      let after: string | undefined;
      let pages = 0;
      do {
        const page = await s.search({ query: 'alpha', order, first: 400, ...(after ? { after } : {}) });
        if (pages === 0 && order === 'RELEVANCE') {
          // The first page is ranked among the newest window only.
          const newestWindow = total - RANK_WINDOW;
          expect(Math.min(...page.hits.map((h) => h.message.seq))).toBeGreaterThan(newestWindow);
          const scores = page.hits.map((h) => h.score);
          expect(scores).toEqual([...scores].sort((x, y) => y - x));
        }
        seen.push(...page.hits.map((h) => h.message.seq));
        after = page.hasNextPage ? page.hits.at(-1)!.cursor : undefined;
        pages++;
      } while (after);
      expect(new Set(seen).size, order).toBe(total);
      if (order === 'NEWEST') expect(seen).toEqual([...seen].sort((x, y) => y - x));
    }
  });

  it('searches one session by either plan, small or large', async () => {
    const s = await open();
    await s.append('small', [user('gamma one'), user('nothing'), user('gamma two')]);
    await s.append(
      'large',
      Array.from({ length: SESSION_PROBE_LIMIT + 10 }, (_, i) => user(`gamma ${i}`)),
    );
    await s.append('other', [user('gamma elsewhere')]);
    for (const order of ['RELEVANCE', 'NEWEST'] as const) {
      const small = await s.search({ query: 'gamma', order, filter: { sessionKey: 'small' } });
      expect(small.hits.map((h) => h.message.content).sort(), order).toEqual(['gamma one', 'gamma two']);
      const large = await s.search({ query: 'gamma', order, first: 1_000, filter: { sessionKey: 'large' } });
      expect(large.hits).toHaveLength(SESSION_PROBE_LIMIT + 10);
      expect(new Set(large.hits.map((h) => h.message.sessionKey))).toEqual(new Set(['large']));
    }
    const newest = await s.search({ query: 'gamma', order: 'NEWEST', filter: { sessionKey: 'small' } });
    expect(newest.hits.map((h) => h.message.content)).toEqual(['gamma two', 'gamma one']);
  });

  it('never matches the key column and never surfaces an SQLite error', async () => {
    const s = await open();
    await s.append('telegram_1_alice', [
      user('a note about content and NEAR things'),
      user('日本語 のテキスト 😀'),
    ]);
    const inputs = [
      '"',
      '*',
      'NEAR(',
      'AND',
      'OR',
      'NOT',
      '-',
      ':',
      '^',
      '(',
      ')',
      'content:x',
      'session_key:telegram',
    ];
    inputs.push(
      '日本語',
      '😀',
      '',
      'a'.repeat(10_240),
      'word '.repeat(2_048),
      '"unterminated phrase',
      'x* OR -y',
    );
    for (const query of inputs) {
      const outcome = await s.search({ query }).then(
        (page) => page,
        (error: unknown) => error,
      );
      if (outcome instanceof Error) {
        expect(outcome, JSON.stringify(query.slice(0, 20))).toBeInstanceOf(AppError);
        expect(outcome).not.toBeInstanceOf(Database.SqliteError);
      }
    }
    expect((await s.search({ query: 'session_key:telegram' })).hits).toEqual([]);
    expect((await s.search({ query: 'content:note' })).hits).toHaveLength(0);
    expect((await s.search({ query: 'NEAR' })).hits).toHaveLength(1);
    expect((await s.search({ query: '日本語' })).hits).toHaveLength(1);
  });

  it('refuses a cursor from another search', async () => {
    const s = await open();
    await s.append('s', [user('delta one'), user('delta two'), user('epsilon')]);
    const page = await s.search({ query: 'delta', first: 1 });
    const cursor = page.hits[0]!.cursor;
    expect((await s.search({ query: 'delta', first: 1, after: cursor })).hits).toHaveLength(1);
    for (const args of [
      { query: 'epsilon', after: cursor },
      { query: 'delta', order: 'NEWEST' as const, after: cursor },
      { query: 'delta', after: Buffer.from('{"s":1}').toString('base64url') },
    ]) {
      await expect(s.search(args)).rejects.toBeInstanceOf(InvalidInputError);
    }
  });
});

/**
 * Records the query plan of every query the backend runs (with its real parameters). SQLite plans
 * from statistics, not from the data: without any it assumes large tables, so a plan seen on a
 * small test store is the plan on a 1,000,000-message one.
 */
function recordPlans(): { plans: Map<string, string[]>; restore: () => void } {
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as Record<
    'all' | 'get' | 'run',
    (...args: unknown[]) => unknown
  >;
  probe.close();
  const originals = { all: proto.all, get: proto.get, run: proto.run };
  const plans = new Map<string, string[]>();
  for (const name of ['all', 'get', 'run'] as const) {
    proto[name] = function (this: Database.Statement, ...params: unknown[]) {
      if (/^\s*(SELECT|UPDATE|DELETE)/i.test(this.source) && !plans.has(this.source)) {
        const explain = this.database.prepare(`EXPLAIN QUERY PLAN ${this.source}`);
        const rows = originals.all.apply(explain, params) as Array<{ detail: string }>;
        plans.set(
          this.source,
          rows.map((r) => r.detail),
        );
      }
      return originals[name].apply(this, params);
    };
  }
  return { plans, restore: () => Object.assign(proto, originals) };
}

describe('query plans', () => {
  async function exercise(s: SessionBackend): Promise<void> {
    await s.messages('large', { last: 5 });
    await s.messages('large', { first: 5, afterSeq: 3 });
    await s.message('large', 3);
    await s.lastMessages(['small', 'large']);
    await s.session('small');
    for (const order of ['LAST_ACTIVITY_DESC', 'LAST_ACTIVITY_ASC', 'KEY_ASC', 'KEY_DESC'] as const) {
      const first = await s.sessions({ order, first: 1, filter: { keyPrefix: 'l' } });
      const at = { key: first.items[0]!.key, lastActivityAt: first.items[0]!.lastActivityAt };
      await s.sessions({ order, last: 1, before: at, filter: { activeSince: '2000-01-01T00:00:00Z' } });
    }
    for (const order of ['RELEVANCE', 'NEWEST'] as const) {
      for (const filter of [
        {},
        { sessionKey: 'small' },
        { sessionKey: 'large' },
        { keyPrefix: 'sm', role: 'user' },
      ]) {
        const page = await s.search({ query: 'zeta', order, first: 2, filter });
        await s.search({ query: 'zeta', order, first: 2, filter, after: page.hits.at(-1)!.cursor });
      }
    }
    await s.append('small', [user('zeta three')], { expectedLastSeq: (await s.session('small'))!.lastSeq });
    await s.removeLast('small');
    await s.renameSession('small', 'Small');
    await s.compact('small');
    await s.deleteSession('small');
    await s.cleanupStale(1);
  }

  // PRAGMA optimize (run on close) records statistics; taken while a store was small, they make
  // SQLite plan for tiny tables long after the store has grown.
  for (const statistics of ['without statistics', 'with statistics of a small store']) {
    it(`never walks the whole sessions table for a read or a search, ${statistics}`, async () => {
      let s = await open();
      await s.append('small', [user('zeta one'), user('zeta two')]);
      await s.close();
      store = null;
      withDb((db) =>
        db.exec(statistics === 'without statistics' ? 'DROP TABLE IF EXISTS sqlite_stat1' : 'ANALYZE'),
      );
      s = await open();
      await s.append(
        'large',
        Array.from({ length: SESSION_PROBE_LIMIT + 1 }, (_, i) => user(`zeta ${i}`)),
      );
      const { plans, restore } = recordPlans();
      try {
        await exercise(s);
      } finally {
        restore();
      }
      const scans = [...plans].filter(([, lines]) =>
        lines.some((l) => /^SCAN (sessions|s|session_metadata)$|^SCAN (sessions|s) /.test(l)),
      );
      expect(scans).toEqual([]);
      expect(plans.size).toBeGreaterThan(20);
    });
  }
});

describe('group commit', () => {
  it('commits 200 concurrent appends with their own outcomes, in issue order', async () => {
    const s = await open();
    const initial = new Map<string, number>();
    for (const key of ['g0', 'g1', 'g2', 'g3'])
      initial.set(key, (await s.append(key, [user('seed')])).messages[0]!.seq);

    // The truth, by replaying the requests one by one in issue order.
    type Request = {
      key: string;
      messages: NewMessage[];
      options: object;
      expect: 'stored' | 'conflict' | 'replay';
    };
    const requests: Request[] = [];
    const appended = new Set<string>();
    const ids = new Map<string, string>();
    for (let i = 0; i < 200; i++) {
      const key = `g${i % 4}`;
      const messages = i % 9 === 0 ? [user(`m${i}a`), user(`m${i}b`)] : [user(`m${i}`)];
      let options: object = {};
      let outcome: Request['expect'] = 'stored';
      if (i % 10 === 0) {
        options = { expectedLastSeq: initial.get(key) };
        if (appended.has(key)) outcome = 'conflict';
      } else if (i % 25 === 1) {
        options = { expectedLastSeq: null };
        outcome = 'conflict';
      } else if (i % 20 === 3) {
        const id = `retry-${key}`;
        options = { clientMessageId: id };
        if (ids.has(key)) {
          // Same id: the same messages replay the first result, other messages conflict.
          messages.splice(
            0,
            messages.length,
            ...(i % 40 === 3 ? [user(ids.get(key)!)] : [user('different')]),
          );
          outcome = i % 40 === 3 ? 'replay' : 'conflict';
        } else ids.set(key, messages[0]!.content);
      }
      if (outcome === 'stored') appended.add(key);
      requests.push({ key, messages, options, expect: outcome });
    }
    const outcomes = await Promise.allSettled(requests.map((r) => s.append(r.key, r.messages, r.options)));

    const stored = new Map<string, string[]>([...initial.keys()].map((k) => [k, ['seed']]));
    let previousSeq = 0;
    requests.forEach((r, i) => {
      const outcome = outcomes[i]!;
      if (r.expect === 'conflict') {
        expect(outcome.status, `request ${i}`).toBe('rejected');
        expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
        return;
      }
      expect(outcome.status, `request ${i}`).toBe('fulfilled');
      const result = (outcome as PromiseFulfilledResult<AppendResult>).value;
      expect(result.replayed).toBe(r.expect === 'replay');
      if (r.expect === 'replay') return;
      expect(result.messages[0]!.seq).toBeGreaterThan(previousSeq);
      previousSeq = result.messages.at(-1)!.seq;
      stored.get(r.key)!.push(...r.messages.map((m) => m.content));
    });
    for (const [key, contents] of stored) {
      const page = await s.messages(key, { first: 1_000 });
      expect(
        page.items.map((m) => m.content),
        key,
      ).toEqual(contents);
      expect((await s.session(key))?.messageCount).toBe(contents.length);
    }
    withDb((db) => expect(countDrift(db)).toEqual([]));
  });

  it('settles queued writes on close, then refuses new ones', async () => {
    const s = await open();
    const pending = s.append('s', [user('queued before close')]);
    await s.close();
    store = null;
    expect((await pending).messages[0]!.content).toBe('queued before close');
    await expect(s.append('s', [user('late')])).rejects.toBeInstanceOf(UnavailableError);
    await expect(s.session('s')).rejects.toBeInstanceOf(UnavailableError);
    const reopened = await open();
    expect((await reopened.session('s'))?.messageCount).toBe(1);
  });
});

describe('locks and bad input', () => {
  it('answers a write locked out past the busy timeout with UnavailableError, reads still work', async () => {
    const s = await open();
    await s.append('s', [user('before')]);
    const blocker = new Database(join(dir, 'sessions', 'sessions.db'));
    try {
      blocker.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      await expect(s.append('s', [user('blocked')])).rejects.toBeInstanceOf(UnavailableError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
      expect((await s.session('s'))?.messageCount).toBe(1);
      blocker.exec('ROLLBACK');
    } finally {
      blocker.close();
    }
    await s.append('s', [user('after')]);
    expect((await s.messages('s')).items.map((m) => m.content)).toEqual(['before', 'after']);
  }, 20_000);

  it('stores nothing at all for refused input', async () => {
    const s = await open({ limits: { maxContentBytes: 100, maxBatchMessages: 3 } });
    const attempts: Array<[string, NewMessage[], object?]> = [
      ['', [user('x')]],
      ['k'.repeat(1_025), [user('x')]],
      ['nul\u0000key', [user('x')]],
      ['lone\ud800', [user('x')]],
      ['ok', [user('\udc00')]],
      ['ok', [user('x'.repeat(101))]],
      ['ok', [{ role: '', content: 'x' }]],
      ['ok', [user('a'), user('b'), user('c'), user('d')]],
      ['ok', [user('a'), { role: 'user', content: 'b\u0000' }]],
      ['ok', [user('x')], { clientMessageId: '' }],
    ];
    for (const [key, messages, options] of attempts) {
      await expect(s.append(key, messages, options)).rejects.toBeInstanceOf(AppError);
    }
    withDb((db) => {
      for (const table of ['sessions', 'session_metadata', 'sessiongraph_idempotency']) {
        expect(db.prepare(`SELECT COUNT(*) FROM ${table}`).pluck().get(), table).toBe(0);
      }
    });
  });

  it('keeps idempotency records across reopen and drops them with stale sessions only', async () => {
    let s = await open();
    const first = await s.append('old', [user('x')], { clientMessageId: 'c1' });
    await s.append('fresh', [user('y')], { clientMessageId: 'c2' });
    s = await open();
    const retry = await s.append('old', [user('x')], { clientMessageId: 'c1' });
    expect(retry).toMatchObject({ replayed: true, messages: first.messages });
    await s.close();
    store = null;
    withDb((db) => {
      db.prepare(
        "UPDATE session_metadata SET last_activity = '2000-01-01T00:00:00.000000000+00:00' WHERE session_key = 'old'",
      ).run();
      db.prepare('INSERT INTO jsonl_import_receipts VALUES (?, ?, ?, ?, ?)').run(
        'old.jsonl',
        'old',
        'h',
        1,
        'x',
      );
    });
    s = await open();
    expect(await s.cleanupStale(24)).toEqual(['old']);
    withDb((db) => {
      expect(db.prepare('SELECT session_key FROM sessiongraph_idempotency').pluck().all()).toEqual(['fresh']);
      expect(db.prepare('SELECT COUNT(*) FROM jsonl_import_receipts').pluck().get()).toBe(1);
    });
    expect(s.info()).toMatchObject({
      kind: 'sqlite',
      version: withDb((db) => db.prepare('SELECT sqlite_version()').pluck().get()),
      capabilities: { messageTimestamps: true, rankedSearch: true, stableSeq: true },
    });
  });
});

describe('several processes', () => {
  function startWriter(args: string[]): {
    child: ChildProcessWithoutNullStreams;
    lines: string[];
    ready: Promise<void>;
    firstLine: Promise<void>;
    /** Exited, and its output read to the end: 'exit' can come before the last lines are read. */
    closed: Promise<void>;
  } {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, ...args], { stdio: 'pipe' });
    children.add(child);
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const lines: string[] = [];
    let sawLine = () => {};
    const firstLine = new Promise<void>((resolve) => {
      sawLine = resolve;
    });
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (line === 'ready') return resolve();
        lines.push(line);
        sawLine();
      });
      child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
    });
    return { child, lines, ready, firstLine, closed };
  }

  it('loses nothing when two processes append to one database at once', async () => {
    const writers = ['p1', 'p2'].map((key) => startWriter(['append', key, '400']));
    let stderr = '';
    for (const w of writers) w.child.stderr.on('data', (chunk) => (stderr += chunk));
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.child.stdin.write('go\n');
    const codes = await Promise.all(writers.map((w) => w.closed.then(() => w.child.exitCode)));
    expect(stderr).toBe('');
    expect(codes).toEqual([0, 0]);
    withDb((db) => {
      for (const key of ['p1', 'p2']) {
        const own = zeroclawLoad(db, key).map((m) => m.content);
        expect(own).toEqual(Array.from({ length: 400 }, (_, i) => `${key}#${i}`));
        const inShared = zeroclawLoad(db, 'shared')
          .map((m) => m.content)
          .filter((c) => c.startsWith(`${key}#`));
        expect(inShared).toEqual(own);
      }
      expect(countDrift(db)).toEqual([]);
      checkIntegrity(db);
    });
  }, 60_000);

  it('keeps every acknowledged write through SIGKILL, 15 times over', async () => {
    const finals = new Map<string, string[]>();
    for (let round = 0; round < 15; round++) {
      const key = `crash_${round}`;
      const writer = startWriter(['crash', key]);
      await writer.ready;
      writer.child.stdin.write('go\n');
      // Killed at a random moment once it is writing, so most kills land mid-transaction.
      await writer.firstLine;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 400)));
      writer.child.kill('SIGKILL');
      await writer.closed;

      // Replay the acknowledged operations to know what must be stored.
      const expected: Array<{ seq: number; content: string }> = [];
      writer.lines.forEach((line, i) => {
        const op = crashOp(i);
        if (op.kind === 'remove') {
          if (line !== 'R -') expect(expected.pop()?.seq).toBe(Number(line.slice(2)));
          return;
        }
        const seqs = line.slice(2).split(',');
        for (const [j, seq] of seqs.entries()) expected.push({ seq: Number(seq), content: op.contents[j]! });
      });
      const inFlight = crashOp(writer.lines.length);
      const stored = withDb((db) => {
        checkIntegrity(db);
        expect(countDrift(db)).toEqual([]);
        return db
          .prepare('SELECT id AS seq, content FROM sessions WHERE session_key = ? ORDER BY id')
          .all(key) as Array<{
          seq: number;
          content: string;
        }>;
      });
      const contents = stored.map((m) => m.content);
      const acknowledged = expected.map((m) => m.content);
      // The operation in flight at the kill either committed entirely or not at all.
      const allowed = [acknowledged];
      if (inFlight.kind === 'append') allowed.push([...acknowledged, ...inFlight.contents]);
      else allowed.push(acknowledged.slice(0, -1));
      expect(allowed, `round ${round}`).toContainEqual(contents);
      expect(stored.slice(0, expected.length).map((m) => m.seq)).toEqual(
        expected.slice(0, stored.length).map((m) => m.seq),
      );
      finals.set(key, contents);
    }
    withDb((db) => {
      for (const [key, contents] of finals)
        expect(zeroclawLoad(db, key).map((m) => m.content)).toEqual(contents);
    });
  }, 120_000);
});
