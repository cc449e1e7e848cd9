/**
 * The Redis EventBus against the real Redis (test/helpers/redis-server.ts): delivery between two
 * bus instances, order, bounded subscribers, Redis restarts and partitions, and clean closing.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { type AppendResult, DEFAULT_LIMITS, type SessionInfo } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import { FeedOverflowError, UnavailableError } from '../../src/errors.js';
import type { SessionEvent } from '../../src/events/event-bus.js';
import { createFeed } from '../../src/events/feed.js';
import { encodePosition, START_POSITION } from '../../src/events/message-cursor.js';
import { createRedisEventBus, type RedisEventBus } from '../../src/events/redis-event-bus.js';
import {
  ensureRedisRunning,
  holdRedisForThisFile,
  restartRedis,
  restoreRedis,
  stopRedis,
  TEST_REDIS_URL,
  testRedisClient,
} from '../helpers/redis-server.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

holdRedisForThisFile();

const buses: RedisEventBus[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await restoreRedis();
  for (const bus of buses.splice(0)) await bus.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
});

/** A channel prefix of its own per test: no test hears another's events. */
const prefix = () => `sgtest-${randomBytes(4).toString('hex')}`;

async function bus(p: string, options: { url?: string; maxPending?: number } = {}): Promise<RedisEventBus> {
  const b = await createRedisEventBus({
    url: options.url ?? TEST_REDIS_URL,
    prefix: p,
    maxPending: options.maxPending,
  });
  buses.push(b);
  return b;
}

const session = (key: string, n: number): SessionInfo => ({
  key,
  name: null,
  createdAt: '2026-01-01T00:00:00.000000000+00:00',
  lastActivityAt: '2026-01-01T00:00:00.000000000+00:00',
  messageCount: n,
  lastSeq: n,
  unreadableCount: null,
});

const appended = (key: string, seq: number, content = `message ${seq}`): SessionEvent => ({
  type: 'MessageAppended',
  sessionKey: key,
  message: { sessionKey: key, seq, role: 'user', content, createdAt: '2026-01-01T00:00:00.000000000+00:00' },
  session: session(key, seq),
});

async function take(
  events: AsyncIterableIterator<SessionEvent>,
  n: number,
  timeoutMs = 5_000,
): Promise<SessionEvent[]> {
  const out: SessionEvent[] = [];
  const deadline = sleep(timeoutMs).then(() => {
    throw new Error(`got ${out.length} of ${n} events in ${timeoutMs} ms`);
  });
  while (out.length < n) {
    const next = await Promise.race([events.next(), deadline]);
    if (next.done) throw new Error(`ended after ${out.length} of ${n} events`);
    out.push(next.value);
  }
  return out;
}

async function endsWith(events: AsyncIterableIterator<SessionEvent>, timeoutMs = 5_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const timeout = sleep(Math.max(1, deadline - Date.now())).then(() => 'timeout' as const);
    const next = await Promise.race([
      events.next().then(
        (r) => r,
        (e: unknown) => ({ error: e }),
      ),
      timeout,
    ]);
    if (next === 'timeout') throw new Error('the subscription did not end');
    if ('error' in next) return next.error;
    if (next.done) return null;
  }
}

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await sleep(20);
  }
}

