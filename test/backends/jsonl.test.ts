/**
 * JSONL-specific behaviour (the shared behaviour is in contract.ts): zeroclaw byte compatibility,
 * raw keys and collisions, corrupt and torn lines, the line index, locks, crashes, two processes,
 * and the migration fence. Real files in a temp workspace; real child processes.
 */

import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewMessage, SessionBackend } from '../../src/backends/backend.js';
import { SNIPPET_CLOSE, SNIPPET_OPEN } from '../../src/backends/backend.js';
import type { BackendOptions } from '../../src/backends/backend-options.js';
import { FileLocks } from '../../src/backends/jsonl/file-lock.js';
import { openJsonlBackend } from '../../src/backends/jsonl/jsonl-backend.js';
import { processStartTime } from '../../src/backends/jsonl/process-liveness.js';
import { SessionFile } from '../../src/backends/jsonl/session-file.js';
import { sessionPaths } from '../../src/backends/jsonl/session-paths.js';
import { SidecarStore } from '../../src/backends/jsonl/session-sidecar.js';
import { sanitizeKey } from '../../src/backends/keys.js';
import { toTimestamp } from '../../src/backends/timestamps.js';
import {
  type AppError,
  ConflictError,
  InvalidInputError,
  KeyCollisionError,
  NotFoundError,
  TooLargeError,
  UnavailableError,
} from '../../src/errors.js';
import { APPEND_STEPS, crashWorkerOp, idempotentCrashRequest } from '../helpers/jsonl-crash-ops.js';
import { serdeLine, zeroclawLoad } from '../helpers/jsonl-zeroclaw.js';
import { prng } from '../helpers/prng.js';

const CRASH_WORKER = fileURLToPath(new URL('../helpers/jsonl-crash-worker.ts', import.meta.url));
const APPEND_WORKER = fileURLToPath(new URL('../helpers/jsonl-append-worker.ts', import.meta.url));

const user = (content: string): NewMessage => ({ role: 'user', content });
const line = (content: string) => serdeLine(user(content));

let dir: string;
let sessionsDir: string;
let store: SessionBackend;
const opened: SessionBackend[] = [];

async function open(options: Partial<BackendOptions> = {}): Promise<SessionBackend> {
  const backend = await openJsonlBackend({ dataDir: dir, ...options });
  opened.push(backend);
  return backend;
}

const fileOf = (stem: string) => join(sessionsDir, `${stem}.jsonl`);
const bytesOf = (stem: string) => readFileSync(fileOf(stem));
const contentsOf = async (backend: SessionBackend, key: string) =>
  (await backend.messages(key, { first: 1_000 })).items.map((m) => m.content);

