/**
 * The EventBus over Redis pub/sub, for several instances serving one store: an event published on
 * any instance reaches the subscribers of every instance. ioredis directly, with one publish and
 * one subscribe connection (a connection in subscriber mode can do nothing else).
 *
 * Channels: `<prefix>:session:<key>` per session, JSON payloads. Every instance holds ONE pattern
 * subscription over all of them (the activity stream) for its whole life, and hands each event to
 * its local subscribers of that session and of activity through bounded queues, as the local bus
 * does. Events of one session published by different instances can overtake each other on the
 * way; they are handed on as they come, and the feed's per-session ordering point
 * (session-order.ts) puts them back in commit order, reading the store where one is missing, as
 * it does for every other source. Subscribing per session instead would take a Redis round trip before a subscription is
 * live, and the feed reads its back-fill right after subscribe() returns: an event committed in
 * between would be lost. With the standing subscription, subscribe() is live when it returns.
 *
 * Redis pub/sub is at-most-once, so this bus never pretends otherwise: whenever an event may have
 * been lost, the subscriptions that could miss it end with UnavailableError, and the feed's
 * client resumes from its last cursor (the back-fill from storage closes the gap).
 * - The subscribe connection drops (Redis restart, network): every local subscription ends at
 *   once; until the pattern subscription is back, new subscriptions end at once too.
 * - A publish fails (this instance cannot reach Redis while others can): the session's key is
 *   remembered, and once the publish connection is back, a notice on `<prefix>:lost` ends the
 *   subscriptions of those sessions (and of activity) on every instance.
 */

import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { UnavailableError } from '../errors.js';
import type { BoundedQueue } from './bounded-queue.js';
import {
  createSubscriberQueue,
  type EventBus,
  type SessionEvent,
  type SubscribeOptions,
} from './event-bus.js';

export interface RedisEventBusOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /**
   * Channel prefix. Pub/sub ignores the database number, so deployments sharing one Redis need
   * distinct prefixes. Letters, digits and `_.-:` only (it is part of a glob pattern).
   * @default 'sessiongraph'
   */
  prefix?: string | undefined;
  /** `maxPending` for subscribers that set none. @default 1_000 // events */
  maxPending?: number | undefined;
  /**
   * How long createRedisEventBus waits for Redis before it fails with UnavailableError.
   * @default 10_000 // milliseconds
   */
  connectTimeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

export interface RedisEventBus extends EventBus {
  /** True while events published anywhere reach this instance: both connections up, subscribed. */
  readonly live: boolean;
}

/**
 * Session keys whose events this instance failed to publish, remembered until the notice goes
 * out; past this many, the notice names no key and ends every subscription instead.
 */
const MAX_LOST_KEYS = 1_000;
/** @default 2_000 // milliseconds: the longest wait between reconnection attempts */
const MAX_RECONNECT_DELAY_MS = 2_000;

interface LostNotice {
  /** null: any session. */
  keys: string[] | null;
}

type Subscribers = Set<BoundedQueue<SessionEvent>>;

