/**
 * The per-session ordering point (src/events/session-order.ts) under PostgreSQL's own source of
 * disorder: appends to one session made at once on different pooled connections settle in any
 * order, so their events reach the bus out of commit order. Real PostgreSQL, the real publishing
 * backend, bus and feed; every subscriber (from the start, and one resuming from a cursor midway)
 * must end holding exactly the store, having received each message once and in seq order.
 * Without GraphQL in between, so that the writers race hard enough in a few seconds.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type SessionBackend } from '../../src/backends/backend.js';
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
      } else {
        violations.push(`unexpected ${event.type}`);
      }
    }
  })().catch(() => {}); // ended by feed.close() at teardown
  return { copy, violations, done, cursor: () => cursor };
}

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
    expect({ copy: fromStart.copy, violations: fromStart.violations }).toEqual({ copy: expected, violations: [] });
    expect(resumed!.violations).toEqual([]);
    // the resumed one holds what came after its cursor: the store's tail from there
    expect(expected.slice(expected.length - resumed!.copy.length)).toEqual(resumed!.copy);
  }, 60_000);
});
