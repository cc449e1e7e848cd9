/**
 * The session list, live (`sessionActivity`): one shared bus subscription to every session's
 * events while anyone listens, turned once into list changes that every subscriber receives as
 * the same objects, each subscriber keeping only those its filter selects.
 *
 * A change is a snapshot of the session, so a subscriber that falls behind keeps only the newest
 * snapshot of a session when two for it queue up in a row: a batch append, or a busy session
 * watched by a slow dashboard, costs one queued change, not one per message.
 */

import type { Logger } from 'pino';
import type { SessionInfo } from '../backends/backend.js';
import { channelOf } from '../backends/keys.js';
import { FeedOverflowError, isAppError, UnavailableError } from '../errors.js';
import { type BoundedQueue, createBoundedQueue } from './bounded-queue.js';
import type { EventBus, SessionEvent } from './event-bus.js';

export type ActivityKind = 'CREATED' | 'UPDATED' | 'RENAMED' | 'DELETED';

export interface ActivityEvent {
  /** CREATED: the session got its first message. */
  kind: ActivityKind;
  sessionKey: string;
  /** The session after the change; null once deleted. */
  session: SessionInfo | null;
}

export interface ActivityFilter {
  keyPrefix?: string | undefined;
  channel?: string | undefined;
}

export interface ActivitySubscribeOptions {
  maxPending: number;
  /** The client's connection, when the transport can tell what it holds unsent. */
  connection?: { readonly bufferedAmount: number } | undefined;
  maxBufferedBytes: number;
}

export interface ActivityTopic {
  subscribe(filter: ActivityFilter, options: ActivitySubscribeOptions): ActivitySubscription;
  close(error: Error): void;
}

export interface ActivitySubscription extends AsyncIterableIterator<ActivityEvent> {
  /** Ends the subscription now: the client's next read gets `error`. */
  fail(error: Error): void;
}

export function activityOf(event: SessionEvent): ActivityEvent {
  const { sessionKey } = event;
  switch (event.type) {
    case 'MessageAppended':
      return {
        kind: event.session.messageCount === 1 ? 'CREATED' : 'UPDATED',
        sessionKey,
        session: event.session,
      };
    case 'MessageRemoved':
    case 'SessionCompacted':
      return { kind: 'UPDATED', sessionKey, session: event.session };
    case 'SessionRenamed':
      return { kind: 'RENAMED', sessionKey, session: event.session };
    case 'SessionDeleted':
      return { kind: 'DELETED', sessionKey, session: null };
    case 'SessionReset':
      return { kind: event.session ? 'UPDATED' : 'DELETED', sessionKey, session: event.session };
  }
}

function matches(filter: ActivityFilter, key: string): boolean {
  if (filter.keyPrefix !== undefined && !key.startsWith(filter.keyPrefix)) return false;
  if (filter.channel !== undefined && channelOf(key) !== filter.channel) return false;
  return true;
}

/** A newer snapshot of the same session replaces a queued CREATED or UPDATED one. */
function coalesce(last: ActivityEvent, next: ActivityEvent): ActivityEvent | undefined {
  if (last.sessionKey !== next.sessionKey || next.kind !== 'UPDATED') return undefined;
  if (last.kind !== 'CREATED' && last.kind !== 'UPDATED') return undefined;
  return { kind: last.kind, sessionKey: next.sessionKey, session: next.session };
}

const overflowError = (limit: number) =>
  new FeedOverflowError(
    `this subscription fell more than ${limit} changes behind and was ended; subscribe again`,
    limit,
    'events',
  );

export function createActivityTopic(bus: EventBus, logger?: Logger): ActivityTopic {
  type Member = {
    filter: ActivityFilter;
    queue: BoundedQueue<ActivityEvent>;
    options: ActivitySubscribeOptions;
  };
  const members = new Set<Member>();
  let events: AsyncIterableIterator<SessionEvent> | undefined;

  const deliver = (member: Member, change: ActivityEvent) => {
    const { connection, maxBufferedBytes } = member.options;
    if (connection && connection.bufferedAmount > maxBufferedBytes) {
      member.queue.fail(
        new FeedOverflowError(
          `more than ${maxBufferedBytes} bytes waited to be sent to this client, so this subscription was ended; ` +
            'subscribe again',
          maxBufferedBytes,
          'bytes',
        ),
      );
      return;
    }
    member.queue.push(change);
  };

  const start = () => {
    const iterator = bus.subscribeActivity({ maxPending: 100_000 });
    events = iterator;
    (async () => {
      for await (const event of iterator) {
        const change = activityOf(event);
        for (const member of members) if (matches(member.filter, change.sessionKey)) deliver(member, change);
      }
    })().catch((err: unknown) => {
      logger?.warn({ err }, 'live session list ended');
      if (events === iterator) events = undefined;
      const error = isAppError(err)
        ? err
        : new UnavailableError('the live session list was interrupted; subscribe again');
      for (const member of [...members]) member.queue.fail(error);
    });
  };
  const stopIfIdle = () => {
    if (members.size > 0 || !events) return;
    void events.return?.();
    events = undefined;
  };

  return {
    subscribe(filter, options) {
      const queue: BoundedQueue<ActivityEvent> = createBoundedQueue<ActivityEvent>({
        maxPending: options.maxPending,
        coalesce,
        overflowError,
        onClose: () => {
          members.delete(member);
          stopIfIdle();
        },
      });
      const member: Member = { filter, queue, options };
      members.add(member);
      if (!events) start();
      return queue;
    },
    close(error) {
      for (const member of [...members]) member.queue.fail(error);
    },
  };
}
