/**
 * The soak's end checks, against the store itself: the SQLite file the server wrote, opened with
 * our own backend once the server has stopped. Every acknowledged append must be stored exactly
 * once, where its acknowledgement said; nothing may be stored that no writer had acknowledged; and
 * every subscriber's rebuilt session must equal the stored one: same messages, same order, no gap,
 * no duplicate.
 */

import type { StoredMessage } from '../../src/backends/backend.js';
import { openBackend } from '../../src/backends/open-backend.js';
import type { Subscriber } from './subscribers.js';
import type { Ack } from './writers.js';

/** The stored sessions, by key, each oldest message first. */
export type Store = Map<string, StoredMessage[]>;

export async function readStore(dataDir: string): Promise<Store> {
  const backend = await openBackend({ kind: 'sqlite', dataDir });
  try {
    const store: Store = new Map();
    for (let after: { key: string; lastActivityAt: string | null } | undefined; ; ) {
      const page = await backend.sessions({ order: 'KEY_ASC', first: 500, ...(after && { after }) });
      for (const session of page.items) store.set(session.key, []);
      if (!page.hasNextPage || page.items.length === 0) break;
      const last = page.items.at(-1)!;
      after = { key: last.key, lastActivityAt: last.lastActivityAt };
    }
    for (const [key, messages] of store) {
      for (let afterSeq = 0; ; ) {
        const page = await backend.messages(key, { first: 1_000, afterSeq });
        messages.push(...page.items);
        if (!page.hasNextPage || page.items.length === 0) break;
        afterSeq = page.items.at(-1)!.seq;
      }
    }
    return store;
  } finally {
    await backend.close();
  }
}

export interface AckCheck {
  stored: number;
  acknowledged: number;
  /** Acknowledged appends stored exactly once, in their session, at their seq. */
  storedOnce: number;
  /** Acknowledged appends not stored. */
  lost: string[];
  /** Acknowledged appends stored more than once. */
  duplicated: string[];
  /** Acknowledged appends stored elsewhere than their acknowledgement said. */
  misplaced: string[];
  /** Stored messages that no writer had acknowledged. */
  unacknowledged: string[];
}

/** The clientMessageId a soak message starts with (`w3-17: ...`). */
const idOf = (content: string) => content.slice(0, content.indexOf(':'));

export function checkAcks(store: Store, acks: ReadonlyMap<string, Ack>): AckCheck {
  const byId = new Map<string, StoredMessage[]>();
  let stored = 0;
  for (const messages of store.values()) {
    for (const message of messages) {
      stored++;
      const id = idOf(message.content);
      byId.set(id, [...(byId.get(id) ?? []), message]);
    }
  }
  const check: AckCheck = {
    stored,
    acknowledged: acks.size,
    storedOnce: 0,
    lost: [],
    duplicated: [],
    misplaced: [],
    unacknowledged: [],
  };
  for (const ack of acks.values()) {
    const copies = (byId.get(ack.clientMessageId) ?? []).filter((m) => m.content === ack.content);
    if (copies.length === 0) check.lost.push(ack.clientMessageId);
    else if (copies.length > 1) check.duplicated.push(ack.clientMessageId);
    else if (
      copies[0]!.sessionKey !== ack.sessionKey ||
      copies[0]!.seq !== ack.seq ||
      copies[0]!.role !== ack.role
    ) {
      check.misplaced.push(ack.clientMessageId);
    } else check.storedOnce++;
  }
  for (const [id, messages] of byId)
    if (!acks.has(id)) check.unacknowledged.push(`${id} (${messages.length})`);
  return check;
}

export interface SubscriberCheck {
  /** Subscribers whose rebuilt session equals the store. */
  equal: number;
  /** Messages all subscribers rebuilt, together. */
  messages: number;
  /** One line per subscriber that differs, saying where and how. */
  differences: string[];
}

export function checkSubscribers(store: Store, subscribers: readonly Subscriber[]): SubscriberCheck {
  const check: SubscriberCheck = { equal: 0, messages: 0, differences: [] };
  subscribers.forEach((subscriber, i) => {
    const expected = store.get(subscriber.sessionKey) ?? [];
    const got = subscriber.messages;
    check.messages += got.length;
    const at = firstDifference(expected, got);
    if (at === -1) {
      check.equal++;
      return;
    }
    const seqs = (list: ReadonlyArray<{ seq: number }>) =>
      list
        .slice(Math.max(0, at - 1), at + 2)
        .map((m) => m.seq)
        .join(',');
    check.differences.push(
      `subscriber ${i} (${subscriber.transport}, ${subscriber.sessionKey}): ${got.length} messages, the store ` +
        `${expected.length}; first difference at index ${at}: received seqs ${seqs(got)}, stored ${seqs(expected)}`,
    );
  });
  return check;
}

function firstDifference(
  expected: readonly StoredMessage[],
  got: ReadonlyArray<{ seq: number; role: string; content: string }>,
): number {
  const n = Math.max(expected.length, got.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const g = got[i];
    if (!e || !g || e.seq !== g.seq || e.role !== g.role || e.content !== g.content) return i;
  }
  return -1;
}
