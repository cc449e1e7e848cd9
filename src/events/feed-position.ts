/**
 * Where a feed stands in its session: the positions of the last messages it delivered (the top is
 * the cursor it hands out), and the rule that decides whether a live event is news or stale.
 *
 * The rule needs only the session's own events in commit order, and tolerates duplicates and
 * events that a storage read already covered (the window between subscribing and replaying):
 * - MessageAppended with a seq at or below the top is already delivered (or was removed before
 *   the read): stale. Above the top it is news.
 * - MessageRemoved of the top is news: the top steps back to the session's new last seq. A removal
 *   of any other seq happened before the read: stale. (JSONL reuses a removed seq, so the removal
 *   of an older message at the top's seq counts as news too; the re-append that follows it is then
 *   news as well, so the subscriber ends up holding the same messages.)
 * - SessionDeleted and SessionReset move the top to where the session now ends; compaction and
 *   renaming never change which messages are readable.
 */

import type { StoredMessage } from '../backends/backend.js';
import type { SessionEvent } from './event-bus.js';
import { encodePosition, type MessageCursor, positionOf, START_POSITION } from './message-cursor.js';

export class FeedPosition {
  /** Bottom to top; the bottom is START_POSITION when the stack reaches the session's start. */
  private stack: MessageCursor[] = [START_POSITION];
  private encoded: { of: MessageCursor; cursor: string } | undefined;

  /** @param depth positions remembered: more removals in a row than this leave the digest unknown */
  constructor(private readonly depth: number) {}

  get head(): MessageCursor {
    return this.stack[this.stack.length - 1] ?? START_POSITION;
  }

  /** The cursor of the head, encoded once per position. */
  cursor(): string {
    const head = this.head;
    if (this.encoded?.of !== head) this.encoded = { of: head, cursor: encodePosition(head) };
    return this.encoded.cursor;
  }

  /** Stands at the end of a session read as its last messages (`atStart`: nothing precedes them). */
  seed(tail: readonly StoredMessage[], atStart: boolean): void {
    this.stack = atStart ? [START_POSITION] : [];
    for (const message of tail) this.pushMessage(message);
    if (this.stack.length === 0) this.stack = [START_POSITION];
  }

  /** Stands at a position a client resumes from. */
  moveTo(position: MessageCursor): void {
    this.stack = [position.seq === 0 ? START_POSITION : position];
  }

  /** The positions remembered, bottom to top (the bottom is START_POSITION at the session's start). */
  positions(): readonly MessageCursor[] {
    return this.stack;
  }

  /** Keeps the bottom `length` positions: the messages above them were removed. */
  truncate(length: number): void {
    this.stack = this.stack.slice(0, Math.max(1, length));
  }

  pushMessage(message: StoredMessage): void {
    this.stack.push(positionOf(message));
    if (this.stack.length > this.depth) this.stack.shift();
  }

  /** Applies one live event: true when the subscriber should get it, false when it is stale. */
  apply(event: SessionEvent): boolean {
    switch (event.type) {
      case 'MessageAppended':
        if (event.message.seq <= this.head.seq) return false;
        this.pushMessage(event.message);
        return true;
      case 'MessageRemoved':
        if (event.seq !== this.head.seq) return false;
        this.stack.pop();
        this.stepTo(event.session.lastSeq ?? 0);
        return true;
      case 'SessionDeleted':
        this.stack = [START_POSITION];
        return true;
      case 'SessionReset':
        this.stack = [];
        this.stepTo(event.session?.lastSeq ?? 0);
        return true;
      case 'SessionCompacted':
      case 'SessionRenamed':
        return true;
    }
  }

  /** After a removal: the session now ends at `seq`; its digest is known if still remembered. */
  private stepTo(seq: number): void {
    if (this.stack.length > 0 && this.head.seq === seq) return;
    this.stack = [seq === 0 ? START_POSITION : { seq, digest: null }];
  }
}
