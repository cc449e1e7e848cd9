/**
 * What one live subscriber has not read yet: an async iterator fed by `push`, with a cap. Past the
 * cap the queue drops what it holds and ends with the overflow error, so one client that stops
 * reading costs at most the cap and never grows the server's memory (unlike an unbounded Repeater,
 * which throws from inside the publisher past 1,024 pending pushes and crashes the process).
 *
 * A class rather than closures: a server holds one per subscriber, so per-instance functions
 * would cost more than the queue itself.
 */

export interface BoundedQueueOptions<T> {
  /** Items held for a consumer that is not reading; the next push past it ends the queue. */
  maxPending: number;
  /** With `sizeOf`: bytes held (an estimate); the next push past it ends the queue. */
  maxPendingBytes?: number;
  sizeOf?: (item: T) => number;
  /** The error the consumer gets instead of the next item once a cap was reached. */
  overflowError: (limit: number, unit: 'events' | 'bytes') => Error;
  /**
   * Merges an item into the last one still queued (e.g. two snapshots of one session): return the
   * merged item, or undefined to queue both.
   */
  coalesce?: (last: T, next: T) => T | undefined;
  /** Runs once when the queue ends for any reason: return(), end(), overflow or the signal. */
  onClose?: () => void;
  signal?: AbortSignal | undefined;
}

interface Waiting<T> {
  resolve: (result: IteratorResult<T>) => void;
  reject: (error: Error) => void;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

export class BoundedQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiting: Waiting<T> | undefined;
  private readonly onAbort: (() => void) | undefined;

  constructor(private readonly options: BoundedQueueOptions<T>) {
    const { signal } = options;
    if (signal) {
      this.onAbort = () => void this.return();
      if (signal.aborted) this.onAbort();
      else signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  /** The queue ended: nothing more can be pushed. */
  get closed(): boolean {
    return this.ended;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The consumer's side: the queue itself (for callers that hand out only the iterator). */
  get iterator(): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.head < this.items.length) return Promise.resolve({ value: this.shift(), done: false });
    if (this.failure) return Promise.reject(this.takeFailure());
    if (this.ended) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.drop();
    this.failure = undefined;
    this.close();
    this.settleWaiting();
    return Promise.resolve(DONE);
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    void this.return();
    return Promise.reject(error);
  }

  /** Queues an item, or hands it to a waiting consumer; false once the queue has ended. */
  push(item: T): boolean {
    if (this.ended) return false;
    const { options } = this;
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.resolve({ value: item, done: false });
      return true;
    }
    if (options.coalesce && this.head < this.items.length) {
      const last = this.items[this.items.length - 1]!;
      const merged = options.coalesce(last, item);
      if (merged !== undefined) {
        if (options.sizeOf) this.bytes += options.sizeOf(merged) - options.sizeOf(last);
        this.items[this.items.length - 1] = merged;
        return true;
      }
    }
    if (this.items.length - this.head >= options.maxPending)
      return this.overflow(options.maxPending, 'events');
    if (options.sizeOf) {
      this.bytes += options.sizeOf(item);
      const limit = options.maxPendingBytes ?? Number.POSITIVE_INFINITY;
      if (this.bytes > limit) return this.overflow(limit, 'bytes');
    }
    this.items.push(item);
    return true;
  }

  /** Ends the queue now: what is queued is dropped and the consumer's next read gets `error`. */
  fail(error: Error): void {
    if (this.ended) return;
    this.drop();
    this.failure = error;
    this.close();
    this.settleWaiting();
  }

  /** Ends the queue: the consumer reads what is queued, then `error` (if any), then the end. */
  end(error?: Error): void {
    if (this.ended) return;
    this.failure = error;
    this.close();
    if (this.head >= this.items.length) this.settleWaiting();
  }

  private shift(): T {
    const value = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    if (this.options.sizeOf) this.bytes -= this.options.sizeOf(value);
    // keep the array from growing without bound while a steady consumer reads
    if (this.head === this.items.length) this.drop();
    else if (this.head >= 1_024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return value;
  }

  private overflow(limit: number, unit: 'events' | 'bytes'): false {
    this.fail(this.options.overflowError(limit, unit));
    return false;
  }

  private takeFailure(): Error {
    const error = this.failure!;
    this.failure = undefined;
    return error;
  }

  private drop(): void {
    if (this.items.length > 0) this.items = [];
    this.head = 0;
    this.bytes = 0;
  }

  private close(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.onAbort) this.options.signal?.removeEventListener('abort', this.onAbort);
    this.options.onClose?.();
  }

  private settleWaiting(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    if (this.failure) waiting.reject(this.takeFailure());
    else waiting.resolve(DONE);
  }
}

export function createBoundedQueue<T>(options: BoundedQueueOptions<T>): BoundedQueue<T> {
  return new BoundedQueue(options);
}
