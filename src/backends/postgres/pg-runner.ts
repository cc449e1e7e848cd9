/**
 * Every query goes through here: reads on a pooled connection, writes in a transaction, and the
 * one retry a lost connection allows.
 *
 * - A read that fails with a connection error runs once more on a new connection made for it
 *   (not the pool, whose other idle connections may have died the same way).
 * - A write whose connection dies before COMMIT was sent did not commit (the server rolls back
 *   a transaction whose session ends), so it runs once more on a new connection. One that dies
 *   after COMMIT was sent may or may not have committed: `committed` settles it on a new
 *   connection where the caller can tell; otherwise it is an UnavailableError. An acknowledged
 *   write is one whose COMMIT returned, so it is never lost.
 * - A deadlock or serialization failure (the server rolled back) runs once more.
 * - writeSession() waits for its session's turn in this process first, without a connection:
 *   at most one pooled connection per session waits on that session's row lock. A row held from
 *   outside (another instance, an admin's `SELECT ... FOR UPDATE`) then ties up one connection,
 *   not the whole pool, and the other sessions go on. The turn and the lock share one budget, the
 *   pool's `lock_timeout`: a write that queued starts its transaction with what is left of it, so
 *   it fails UnavailableError after about that long in all, however many were ahead of it.
 * Anything still failing goes through translatePgError.
 */

import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Logger } from 'pino';
import { UnavailableError } from '../../errors.js';
import { KeyedMutex } from '../async-mutex.js';
import { isConnectionError, isRetryableAbort, translatePgError } from './pg-errors.js';

export type Queryable = Pick<pg.ClientBase, 'query'>;

export interface WriteOptions<T> {
  /**
   * Asked on a new connection when the connection died after COMMIT was sent: true when the
   * transaction's effects are in the database.
   */
  committed?: (client: Queryable, value: T) => Promise<boolean>;
}

export interface PgRunner {
  read<T>(work: (client: Queryable) => Promise<T>): Promise<T>;
  write<T>(work: (client: Queryable) => Promise<T>, options?: WriteOptions<T>): Promise<T>;
  /**
   * write() for a transaction that locks one session's row: writes to one session run one at a
   * time in this process, the others waiting their turn without a connection.
   */
  writeSession<T>(
    session: string,
    work: (client: Queryable) => Promise<T>,
    options?: WriteOptions<T>,
  ): Promise<T>;
  close(): Promise<void>;
}

interface Lease {
  client: pg.ClientBase;
  /** An error drops the connection instead of returning it to the pool. */
  release(error?: Error): void;
}

type Attempt = 'first' | 'fresh' | 'again';

/** What is left of a write's lock budget when it got its turn; undefined: the pool's whole one. */
type LockBudget = number | undefined;

const ignore = () => {};

/**
 * @param config `lock_timeout` (milliseconds) also bounds a write's wait for its session's turn;
 *   without it, the turn is waited for as long as it takes
 */