async function expectError<T extends AppError>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected ${type.name}`).toBeInstanceOf(type);
  return error as T;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sg-jsonl-'));
  sessionsDir = join(dir, 'sessions');
  store = await open();
});

afterEach(async () => {
  for (const backend of opened.splice(0)) await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The real key shapes from the reference (section 6) and the file stems zeroclaw gives them. */
const KEY_SHAPES: Array<[raw: string, stem: string]> = [
  ['telegram_-1001234567890:42_42_alice', 'telegram_-1001234567890_42_42_alice'],
  ['slack_C0123ABC_1712345678.123456_Alice Smith', 'slack_C0123ABC_1712345678_123456_Alice_Smith'],
  ['matrix_!room:server_$event:server_@alice:server', 'matrix__room_server__event_server__alice_server'],
  ['user_Алиса', 'user_Алиса'],
  ['gw_chat😀🎉', 'gw_chat__'],
];

describe('zeroclaw byte compatibility', () => {
  const tricky: NewMessage[] = [
    user('plain'),
    { role: 'assistant', content: 'quotes " and \\ backslash and / slash' },
    user('controls \u0001 \b \t \n \f \r \u001f \u007f end'),
    user('U+2028 \u2028 U+2029 \u2029 é e\u0301 日本語 😀 👩‍👩‍👧 Алиса שלום'),
    { role: 'tool', content: '{"content":"exit code 0","tool_call_id":"call_1"}' },
    user('  padded  '),
    user(''),
    user('\ufeffa BOM inside content is content'),
  ];

  it('writes exactly the bytes zeroclaw writes, and zeroclaw reads back exactly our messages', async () => {
    await store.append('telegram_1_alice', tricky.slice(0, 3));
    for (const message of tricky.slice(3)) await store.append('telegram_1_alice', [message]);
    const bytes = bytesOf('telegram_1_alice');
    expect(bytes.equals(Buffer.from(tricky.map(serdeLine).join(''), 'utf8'))).toBe(true);
    expect(zeroclawLoad(bytes)).toEqual(tricky);
    expect([...bytes.subarray(0, 3)]).not.toEqual([0xef, 0xbb, 0xbf]);
  });

  it('serves sessions zeroclaw wrote, under their file stems, for every real key shape', async () => {
    for (const [raw, stem] of KEY_SHAPES) {
      expect(sanitizeKey(raw)).toBe(stem);
      writeFileSync(
        fileOf(stem),
        [line(`hello ${raw}`), serdeLine({ role: 'assistant', content: 'hi' })].join(''),
      );
    }
    const listed = (await store.sessions({ order: 'KEY_ASC' })).items;
    expect(listed.map((s) => s.key)).toEqual(KEY_SHAPES.map(([, stem]) => stem).sort(byCodePoint));
    for (const [raw, stem] of KEY_SHAPES) {
      expect(await contentsOf(store, stem)).toEqual([`hello ${raw}`, 'hi']);
      expect(await store.session(stem)).toMatchObject({ key: stem, messageCount: 2, unreadableCount: 0 });
      if (raw === stem) continue;
      // The raw key zeroclaw used is not recorded anywhere: the file belongs to its stem.
      expect(await store.session(raw)).toBeNull();
      const error = await expectError(store.append(raw, [user('x')]), KeyCollisionError);
      expect(error).toMatchObject({ sessionKey: raw, existingKey: stem });
    }
  });

  it('writes raw keys of every shape to zeroclaw file names and lists them under the raw key', async () => {
    for (const [raw] of KEY_SHAPES) await store.append(raw, [user(raw)]);
    for (const [raw, stem] of KEY_SHAPES) {
      expect(zeroclawLoad(bytesOf(stem))).toEqual([user(raw)]);
      if (raw !== stem) expect(await store.session(stem)).toBeNull();
    }
    const reopened = await open();
    const keys = (await reopened.sessions()).items.map((s) => s.key);
    expect(keys.sort()).toEqual(KEY_SHAPES.map(([raw]) => raw).sort());
    for (const [raw] of KEY_SHAPES) expect(await contentsOf(reopened, raw)).toEqual([raw]);
    const sidecars = new SidecarStore(sessionPaths(dir).keysDir);
    for (const [raw, stem] of KEY_SHAPES)
      expect((await sidecars.read(stem))?.key ?? null).toBe(raw === stem ? null : raw);
  });
});

describe('raw keys and collisions', () => {
  it('refuses a second raw key for one file and never merges', async () => {
    await store.append('slack/thread:1', [user('first')]);
    for (const other of ['slack_thread_1', 'slack.thread.1', 'slack thread 1']) {
      const error = await expectError(store.append(other, [user('second')]), KeyCollisionError);
      expect(error).toMatchObject({ sessionKey: other, existingKey: 'slack/thread:1' });
      await expectError(store.renameSession(other, 'name'), KeyCollisionError);
      expect(await store.session(other)).toBeNull();
      expect((await store.messages(other)).items).toEqual([]);
      await expectError(store.removeLast(other), NotFoundError);
      await expectError(store.deleteSession(other), NotFoundError);
    }
    expect(bytesOf('slack_thread_1').toString('utf8')).toBe(line('first'));
    const reopened = await open();
    await expectError(reopened.append('slack_thread_1', [user('x')]), KeyCollisionError);
    expect(await reopened.session('slack/thread:1')).toMatchObject({ messageCount: 1 });
  });

  it('gives a file zeroclaw made to its stem', async () => {
    writeFileSync(fileOf('slack_thread_1'), line('from zeroclaw'));
    const error = await expectError(store.append('slack/thread:1', [user('x')]), KeyCollisionError);
    expect(error.existingKey).toBe('slack_thread_1');
    await store.append('slack_thread_1', [user('from us')]);
    expect(await contentsOf(store, 'slack_thread_1')).toEqual(['from zeroclaw', 'from us']);
  });

  it('frees the file name for another key once the session is deleted', async () => {
    await store.append('slack/thread:1', [user('x')], { clientMessageId: 'c' });
    await store.renameSession('slack/thread:1', 'named');
    await store.deleteSession('slack/thread:1');
    const { session, replayed } = await store.append('slack_thread_1', [user('x')], { clientMessageId: 'c' });
    expect(replayed).toBe(false);
    expect(session).toMatchObject({ key: 'slack_thread_1', name: null, messageCount: 1 });
  });

  it('refuses a key whose file name would pass 255 bytes, creating nothing', async () => {
    const error = await expectError(store.append('é'.repeat(125), [user('x')]), TooLargeError);
    expect(error).toMatchObject({ field: 'sessionKey', limit: 255, actual: 256, unit: 'bytes' });
    expect(readdirSync(sessionsDir)).toEqual([]);
    await store.append('é'.repeat(124), [user('x')]);
    expect(existsSync(fileOf('é'.repeat(124)))).toBe(true);
  });

  it('returns raw keys from cleanupStale and removes their sidecars', async () => {
    await store.append('slack/thread:9', [user('old')], { clientMessageId: 'c' });
    await store.append('fresh', [user('new')]);
    const past = new Date(Date.now() - 3 * 3_600_000);
    utimesSync(fileOf('slack_thread_9'), past, past);
    expect(await store.cleanupStale(1)).toEqual(['slack/thread:9']);
    expect(existsSync(fileOf('slack_thread_9'))).toBe(false);
    expect(await new SidecarStore(sessionPaths(dir).keysDir).read('slack_thread_9')).toBeNull();
    expect((await store.sessions()).items.map((s) => s.key)).toEqual(['fresh']);
  });
});

describe('corrupt, blank and torn lines', () => {
  const READABLE = ['one', 'crlf', 'unknown field kept', 'two'];
  const fixture = (): Buffer[] => [
    Buffer.from(line('one')),
    Buffer.from('\n'),
    Buffer.from('not json at all\n'),
    Buffer.from('{"role":"user"}\n'),
    Buffer.from('{"role":"user","content":"a","content":"b"}\n'),
    Buffer.from('{"role":"user","content":"\\ud800"}\n'),
    Buffer.from('{"role":"user","content":"x"} trailing\n'),
    Buffer.from(`\ufeff${line('behind a BOM')}`),
    Buffer.from([0xff, 0xfe, 0x7b, 0x0a]),
    Buffer.from('{"role":"user","content":"crlf"}\r\n'),
    Buffer.from('  \t \n'),
    Buffer.from('{"content":"unknown field kept","role":"assistant","extra":{"n":1}}\n'),
    Buffer.from(line('two')),
    Buffer.from('{"role":"user","content":"torn after the last message\n'),
  ];
  const CORRUPT = 8;

  it('skips and counts corrupt lines, reading them as zeroclaw does', async () => {
    writeFileSync(fileOf('s'), Buffer.concat(fixture()));
    expect(await store.session('s')).toMatchObject({ messageCount: 4, lastSeq: 4, unreadableCount: CORRUPT });
    const page = await store.messages('s');
    expect(page.items.map((m) => [m.seq, m.content])).toEqual(READABLE.map((c, i) => [i + 1, c]));
    expect(zeroclawLoad(bytesOf('s')).map((m) => m.content)).toEqual(READABLE);
    expect((await store.messages('s', { last: 2 })).items.map((m) => m.content)).toEqual([
      'unknown field kept',
      'two',
    ]);
    expect(await store.message('s', 3)).toMatchObject({ role: 'assistant', content: 'unknown field kept' });
  });

  it('removeLast cuts only the last readable line; every other byte stays', async () => {
    const parts = fixture();
    writeFileSync(fileOf('s'), Buffer.concat(parts));
    const first = await store.removeLast('s', { expectedLastSeq: 4 });
    expect(first.removed).toMatchObject({ seq: 4, content: 'two' });
    expect(bytesOf('s').equals(Buffer.concat(parts.filter((_, i) => i !== 12)))).toBe(true);
    const second = await store.removeLast('s');
    expect(second.removed).toMatchObject({ seq: 3, content: 'unknown field kept' });
    expect(bytesOf('s').equals(Buffer.concat(parts.filter((_, i) => i !== 12 && i !== 11)))).toBe(true);
    expect(second.session).toMatchObject({ messageCount: 2, unreadableCount: CORRUPT });
  });

  it('compact drops exactly the corrupt lines and keeps readable ones byte for byte', async () => {
    const parts = fixture();
    writeFileSync(fileOf('s'), Buffer.concat(parts));
    const { dropped, session } = await store.compact('s');
    expect(dropped).toBe(CORRUPT);
    expect(session).toMatchObject({ messageCount: 4, unreadableCount: 0 });
    const kept = [0, 1, 9, 10, 11, 12].map((i) => parts[i]!);
    expect(bytesOf('s').equals(Buffer.concat(kept))).toBe(true);
    expect(await contentsOf(store, 's')).toEqual(READABLE);
    expect((await store.compact('s')).dropped).toBe(0);
  });

  describe("serde's sequence form of a message, `[role, content]`", () => {
    const FORMS = [
      ['["user","as a tuple"]\n', true],
      [' [ "assistant" , "spaced tuple" ] \n', true],
      ['["user"]\n', false],
      ['["user","a","b"]\n', false],
      ['["user",1]\n', false],
      ['["user","\\ud800"]\n', false],
      ['[]\n', false],
    ] as const;
    const file = () => `${line('first')}${FORMS.map(([text]) => text).join('')}${line('last')}`;
    const READ = ['first', 'as a tuple', 'spaced tuple', 'last'];

    it('reads it as a message, as zeroclaw does, and counts only the malformed ones', async () => {
      writeFileSync(fileOf('s'), file());
      expect(zeroclawLoad(bytesOf('s')).map((m) => m.content)).toEqual(READ);
      expect(await store.session('s')).toMatchObject({ messageCount: 4, unreadableCount: 5 });
      expect((await store.messages('s')).items.map((m) => [m.seq, m.role, m.content])).toEqual([
        [1, 'user', 'first'],
        [2, 'user', 'as a tuple'],
        [3, 'assistant', 'spaced tuple'],
        [4, 'user', 'last'],
      ]);
      expect(await store.message('s', 2)).toMatchObject({ content: 'as a tuple' });
    });

    it('finds it by search, with the seq paging gives it', async () => {
      writeFileSync(fileOf('s'), file());
      const { hits } = await store.search({ query: 'tuple' });
      expect(hits.map((h) => [h.message.seq, h.message.content]).sort()).toEqual([
        [2, 'as a tuple'],
        [3, 'spaced tuple'],
      ]);
    });

    it('is kept byte for byte by compactSession and cut whole by removeLast', async () => {
      writeFileSync(fileOf('s'), file());
      expect((await store.compact('s')).dropped).toBe(5);
      expect(bytesOf('s').toString()).toBe(`${line('first')}${FORMS[0][0]}${FORMS[1][0]}${line('last')}`);
      await store.removeLast('s');
      expect((await store.removeLast('s')).removed).toMatchObject({ seq: 3, content: 'spaced tuple' });
      expect(bytesOf('s').toString()).toBe(`${line('first')}${FORMS[0][0]}`);
      expect(zeroclawLoad(bytesOf('s')).map((m) => m.content)).toEqual(['first', 'as a tuple']);
    });
  });

  it('repairs a torn last line before the next append', async () => {
    writeFileSync(fileOf('s'), `${line('whole')}{"role":"user","con`);
    expect(await store.session('s')).toMatchObject({ messageCount: 1, unreadableCount: 1 });
    const { messages } = await store.append('s', [user('next')]);
    expect(messages[0]!.seq).toBe(2);
    expect(bytesOf('s').toString('utf8')).toBe(`${line('whole')}{"role":"user","con\n${line('next')}`);
    expect(zeroclawLoad(bytesOf('s')).map((m) => m.content)).toEqual(['whole', 'next']);
    expect(await store.session('s')).toMatchObject({ messageCount: 2, unreadableCount: 1 });
  });

  it('reads a complete but unterminated last line as a message, as zeroclaw does', async () => {
    writeFileSync(fileOf('s'), line('a') + line('b').trimEnd());
    expect(await store.session('s')).toMatchObject({ messageCount: 2, unreadableCount: 0 });
    await store.append('s', [user('c')]);
    expect(bytesOf('s').toString('utf8')).toBe(line('a') + line('b') + line('c'));
    writeFileSync(fileOf('t'), line('a') + line('b').trimEnd());
    expect((await store.removeLast('t')).removed?.content).toBe('b');
    expect(bytesOf('t').toString('utf8')).toBe(line('a'));
  });

  it('counts characters of readable content only, in code points', async () => {
    writeFileSync(fileOf('s'), `${line('日本😀')}junk\n${line('ab')}`);
    expect((await store.characterCounts(['s', 'nobody'])).get('s')).toBe(5);
    await store.append('s', [user('👩‍👩‍👧')]);
    expect((await store.characterCounts(['s'])).get('s')).toBe(5 + 5);
    await store.removeLast('s');
    expect((await store.characterCounts(['s'])).get('s')).toBe(5);
  });
});

