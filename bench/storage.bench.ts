/**
 * Storage benchmark: `npx tsx bench/storage.bench.ts [--backend sqlite|jsonl] [--quick] [--keep]`.
 *
 * Per backend: append throughput (single, single with a clientMessageId, batched, concurrent), the last-50-messages latency in
 * sessions of 100, 10,000 and 1,000,000 messages, and search latency over the big store for a rare
 * word, two common words and the two most common words. Text comes from a fixed-seed Zipf
 * vocabulary (P ∝ 1/rank over 50,000 words, ~34 words per message), so word frequencies are
 * realistic and every run sees the same data. The big sessions are bulk-loaded straight into the
 * store's own format (SQLite: the same schema and triggers, 10,000 rows per transaction; JSONL:
 * zeroclaw's lines), then served by a freshly opened backend. One printed line per figure.
 * `--quick` shrinks the big session to 100,000 messages; `--keep` leaves the data dir in place.
 */

import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { NewMessage, SessionBackend } from '../src/backends/backend.js';
import { encodeLine } from '../src/backends/jsonl/jsonl-line.js';
import { sanitizeKey } from '../src/backends/keys.js';
import { openBackend } from '../src/backends/open-backend.js';
import { nowTimestamp } from '../src/backends/timestamps.js';

type Kind = 'sqlite' | 'jsonl';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const keep = argv.includes('--keep');
const only = argv[argv.indexOf('--backend') + 1];
const kinds: Kind[] = argv.includes('--backend') ? [only as Kind] : ['sqlite', 'jsonl'];

const BIG = quick ? 100_000 : 1_000_000;
const SESSION_SIZES = [100, 10_000, BIG];
const APPENDS = quick ? 2_000 : 10_000;
const BATCHES = quick ? 20 : 100;
const PAGE_READS = quick ? 300 : 2_000;

// ---- deterministic text --------------------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const HEAD_WORDS =
  `the to and a of i you it is in that for on this with be are not have was but can what we do
  so if at my just me your like or all about get will an from they there one out up no how know
  think as time when by yes he more now some would here want need make see then good had which
  work go them been file code error build test deploy server run data user message session
  please thanks sure okay check again fix issue log config update version change add remove
  new use try help look first last next back right still also only very well really could
  should did does done going because something anything where why who today tomorrow yesterday
  api request response query database table index search result page token model agent tool`
    .split(/\s+/)
    .filter(Boolean);

function buildVocabulary(size: number): string[] {
  const rand = mulberry32(7);
  const words = new Set(HEAD_WORDS);
  const onsets = 'b c d f g h j k l m n p r s t v w z br ch dr gr kr pl sh st th tr'.split(' ');
  const vowels = 'a e i o u ai ea ie oo ou'.split(' ');
  while (words.size < size) {
    let word = '';
    const syllables = 2 + Math.floor(rand() * 3);
    for (let i = 0; i < syllables; i++) {
      word += onsets[Math.floor(rand() * onsets.length)]! + vowels[Math.floor(rand() * vowels.length)]!;
    }
    words.add(word);
  }
  return [...words];
}

const VOCAB = buildVocabulary(50_000);
const CUMULATIVE = (() => {
  const out = new Float64Array(VOCAB.length);
  let total = 0;
  for (let r = 0; r < VOCAB.length; r++) out[r] = total += 1 / (r + 1);
  return out;
})();

function zipfWord(rand: () => number): string {
  const u = rand() * CUMULATIVE[CUMULATIVE.length - 1]!;
  let lo = 0;
  let hi = CUMULATIVE.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (CUMULATIVE[mid]! < u) lo = mid + 1;
    else hi = mid;
  }
  return VOCAB[lo]!;
}

function messageSource(seed: number): () => NewMessage {
  const rand = mulberry32(seed);
  let n = 0;
  return () => {
    const words: string[] = [];
    const length = 20 + Math.floor(rand() * 29);
    for (let i = 0; i < length; i++) words.push(zipfWord(rand));
    return { role: n++ % 2 === 0 ? 'user' : 'assistant', content: `${words.join(' ')}.` };
  };
}

// ---- measuring ---------------------------------------------------------------------------

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

