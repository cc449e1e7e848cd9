/**
 * Writes by other processes (src/events/watch.ts and the backends' watchExternalChanges): a second
 * OS process writes the store directly as zeroclaw does (zeroclaw-writer.ts: raw SQL in
 * autocommit statements; raw appends, temp+rename rewrites and unlinks of JSONL files), and the
 * events that reach a subscriber of the real local bus are checked exactly, in order, for both
 * backends. Real files and a real SQLite database in a temp dir.
 */

import { appendFileSync, linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SessionBackend } from '../../src/backends/backend.js';
import type { FileChange, FileMark, FileWatcher } from '../../src/backends/jsonl/file-watch.js';
import { SessionFile } from '../../src/backends/jsonl/session-file.js';
import { openBackend } from '../../src/backends/open-backend.js';
import type { EventBus, SessionEvent } from '../../src/events/event-bus.js';
import { createLocalEventBus } from '../../src/events/local-event-bus.js';
import { type RunningWatch, startWatch } from '../../src/events/watch.js';
import { serdeLine } from '../helpers/jsonl-zeroclaw.js';
import { openWsClient } from '../helpers/live-client.js';
import { type Json, startTestServer } from '../helpers/server.js';
import { epochNow, spawnZeroclawWriter, type ZeroclawWriter } from '../helpers/zeroclaw-writer.js';

type Kind = 'sqlite' | 'jsonl';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Longer than the SQLite poll (50 ms), a JSONL sweep (1 s) and the SQLite settle time (500 ms). */
const QUIET_MS = 1_200;

/** One line per event, with what the feed relies on: seqs, the session's last seq, names. */
function brief(event: SessionEvent): string {
  const key = event.sessionKey;
  switch (event.type) {
    case 'MessageAppended':
      return `appended ${key} ${event.message.seq} ${event.message.role}: ${event.message.content}`;
    case 'MessageRemoved':
      return `removed ${key} ${event.seq}, last ${event.session.lastSeq}`;
    case 'SessionReset':
      return `reset ${key}, last ${event.session?.lastSeq ?? '-'}`;
    case 'SessionRenamed':
      return `renamed ${key} ${event.name}`;
    case 'SessionDeleted':
      return `deleted ${key}`;
    case 'SessionCompacted':
      return `compacted ${key} ${event.dropped}`;
  }
}

interface Received {
  event: SessionEvent;
  /** Epoch ms when the subscriber got it. */
  at: number;
}

/** A subscriber of every session's events, as a dashboard listing sessions would be. */
function subscribe(bus: EventBus): { received: Received[]; stop(): void } {
  const controller = new AbortController();
  const received: Received[] = [];
  const events = bus.subscribeActivity({ signal: controller.signal, maxPending: 100_000 });
  void (async () => {
    for await (const event of events) received.push({ event, at: epochNow() });
  })().catch(() => {});
  return { received, stop: () => controller.abort() };
}

