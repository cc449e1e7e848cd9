/**
 * A per-socket budget of inbound messages, as a token bucket: `burst` messages at once, refilled at
 * `ratePerSecond`. graphql-ws handles every frame a client sends (a subscribe is parsed, validated
 * and answered even when it is refused), so without a budget one socket sending 10,000 frames in
 * one go holds the event loop for every other client for about a second. Spending over the budget
 * closes the socket (attach-graphql-ws.ts, MessageRateExceeded).
 *
 * Hand-written: the few token-bucket packages are either asynchronous (a promise per take, the
 * cost this exists to avoid) or time their refill with timers; this is one subtraction per message.
 */

export interface FrameBudget {
  /** Spends one message: false when the budget is empty (the message must not be handled). */
  take(): boolean;
}

/**
 * @param ratePerSecond messages per second refilled, in messages
 * @param burst the most messages at once (the bucket's size), in messages
 * @param now the clock, in milliseconds @default performance.now
 */
export function createFrameBudget(
  ratePerSecond: number,
  burst: number,
  now: () => number = () => performance.now(),
): FrameBudget {
  let tokens = burst;
  let last = now();
  const perMs = ratePerSecond / 1_000;
  return {
    take() {
      const t = now();
      tokens = Math.min(burst, tokens + (t - last) * perMs);
      last = t;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}
