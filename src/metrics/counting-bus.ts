/**
 * An EventBus that counts what this instance publishes, by event type, and otherwise is the bus
 * it wraps. Events that reach this instance from others (Redis) are not publications of its own.
 */

import type { EventBus, SessionEvent } from '../events/event-bus.js';

export function createCountingBus(bus: EventBus, count: (type: SessionEvent['type']) => void): EventBus {
  return {
    publish(event) {
      count(event.type);
      bus.publish(event);
    },
    subscribe: (sessionKey, options) => bus.subscribe(sessionKey, options),
    subscribeActivity: (options) => bus.subscribeActivity(options),
    get live() {
      return bus.live;
    },
    close: () => bus.close(),
  };
}