describe.each<Kind>(['sqlite', 'jsonl'])('writes by another process: %s', (kind) => {
  let dir: string;
  let backend: SessionBackend;
  let bus: EventBus;
  let watch: RunningWatch | null;
  let subscriber: ReturnType<typeof subscribe>;
  let zeroclaw: ZeroclawWriter;
  let taken: number;

  async function start(): Promise<void> {
    watch = startWatch(backend, bus);
    zeroclaw = await spawnZeroclawWriter(kind, dir);
  }

  /** Waits for exactly `n` events after those already taken, and returns them briefly. */
  async function next(n: number, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (subscriber.received.length < taken + n && Date.now() < deadline) await sleep(5);
    const got = subscriber.received.slice(taken).map((r) => brief(r.event));
    taken = Math.min(subscriber.received.length, taken + n);
    return got;
  }

  /** Everything received after the events already taken, once nothing happened for QUIET_MS. */
  async function rest(): Promise<string[]> {
    await sleep(QUIET_MS);
    return subscriber.received.slice(taken).map((r) => brief(r.event));
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), `sg-watch-${kind}-`));
    backend = await openBackend({ kind, dataDir: dir });
    bus = createLocalEventBus();
    subscriber = subscribe(bus);
    watch = null;
    taken = 0;
  });

  afterEach(async () => {
    subscriber.stop();
    await watch?.close();
    await zeroclaw?.close();
    await backend.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes zeroclaw's appends, removals, rewrites, names and deletes as events, in order", async () => {
    await start();
    const alice = 'telegram_1_alice';
    await zeroclaw.run({ op: 'append', key: alice, role: 'user', content: 'hello' });
    expect(await next(1)).toEqual([`appended ${alice} 1 user: hello`]);

    await zeroclaw.run({ op: 'append', key: alice, role: 'assistant', content: 'hi there' });
    await zeroclaw.run({ op: 'append', key: alice, role: 'user', content: 'how are you?' });
    expect(await next(2)).toEqual([
      `appended ${alice} 2 assistant: hi there`,
      `appended ${alice} 3 user: how are you?`,
    ]);

    await zeroclaw.run({ op: 'removeLast', key: alice });
    expect(await next(1)).toEqual([`removed ${alice} 3, last 2`]);

    // zeroclaw HEAD's update_last, as it saves a streaming reply every 500 ms
    await zeroclaw.run({ op: 'updateLast', key: alice, role: 'assistant', content: 'hi there, I am fine' });
    expect(await next(1)).toEqual([`reset ${alice}, last 2`]);
    expect((await backend.messages(alice)).items.map((m) => m.content)).toEqual([
      'hello',
      'hi there, I am fine',
    ]);

    if (kind === 'sqlite') {
      await zeroclaw.run({ op: 'setName', key: alice, name: 'Alice' });
      expect(await next(1)).toEqual([`renamed ${alice} Alice`]);
    }

    const bob = 'discord_2_bob';
    await zeroclaw.run({ op: 'append', key: bob, role: 'user', content: 'yo' });
    // SQLite seqs are row ids, never reused (3 was removed); JSONL seqs are positions
    expect(await next(1)).toEqual([`appended ${bob} ${kind === 'sqlite' ? 4 : 1} user: yo`]);

    await zeroclaw.run({ op: 'delete', key: alice });
    expect(await next(1)).toEqual([`deleted ${alice}`]);
    expect(await rest()).toEqual([]);
  });

  it('reports a write once, also when a look lands between its statements or its bytes', async () => {
    await start();
    const key = 'gw_paused';
    // 150 ms between zeroclaw's autocommit statements (JSONL: between a line's JSON and its \n)
    const pauseMs = 150;
    await zeroclaw.run({ op: 'append', key, role: 'user', content: 'one', pauseMs });
    await zeroclaw.run({ op: 'append', key, role: 'assistant', content: 'two', pauseMs });
    await zeroclaw.run({ op: 'append', key, role: 'user', content: 'three', pauseMs });
    expect(await next(3)).toEqual([
      `appended ${key} 1 user: one`,
      `appended ${key} 2 assistant: two`,
      `appended ${key} 3 user: three`,
    ]);
    if (kind === 'sqlite') {
      await zeroclaw.run({ op: 'removeLast', key, pauseMs });
      expect(await next(1)).toEqual([`removed ${key} 3, last 2`]);
      await zeroclaw.run({ op: 'updateLast', key, role: 'assistant', content: 'two!', pauseMs });
      expect(await next(1)).toEqual([`reset ${key}, last 2`]);
      // rows first, metadata 150 ms later: one SessionDeleted, not removals then a delete
      await zeroclaw.run({ op: 'delete', key, pauseMs });
      expect(await next(1)).toEqual([`deleted ${key}`]);
    }
    expect(await rest()).toEqual([]);
  });

  it('never reports our own writes, also interleaved with the other process on one session', async () => {
    await start();
    const key = 'rpc_shared';
    await backend.append(key, [
      { role: 'user', content: 'ours 1' },
      { role: 'assistant', content: 'ours 2' },
    ]);
    await backend.removeLast(key);
    await backend.renameSession(key, 'Shared');
    await backend.compact(key);
    await backend.append('rpc_other', [{ role: 'user', content: 'other' }]);
    await backend.renameSession('rpc_named_only', 'no messages yet');
    await backend.deleteSession('rpc_other');
    await backend.cleanupStale(1);
    expect(await rest()).toEqual([]);

    await zeroclaw.run({ op: 'append', key, role: 'user', content: 'theirs' });
    const theirs = kind === 'sqlite' ? 4 : 2;
    expect(await next(1)).toEqual([`appended ${key} ${theirs} user: theirs`]);
    const { messages } = await backend.append(key, [{ role: 'assistant', content: 'ours 3' }]);
    // their remove_last takes our last message
    await zeroclaw.run({ op: 'removeLast', key });
    expect(await next(1)).toEqual([`removed ${key} ${messages[0]!.seq}, last ${theirs}`]);
    await backend.removeLast(key);
    await zeroclaw.run({ op: 'append', key, role: 'user', content: 'theirs again' });
    const again = kind === 'sqlite' ? 6 : 2;
    expect(await next(1)).toEqual([`appended ${key} ${again} user: theirs again`]);
    // ours lands before the watcher looked: theirs is still reported, first
    await zeroclaw.run({ op: 'append', key, role: 'user', content: 'theirs, just before ours' });
    await backend.append(key, [{ role: 'assistant', content: 'ours 4' }]);
    expect(await next(1)).toEqual([`appended ${key} ${again + 1} user: theirs, just before ours`]);
    expect(await rest()).toEqual([]);
  });

  it('follows sessions written before watching began', async () => {
    for (const key of ['old_a', 'old_b']) {
      await backend.append(key, [
        { role: 'user', content: `${key} 1` },
        { role: 'assistant', content: `${key} 2` },
      ]);
    }
    await start();
    await zeroclaw.run({ op: 'append', key: 'old_a', role: 'user', content: 'old_a 3' });
    const seq = kind === 'sqlite' ? 5 : 3;
    expect(await next(1)).toEqual([`appended old_a ${seq} user: old_a 3`]);
    await zeroclaw.run({ op: 'removeLast', key: 'old_a' });
    expect(await next(1)).toEqual([`removed old_a ${seq}, last 2`]);
    // Nothing was remembered of old_b's messages: a removal cannot be told from other rewrites.
    await zeroclaw.run({ op: 'removeLast', key: 'old_b' });
    expect(await next(1)).toEqual([`reset old_b, last ${kind === 'sqlite' ? 3 : 1}`]);
    expect(await rest()).toEqual([]);
  });

  // The delay itself is a figure of bench/watch.bench.ts, not an assertion here.
  it('delivers each of 50 external appends, made at any phase of the poll, once and in order', async () => {
    await start();
    for (let i = 0; i < 50; i++) {
      await zeroclaw.run({ op: 'append', key: 'latency', role: 'user', content: `m${i}` });
      expect(await next(1)).toEqual([`appended latency ${i + 1} user: m${i}`]);
      await sleep(Math.random() * 100); // any phase of the SQLite poll
    }
    expect(await rest()).toEqual([]);
  });

  // SQLite has no file events to miss: its watch polls PRAGMA data_version.
  if (kind === 'jsonl')
    it('finds a write fs.watch did not report, by its sweep', async () => {
      await start();
      await zeroclaw.run({ op: 'append', key: 'unnoticed', role: 'user', content: 'seen by fs.watch' });
      expect(await next(1)).toEqual(['appended unnoticed 1 user: seen by fs.watch']);
      // inotify reports a write under the name it was made through: through a hard link elsewhere,
      // the sessions folder's watch hears nothing
      mkdirSync(join(dir, 'elsewhere'));
      linkSync(join(dir, 'sessions', 'unnoticed.jsonl'), join(dir, 'elsewhere', 'link.jsonl'));
      appendFileSync(
        join(dir, 'elsewhere', 'link.jsonl'),
        serdeLine({ role: 'user', content: 'missed by fs.watch' }),
      );
      expect(await next(1, 3_000)).toEqual(['appended unnoticed 2 user: missed by fs.watch']);
    });

  it('stops reporting once closed', async () => {
    await start();
    await zeroclaw.run({ op: 'append', key: 'closing', role: 'user', content: 'seen' });
    expect(await next(1)).toEqual(['appended closing 1 user: seen']);
    await watch!.close();
    await zeroclaw.run({ op: 'append', key: 'closing', role: 'user', content: 'unseen' });
    expect(await rest()).toEqual([]);
  });
});