export function createPgRunner(config: pg.PoolConfig, logger?: Logger): PgRunner {
  const pool = new pg.Pool(config);
  const lockTimeoutMs = typeof config.lock_timeout === 'number' ? config.lock_timeout : undefined;
  const turns = new KeyedMutex();
  // An idle connection that the server closes is dropped by the pool; unheard, it would crash us.
  pool.on('error', (error) => logger?.warn({ err: error }, 'an idle PostgreSQL connection failed'));
  let closed = false;

  // For the connection's whole life: the query in flight receives the error itself, but a FATAL
  // that arrives in the same socket chunk as the handshake's end is emitted after the pool stopped
  // listening and before the caller could start, and unheard it would crash the process.
  pool.on('connect', (client) => client.on('error', ignore));

  async function pooled(): Promise<Lease> {
    const client = await pool.connect();
    return { client, release: (error) => client.release(error) };
  }

  async function fresh(): Promise<Lease> {
    const client = new pg.Client(config);
    client.on('error', ignore);
    try {
      await client.connect();
    } catch (error) {
      client.end().catch(ignore);
      throw error;
    }
    return { client, release: () => void client.end().catch(ignore) };
  }

  function retry<T>(error: unknown, again: () => Promise<T>): Promise<T> {
    logger?.warn({ err: error }, 'PostgreSQL operation failed before it took effect; retrying once');
    return again();
  }

  function lease(attempt: Attempt): Promise<Lease> {
    if (closed) throw new UnavailableError('the session backend is closed');
    return attempt === 'fresh' ? fresh() : pooled();
  }

  async function read<T>(work: (client: Queryable) => Promise<T>, attempt: Attempt): Promise<T> {
    let held: Lease;
    try {
      held = await lease(attempt);
    } catch (error) {
      if (attempt === 'first' && isConnectionError(error)) return retry(error, () => read(work, 'fresh'));
      throw error;
    }
    try {
      const value = await work(held.client);
      held.release();
      return value;
    } catch (error) {
      const lost = isConnectionError(error);
      held.release(lost ? (error as Error) : undefined);
      if (lost && attempt === 'first') return retry(error, () => read(work, 'fresh'));
      throw error;
    }
  }

  async function rollback(held: Lease): Promise<void> {
    try {
      await held.client.query('ROLLBACK');
      held.release();
    } catch (error) {
      held.release(error as Error);
    }
  }

  async function settle<T>(value: T, cause: unknown, options: WriteOptions<T> | undefined): Promise<T> {
    const unknown = new UnavailableError(
      'the database connection was lost while committing; the write may not have been stored',
      { cause },
    );
    if (!options?.committed) throw unknown;
    let held: Lease;
    try {
      held = await fresh();
    } catch {
      throw unknown;
    }
    try {
      if (await options.committed(held.client, value)) return value;
    } catch {
      throw unknown;
    } finally {
      held.release();
    }
    throw new UnavailableError('the database connection was lost before the write was stored', { cause });
  }

  async function write<T>(
    work: (client: Queryable) => Promise<T>,
    options: WriteOptions<T> | undefined,
    attempt: Attempt,
    budget: LockBudget,
  ): Promise<T> {
    let held: Lease;
    try {
      held = await lease(attempt);
    } catch (error) {
      if (attempt === 'first' && isConnectionError(error)) {
        return retry(error, () => write(work, options, 'fresh', budget));
      }
      throw error;
    }
    let committing = false;
    let value: T | undefined;
    try {
      // One round trip either way; the budget is an integer this process computed.
      await held.client.query(budget === undefined ? 'BEGIN' : `BEGIN; SET LOCAL lock_timeout = ${budget}`);
      value = await work(held.client);
      committing = true;
      await held.client.query('COMMIT');
      held.release();
      return value;
    } catch (error) {
      if (isConnectionError(error)) {
        held.release(error as Error);
        if (committing) return settle(value as T, error, options);
        if (attempt === 'first') return retry(error, () => write(work, options, 'fresh', budget));
        throw error;
      }
      await rollback(held);
      if (attempt === 'first' && isRetryableAbort(error))
        return retry(error, () => write(work, options, 'again', budget));
      throw error;
    }
  }

  /** Runs the write in its session's turn, with what is left of the lock budget once it has it. */
  async function inTurn<T>(
    session: string,
    work: (client: Queryable) => Promise<T>,
    options: WriteOptions<T> | undefined,
  ): Promise<T> {
    const asked = performance.now();
    const release = await turns.lock(session, lockTimeoutMs);
    if (!release) {
      throw new UnavailableError(
        `the session is busy: this write waited ${lockTimeoutMs} ms behind earlier writes to it; retry later`,
      );
    }
    try {
      const waited = performance.now() - asked;
      // Only a write that queued pays for the SET; a tiny remainder still fails as a lock timeout.
      const budget =
        lockTimeoutMs === undefined || waited < 1
          ? undefined
          : Math.max(1, Math.floor(lockTimeoutMs - waited));
      return await write(work, options, 'first', budget);
    } finally {
      release();
    }
  }

  return {
    async read(work) {
      try {
        return await read(work, 'first');
      } catch (error) {
        throw translatePgError(error);
      }
    },
    async write(work, options) {
      try {
        return await write(work, options, 'first', undefined);
      } catch (error) {
        throw translatePgError(error);
      }
    },
    async writeSession(session, work, options) {
      try {
        return await inTurn(session, work, options);
      } catch (error) {
        throw translatePgError(error);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