describe('the line index', () => {
  async function fill(backend: SessionBackend, key: string, n: number): Promise<string[]> {
    const all: string[] = [];
    for (let i = 0; i < n; i += 10) {
      const batch = Array.from({ length: Math.min(10, n - i) }, (_, j) => `m${i + j + 1}`);
      await backend.append(key, batch.map(user));
      all.push(...batch);
    }
    return all;
  }

  it('picks up lines another writer appended, and pages both ways over them', async () => {
    const expected = await fill(store, 's', 120);
    expect((await store.messages('s', { last: 1 })).items[0]?.seq).toBe(120);
    appendFileSync(fileOf('s'), `${line('ext-1')}junk\n${line('ext-2')}`);
    expected.push('ext-1', 'ext-2');
    expect(await store.session('s')).toMatchObject({ messageCount: 122, unreadableCount: 1 });
    const forward: string[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await store.messages('s', { first: 25, ...(after ? { afterSeq: after } : {}) });
      forward.push(...page.items.map((m) => m.content));
      if (!page.hasNextPage) break;
      after = page.items.at(-1)!.seq;
    }
    expect(forward).toEqual(expected);
    const backward: string[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await store.messages('s', { last: 25, ...(before ? { beforeSeq: before } : {}) });
      backward.unshift(...page.items.map((m) => m.content));
      if (!page.hasPreviousPage) break;
      before = page.items[0]!.seq;
    }
    expect(backward).toEqual(expected);
  });

  it('rebuilds after another writer rewrote the file, by rename or in place', async () => {
    await fill(store, 's', 30);
    expect((await store.messages('s', { last: 1 })).items[0]?.content).toBe('m30');
    const temp = join(sessionsDir, 'zeroclaw-temp');
    writeFileSync(temp, ['x1', 'x2', 'x3'].map(line).join(''));
    renameSync(temp, fileOf('s'));
    expect(await contentsOf(store, 's')).toEqual(['x1', 'x2', 'x3']);
    // zeroclaw's seed rewrite: File::create (truncate) and write, same inode, a longer file.
    writeFileSync(fileOf('s'), Array.from({ length: 5 }, (_, i) => line(`y${i + 1}`)).join(''));
    expect((await store.messages('s', { last: 2 })).items.map((m) => [m.seq, m.content])).toEqual([
      [4, 'y4'],
      [5, 'y5'],
    ]);
    // Whole seconds: utimes takes float seconds, which may land a nanosecond below a millisecond.
    const past = new Date(Math.floor(Date.now() / 1_000) * 1_000 - 60_000);
    utimesSync(fileOf('s'), past, past);
    expect(await store.session('s')).toMatchObject({ messageCount: 5, lastActivityAt: toTimestamp(past) });
  });

  // How fast (O(page), not O(file)) is a figure of bench/storage.bench.ts: last-50 latency in
  // sessions of 100, 10,000 and 1,000,000 messages, in one run.
  it('serves the last page, and the page before it, of a large file', async () => {
    const big = Array.from({ length: 100_000 }, (_, i) => line(`message number ${i + 1} of a long session`));
    writeFileSync(fileOf('big'), big.join(''));
    const last = await store.messages('big', { last: 50 });
    expect(last.items.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 99_951 + i));
    expect(last.items[49]?.content).toBe('message number 100000 of a long session');
    const before = await store.messages('big', { last: 50, beforeSeq: last.items[0]!.seq });
    expect(before.items.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 99_901 + i));
  });
});

