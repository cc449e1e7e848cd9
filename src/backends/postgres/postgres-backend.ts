/**
 * The PostgreSQL backend, for several sessiongraph instances serving one store. Every operation
 * is one statement or one transaction on a pooled connection (pg-runner.ts); writes to a session
 * serialise on its row lock across instances, and take turns in memory within this process, so
 * one locked session never holds more than one pooled connection. Every write announces itself on
 * the schema's notification channel (change-notify.ts), and `watchExternalChanges` listens there
 * for the other instances' writes (pg-watcher.ts).
 */

import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import type { AppendOptions, NewMessage, SessionBackend, StoreLimits } from '../backend.js';
import { resolveLimits } from '../backend-options.js';
import {
  checkSeq,
  copyMessage,
  validateClientMessageId,
  validateKey,
  validateMessages,
  validateName,
  validateSessionRecord,
  validateTtlHours,
} from '../validate.js';
import { type AppendRequest, appendMessages, hashMessages } from './append-messages.js';
import { channelOf } from './change-notify.js';
import { readCharacterCounts, readLastMessages, readMessage, readMessagePage } from './message-reads.js';
import { isStorableKey, type PgContext, pgTables } from './pg-context.js';
import { createPgRunner } from './pg-runner.js';
import { PgWatcher } from './pg-watcher.js';
import { searchMessages } from './postgres-search.js';
import { restoreSession } from './restore-session.js';
import { migrateSchema } from './schema-migrations.js';
import { listSessions } from './session-list.js';
import { readSessionInfo } from './session-reads.js';
import {
  cleanupStale,
  compactSession,
  deleteSession,
  removeLastMessage,
  renameSession,
} from './session-writes.js';

export interface PostgresBackendOptions {
  /** `postgres://user:password@host:port/database?application_name=...` */
  databaseUrl: string;
  /**
   * The PostgreSQL schema that holds the tables; created when missing.
   * @default 'sessiongraph'
   */
  schema?: string | undefined;
  /** @default 10 // connections */
  poolSize?: number | undefined;
  limits?: Partial<StoreLimits> | undefined;
  logger?: Logger | undefined;
  /**
   * How long to wait for a session row another writer holds (this instance's earlier writes to
   * the same session included: they queue in memory, and at most one pooled connection per
   * session waits on the row), and for a free pooled connection, before failing with
   * UnavailableError.
   * @default 5_000 // milliseconds
   */
  lockTimeoutMs?: number | undefined;
}

/** bigint ids and counts as numbers: ids stay far below 2^53, and a larger one fails loudly. */
function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`integer ${text} is beyond 2^53`);
  return value;
}

const INT8_OID = 20;

function poolConfig(options: PostgresBackendOptions, lockTimeoutMs: number): pg.PoolConfig {
  const poolSize = options.poolSize ?? 10;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1)
    throw new RangeError('poolSize must be a positive integer');
  return {
    connectionString: options.databaseUrl,
    max: poolSize,
    connectionTimeoutMillis: lockTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    // Names our connections in pg_stat_activity unless the URL's application_name does.
    fallback_application_name: 'sessiongraph',
    lock_timeout: lockTimeoutMs,
    // A transaction left open by a stuck caller must not hold a session lock forever.
    idle_in_transaction_session_timeout: 60_000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  };
}

/** NAMEDATALEN - 1 */
const MAX_APPLICATION_NAME_BYTES = 63;

/** The listening connection's settings: the pool's, named so pg_stat_activity tells it apart. */
function listenConfig(config: pg.PoolConfig, schemaName: string): pg.ClientConfig {
  let name = `sessiongraph listen ${schemaName}`;
  while (Buffer.byteLength(name) > MAX_APPLICATION_NAME_BYTES) name = name.slice(0, -1);
  return { ...config, fallback_application_name: name };
}