async function timeEach(runs: number, task: (i: number) => Promise<unknown>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await task(i);
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

const ms = (value: number) => `${value < 1 ? value.toFixed(3) : value.toFixed(1)} ms`;
const rate = (count: number, millis: number) => `${Math.round((count / millis) * 1000)}`;

function printLatency(label: string, sorted: number[]): void {
  console.log(`${label} p50: ${ms(percentile(sorted, 0.5))}`);
  console.log(`${label} p99: ${ms(percentile(sorted, 0.99))}`);
}

// ---- opening and bulk loading ------------------------------------------------------------

function open(kind: Kind, dataDir: string): Promise<SessionBackend> {
  return openBackend({ kind, dataDir });
}

/** Adds `count` messages to an existing session without going through the backend. */
function bulkLoad(kind: Kind, dataDir: string, key: string, count: number, next: () => NewMessage): void {
  if (kind === 'jsonl') {
    const fd = openSync(join(dataDir, 'sessions', `${sanitizeKey(key)}.jsonl`), 'a');
    try {
      for (let done = 0; done < count; done += 10_000) {
        let chunk = '';
        for (let i = done; i < Math.min(count, done + 10_000); i++) chunk += encodeLine(next());
        writeSync(fd, chunk);
      }
    } finally {
      closeSync(fd);
    }
    return;
  }
  const db = new Database(join(dataDir, 'sessions', 'sessions.db'));
  try {
    const insert = db.prepare(
      'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
    );
    const batch = db.transaction((n: number) => {
      for (let i = 0; i < n; i++) {
        const m = next();
        insert.run(key, m.role, m.content, nowTimestamp());
      }
    });
    for (let done = 0; done < count; done += 10_000) batch(Math.min(10_000, count - done));
    db.prepare(
      `UPDATE session_metadata SET message_count = message_count + ?, last_activity = ? WHERE session_key = ?`,
    ).run(count, nowTimestamp(), key);
  } finally {
    db.close();
  }
}

// ---- the figures -------------------------------------------------------------------------

async function appendFigures(kind: Kind): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `sg-bench-${kind}-append-`));
  const next = messageSource(1);
  const store = await open(kind, dir);
  try {
    const single = await timeEach(1, async () => {
      for (let i = 0; i < APPENDS; i++) await store.append(`bench_single_${i % 100}`, [next()]);
    });
    console.log(`${kind} append single: ${rate(APPENDS, single[0]!)} msg/s`);

    // With an idempotency key: JSONL writes an intent record before the line and a done record after.
    const keyed = await timeEach(1, async () => {
      for (let i = 0; i < APPENDS; i++) {
        await store.append(`bench_keyed_${i % 100}`, [next()], { clientMessageId: `id-${i}` });
      }
    });
    console.log(`${kind} append single with clientMessageId: ${rate(APPENDS, keyed[0]!)} msg/s`);

    const batched = await timeEach(1, async () => {
      for (let i = 0; i < BATCHES; i++) {
        await store.append(`bench_batch_${i % 10}`, Array.from({ length: 100 }, next));
      }
    });
    console.log(`${kind} append batched (100 per batch): ${rate(BATCHES * 100, batched[0]!)} msg/s`);

    const concurrent = await timeEach(1, async () => {
      for (let wave = 0; wave < APPENDS / 100; wave++) {
        await Promise.all(
          Array.from({ length: 100 }, (_, i) => store.append(`bench_concurrent_${i % 50}`, [next()])),
        );
      }
    });
    console.log(`${kind} append concurrent (100 in flight): ${rate(APPENDS, concurrent[0]!)} msg/s`);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (kind === 'sqlite') sqliteAppendCeiling();
}

