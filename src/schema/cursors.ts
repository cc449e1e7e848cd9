/**
 * Session cursors: a position in the session list, the listing's ordered value and the key as
 * tie-breaker. Message cursors belong to the live feed as much as to paging, so they live in
 * src/events/message-cursor.ts; both share the opaque envelope of src/events/opaque-cursor.ts.
 */

import type { SessionCursor } from '../backends/backend.js';
import { badCursor, fromOpaqueCursor, toOpaqueCursor } from '../events/opaque-cursor.js';

const SESSION_PREFIX = 's1:';

export function encodeSessionCursor(session: SessionCursor): string {
  return toOpaqueCursor(`${SESSION_PREFIX}${JSON.stringify([session.lastActivityAt, session.key])}`);
}

export function decodeSessionCursor(cursor: string, field: string): SessionCursor {
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
    value.length !== 2 ||
    !(typeof value[0] === 'string' || value[0] === null) ||
    typeof value[1] !== 'string'
  ) {
    throw badCursor(field, 'session');
  }
  return { lastActivityAt: value[0] as string | null, key: value[1] };
}
