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
 * Anything still failing goes through translatePgError.
 */

import pg from 'pg';
import type { Logger } from 'pino';
import { UnavailableError } from '../../errors.js';
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
  close(): Promise<void>;
}

interface Lease {
  client: pg.ClientBase;
  /** An error drops the connection instead of returning it to the pool. */
  release(error?: Error): void;
}

type Attempt = 'first' | 'fresh' | 'again';

const ignore = () => {};

export function createPgRunner(config: pg.PoolConfig, logger?: Logger): PgRunner {
  const pool = new pg.Pool(config);
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
  ): Promise<T> {
    let held: Lease;
    try {
      held = await lease(attempt);
    } catch (error) {
      if (attempt === 'first' && isConnectionError(error)) {
        return retry(error, () => write(work, options, 'fresh'));
      }
      throw error;
    }
    let committing = false;
    let value: T | undefined;
    try {
      await held.client.query('BEGIN');
      value = await work(held.client);
      committing = true;
      await held.client.query('COMMIT');
      held.release();
      return value;
    } catch (error) {
      if (isConnectionError(error)) {
        held.release(error as Error);
        if (committing) return settle(value as T, error, options);
        if (attempt === 'first') return retry(error, () => write(work, options, 'fresh'));
        throw error;
      }
      await rollback(held);
      if (attempt === 'first' && isRetryableAbort(error))
        return retry(error, () => write(work, options, 'again'));
      throw error;
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
        return await write(work, options, 'first');
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