export async function createRedisEventBus(options: RedisEventBusOptions): Promise<RedisEventBus> {
  const prefix = options.prefix ?? 'sessiongraph';
  if (!/^[A-Za-z0-9_.:-]+$/.test(prefix))
    throw new RangeError('the Redis channel prefix has characters other than letters, digits and _.-:');
  const sessionChannel = (key: string) => `${prefix}:session:${key}`;
  const pattern = `${prefix}:session:*`;
  const lostChannel = `${prefix}:lost`;
  const defaultMaxPending = options.maxPending ?? 1_000;
  const logger = options.logger;

  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    keepAlive: 10_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, MAX_RECONNECT_DELAY_MS),
  };
  // No offline queue: a publish while Redis is away fails at once (and is noticed as lost)
  // instead of piling up in memory for as long as the outage lasts.
  const publisher = new Redis(options.url, {
    ...common,
    connectionName: 'sessiongraph-publish',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  // Resubscribed by hand on 'ready', so that `subscribed` turns true only once Redis confirmed it.
  const subscriber = new Redis(options.url, {
    ...common,
    connectionName: 'sessiongraph-subscribe',
    autoResubscribe: false,
  });

  const bySession = new Map<string, Subscribers>();
  const activity: Subscribers = new Set();
  const lostKeys = new Set<string>();
  let lostAll = false;
  let subscribed = false;
  let closed = false;

  const unavailable = () =>
    new UnavailableError(
      'live events may have been lost on the way through Redis; subscribe again from the last cursor received',
    );

  const endAll = (subscribers: Iterable<BoundedQueue<SessionEvent>>, error?: Error) => {
    for (const queue of [...subscribers]) queue.end(error);
  };
  const endEverything = (error?: Error) => {
    for (const set of [...bySession.values()]) endAll(set, error);
    endAll(activity, error);
  };

  const deliver = (payload: string) => {
    let event: SessionEvent;
    try {
      event = JSON.parse(payload) as SessionEvent;
    } catch (err) {
      logger?.warn({ err }, 'redis event bus: dropped a payload that is not JSON');
      return;
    }
    if (typeof event?.type !== 'string' || typeof event.sessionKey !== 'string') {
      logger?.warn('redis event bus: dropped a payload that is not a session event');
      return;
    }
    // The session list shows snapshots: an overtaken one is replaced by the next, no need to wait.
    for (const queue of activity) queue.push(event);
    const session = bySession.get(event.sessionKey);
    // a queue that overflows removes itself from its set: deleting while iterating a Set is safe
    if (session) for (const queue of session) queue.push(event);
  };

  const onLostNotice = (payload: string) => {
    let notice: LostNotice;
    try {
      notice = JSON.parse(payload) as LostNotice;
    } catch {
      notice = { keys: null };
    }
    if (!Array.isArray(notice?.keys)) {
      endEverything(unavailable());
      return;
    }
    for (const key of notice.keys) {
      const set = bySession.get(key);
      if (set) endAll(set, unavailable());
    }
    endAll(activity, unavailable());
  };

  subscriber.on('pmessage', (_pattern: string, _channel: string, payload: string) => deliver(payload));
  subscriber.on('message', (channel: string, payload: string) => {
    if (channel === lostChannel) onLostNotice(payload);
  });

  const subscribeChannels = async () => {
    await subscriber.psubscribe(pattern);
    await subscriber.subscribe(lostChannel);
    subscribed = true;
  };

  let loggedDown = false;
  const onError = (role: string) => (err: Error) => {
    // ioredis reports every failed reconnection attempt: log the first of an outage only.
    if (loggedDown) return;
    loggedDown = true;
    logger?.warn({ err, connection: role }, 'redis event bus: connection error');
  };
  publisher.on('error', onError('publish'));
  subscriber.on('error', onError('subscribe'));

  subscriber.on('close', () => {
    if (!subscribed) return;
    subscribed = false;
    logger?.warn('redis event bus: subscribe connection lost; live subscriptions end, clients resume');
    endEverything(closed ? undefined : unavailable());
  });
  subscriber.on('ready', () => {
    if (closed || subscribed) return;
    subscribeChannels().then(
      () => {
        loggedDown = false;
        logger?.info('redis event bus: subscribed again');
      },
      (err: unknown) =>
        logger?.warn({ err }, 'redis event bus: could not subscribe again; retrying on reconnect'),
    );
  });
  publisher.on('ready', () => {
    if (!lostAll && lostKeys.size === 0) return;
    const notice: LostNotice = { keys: lostAll ? null : [...lostKeys] };
    lostAll = false;
    lostKeys.clear();
    publisher.publish(lostChannel, JSON.stringify(notice)).then(
      () =>
        logger?.info({ sessions: notice.keys?.length ?? 'all' }, 'redis event bus: announced lost events'),
      () => {
        // Still away: announce on the next reconnection, for every session to be safe.
        lostAll = true;
      },
    );
  });

  const rememberLost = (key: string) => {
    if (lostAll) return;
    lostKeys.add(key);
    if (lostKeys.size > MAX_LOST_KEYS) {
      lostAll = true;
      lostKeys.clear();
    }
  };

  try {
    await Promise.all([publisher.connect(), subscriber.connect()]);
    await subscribeChannels();
  } catch (err) {
    closed = true;
    publisher.disconnect();
    subscriber.disconnect();
    throw new UnavailableError(`cannot reach Redis for live events: ${(err as Error).message}`);
  }

  const subscribeTo = (
    set: Subscribers,
    release: () => void,
    subscribeOptions: SubscribeOptions,
  ): AsyncIterableIterator<SessionEvent> => {
    const queue = createSubscriberQueue(subscribeOptions, defaultMaxPending, () => {
      set.delete(queue);
      release();
    });
    if (closed) queue.end();
    // Not subscribed: events published now would not arrive, so the back-fill the caller is about
    // to read could be followed by a silent gap. End at once; the client retries.
    else if (!subscribed) queue.end(unavailable());
    else set.add(queue);
    return queue.iterator;
  };

  return {
    get live() {
      return subscribed && publisher.status === 'ready';
    },

    publish(event: SessionEvent): void {
      if (closed) return;
      let payload: string;
      try {
        payload = JSON.stringify(event);
      } catch (err) {
        logger?.error({ err, type: event.type }, 'redis event bus: an event is not serialisable');
        return;
      }
      publisher.publish(sessionChannel(event.sessionKey), payload).catch((err: unknown) => {
        if (closed) return;
        rememberLost(event.sessionKey);
        logger?.debug({ err, sessionKey: event.sessionKey }, 'redis event bus: publish failed');
      });
    },

    subscribe(sessionKey: string, subscribeOptions: SubscribeOptions = {}) {
      const own = bySession.get(sessionKey) ?? new Set();
      bySession.set(sessionKey, own);
      return subscribeTo(
        own,
        () => {
          if (own.size === 0 && bySession.get(sessionKey) === own) bySession.delete(sessionKey);
        },
        subscribeOptions,
      );
    },

    subscribeActivity(subscribeOptions: SubscribeOptions = {}) {
      return subscribeTo(activity, () => {}, subscribeOptions);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      subscribed = false;
      endEverything();
      bySession.clear();
      await Promise.all([quit(publisher), quit(subscriber)]);
    },
  };
}

/** QUIT when Redis answers within a second; the socket is closed either way. */
async function quit(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.quit().catch(() => {}),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 1_000);
      }),
    ]);
    clearTimeout(timer);
  }
  client.disconnect();
}
