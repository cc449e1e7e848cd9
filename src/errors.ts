/**
 * The closed error taxonomy. Only these errors reach clients (as typed GraphQL results or as
 * errors with `extensions.code`); anything else is masked and logged. Every backend raises the
 * same class for the same case, and the conformance suite proves it.
 */

export const ErrorCode = {
  /** The session, message or cursor target does not exist. */
  NotFound: 'NOT_FOUND',
  /** A guard failed: expectedLastSeq, an idempotency key reused with other content, a key taken. */
  Conflict: 'CONFLICT',
  /** The input is malformed: empty key, NUL bytes, lone surrogates, a bad cursor, a bad option. */
  Invalid: 'INVALID',
  /** Two distinct raw keys would share one JSONL file (zeroclaw's lossy key sanitising). */
  KeyCollision: 'KEY_COLLISION',
  /** Content, key, batch or query over its configured cap. */
  TooLarge: 'TOO_LARGE',
  /** The store cannot be reached or stayed locked past its timeout; retrying may succeed. */
  Unavailable: 'UNAVAILABLE',
  /** A live subscription fell too far behind its client and was ended; resume from the last cursor. */
  FeedOverflow: 'FEED_OVERFLOW',
  /** The caller's token may not do this: it lacks the scope, or the key is outside its prefix. */
  Forbidden: 'FORBIDDEN',
  /** No token, an unknown one, or one that was removed since (tokens configured). */
  Unauthenticated: 'UNAUTHENTICATED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The base of every expected error. `code` is stable API; `message` is for humans. */
export abstract class AppError extends Error {
  abstract readonly code: ErrorCode;
}

export class NotFoundError extends AppError {
  override readonly name = 'NotFoundError';
  readonly code = ErrorCode.NotFound;
  constructor(
    message: string,
    readonly sessionKey?: string,
  ) {
    super(message);
  }
}

export class ConflictError extends AppError {
  override readonly name = 'ConflictError';
  readonly code = ErrorCode.Conflict;
  /**
   * @param expectedLastSeq what the caller expected (null: an empty session), when a seq guard failed
   * @param actualLastSeq what the store holds (null: an empty session), when a seq guard failed
   * @param removed the seqs a retried append had stored and that were removed since (removedSince)
   */
  constructor(
    message: string,
    readonly expectedLastSeq?: number | null,
    readonly actualLastSeq?: number | null,
    readonly removed?: { firstSeq: number; count: number },
  ) {
    super(message);
  }
}

/**
 * A retried append (same clientMessageId, same messages) whose messages were stored and have been
 * removed since (removeLast): nothing is stored again, and no seq of another message is answered.
 * The same on every backend.
 */
export function removedSince(clientMessageId: string, firstSeq: number, count: number): ConflictError {
  const seqs = count === 1 ? `seq ${firstSeq}` : `seqs ${firstSeq}-${firstSeq + count - 1}`;
  return new ConflictError(
    `clientMessageId ${JSON.stringify(clientMessageId)} was stored as ${seqs}, removed since; nothing was stored again`,
    undefined,
    undefined,
    { firstSeq, count },
  );
}

export class InvalidInputError extends AppError {
  override readonly name = 'InvalidInputError';
  readonly code = ErrorCode.Invalid;
  /** @param field the input field at fault, e.g. `sessionKey`, `messages[2].content`, `after` */
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export class KeyCollisionError extends AppError {
  override readonly name = 'KeyCollisionError';
  readonly code = ErrorCode.KeyCollision;
  /**
   * @param sessionKey the key that was refused
   * @param existingKey the distinct key that already owns the same file name; null when the caller
   *   may not see that key (outside its token's prefix): neither it nor the message names it then
   */
  constructor(
    message: string,
    readonly sessionKey: string,
    readonly existingKey: string | null,
  ) {
    super(message);
  }
}

export class TooLargeError extends AppError {
  override readonly name = 'TooLargeError';
  readonly code = ErrorCode.TooLarge;
  /**
   * @param limit the configured cap, in `unit`
   * @param actual the size that was refused, in `unit`
   */
  constructor(
    message: string,
    readonly field: string,
    readonly limit: number,
    readonly actual: number,
    readonly unit: 'bytes' | 'messages' | 'items',
  ) {
    super(message);
  }
}

export class UnavailableError extends AppError {
  override readonly name = 'UnavailableError';
  readonly code = ErrorCode.Unavailable;
}

/**
 * Ends one live subscription whose client does not keep up: its buffer reached the cap. The server
 * drops what was buffered (memory stays bounded); the client subscribes again with `after` set to
 * the last cursor it received and misses nothing.
 */
export class FeedOverflowError extends AppError {
  override readonly name = 'FeedOverflowError';
  readonly code = ErrorCode.FeedOverflow;
  /**
   * @param limit the cap that was reached, in `unit`
   * @param unit what the cap counts: buffered events, or bytes waiting in the socket
   */
  constructor(
    message: string,
    readonly limit: number,
    readonly unit: 'events' | 'bytes',
  ) {
    super(message);
  }
}

/**
 * A write (or a live feed) the caller's token does not allow: a scope it lacks, or a session key
 * outside its prefix. Decided from the token and the key alone, never from what is stored, so it
 * tells nothing about whether the session exists.
 */
export class ForbiddenError extends AppError {
  override readonly name = 'ForbiddenError';
  readonly code = ErrorCode.Forbidden;
}

/** The request carries no token, an unknown one, or one that was removed while a feed ran. */
export class UnauthenticatedError extends AppError {
  override readonly name = 'UnauthenticatedError';
  readonly code = ErrorCode.Unauthenticated;
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError;
}
