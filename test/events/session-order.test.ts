/**
 * The per-session ordering point (src/events/session-order.ts), over the real feed, bus and
 * backends:
 * - each rule beside its neighbours, with events put on the bus in the orders the sources can
 *   produce (an append's event late behind its removal, behind its successor, behind a deletion;
 *   a JSONL seq reused before the removal's event arrives), from writes made to the real store;
 * - PostgreSQL's own source of disorder: appends to one session made at once on different pooled
 *   connections settle in any order. Every subscriber (from the start, and one resuming from a
 *   cursor midway) must end holding exactly the store, each message once and in seq order.
 *   Without GraphQL in between, so that the writers race hard enough in a few seconds.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AppendResult,
  DEFAULT_LIMITS,
  type SessionBackend,
  type StoredMessage,
} from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { createFeed } from '../../src/events/feed.js';
import type { FeedEvent } from '../../src/events/feed-event.js';
import { createLocalEventBus } from '../../src/events/local-event-bus.js';
import { encodePosition, START_POSITION } from '../../src/events/message-cursor.js';
import { createPublishingBackend } from '../../src/events/publishing-backend.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { prng } from '../helpers/prng.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function stored(backend: SessionBackend, key: string): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (let after = 0; ; ) {
    const page = await backend.messages(key, { afterSeq: after, first: 1_000 });
    for (const m of page.items) out.push([m.seq, m.content]);
    if (!page.hasNextPage || page.items.length === 0) return out;
    after = page.items.at(-1)!.seq;
  }
}

/** Rebuilds the session from its events, strictly: each append above the last, each removal of it. */
function follow(events: AsyncIterableIterator<FeedEvent>) {
  const copy: Array<[number, string]> = [];
  const violations: string[] = [];
  let cursor = '';
  const done = (async () => {
    for await (const event of events) {
      cursor = event.cursor;
      const last = copy.at(-1)?.[0] ?? 0;
      if (event.type === 'MessageAppended') {
        if (event.message.seq <= last) violations.push(`${event.message.seq} after ${last}`);
        else copy.push([event.message.seq, event.message.content]);
      } else if (event.type === 'MessageRemoved') {
        if (event.seq === last) copy.pop();
        else violations.push(`removal of ${event.seq} at ${last}`);
      } else if (event.type === 'SessionDeleted') {
        copy.length = 0;
      } else {
        violations.push(`unexpected ${event.type}`);
      }
    }
  })().catch(() => {}); // ended by feed.close() at teardown
  return { copy, violations, done, cursor: () => cursor };
}

