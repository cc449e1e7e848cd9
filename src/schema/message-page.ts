/**
 * `Session.messages` between message cursors, each checked against the session before it bounds
 * a page. A cursor carries a seq and a digest of the message it was issued for
 * (src/events/message-cursor.ts); it is valid for a session only while that session holds that
 * very message at that seq. A cursor of another session (row ids are unique across sessions; a
 * JSONL position holding other content), one whose message was removed or changed since (a JSONL
 * seq is reused after removeLast), one whose digest was forged, or one whose message the feed
 * could not know (digest `-`) is refused with InvalidInputError naming the argument: paging by its
 * bare seq would silently return a page of something else. The live feed applies the same check
 * to its `after` and answers a failure with a SessionReset instead (session-subscription.ts).
 * The start of a session (seq 0) names no message and is always valid.
 *
 * The leading bound (`after` of a forward page, `before` of a backward one) is checked in the same
 * storage read as the page: the read is widened by one message to include it, so a removal between
 * a check and the read cannot slip a shifted page through. The other bound is checked by its own
 * read, as is the leading one when the widened page would pass the page size cap.
 */

import {
  DEFAULT_PAGE_SIZE,
  type MessagePageArgs,
  type Page,
  type SessionBackend,
  type StoredMessage,
  type StoreLimits,
} from '../backends/backend.js';
import { InvalidInputError, TooLargeError } from '../errors.js';
import { decodeMessageCursor, type MessageCursor, messageDigest } from '../events/message-cursor.js';

export interface MessagePageRequest {
  first?: number | undefined;
  last?: number | undefined;
  after?: string | undefined;
  before?: string | undefined;
}

type Field = 'after' | 'before';

function foreign(field: Field): InvalidInputError {
  return new InvalidInputError(
    `${field} is not a cursor of a message this session holds: it comes from another session, or its ` +
      'message was removed or changed since; page again from the start or the end',
    field,
  );
}

function holds(message: StoredMessage | null | undefined, cursor: MessageCursor): boolean {
  return !!message && message.seq === cursor.seq && messageDigest(message) === cursor.digest;
}

/** A cursor that names a message (seq > 0); the start of the session needs no check. */
function named(cursor: MessageCursor | undefined, field: Field): cursor is MessageCursor {
  if (!cursor || cursor.seq === 0) return false;
  if (cursor.digest === null) throw foreign(field);
  return true;
}

export async function readMessagePage(
  backend: SessionBackend,
  limits: StoreLimits,
  key: string,
  request: MessagePageRequest,
): Promise<Page<StoredMessage>> {
  const after = request.after === undefined ? undefined : decodeMessageCursor(request.after, 'after');
  const before = request.before === undefined ? undefined : decodeMessageCursor(request.before, 'before');
  const args: MessagePageArgs = {
    ...(request.first !== undefined && { first: request.first }),
    ...(request.last !== undefined && { last: request.last }),
    ...(after && { afterSeq: after.seq }),
    ...(before && { beforeSeq: before.seq }),
  };
  const forward = request.last === undefined;
  const size = forward ? (request.first ?? DEFAULT_PAGE_SIZE) : request.last!;
  const lead: Field = forward ? 'after' : 'before';
  const leading = forward ? after : before;
  const trailing = forward ? before : after;
  // Folding needs a valid size one below the cap, a bad one is left to the backend to refuse, and
  // a window empty by its bounds has no room for the leading message.
  const foldable =
    named(leading, lead) &&
    !(request.first !== undefined && request.last !== undefined) &&
    Number.isSafeInteger(size) &&
    size >= 0 &&
    size < limits.maxPageSize &&
    !(after && before && before.seq <= after.seq);

  const checks: Array<Promise<void>> = [];
  const check = (cursor: MessageCursor, field: Field) =>
    checks.push(
      backend.message(key, cursor.seq).then((message) => {
        if (!holds(message, cursor)) throw foreign(field);
      }),
    );
  if (named(trailing, forward ? 'before' : 'after')) check(trailing, forward ? 'before' : 'after');
  const unfolded = async () => {
    if (named(leading, lead)) check(leading, lead);
    await Promise.all(checks);
    return backend.messages(key, args);
  };
  if (!foldable) return unfolded();

  const anchor = leading!;
  const widened: MessagePageArgs = forward
    ? { ...args, first: size + 1, afterSeq: anchor.seq - 1 }
    : { ...args, last: size + 1, beforeSeq: anchor.seq + 1 };
  let page: Page<StoredMessage>;
  try {
    [page] = await Promise.all([backend.messages(key, widened), ...checks]);
  } catch (error) {
    // a backend whose page cap is below the server's: the bound gets a read of its own
    if (!(error instanceof TooLargeError)) throw error;
    return unfolded();
  }
  const edge = forward ? page.items[0] : page.items.at(-1);
  if (!holds(edge, anchor)) throw foreign(lead);
  // The anchor exists, so a message stands at or beyond the leading bound: the page's far side.
  return forward
    ? { items: page.items.slice(1), hasNextPage: page.hasNextPage, hasPreviousPage: true }
    : { items: page.items.slice(0, -1), hasNextPage: true, hasPreviousPage: page.hasPreviousPage };
}
