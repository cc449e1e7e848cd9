/**
 * A FIFO async mutex with a per-waiter timeout, and a keyed registry of them. Our own calls queue
 * here instead of spinning on a lock file.
 */

export type Release = () => void;

interface Waiter {
  grant: (release: Release) => void;
  timer: NodeJS.Timeout | undefined;
}

export class AsyncMutex {
  #locked = false;
  readonly #waiters: Waiter[] = [];

  get idle(): boolean {
    return !this.#locked && this.#waiters.length === 0;
  }

  /** Resolves with a release function, or with null when `timeoutMs` passed first. */
  lock(timeoutMs = Number.POSITIVE_INFINITY): Promise<Release | null> {
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve) => {
      const waiter: Waiter = { grant: resolve, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(
          () => {
            const at = this.#waiters.indexOf(waiter);
            if (at !== -1) this.#waiters.splice(at, 1);
            resolve(null);
          },
          Math.max(0, timeoutMs),
        );
      }
      this.#waiters.push(waiter);
    });
  }

  /** Runs `fn` alone; queued callers wait without a timeout. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = (await this.lock()) as Release;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) {
        clearTimeout(next.timer);
        // The lock passes straight to the next waiter, so nobody can barge in between.
        next.grant(this.#releaser());
      } else {
        this.#locked = false;
      }
    };
  }
}

/** One mutex per key, dropped again when idle so that the map does not grow with every key seen. */
export class KeyedMutex {
  readonly #mutexes = new Map<string, AsyncMutex>();

  async lock(key: string, timeoutMs?: number): Promise<Release | null> {
    let mutex = this.#mutexes.get(key);
    if (!mutex) {
      mutex = new AsyncMutex();
      this.#mutexes.set(key, mutex);
    }
    const release = await mutex.lock(timeoutMs);
    if (!release) {
      this.#forget(key, mutex);
      return null;
    }
    return () => {
      release();
      this.#forget(key, mutex);
    };
  }

  #forget(key: string, mutex: AsyncMutex): void {
    if (mutex.idle && this.#mutexes.get(key) === mutex) this.#mutexes.delete(key);
  }
}