describe('a zeroclaw writer racing an append', () => {
  // SessionFile's check runs after the index sync and right before the write: the worst moment.
  it('lands our lines after a whole line zeroclaw wrote meanwhile, with the right seqs', async () => {
    writeFileSync(fileOf('s'), line('a'));
    const file = new SessionFile(fileOf('s'));
    const encoded = ['ours-1', 'ours-2'].map((c) => ({
      text: line(c),
      bytes: line(c).length,
      chars: c.length,
    }));
    const { firstSeq, state } = await file.append(encoded, () =>
      appendFileSync(fileOf('s'), line('zeroclaw')),
    );
    expect(firstSeq).toBe(3);
    expect(state.messageCount).toBe(4);
    expect(zeroclawLoad(bytesOf('s')).map((m) => m.content)).toEqual(['a', 'zeroclaw', 'ours-1', 'ours-2']);
  });

  it('fails with UnavailableError when it landed between the two writes of a zeroclaw line', async () => {
    writeFileSync(fileOf('s'), line('a'));
    const file = new SessionFile(fileOf('s'));
    const encoded = [{ text: line('ours'), bytes: line('ours').length, chars: 4 }];
    await expectError(
      file.append(encoded, () => appendFileSync(fileOf('s'), line('zeroclaw').trimEnd())),
      UnavailableError,
    );
    appendFileSync(fileOf('s'), '\n');
    expect((await file.state())?.unreadableCount).toBe(1);
    await store.append('s', [user('retried')]);
    expect(await contentsOf(store, 's')).toEqual(['a', 'retried']);
  });
});