describe('JSONL: what a session file tells its watchers around our own writes', () => {
  let dir: string;
  const line = (content: string) => serdeLine({ role: 'user', content });
  const encoded = (content: string) => ({
    text: line(content),
    bytes: line(content).length,
    chars: content.length,
  });

  /** The watcher side of SessionFile's protocol, recording what it is told. */
  class RecordingWatcher implements FileWatcher {
    readonly marks = new Map<string, FileMark>();
    readonly changes: FileChange[] = [];
    markOf(stem: string): FileMark | undefined {
      return this.marks.get(stem);
    }
    update(stem: string, mark: FileMark | undefined, changes: FileChange[]): void {
      if (mark) this.marks.set(stem, mark);
      else this.marks.delete(stem);
      this.changes.push(...changes);
    }
  }

  function watched(): { file: SessionFile; watcher: RecordingWatcher; path: string } {
    const watcher = new RecordingWatcher();
    const path = join(dir, 's.jsonl');
    return { file: new SessionFile(path, { stem: 's', watchers: () => [watcher] }), watcher, path };
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sg-watch-file-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('an append of ours first reports what another process appended since the last look', async () => {
    const { file, watcher, path } = watched();
    writeFileSync(path, line('a'));
    await file.look(watcher);
    appendFileSync(path, line('zeroclaw'));
    await file.append([encoded('ours')], () => {});
    await file.look(watcher);
    expect(watcher.changes).toEqual([
      { kind: 'appended', afterSeq: 0, throughSeq: 1 },
      { kind: 'appended', afterSeq: 1, throughSeq: 2 },
    ]);
    expect(watcher.marks.get('s')?.count).toBe(3);
  });

  it('a rewrite of ours reports the rewrite another process made just before, and not its own', async () => {
    const { file, watcher, path } = watched();
    writeFileSync(path, line('a') + line('b') + line('c'));
    await file.look(watcher);
    writeFileSync(join(dir, '.tmp1'), line('a') + line('b'));
    renameSync(join(dir, '.tmp1'), path);
    await file.removeLast(() => {});
    appendFileSync(path, 'torn');
    await file.compact();
    await file.look(watcher);
    expect(watcher.changes).toEqual([
      { kind: 'appended', afterSeq: 0, throughSeq: 3 },
      { kind: 'removed', seqs: [3] },
    ]);
    expect(watcher.marks.get('s')?.count).toBe(1);
  });

  it('an append of ours that another append raced is reported with it (a duplicate, not a loss)', async () => {
    const { file, watcher, path } = watched();
    writeFileSync(path, line('a'));
    await file.look(watcher);
    await file.append([encoded('ours')], () => appendFileSync(path, line('zeroclaw')));
    await file.look(watcher);
    expect(watcher.changes).toEqual([
      { kind: 'appended', afterSeq: 0, throughSeq: 1 },
      { kind: 'appended', afterSeq: 1, throughSeq: 3 },
    ]);
  });
});

const SESSION_EVENTS = `subscription ($key: String!, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, fromStart: $fromStart) {
    __typename
    ... on MessageAppended { message { seq role content } }
    ... on MessageRemoved { seq session { lastSeq } }
  } }`;

describe.each<Kind>(['sqlite', 'jsonl'])(
  'end to end, %s: zeroclaw writes -> server -> graphql-ws client',
  (kind) => {
    it('delivers every write to a sessionEvents subscriber over a real socket, in order', async () => {
      const server = await startTestServer(kind);
      const ws = openWsClient(server.url);
      let zeroclaw: ZeroclawWriter | null = null;
      try {
        zeroclaw = await spawnZeroclawWriter(kind, server.dataDir);
        const sub = ws.subscribe(SESSION_EVENTS, { key: 'e2e', fromStart: true });
        for (let i = 1; i <= 20; i++) {
          await zeroclaw.run({ op: 'append', key: 'e2e', role: 'user', content: `m${i}` });
          await sub.waitForEvents(i);
          await sleep(Math.random() * 100);
        }
        await zeroclaw.run({ op: 'removeLast', key: 'e2e' });
        await sub.waitForEvents(21);
        expect(sub.events.map((e: Json) => e.message?.content ?? `${e.__typename} ${e.seq}`)).toEqual([
          ...Array.from({ length: 20 }, (_, i) => `m${i + 1}`),
          `MessageRemoved ${sub.events[19].message.seq}`,
        ]);
        sub.stop();
      } finally {
        await zeroclaw?.close();
        await ws.close();
        await server.close();
      }
    });
  },
);