describe('redis event bus', () => {
  it('delivers an event published on one instance to the subscribers of every instance', async () => {
    const p = prefix();
    const [a, b] = [await bus(p), await bus(p)];
    const onA = a.subscribe('telegram_1');
    const onB = b.subscribe('telegram_1');
    const otherSession = a.subscribe('telegram_2');
    const activity = a.subscribeActivity();

    const event = appended('telegram_1', 7, 'héllo «wörld» 😀 \u2028');
    b.publish(event);
    b.publish(appended('telegram_3', 1));

    expect(await take(onA, 1)).toEqual([event]);
    expect(await take(onB, 1)).toEqual([event]);
    expect((await take(activity, 2)).map((e) => e.sessionKey)).toEqual(['telegram_1', 'telegram_3']);
    a.publish(appended('telegram_2', 2));
    expect((await take(otherSession, 1))[0]).toMatchObject({ sessionKey: 'telegram_2' });
  });

  it('keeps the publish order of an instance, also for a burst', async () => {
    const p = prefix();
    const [a, b] = [await bus(p), await bus(p, { maxPending: 5_000 })];
    const events = b.subscribe('s');
    for (let seq = 1; seq <= 3_000; seq++) a.publish(appended('s', seq));
    const got = await take(events, 3_000, 15_000);
    expect(got.map((e) => (e.type === 'MessageAppended' ? e.message.seq : 0))).toEqual(
      Array.from({ length: 3_000 }, (_, i) => i + 1),
    );
  });

  it('hands the events of a session to feed subscribers in commit order when instances overtake each other', async () => {
    const p = prefix();
    const [a, b] = [await bus(p), await bus(p)];
    const dataDir = mkdtempSync(join(tmpdir(), 'sg-redis-order-'));
    const store = await openBackend({ kind: 'sqlite', dataDir });
    const feed = createFeed({ backend: store, bus: b, limits: DEFAULT_LIMITS });
    try {
      const event = (r: AppendResult): SessionEvent => ({
        type: 'MessageAppended',
        sessionKey: 's',
        message: r.messages[0]!,
        session: r.session,
        previousSeq: r.previousSeq ?? null,
      });
      const append = (content: string) => store.append('s', [{ role: 'user', content }]);
      const events = feed.sessionEvents('s', encodePosition(START_POSITION));
      const activity = b.subscribeActivity();
      const first = events.next();
      a.publish(event(await append('m1')));
      expect((await first).value).toMatchObject({ message: { content: 'm1' } });
      const m2 = await append('m2');
      const m3 = await append('m3');
      await append('m4');
      const m5 = await append('m5');
      // m3 was committed after m2 but reaches Redis first, from the other instance
      b.publish(event(m3));
      await sleep(50);
      a.publish(event(m2));
      // m5's predecessor never comes (lost on the way): read from the store, no subscriber ends
      a.publish(event(m5));
      const got = await take(events as AsyncIterableIterator<SessionEvent>, 4);
      expect(got.map((e) => (e.type === 'MessageAppended' ? e.message.content : e.type))).toEqual([
        'm2',
        'm3',
        'm4',
        'm5',
      ]);
      // the session list takes snapshots as they come
      const seqs = (e: SessionEvent) => (e.type === 'MessageAppended' ? e.message.content : e.type);
      expect((await take(activity, 4)).map(seqs)).toEqual(['m1', 'm3', 'm2', 'm5']);
    } finally {
      await feed.close();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('ends a subscriber that falls behind with FeedOverflowError, the others carry on', async () => {
    const p = prefix();
    const b = await bus(p, { maxPending: 20 });
    const slow = b.subscribe('s');
    const fast = b.subscribe('s', { maxPending: 1_000 });
    const activity = b.subscribeActivity({ maxPending: 1_000 });
    for (let seq = 1; seq <= 200; seq++) b.publish(appended('s', seq));
    expect(await take(fast, 200)).toHaveLength(200);
    expect(await take(activity, 200)).toHaveLength(200);
    const error = await endsWith(slow);
    expect(error).toBeInstanceOf(FeedOverflowError);
    expect(error).toMatchObject({ limit: 20, unit: 'events' });
  });

  it('drops what is not a session event and goes on', async () => {
    const p = prefix();
    const b = await bus(p);
    const events = b.subscribeActivity();
    const raw = testRedisClient();
    try {
      await raw.connect();
      await raw.publish(`${p}:session:s`, 'not json');
      await raw.publish(`${p}:session:s`, '{"no":"type"}');
    } finally {
      raw.disconnect();
    }
    const event = appended('s', 1);
    b.publish(event);
    expect(await take(events, 1)).toEqual([event]);
  });

  it('ends with the signal, and stops delivering to a subscriber that returned', async () => {
    const b = await bus(prefix());
    const controller = new AbortController();
    const aborted = b.subscribe('s', { signal: controller.signal });
    const returned = b.subscribe('s');
    await returned.return?.();
    controller.abort();
    expect(await endsWith(aborted)).toBeNull();
    b.publish(appended('s', 1));
    expect(await returned.next()).toEqual({ value: undefined, done: true });
  });

  it('on a Redis restart, ends live subscriptions with UnavailableError, then delivers again', async () => {
    const p = prefix();
    const [a, b] = [await bus(p), await bus(p)];
    const before = a.subscribe('s');
    b.publish(appended('s', 1));
    await take(before, 1);

    await stopRedis();
    expect(await endsWith(before)).toBeInstanceOf(UnavailableError);
    expect(a.live).toBe(false);
    // Subscribing while Redis is away would be followed by a silent gap: it ends at once.
    expect(await endsWith(a.subscribe('s'))).toBeInstanceOf(UnavailableError);
    b.publish(appended('s', 2)); // lost: nobody can hear it, and no subscriber is left to miss it
    await ensureRedisRunning();

    await until(() => a.live && b.live);
    const after = a.subscribe('s');
    const activity = a.subscribeActivity();
    b.publish(appended('s', 3));
    expect((await take(after, 1))[0]).toMatchObject({ message: { seq: 3 } });
    expect((await take(activity, 1))[0]).toMatchObject({ message: { seq: 3 } });
  }, 60_000);

  it('survives a restart with the exact CI command while idle, and a restart that lasts', async () => {
    const p = prefix();
    const a = await bus(p);
    await restartRedis(1_500);
    await until(() => a.live);
    const events = a.subscribe('s');
    a.publish(appended('s', 1));
    expect(await take(events, 1)).toHaveLength(1);
  }, 60_000);

  it('when one instance cannot publish, tells every instance which sessions may have missed events', async () => {
    const p = prefix();
    const proxy = await startTcpProxy(TEST_REDIS_URL);
    proxies.push(proxy);
    const a = await bus(p);
    const b = await bus(p, { url: proxy.url });
    const affected = a.subscribe('cut-off');
    const unaffected = a.subscribe('elsewhere');
    const activity = a.subscribeActivity();

    proxy.partition();
    await until(() => !b.live);
    b.publish(appended('cut-off', 1)); // fails: remembered
    proxy.heal();
    await until(() => b.live);

    expect(await endsWith(affected, 10_000)).toBeInstanceOf(UnavailableError);
    expect(await endsWith(activity, 10_000)).toBeInstanceOf(UnavailableError);
    a.publish(appended('elsewhere', 1));
    expect(await take(unaffected, 1)).toHaveLength(1);
  }, 60_000);

  it('fails to start with UnavailableError when Redis cannot be reached', async () => {
    const started = Date.now();
    const error = await createRedisEventBus({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 1_000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('close() ends subscriptions and quits both connections', async () => {
    const p = prefix();
    const b = await createRedisEventBus({ url: TEST_REDIS_URL, prefix: p });
    const events = b.subscribe('s');
    const raw = testRedisClient();
    try {
      await raw.connect();
      const patterns = async () => Number(await raw.call('PUBSUB', 'NUMPAT'));
      const clients = async () =>
        String(await raw.call('CLIENT', 'LIST'))
          .split('\n')
          .filter((line) => /name=sessiongraph-(publish|subscribe)\b/.test(line)).length;
      const [patternsBefore, clientsBefore] = [await patterns(), await clients()];
      await b.close();
      expect(await endsWith(events)).toBeNull();
      await until(() => true);
      await sleep(100);
      expect(await patterns()).toBe(patternsBefore - 1);
      expect(await clients()).toBe(clientsBefore - 2);
      b.publish(appended('s', 1)); // after close: a no-op, not a throw
      await b.close();
    } finally {
      raw.disconnect();
    }
  });
});
