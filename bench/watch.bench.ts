/**
 * Writes by other processes: `npx tsx bench/watch.bench.ts [--backend sqlite|jsonl] [--quick]`.
 *
 * A second OS process (test/helpers/zeroclaw-writer.ts) appends to the store the way zeroclaw
 * does (SQLite: its two autocommit statements; JSONL: one appendFileSync of a serde line), one
 * write at a time, each after a random 0-100 ms pause so that writes fall at any phase of the
 * SQLite poll. The figure is the delay from its write returning to a subscriber of the local bus
 * receiving the MessageAppended (src/events/watch.ts, default intervals), and to a
 * `sessionEvents` subscriber of the feed receiving it (through the session's ordering point,
 * src/events/session-order.ts, which checks the store for the watcher's events), in a fresh store and in
 * stores already holding many other sessions (SQLite: the metadata fingerprint aggregates every
 * row; JSONL: the fallback sweep stats a share of the files). Then the CPU an idle watcher costs
 * over 10,000 sessions, against the same process without one. Target (issue 4): p50 under 250 ms.
 * One printed line per figure.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DEFAULT_LIMITS, type SessionBackend } from '../src/backends/backend.js';
import { encodeLine } from '../src/backends/jsonl/jsonl-line.js';
import { openBackend } from '../src/backends/open-backend.js';
import { nowTimestamp } from '../src/backends/timestamps.js';
import { createFeed } from '../src/events/feed.js';
import { createLocalEventBus } from '../src/events/local-event-bus.js';
import { encodePosition, START_POSITION } from '../src/events/message-cursor.js';
import { startWatch } from '../src/events/watch.js';
import { epochNow, spawnZeroclawWriter } from '../test/helpers/zeroclaw-writer.js';

type Kind = 'sqlite' | 'jsonl';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const kinds: Kind[] = argv.includes('--backend')
  ? [argv[argv.indexOf('--backend') + 1] as Kind]
  : ['sqlite', 'jsonl'];
const WRITES = quick ? 50 : 200;
/** Sessions already in the store besides the one written (JSONL: files the sweep stats). */
const OTHER_SESSIONS: Record<Kind, number[]> = {
  sqlite: quick ? [0, 10_000] : [0, 10_000, 100_000],
  jsonl: [0, 10_000],
};
const IDLE_MS = quick ? 3_000 : 10_000;
const IDLE_SESSIONS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

/** Sessions written before watching starts, straight into the store's own format. */
function seed(kind: Kind, dataDir: string, sessions: number): void {
  const message = { role: 'user', content: 'an earlier message' };
  if (kind === 'jsonl') {
    for (let i = 0; i < sessions; i++)
      writeFileSync(join(dataDir, 'sessions', `seed_${i}.jsonl`), encodeLine(message));
    return;
  }
  const db = new Database(join(dataDir, 'sessions', 'sessions.db'));
  try {
    const now = nowTimestamp();
    const row = db.prepare(
      'INSERT INTO sessions (session_key, role, content, created_at) VALUES (?, ?, ?, ?)',
    );
    const meta =
      db.prepare(`INSERT INTO session_metadata (session_key, created_at, last_activity, message_count)
      VALUES (?, ?, ?, 1)`);
    db.transaction(() => {
      for (let i = 0; i < sessions; i++) {
        row.run(`seed_${i}`, message.role, message.content, now);
        meta.run(`seed_${i}`, now, now);
      }
    })();
  } finally {
    db.close();
  }
}

interface Delays {
  /** To a subscriber of the bus. */
  bus: number[];
  /** To a `sessionEvents` subscriber. */
  feed: number[];
}

async function delays(kind: Kind, otherSessions: number): Promise<Delays> {
  const dir = mkdtempSync(join(tmpdir(), `sg-watch-bench-${kind}-`));
  let backend: SessionBackend | null = null;
  try {
    backend = await openBackend({ kind, dataDir: dir });
    seed(kind, dir, otherSessions);
    const bus = createLocalEventBus();
    const controller = new AbortController();
    const received: number[] = [];
    const events = bus.subscribeActivity({ signal: controller.signal, maxPending: 100_000 });
    void (async () => {
      for await (const event of events) if (event.type === 'MessageAppended') received.push(epochNow());
    })().catch(() => {});
    const feed = createFeed({ backend, bus, limits: DEFAULT_LIMITS });
    const fed: number[] = [];
    const feedEvents = feed.sessionEvents('bench', encodePosition(START_POSITION));
    void (async () => {
      for await (const event of feedEvents) if (event.type === 'MessageAppended') fed.push(epochNow());
    })().catch(() => {});
    const watch = startWatch(backend, bus);
    const zeroclaw = await spawnZeroclawWriter(kind, dir);
    const out: Delays = { bus: [], feed: [] };
    try {
      for (let i = 0; i < WRITES + 5; i++) {
        const wrote = await zeroclaw.run({ op: 'append', key: 'bench', role: 'user', content: `m${i}` });
        const deadline = Date.now() + 5_000;
        while ((received.length <= i || fed.length <= i) && Date.now() < deadline) await sleep(1);
        if (received.length <= i || fed.length <= i) throw new Error(`no event for write ${i}`);
        if (i >= 5) {
          // the first writes warm up
          out.bus.push(received[i]! - wrote);
          out.feed.push(fed[i]! - wrote);
        }
        await sleep(Math.random() * 100);
      }
    } finally {
      await zeroclaw.close();
      controller.abort();
      await feed.close();
      await watch.close();
      await bus.close();
    }
    out.bus.sort((a, b) => a - b);
    out.feed.sort((a, b) => a - b);
    return out;
  } finally {
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU milliseconds per second of this process while nothing is written to IDLE_SESSIONS sessions. */
async function idleCpu(kind: Kind, watching: boolean): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), `sg-watch-idle-${kind}-`));
  const backend = await openBackend({ kind, dataDir: dir });
  seed(kind, dir, IDLE_SESSIONS);
  const bus = createLocalEventBus();
  const watch = watching ? startWatch(backend, bus) : null;
  try {
    // past the start (the JSONL watcher stats every file once) and the JIT compiling the poll
    await sleep(3_000);
    const before = process.cpuUsage();
    await sleep(IDLE_MS);
    const used = process.cpuUsage(before);
    return (used.user + used.system) / IDLE_MS;
  } finally {
    await watch?.close();
    await bus.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const kind of kinds) {
  for (const others of OTHER_SESSIONS[kind]) {
    const measured = await delays(kind, others);
    const where = others ? ` (${others.toLocaleString('en')} other sessions)` : '';
    for (const [to, sorted] of [
      ['subscriber', measured.bus],
      ['sessionEvents subscriber', measured.feed],
    ] as const) {
      const label = `${kind} external append -> ${to}${where}`;
      console.log(`${label} p50: ${ms(percentile(sorted, 0.5))}`);
      console.log(`${label} p99: ${ms(percentile(sorted, 0.99))}`);
    }
  }
  // alternated, least of two each: what earlier phases leave to the garbage collector is noise
  let base = Number.POSITIVE_INFINITY;
  let idle = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 2; round++) {
    base = Math.min(base, await idleCpu(kind, false));
    idle = Math.min(idle, await idleCpu(kind, true));
  }
  console.log(
    `${kind} idle CPU, ${IDLE_SESSIONS.toLocaleString('en')} sessions, with a watcher: ${idle.toFixed(2)} ms/s (without: ${base.toFixed(2)} ms/s)`,
  );
}
