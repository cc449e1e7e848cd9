import type { Principal } from './principal.js';

export interface ConnectionLimiter {
  readonly limit: number;
  /** Takes a slot for one more live connection of this principal: its release, or null at the cap. */
  acquire(principal: Principal): (() => void) | null;
  /** Live connections the principal holds now. */
  count(principal: Principal): number;
}

/**
 * Counts each token's live connections (WebSockets and server-sent event streams) by token name, so
 * one leaked or abused token cannot hold every socket the server can serve.
 */
export function createConnectionLimiter(limit: number): ConnectionLimiter {
  const counts = new Map<string, number>();
  return {
    limit,
    acquire(principal) {
      const { name } = principal;
      const held = counts.get(name) ?? 0;
      if (held >= limit) return null;
      counts.set(name, held + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const now = (counts.get(name) ?? 1) - 1;
        if (now === 0) counts.delete(name);
        else counts.set(name, now);
      };
    },
    count: (principal) => counts.get(principal.name) ?? 0,
  };
}
