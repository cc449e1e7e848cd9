import { UnauthenticatedError } from '../errors.js';

export interface LiveGuardOptions<T> {
  /** Checked at every event: false ends the feed with UNAUTHENTICATED (the token was removed). */
  isCurrent(): boolean;
  /** Events for which this is false are skipped. @default every event passes */
  visible?: ((event: T) => boolean) | undefined;
  /** Called once when the feed ends, however it ends. @default nothing */
  release?: (() => void) | undefined;
}

/**
 * A live feed as one principal may follow it: events it may not see are skipped, and once its
 * token is no longer configured the feed ends at the next event with UnauthenticatedError. Like the
 * feeds themselves, return() reaches the source at once, also while a read is pending.
 */
export class LiveGuard<T> implements AsyncIterableIterator<T> {
  private released = false;

  constructor(
    private readonly source: AsyncIterator<T>,
    private readonly options: LiveGuardOptions<T>,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<T>> {
    try {
      for (;;) {
        const step = await this.source.next();
        if (step.done) {
          this.release();
          return step;
        }
        if (!this.options.isCurrent()) {
          await this.source.return?.();
          throw new UnauthenticatedError('the token of this subscription is no longer valid');
        }
        if (this.options.visible?.(step.value) === false) continue;
        return step;
      }
    } catch (err) {
      this.release();
      throw err;
    }
  }

  async return(): Promise<IteratorResult<T>> {
    this.release();
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    await this.return();
    throw error;
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.options.release?.();
  }
}
