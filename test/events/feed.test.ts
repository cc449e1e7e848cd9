/**
 * The live feed over real backends, without GraphQL: resume correctness under a concurrent writer
 * (seeded random interleavings of appends, removals, compactions, renames and reconnects), and the
 * SessionReset cases. Every client rebuilds the session from its events and must end equal to
 * storage.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type SessionBackend } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import type { EventBus } from '../../src/events/event-bus.js';
import { createFeed, type Feed } from '../../src/events/feed.js';
import type { FeedEvent } from '../../src/events/feed-event.js';
import { createLocalEventBus } from '../../src/events/local-event-bus.js';
import {
  decodeMessageCursor,
  encodeMessageCursor,
  encodePosition,
  messageDigest,
  START_POSITION,
} from '../../src/events/message-cursor.js';
import { createPublishingBackend } from '../../src/events/publishing-backend.js';
import { prng } from '../helpers/prng.js';

interface Rig {
  backend: SessionBackend;
  /** The store itself: its writes publish nothing (as another process's, before the watcher). */
  real: SessionBackend;
  bus: EventBus;
  feed: Feed;
  close(): Promise<void>;
}

async function openRig(kind: 'sqlite' | 'jsonl', feedOptions = {}): Promise<Rig> {
  const dataDir = mkdtempSync(join(tmpdir(), `sg-feed-${kind}-`));
  const real = await openBackend({ kind, dataDir });
  const bus = createLocalEventBus();
  const backend = createPublishingBackend(real, bus);
  const feed = createFeed({ backend, bus, limits: DEFAULT_LIMITS, options: { pageSize: 7, ...feedOptions } });
  return {
    backend,
    real,
    bus,
    feed,
    async close() {
      await feed.close();
      await bus.close();
      await real.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function storedMessages(
  backend: SessionBackend,
  key: string,
  upToSeq = Number.MAX_SAFE_INTEGER,
): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  let afterSeq = 0;
  for (;;) {
    const page = await backend.messages(key, { afterSeq, first: 500 });
    for (const m of page.items) if (m.seq <= upToSeq) out.set(m.seq, `${m.role}:${m.content}`);
    if (!page.hasNextPage || page.items.length === 0) return out;
    afterSeq = page.items.at(-1)!.seq;
  }
}

/** A client that rebuilds the session from events, reconnecting from its last cursor. */
class Client {
  state = new Map<number, string>();
  cursor = encodePosition(START_POSITION);
  resets = 0;
  sawEnd = false;

  constructor(
    private readonly rig: Rig,
    private readonly key: string,
    private readonly rng: () => number,
  ) {}

  async apply(e: FeedEvent): Promise<void> {
    switch (e.type) {
      case 'MessageAppended': {
        const max = Math.max(0, ...this.state.keys());
        expect(this.state.has(e.message.seq), `duplicate seq ${e.message.seq}`).toBe(false);
        expect(e.message.seq, 'seq order').toBeGreaterThan(max);
        this.state.set(e.message.seq, `${e.message.role}:${e.message.content}`);
        if (e.message.content === 'END') this.sawEnd = true;
        break;
      }
      case 'MessageRemoved':
        this.state.delete(e.seq);
        break;
      case 'SessionDeleted':
        this.state.clear();
        break;
      case 'SessionReset':
        this.resets++;
        // refetch up to the reset's position: the feed delivers what comes after it
        this.state = await storedMessages(this.rig.backend, this.key, decodeMessageCursor(e.cursor, 'c').seq);
        if ([...this.state.values()].includes('user:END')) this.sawEnd = true;
        break;
      default:
        break;
    }
    this.cursor = e.cursor;
  }

  /** One connection: reads up to `limit` events (at a random pace), then leaves. */
  async connection(limit: number): Promise<void> {
    const events = this.rig.feed.sessionEvents(this.key, this.cursor);
    let n = 0;
    for await (const e of events) {
      await this.apply(e);
      if (++n >= limit || this.sawEnd) break;
      if (this.rng() < 0.15) await sleep(this.rng() * 4);
    }
  }
}

async function writer(rig: Rig, key: string, rng: () => number, ops: number): Promise<void> {
  let n = 0;
  const one = async () => {
    const r = rng();
    const i = n++;
    try {
      if (r < 0.55) {
        const count = 1 + Math.floor(rng() * 3);
        // repeated contents, so a JSONL seq reused after a removal may or may not change its digest
        const messages = Array.from({ length: count }, (_, j) => ({
          role: rng() < 0.5 ? 'user' : 'assistant',
          content: `m${(i + j) % 5}`,
        }));
        await rig.backend.append(key, messages);
      } else if (r < 0.85) {
        await rig.backend.removeLast(key);
      } else if (r < 0.93) {
        await rig.backend.compact(key);
      } else {
        await rig.backend.renameSession(key, `name ${i}`);
      }
    } catch (err) {
      // removing from or compacting a session that does not exist yet
      if ((err as { code?: string }).code !== 'NOT_FOUND') throw err;
    }
  };
  while (n < ops) {
    const burst = 1 + Math.floor(rng() * 4);
    await Promise.all(Array.from({ length: burst }, one));
    if (rng() < 0.3) await sleep(rng() * 3);
  }
}

describe.each(['sqlite', 'jsonl'] as const)('the session feed: %s', (kind) => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it.each([1, 2, 3])(
    'rebuilds the stored session under a concurrent writer and reconnects (seed %i)',
    async (seed) => {
      rig = await openRig(kind);
      const rng = prng(seed * 7_919);
      const key = `gw_prop_${seed}`;
      await rig.backend.append(key, [{ role: 'system', content: 'start' }]);
      const clients = Array.from({ length: 4 }, () => new Client(rig!, key, rng));
      const writing = writer(rig, key, rng, 160);
      const reading = clients.map(async (client) => {
        while (!client.sawEnd) await client.connection(1 + Math.floor(rng() * 25));
      });
      await writing;
      await rig.backend.append(key, [{ role: 'user', content: 'END' }]);
      await Promise.all(reading);
      const stored = await storedMessages(rig.backend, key);
      for (const client of clients) expect(client.state).toEqual(stored);
    },
  );

  it('replays everything after a cursor, then goes on live, with a cursor on every event', async () => {
    rig = await openRig(kind);
    const appended = await rig.backend.append('s', [
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'two' },
      { role: 'user', content: 'three' },
    ]);
    const events = rig.feed.sessionEvents('s', encodeMessageCursor(appended.messages[0]!));
    const first = await events.next();
    expect(first.value).toMatchObject({ type: 'MessageAppended', message: { content: 'two' } });
    expect((await events.next()).value).toMatchObject({ message: { content: 'three' } });
    await rig.backend.append('s', [{ role: 'user', content: 'four' }]);
    const live = (await events.next()).value as FeedEvent;
    expect(live).toMatchObject({ type: 'MessageAppended', message: { content: 'four' } });
    // a live event's cursor is a message cursor like any edge's
    const resumed = rig.feed.sessionEvents('s', first.value!.cursor);
    expect((await resumed.next()).value).toMatchObject({ message: { content: 'three' } });
    expect((await resumed.next()).value).toMatchObject({ message: { content: 'four' }, cursor: live.cursor });
    await events.return!();
    await resumed.return!();
  });

  it('starts with SessionReset when the cursor message was removed or rewritten', async () => {
    rig = await openRig(kind);
    const appended = await rig.backend.append('s', [
      { role: 'user', content: 'one' },
      { role: 'user', content: 'two' },
    ]);
    const two = encodeMessageCursor(appended.messages[1]!);
    await rig.backend.removeLast('s');
    // JSONL gives the next message the removed one's seq: the digest tells them apart
    const again = await rig.backend.append('s', [{ role: 'user', content: 'two, edited' }]);
    const events = rig.feed.sessionEvents('s', two);
    const reset = (await events.next()).value as FeedEvent;
    expect(reset).toMatchObject({ type: 'SessionReset', session: { key: 's', messageCount: 2 } });
    expect(reset.cursor).toBe(encodeMessageCursor(again.messages[0]!));
    await rig.backend.append('s', [{ role: 'user', content: 'three' }]);
    expect((await events.next()).value).toMatchObject({
      type: 'MessageAppended',
      message: { content: 'three' },
    });
    await events.return!();
  });

  it('steps back on a removal: the removal event carries the cursor of the new last message', async () => {
    rig = await openRig(kind);
    const events = rig.feed.sessionEvents('s', encodePosition(START_POSITION));
    const a = await rig.backend.append('s', [{ role: 'user', content: 'a' }]);
    await rig.backend.append('s', [{ role: 'user', content: 'b' }]);
    await rig.backend.removeLast('s');
    const got = [await events.next(), await events.next(), await events.next()].map(
      (r) => r.value as FeedEvent,
    );
    expect(got.map((e) => e.type)).toEqual(['MessageAppended', 'MessageAppended', 'MessageRemoved']);
    expect(got[2]!.cursor).toBe(encodeMessageCursor(a.messages[0]!));
    await events.return!();
  });

  it('refuses a malformed cursor or key before anything starts', async () => {
    rig = await openRig(kind);
    expect(() => rig!.feed.sessionEvents('s', 'nope')).toThrow(/after is not a valid message cursor/);
    expect(() => rig!.feed.sessionEvents('', null)).toThrow(/sessionKey must not be empty/);
  });

  it('ends a subscriber that stops reading with FEED_OVERFLOW, and others carry on', async () => {
    rig = await openRig(kind, { maxPending: 1_001 });
    const stalled = rig.feed.sessionEvents('s', null);
    const reading = rig.feed.sessionEvents('s', null);
    const seen: string[] = [];
    const readAll = (async () => {
      for await (const e of reading) {
        if (e.type === 'MessageAppended') seen.push(e.message.content);
        if (seen.length === 3_000) break;
      }
    })();
    for (let batch = 0; batch < 3; batch++) {
      await rig.backend.append(
        's',
        Array.from({ length: 1_000 }, (_, i) => ({ role: 'user', content: `${batch}:${i}` })),
      );
    }
    await readAll;
    expect(seen).toHaveLength(3_000);
    await expect(stalled.next()).rejects.toMatchObject({ code: 'FEED_OVERFLOW', unit: 'events' });
  });
});

