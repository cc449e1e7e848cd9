import Database from 'better-sqlite3';
import { UnavailableError } from '../../errors.js';

/** SQLITE_BUSY and SQLITE_LOCKED with their extended codes (SQLITE_BUSY_SNAPSHOT, ...). */
export function isBusyError(error: unknown): boolean {
  return (
    error instanceof Database.SqliteError &&
    (error.code.startsWith('SQLITE_BUSY') || error.code.startsWith('SQLITE_LOCKED'))
  );
}

/**
 * Another writer held the database past the busy timeout: the one SQLite failure a client may
 * retry. Every other error propagates unchanged (the server masks it).
 */
export function translateSqliteError(error: unknown): unknown {
  if (isBusyError(error)) {
    return new UnavailableError('the session database stayed locked by another writer; retry later', {
      cause: error,
    });
  }
  return error;
}
