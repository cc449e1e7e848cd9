/**
 * Message cursors: a position in a session, as `messages` edges and live events hand it out and as
 * `messages(after:)` and `sessionEvents(after:)` take it back.
 *
 * A cursor carries the seq and a digest of the message at that seq (role + content). Both paging
 * (src/schema/message-page.ts, which refuses a mismatch) and the live feed (which resets) compare
 * the digest to detect a cursor of another session, or one whose message was removed or rewritten
 * (a JSONL seq is a position and is reused after removeLast). Two positions have no
 * message to digest: the start of a session (seq 0: "I hold nothing") and a seq whose message the
 * feed could not know (digest null); resuming from the latter always starts with a SessionReset.
 */

import { createHash } from 'node:crypto';
import type { StoredMessage } from '../backends/backend.js';
import { badCursor, fromOpaqueCursor, toOpaqueCursor } from './opaque-cursor.js';

export interface MessageCursor {
  seq: number;
  /** 16 hex digits of SHA-256 over role, NUL, content; null where the message is not known. */
  digest: string | null;
}

/** Before the first message: every message of the session comes after it. */
export const START_POSITION: MessageCursor = Object.freeze({ seq: 0, digest: null });

const UNKNOWN_DIGEST = '-';

/** The digest a message cursor carries: changes whenever the message at a seq changes. */
export function messageDigest(message: Pick<StoredMessage, 'role' | 'content'>): string {
  return createHash('sha256')
    .update(message.role)
    .update('\u0000')
    .update(message.content)
    .digest('hex')
    .slice(0, 16);
}

export function positionOf(message: Pick<StoredMessage, 'seq' | 'role' | 'content'>): MessageCursor {
  return { seq: message.seq, digest: messageDigest(message) };
}

export function encodePosition(position: MessageCursor): string {
  return toOpaqueCursor(`m1:${position.seq}:${position.digest ?? UNKNOWN_DIGEST}`);
}

export function encodeMessageCursor(message: Pick<StoredMessage, 'seq' | 'role' | 'content'>): string {
  return encodePosition(positionOf(message));
}

/** @param field the argument the cursor came in, named by the InvalidInputError a bad one raises */
export function decodeMessageCursor(cursor: string, field: string): MessageCursor {
  const m = /^m1:(\d{1,15}):([0-9a-f]{16}|-)$/.exec(fromOpaqueCursor(cursor) ?? '');
  const seq = Number(m?.[1]);
  if (!m || !Number.isSafeInteger(seq)) throw badCursor(field, 'message');
  return { seq, digest: m[2] === UNKNOWN_DIGEST ? null : m[2]! };
}

export function samePosition(a: MessageCursor, b: MessageCursor): boolean {
  return a.seq === b.seq && a.digest === b.digest;
}
