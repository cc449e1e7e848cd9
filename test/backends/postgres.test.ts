/**
 * What the contract suite cannot show for PostgreSQL: several instances on one store, the
 * tsquery translation under hostile text, tokens PostgreSQL's own parser would split differently,
 * and connection loss at every moment of a write.
 */

import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { AppendResult, NewMessage, SessionBackend } from '../../src/backends/backend.js';
import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { PROBE_LIMIT, RECENT_SPAN } from '../../src/backends/postgres/newest-matches.js';
import {
  openPostgresBackend,
  type PostgresBackendOptions,
} from '../../src/backends/postgres/postgres-backend.js';
import { RANK_WINDOW } from '../../src/backends/postgres/postgres-search.js';
import { AppError, ConflictError, TooLargeError, UnavailableError } from '../../src/errors.js';
import {
  dropSchemas,
  TEST_DATABASE_URL,
  uniqueSchema,
  withAdminClient,
} from '../helpers/postgres-database.js';
import { startPostgresProxy } from '../helpers/postgres-proxy.js';

const user = (content: string): NewMessage => ({ role: 'user', content });
const schemas = new Set<string>();
const opened: SessionBackend[] = [];

afterAll(async () => {
  await Promise.all(opened.map((b) => b.close()));
  await dropSchemas(schemas);
});

async function open(schema: string, options: Partial<PostgresBackendOptions> = {}): Promise<SessionBackend> {
  schemas.add(schema);
  const backend = await openPostgresBackend({
    databaseUrl: TEST_DATABASE_URL,
    schema,
    poolSize: 4,
    ...options,
  });
  opened.push(backend);
  return backend;
}

async function outcome<T>(promise: Promise<T>): Promise<T | Error> {
  return promise.then(
    (value) => value,
    (error: unknown) => error as Error,
  );
}

