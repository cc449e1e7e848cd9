/**
 * The live feeds the API serves, over one EventBus and the storage contract:
 * - `sessionEvents(sessionKey, after)`: one session's events, resumable from any message cursor
 *   with no gap and no duplicate (session-subscription.ts), shared per session (session-topic.ts);
 * - `sessionActivity(filter)`: the session list, live (activity-topic.ts).
 * Every feed is bounded per subscriber; `close()` ends them all with a typed reason telling the
 * client to resume, which is what a restarting server wants its clients to do.
 */

import type { Logger } from 'pino';
import type { SessionBackend, StoreLimits } from '../backends/backend.js';
import { validateKey } from '../backends/validate.js';
import { UnavailableError } from '../errors.js';
import { type ActivityEvent, type ActivityFilter, createActivityTopic } from './activity-topic.js';
import type { EventBus } from './event-bus.js';
import type { FeedEvent } from './feed-event.js';
import { decodeMessageCursor } from './message-cursor.js';
import { openSessionSubscription } from './session-subscription.js';
import { createSessionTopics } from './session-topic.js';

export interface FeedOptions {
  /** @default 200 // messages per storage read while replaying after a cursor */
  pageSize: number;
  /**
   * Recent positions each feed remembers: a removal steps the cursor back to one of them. After more
   * removals in a row than this, the cursor's digest is unknown and resuming from it starts with a
   * SessionReset.
   * @default 16 // positions
   */
  depth: number;
  /**
   * Events buffered for a subscriber that is not reading; past it the subscription ends with
   * FEED_OVERFLOW. Above the largest append batch (maxBatchMessages), or one batch would end a
   * subscriber that is a single event behind.
   * @default 2_000 // events
   */
  maxPending: number;
  /** The same cap in bytes of buffered message text (an estimate). @default 16_777_216 // bytes */
  maxPendingBytes: number;
  /**
   * Bytes a connection may hold unsent for one client (the WebSocket's bufferedAmount) before its
   * subscriptions end with FEED_OVERFLOW (checked as each event arrives).
   * @default 4_194_304 // bytes
   */
  maxBufferedBytes: number;
}

export const DEFAULT_FEED_OPTIONS: FeedOptions = Object.freeze({
  pageSize: 200,
  depth: 16,
  maxPending: 2_000,
  maxPendingBytes: 16_777_216,
  maxBufferedBytes: 4_194_304,
});

/** The client's connection, when the transport can tell what it holds unsent (a WebSocket). */
export interface FeedConnection {
  /** Bytes accepted for sending to this client and not yet sent. */
  readonly bufferedAmount: number;
}

export interface Feed {
  /**
   * A session's events from `after` (a message cursor; null: from now on). Raises InvalidInputError
   * for a bad key or cursor before anything starts.
   */
  sessionEvents(
    sessionKey: string,
    after: string | null | undefined,
    connection?: FeedConnection,
  ): AsyncIterableIterator<FeedEvent>;
  /** Changes to the session list that match `filter`, from now on. */
  sessionActivity(filter: ActivityFilter, connection?: FeedConnection): AsyncIterableIterator<ActivityEvent>;
  /** Ends every live subscription with UnavailableError (resume later). Idempotent. */
  close(): Promise<void>;
}

export interface FeedDeps {
  backend: SessionBackend;
  bus: EventBus;
  limits: StoreLimits;
  logger?: Logger | undefined;
  options?: Partial<FeedOptions> | undefined;
}

export function createFeed(deps: FeedDeps): Feed {
  const options: FeedOptions = { ...DEFAULT_FEED_OPTIONS, ...deps.options };
  const maxPending = Math.max(options.maxPending, deps.limits.maxBatchMessages + 1);
  const topics = createSessionTopics({
    bus: deps.bus,
    backend: deps.backend,
    logger: deps.logger,
    depth: options.depth,
    pageSize: options.pageSize,
  });
  const activity = createActivityTopic(deps.bus, deps.logger);
  let closed = false;

  const shutdown = () =>
    new UnavailableError(
      'the server is shutting down; subscribe again (with `after` set to the last cursor received) once it is back',
    );

  return {
    sessionEvents(sessionKey, after, connection) {
      validateKey(sessionKey, deps.limits);
      const cursor = after == null ? null : decodeMessageCursor(after, 'after');
      const subscription = openSessionSubscription({
        backend: deps.backend,
        topics,
        sessionKey,
        after: cursor,
        pageSize: options.pageSize,
        depth: options.depth,
        maxPending,
        maxPendingBytes: options.maxPendingBytes,
        connection,
        maxBufferedBytes: options.maxBufferedBytes,
      });
      // while open, a subscription is a member of its topic, which close() ends with the rest
      if (closed) subscription.fail(shutdown());
      return subscription;
    },

    sessionActivity(filter, connection) {
      const subscription = activity.subscribe(filter, {
        maxPending: options.maxPending,
        connection,
        maxBufferedBytes: options.maxBufferedBytes,
      });
      if (closed) subscription.fail(shutdown());
      return subscription;
    },

    async close() {
      if (closed) return;
      closed = true;
      const error = shutdown();
      topics.close(error);
      activity.close(error);
    },
  };
}
