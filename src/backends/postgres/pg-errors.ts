/**
 * What a pg failure means for the caller. A lost connection and a lock or pool wait past its
 * timeout become UnavailableError (retrying may succeed); every other error propagates unchanged
 * (the server masks it).
 */

import { UnavailableError } from '../../errors.js';

/** Node socket errors that mean the connection is gone or was never made. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs of a server that dropped or refused the session (class 08, shutdowns). */
const CONNECTION_STATES = new Set(['57P01', '57P02', '57P03']);

/** pg reports a dead socket with plain Errors; these are their messages. */
const CONNECTION_MESSAGES = ['Connection terminated', 'not queryable', 'timeout expired'];

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The connection died or could not be made: nothing sent on it after that point took effect. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = codeOf(error);
  if (
    code !== undefined &&
    (SOCKET_CODES.has(code) || CONNECTION_STATES.has(code) || code.startsWith('08'))
  ) {
    return true;
  }
  return CONNECTION_MESSAGES.some((text) => error.message.includes(text));
}

/** The pool had no free connection within connectionTimeoutMillis: the database is overloaded. */
export function isPoolTimeout(error: unknown): boolean {
  return error instanceof Error && error.message.includes('timeout exceeded when trying to connect');
}

/** Deadlock or serialization failure: the server rolled the transaction back, so a rerun is safe. */
export function isRetryableAbort(error: unknown): boolean {
  const code = codeOf(error);
  return code === '40P01' || code === '40001';
}

/**
 * 55P03 lock_timeout, 57014 statement_timeout, class 53 (too many connections, out of memory or
 * disk): the store is there but cannot serve now.
 */
function isBusy(error: unknown): boolean {
  const code = codeOf(error);
  return code === '55P03' || code === '57014' || code?.startsWith('53') === true;
}

export function translatePgError(error: unknown): unknown {
  if (error instanceof UnavailableError) return error;
  if (isConnectionError(error) || isPoolTimeout(error)) {
    return new UnavailableError('the PostgreSQL database cannot be reached; retry later', { cause: error });
  }
  if (isBusy(error) || isRetryableAbort(error)) {
    return new UnavailableError('the PostgreSQL database is busy; retry later', { cause: error });
  }
  return error;
}
