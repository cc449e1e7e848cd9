/**
 * Session cursors: a position in the session list, the listing's ordered value and the key as
 * tie-breaker, bound to the order and filter of the list that issued them. Message cursors belong
 * to the live feed as much as to paging, so they live in src/events/message-cursor.ts; both share
 * the opaque envelope of src/events/opaque-cursor.ts.
 */

import { createHash } from 'node:crypto';
import type { SessionCursor, SessionFilter, SessionOrder } from '../backends/backend.js';
import { InvalidInputError } from '../errors.js';
import { badCursor, fromOpaqueCursor, toOpaqueCursor } from '../events/opaque-cursor.js';

const SESSION_PREFIX = 's2:';

/**
 * The listing a session cursor belongs to: a digest of its order and filter. A cursor is a
 * position in one ordered, filtered list; under another order or filter it would page from a
 * position of a different list, so it is refused instead.
 */
export function sessionListScope(order: SessionOrder, filter: SessionFilter): string {
  const parts = [order, filter.keyPrefix, filter.channel, filter.activeSince, filter.activeBefore];
  return createHash('sha256')
    .update(JSON.stringify(parts.map((p) => p ?? null)))
    .digest('base64url')
    .slice(0, 12);
}

export function encodeSessionCursor(session: SessionCursor, scope: string): string {
  return toOpaqueCursor(`${SESSION_PREFIX}${JSON.stringify([scope, session.lastActivityAt, session.key])}`);
}

export function decodeSessionCursor(cursor: string, field: string, scope: string): SessionCursor {
  const text = fromOpaqueCursor(cursor);
  if (!text?.startsWith(SESSION_PREFIX)) throw badCursor(field, 'session');
  let value: unknown;
  try {
    value = JSON.parse(text.slice(SESSION_PREFIX.length));
  } catch {
    throw badCursor(field, 'session');
  }
  if (
    !Array.isArray(value) ||
    value.length !== 3 ||
    typeof value[0] !== 'string' ||
    !(typeof value[1] === 'string' || value[1] === null) ||
    typeof value[2] !== 'string'
  ) {
    throw badCursor(field, 'session');
  }
  if (value[0] !== scope) {
    throw new InvalidInputError(`${field} is a cursor of a session list with another order or filter`, field);
  }
  return { lastActivityAt: value[1] as string | null, key: value[2] };
}
