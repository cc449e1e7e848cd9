/**
 * The ordering point of one session's live events on this instance: every event of the session,
 * whatever published it (our own write, the watcher of other processes' writes, another instance
 * through Redis), passes through here, one at a time, and what comes out is the session's history
 * in seq order with nothing missing: a subscriber never gets seq N before every stored message
 * below N, or a SessionReset.
 *
 * Sources do not agree on order: PostgreSQL settles appends made on different pooled connections
 * in any order, the watcher reports another process's message after the fact (often after ours,
 * which came later), Redis carries each instance's events separately. Waiting for a missing event
 * would not do (it may never come: the watcher reads after the fact, Redis drops), and dropping an
 * event below the head loses a message for good. So the store decides:
 * - MessageAppended says which message it follows (`previousSeq`, read where it committed; SQLite
 *   and PostgreSQL, whose seqs are never reused). When that is exactly the last one passed on, it
 *   goes on at once: the common case, no read. What passes on says which message it followed
 *   here, with its digest (`previousDigest`), so that a subscriber still following on its own can
 *   apply the same rule, also where seqs are reused (JSONL).
 * - Anything else (a gap: its predecessor was not passed on yet; no `previousSeq`: the watcher's
 *   events; a removal; a seq a removal named) makes the ordering point catch up from the store: it
 *   checks that the last message it passed on is still there (seq and digest), passes on every
 *   stored message after it, in order, and the events that race the read are then found stale.
 *   A last message that is gone is stepped back from with MessageRemoved, down to the newest
 *   remembered position still stored; if none is, SessionReset with the session as it is.
 * - An append at or below the head is stale (delivered, or read with a catch-up); counts carried
 *   by events are never trusted (the watcher computes them from a concurrent read).
 * - A message removed before its own append event arrives must not come back: the removal's seq
 *   is remembered, and an append naming it is checked against the store. SessionDeleted and
 *   SessionReset are passed on and followed by a catch-up (the session may already hold newer
 *   messages); after either, appends are always checked against the store, since a late one from
 *   before may otherwise look like the next.
 * Seqs follow commit order within a session on every backend (SQLite's single writer with
 * AUTOINCREMENT, JSONL's positions under the file lock, PostgreSQL's ids drawn under the session
 * row lock), so "everything stored after the head" is exactly what is still to come.
 *
 * One window remains: an append whose event is still on its way when its message is removed and
 * that removal's event passed before this ordering point existed (it opens with the first
 * subscriber) can be passed on; the session's next append or removal steps back from it.
 *
 * This replaces the Redis bus's own resequencer, which held an event that overtook its
 * predecessor for up to a second and then ended the session's subscribers: a store read is exact
 * at once, and the same for every source.
 */

import type { SessionBackend, SessionInfo, StoredMessage } from '../backends/backend.js';
import type { SessionEvent } from './event-bus.js';
import type { FeedPosition } from './feed-position.js';
import { messageDigest } from './message-cursor.js';

export interface SessionOrderOptions {
  backend: SessionBackend;
  sessionKey: string;
  /** The position events are applied to (the topic's): its top is the head. */
  position: FeedPosition;
  /** @default 200 // messages per store read while catching up */
  pageSize?: number;
  /**
   * Seqs named by removals that are remembered, the oldest forgotten first. An append of a
   * remembered seq is checked against the store rather than passed on.
   * @default 1_024 // seqs
   */
  maxRemovedSeqs?: number;
}

/** Receives each event to hand out, right after the position moved past it. */
export type Emit = (event: SessionEvent) => void;

export class SessionOrder {
  private readonly removed = new Set<number>();
  /** Set after a deletion or reset: from then on appends are checked against the store. */
  private verifyAll = false;
  private readonly pageSize: number;
  private readonly maxRemoved: number;

  constructor(private readonly o: SessionOrderOptions) {
    this.pageSize = o.pageSize ?? 200;
    this.maxRemoved = o.maxRemovedSeqs ?? 1_024;
  }

  /** Takes one event; emits, in order, what subscribers get for it (possibly nothing). */
  async accept(event: SessionEvent, emit: Emit): Promise<void> {
    const position = this.o.position;
    switch (event.type) {
      case 'MessageAppended': {
        const seq = event.message.seq;
        if (seq <= position.head.seq) return;
        const follows =
          !this.verifyAll &&
          event.previousSeq != null &&
          event.previousSeq === position.head.seq &&
          (event.previousDigest === undefined || event.previousDigest === position.head.digest) &&
          !this.removed.has(seq);
        if (follows) {
          const { seq: previousSeq, digest: previousDigest } = position.head;
          position.pushMessage(event.message);
          // with the digest: a follower of this history (a subscriber's own order) can tell exactly
          emit({ ...event, previousSeq, previousDigest });
          return;
        }
        await this.catchUp(emit, event.session);
        return;
      }
      case 'MessageRemoved':
        // counts from the watcher may be off: the removals passed on carry the session re-read
        this.rememberRemoved(event.seq);
        await this.catchUp(emit, null);
        return;
      case 'SessionDeleted':
      case 'SessionReset':
        this.verifyAll = true;
        await this.restart(event, emit);
        return;
      case 'SessionCompacted':
      case 'SessionRenamed':
        position.apply(event);
        emit(event);
        return;
    }
  }

