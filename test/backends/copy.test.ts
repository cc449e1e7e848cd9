/**
 * Copy between backends (src/backends/copy/): export lines and import them, through real SQLite,
 * PostgreSQL and JSONL stores. The round trip starts from a workspace zeroclaw wrote.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SessionBackend, StoredMessage } from '../../src/backends/backend.js';
import { decodeLine, type ExportLine } from '../../src/backends/copy/export-format.js';
import { type CopyProgress, exportSessions } from '../../src/backends/copy/export-sessions.js';
import { importSessions } from '../../src/backends/copy/import-sessions.js';
import { readLines } from '../../src/backends/copy/read-lines.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { ConflictError, InvalidInputError } from '../../src/errors.js';
import { FIXTURE, writeZeroclawSqlite } from '../helpers/api-zeroclaw-fixture.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { zeroclawListSessions, zeroclawLoad } from '../helpers/sqlite-zeroclaw.js';

const schemas = new Set<string>();
const dirs: string[] = [];
const open: SessionBackend[] = [];

afterEach(async () => {
  for (const backend of open.splice(0)) await backend.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(() => dropSchemas(schemas));

function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sg-copy-'));
  dirs.push(dir);
  return dir;
}

async function sqlite(dataDir = workspace()): Promise<SessionBackend> {
  const backend = await openBackend({ kind: 'sqlite', dataDir });
  open.push(backend);
  return backend;
}

async function jsonl(): Promise<SessionBackend> {
  const backend = await openBackend({ kind: 'jsonl', dataDir: workspace() });
  open.push(backend);
  return backend;
}

async function postgres(): Promise<SessionBackend> {
  const schema = uniqueSchema('sg_copy');
  schemas.add(schema);
  const backend = await openBackend({
    kind: 'postgres',
    dataDir: '',
    databaseUrl: TEST_DATABASE_URL,
    databaseSchema: schema,
    poolSize: 2,
  });
  open.push(backend);
  return backend;
}

async function exportAll(backend: SessionBackend): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of exportSessions(backend, { pageSize: 100 })) lines.push(line.slice(0, -1));
  return lines;
}

async function* each<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}

/** What must survive a copy: sessions in activity order with their messages, seqs aside. */
async function snapshot(backend: SessionBackend, time: (t: string | null) => string | null = (t) => t) {
  const sessions = [];
  let after: { key: string; lastActivityAt: string | null } | undefined;
  for (;;) {
    const page = await backend.sessions({ first: 100, ...(after && { after }) });
    sessions.push(...page.items);
    const last = page.items.at(-1);
    if (!page.hasNextPage || !last) break;
    after = { key: last.key, lastActivityAt: last.lastActivityAt };
  }
  const result = [];
  for (const s of sessions) {
    const messages: StoredMessage[] = [];
    let afterSeq: number | undefined;
    for (;;) {
      const page = await backend.messages(s.key, { first: 500, ...(afterSeq !== undefined && { afterSeq }) });
      messages.push(...page.items);
      afterSeq = page.items.at(-1)?.seq;
      if (!page.hasNextPage) break;
    }
    result.push({
      key: s.key,
      name: s.name,
      createdAt: time(s.createdAt),
      lastActivityAt: time(s.lastActivityAt),
      messageCount: s.messageCount,
      messages: messages.map((m) => ({ role: m.role, content: m.content, createdAt: time(m.createdAt) })),
    });
  }
  return result;
}

/** PostgreSQL keeps microseconds: the digits below are zeros after it. */
const micros = (t: string | null) => (t === null ? null : `${t.slice(0, 26)}000+00:00`);

const HUGE_SESSION = 1_234;

/** A workspace zeroclaw wrote (seed schema, chrono nanosecond times), then written to by us. */
async function sourceWorkspace(): Promise<{ dataDir: string; backend: SessionBackend }> {
  const dataDir = workspace();
  writeZeroclawSqlite(dataDir, Date.UTC(2026, 0, 2, 3, 4, 5));
  const db = new Database(join(dataDir, 'sessions', 'sessions.db'));
  db.prepare('UPDATE session_metadata SET name = ? WHERE session_key = ?').run('Deploy help', 'gw_9f8e7d');
  db.close();
  const backend = await sqlite(dataDir);
  await backend.append('discord_42_bob', [
    { role: 'user', content: 'line\u2028separator, \r\n, tab\t, nul-free \u{1F600} «ok»' },
    { role: 'assistant', content: 'x'.repeat(200_000) },
    { role: 'user', content: 'soon removed' },
  ]);
  await backend.removeLast('discord_42_bob');
  await backend.renameSession('slack_empty', 'Nothing yet');
  const many = Array.from({ length: HUGE_SESSION }, (_, i) => ({
    role: i % 2 ? 'assistant' : 'user',
    content: `message ${i}: the quick brown fox`,
  }));
  for (let i = 0; i < many.length; i += 500) await backend.append('rpc_bulk', many.slice(i, i + 500));
  return { dataDir, backend };
}

