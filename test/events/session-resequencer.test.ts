/**
 * The resequencer that puts a session's events back in commit order when several instances
 * publish them (src/events/session-resequencer.ts).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionInfo } from '../../src/backends/backend.js';
import type { SessionEvent } from '../../src/events/event-bus.js';
import { createSessionResequencer, type SessionResequencer } from '../../src/events/session-resequencer.js';

const info = (key: string, messageCount: number, lastSeq: number | null): SessionInfo => ({
  key,
  name: null,
  createdAt: null,
  lastActivityAt: null,
  messageCount,
  lastSeq,
  unreadableCount: null,
});

/** The append of `seq` that left the session with `count` messages. */
const appended = (seq: number, count: number, key = 's'): SessionEvent => ({
  type: 'MessageAppended',
  sessionKey: key,
  message: { sessionKey: key, seq, role: 'user', content: `m${seq}`, createdAt: null },
  session: info(key, count, seq),
});

/** The removal of `seq` that left `count` messages ending at `lastSeq`. */
const removed = (seq: number, count: number, lastSeq: number | null, key = 's'): SessionEvent => ({
  type: 'MessageRemoved',
  sessionKey: key,
  seq,
  session: info(key, count, lastSeq),
});

const label = (e: SessionEvent) =>
  e.type === 'MessageAppended' ? `+${e.message.seq}` : e.type === 'MessageRemoved' ? `-${e.seq}` : e.type;

let current: SessionResequencer | undefined;
afterEach(() => current?.clear());

function setup(options: { holdMs?: number; maxSessions?: number } = {}) {
  const out: SessionEvent[] = [];
  const gaps: string[] = [];
  current = createSessionResequencer({ release: (e) => out.push(e), onGap: (k) => gaps.push(k), ...options });
  return { r: current, out, gaps, labels: () => out.map(label) };
}

describe('session resequencer', () => {
  it('passes events in commit order on at once', () => {
    const { r, labels, gaps } = setup();
    for (const e of [appended(10, 5), appended(12, 6), removed(12, 5, 10), appended(13, 6)]) r.push(e);
    expect(labels()).toEqual(['+10', '+12', '-12', '+13']);
    expect(gaps).toEqual([]);
  });

  it('holds an append that overtook an earlier one until that one comes', () => {
    const { r, labels } = setup();
    r.push(appended(10, 5));
    r.push(appended(12, 7));
    r.push(appended(13, 8));
    expect(labels()).toEqual(['+10']);
    r.push(appended(11, 6));
    expect(labels()).toEqual(['+10', '+11', '+12', '+13']);
  });

  it('holds an append that overtook the removal before it', () => {
    const { r, labels } = setup();
    r.push(appended(10, 5));
    r.push(appended(11, 5)); // after "remove 10": count back to 4, then 5 again
    expect(labels()).toEqual(['+10']);
    r.push(removed(10, 4, 9));
    expect(labels()).toEqual(['+10', '-10', '+11']);
  });

  it('holds a removal of a message whose append has not come yet', () => {
    const { r, labels } = setup();
    r.push(appended(10, 5));
    r.push(removed(11, 5, 10));
    r.push(appended(11, 6));
    expect(labels()).toEqual(['+10', '+11', '-11']);
  });

  it('passes duplicates and already covered events on at once, unchanged', () => {
    const { r, labels } = setup();
    r.push(appended(10, 5));
    r.push(appended(10, 5)); // the same event twice (the watcher of another instance)
    r.push(appended(11, 6));
    r.push(appended(10, 9)); // a count misreported by a late reader: the seq says covered
    r.push(removed(9, 4, 8)); // older than what was passed on
    r.push(appended(12, 7));
    expect(labels()).toEqual(['+10', '+10', '+11', '+10', '-9', '+12']);
  });

  it('keeps sessions apart, and lets renames and compactions through at once', () => {
    const { r, labels } = setup();
    r.push(appended(1, 1, 'a'));
    r.push(appended(2, 1, 'b'));
    r.push(appended(4, 3, 'a'));
    r.push({ type: 'SessionRenamed', sessionKey: 'a', name: 'x', session: info('a', 2, 3) });
    r.push({ type: 'SessionCompacted', sessionKey: 'a', dropped: 0, session: info('a', 2, 3) });
    r.push(appended(3, 2, 'a'));
    expect(labels()).toEqual(['+1', '+2', 'SessionRenamed', 'SessionCompacted', '+3', '+4']);
  });

  it('after a deletion or a reset, starts the session over', () => {
    const { r, labels } = setup();
    r.push(appended(10, 5));
    r.push(appended(12, 7));
    r.push({ type: 'SessionDeleted', sessionKey: 's' });
    r.push(appended(20, 1));
    r.push({ type: 'SessionReset', sessionKey: 's', session: null });
    r.push(appended(30, 9));
    expect(labels()).toEqual(['+10', '+12', 'SessionDeleted', '+20', 'SessionReset', '+30']);
  });

  it('reports a gap when the overtaken event does not come in time, then starts over', async () => {
    const { r, labels, gaps } = setup({ holdMs: 50 });
    r.push(appended(10, 5));
    r.push(appended(12, 7));
    await sleep(120);
    expect(gaps).toEqual(['s']);
    expect(labels()).toEqual(['+10']);
    r.push(appended(14, 9));
    expect(labels()).toEqual(['+10', '+14']);
  });

  it('forgets a session on request, and the least recently active past its cap', () => {
    const { r, labels, gaps } = setup({ maxSessions: 2 });
    r.push(appended(1, 1, 'a'));
    r.push(appended(3, 3, 'a')); // held
    r.push(appended(1, 1, 'b'));
    r.push(appended(1, 1, 'c')); // evicts 'a', which held an event: its subscribers must resume
    expect(gaps).toEqual(['a']);
    r.forget('b');
    r.push(appended(5, 4, 'b'));
    expect(labels()).toEqual(['+1', '+1', '+1', '+5']);
  });
});
