/**
 * Group commit: every write issued in the same tick shares ONE immediate transaction, each in its
 * own savepoint. With FTS5 a commit costs far more than a row (each commit writes a new index
 * segment), so coalescing is what makes concurrent appends cheap. One request's error rolls back
 * only its savepoint; every promise settles only after the COMMIT that holds its work.
 */

import type Database from 'better-sqlite3';
import { UnavailableError } from '../../errors.js';
import { translateSqliteError } from './sqlite-errors.js';

/** @default 256 // requests per group transaction; a full queue is committed at once */
export const MAX_GROUP_REQUESTS = 256;
/** @default 10_000 // rows (request weights) per group transaction, to bound its size and time */
export const MAX_GROUP_ROWS = 10_000;

/** Calls around every write transaction (the external-change watcher's, sqlite-watcher.ts). */
export interface WriteHooks {
  /** Inside the transaction, before the first request's work. */
  begin(): void;
  /** Inside the transaction, after the last request's work, before COMMIT. */
  beforeCommit(): void;
  /** After COMMIT (true) or ROLLBACK (false). */
  end(committed: boolean): void;
}

export interface WriteQueue {
  /**
   * Runs `work` synchronously inside the next group transaction, in its own savepoint.
   * @param rows how many rows it writes, counted against MAX_GROUP_ROWS
   */
  run<T>(work: () => T, rows?: number): Promise<T>;
  /** Commits what is queued, then refuses new work. */
  close(): void;
}

interface Job {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  outcome?: { ok: true; value: unknown } | { ok: false; error: unknown };
}

/**
 * @param onGroup told after each transaction (committed or rolled back) how many requests and rows
 *   it held (metrics)
 */
export function createWriteQueue(
  db: Database.Database,
  hooks?: WriteHooks,
  onGroup?: (requests: number, rows: number) => void,
): WriteQueue {
  let pending: Job[] = [];
  let pendingRows = 0;
  let timer: NodeJS.Immediate | null = null;
  let closed = false;

  // Inside the group transaction better-sqlite3 runs this as a SAVEPOINT; alone, as BEGIN..COMMIT.
  const transaction = db.transaction((work: () => unknown) => work());
  const alone = db.transaction((work: () => unknown) => {
    hooks?.begin();
    const value = work();
    hooks?.beforeCommit();
    return value;
  });
  const group = db.transaction((jobs: Job[]) => {
    hooks?.begin();
    for (const job of jobs) {
      try {
        job.outcome = { ok: true, value: transaction(job.work) };
      } catch (error) {
        // Some failures (I/O, disk full) make SQLite roll back the whole transaction: then
        // nothing in this group can commit.
        if (!db.inTransaction) throw error;
        job.outcome = { ok: false, error };
      }
    }
    hooks?.beforeCommit();
  });

  function flush(): void {
    if (timer) clearImmediate(timer);
    timer = null;
    const jobs = pending;
    const rows = pendingRows;
    pending = [];
    pendingRows = 0;
    if (jobs.length === 0) return;
    if (jobs.length === 1) {
      // Alone in its transaction a request needs no savepoint: a throw rolls all of it back.
      const job = jobs[0]!;
      let value: unknown;
      try {
        value = alone.immediate(job.work);
      } catch (error) {
        hooks?.end(false);
        onGroup?.(1, rows);
        job.reject(translateSqliteError(error));
        return;
      }
      hooks?.end(true);
      onGroup?.(1, rows);
      job.resolve(value);
      return;
    }
    try {
      group.immediate(jobs);
    } catch (error) {
      hooks?.end(false);
      onGroup?.(jobs.length, rows);
      const failure = translateSqliteError(error);
      for (const job of jobs) job.reject(failure);
      return;
    }
    hooks?.end(true);
    onGroup?.(jobs.length, rows);
    for (const job of jobs) {
      const outcome = job.outcome!;
      if (outcome.ok) job.resolve(outcome.value);
      else job.reject(translateSqliteError(outcome.error));
    }
  }

  return {
    run<T>(work: () => T, rows = 1): Promise<T> {
      if (closed) return Promise.reject(new UnavailableError('the session backend is closed'));
      return new Promise<T>((resolve, reject) => {
        pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
        pendingRows += rows;
        if (pending.length >= MAX_GROUP_REQUESTS || pendingRows >= MAX_GROUP_ROWS) flush();
        else timer ??= setImmediate(flush);
      });
    },
    close() {
      flush();
      closed = true;
    },
  };
}
