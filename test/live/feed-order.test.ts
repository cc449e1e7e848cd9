/**
 * The live feed's ordering guarantee end to end (src/events/session-order.ts): whatever writes a
 * session (our API, zeroclaw's exact SQL on its own connection, a line appended to the JSONL file
 * by another process, a second sessiongraph process on the same store without Redis, several
 * concurrent API writers on PostgreSQL), every `sessionEvents(fromStart: true)` subscriber, over
 * graphql-ws and over SSE, reconnecting with its last cursor now and then, ends up holding exactly
 * what the store holds, and never gets a message out of seq order or twice.
 *
 * Seeded: SESSIONGRAPH_TEST_SEED replays a run; the seed is printed.
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionBackend, StoredMessage } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { decodeMessageCursor } from '../../src/events/message-cursor.js';
import { createLogger } from '../../src/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { startServe } from '../helpers/cli-serve.js';
import { type LiveSubscription, openWsClient, subscribeSse, type WsClient } from '../helpers/live-client.js';
import { dropSchemas, TEST_DATABASE_URL, uniqueSchema } from '../helpers/postgres-database.js';
import { prng } from '../helpers/prng.js';
import { type Json, postGraphQL, testConfig } from '../helpers/server.js';
import { spawnZeroclawWriter } from '../helpers/zeroclaw-writer.js';

const SESSION_EVENTS = `subscription ($key: String!, $after: String, $fromStart: Boolean) {
  sessionEvents(sessionKey: $key, after: $after, fromStart: $fromStart) {
    __typename
    ... on LiveEvent { cursor }
    ... on MessageAppended { message { seq content } }
    ... on MessageRemoved { seq }
    ... on SessionReset { session { lastSeq } }
  } }`;

const APPEND = `mutation ($key: String!, $content: String!) {
  appendMessage(input: { sessionKey: $key, role: "user", content: $content }) { __typename } }`;

const REMOVE = `mutation ($key: String!) {
  removeLastMessage(input: { sessionKey: $key }) { __typename } }`;

function seedOf(name: string): number {
  const fixed = process.env.SESSIONGRAPH_TEST_SEED;
  const seed = fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${name}: seed ${seed} (SESSIONGRAPH_TEST_SEED=${seed} replays it)`);
  return seed;
}

/** The stored messages, or those up to seq `upToSeq`. */
async function storedMessages(
  backend: SessionBackend,
  key: string,
  upToSeq = Number.MAX_SAFE_INTEGER,
): Promise<Array<[number, string]>> {
  const out: StoredMessage[] = [];
  for (let after = 0; ; ) {
    const page = await backend.messages(key, { afterSeq: after, first: 500 });
    out.push(...page.items);
    if (!page.hasNextPage || page.items.length === 0) break;
    after = page.items.at(-1)!.seq;
  }
  return out.filter((m) => m.seq <= upToSeq).map((m) => [m.seq, m.content]);
}

/**
 * A client keeping a copy of one session from `sessionEvents(fromStart: true)`, the way a dashboard
 * would: appends in seq order, removals of its last message, a SessionReset answered by a refetch
 * up to the reset's position (its cursor), on which what the feed brings after it is applied.
 * Not the whole session: the refetch runs later than the reset, and a message appended and removed
 * in between would stay in the copy, since the feed rightly reports neither.
 * `reconnect()` drops the subscription and resumes from the last cursor received.
 */
class Follower {
  readonly copy: Array<[number, string]> = [];
  /** Everything that broke the feed's promise: out of order, twice, a removal of another seq. */
  readonly violations: string[] = [];
  resets = 0;
  private cursor: string | null = null;
  private sub: LiveSubscription | null = null;
  private generation = 0;
  /**
   * After a reset: the refetch, read later than the reset, may already lack a message whose
   * removal the feed reports next, so a removal above the copy's end is no violation then.
   */
  private lenient = false;
  private pending: Json[] | null = null;
  /** What arrived, compactly, for the failure message. */
  readonly log: string[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    private readonly url: string,
    private readonly transport: 'ws' | 'sse',
    private readonly key: string,
    private readonly store: SessionBackend,
    private readonly ws: WsClient | null,
  ) {}

  start(): void {
    const variables =
      this.cursor === null ? { key: this.key, fromStart: true } : { key: this.key, after: this.cursor };
    const sub =
      this.transport === 'ws'
        ? this.ws!.subscribe(SESSION_EVENTS, variables)
        : subscribeSse(this.url, SESSION_EVENTS, variables);
    const generation = ++this.generation;
    this.sub = sub;
    let seen = 0;
    // the condition runs on every result as it arrives: the tap of a real client
    sub
      .waitFor(() => {
        if (generation !== this.generation) return true;
        for (; seen < sub.events.length; seen++) this.receive(sub.events[seen]);
        this.changed();
        return false;
      }, 600_000)
      .catch(() => {});
  }