describe('files on disk', () => {
  it('creates nothing zeroclaw would list besides session files, and no temp file survives', async () => {
    await store.append('a/b', [user('1'), user('2')], { clientMessageId: 'c' });
    await store.append('a/b', [user('1'), user('2')], { clientMessageId: 'c' });
    await store.renameSession('gw_empty', 'Empty');
    writeFileSync(fileOf('dirty'), `${line('x')}junk\n${line('y')}`);
    await store.removeLast('dirty');
    await store.compact('dirty');
    await store.removeLast('a/b');
    const names = readdirSync(sessionsDir).sort();
    expect(names).toEqual(['.sessiongraph', 'a_b.jsonl', 'dirty.jsonl', 'gw_empty.jsonl']);
    expect(statSync(fileOf('gw_empty')).size).toBe(0);
    expect(await store.session('gw_empty')).toMatchObject({ name: 'Empty', messageCount: 0 });
  });

  it('removes temp files that a killed process left, and keeps live ones', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const leaked = join(sessionsDir, `.sg-${dead}-1-1.tmp`);
    const live = join(sessionsDir, `.sg-${process.pid}-${processStartTime(process.pid)}-999.tmp`);
    writeFileSync(leaked, 'partial');
    writeFileSync(live, 'in progress');
    await open();
    expect(existsSync(leaked)).toBe(false);
    expect(existsSync(live)).toBe(true);
    unlinkSync(live);
  });

  it('reports the file mtime as last activity and the birth time, when known, as creation', async () => {
    const { session } = await store.append('s', [user('x')]);
    const st = statSync(fileOf('s'));
    expect(session.lastActivityAt).toBe(toTimestamp(Math.trunc(st.mtimeMs)));
    expect(session.createdAt).toBe(st.birthtimeMs > 0 ? toTimestamp(Math.trunc(st.birthtimeMs)) : null);
    expect(store.info()).toEqual({
      kind: 'jsonl',
      version: 'zeroclaw-jsonl',
      capabilities: { messageTimestamps: false, rankedSearch: false, stableSeq: false },
    });
  });

  it('keeps idempotency records across a reopen and past a torn sidecar record', async () => {
    await store.append('s', [user('one')], { clientMessageId: 'c1' });
    await store.append('s', [user('two')], { clientMessageId: 'c2' });
    const keysDir = join(sessionsDir, '.sessiongraph', 'keys');
    const [sidecar] = readdirSync(keysDir);
    appendFileSync(join(keysDir, sidecar!), '{"id":"c3","hash":"torn');
    const reopened = await open();
    const retry = await reopened.append('s', [user('one')], { clientMessageId: 'c1' });
    expect(retry).toMatchObject({ replayed: true, messages: [{ seq: 1, content: 'one' }] });
    expect((await reopened.append('s', [user('three')], { clientMessageId: 'c3' })).replayed).toBe(false);
    expect((await reopened.append('s', [user('three')], { clientMessageId: 'c3' })).replayed).toBe(true);
    await expectError(reopened.append('s', [user('other')], { clientMessageId: 'c2' }), ConflictError);
    expect(await contentsOf(reopened, 's')).toEqual(['one', 'two', 'three']);
  });
});

