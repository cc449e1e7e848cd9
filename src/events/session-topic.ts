/**
 * One shared live stream per session that has subscribers: a single bus subscription whose events
 * are positioned once (feed-position.ts) and handed to every subscriber as the same objects. A
 * subscriber that has caught up with the topic delivers those objects as they are, so the
 * GraphQL layer can execute each event once for all subscribers of the same document
 * (use-shared-subscription-execution.ts) instead of once per subscriber.
 *
 * A topic opens with its first subscriber and closes with its last. It reads the session's tail
 * when it opens so that its positions carry digests, then puts every event of the session through
 * its ordering point (session-order.ts), one at a time: what members get is the session's history
 * in seq order with nothing missing, whatever order the bus brought the events in.
 */

import type { Logger } from 'pino';
import type { SessionBackend } from '../backends/backend.js';
import { isAppError, UnavailableError } from '../errors.js';
import type { EventBus, SessionEvent } from './event-bus.js';
import { type FeedEvent, toFeedEvent } from './feed-event.js';
import { FeedPosition } from './feed-position.js';
import { SessionOrder } from './session-order.js';

export interface TopicEvent {
  /** As published. */
  readonly event: SessionEvent;
  /**
   * What a subscriber in step with the topic delivers. null: the ordering point passed nothing on
   * for this event (stale, or already covered by the store); `event` is then the bus's own, for
   * subscribers still following with a position of their own (their replay may have read what
   * this event undoes).
   */
  readonly out: FeedEvent | null;
  /** The topic's position right after the event. */
  readonly cursor: string;
}

export interface TopicMember {
  deliver(event: TopicEvent): void;
  /** The topic ended under the member (its bus subscription failed, or shutdown). */
  fail(error: Error): void;
}

export interface SessionTopics {
  /** Starts handing the session's events to `member`. */
  join(sessionKey: string, member: TopicMember): void;
  /** Stops it; a member that is not (or no longer) in the topic is ignored. */
  leave(sessionKey: string, member: TopicMember): void;
  /** Ends every topic (and with it each member) with `error`. */
  close(error: Error): void;
}

export interface SessionTopicsOptions {
  bus: EventBus;
  backend: SessionBackend;
  logger?: Logger | undefined;
  /** Positions each topic remembers (see FeedPosition). */
  depth: number;
  /** @default 200 // messages per store read when the ordering point catches up */
  pageSize?: number | undefined;
  /**
   * Events the topic's bus subscription may hold. The topic reads them as fast as they come; only
   * a burst published in one go piles up, so this is far above any batch.
   * @default 100_000 // events
   */
  maxPending?: number;
}

export function createSessionTopics(options: SessionTopicsOptions): SessionTopics {
  const topics = new Map<string, Topic>();

  const open = (sessionKey: string): Topic => {
    const topic = new Topic(sessionKey, options, () => {
      if (topics.get(sessionKey) === topic) topics.delete(sessionKey);
    });
    topics.set(sessionKey, topic);
    return topic;
  };

  return {
    join(sessionKey, member) {
      const topic = topics.get(sessionKey) ?? open(sessionKey);
      topic.members.add(member);
    },
    leave(sessionKey, member) {
      topics.get(sessionKey)?.leave(member);
    },
    close(error) {
      for (const topic of [...topics.values()]) topic.end(error);
    },
  };
}

class Topic {
  readonly members = new Set<TopicMember>();
  private readonly events: AsyncIterableIterator<SessionEvent>;
  private readonly position: FeedPosition;
  private readonly order: SessionOrder;
  private ended = false;

  constructor(
    private readonly sessionKey: string,
    private readonly options: SessionTopicsOptions,
    private readonly onEnd: () => void,
  ) {
    this.events = options.bus.subscribe(sessionKey, { maxPending: options.maxPending ?? 100_000 });
    this.position = new FeedPosition(options.depth);
    this.order = new SessionOrder({
      backend: options.backend,
      sessionKey,
      position: this.position,
      pageSize: options.pageSize,
    });
    this.run().catch((err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      options.logger?.warn({ err: error, sessionKey }, 'live session topic ended');
      this.end(
        isAppError(err)
          ? err
          : new UnavailableError(
              'the live stream of this session was interrupted; subscribe again from the last cursor received',
            ),
      );
    });
  }

  leave(member: TopicMember): void {
    if (this.members.delete(member) && this.members.size === 0) this.end();
  }

  end(error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
    void this.events.return?.();
    if (error) for (const member of this.members) member.fail(error);
    this.members.clear();
  }

  private async run(): Promise<void> {
    const tail = await this.options.backend.messages(this.sessionKey, { last: this.options.depth });
    this.position.seed(tail.items, !tail.hasPreviousPage);
    const emit = (event: SessionEvent) => {
      if (this.ended) return;
      const cursor = this.position.cursor();
      const positioned: TopicEvent = { event, out: toFeedEvent(event, cursor), cursor };
      for (const member of this.members) member.deliver(positioned);
    };
    for await (const event of this.events) {
      if (this.ended) return;
      let passed = false;
      await this.order.accept(event, (out) => {
        passed = true;
        emit(out);
      });
      if (!passed && !this.ended) {
        const positioned: TopicEvent = { event, out: null, cursor: this.position.cursor() };
        for (const member of this.members) member.deliver(positioned);
      }
    }
  }
}