export async function openPostgresBackend(options: PostgresBackendOptions): Promise<SessionBackend> {
  const limits = resolveLimits(options.limits);
  const schemaName = options.schema ?? 'sessiongraph';
  const t = pgTables(schemaName);
  const lockTimeoutMs = Math.max(1, options.lockTimeoutMs ?? 5_000);
  const config = poolConfig(options, lockTimeoutMs);
  const db = createPgRunner(config, options.logger);
  let version: string;
  try {
    version = await db.read(async (q) => {
      const { rows } = await q.query<{ server_version: string; server_encoding: string }>(
        `SELECT current_setting('server_version') AS server_version,
          current_setting('server_encoding') AS server_encoding`,
      );
      // char_length must count code points, and stored text must be valid UTF-8.
      if (rows[0]!.server_encoding !== 'UTF8') {
        throw new Error(`the database must use UTF8 encoding, not ${rows[0]!.server_encoding}`);
      }
      await migrateSchema(q, t, options.logger);
      return rows[0]!.server_version;
    });
  } catch (error) {
    await db.close();
    throw error;
  }
  const changes = { channel: channelOf(schemaName), instanceId: randomBytes(9).toString('base64url') };
  const ctx: PgContext = { db, t, limits, changes };
  const watchers = new Set<PgWatcher>();

  return {
    info: () => ({
      kind: 'postgres',
      version,
      capabilities: { messageTimestamps: true, rankedSearch: true, stableSeq: true },
    }),

    async append(key: string, messages: NewMessage[], options: AppendOptions = {}) {
      validateKey(key, limits);
      validateMessages(messages, limits);
      const clientMessageId = validateClientMessageId(options.clientMessageId);
      checkSeq(options.expectedLastSeq, 'expectedLastSeq');
      const copy = messages.map(copyMessage);
      const request: AppendRequest = {
        key,
        messages: copy,
        clientMessageId,
        requestHash: clientMessageId === undefined ? undefined : hashMessages(copy),
        expectedLastSeq: options.expectedLastSeq,
      };
      return appendMessages(ctx, request);
    },

    messages: async (key, args = {}) => readMessagePage(ctx, key, args),
    message: async (key, seq) => readMessage(ctx, key, seq),
    lastMessages: async (keys) => readLastMessages(ctx, keys),
    characterCounts: async (keys) => readCharacterCounts(ctx, keys),
    async session(key) {
      if (!isStorableKey(key, limits)) return null;
      return db.read((q) => readSessionInfo(q, t, key));
    },
    sessions: async (args = {}) => listSessions(ctx, args),
    search: async (args) => searchMessages(ctx, args),

    async removeLast(key, options = {}) {
      validateKey(key, limits);
      const expected = options.expectedLastSeq ?? undefined;
      checkSeq(expected, 'expectedLastSeq');
      return removeLastMessage(ctx, key, expected);
    },
    async compact(key) {
      validateKey(key, limits);
      return compactSession(ctx, key);
    },
    async deleteSession(key) {
      validateKey(key, limits);
      return deleteSession(ctx, key);
    },
    async renameSession(key, name) {
      validateKey(key, limits);
      return renameSession(ctx, key, validateName(name));
    },
    async cleanupStale(ttlHours) {
      validateTtlHours(ttlHours);
      return cleanupStale(ctx, ttlHours);
    },
    async restoreSession(key, record) {
      validateKey(key, limits);
      return restoreSession(ctx, key, validateSessionRecord(record));
    },

    async ping() {
      await db.read((q) => q.query('SELECT 1'));
    },

    watchExternalChanges(listener, watchOptions = {}) {
      const watcher = new PgWatcher({
        config: listenConfig(config, schemaName),
        t,
        changes,
        listener,
        logger: options.logger,
        intervalMs: watchOptions.intervalMs,
      });
      watchers.add(watcher);
      return {
        close() {
          watchers.delete(watcher);
          watcher.close();
        },
      };
    },

    async close() {
      for (const watcher of watchers) watcher.close();
      watchers.clear();
      await db.close();
    },
  };
}
