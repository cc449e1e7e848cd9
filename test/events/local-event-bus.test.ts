import { describe, expect, it } from 'vitest';
import type { SessionInfo } from '../../src/backends/backend.js';
import { FeedOverflowError } from '../../src/errors.js';
import type { SessionEvent } from '../../src/events/event-bus.js';
import { createLocalEventBus } from '../../src/events/local-event-bus.js';

const session = (key: string, lastSeq: number): SessionInfo => ({
  key,
  name: null,
  createdAt: null,
  lastActivityAt: null,
  messageCount: lastSeq,
  lastSeq,
  unreadableCount: null,
});

const appended = (key: string, seq: number): SessionEvent => ({
  type: 'MessageAppended',
  sessionKey: key,
  message: { sessionKey: key, seq, role: 'user', content: `m${seq}`, createdAt: null },
  session: session(key, seq),
});

async function take<T>(iterator: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

describe('the local event bus', () => {
  it('delivers a session its own events in publish order, and every event to activity subscribers', async () => {
    const bus = createLocalEventBus();
    const a = bus.subscribe('a');
    const activity = bus.subscribeActivity();
    bus.publish(appended('a', 1));
    bus.publish(appended('b', 1));
    bus.publish(appended('a', 2));
    expect((await take(a, 2)).map((e) => e.type === 'MessageAppended' && e.message.seq)).toEqual([1, 2]);
    expect((await take(activity, 3)).map((e) => e.sessionKey)).toEqual(['a', 'b', 'a']);
    await bus.close();
    expect(await a.next()).toEqual({ value: undefined, done: true });
  });

  it('ends only the subscriber that stops reading, with FeedOverflowError, past its cap', async () => {
    const bus = createLocalEventBus({ maxPending: 100 });
    const stalled = bus.subscribe('s');
    const reading = bus.subscribe('s', { maxPending: 5_000 });
    // far past the 1,024 pending pushes that crash an unbounded Repeater
    for (let seq = 1; seq <= 1_500; seq++) bus.publish(appended('s', seq));
    await expect(stalled.next()).rejects.toBeInstanceOf(FeedOverflowError);
    await expect(stalled.next()).resolves.toMatchObject({ done: true });
    const got = await take(reading, 1_500);
    expect(got).toHaveLength(1_500);
    // the overflowed subscriber is gone from the bus: publishing goes on without it
    bus.publish(appended('s', 1_501));
    expect((await reading.next()).value).toMatchObject({ message: { seq: 1_501 } });
    await bus.close();
  });

  it('lets a subscriber leave with return() or its signal, releasing a waiting read', async () => {
    const bus = createLocalEventBus();
    const controller = new AbortController();
    const bySignal = bus.subscribe('s', { signal: controller.signal });
    const byReturn = bus.subscribe('s');
    const waiting = bySignal.next();
    controller.abort();
    expect(await waiting).toMatchObject({ done: true });
    await byReturn.return?.();
    bus.publish(appended('s', 1));
    expect(await byReturn.next()).toMatchObject({ done: true });
    await bus.close();
  });

  it('never throws from publish, also after close', async () => {
    const bus = createLocalEventBus();
    await bus.close();
    expect(() => bus.publish(appended('s', 1))).not.toThrow();
    expect(await bus.subscribe('s').next()).toMatchObject({ done: true });
  });
});
