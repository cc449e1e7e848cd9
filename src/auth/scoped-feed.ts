/**
 * The live feeds as one principal may follow them:
 * - `sessionEvents` on a key outside the principal's prefix is refused with FORBIDDEN (decided from
 *   the key alone: it says nothing about whether the session exists);
 * - `sessionActivity` runs under the principal's prefix, and skips any event outside it;
 * - on JSONL a key is inside the prefix only if its file stem is too (principal.ts, canSeeFileKey);
 * - every feed ends at its next event once the token is removed (UNAUTHENTICATED);
 * - a server-sent event stream (no WebSocket) takes one of the token's connection slots while it
 *   runs; WebSockets take theirs when they connect (attach-graphql-ws.ts).
 */

import { ForbiddenError, TooLargeError } from '../errors.js';
import type { Feed } from '../events/feed.js';
import type { ConnectionLimiter } from './connection-limiter.js';
import { LiveGuard } from './live-guard.js';
import { canSeeFileKey, canSeeKey, effectivePrefix, type Principal } from './principal.js';

export interface FeedAccess {
  isCurrent(principal: Principal): boolean;
  limiter: ConnectionLimiter;
  /** The store's file names are lossy (JSONL): keys are checked with their file stems. @default false */
  lossyFileNames?: boolean;
}

export function scopeFeed(feed: Feed, principal: Principal, access: FeedAccess): Feed {
  const isCurrent = () => access.isCurrent(principal);
  const visible = access.lossyFileNames
    ? (key: string) => canSeeFileKey(principal, key)
    : (key: string) => canSeeKey(principal, key);
  /** A slot for a server-sent event stream; WebSockets hold theirs for the whole socket. */
  const slotFor = (connection: unknown): (() => void) | undefined => {
    if (connection !== undefined) return undefined;
    const release = access.limiter.acquire(principal);
    if (release) return release;
    const { limit } = access.limiter;
    throw new TooLargeError(
      `token ${principal.name} holds ${limit} live connections already, the most one token may hold`,
      'connections',
      limit,
      limit + 1,
      'items',
    );
  };
  return {
    sessionEvents(sessionKey, after, connection) {
      if (!visible(sessionKey)) {
        throw new ForbiddenError(`token ${principal.name} may not follow sessions outside its key prefix`);
      }
      const release = slotFor(connection);
      try {
        return new LiveGuard(feed.sessionEvents(sessionKey, after, connection), { isCurrent, release });
      } catch (err) {
        release?.();
        throw err;
      }
    },
    sessionActivity(filter, connection) {
      const keyPrefix = effectivePrefix(principal, filter.keyPrefix);
      const release = slotFor(connection);
      try {
        // disjoint prefixes: the feed runs under the caller's, and the guard skips every event
        const scoped =
          keyPrefix === null ? filter : { ...filter, ...(keyPrefix !== undefined && { keyPrefix }) };
        return new LiveGuard(feed.sessionActivity(scoped, connection), {
          isCurrent,
          visible: (event) => visible(event.sessionKey),
          release,
        });
      } catch (err) {
        release?.();
        throw err;
      }
    },
    // the view does not own the feed: the server closes it
    close: async () => {},
  };
}
