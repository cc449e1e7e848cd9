/**
 * The in-process EventBus (the default; one server instance). `publish` hands the same event
 * object to every subscriber synchronously, each through its own bounded queue, so a subscriber
 * that stops reading is ended with FeedOverflowError at its cap while the others carry on.
 * Subscribers must treat events as read-only: they are shared, and a Redis bus carries them as
 * JSON between instances.
 */

import type { BoundedQueue } from './bounded-queue.js';
import {
  createSubscriberQueue,
  type EventBus,
  type SessionEvent,
  type SubscribeOptions,
} from './event-bus.js';

export interface LocalEventBusOptions {
  /** `maxPending` for subscribers that set none. @default 1_000 // events */
  maxPending?: number;
}

type Subscribers = Set<BoundedQueue<SessionEvent>>;

export function createLocalEventBus(options: LocalEventBusOptions = {}): EventBus {
  const defaultMaxPending = options.maxPending ?? 1_000;
  const bySession = new Map<string, Subscribers>();
  const activity: Subscribers = new Set();
  let closed = false;

  const subscribeTo = (
    subscribers: () => Subscribers,
    release: (set: Subscribers) => void,
    subscribeOptions: SubscribeOptions,
  ): AsyncIterableIterator<SessionEvent> => {
    const set = subscribers();
    const queue = createSubscriberQueue(subscribeOptions, defaultMaxPending, () => {
      set.delete(queue);
      release(set);
    });
    if (closed) queue.end();
    else set.add(queue);
    return queue;
  };

  return {
    publish(event: SessionEvent): void {
      if (closed) return;
      const session = bySession.get(event.sessionKey);
      // a queue that overflows removes itself from its set: deleting while iterating a Set is safe
      if (session) for (const queue of session) queue.push(event);
      for (const queue of activity) queue.push(event);
    },

    subscribe(sessionKey: string, subscribeOptions: SubscribeOptions = {}) {
      return subscribeTo(
        () => {
          const existing = bySession.get(sessionKey);
          if (existing) return existing;
          const set: Subscribers = new Set();
          bySession.set(sessionKey, set);
          return set;
        },
        (set) => {
          if (set.size === 0 && bySession.get(sessionKey) === set) bySession.delete(sessionKey);
        },
        subscribeOptions,
      );
    },

    subscribeActivity(subscribeOptions: SubscribeOptions = {}) {
      return subscribeTo(
        () => activity,
        () => {},
        subscribeOptions,
      );
    },

    async close(): Promise<void> {
      closed = true;
      for (const set of [...bySession.values(), activity]) for (const queue of [...set]) queue.end();
      bySession.clear();
    },
  };
}
