/**
 * A SessionBackend that times every call of the one it wraps and reports it with its outcome:
 * `ok`, or the code of the typed error it failed with (`INTERNAL` for anything else). Same
 * behaviour otherwise: results and errors pass through untouched, optional methods stay optional.
 */

import type { SessionBackend } from '../backends/backend.js';
import { isAppError } from '../errors.js';

export type ObserveOperation = (operation: string, outcome: string, seconds: number) => void;

/** The async methods worth timing: every storage call a request can make. */
const TIMED = [
  'append',
  'messages',
  'message',
  'lastMessages',
  'characterCounts',
  'session',
  'sessions',
  'removeLast',
  'compact',
  'deleteSession',
  'renameSession',
  'cleanupStale',
  'restoreSession',
  'search',
  'ping',
] as const satisfies ReadonlyArray<keyof SessionBackend>;

const outcomeOf = (error: unknown): string => (isAppError(error) ? error.code : 'INTERNAL');

export function createInstrumentedBackend(
  backend: SessionBackend,
  observe: ObserveOperation,
): SessionBackend {
  const timed =
    <A extends unknown[], R>(operation: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const start = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - start) / 1e9;
      try {
        const result = await call(...args);
        observe(operation, 'ok', seconds());
        return result;
      } catch (error) {
        observe(operation, outcomeOf(error), seconds());
        throw error;
      }
    };

  const instrumented: SessionBackend = {
    info: () => backend.info(),
    close: () => backend.close(),
  } as SessionBackend;
  for (const operation of TIMED) {
    const method = backend[operation] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (method === undefined) continue;
    (instrumented as unknown as Record<string, unknown>)[operation] = timed(operation, method.bind(backend));
  }
  // not timed: it returns at once and reports later
  if (backend.watchExternalChanges) {
    instrumented.watchExternalChanges = backend.watchExternalChanges.bind(backend);
  }
  return instrumented;
}