describe('locks', () => {
  const lockFile = (stem: string) => join(sessionsDir, '.sessiongraph', 'locks', `${stem}.lock`);

  it('waits for a live lock holder, then fails with UnavailableError', async () => {
    const impatient = await open({ lockTimeoutMs: 150 });
    mkdirSync(join(sessionsDir, '.sessiongraph', 'locks'), { recursive: true });
    writeFileSync(lockFile('s'), `${process.pid} ${processStartTime(process.pid)} another-process\n`);
    const started = Date.now();
    await expectError(impatient.append('s', [user('x')]), UnavailableError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await impatient.session('s')).toBeNull();
    unlinkSync(lockFile('s'));
    await impatient.append('s', [user('x')]);
  });

  it('breaks a stale lock of a key whose file name is near the 255-byte limit', async () => {
    const key = 'é'.repeat(124);
    const locks = new FileLocks({ dir: join(sessionsDir, '.sessiongraph', 'locks') });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    mkdirSync(join(sessionsDir, '.sessiongraph', 'locks'), { recursive: true });
    writeFileSync(locks.pathOf(key), `${dead} 1 gone\n`);
    await store.append(key, [user('x')]);
    expect(existsSync(locks.pathOf(key))).toBe(false);
    expect(await contentsOf(store, key)).toEqual(['x']);
  });

  it('breaks a lock left by a dead process', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    mkdirSync(join(sessionsDir, '.sessiongraph', 'locks'), { recursive: true });
    writeFileSync(lockFile('s'), `${dead} 1 gone\n`);
    const started = Date.now();
    await store.append('s', [user('x')]);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(existsSync(lockFile('s'))).toBe(false);
  });
});