/** The same insert through raw better-sqlite3, one autocommit per row: the yardstick for the above. */
function sqliteAppendCeiling(): void {
  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-ceiling-'));
  const db = new Database(join(dir, 'raw.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, session_key TEXT NOT NULL,
        role TEXT NOT NULL, content TEXT NOT NULL, created_at TEXT NOT NULL);
      CREATE INDEX idx_sessions_key_id ON sessions(session_key, id);
      CREATE VIRTUAL TABLE sessions_fts USING fts5(session_key, content, content=sessions, content_rowid=id);
      CREATE TRIGGER sessions_ai AFTER INSERT ON sessions BEGIN
        INSERT INTO sessions_fts(rowid, session_key, content) VALUES (new.id, new.session_key, new.content);
      END;`);
    const insert = db.prepare(
      'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
    );
    const next = messageSource(1);
    const start = performance.now();
    for (let i = 0; i < APPENDS; i++) {
      const m = next();
      insert.run(`bench_single_${i % 100}`, m.role, m.content, nowTimestamp());
    }
    console.log(
      `sqlite ceiling raw insert + FTS, autocommit: ${rate(APPENDS, performance.now() - start)} rows/s`,
    );
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readFigures(kind: Kind): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `sg-bench-${kind}-read-`));
  const keys = SESSION_SIZES.map((n) => `bench_size_${n}`);
  const next = messageSource(2);
  try {
    const seeding = await open(kind, dir);
    for (const key of keys) await seeding.append(key, [next()]);
    await seeding.close();
    const start = performance.now();
    for (const [i, n] of SESSION_SIZES.entries()) bulkLoad(kind, dir, keys[i]!, n - 1, next);
    const loaded = SESSION_SIZES.reduce((a, b) => a + b, 0);
    console.log(`${kind} bulk load (setup): ${rate(loaded, performance.now() - start)} msg/s`);

    const store = await open(kind, dir);
    try {
      // Round-robin over the sizes, so that a burst of load on the shared cores hits all alike.
      const times: number[][] = keys.map(() => []);
      for (let round = -50; round < PAGE_READS; round++) {
        for (const [i, key] of keys.entries()) {
          const start = performance.now();
          await store.messages(key, { last: 50 });
          if (round >= 0) times[i]!.push(performance.now() - start);
        }
      }
      const p50s = times.map((t) =>
        percentile(
          t.sort((a, b) => a - b),
          0.5,
        ),
      );
      for (const [i, n] of SESSION_SIZES.entries()) {
        printLatency(`${kind} last 50 of ${n.toLocaleString('en-US')}`, times[i]!);
      }
      console.log(
        `${kind} last 50 ratio ${BIG.toLocaleString('en-US')}/100 (p50): ${(p50s.at(-1)! / p50s[0]!).toFixed(2)}x`,
      );
      await searchFigures(kind, store, loaded);
    } finally {
      await store.close();
    }
  } finally {
    if (keep) console.log(`# kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

async function searchFigures(kind: Kind, store: SessionBackend, total: number): Promise<void> {
  const rand = mulberry32(3);
  const rank = (lo: number, hi: number) => VOCAB[lo + Math.floor(rand() * (hi - lo))]!;
  // Scanning backends read everything per query: fewer runs keep the bench short.
  const runs = kind === 'jsonl' ? 3 : 50;
  const sets: Array<[string, string[]]> = [
    ['a rare word (rank 30k-50k)', Array.from({ length: runs }, () => rank(30_000, 50_000))],
    [
      'two common words (ranks 40-120)',
      Array.from({ length: runs }, () => `${rank(40, 120)} ${rank(40, 120)}`),
    ],
    [
      'the two most common words',
      Array.from({ length: Math.min(runs, 20) }, () => `${VOCAB[0]} ${VOCAB[1]}`),
    ],
  ];
  const over = `over ${total.toLocaleString('en-US')}`;
  for (const [label, queries] of sets) {
    if (kind === 'sqlite')
      await timeEach(queries.length, (i) => store.search({ query: queries[i]!, first: 20 }));
    const sorted = await timeEach(queries.length, (i) => store.search({ query: queries[i]!, first: 20 }));
    printLatency(`${kind} search ${over}, ${label}`, sorted);
  }
  const newest = await timeEach(Math.min(runs, 20), () =>
    store.search({ query: `${VOCAB[0]} ${VOCAB[1]}`, order: 'NEWEST', first: 20 }),
  );
  printLatency(`${kind} search ${over}, the two most common words, NEWEST`, newest);
}

for (const kind of kinds) {
  if (kind !== 'sqlite' && kind !== 'jsonl') throw new Error(`unknown backend ${kind}`);
  await appendFigures(kind);
  await readFigures(kind);
}