  reconnect(): void {
    this.generation++;
    this.sub?.stop();
    this.log.push('reconnect');
    this.start();
  }

  stop(): void {
    this.generation++;
    this.sub?.stop();
  }

  errors(): string[] {
    return (this.sub?.results ?? []).flatMap((r) => (r.errors ? [JSON.stringify(r.errors)] : []));
  }

  /** Resolves once `condition` holds on the copy (checked as each event lands); false on timeout. */
  until(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
    return new Promise((resolve) => {
      const check = () => {
        if (!condition()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private receive(event: Json): void {
    this.cursor = event.cursor;
    this.log.push(
      event.__typename === 'MessageAppended'
        ? `+${event.message.seq}`
        : `${event.__typename}:${event.seq ?? ''}`,
    );
    // while a refetch is out, what comes is applied on top of it once it is back
    if (this.pending) this.pending.push(event);
    else this.apply(event);
  }

  private apply(event: Json): void {
    const last = this.copy.at(-1)?.[0] ?? 0;
    switch (event.__typename) {
      case 'MessageAppended': {
        const { seq, content } = event.message;
        if (seq <= last) {
          this.violations.push(`${this.name}: got ${seq} after ${last}`);
          return;
        }
        this.copy.push([seq, content]);
        return;
      }
      case 'MessageRemoved':
        if (event.seq === last) this.copy.pop();
        else if (!(this.lenient && event.seq > last))
          this.violations.push(`${this.name}: removal of ${event.seq} at ${last}`);
        return;
      case 'SessionReset': {
        // a client refetches the session up to where the feed stands, then applies what follows
        this.resets++;
        this.lenient = true;
        const upTo = decodeMessageCursor(event.cursor, 'cursor').seq;
        const pending: Json[] = [];
        this.pending = pending;
        void storedMessages(this.store, this.key, upTo).then((now) => {
          this.copy.length = 0;
          this.copy.push(...now);
          this.pending = null;
          // a reset among them starts another refetch: what follows it waits for that one
          for (const next of pending) {
            const refetching = this.pending as Json[] | null;
            if (refetching) refetching.push(next);
            else this.apply(next);
          }
          this.changed();
        });
        return;
      }
    }
  }
}

interface Harness {
  url: string;
  store: SessionBackend;
  close(): Promise<void>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serveDir(kind: 'sqlite' | 'jsonl', dataDir: string): Promise<Harness> {
  const store = await openBackend({ kind, dataDir });
  const server = await startServer(testConfig(kind, dataDir), {
    backend: store,
    logger: createLogger({ level: 'silent' }),
  });
  return {
    url: server.url,
    store,
    async close() {
      await server.close();
      await store.close();
    },
  };
}

/** Waits until every follower holds the store, then compares (the assertion shows any difference). */
async function expectCopiesEqualStore(followers: Follower[], store: SessionBackend, key: string) {
  const expected = await storedMessages(store, key);
  const same = (f: Follower) => () => JSON.stringify(f.copy) === JSON.stringify(expected);
  // the last write's events are on their way: wait for them (a copy that misses one never matches)
  await Promise.all(followers.map((f) => f.until(same(f))));
  for (const f of followers) {
    expect(
      { name: f.name, copy: f.copy, violations: f.violations, errors: f.errors() },
      f.log.join(' '),
    ).toEqual({
      name: f.name,
      copy: expected,
      violations: [],
      errors: [],
    });
  }
  return expected;
}

describe.each(['sqlite', 'jsonl'] as const)('%s: the live feed with another writer on the store', (kind) => {
  it('an agent message followed at once by an API append reaches every subscriber', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), `sg-order-${kind}-`));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const h = await serveDir(kind, dataDir);
    cleanups.push(() => h.close());
    const agent = await spawnZeroclawWriter(kind, dataDir);
    cleanups.push(() => agent.close());
    const ws = openWsClient(h.url);
    cleanups.push(() => ws.close());
    const key = 'order_agent';
    await postGraphQL(h.url, APPEND, { key, content: 'api-0' });
    const followers = [
      new Follower('ws', h.url, 'ws', key, h.store, ws),
      new Follower('sse', h.url, 'sse', key, h.store, null),
    ];
    for (const f of followers) f.start();
    cleanups.push(async () => {
      for (const f of followers) f.stop();
    });
    await Promise.all(followers.map((f) => f.until(() => f.copy.length === 1)));
    for (let i = 1; i <= 10; i++) {
      await agent.run({ op: 'append', key, role: 'assistant', content: `agent-${i}` });
      await postGraphQL(h.url, APPEND, { key, content: `api-${i}` });
    }
    const stored = await expectCopiesEqualStore(followers, h.store, key);
    expect(stored.filter(([, c]) => c.startsWith('agent-'))).toHaveLength(10);
  }, 60_000);

  it('property: agent, API and a second process interleaved with removals and reconnects', async () => {
    const random = prng(seedOf(`${kind} feed order`));
    const dataDir = mkdtempSync(join(tmpdir(), `sg-order-${kind}-`));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const h = await serveDir(kind, dataDir);
    cleanups.push(() => h.close());
    const children = new Set<ChildProcess>();
    cleanups.push(async () => {
      for (const child of children) child.kill('SIGKILL');
    });
    const [agent, second] = await Promise.all([
      spawnZeroclawWriter(kind, dataDir),
      startServe(['--port', '0', '--backend', kind, '--data', dataDir], {}, children),
    ]);
    cleanups.push(() => agent.close());
    const ws = openWsClient(h.url);
    cleanups.push(() => ws.close());
    const key = 'order_prop';
    const followers = [
      new Follower('ws-1', h.url, 'ws', key, h.store, ws),
      new Follower('ws-2', h.url, 'ws', key, h.store, ws),
      new Follower('sse', h.url, 'sse', key, h.store, null),
    ];
    for (const f of followers) f.start();
    cleanups.push(async () => {
      for (const f of followers) f.stop();
    });

    let n = 0;
    const op = async (): Promise<unknown> => {
      const r = random();
      const content = `m-${++n}`;
      if (r < 0.3) return agent.run({ op: 'append', key, role: 'assistant', content: `agent-${content}` });
      if (r < 0.55) return postGraphQL(h.url, APPEND, { key, content: `api-${content}` });
      if (r < 0.75) return postGraphQL(second.url, APPEND, { key, content: `second-${content}` });
      if (r < 0.88) return postGraphQL(h.url, REMOVE, { key });
      followers[Math.floor(random() * followers.length)]!.reconnect();
      return undefined;
    };
    for (let step = 0; step < 40; step++) {
      if (random() < 0.08) {
        // zeroclaw's remove_last reads the last id, then deletes it: beside another writer that
        // removes a message mid-session, so it runs alone
        await agent.run({ op: 'removeLast', key });
        continue;
      }
      // a few writers at once, the agent's write followed within milliseconds by ours
      const width = 1 + Math.floor(random() * 3);
      await Promise.all(Array.from({ length: width }, op));
    }
    await postGraphQL(h.url, APPEND, { key, content: 'last' });
    await expectCopiesEqualStore(followers, h.store, key);
  }, 90_000);
});

// The same race without GraphQL in between, hard enough to fail without the ordering point within
// seconds: test/events/session-order.test.ts. This one checks both transports end to end.
describe('postgres: concurrent API writers on one instance', () => {
  const schemas = new Set<string>();
  afterEach(async () => {
    await dropSchemas(schemas);
    schemas.clear();
  });

  it('every subscriber holds the store after 4 writers append to one session at once', async () => {
    const random = prng(seedOf('postgres concurrent writers'));
    const schema = uniqueSchema('sg_order');
    schemas.add(schema);
    const dataDir = mkdtempSync(join(tmpdir(), 'sg-order-pg-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const config = testConfig('postgres', dataDir, {
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema,
      poolSize: 8,
    });
    const store = await openBackend({
      kind: 'postgres',
      dataDir,
      databaseUrl: TEST_DATABASE_URL,
      databaseSchema: schema,
      poolSize: 8,
    });
    cleanups.push(() => store.close());
    const server: RunningServer = await startServer(config, {
      backend: store,
      logger: createLogger({ level: 'silent' }),
    });
    cleanups.push(() => server.close());
    const ws = openWsClient(server.url);
    cleanups.push(() => ws.close());
    const key = 'order_pg';
    const followers = [
      new Follower('ws', server.url, 'ws', key, store, ws),
      new Follower('sse', server.url, 'sse', key, store, null),
    ];
    for (const f of followers) f.start();
    cleanups.push(async () => {
      for (const f of followers) f.stop();
    });
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < 60; i++) {
        const query = random() < 0.05 ? REMOVE : APPEND;
        await postGraphQL(server.url, query, { key, content: `w${w}-${i}` });
      }
    });
    await Promise.all(writers);
    await expectCopiesEqualStore(followers, store, key);
  }, 90_000);
});