describe('export', () => {
  it('writes a header, each session with its messages in seq order, and an end line', async () => {
    const { backend } = await sourceWorkspace();
    const lines = (await exportAll(backend)).map((l, i) => decodeLine(l, i + 1));
    const header = lines[0] as Extract<ExportLine, { type: 'header' }>;
    expect(header).toMatchObject({ type: 'header', format: 'sessiongraph-export', version: 1, sessions: 5 });
    expect(header.source.kind).toBe('sqlite');
    const total = 4 + 2 + 2 + HUGE_SESSION;
    expect(header.messages).toBe(total);
    expect(lines.at(-1)).toEqual({ type: 'end', sessions: 5, messages: total });
    const sessions = lines.filter((l) => l.type === 'session');
    expect(sessions.map((s) => s.key)).toEqual([
      'discord_42_bob',
      'gw_9f8e7d',
      'rpc_bulk',
      'slack_empty',
      'telegram_123456_alice',
    ]);
    expect(sessions[1]).toMatchObject({ name: 'Deploy help', messageCount: 2 });
    const alice = lines.slice(lines.indexOf(sessions[4]!) + 1, -1);
    expect(alice.map((m) => (m.type === 'message' ? m.content : null))).toEqual(
      FIXTURE.telegram_123456_alice!.map((m) => m.content),
    );
    const seqs = alice.map((m) => (m.type === 'message' ? m.seq : 0));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(alice[0]).toMatchObject({ createdAt: expect.stringMatching(/\.\d{3}456789\+00:00$/) });
  });

  it('reports progress against the totals it counted first', async () => {
    const { backend } = await sourceWorkspace();
    const seen: CopyProgress[] = [];
    for await (const _ of exportSessions(backend, { pageSize: 100, onProgress: (p) => seen.push(p) })) {
      // drain
    }
    expect(seen.at(-1)).toEqual({
      sessions: 5,
      messages: 8 + HUGE_SESSION,
      totalSessions: 5,
      totalMessages: 8 + HUGE_SESSION,
    });
    expect(seen.length).toBeGreaterThan(5);
  });
});