/** Waits (event by event) until the copy holds the store, then compares. */
async function expectHolds(f: ReturnType<typeof follow>, backend: SessionBackend, key: string) {
  const expected = await stored(backend, key);
  for (let i = 0; i < 400 && JSON.stringify(f.copy) !== JSON.stringify(expected); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  expect({ copy: f.copy, violations: f.violations }).toEqual({ copy: expected, violations: [] });
}

describe.each(['sqlite', 'jsonl'] as const)('%s: events in the orders their sources produce', (kind) => {
  /** The real store written directly; events are put on the bus by hand, in the order under test. */
  async function rig() {
    const dataDir = mkdtempSync(join(tmpdir(), `sg-order-${kind}-`));
    const store = await openBackend({ kind, dataDir });
    const bus = createLocalEventBus();
    const feed = createFeed({ backend: store, bus, limits: DEFAULT_LIMITS });
    cleanups.push(async () => {
      await feed.close();
      await bus.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    });
    const key = 'order_rules';
    const sub = follow(feed.sessionEvents(key, encodePosition(START_POSITION)));
    const appended = (r: AppendResult, message: StoredMessage = r.messages[0]!) =>
      bus.publish({
        type: 'MessageAppended',
        sessionKey: key,
        message,
        session: r.session,
        previousSeq: r.previousSeq ?? null,
      });
    const append = (content: string) => store.append(key, [{ role: 'user', content }]);
    return { store, bus, key, sub, appended, append };
  }

  it('never passes on an append whose removal came first', async () => {
    const { store, bus, key, sub, appended, append } = await rig();
    appended(await append('one'));
    const two = await append('two');
    const removal = await store.removeLast(key);
    bus.publish({
      type: 'MessageRemoved',
      sessionKey: key,
      seq: removal.removed!.seq,
      session: removal.session,
    });
    appended(two); // late: its message is gone
    appended(await append('three'));
    await expectHolds(sub, store, key);
    expect(sub.copy.map(([, c]) => c)).toEqual(['one', 'three']);
  });

  it('passes on a message whose event is late before the one that follows it', async () => {
    const { store, key, sub, appended, append } = await rig();
    appended(await append('one'));
    const agent = await append('from another process'); // its event comes later, as the watcher's
    appended(await append('ours'));
    appended(agent);
    await expectHolds(sub, store, key);
    expect(sub.copy.map(([, c]) => c)).toEqual(['one', 'from another process', 'ours']);
  });

  it('passes on nothing of a deleted session that arrives after its deletion', async () => {
    const { store, bus, key, sub, appended, append } = await rig();
    appended(await append('one'));
    const late = await append('two');
    await store.deleteSession(key);
    bus.publish({ type: 'SessionDeleted', sessionKey: key });
    appended(late);
    appended(await append('after'));
    await expectHolds(sub, store, key);
    expect(sub.copy.map(([, c]) => c)).toEqual(['after']);
  });

  it('steps back from a message replaced at its seq before the removal event arrives', async () => {
    const { store, bus, key, sub, appended, append } = await rig();
    appended(await append('one'));
    appended(await append('two'));
    const removal = await store.removeLast(key);
    const replacement = await append('two, again'); // JSONL reuses the seq
    appended(replacement);
    bus.publish({
      type: 'MessageRemoved',
      sessionKey: key,
      seq: removal.removed!.seq,
      session: removal.session,
    });
    await expectHolds(sub, store, key);
    expect(sub.copy.map(([, c]) => c)).toEqual(['one', 'two, again']);
  });
});

describe('postgres: one session, concurrent writers on one instance', () => {
  it('every subscriber holds the store, each message once and in seq order', async () => {
    const seed = Number(process.env.SESSIONGRAPH_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`postgres ordering: seed ${seed} (SESSIONGRAPH_TEST_SEED=${seed} replays it)`);
    const random = prng(seed);
    const schema = uniqueSchema('sg_order');
    cleanups.push(() => dropSchemas([schema]));
    const real = await openBackend({
      kind: 'postgres',
      dataDir: '',
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema,
      poolSize: 8,
    });
    cleanups.push(() => real.close());
    const bus = createLocalEventBus();
    const backend = createPublishingBackend(real, bus);
    const feed = createFeed({ backend, bus, limits: DEFAULT_LIMITS });
    cleanups.push(async () => {
      await feed.close();
      await bus.close();
    });
    const key = 'pg_order';
    const fromStart = follow(feed.sessionEvents(key, encodePosition(START_POSITION)));

    let resumed: ReturnType<typeof follow> | undefined;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 80; i++) {
        if (random() < 0.03) await backend.removeLast(key);
        else await backend.append(key, [{ role: 'user', content: `w${w}-${i}` }]);
        // a second subscriber starts midway, resuming from the first one's cursor
        if (w === 0 && i === 40) resumed = follow(feed.sessionEvents(key, fromStart.cursor() || null));
      }
    });
    await Promise.all(writers);
    const expected = await stored(real, key);
    const settle = async (f: ReturnType<typeof follow>) => {
      // the last events are on their way through the ordering point: wait for the copy to match
      for (let i = 0; i < 500 && JSON.stringify(f.copy) !== JSON.stringify(expected); i++) {
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await settle(fromStart);
    await settle(resumed!);
    expect({ copy: fromStart.copy, violations: fromStart.violations }).toEqual({
      copy: expected,
      violations: [],
    });
    expect(resumed!.violations).toEqual([]);
    // the resumed one holds what came after its cursor: the store's tail from there
    expect(expected.slice(expected.length - resumed!.copy.length)).toEqual(resumed!.copy);
  }, 60_000);
});
