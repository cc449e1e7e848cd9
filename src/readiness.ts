/**
 * `/ready`: whether this instance should get traffic. Not while it drains for shutdown; not while
 * the event bus is not live (this instance's subscribers would miss other instances' events); not
 * while storage is out of reach: the backend's `ping` (PostgreSQL answering, the SQLite file or
 * JSONL folder still the one opened), then a read of a key no session uses (the read path works). A probe that hangs counts as a failure after `timeoutMs`. The log says when readiness
 * changes and why, once, not at every probe.
 */

import type { SessionBackend } from './backends/backend.js';
import type { EventBus } from './events/event-bus.js';
import { currentLogger, type Logger } from './logger.js';

export interface ReadinessDeps {
  backend: SessionBackend;
  bus: Pick<EventBus, 'live'>;
  isDraining: () => boolean;
  logger: Logger;
  /** @default 2_000 // milliseconds a storage probe may take before it counts as failed */
  timeoutMs?: number;
}

/** A key no session uses: the probe reads it to check that storage answers. */
const PROBE_KEY = 'sessiongraph-readiness-probe';

export function createReadinessCheck(deps: ReadinessDeps): () => Promise<boolean> {
  const { backend, logger } = deps;
  const timeoutMs = deps.timeoutMs ?? 2_000;
  let lastProblem: string | null = null;

  const probe = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`storage did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const answer = (async () => {
        await backend.ping?.();
        await backend.session(PROBE_KEY);
      })();
      await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  const problem = async (): Promise<string | null> => {
    if (deps.isDraining()) return 'draining for shutdown';
    if (deps.bus.live === false) return 'the event bus is not connected';
    try {
      await probe();
      return null;
    } catch (err) {
      return `storage is unreachable: ${(err as Error).message}`;
    }
  };

  return async () => {
    const now = await problem();
    if (now !== lastProblem) {
      const log = currentLogger(logger);
      if (now === null) log.info('ready');
      else log.warn({ reason: now }, 'not ready');
      lastProblem = now;
    }
    return now === null;
  };
}
