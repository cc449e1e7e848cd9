import type { Logger } from 'pino';
import { DEFAULT_LIMITS, type StoreLimits } from './backend.js';

/** What every embedded backend's `open*Backend` takes. */
export interface BackendOptions {
  /** The workspace: the folder that holds (or will hold) `sessions/`. */
  dataDir: string;
  limits?: Partial<StoreLimits> | undefined;
  logger?: Logger | undefined;
  /**
   * How long to wait for another writer (SQLite busy timeout, JSONL lock wait) before failing with
   * UnavailableError.
   * @default 5_000 // milliseconds
   */
  lockTimeoutMs?: number | undefined;
  /**
   * SQLite only: told after every transaction of the group-commit write queue (committed or rolled
   * back) how many writes and rows it held (the server's metrics). Must not throw. @default none
   */
  onGroupCommit?: ((requests: number, rows: number) => void) | undefined;
  /**
   * JSONL only, a test seam: runs synchronously after each step of an append that carries a
   * clientMessageId (crash tests kill the process there). @default none
   */
  onAppendStep?: ((step: JsonlAppendStep) => void) | undefined;
}

/**
 * The points of a JSONL append with a clientMessageId after which a crash leaves a distinct state:
 * the lock taken and older intents settled; the intent record written; the lines written; the
 * `done` record written.
 */
export type JsonlAppendStep = 'locked' | 'intent-written' | 'lines-written' | 'recorded';

export function resolveLimits(limits: Partial<StoreLimits> | undefined): StoreLimits {
  return Object.freeze({ ...DEFAULT_LIMITS, ...stripUndefined(limits ?? {}) });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