describe('round trip', () => {
  it('SQLite (zeroclaw) -> PostgreSQL -> SQLite keeps sessions, names, messages, order and times', async () => {
    const { backend: source } = await sourceWorkspace();
    const original = await snapshot(source);

    const pg = await postgres();
    const first = await importSessions(pg, each(await exportAll(source)), { batchSize: 200 });
    expect(first).toMatchObject({
      sessions: 5,
      imported: 8 + HUGE_SESSION,
      present: 0,
      failed: [],
      complete: true,
    });
    expect(await snapshot(pg)).toEqual(await snapshot(source, micros));

    const targetDir = workspace();
    const target = await sqlite(targetDir);
    const second = await importSessions(target, each(await exportAll(pg)));
    expect(second).toMatchObject({ imported: 8 + HUGE_SESSION, failed: [], complete: true });
    const copied = await snapshot(target);
    expect(copied).toEqual(await snapshot(source, micros));
    // Below PostgreSQL's microseconds nothing changed, and everything above it survived.
    expect(copied.map((s) => s.key)).toEqual(original.map((s) => s.key));

    // zeroclaw reads the copy as it read the original.
    await target.close();
    open.splice(open.indexOf(target), 1);
    const before = new Database(join(dirs[0]!, 'sessions', 'sessions.db'), { readonly: true });
    const after = new Database(join(targetDir, 'sessions', 'sessions.db'), { readonly: true });
    try {
      const keys = (db: Database.Database) => zeroclawListSessions(db).map((m) => [m.session_key, m.name]);
      expect(keys(after)).toEqual(keys(before));
      expect(zeroclawLoad(after, 'telegram_123456_alice')).toEqual(
        zeroclawLoad(before, 'telegram_123456_alice'),
      );
    } finally {
      before.close();
      after.close();
    }
  });

  it('keeps years 0-99 through SQLite -> PostgreSQL -> SQLite, and refuses a time outside 0000-9999', async () => {
    const session = (key: string, createdAt: string, lastActivityAt: string, messageCount: number) =>
      JSON.stringify({ type: 'session', key, name: null, createdAt, lastActivityAt, messageCount });
    const message = (seq: number, createdAt: string) =>
      JSON.stringify({ type: 'message', seq, role: 'user', content: `said in ${createdAt}`, createdAt });
    const stream = [
      JSON.stringify({
        type: 'header',
        format: 'sessiongraph-export',
        version: 1,
        exportedAt: '2026-01-01T00:00:00.000000000+00:00',
        source: { kind: 'sqlite', version: 'hand-written' },
        sessions: 2,
        messages: 4,
      }),
      session('ancient', '0000-01-01T00:00:00.000000000+00:00', '0099-12-31T23:59:59.999999999+00:00', 3),
      message(1, '0000-01-01T00:00:00.000000000+00:00'),
      message(2, '0050-06-01T00:00:00.123456789+00:00'),
      message(3, '0099-12-31T23:59:59.999999999+00:00'),
      session('shifted', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 1),
      message(1, '0000-01-01T00:30:00+01:00'),
      JSON.stringify({ type: 'end', sessions: 2, messages: 4 }),
    ];
    const expected = {
      key: 'ancient',
      name: null,
      createdAt: '0000-01-01T00:00:00.000000000+00:00',
      lastActivityAt: '0099-12-31T23:59:59.999999999+00:00',
      messageCount: 3,
      messages: [
        '0000-01-01T00:00:00.000000000+00:00',
        '0050-06-01T00:00:00.123456789+00:00',
        '0099-12-31T23:59:59.999999999+00:00',
      ].map((createdAt) => ({ role: 'user', content: `said in ${createdAt}`, createdAt })),
    };

    const first = await sqlite();
    const summary = await importSessions(first, each(stream));
    expect(summary).toMatchObject({ sessions: 2, imported: 3, complete: true });
    expect(summary.failed.map((f) => [f.key, f.error.constructor, f.error.message])).toEqual([
      ['shifted', InvalidInputError, expect.stringMatching(/createdAt is outside the supported range/)],
    ]);
    expect(await first.session('shifted')).toBeNull();
    expect(await snapshot(first)).toEqual([expected]);

    const pg = await postgres();
    expect(await importSessions(pg, each(await exportAll(first)))).toMatchObject({ imported: 3, failed: [] });
    const throughPg = await snapshot(pg);
    expect(throughPg).toEqual(await snapshot(first, micros));
    expect(throughPg[0]!.messages.map((m) => m.createdAt!.slice(0, 4))).toEqual(['0000', '0050', '0099']);

    const last = await sqlite();
    expect(await importSessions(last, each(await exportAll(pg)))).toMatchObject({ imported: 3, failed: [] });
    expect(await snapshot(last)).toEqual(throughPg);
  });

  it('SQLite -> SQLite is exact to the nanosecond', async () => {
    const { backend: source } = await sourceWorkspace();
    const target = await sqlite();
    await importSessions(target, each(await exportAll(source)));
    expect(await snapshot(target)).toEqual(await snapshot(source));
  });

  it('into and out of JSONL: messages and names survive, times cannot', async () => {
    const { backend: source } = await sourceWorkspace();
    const files = await jsonl();
    const summary = await importSessions(files, each(await exportAll(source)));
    expect(summary).toMatchObject({ imported: 8 + HUGE_SESSION, failed: [], complete: true });
    const back = await sqlite();
    await importSessions(back, each(await exportAll(files)));
    const strip = (snap: Awaited<ReturnType<typeof snapshot>>) =>
      snap
        .map(({ key, name, messages }) => ({
          key,
          name,
          messages: messages.map(({ role, content }) => ({ role, content })),
        }))
        .sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(strip(await snapshot(back))).toEqual(strip(await snapshot(source)));
  });
});

