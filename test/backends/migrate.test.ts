import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import {
  type MigrationOutcome,
  type MigrationProgress,
  migrateJsonlToSqlite,
} from '../../src/backends/migrate.js';
import { applyPragmas, ensureSchema } from '../../src/backends/sqlite/schema.js';
import { openSqliteBackend } from '../../src/backends/sqlite/sqlite-backend.js';
import { ConflictError, InvalidInputError } from '../../src/errors.js';

const CHILD = fileURLToPath(new URL('../helpers/migrate-child.ts', import.meta.url));
const CRASH_WORKER = fileURLToPath(new URL('../helpers/jsonl-crash-worker.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CHRONO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}\+00:00$/;

interface Msg {
  role: string;
  content: string;
}

/** One source file of a workspace and what must come of it; `messages: null` = must fail closed. */
interface Source {
  name: string;
  key: string;
  bytes: Buffer;
  messages: Msg[] | null;
}

let root: string;
let dataDir: string;
let sessions: string;
const children = new Set<ChildProcess>();

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiongraph-migrate-'));
  useWorkspace('ws');
});

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  fs.rmSync(root, { recursive: true, force: true });
});

function useWorkspace(name: string): void {
  dataDir = path.join(root, name);
  sessions = path.join(dataDir, 'sessions');
  fs.mkdirSync(sessions, { recursive: true });
}

const line = (role: string, content: string) => `${JSON.stringify({ role, content })}\n`;
const at = (name: string) => path.join(sessions, name);
const exists = (name: string) => fs.existsSync(at(name));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function write(name: string, data: string | Buffer): Buffer {
  const bytes = Buffer.from(data);
  fs.writeFileSync(at(name), bytes);
  return bytes;
}

function sessionFiles(): string[] {
  return (
    fs
      .readdirSync(sessions)
      // `.sessiongraph/` holds the JSONL backend's locks (zeroclaw lists no dot-name).
      .filter((n) => !n.startsWith('sessions.db') && !n.startsWith('.'))
      .sort()
  );
}

