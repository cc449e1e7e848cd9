/**
 * One subscriber's `sessionEvents` feed. It joins the session's topic FIRST, so that every event
 * published from then on is buffered for it, and only then reads storage:
 * 1. start: with a cursor, replay from it; without one, stand at the session's current end;
 * 2. replay: every message after the cursor, a page at a time (O(page), and only as fast as the
 *    client reads). Each page re-reads the last message already sent and compares its digest, so
 *    a cursor whose message was removed or rewritten (also mid-replay) yields a SessionReset with
 *    the current session, and the feed goes on from the session's end: never a silent divergence;
 * 3. live: the buffered and then the new events, each through an ordering point of its own over
 *    its own position (session-order.ts, the same rules as the topic's), so that what the replay
 *    already covered is dropped, and what the replay read but a later event undid (a removal the
 *    topic never saw as news) is stepped back from: no gap, no duplicate, in seq order.
 * Once its position equals the topic's after some event, the subscriber hands out the topic's own
 * event objects (shared with every other caught-up subscriber), forgets its own position, and
 * reads straight from its queue.
 *
 * Memory is bounded: the buffer is capped in events and bytes, and a connection that holds too many
 * unsent bytes for this client ends the feed too; both end it with FeedOverflowError. One instance
 * per subscriber, so methods rather than closures.
 */

import type { SessionBackend } from '../backends/backend.js';
import { FeedOverflowError } from '../errors.js';
import { BoundedQueue } from './bounded-queue.js';
import { type FeedEvent, toFeedEvent } from './feed-event.js';
import { FeedPosition } from './feed-position.js';
import { type MessageCursor, messageDigest } from './message-cursor.js';
import { SessionOrder } from './session-order.js';
import type { SessionTopics, TopicEvent, TopicMember } from './session-topic.js';

export interface SessionSubscriptionOptions {
  backend: SessionBackend;
  topics: SessionTopics;
  sessionKey: string;
  /** Where the client stands; null: from the session's current end. */
  after: MessageCursor | null;
  /** Messages per storage read while replaying. */
  pageSize: number;
  /** Positions remembered (see FeedPosition). */
  depth: number;
  /** Buffered events, past which the feed ends with FeedOverflowError. */
  maxPending: number;
  /** Buffered bytes (an estimate), past which the feed ends with FeedOverflowError. */
  maxPendingBytes: number;
  /** The client's connection, when the transport can tell what it holds unsent. */
  connection?: { readonly bufferedAmount: number } | undefined;
  /** Past this many unsent bytes on `connection` the feed ends with FeedOverflowError. */
  maxBufferedBytes: number;
}

export interface SessionSubscription extends AsyncIterableIterator<FeedEvent> {
  /** Ends the feed now: the client's next read gets `error`. */
  fail(error: Error): void;
}

/** Buffered items: events not yet positioned for this subscriber, or events ready to hand out. */
type Item = TopicEvent | FeedEvent;

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

const isPositioned = (item: Item): item is FeedEvent => 'cursor' in item && !('event' in item);

/** What a buffered item pins, roughly: the message text dominates. */
function itemBytes(item: Item): number {
  const event = isPositioned(item) ? item : item.event;
  return event.type === 'MessageAppended' ? 256 + event.message.content.length * 2 : 256;
}

function overflowError(limit: number, unit: 'events' | 'bytes'): FeedOverflowError {
  return new FeedOverflowError(
    `this subscription fell more than ${limit} ${unit} behind and was ended; subscribe again with ` +
      '`after` set to the last cursor received',
    limit,
    unit,
  );
}

export function openSessionSubscription(options: SessionSubscriptionOptions): SessionSubscription {
  return new LiveSessionSubscription(options);
}

class LiveSessionSubscription implements SessionSubscription, TopicMember {
  private phase: 'start' | 'replay' | 'live' = 'start';
  /** null once in step with the topic: its positions are then the topic's. */
  private position: FeedPosition | null;
  /** Orders the topic's events against `position` until in step. */
  private order: SessionOrder | null;
  /** Replayed events not handed out yet. */
  private ready: FeedEvent[] = [];
  private readyHead = 0;
  /** Items in the queue that still need positioning. */
  private unpositioned = 0;
  private readonly queue: BoundedQueue<Item>;