  private rememberRemoved(seq: number): void {
    this.removed.delete(seq);
    this.removed.add(seq);
    if (this.removed.size > this.maxRemoved) {
      const [oldest] = this.removed;
      this.removed.delete(oldest!);
    }
  }

  /**
   * A deletion goes on as it is; a reset with the session re-read and the head moved to its end.
   * Then whatever the store holds beyond the head follows.
   */
  private async restart(event: SessionEvent, emit: Emit): Promise<void> {
    const position = this.o.position;
    if (event.type === 'SessionDeleted') {
      position.apply(event);
      emit(event);
    } else {
      const { backend, sessionKey } = this.o;
      const [tail, session] = await Promise.all([
        backend.messages(sessionKey, { last: this.pageSize }),
        backend.session(sessionKey),
      ]);
      position.seed(tail.items, !tail.hasPreviousPage);
      const last = tail.items.at(-1);
      emit({
        type: 'SessionReset',
        sessionKey,
        session: session && { ...session, lastSeq: last?.seq ?? null },
      });
    }
    await this.catchUp(emit, null);
  }

  /** Passes on, in order, what the store holds after the head; steps back first if the head is gone. */
  private async catchUp(emit: Emit, known: SessionInfo | null): Promise<void> {
    const { backend, sessionKey } = this.o;
    const position = this.o.position;
    let session = known;
    const sessionNow = async (): Promise<SessionInfo | null> => {
      session ??= await backend.session(sessionKey);
      return session;
    };
    for (;;) {
      const head = position.head;
      const check = head.seq > 0;
      const page = await backend.messages(
        sessionKey,
        check ? { afterSeq: head.seq - 1, first: this.pageSize + 1 } : { afterSeq: 0, first: this.pageSize },
      );
      let items = page.items;
      if (check) {
        const first = items[0];
        const intact =
          first !== undefined &&
          first.seq === head.seq &&
          head.digest !== null &&
          messageDigest(first) === head.digest;
        if (!intact) {
          if (!(await this.stepBack(emit, sessionNow))) return;
          continue;
        }
        items = items.slice(1);
      }
      for (const message of items) {
        const { seq: previousSeq, digest: previousDigest } = position.head;
        position.pushMessage(message);
        emit({
          ...appended(sessionKey, message, await sessionNow()),
          previousSeq,
          previousDigest,
        });
      }
      if (!page.hasNextPage || items.length === 0) return;
    }
  }

  /**
   * The head's message is gone (or changed): MessageRemoved for each remembered position above the
   * newest one still stored. False when none is: a SessionReset went out instead.
   */
  private async stepBack(emit: Emit, sessionNow: () => Promise<SessionInfo | null>): Promise<boolean> {
    const { backend, sessionKey } = this.o;
    const position = this.o.position;
    const stack = position.positions();
    const lowest = stack.find((p) => p.seq > 0)?.seq ?? 1;
    const page = await backend.messages(sessionKey, {
      afterSeq: lowest - 1,
      beforeSeq: position.head.seq + 1,
      first: stack.length + 1,
    });
    const stored = new Map(page.items.map((m) => [m.seq, messageDigest(m)]));
    let keep = -1;
    for (let i = stack.length - 1; i >= 0; i--) {
      const p = stack[i]!;
      if (p.seq === 0 || (p.digest !== null && stored.get(p.seq) === p.digest)) {
        keep = i;
        break;
      }
    }
    const session = await sessionNow();
    if (session === null) {
      // deleted meanwhile (its SessionDeleted may still be on its way): the same, now
      position.apply({ type: 'SessionDeleted', sessionKey });
      emit({ type: 'SessionDeleted', sessionKey });
      return true;
    }
    if (keep < 0) {
      const tail = await backend.messages(sessionKey, { last: this.pageSize });
      position.seed(tail.items, !tail.hasPreviousPage);
      emit({
        type: 'SessionReset',
        sessionKey,
        session: session && { ...session, lastSeq: tail.items.at(-1)?.seq ?? null },
      });
      return false;
    }
    const gone = stack.slice(keep + 1).reverse();
    for (const [i, p] of gone.entries()) {
      const below = i + 1 < gone.length ? gone[i + 1]! : stack[keep]!;
      position.truncate(stack.length - 1 - i);
      this.rememberRemoved(p.seq);
      emit({
        type: 'MessageRemoved',
        sessionKey,
        seq: p.seq,
        session: { ...session, lastSeq: below.seq === 0 ? null : below.seq },
      });
    }
    return true;
  }
}

function appended(
  sessionKey: string,
  message: StoredMessage,
  session: SessionInfo | null,
): Extract<SessionEvent, { type: 'MessageAppended' }> {
  const info: SessionInfo = session ?? {
    key: sessionKey,
    name: null,
    createdAt: message.createdAt,
    lastActivityAt: message.createdAt,
    messageCount: 0,
    lastSeq: message.seq,
    unreadableCount: null,
  };
  return { type: 'MessageAppended', sessionKey, message, session: info };
}
