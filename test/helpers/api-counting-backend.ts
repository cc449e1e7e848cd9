import type { SessionBackend } from '../../src/backends/backend.js';

export interface CountingBackend {
  backend: SessionBackend;
  /** Calls per method since the last reset. */
  calls: Map<string, number>;
  total(): number;
  reset(): void;
}

/** A thin pass-through around a real backend that counts every method call. */
export function countCalls(real: SessionBackend): CountingBackend {
  const calls = new Map<string, number>();
  const backend = new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        calls.set(property, (calls.get(property) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    backend,
    calls,
    total: () => [...calls.values()].reduce((a, b) => a + b, 0),
    reset: () => calls.clear(),
  };
}