function withDb<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(at('sessions.db'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** zeroclaw's `load`, SQL verbatim. */
function zeroclawLoad(db: Database.Database, key: string): Msg[] {
  return db
    .prepare('SELECT role, content FROM sessions WHERE session_key = ?1 ORDER BY id ASC')
    .all({ 1: key }) as Msg[];
}

function metadata(db: Database.Database, key: string) {
  return db
    .prepare(
      'SELECT created_at, last_activity, message_count, (SELECT COUNT(*) FROM sessions s WHERE s.session_key = m.session_key) AS rows FROM session_metadata m WHERE session_key = ?',
    )
    .get(key) as
    | { created_at: string; last_activity: string; message_count: number; rows: number }
    | undefined;
}

function receipt(db: Database.Database, sourceName: string) {
  return db.prepare('SELECT * FROM jsonl_import_receipts WHERE source_name = ?').get(sourceName) as
    | {
        source_name: string;
        session_key: string;
        source_hash: string;
        source_len: number;
        imported_at: string;
      }
    | undefined;
}

function outcomeOf(outcomes: MigrationOutcome[], file: string): MigrationOutcome {
  const found = outcomes.find((o) => o.file === file);
  if (!found) throw new Error(`no outcome for ${file}`);
  return found;
}

/** A zeroclaw-made database: its schema, and what its import would have committed for `source`. */
function zeroclawCommitted(source: Source): void {
  const db = new Database(at('sessions.db'));
  applyPragmas(db, 5_000);
  ensureSchema(db);
  const now = '2026-08-22T10:00:00.123456789+00:00';
  for (const m of source.messages ?? []) {
    db.prepare('INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)').run(
      source.key,
      m.role,
      m.content,
      now,
    );
  }
  db.prepare(
    'INSERT INTO session_metadata (session_key, created_at, last_activity, message_count) VALUES (?, ?, ?, ?)',
  ).run(source.key, now, now, source.messages?.length ?? 0);
  db.prepare(
    'INSERT INTO jsonl_import_receipts (source_name, session_key, source_hash, source_len, imported_at) VALUES (?, ?, ?, ?, ?)',
  ).run(source.name, source.key, sha256(source.bytes), source.bytes.length, now);
  db.close();
}

function plainSource(key: string, messages: Msg[]): Source {
  return {
    name: `${key}.jsonl`,
    key,
    bytes: Buffer.from(messages.map((m) => line(m.role, m.content)).join('')),
    messages,
  };
}

/** ~count sessions of varied sizes, some with corrupt lines, one empty, one that must fail closed. */
function buildWorkspace(count: number): Source[] {
  const sources: Source[] = [];
  for (let i = 0; i < count; i++) {
    const key = `telegram_chat${i}_user${i % 7}`;
    const messages = Array.from({ length: (i * 7) % 23 }, (_, j) => ({
      role: j % 2 ? 'assistant' : 'user',
      content: `m${i}.${j} ${'x'.repeat(j * 3)} ünï 🎉 "q" \n`,
    }));
    let text = messages.map((m) => line(m.role, m.content)).join('');
    if (i % 5 === 1) text = `{"role":"user"\n${text}not json\n`;
    sources.push({ name: `${key}.jsonl`, key, bytes: Buffer.from(text), messages });
  }
  sources.push({
    name: 'garbage_only.jsonl',
    key: 'garbage_only',
    bytes: Buffer.from('nope\n{"x":1}\n'),
    messages: null,
  });
  for (const s of sources) write(s.name, s.bytes);
  return sources;
}

/**
 * Every state a crash may leave must be one zeroclaw also leaves, and consistent: a source is either
 * untouched (no receipt, no rows, as `.jsonl` or `.importing`) or fully committed (receipt, every
 * row once, in order, as `.importing` and/or `.migrated`). `final`: the run finished.
 */
function assertConsistent(sources: Source[], final: boolean): void {
  let db = exists('sessions.db') ? new Database(at('sessions.db')) : null;
  // A kill can land after the file was created but before the schema was committed.
  if (db && !db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'jsonl_import_receipts'").get()) {
    db.close();
    db = null;
  }
  try {
    let receipts = 0;
    for (const s of sources) {
      const live = exists(s.name);
      const staged = exists(`${s.name}.importing`);
      const migrated = exists(`${s.name}.migrated`);
      const r = db ? receipt(db, s.name) : undefined;
      const rows = db ? zeroclawLoad(db, s.key) : [];
      const meta = db ? metadata(db, s.key) : undefined;
      for (const [present, suffix] of [
        [live, ''],
        [staged, '.importing'],
        [migrated, '.migrated'],
      ] as const) {
        if (present)
          expect(fs.readFileSync(at(`${s.name}${suffix}`)).equals(s.bytes), s.name + suffix).toBe(true);
      }
      if (r) {
        receipts++;
        expect(s.messages, s.name).not.toBeNull();
        expect(r).toMatchObject({
          session_key: s.key,
          source_hash: sha256(s.bytes),
          source_len: s.bytes.length,
        });
        expect(rows, s.name).toEqual(s.messages);
        expect(meta?.message_count, s.name).toBe(s.messages?.length);
        expect(live, s.name).toBe(false);
        expect(staged || migrated, s.name).toBe(true);
        if (final) expect([staged, migrated], s.name).toEqual([false, true]);
      } else {
        expect(rows, s.name).toEqual([]);
        expect(meta, s.name).toBeUndefined();
        expect(migrated, s.name).toBe(false);
        expect(Number(live) + Number(staged), s.name).toBe(1);
        if (final) {
          expect(s.messages, `${s.name} should have been imported`).toBeNull();
          expect(live, s.name).toBe(true);
        }
      }
    }
    if (db) {
      const totals = db
        .prepare(
          'SELECT (SELECT COUNT(*) FROM sessions) AS rows, (SELECT COUNT(*) FROM session_metadata) AS metas, (SELECT COUNT(*) FROM jsonl_import_receipts) AS receipts',
        )
        .get() as { rows: number; metas: number; receipts: number };
      const expectedRows = sources
        .filter((s) => receipt(db, s.name))
        .reduce((n, s) => n + (s.messages?.length ?? 0), 0);
      expect(totals).toEqual({ rows: expectedRows, metas: receipts, receipts });
    }
  } finally {
    db?.close();
  }
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(args: {
  killAtStep?: number;
  maxStepDelayMs?: number;
  killAfterMs?: number;
}): Promise<ChildResult> {
  const argv = [CHILD, dataDir, String(args.killAtStep ?? 0), String(args.maxStepDelayMs ?? 0)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...argv], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      if (args.killAfterMs !== undefined && !timer && stdout.startsWith('ready\n')) {
        timer = setTimeout(() => child.kill('SIGKILL'), args.killAfterMs);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('migrateJsonlToSqlite', () => {
  it('imports every readable line in order, readable by zeroclaw, with its receipt and archive', async () => {
    const a = plainSource('telegram_42_alice', [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'hi "there"\n\ttab ü 🎉' },
      { role: 'tool', content: '{"content":"ok","tool_call_id":"c1"}' },
      { role: 'user', content: '' },
    ]);
    const b = plainSource('discord_7', [{ role: 'system', content: 'be brief' }]);
    write(a.name, a.bytes);
    write(b.name, b.bytes);

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(summary).toMatchObject({
      sessions: 2,
      messages: 5,
      skippedLines: 0,
      alreadyImported: 0,
      failed: 0,
    });
    expect(summary.outcomes.map((o) => [o.file, o.status])).toEqual([
      ['discord_7.jsonl', 'imported'],
      ['telegram_42_alice.jsonl', 'imported'],
    ]);
    expect(sessionFiles()).toEqual(['discord_7.jsonl.migrated', 'telegram_42_alice.jsonl.migrated']);
    expect(fs.readFileSync(at('telegram_42_alice.jsonl.migrated')).equals(a.bytes)).toBe(true);
    withDb((db) => {
      expect(zeroclawLoad(db, a.key)).toEqual(a.messages);
      expect(zeroclawLoad(db, b.key)).toEqual(b.messages);
      const meta = metadata(db, a.key);
      expect(meta).toMatchObject({ message_count: 4, rows: 4 });
      expect(meta?.created_at).toMatch(CHRONO);
      expect(meta?.last_activity).toBe(meta?.created_at);
      const stamps = db.prepare('SELECT DISTINCT created_at FROM sessions WHERE session_key = ?').all(a.key);
      expect(stamps).toEqual([{ created_at: meta?.created_at }]);
      expect(receipt(db, 'telegram_42_alice.jsonl')).toEqual({
        source_name: 'telegram_42_alice.jsonl',
        session_key: 'telegram_42_alice',
        source_hash: sha256(a.bytes),
        source_len: a.bytes.length,
        imported_at: meta?.created_at,
      });
      const fts = db.prepare("SELECT COUNT(*) AS n FROM sessions_fts WHERE sessions_fts MATCH 'brief'").get();
      expect(fts).toEqual({ n: 1 });
    });
  });

  it('skips and counts corrupt lines the way zeroclaw reads them', async () => {
    const text = Buffer.concat([
      Buffer.from(line('user', 'first')),
      Buffer.from('{"role":"user"\n\n   \t \n'),
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]),
      Buffer.from('{"role":"user","content":"dup","content":"x"}\n'),
      Buffer.from('{"role":"user","content":"\\ud800"}\n{"role":"user","content":null}\n'),
      Buffer.from('\ufeff{"role":"user","content":"bom"}\n'),
      Buffer.from('{"role":"assistant","content":"crlf"}\r\n'),
      Buffer.from('  {"role":"user","content":"padded","extra":1}  \n'),
      Buffer.from('{"role":"user","content":"no newline at the end"}'),
    ]);
    write('slack_C1_u.jsonl', text);

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(outcomeOf(summary.outcomes, 'slack_C1_u.jsonl')).toEqual({
      status: 'imported',
      file: 'slack_C1_u.jsonl',
      sessionKey: 'slack_C1_u',
      messages: 4,
      skippedLines: 6,
    });
    expect(summary).toMatchObject({ sessions: 1, messages: 4, skippedLines: 6 });
    withDb((db) => {
      expect(zeroclawLoad(db, 'slack_C1_u')).toEqual([
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'crlf' },
        { role: 'user', content: 'padded' },
        { role: 'user', content: 'no newline at the end' },
      ]);
      expect(receipt(db, 'slack_C1_u.jsonl')?.source_hash).toBe(sha256(text));
    });
  });

  it('fails closed on content without a readable line, leaves it as .jsonl, and imports the rest', async () => {
    const garbage = write('garbage.jsonl', 'not json\n{"role":1,"content":"x"}\n\n');
    const good = plainSource('good', [{ role: 'user', content: 'kept' }]);
    write(good.name, good.bytes);

    const summary = await migrateJsonlToSqlite({ dataDir });

    const failed = outcomeOf(summary.outcomes, 'garbage.jsonl');
    expect(failed).toMatchObject({ status: 'failed', sessionKey: 'garbage', committed: false });
    expect(failed.status === 'failed' && failed.error).toBeInstanceOf(InvalidInputError);
    expect(summary).toMatchObject({ sessions: 1, failed: 1 });
    expect(sessionFiles()).toEqual(['garbage.jsonl', 'good.jsonl.migrated']);
    expect(fs.readFileSync(at('garbage.jsonl')).equals(garbage)).toBe(true);
    withDb((db) => {
      expect(receipt(db, 'garbage.jsonl')).toBeUndefined();
      expect(metadata(db, 'garbage')).toBeUndefined();
    });
  });

  it('turns zero-byte and whitespace-only files into empty sessions', async () => {
    write('empty.jsonl', '');
    write('blank.jsonl', ' \n\t\r\n\n');

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(summary).toMatchObject({ sessions: 2, messages: 0, failed: 0 });
    expect(sessionFiles()).toEqual(['blank.jsonl.migrated', 'empty.jsonl.migrated']);
    withDb((db) => {
      expect(metadata(db, 'empty')).toMatchObject({ message_count: 0, rows: 0 });
      expect(metadata(db, 'blank')).toMatchObject({ message_count: 0, rows: 0 });
      expect(receipt(db, 'empty.jsonl')).toMatchObject({ session_key: 'empty', source_len: 0 });
    });
  });

  it('refuses to merge into a key SQLite already has (rows or metadata only) and leaves the file', async () => {
    const db = new Database(at('sessions.db'));
    applyPragmas(db, 5_000);
    ensureSchema(db);
    const then = '2026-01-01T00:00:00.000000000+00:00';
    db.prepare('INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)').run(
      'taken',
      'user',
      'already here',
      then,
    );
    db.prepare(
      "INSERT INTO session_metadata (session_key, created_at, last_activity, message_count, agent_alias) VALUES ('alias_only', ?, ?, 0, 'a')",
    ).run(then, then);
    db.close();
    const taken = write('taken.jsonl', line('user', 'from jsonl'));
    write('alias_only.jsonl', line('user', 'from jsonl'));

    const summary = await migrateJsonlToSqlite({ dataDir });

    for (const file of ['taken.jsonl', 'alias_only.jsonl']) {
      const outcome = outcomeOf(summary.outcomes, file);
      expect(outcome).toMatchObject({ status: 'failed', committed: false });
      expect(outcome.status === 'failed' && outcome.error).toBeInstanceOf(ConflictError);
    }
    expect(sessionFiles()).toEqual(['alias_only.jsonl', 'taken.jsonl']);
    expect(fs.readFileSync(at('taken.jsonl')).equals(taken)).toBe(true);
    withDb((check) => {
      expect(zeroclawLoad(check, 'taken')).toEqual([{ role: 'user', content: 'already here' }]);
      expect(zeroclawLoad(check, 'alias_only')).toEqual([]);
      expect(check.prepare('SELECT COUNT(*) AS n FROM jsonl_import_receipts').get()).toEqual({ n: 0 });
    });
  });

  it('is a no-op when run again after success', async () => {
    const a = plainSource('a', [{ role: 'user', content: 'once' }]);
    write(a.name, a.bytes);
    await migrateJsonlToSqlite({ dataDir });
    const before = withDb((db) => db.prepare('SELECT * FROM sessions').all());

    const again = await migrateJsonlToSqlite({ dataDir });

    expect(again).toEqual({
      outcomes: [],
      sessions: 0,
      messages: 0,
      skippedLines: 0,
      alreadyImported: 0,
      failed: 0,
    });
    expect(withDb((db) => db.prepare('SELECT * FROM sessions').all())).toEqual(before);
    expect(sessionFiles()).toEqual(['a.jsonl.migrated']);
  });

  it('refuses ambiguous and clobbering states without touching them', async () => {
    write('both.jsonl', line('user', 'live'));
    write('both.jsonl.importing', line('user', 'staged'));
    write('done.jsonl', line('user', 'new'));
    write('done.jsonl.migrated', line('user', 'old'));

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(summary.outcomes).toHaveLength(2);
    for (const o of summary.outcomes) {
      expect(o.status).toBe('failed');
      expect(o.status === 'failed' && o.error).toBeInstanceOf(ConflictError);
    }
    const refused = outcomeOf(summary.outcomes, 'done.jsonl');
    expect(refused.status === 'failed' && refused.error.message).toMatch(
      /refusing to replace existing migrated/,
    );
    expect(sessionFiles()).toEqual([
      'both.jsonl',
      'both.jsonl.importing',
      'done.jsonl',
      'done.jsonl.migrated',
    ]);
    expect(fs.readFileSync(at('done.jsonl.migrated'), 'utf8')).toBe(line('user', 'old'));
  });

  it('ignores what zeroclaw ignores and fails a non-UTF-8 name alone', async () => {
    write('.jsonl', line('user', 'empty stem'));
    write('notes.txt', 'x');
    write('x.jsonl.tmp', 'x');
    const badName = Buffer.concat([
      Buffer.from(`${sessions}/bad_`),
      Buffer.from([0xff]),
      Buffer.from('.jsonl'),
    ]);
    fs.writeFileSync(badName, line('user', 'x'));
    write('fine.jsonl', line('user', 'ok'));

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(summary.outcomes.map((o) => [o.file, o.status])).toEqual([
      ['bad_\ufffd.jsonl', 'failed'],
      ['fine.jsonl', 'imported'],
    ]);
    const bad = summary.outcomes[0];
    expect(bad?.status === 'failed' && bad.error).toBeInstanceOf(InvalidInputError);
    expect(fs.existsSync(badName)).toBe(true);
    expect(exists('.jsonl')).toBe(true);
  });

  it('notices a writer that touches a staged file, before and after the commit', async () => {
    const before = write('appended.jsonl', line('user', 'v1'));
    write('recreated.jsonl', line('user', 'r1'));

    const summary = await migrateJsonlToSqlite({
      dataDir,
      onStep: (step, file) => {
        if (step === 'fingerprinted' && file === 'appended.jsonl') {
          fs.appendFileSync(at('appended.jsonl.importing'), line('user', 'late'));
        }
        if (step === 'committed' && file === 'recreated.jsonl') write('recreated.jsonl', line('user', 'r2'));
      },
    });

    const appended = outcomeOf(summary.outcomes, 'appended.jsonl');
    expect(appended).toMatchObject({ status: 'failed', committed: false });
    expect(appended.status === 'failed' && appended.error.message).toMatch(/changed while it was staged/);
    expect(fs.readFileSync(at('appended.jsonl'), 'utf8')).toBe(`${before}${line('user', 'late')}`);
    const recreated = outcomeOf(summary.outcomes, 'recreated.jsonl');
    expect(recreated).toMatchObject({ status: 'failed', committed: true });
    expect(recreated.status === 'failed' && recreated.error.message).toMatch(/reappeared/);
    expect(sessionFiles()).toEqual(['appended.jsonl', 'recreated.jsonl', 'recreated.jsonl.migrated']);
    withDb((db) => {
      expect(receipt(db, 'appended.jsonl')).toBeUndefined();
      expect(zeroclawLoad(db, 'recreated')).toEqual([{ role: 'user', content: 'r1' }]);
    });
  });

  it('reports progress per file and logs failures through the given pino logger', async () => {
    write('ok.jsonl', line('user', 'a') + line('assistant', 'b'));
    write('bad.jsonl', 'garbage\n');
    const logged: Array<{ level: number; msg: string; file?: string; code?: string }> = [];
    const logger = pino({ level: 'info' }, { write: (chunk: string) => logged.push(JSON.parse(chunk)) });
    const progress: MigrationProgress[] = [];

    await migrateJsonlToSqlite({ dataDir, logger, onProgress: (p) => progress.push(p) });

    expect(progress).toEqual([
      { file: 'bad.jsonl', index: 1, total: 2, messages: 0, status: 'failed' },
      { file: 'ok.jsonl', index: 2, total: 2, messages: 2, status: 'imported' },
    ]);
    expect(logged.map((l) => [l.level, l.msg, l.file])).toEqual([
      [40, 'JSONL import failed', 'bad.jsonl'],
      [30, 'JSONL import', 'ok.jsonl'],
    ]);
    expect(logged[0]?.code).toBe('INVALID');
  });

  it('resumes what zeroclaw left half-done', async () => {
    const fresh = plainSource('staged_fresh', [{ role: 'user', content: 'staged, nothing committed' }]);
    const committed = plainSource('staged_committed', [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'a' },
    ]);
    const linked = plainSource('staged_linked', [{ role: 'user', content: 'linked, not unlinked' }]);
    const live = plainSource('live_one', [{ role: 'user', content: 'still live' }]);
    write(`${fresh.name}.importing`, fresh.bytes);
    write(`${committed.name}.importing`, committed.bytes);
    zeroclawCommitted(committed);
    write(`${linked.name}.importing`, linked.bytes);
    fs.linkSync(at(`${linked.name}.importing`), at(`${linked.name}.migrated`));
    zeroclawCommitted(linked);
    write(live.name, live.bytes);
    const order: MigrationProgress[] = [];

    const summary = await migrateJsonlToSqlite({ dataDir, onProgress: (p) => order.push(p) });

    expect(order.map((p) => [p.file, p.index, p.total, p.status, p.messages])).toEqual([
      ['staged_committed.jsonl', 1, 4, 'already-imported', 0],
      ['staged_fresh.jsonl', 2, 4, 'imported', 1],
      ['staged_linked.jsonl', 3, 4, 'already-imported', 0],
      ['live_one.jsonl', 4, 4, 'imported', 1],
    ]);
    expect(summary).toMatchObject({ sessions: 2, messages: 2, alreadyImported: 2, failed: 0 });
    assertConsistent([fresh, committed, linked, live], true);
  });

  it('refuses a staged file whose receipt records other bytes, and keeps it staged', async () => {
    const s = plainSource('changed', [{ role: 'user', content: 'v1' }]);
    zeroclawCommitted(s);
    write(`${s.name}.importing`, line('user', 'v2'));

    const summary = await migrateJsonlToSqlite({ dataDir });

    const outcome = outcomeOf(summary.outcomes, 'changed.jsonl');
    expect(outcome).toMatchObject({ status: 'failed', committed: true });
    expect(outcome.status === 'failed' && outcome.error.message).toMatch(
      /does not match its committed import receipt/,
    );
    expect(sessionFiles()).toEqual(['changed.jsonl.importing']);
    withDb((db) => expect(zeroclawLoad(db, 'changed')).toEqual([{ role: 'user', content: 'v1' }]));
  });

  it("imports a session made through sessiongraph under zeroclaw's key, the file stem", async () => {
    const jsonl = await openJsonlBackend({ dataDir });
    await jsonl.append('slack/thread:1', [{ role: 'user', content: 'raw' }], { clientMessageId: 'c' });
    await jsonl.renameSession('slack/thread:1', 'named');
    await jsonl.close();
    const bytes = fs.readFileSync(at('slack_thread_1.jsonl'));

    const summary = await migrateJsonlToSqlite({ dataDir });

    expect(summary.outcomes.map((o) => [o.file, o.status, o.sessionKey])).toEqual([
      ['slack_thread_1.jsonl', 'imported', 'slack_thread_1'],
    ]);
    withDb((db) => {
      expect(zeroclawLoad(db, 'slack_thread_1')).toEqual([{ role: 'user', content: 'raw' }]);
      expect(zeroclawLoad(db, 'slack/thread:1')).toEqual([]);
      expect(metadata(db, 'slack_thread_1')).toMatchObject({ message_count: 1, rows: 1 });
      expect(receipt(db, 'slack_thread_1.jsonl')).toMatchObject({
        session_key: 'slack_thread_1',
        source_hash: sha256(bytes),
      });
    });
    // And sessiongraph on SQLite serves it under the same key zeroclaw uses.
    const sqlite = await openSqliteBackend({ dataDir });
    try {
      expect((await sqlite.messages('slack_thread_1')).items.map((m) => m.content)).toEqual(['raw']);
    } finally {
      await sqlite.close();
    }
  });

  it('leaves a receipt zeroclaw accepts when interrupted between commit and archive', async () => {
    const jsonl = await openJsonlBackend({ dataDir });
    await jsonl.append('slack/thread:1', [{ role: 'user', content: 'raw' }]);
    await jsonl.close();
    const bytes = fs.readFileSync(at('slack_thread_1.jsonl'));

    const first = await migrateJsonlToSqlite({
      dataDir,
      onStep: (step) => {
        if (step === 'committed') throw new Error('simulated crash after commit');
      },
    });

    expect(outcomeOf(first.outcomes, 'slack_thread_1.jsonl')).toMatchObject({
      status: 'failed',
      committed: true,
    });
    expect(sessionFiles()).toEqual(['slack_thread_1.jsonl.importing']);
    // zeroclaw's retry check: the receipt's key is the stem and the staged file matches it.
    withDb((db) =>
      expect(receipt(db, 'slack_thread_1.jsonl')).toMatchObject({
        session_key: 'slack_thread_1',
        source_hash: sha256(bytes),
        source_len: bytes.length,
      }),
    );
    const second = await migrateJsonlToSqlite({ dataDir });
    expect(outcomeOf(second.outcomes, 'slack_thread_1.jsonl')).toMatchObject({
      status: 'already-imported',
      sessionKey: 'slack_thread_1',
    });
    expect(sessionFiles()).toEqual(['slack_thread_1.jsonl.migrated']);
  });

  it('finishes an import an older sessiongraph committed under the raw key', async () => {
    const bytes = write('slack_thread_1.jsonl.importing', line('user', 'raw'));
    withDb((db) => {
      applyPragmas(db, 5_000);
      ensureSchema(db);
      db.prepare(
        'INSERT INTO jsonl_import_receipts (source_name, session_key, source_hash, source_len, imported_at) VALUES (?, ?, ?, ?, ?)',
      ).run(
        'slack_thread_1.jsonl',
        'slack/thread:1',
        sha256(bytes),
        bytes.length,
        '2026-08-22T10:00:00.000000000+00:00',
      );
    });
    const summary = await migrateJsonlToSqlite({ dataDir });
    expect(outcomeOf(summary.outcomes, 'slack_thread_1.jsonl')).toMatchObject({
      status: 'already-imported',
      sessionKey: 'slack/thread:1',
    });
    expect(sessionFiles()).toEqual(['slack_thread_1.jsonl.migrated']);
  });

  it("imports serde's sequence form of a message, `[role, content]`, as a message", async () => {
    write('tuple.jsonl', `${line('user', 'object')}["assistant","sequence"]\n["user"]\n`);
    const summary = await migrateJsonlToSqlite({ dataDir });
    expect(summary).toMatchObject({ sessions: 1, messages: 2, skippedLines: 1, failed: 0 });
    withDb((db) =>
      expect(zeroclawLoad(db, 'tuple')).toEqual([
        { role: 'user', content: 'object' },
        { role: 'assistant', content: 'sequence' },
      ]),
    );
  });

  describe('a failure before the commit puts a file it staged back (zeroclaw)', () => {
    const dropReceipts = () =>
      withDb((db) => {
        db.exec('DROP TABLE jsonl_import_receipts');
      });

    it('restores it without asking for a receipt, even when that query would fail too', async () => {
      write('a.jsonl', line('user', 'x'));
      const summary = await migrateJsonlToSqlite({
        dataDir,
        onStep: (step) => {
          if (step === 'staged') {
            dropReceipts(); // the receipt query now fails as well
            throw new Error('injected failure while staging');
          }
        },
      });
      expect(outcomeOf(summary.outcomes, 'a.jsonl')).toMatchObject({ status: 'failed', committed: false });
      expect(sessionFiles()).toEqual(['a.jsonl']);
    });

    it('restores it after a failure once fingerprinted, before the transaction', async () => {
      write('a.jsonl', line('user', 'x'));
      const summary = await migrateJsonlToSqlite({
        dataDir,
        onStep: (step) => {
          if (step === 'fingerprinted') {
            dropReceipts();
            throw new Error('injected failure after fingerprinting');
          }
        },
      });
      expect(outcomeOf(summary.outcomes, 'a.jsonl')).toMatchObject({ status: 'failed', committed: false });
      expect(sessionFiles()).toEqual(['a.jsonl']);
      // The next run imports it.
      withDb((db) => ensureSchema(db));
      expect((await migrateJsonlToSqlite({ dataDir })).sessions).toBe(1);
    });

    it('keeps a file an earlier run staged when the receipt cannot be read: it may have committed', async () => {
      write('a.jsonl.importing', line('user', 'x'));
      const summary = await migrateJsonlToSqlite({
        dataDir,
        onStep: (step) => {
          if (step === 'fingerprinted') {
            dropReceipts();
            throw new Error('injected failure after fingerprinting');
          }
        },
      });
      expect(outcomeOf(summary.outcomes, 'a.jsonl')).toMatchObject({ status: 'failed', committed: false });
      expect(sessionFiles()).toEqual(['a.jsonl.importing']);
    });

    it('asks for the receipt once the transaction began, and keeps a committed file staged', async () => {
      write('rolled.jsonl', line('user', 'x'));
      write('committed.jsonl', line('user', 'y'));
      const summary = await migrateJsonlToSqlite({
        dataDir,
        onStep: (step, file) => {
          if (step === 'rows-written' && file === 'rolled.jsonl')
            throw new Error('injected in the transaction');
          if (step === 'committed' && file === 'committed.jsonl')
            throw new Error('injected after the commit');
        },
      });
      expect(outcomeOf(summary.outcomes, 'rolled.jsonl')).toMatchObject({
        status: 'failed',
        committed: false,
      });
      expect(outcomeOf(summary.outcomes, 'committed.jsonl')).toMatchObject({
        status: 'failed',
        committed: true,
      });
      expect(sessionFiles()).toEqual(['committed.jsonl.importing', 'rolled.jsonl']);
    });
  });

  describe('a sessiongraph JSONL append during the import of its file', () => {
    for (const pauseAt of ['staged', 'fingerprinted', 'committed'] as const) {
      it(`waits for the import (paused after ${pauseAt}), then is fenced: nothing stranded`, async () => {
        const jsonl = await openJsonlBackend({ dataDir });
        try {
          await jsonl.append('chat', [{ role: 'user', content: 'before' }]);
          let append: Promise<unknown> | undefined;
          const summary = await migrateJsonlToSqlite({
            dataDir,
            onStep: async (step) => {
              if (step !== pauseAt) return;
              append = jsonl.append('chat', [{ role: 'user', content: 'during' }]).then(
                (r) => r,
                (e: unknown) => e,
              );
              // An append cannot signal that it waits for the lock, so the pause gives it ample time
              // to finish (and strand its line in a new chat.jsonl) were it not fenced.
              await Promise.race([append, new Promise((r) => setTimeout(r, 300))]);
            },
          });
          expect(summary).toMatchObject({ sessions: 1, messages: 1, failed: 0 });
          // After the import, the append finds zeroclaw's fence: refused, never written to a new file.
          expect(await append).toBeInstanceOf(ConflictError);
          expect(sessionFiles()).toEqual(['chat.jsonl.migrated']);
          withDb((db) => expect(zeroclawLoad(db, 'chat')).toEqual([{ role: 'user', content: 'before' }]));
          // A later import finds nothing to do and fails nothing.
          expect(await migrateJsonlToSqlite({ dataDir })).toMatchObject({ failed: 0, sessions: 0 });
        } finally {
          await jsonl.close();
        }
      });
    }

    it('fences every other JSONL write to that session the same way', async () => {
      const jsonl = await openJsonlBackend({ dataDir });
      try {
        await jsonl.append('chat', [{ role: 'user', content: 'before' }]);
        let writes: Promise<unknown>[] = [];
        await migrateJsonlToSqlite({
          dataDir,
          onStep: async (step) => {
            if (step !== 'staged') return;
            writes = [
              jsonl.renameSession('chat', 'renamed'),
              jsonl.removeLast('chat'),
              jsonl.compact('chat'),
              jsonl.deleteSession('chat'),
            ].map((p) =>
              p.then(
                (r) => r,
                (e: unknown) => e,
              ),
            );
            await Promise.race([Promise.all(writes), new Promise((r) => setTimeout(r, 300))]);
          },
        });
        for (const outcome of await Promise.all(writes)) expect(outcome).toBeInstanceOf(ConflictError);
        expect(sessionFiles()).toEqual(['chat.jsonl.migrated']);
        withDb((db) => expect(zeroclawLoad(db, 'chat')).toEqual([{ role: 'user', content: 'before' }]));
      } finally {
        await jsonl.close();
      }
    });

    it('makes an append from another sessiongraph process wait, then refuses it', {
      timeout: 120_000,
    }, async () => {
      const jsonl = await openJsonlBackend({ dataDir });
      await jsonl.append('chat', [{ role: 'user', content: 'before' }]);
      await jsonl.close();
      let exited: Promise<ChildResult> | undefined;
      const summary = await migrateJsonlToSqlite({
        dataDir,
        onStep: async (step) => {
          if (step !== 'staged') return;
          const child = spawn(
            process.execPath,
            ['--import', 'tsx', CRASH_WORKER, dataDir, 'chat', 'inject', 'never'],
            {
              cwd: REPO,
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          children.add(child);
          let stdout = '';
          let stderr = '';
          child.stderr.on('data', (chunk: Buffer) => {
            stderr += chunk;
          });
          const opened = new Promise<void>((resolve) =>
            child.stdout.on('data', (chunk: Buffer) => {
              stdout += chunk;
              if (stdout.startsWith('O\n')) resolve();
            }),
          );
          exited = new Promise((resolve) =>
            child.on('close', (code, signal) => {
              children.delete(child);
              resolve({ code, signal, stdout, stderr });
            }),
          );
          await Promise.race([opened, exited]);
          // The child is about to append: give it ample time to finish were it not fenced.
          await Promise.race([exited, new Promise((r) => setTimeout(r, 500))]);
        },
      });
      expect(summary).toMatchObject({ sessions: 1, messages: 1, failed: 0 });
      const result = await exited!;
      expect(result.code, result.stdout).toBe(1);
      expect(result.stderr).toMatch(/migrated to SQLite/);
      expect(sessionFiles()).toEqual(['chat.jsonl.migrated']);
      withDb((db) => expect(zeroclawLoad(db, 'chat')).toEqual([{ role: 'user', content: 'before' }]));
    });

    it('goes ahead once an import that failed before its commit put the file back', async () => {
      const jsonl = await openJsonlBackend({ dataDir });
      try {
        await jsonl.append('chat', [{ role: 'user', content: 'before' }]);
        let append: Promise<unknown> | undefined;
        const summary = await migrateJsonlToSqlite({
          dataDir,
          onStep: (step) => {
            if (step !== 'fingerprinted') return;
            append = jsonl.append('chat', [{ role: 'user', content: 'during' }]);
            throw new Error('injected failure');
          },
        });
        expect(summary.failed).toBe(1);
        await append;
        expect(sessionFiles()).toEqual(['chat.jsonl']);
        expect((await jsonl.messages('chat')).items.map((m) => m.content)).toEqual(['before', 'during']);
        expect(await migrateJsonlToSqlite({ dataDir })).toMatchObject({
          sessions: 1,
          messages: 2,
          failed: 0,
        });
      } finally {
        await jsonl.close();
      }
    });
  });

  it('refuses a second concurrent run over the same workspace in one process', async () => {
    write('a.jsonl', line('user', 'x'));
    const first = migrateJsonlToSqlite({ dataDir });
    await expect(migrateJsonlToSqlite({ dataDir })).rejects.toBeInstanceOf(ConflictError);
    expect((await first).sessions).toBe(1);
  });

  describe('crash safety (child processes killed with SIGKILL)', () => {
    it('converges after a kill right after every step of every file', async () => {
      const stepsTotal = { value: 0 };
      let kills = 0;
      for (let killAt = 1; ; killAt++) {
        useWorkspace(`step-${killAt}`);
        const sources = [
          plainSource('a_first', [
            { role: 'user', content: 'one' },
            { role: 'assistant', content: 'two' },
          ]),
          plainSource('b_empty', []),
          {
            name: 'c_corrupt.jsonl',
            key: 'c_corrupt',
            bytes: Buffer.from(`garbage\n${line('user', 'three')}`),
            messages: [{ role: 'user', content: 'three' }],
          },
          { name: 'd_fail.jsonl', key: 'd_fail', bytes: Buffer.from('nope\n'), messages: null },
        ] satisfies Source[];
        for (const s of sources) write(s.name, s.bytes);

        const result = await runChild({ killAtStep: killAt });
        if (result.signal !== 'SIGKILL') {
          expect(result, result.stderr).toMatchObject({ code: 0 });
          stepsTotal.value = JSON.parse(result.stdout.split('\n')[1] ?? '{}').steps;
          assertConsistent(sources, true);
          break;
        }
        kills++;
        assertConsistent(sources, false);
        const resumed = await migrateJsonlToSqlite({ dataDir });
        expect(resumed.failed).toBe(1);
        assertConsistent(sources, true);
      }
      // 6 steps for each of 3 importable files, 2 for the one that fails closed.
      expect(stepsTotal.value).toBe(20);
      expect(kills).toBe(20);
    }, 60_000);

    it('converges after repeated random-time kills over a workspace of 31 files', async () => {
      const sources = buildWorkspace(30);
      let kills = 0;
      let stagedSeen = 0;
      let finished = false;
      for (let attempt = 0; attempt < 25 && !finished; attempt++) {
        const result = await runChild({
          maxStepDelayMs: 3,
          killAfterMs: Math.random() * (40 + 10 * attempt),
        });
        if (result.signal === 'SIGKILL') {
          kills++;
          stagedSeen += sessionFiles().filter((n) => n.endsWith('.importing')).length;
          assertConsistent(sources, false);
        } else {
          expect(result, result.stderr).toMatchObject({ code: 0 });
          finished = true;
        }
      }
      console.info(`random kills: ${kills} before completion, ${stagedSeen} staged files seen after kills`);
      const last = await migrateJsonlToSqlite({ dataDir });
      expect(last.failed).toBe(1);
      assertConsistent(sources, true);
      expect(kills).toBeGreaterThan(3);
      expect(stagedSeen).toBeGreaterThan(0);
    }, 90_000);
  });
});