describe('a subscriber that falls in step with its topic on an event it steps back for', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('hands out everything its own ordering point emitted for that event, then the topic', async () => {
    rig = await openRig('sqlite');
    const [one] = (await rig.backend.append('s', [{ role: 'user', content: 'one' }])).messages;
    // a first subscriber keeps the topic open; it holds 1
    const first = rig.feed.sessionEvents('s', encodePosition(START_POSITION));
    expect((await first.next()).value).toMatchObject({ message: { seq: one!.seq } });
    // another process stores 2 (no event yet); a second subscriber resumes from 1 and replays 2
    await rig.real.append('s', [{ role: 'user', content: 'two' }]);
    const second = rig.feed.sessionEvents('s', encodeMessageCursor(one!));
    expect((await second.next()).value).toMatchObject({ message: { content: 'two' } });
    // 2 is removed and 3 stored; 3's event names 1 before it, as where it committed
    await rig.real.removeLast('s');
    const [three] = (await rig.real.append('s', [{ role: 'user', content: 'three' }])).messages;
    rig.bus.publish({
      type: 'MessageAppended',
      sessionKey: 's',
      message: three!,
      session: (await rig.real.session('s'))!,
      previousSeq: one!.seq,
      previousDigest: messageDigest(one!),
    });
    // the second steps back from 2 and takes 3, which puts it in step with the topic; then 4
    expect((await second.next()).value).toMatchObject({ type: 'MessageRemoved', seq: one!.seq + 1 });
    await rig.backend.append('s', [{ role: 'user', content: 'four' }]);
    const content = async () => {
      const e = (await second.next()).value as FeedEvent;
      return e.type === 'MessageAppended' ? e.message.content : e.type;
    };
    expect(await content()).toBe('three');
    expect(await content()).toBe('four');
    expect((await first.next()).value).toMatchObject({ message: { content: 'three' } });
    expect((await first.next()).value).toMatchObject({ message: { content: 'four' } });
    await first.return!();
    await second.return!();
  });
});
