/**
 * The event model (DESIGN section 5): what happened to a session, published after the write
 * committed, by our own mutations and by the watcher that notices other processes' writes.
 * Events are plain JSON-serialisable objects so that a Redis-backed bus can carry them between
 * instances unchanged.
 */

import type { SessionInfo, StoredMessage } from '../backends/backend.js';
import { FeedOverflowError } from '../errors.js';
import { type BoundedQueue, createBoundedQueue } from './bounded-queue.js';

export type SessionEvent =
  | {
      type: 'MessageAppended';
      sessionKey: string;
      message: StoredMessage;
      session: SessionInfo;
      /**
       * The seq of the session's message right before this one when it committed (0: the first),
       * which the live feed's ordering point compares with what it delivered last. null or absent:
       * not known exactly (the watcher reads other processes' writes after the fact): the feed
       * checks the store instead.
       */
      previousSeq?: number | null;
      /**
       * With previousSeq, where the publisher knows it: the digest of that message
       * (message-cursor.ts), so that a seq reused after a removal is not taken for the message the
       * feed holds. Set by the ordering point on what it passes on.
       */
      previousDigest?: string | null;
    }
  | { type: 'MessageRemoved'; sessionKey: string; seq: number; session: SessionInfo }
  | { type: 'SessionCompacted'; sessionKey: string; dropped: number; session: SessionInfo }
  | { type: 'SessionRenamed'; sessionKey: string; name: string | null; session: SessionInfo }
  | { type: 'SessionDeleted'; sessionKey: string }
  /** The stored session diverged from what was announced (an outside rewrite): refetch. */
  | { type: 'SessionReset'; sessionKey: string; session: SessionInfo | null };

export type SessionEventType = SessionEvent['type'];

export interface SubscribeOptions {
  /**
   * Events buffered for a consumer that is not reading. Past it the subscription ends with a
   * FeedOverflow reason and the client resumes from its last cursor; memory stays bounded.
   * @default 1_000 // events
   */
  maxPending?: number;
  /** Ends the subscription (e.g. the client went away). */
  signal?: AbortSignal;
}

export interface EventBus {
  /** Delivers to the session's subscribers and to every activity subscriber. Never throws. */
  publish(event: SessionEvent): void;
  /** Every event of one session, in publish order, bounded by `maxPending`. */
  subscribe(sessionKey: string, options?: SubscribeOptions): AsyncIterableIterator<SessionEvent>;
  /** Every event of every session (the live session list), bounded by `maxPending`. */
  subscribeActivity(options?: SubscribeOptions): AsyncIterableIterator<SessionEvent>;
  /**
   * False while events published by other instances may not reach this one (a Redis bus waiting to
   * reconnect): readiness reports it. Absent: always true (the in-process bus).
   */
  readonly live?: boolean;
  close(): Promise<void>;
}

/**
 * One subscriber's queue, as every bus makes it: at most `maxPending` events (past it the
 * subscription ends with FeedOverflowError), ended by `signal`; `onClose` runs once it ends.
 */
export function createSubscriberQueue(
  options: SubscribeOptions,
  defaultMaxPending: number,
  onClose: () => void,
): BoundedQueue<SessionEvent> {
  return createBoundedQueue<SessionEvent>({
    maxPending: options.maxPending ?? defaultMaxPending,
    overflowError: (limit) =>
      new FeedOverflowError(
        `more than ${limit} events waited for this subscriber; subscribe again from the last cursor received`,
        limit,
        'events',
      ),
    signal: options.signal,
    onClose,
  });
}