describe('PostgreSQL backend', () => {
  it('fails, not skips, when the database is unreachable', async () => {
    const error = await outcome(
      openPostgresBackend({ databaseUrl: 'postgres://postgres@127.0.0.1:1/test', schema: 'unreachable' }),
    );
    expect(error).toBeInstanceOf(UnavailableError);
  });

  it('migrates a new schema once when instances start together', async () => {
    const schema = uniqueSchema('sg_pg_migrate');
    const backends = await Promise.all([open(schema), open(schema), open(schema)]);
    const rows = await withAdminClient(
      async (c) =>
        (
          await c.query(
            `SELECT version FROM ${pg.escapeIdentifier(schema)}.schema_migrations ORDER BY version`,
          )
        ).rows,
    );
    expect(rows).toEqual([{ version: 1 }, { version: 2 }]);
    await backends[0]!.append('k', [user('hello')]);
    expect((await backends[2]!.session('k'))?.messageCount).toBe(1);
    expect(backends[1]!.info()).toMatchObject({ kind: 'postgres', capabilities: { stableSeq: true } });
    expect(backends[1]!.info().version).toMatch(/^\d+/);
  });

  it('stamps times by the database clock, in canonical text', async () => {
    const store = await open(uniqueSchema('sg_pg_time'));
    const { messages, session } = await store.append('k', [user('a'), user('b')]);
    expect(messages[0]!.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}000\+00:00$/);
    expect(messages[1]!.createdAt).toBe(messages[0]!.createdAt);
    expect(session.lastActivityAt).toBe(messages[0]!.createdAt);
    const page = await store.messages('k');
    expect(page.items.map((m) => m.createdAt)).toEqual([messages[0]!.createdAt, messages[0]!.createdAt]);
    // A nanosecond bound just past the stored microsecond excludes it, as it would in SQLite.
    const after = messages[0]!.createdAt!.replace(/000\+00:00$/, '001+00:00');
    expect((await store.sessions({ filter: { activeSince: after } })).items).toEqual([]);
    expect((await store.sessions({ filter: { activeBefore: after } })).items).toHaveLength(1);
  });

  describe('two instances on one session', () => {
    it('lets exactly one guarded append win per round; seqs increase and are never reused', async () => {
      const schema = uniqueSchema('sg_pg_guard');
      const [a, b] = [await open(schema), await open(schema)];
      let last: number | null = null;
      let highest = 0;
      let count = 0;
      for (let round = 0; round < 40; round++) {
        const results: Array<PromiseSettledResult<AppendResult>> = await Promise.allSettled([
          a.append('shared', [user(`a${round}`)], { expectedLastSeq: last }),
          b.append('shared', [user(`b${round}`)], { expectedLastSeq: last }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won, `round ${round}`).toHaveLength(1);
        const winner = won[0]!.value.messages[0]!;
        expect(lost[0]!.reason).toBeInstanceOf(ConflictError);
        expect((lost[0]!.reason as ConflictError).actualLastSeq).toBe(winner.seq);
        expect(winner.seq).toBeGreaterThan(highest);
        highest = winner.seq;
        last = winner.seq;
        count++;
        if (round % 5 === 4) {
          // The other instance removes it under the guard; the next seq must still be higher.
          const remover = won[0] === results[0] ? b : a;
          const { removed, session } = await remover.removeLast('shared', { expectedLastSeq: winner.seq });
          expect(removed?.seq).toBe(winner.seq);
          last = session.lastSeq;
          count--;
        }
      }
      const page = await a.messages('shared', { first: 100 });
      const seqs = page.items.map((m) => m.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(page.items).toHaveLength(count);
      expect((await b.session('shared'))?.messageCount).toBe(count);
    });

    it('keeps every concurrent append from both instances; a retry on the other one replays', async () => {
      const schema = uniqueSchema('sg_pg_race');
      const [a, b] = [await open(schema), await open(schema)];
      const batch = (i: number) => [user(`m${i}`), user(`m${i}'`)];
      const first = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 ? a : b).append('race', batch(i), { clientMessageId: `c${i}` }),
        ),
      );
      const retried = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          (i % 2 ? b : a).append('race', batch(i), { clientMessageId: `c${i}` }),
        ),
      );
      expect(retried.every((r) => r.replayed)).toBe(true);
      expect(retried.map((r) => r.messages.map((m) => m.seq))).toEqual(
        first.map((r) => r.messages.map((m) => m.seq)),
      );
      const page = await a.messages('race', { first: 1_000 });
      expect(page.items).toHaveLength(120);
      expect((await b.session('race'))?.messageCount).toBe(120);
      const other = await outcome(a.append('race', [user('other')], { clientMessageId: 'c0' }));
      expect(other).toBeInstanceOf(ConflictError);
    });
  });

  describe('search', () => {
    it('never raises a tsquery error on hostile text', async () => {
      const store = await open(uniqueSchema('sg_pg_hostile'));
      await store.append('s', [user("it's a deploy & a | b ! c <-> d :* e \\ f 'quoted' \"double\"")]);
      const fixed = [
        '"',
        '""',
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
        '(deploy',
        'content:deploy',
        '{col}',
        'a"b',
        '\\',
        "'",
        "''",
        '&',
        '|',
        '!',
        '<->',
        ':*',
        '<1>',
        '<->deploy',
        'deploy:*',
        'deploy:A',
        "it's",
        "'deploy'",
        'deploy & !',
        '!deploy',
        '|deploy|',
        'a <-> b',
        '(a | b) & c',
        'a:*B',
        '\\x27',
        "deploy' | 'x",
        '; DROP TABLE sessions; --',
        '日本語',
        '😀',
        '\u0000',
        '',
        '   ',
        'deploy'.repeat(2_000),
      ];
      const alphabet = [
        "'",
        '"',
        '&',
        '|',
        '!',
        '<',
        '>',
        '-',
        ':',
        '*',
        '\\',
        '(',
        ')',
        ' ',
        'a',
        'é',
        'OR',
        '1',
      ];
      let seed = 7;
      const random = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
        return seed / 2_147_483_648;
      };
      const fuzz = Array.from({ length: 200 }, () =>
        Array.from(
          { length: 1 + Math.floor(random() * 12) },
          () => alphabet[Math.floor(random() * alphabet.length)],
        ).join(''),
      );
      for (const query of [...fixed, ...fuzz]) {
        for (const order of ['RELEVANCE', 'NEWEST'] as const) {
          const result = await outcome(store.search({ query, order }));
          if (result instanceof Error) expect(result, JSON.stringify(query)).toBeInstanceOf(AppError);
          else expect(Array.isArray(result.hits)).toBe(true);
        }
      }
      expect((await store.search({ query: "it's" })).hits).toHaveLength(1);
      expect((await store.search({ query: '"it s"' })).hits).toHaveLength(1);
      expect((await store.search({ query: 'quoted double' })).hits).toHaveLength(1);
      const phrase = `"${'w '.repeat(1_001)}"`;
      expect(await outcome(store.search({ query: phrase }))).toBeInstanceOf(TooLargeError);
    });

    it('matches the query language tokens, not PostgreSQL parser tokens', async () => {
      const store = await open(uniqueSchema('sg_pg_tokens'));
      await store.append('s', [
        user('Café au lait, naïve résumé'),
        user('see example.com/docs or mail ops@corp.org, run /usr/bin/env v1.2.3'),
        user('foo-bar baz'),
      ]);
      const found = async (query: string) => (await store.search({ query })).hits.map((h) => h.snippet);
      expect(await found('cafe')).toEqual([`${SNIPPET_OPEN}Café${SNIPPET_CLOSE} au lait, naïve résumé`]);
      expect(await found('CAFÉ resume')).toHaveLength(1);
      expect(await found('example')).toHaveLength(1);
      expect(await found('"example com docs"')).toHaveLength(1);
      expect(await found('corp bin')).toHaveLength(1);
      expect(await found('"v1 2 3"')).toHaveLength(1);
      expect(await found('"foo bar"')).toEqual([`${SNIPPET_OPEN}foo-bar${SNIPPET_CLOSE} baz`]);
      expect(await found('"bar foo"')).toEqual([]);
      expect(await found('exam*')).toHaveLength(1);
    });

    it('keeps marker characters in content from reading as matches', async () => {
      const store = await open(uniqueSchema('sg_pg_markers'));
      await store.append('s', [user(`fake ${SNIPPET_OPEN}mark${SNIPPET_CLOSE} then needle`)]);
      const [hit] = (await store.search({ query: 'needle' })).hits;
      expect(hit!.snippet).toBe(`fake \uFFFDmark\uFFFD then ${SNIPPET_OPEN}needle${SNIPPET_CLOSE}`);
      expect(hit!.message.content).toContain(SNIPPET_OPEN);
    });

    it('pages a match set larger than the ranking window, each hit once', async () => {
      const store = await open(uniqueSchema('sg_pg_window'));
      const total = RANK_WINDOW + 300;
      for (let start = 0; start < total; start += 1_000) {
        const batch = Array.from({ length: Math.min(1_000, total - start) }, (_, i) =>
          user(`needle ${start + i}${(start + i) % 7 === 0 ? ' needle needle' : ''}`),
        );
        await store.append(`s${start}`, batch);
      }
      for (const order of ['RELEVANCE', 'NEWEST'] as const) {
        const seen = new Set<number>();
        let after: string | undefined;
        let pages = 0;
        for (;;) {
          const page = await store.search({
            query: 'needle',
            order,
            first: 400,
            ...(after ? { after } : {}),
          });
          for (const hit of page.hits) {
            expect(seen.has(hit.message.seq)).toBe(false);
            seen.add(hit.message.seq);
          }
          pages++;
          if (!page.hasNextPage) break;
          after = page.hits.at(-1)!.cursor;
        }
        expect(seen.size).toBe(total);
        expect(pages).toBe(Math.ceil(total / 400));
      }
    }, 30_000);
    it('finds matches older than the recent span newest first, with old-only words too', async () => {
      const schema = uniqueSchema('sg_pg_span');
      const store = await open(schema);
      const old = PROBE_LIMIT + 100;
      for (let start = 0; start < old; start += 1_000) {
        const n = Math.min(1_000, old - start);
        await store.append(
          'old',
          Array.from({ length: n }, (_, i) => user(`needle archived ${start + i}`)),
        );
      }
      // Jump the ids past the walked span without writing rows, as a busy store would.
      await withAdminClient((c) =>
        c.query(
          `SELECT setval('${schema}.message_seq', (SELECT last_value FROM ${pg.escapeIdentifier(schema)}.message_seq) + $1)`,
          [RECENT_SPAN * 2],
        ),
      );
      await store.append('new', [user('needle fresh 1'), user('chatter'), user('needle fresh 2')]);
      const newest = await store.search({ query: 'needle', order: 'NEWEST', first: 5 });
      expect(newest.hits.map((h) => h.message.content)).toEqual([
        'needle fresh 2',
        'needle fresh 1',
        `needle archived ${old - 1}`,
        `needle archived ${old - 2}`,
        `needle archived ${old - 3}`,
      ]);
      for (const [query, order] of [
        ['needle', 'NEWEST'],
        ['needle', 'RELEVANCE'],
        ['archived', 'NEWEST'],
        ['archived', 'RELEVANCE'],
      ] as const) {
        const seqs: number[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.search({ query, order, first: 1_000, ...(after ? { after } : {}) });
          seqs.push(...page.hits.map((h) => h.message.seq));
          if (!page.hasNextPage) break;
          after = page.hits.at(-1)!.cursor;
        }
        expect(new Set(seqs).size, `${query} ${order}`).toBe(query === 'needle' ? old + 2 : old);
        if (order === 'NEWEST') expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
      }
    }, 30_000);
  });

  describe('connection loss', () => {
    async function terminate(applicationName: string): Promise<number> {
      return withAdminClient(async (c) => {
        const { rows } = await c.query(
          `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
           WHERE application_name = $1 AND pid <> pg_backend_pid()`,
          [applicationName],
        );
        return rows.filter((r) => r.ok).length;
      });
    }

    function loggedTo(lines: string[]) {
      return pino(
        { level: 'warn' },
        new Writable({
          write(chunk, _encoding, done) {
            lines.push(String(chunk));
            done();
          },
        }),
      );
    }

    it('retries reads and unsent writes on a new connection after every pooled one was killed', async () => {
      const name = `sg_kill_${randomBytes(4).toString('hex')}`;
      const lines: string[] = [];
      const store = await open(uniqueSchema('sg_pg_kill'), {
        databaseUrl: `${TEST_DATABASE_URL}?application_name=${name}`,
        logger: loggedTo(lines),
      });
      await store.append('k', [user('before')]);
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 4 }, () => store.session('k')));
        expect(await terminate(name)).toBeGreaterThan(0);
        const [page, appended] = await Promise.all([
          store.messages('k', { last: 50 }),
          store.append('k', [user(`after ${round}`)]),
        ]);
        expect(page.items[0]!.content).toBe('before');
        expect(appended.messages[0]!.content).toBe(`after ${round}`);
      }
      expect((await store.session('k'))?.messageCount).toBe(6);
    });

    it('under kills mid-workload: writes succeed or fail Unavailable, nothing acknowledged is lost', async () => {
      const name = `sg_storm_${randomBytes(4).toString('hex')}`;
      const schema = uniqueSchema('sg_pg_storm');
      const lines: string[] = [];
      const store = await open(schema, {
        databaseUrl: `${TEST_DATABASE_URL}?application_name=${name}`,
        logger: loggedTo(lines),
      });
      const acked: Array<{ key: string; seq: number; content: string }> = [];
      const unacked: Array<{ key: string; content: string; id: string }> = [];
      const failures: unknown[] = [];
      let done = false;
      let kills = 0;
      const killer = (async () => {
        while (!done) {
          await new Promise((r) => setTimeout(r, 15 + Math.random() * 30));
          kills += await terminate(name);
        }
      })();
      await Promise.all(
        Array.from({ length: 6 }, async (_, worker) => {
          const key = `w${worker}`;
          for (let i = 0; i < 60; i++) {
            const content = `${key} message ${i}`;
            const id = `${key}-${i}`;
            const written = await outcome(store.append(key, [user(content)], { clientMessageId: id }));
            if (written instanceof Error) {
              failures.push(written);
              unacked.push({ key, content, id });
            } else acked.push({ key, seq: written.messages[0]!.seq, content });
            const read = await outcome(store.messages(key, { last: 5 }));
            if (read instanceof Error) failures.push(read);
          }
        }),
      );
      done = true;
      await killer;
      expect(kills).toBeGreaterThan(10);
      for (const failure of failures) expect(failure).toBeInstanceOf(UnavailableError);

      const check = await open(schema);
      for (const { key, content, id } of unacked) {
        // An unacknowledged write may or may not have landed: retrying with its id settles it.
        await check.append(key, [user(content)], { clientMessageId: id });
      }
      for (let worker = 0; worker < 6; worker++) {
        const page = await check.messages(`w${worker}`, { first: 1_000 });
        expect(page.items.map((m) => m.content)).toEqual(
          expect.arrayContaining(acked.filter((a) => a.key === `w${worker}`).map((a) => a.content)),
        );
        expect(new Set(page.items.map((m) => m.content)).size).toBe(60);
        expect(page.items).toHaveLength(60);
        expect((await check.session(`w${worker}`))?.messageCount).toBe(60);
      }
      for (const { key, seq, content } of acked)
        expect((await check.message(key, seq))?.content).toBe(content);
      expect(lines.some((l) => l.includes('retrying'))).toBe(true);
    }, 60_000);

    it('settles a COMMIT whose answer was lost: stored and acknowledged, or not stored and Unavailable', async () => {
      const proxy = await startPostgresProxy(TEST_DATABASE_URL);
      try {
        const store = await open(uniqueSchema('sg_pg_commit'), { databaseUrl: proxy.url });
        await store.append('k', [user('first')]);

        proxy.armCut('after-commit');
        const committed = await store.append('k', [user('committed, answer lost')]);
        expect(proxy.cuts).toBe(1);
        expect((await store.message('k', committed.messages[0]!.seq))?.content).toBe(
          'committed, answer lost',
        );

        proxy.armCut('before-commit');
        const lost = await outcome(store.append('k', [user('never committed')]));
        expect(proxy.cuts).toBe(2);
        expect(lost).toBeInstanceOf(UnavailableError);
        const page = await store.messages('k');
        expect(page.items.map((m) => m.content)).toEqual(['first', 'committed, answer lost']);
        expect((await store.session('k'))?.messageCount).toBe(2);

        proxy.armCut('after-commit');
        const removed = await outcome(store.removeLast('k'));
        // Only an append can tell afterwards whether it landed; other writes say so.
        expect(removed).toBeInstanceOf(UnavailableError);
        expect((await store.session('k'))?.messageCount).toBe(1);
      } finally {
        await proxy.close();
      }
    });
  });

  describe('a session row locked from outside', () => {
    /** Our connections that wait for a row lock right now. */
    async function lockWaiters(applicationName: string): Promise<number> {
      return withAdminClient(async (c) => {
        const { rows } = await c.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [applicationName],
        );
        return rows[0].n as number;
      });
    }

    it('holds one pooled connection for its waiters: other sessions are served, its writes fail Unavailable', async () => {
      const name = `sg_lock_${randomBytes(4).toString('hex')}`;
      const schema = uniqueSchema('sg_pg_lock');
      // Through openBackend, as `serve --pool-size 3 --lock-timeout-ms 3000` opens it.
      schemas.add(schema);
      const store = await openBackend({
        kind: 'postgres',
        dataDir: '',
        databaseUrl: `${TEST_DATABASE_URL}?application_name=${name}`,
        databaseSchema: schema,
        poolSize: 3,
        lockTimeoutMs: 3_000,
      });
      opened.push(store);
      await store.append('locked', [user('before the lock')]);
      const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await admin.connect();
      let blocked: Array<Promise<unknown>>;
      try {
        await admin.query('BEGIN');
        await admin.query(
          `SELECT 1 FROM ${pg.escapeIdentifier(schema)}.sessions WHERE key = 'locked' FOR UPDATE`,
        );
        // Every kind of write to the locked session, asked first: each one could take a pooled connection.
        blocked = [
          ...Array.from({ length: 4 }, (_, i) => store.append('locked', [user(`blocked ${i}`)])),
          store.removeLast('locked'),
          store.removeLast('locked', { expectedLastSeq: 1 }),
          store.renameSession('locked', 'renamed'),
          store.compact('locked'),
          store.deleteSession('locked'),
        ].map((write: Promise<unknown>) => outcome(write));
        while ((await lockWaiters(name)) === 0) await new Promise((resolve) => setImmediate(resolve));

        const others = await Promise.all(
          Array.from({ length: 16 }, (_, i) => outcome(store.append(`other_${i}`, [user(`hello ${i}`)]))),
        );
        expect(others.filter((r) => r instanceof Error)).toEqual([]);
        // Reads never wait for a row lock.
        expect((await store.session('locked'))?.messageCount).toBe(1);
        for (const result of await Promise.all(blocked)) expect(result).toBeInstanceOf(UnavailableError);
      } finally {
        await admin.query('ROLLBACK');
        await admin.end();
      }
      await store.append('locked', [user('after the lock')]);
      const page = await store.messages('locked');
      expect(page.items.map((m) => m.content)).toEqual(['before the lock', 'after the lock']);
      expect((await store.sessions({ filter: { keyPrefix: 'other_' }, first: 100 })).items).toHaveLength(16);
    });
  });
});