describe('migration fence', () => {
  it('refuses every write once zeroclaw recorded import receipts; reads still work', async () => {
    await store.append('s', [user('deploy before')]);
    const db = new Database(join(sessionsDir, 'sessions.db'));
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE jsonl_import_receipts (source_name TEXT PRIMARY KEY, session_key TEXT NOT NULL,
      source_hash TEXT NOT NULL, source_len INTEGER NOT NULL, imported_at TEXT NOT NULL)`);
    try {
      await store.append('s', [user('still fine: no receipt yet')]);
      db.prepare('INSERT INTO jsonl_import_receipts VALUES (?, ?, ?, ?, ?)').run(
        's.jsonl',
        's',
        'abc',
        10,
        '2026-08-22T00:00:00.000000000+00:00',
      );
      // The row may still sit in the WAL file: the connection stays open.
      const error = await expectError(store.append('s', [user('x')]), ConflictError);
      expect(error.message).toMatch(/migrated/);
      await expectError(store.removeLast('s'), ConflictError);
      await expectError(store.compact('s'), ConflictError);
      await expectError(store.deleteSession('s'), ConflictError);
      await expectError(store.renameSession('s', 'n'), ConflictError);
      await expectError(store.cleanupStale(1), ConflictError);
      await expectError((await open()).append('other', [user('x')]), ConflictError);
      expect(await store.session('s')).toMatchObject({ messageCount: 2 });
      expect((await store.search({ query: 'deploy' })).hits).toHaveLength(1);
      expect(existsSync(fileOf('other'))).toBe(false);
    } finally {
      db.close();
    }
  });
});

describe('search by scanning', () => {
  it('marks every match in a window around the first and cuts with an ellipsis', async () => {
    const content = `${'alpha '.repeat(20)}the needle sits here, then needle again ${'omega '.repeat(20)}`;
    await store.append('s', [user(content)]);
    const [hit] = (await store.search({ query: 'needle' })).hits;
    expect(hit!.snippet.startsWith('…')).toBe(true);
    expect(hit!.snippet.endsWith('…')).toBe(true);
    expect(hit!.snippet).toContain(
      `the ${SNIPPET_OPEN}needle${SNIPPET_CLOSE} sits here, then ${SNIPPET_OPEN}needle`,
    );
    expect(hit!.snippet.length).toBeLessThan(content.length / 2);
    await store.append('t', [user('short needle')]);
    const short = (await store.search({ query: 'needle', filter: { sessionKey: 't' } })).hits[0]!;
    expect(short.snippet).toBe(`short ${SNIPPET_OPEN}needle${SNIPPET_CLOSE}`);
  });

  it('reports seqs that agree with paging, past corrupt lines and lines zeroclaw appended', async () => {
    writeFileSync(fileOf('s'), `${line('first needle')}junk\n\n${line('second')}`);
    appendFileSync(fileOf('s'), line('third needle'));
    const hits = (await store.search({ query: 'needle', order: 'NEWEST' })).hits;
    expect(hits.map((h) => [h.message.seq, h.message.content])).toEqual([
      [3, 'third needle'],
      [1, 'first needle'],
    ]);
    for (const hit of hits)
      expect((await store.message('s', hit.message.seq))?.content).toBe(hit.message.content);
  });

  it('refuses time filters: JSONL lines carry no time', async () => {
    const since = await expectError(
      store.search({ query: 'x', filter: { since: '2000-01-01T00:00:00+00:00' } }),
      InvalidInputError,
    );
    expect(since.field).toBe('filter.since');
    const until = await expectError(
      store.search({ query: 'x', filter: { until: '2000-01-01T00:00:00+00:00' } }),
      InvalidInputError,
    );
    expect(until.field).toBe('filter.until');
  });
});

interface Exit {
  lines: string[];
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/**
 * Runs a helper script in a child process. `killWhen` sees the output lines so far and returns
 * a delay in milliseconds to SIGKILL the child after, or null to let it run.
 */
function runWorker(
  script: string,
  args: string[],
  killWhen?: (lines: string[]) => number | null,
): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let killed = false;
    const kill = () => {
      if (!killed) child.kill('SIGKILL');
      killed = true;
    };
    const timer = setTimeout(kill, 20_000);
    let armed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const delay = armed ? null : killWhen?.(out.split('\n').slice(0, -1));
      if (typeof delay === 'number') {
        armed = true;
        setTimeout(kill, delay);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // A line cut by the kill is not an acknowledgement.
      resolve({ lines: out.split('\n').slice(0, -1), signal, code, stderr });
    });
  });
}

describe('crash safety', () => {
  it('keeps every acknowledged message, in order, through 15 SIGKILLs', { timeout: 120_000 }, async () => {
    const key = 'crash/session:1';
    const stem = sanitizeKey(key);
    let model: string[] = [];
    for (let round = 1; round <= 15; round++) {
      const tag = `r${round}`;
      const acks = 1 + Math.floor(Math.random() * 40);
      // Odd rounds die anywhere; even rounds within 15 ms of a rewrite beginning (in it, lock held).
      const exit = await runWorker(CRASH_WORKER, [dir, key, tag], (lines) => {
        if (lines.filter((l) => !l.startsWith('B')).length < acks) return null;
        if (round % 2 === 1) return 0;
        return lines.at(-1)!.startsWith('B') ? Math.random() * 15 : null;
      });
      expect(exit.signal, exit.stderr).toBe('SIGKILL');
      let lastOp = 0;
      for (const ack of exit.lines.filter((l) => !l.startsWith('B'))) {
        const [kind, op, seq] = ack.split(' ').map((p, i) => (i === 0 ? p : Number(p))) as [
          string,
          number,
          number,
        ];
        expect(op).toBe(lastOp + 1);
        lastOp = op;
        const planned = crashWorkerOp(op, tag);
        if (kind === 'A' && planned.kind === 'append') {
          expect(seq).toBe(model.length + 1);
          model.push(...planned.contents);
        } else {
          expect([kind, planned.kind]).toEqual(['R', 'remove']);
          expect(seq).toBe(model.length);
          model.pop();
        }
      }
      // The operation in flight at the kill either happened entirely or not at all.
      const actual = zeroclawLoad(bytesOf(stem)).map((m) => m.content);
      if (JSON.stringify(actual) !== JSON.stringify(model)) {
        const inFlight = crashWorkerOp(lastOp + 1, tag);
        model = inFlight.kind === 'append' ? [...model, ...inFlight.contents] : model.slice(0, -1);
        expect(actual).toEqual(model);
      }
      expect(await store.session(key)).toMatchObject({ messageCount: model.length, unreadableCount: 0 });
      expect(await contentsOf(store, key)).toEqual(model);
      // A lock the killed worker held must not block us.
      await store.append(key, [user(`parent-${round}`)]);
      model.push(`parent-${round}`);
    }
    await open();
    expect(readdirSync(sessionsDir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('a SIGKILL at each step of an append with a clientMessageId, then a resend', () => {
  const { messages: request, clientMessageId } = idempotentCrashRequest();
  type Scenario = 'new session' | 'compacted before the resend' | 'zeroclaw appended meanwhile';
  const scenarios: Scenario[] = ['new session', 'compacted before the resend', 'zeroclaw appended meanwhile'];

  for (const step of APPEND_STEPS) {
    for (const scenario of scenarios) {
      it(`stores it exactly once: killed after ${step}, ${scenario}`, { timeout: 60_000 }, async () => {
        const key = `inject/${step}`;
        const stem = sanitizeKey(key);
        const before: string[] = [];
        if (scenario !== 'new session') {
          await store.append(key, [user('earlier')]);
          before.push('earlier');
        }
        // A corrupt line before ours: compaction then moves our lines to a lower offset.
        if (scenario === 'compacted before the resend') appendFileSync(fileOf(stem), '{"role":\n');
        const args = [
          dir,
          key,
          'inject',
          step,
          ...(scenario === 'zeroclaw appended meanwhile' ? ['zeroclaw'] : []),
        ];
        const exit = await runWorker(CRASH_WORKER, args);
        expect(exit.signal, exit.stderr).toBe('SIGKILL');
        if (scenario === 'compacted before the resend') {
          expect((await store.compact(key)).dropped).toBe(1);
        }
        const resender = await open();
        const resent = await resender.append(key, request, { clientMessageId });
        const again = await store.append(key, request, { clientMessageId });
        expect(again.replayed).toBe(true);
        expect(again.messages.map((m) => m.seq)).toEqual(resent.messages.map((m) => m.seq));
        const contents = zeroclawLoad(bytesOf(stem)).map((m) => m.content);
        const interloper =
          scenario === 'zeroclaw appended meanwhile' && step !== 'locked'
            ? ['zeroclaw wrote this meanwhile']
            : [];
        const ours = request.map((m) => m.content);
        // Exactly once, whole, and the answered seqs are where the messages are.
        expect(contents.filter((c) => ours.includes(c))).toEqual(ours);
        expect(contents.filter((c) => !ours.includes(c))).toEqual([...before, ...interloper]);
        expect(resent.messages.map((m) => contents[m.seq - 1])).toEqual(ours);
        expect(await store.session(key)).toMatchObject({ messageCount: contents.length, unreadableCount: 0 });
      });
    }
  }
});

describe('two processes', () => {
  it('append to one session at once, guarded, without interleaving or losing a line', {
    timeout: 60_000,
  }, async () => {
    const count = 150;
    const [a, b] = await Promise.all([
      runWorker(APPEND_WORKER, [dir, 'shared/session', 'A', String(count)]),
      runWorker(APPEND_WORKER, [dir, 'shared/session', 'B', String(count)]),
    ]);
    expect([a!.code, b!.code], `${a!.stderr}${b!.stderr}`).toEqual([0, 0]);
    const acks = [...a!.lines, ...b!.lines].map((ack) => ack.split(' ').map(Number) as [number, number]);
    // Each guarded append landed right after the seq it expected: no guard was passed twice.
    for (const [seq, expected] of acks) expect(seq).toBe(expected + 1);
    expect(acks.map(([seq]) => seq).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 2 * count }, (_, i) => i + 1),
    );
    const raw = bytesOf('shared_session').toString('utf8');
    expect(raw.split('\n').length - 1).toBe(2 * count);
    const contents = zeroclawLoad(bytesOf('shared_session')).map((m) => m.content);
    for (const tag of ['A', 'B']) {
      expect(contents.filter((c) => c.startsWith(`${tag}-`))).toEqual(
        Array.from({ length: count }, (_, i) => `${tag}-${i + 1}`),
      );
    }
    expect(await store.session('shared/session')).toMatchObject({
      messageCount: 2 * count,
      unreadableCount: 0,
    });
  });
});

describe('clientMessageId under concurrent readers and another process', () => {
  it('stores a message once when its append is retried at once while 6 clients read the session', {
    timeout: 60_000,
  }, async () => {
    const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`seed ${seed}`);
    const random = prng(seed);
    const key = 'chat/readers:1';
    let writing = true;
    const reader = async () => {
      while (writing) {
        const pick = random();
        if (pick < 0.4) await store.messages(key, { last: 5 });
        else if (pick < 0.7) await store.session(key);
        else await store.sessions({ first: 10 });
      }
    };
    const readers = Array.from({ length: 6 }, reader);
    const count = 200;
    let storedTwice = 0;
    let seqsDiffer = 0;
    try {
      for (let i = 1; i <= count; i++) {
        const request = () => store.append(key, [user(`m-${i}`)], { clientMessageId: `id-${i}` });
        const [first, retry] = await Promise.all([request(), request()]);
        if (first.messages[0]!.seq !== retry.messages[0]!.seq) seqsDiffer++;
        if (!first.replayed && !retry.replayed) storedTwice++;
      }
    } finally {
      writing = false;
      await Promise.all(readers);
    }
    expect({ storedTwice, seqsDiffer }).toEqual({ storedTwice: 0, seqsDiffer: 0 });
    expect(zeroclawLoad(bytesOf('chat_readers_1')).map((m) => m.content)).toEqual(
      Array.from({ length: count }, (_, i) => `m-${i + 1}`),
    );
  });

  it('stores a message once when two processes send its clientMessageId at once', {
    timeout: 120_000,
  }, async () => {
    const seed = Number(process.env.TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`seed ${seed}`);
    const count = 200;
    const [a, b] = await Promise.all([
      runWorker(APPEND_WORKER, [dir, 'two/procs', 'A', String(count), 'idempotent', String(seed)]),
      runWorker(APPEND_WORKER, [dir, 'two/procs', 'B', String(count), 'idempotent', String(seed + 1)]),
    ]);
    expect([a!.code, b!.code], `${a!.stderr}${b!.stderr}`).toEqual([0, 0]);
    const acks = [...a!.lines, ...b!.lines].map((l) => l.split(' ').map(Number) as [number, number, number]);
    // Per id: one process stored it, the other replayed it, and both report the same seq.
    let storedTwice = 0;
    let seqsDiffer = 0;
    for (let i = 1; i <= count; i++) {
      const both = acks.filter(([n]) => n === i);
      expect(both).toHaveLength(2);
      if (both[0]![2] + both[1]![2] !== 1) storedTwice++;
      if (both[0]![1] !== both[1]![1]) seqsDiffer++;
    }
    expect({ storedTwice, seqsDiffer }).toEqual({ storedTwice: 0, seqsDiffer: 0 });
    expect(zeroclawLoad(bytesOf('two_procs')).map((m) => m.content)).toEqual(
      Array.from({ length: count }, (_, i) => `m-${i + 1}`),
    );
  });
});

function byCodePoint(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}