describe('import', () => {
  let source: SessionBackend;
  let lines: string[];

  beforeEach(async () => {
    source = (await sourceWorkspace()).backend;
    lines = await exportAll(source);
  });

  it('resumes a truncated run and stores nothing twice', async () => {
    const target = await postgres();
    const cut = lines.findIndex((l) => l.includes('"message 700:'));
    const partial = await importSessions(target, each(lines.slice(0, cut)), { batchSize: 128 });
    expect(partial.complete).toBe(false);
    // What was read is in; the session's times wait for the run that sees it whole.
    const cutShort = (await target.session('rpc_bulk'))!;
    expect(cutShort.messageCount).toBe(700);
    const record = JSON.parse(lines.find((l) => l.includes('"key":"rpc_bulk"'))!) as {
      lastActivityAt: string;
    };
    expect(cutShort.lastActivityAt! > micros(record.lastActivityAt)!).toBe(true);

    const rest = await importSessions(target, each(lines), { batchSize: 128 });
    expect(rest).toMatchObject({ complete: true, failed: [], ahead: [] });
    expect(rest.imported + rest.present).toBe(8 + HUGE_SESSION);
    expect(rest.present).toBe(partial.imported);
    expect(await snapshot(target)).toEqual(await snapshot(source, micros));

    const again = await importSessions(target, each(lines));
    expect(again).toMatchObject({ imported: 0, present: 8 + HUGE_SESSION, complete: true });
    expect(await snapshot(target)).toEqual(await snapshot(source, micros));
  });

  it('refuses a session whose target holds other messages, and imports the rest', async () => {
    const target = await sqlite();
    await target.append('gw_9f8e7d', [{ role: 'user', content: 'a different conversation' }]);
    const summary = await importSessions(target, each(lines));
    expect(summary.failed.map((f) => f.key)).toEqual(['gw_9f8e7d']);
    expect(summary.failed[0]!.error).toBeInstanceOf(ConflictError);
    expect((await target.messages('gw_9f8e7d')).items.map((m) => m.content)).toEqual([
      'a different conversation',
    ]);
    expect((await target.session('rpc_bulk'))!.messageCount).toBe(HUGE_SESSION);
  });

  it('leaves a target that went on after an earlier import as it is', async () => {
    const target = await sqlite();
    await importSessions(target, each(lines));
    await target.append('gw_9f8e7d', [{ role: 'user', content: 'later, in the target' }]);
    const activity = (await target.session('gw_9f8e7d'))!.lastActivityAt;
    const summary = await importSessions(target, each(lines));
    expect(summary).toMatchObject({ imported: 0, ahead: ['gw_9f8e7d'], failed: [] });
    expect(await target.session('gw_9f8e7d')).toMatchObject({ messageCount: 3, lastActivityAt: activity });
  });

  it('stores again what was removed from the target since the last run, despite the batch ids', async () => {
    const target = await sqlite();
    await importSessions(target, each(lines));
    await target.removeLast('gw_9f8e7d');
    await target.removeLast('gw_9f8e7d');
    const summary = await importSessions(target, each(lines));
    expect(summary).toMatchObject({ imported: 2, failed: [] });
    expect(await snapshot(target)).toEqual(await snapshot(source));
  });

  it('reports progress up to the totals of the header', async () => {
    const target = await sqlite();
    const seen: CopyProgress[] = [];
    await importSessions(target, each(lines), { onProgress: (p) => seen.push(p) });
    expect(seen[0]).toMatchObject({ sessions: 0, messages: 0, totalSessions: 5 });
    expect(seen.at(-1)).toEqual({
      sessions: 5,
      messages: 8 + HUGE_SESSION,
      totalSessions: 5,
      totalMessages: 8 + HUGE_SESSION,
    });
  });

  it('refuses a stream that is not an export, naming the line', async () => {
    const target = await sqlite();
    const cases: Array<[string[], RegExp]> = [
      [[], /empty/],
      [[lines[1]!], /header/],
      [[lines[0]!.replace('"version":1', '"version":2')], /version 2/],
      [
        [lines[0]!, '{"type":"message","seq":1,"role":"user","content":"x","createdAt":null}'],
        /line 2.*before any session/,
      ],
      [[lines[0]!, lines[1]!, 'not json'], /line 3: not JSON/],
    ];
    for (const [input, message] of cases) {
      const error = await importSessions(target, each(input)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).toMatch(message);
    }
  });
});

describe('readLines', () => {
  it('splits at newlines only, across chunk and UTF-8 boundaries', async () => {
    const text = '{"a":"x\u2028y\rz"}\n{"b":"\u{1F600}"}\n\nlast';
    const bytes = Buffer.from(text);
    const chunks = Array.from(bytes, (b) => Buffer.from([b]));
    const stats = { bytes: 0 };
    const lines: string[] = [];
    for await (const line of readLines(each(chunks), stats)) lines.push(line);
    expect(lines).toEqual(['{"a":"x\u2028y\rz"}', '{"b":"\u{1F600}"}', '', 'last']);
    expect(stats.bytes).toBe(bytes.length);
  });
});
