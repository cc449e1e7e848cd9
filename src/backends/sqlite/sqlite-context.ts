import type Database from 'better-sqlite3';
import type { StoreLimits } from '../backend.js';
import { validateKey } from '../validate.js';
import { createStatementCache, type Statement } from './statement-cache.js';

/** What every part of the SQLite backend works with: one connection and its statements. */
export interface SqliteContext {
  db: Database.Database;
  /** Prepared once per SQL text (statement-cache.ts). */
  sql: (source: string) => Statement;
  limits: StoreLimits;
  /** Runs reads in one transaction, so that they all see the same committed state. */
  snapshot: <T>(read: () => T) => T;
}

export function createSqliteContext(db: Database.Database, limits: StoreLimits): SqliteContext {
  const transaction = db.transaction((read: () => unknown) => read());
  return {
    db,
    sql: createStatementCache(db),
    limits,
    snapshot: <T>(read: () => T) => transaction.deferred(read) as T,
  };
}

/**
 * Rows a foreign writer stored with a non-TEXT role or content: in these TEXT-affinity columns
 * that means a BLOB (zeroclaw's rusqlite reader drops such rows too). Reads skip them; compact
 * deletes them.
 */
export const READABLE = "typeof(role) = 'text' AND typeof(content) = 'text'";

/**
 * Every access to `sessions` by key names zeroclaw's (session_key, id) index. Statistics that
 * PRAGMA optimize took while the store was small would otherwise have SQLite scan the table, and
 * an index, unlike statistics, does not go stale as the store grows.
 */
export const BY_KEY = 'INDEXED BY idx_sessions_key_id';

/** Reads never fail on a key that could not have been stored: it simply holds nothing. */
export function isStorableKey(key: unknown, limits: StoreLimits): key is string {
  try {
    validateKey(key, limits);
    return true;
  } catch {
    return false;
  }
}