  constructor(private readonly o: SessionSubscriptionOptions) {
    this.position = new FeedPosition(o.depth);
    this.order = new SessionOrder({
      backend: o.backend,
      sessionKey: o.sessionKey,
      position: this.position,
      pageSize: o.pageSize,
    });
    this.queue = new BoundedQueue<Item>({
      maxPending: o.maxPending,
      maxPendingBytes: o.maxPendingBytes,
      sizeOf: itemBytes,
      overflowError,
      onClose: () => o.topics.leave(o.sessionKey, this),
    });
    o.topics.join(o.sessionKey, this);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** From the topic. Positions the event here already once in step: the queue then holds ready events. */
  deliver(event: TopicEvent): void {
    const { connection, maxBufferedBytes } = this.o;
    if (connection && connection.bufferedAmount > maxBufferedBytes) {
      this.queue.fail(
        new FeedOverflowError(
          `more than ${maxBufferedBytes} bytes waited to be sent to this client, so this subscription was ` +
            'ended; subscribe again with `after` set to the last cursor received',
          maxBufferedBytes,
          'bytes',
        ),
      );
      return;
    }
    if (this.position === null) {
      if (event.out) this.queue.push(event.out);
      return;
    }
    if (this.queue.push(event)) this.unpositioned++;
  }

  fail(error: Error): void {
    this.queue.fail(error);
  }

  next(): Promise<IteratorResult<FeedEvent>> {
    // caught up and in step, nothing of its own left to hand out (the event that put it in step
    // may have left several in `ready`): the queue holds exactly what to hand out, no wrapper needed
    if (this.position === null && this.unpositioned === 0 && this.ready.length === 0)
      return this.queue.next() as Promise<IteratorResult<FeedEvent>>;
    return this.nextSlow();
  }

  return(): Promise<IteratorResult<FeedEvent>> {
    this.ready = [];
    return this.queue.return() as Promise<IteratorResult<FeedEvent>>;
  }

  throw(error?: unknown): Promise<IteratorResult<FeedEvent>> {
    void this.return();
    return Promise.reject(error);
  }

  private async nextSlow(): Promise<IteratorResult<FeedEvent>> {
    try {
      for (;;) {
        if (this.readyHead < this.ready.length) return this.emit(this.takeReady());
        // a closed queue holds the reason (overflow, shutdown) or the end: read it
        if (this.phase === 'start' && !this.queue.closed) await this.start();
        else if (this.phase === 'replay' && !this.queue.closed) await this.replayPage();
        else {
          const step = await this.queue.next();
          if (step.done) return DONE;
          const item = step.value;
          if (isPositioned(item)) return this.emit(item);
          this.unpositioned--;
          await this.follow(item);
        }
      }
    } catch (error) {
      void this.queue.return();
      throw error;
    }
  }

  private emit(event: FeedEvent): IteratorResult<FeedEvent> {
    return { value: event, done: false };
  }

  private takeReady(): FeedEvent {
    const event = this.ready[this.readyHead++]!;
    if (this.readyHead === this.ready.length) {
      this.ready = [];
      this.readyHead = 0;
    }
    return event;
  }

  private async start(): Promise<void> {
    const { after } = this.o;
    if (after === null) {
      await this.seekEnd();
      return;
    }
    this.position!.moveTo(after);
    this.phase = 'replay';
  }

  /** One page of the replay, starting with the last message already sent, to check it. */
  private async replayPage(): Promise<void> {
    const position = this.position!;
    const from = position.head;
    const check = from.seq > 0;
    const page = await this.o.backend.messages(
      this.o.sessionKey,
      check
        ? { afterSeq: from.seq - 1, first: this.o.pageSize + 1 }
        : { afterSeq: 0, first: this.o.pageSize },
    );
    if (this.queue.closed) return;
    let items = page.items;
    if (check) {
      const first = items[0];
      if (!first || first.seq !== from.seq || from.digest === null || messageDigest(first) !== from.digest) {
        await this.reset();
        return;
      }
      items = items.slice(1);
    }
    for (const message of items) {
      position.pushMessage(message);
      this.ready.push({
        type: 'MessageAppended',
        sessionKey: this.o.sessionKey,
        message,
        cursor: position.cursor(),
      });
    }
    if (!page.hasNextPage) this.phase = 'live';
  }

  /** The cursor's message is gone or changed: tell the client to refetch, go on from the end. */
  private async reset(): Promise<void> {
    const [session] = await Promise.all([this.o.backend.session(this.o.sessionKey), this.seekEnd()]);
    if (this.queue.closed) return;
    this.ready.push({
      type: 'SessionReset',
      sessionKey: this.o.sessionKey,
      session,
      cursor: this.position!.cursor(),
    });
  }

  private async seekEnd(): Promise<void> {
    const tail = await this.o.backend.messages(this.o.sessionKey, { last: this.o.depth });
    this.position?.seed(tail.items, !tail.hasPreviousPage);
    this.phase = 'live';
  }

  /** A buffered event: what this subscriber delivers for it (into `ready`), if anything. */
  private async follow(positioned: TopicEvent): Promise<void> {
    const position = this.position;
    if (!position || !this.order) {
      if (positioned.out) this.ready.push(positioned.out);
      return;
    }
    await this.order.accept(positioned.event, (event) => {
      this.ready.push(toFeedEvent(event, position.cursor()));
    });
    if (position.cursor() === positioned.cursor) {
      // in step from here on: later events arrive positioned (deliver)
      this.position = null;
      this.order = null;
    }
  }
}
